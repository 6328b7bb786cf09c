#!/usr/bin/python3
"""CPU benchmark of moe-run against its peers, measured in the same run.

Shapes (float32, random weights written once per shape into --workdir):

  switch     Switch-Base-8      E 8,   k 1, D 768,  F 3072,  relu,   cf 1.25   T 4096
  mixtral    Mixtral-8x7B       E 8,   k 2, D 4096, F 14336, swiglu, dropless  T 512
  deepseek   DeepSeek-MoE-16B   E 64,  k 6, D 2048, F 1408,  swiglu, dropless  T 1024
  qwen3      Qwen3-MoE-like     E 128, k 8, D 2048, F 768,   swiglu, dropless  T 1024

Contenders, each a process of its own, with one thread and with all threads:

  * moe-run --fusion on (the default) and --fusion off (--bench N);
  * GEMM-only: the same expert FLOPs as one OpenBLAS sgemm per weight matrix
    ([rows kept, D] x [D, F] and back, via numpy; the bench stops when numpy
    runs on the reference BLAS: `apt-get install libopenblas0-pthread`);
  * PyTorch eager: the usual per-expert loop (route, gather, matmuls,
    activation, index_add), if Debian's python3-torch is installed
    (`apt-get install python3-torch`).

The contenders are interleaved (A B C D A B C D ...) for --rounds rounds of
--runs timed calls each, so that the machine's drift hits all of them; the
table gives the median over all timed calls, the spread (min..max of the
per-round medians, relative to the median), throughput, the GFLOP/s of the
expert GEMMs and the bytes/s of one call's compulsory traffic (weights,
router, tokens in and out), the ratios to the machine's limits measured by
moe-cpu-peak before the shapes (float32 FMA rate of the widest vectors and copy
bandwidth, of the same thread count), and the ratios to the GEMM-only median of
the same thread count (the machine's GEMM rate measured in the same run) and
to PyTorch's. The header names the CPU model, its vector features and
limits. With --plot (or --json OUT.json: OUT.png beside it) it also draws the
table (tools/bench/plot.py, with Debian's python3-matplotlib): tokens/s per
shape and thread count for each contender, and each one's expert GFLOP/s as a
fraction of GEMM-only's. Usage:

  tools/bench/cpu_bench.py [--moe-run build/bin/moe-run]
      [--cpu-peak build/bin/moe-cpu-peak] [--workdir DIR]
      [--shapes switch,mixtral,deepseek,qwen3] [--threads 1,N] [--runs 3]
      [--rounds 3] [--json OUT.json] [--plot OUT.png]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "test", "e2e"))
import moe_io  # noqa: E402
import plot  # noqa: E402  (tools/bench/plot.py, beside this script)

SPECS = os.path.join(ROOT, "test", "Examples", "specs")
SHAPES = {
    "switch": ("switch-base-8.json", 4096),
    "mixtral": ("mixtral-8x7b.json", 512),
    "deepseek": ({"d_model": 2048, "d_ff": 1408, "num_experts": 64, "top_k": 6,
                  "activation": "swiglu", "normalize_gates": False,
                  "capacity_factor": None}, 1024),
    "qwen3": ({"d_model": 2048, "d_ff": 768, "num_experts": 128, "top_k": 8,
               "activation": "swiglu", "normalize_gates": True,
               "capacity_factor": None}, 1024),
}
GATED = ("geglu", "swiglu")
GEMM_WHO = "GEMM-only (OpenBLAS)"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def cpu_model():
    model, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model == "unknown CPU":
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    vector = [f for f in ("avx512f", "avx512_bf16", "avx512_fp16", "avx2", "fma") if f in flags]
    return f"{model}, {os.cpu_count()} hardware threads, {' '.join(vector) or 'no AVX'}"


def make_inputs(spec, tokens, folder):
    """Random float32 weights (our names) and tokens, written once."""
    os.makedirs(folder, exist_ok=True)
    weights_path = os.path.join(folder, "weights.safetensors")
    x_path = os.path.join(folder, "x.npy")
    spec_path = os.path.join(folder, "spec.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    d, ff, e = spec["d_model"], spec["d_ff"], spec["num_experts"]
    rng = np.random.default_rng(0)
    if not os.path.exists(weights_path):
        log(f"  writing weights ({e} experts, D={d}, F={ff}) ...")
        tensors = {
            "router": (rng.standard_normal((e, d), dtype=np.float32) / np.sqrt(d)),
            "w_in": (rng.standard_normal((e, d, ff), dtype=np.float32) / np.sqrt(d)),
            "w_out": (rng.standard_normal((e, ff, d), dtype=np.float32) / np.sqrt(ff)),
        }
        if spec.get("activation") in GATED:
            tensors["w_gate"] = rng.standard_normal((e, d, ff), dtype=np.float32) / np.sqrt(d)
        moe_io.write_safetensors(weights_path, tensors)
        del tensors
    x = rng.standard_normal((tokens, d), dtype=np.float32)
    np.save(x_path, x)
    return spec_path, weights_path, x_path


def thread_env(threads):
    return dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
                MKL_NUM_THREADS=str(threads))


def run_moe(moe_run, paths, folder, runs, threads, fusion):
    """One moe-run process: (times of its timed calls, statistics)."""
    spec_path, weights_path, x_path = paths
    out = os.path.join(folder, f"y-{fusion}.npy")
    stats = os.path.join(folder, f"stats-{fusion}.json")
    cmd = [moe_run, "--spec", spec_path, "--weights", weights_path, "--input", x_path,
           "--output", out, "--stats", stats, "--bench", str(runs), "--fusion", fusion]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=thread_env(threads))
    if proc.returncode != 0:
        sys.exit(f"moe-run failed: {proc.stderr.strip()}")
    line = next(l for l in proc.stdout.splitlines() if l.startswith("BENCH "))
    bench = json.loads(line[len("BENCH "):])
    with open(stats) as f:
        return [bench["median_s"]], json.load(f)


GEMM_PEER = r"""
import sys, time, numpy as np
rows, d, ff, mats, runs = map(int, sys.argv[1:])
rng = np.random.default_rng(1)
x = rng.standard_normal((rows, d), dtype=np.float32)
w1 = rng.standard_normal((d, ff), dtype=np.float32)
w2 = rng.standard_normal((ff, d), dtype=np.float32)
h = np.empty((rows, ff), np.float32); y = np.empty((rows, d), np.float32)
def once():
    for _ in range(mats - 1):
        np.matmul(x, w1, out=h)
    np.matmul(h, w2, out=y)
once()
times = []
for _ in range(runs):
    t = time.perf_counter(); once(); times.append(time.perf_counter() - t)
print(sorted(times)[len(times) // 2])
"""

TORCH_PEER = r"""
import json, sys, time
import numpy as np, torch
sys.path.insert(0, sys.argv[1])
import moe_io
spec = json.load(open(sys.argv[2])); weights, x_path = sys.argv[3], sys.argv[4]
threads, runs = int(sys.argv[5]), int(sys.argv[6])
torch.set_num_threads(threads)
t, _ = moe_io.read_safetensors(weights)
router = torch.from_numpy(np.ascontiguousarray(t["router"]))
w_in = torch.from_numpy(np.ascontiguousarray(t["w_in"]))
w_out = torch.from_numpy(np.ascontiguousarray(t["w_out"]))
w_gate = torch.from_numpy(np.ascontiguousarray(t["w_gate"])) if "w_gate" in t else None
del t
x = torch.from_numpy(np.load(x_path))
k = spec.get("top_k", 1)
act = spec.get("activation", "relu")
normalize = spec.get("normalize_gates", k > 1)

def layer():
    with torch.no_grad():
        probs = torch.softmax(x @ router.T, dim=-1)
        gates, experts = torch.topk(probs, k, dim=-1)
        if normalize:
            gates = gates / gates.sum(-1, keepdim=True)
        y = torch.zeros_like(x)
        for e in range(router.shape[0]):
            tok, slot = torch.where(experts == e)
            if tok.numel() == 0:
                continue
            xe = x[tok]
            h = xe @ w_in[e]
            if w_gate is not None:
                g = xe @ w_gate[e]
                g = torch.nn.functional.silu(g) if act == "swiglu" else torch.nn.functional.gelu(g, approximate="tanh")
                a = g * h
            else:
                a = torch.relu(h) if act == "relu" else torch.nn.functional.gelu(h)
            y.index_add_(0, tok, (a @ w_out[e]) * gates[tok, slot, None])
        return y

layer()
times = []
for _ in range(runs):
    start = time.perf_counter(); layer(); times.append(time.perf_counter() - start)
print(sorted(times)[len(times) // 2])
"""


def run_peer(args, threads):
    proc = subprocess.run([sys.executable, "-c"] + args, capture_output=True, text=True,
                          env=thread_env(threads))
    if proc.returncode != 0:
        sys.exit(f"peer failed: {proc.stderr.strip()[-400:]}")
    return [float(proc.stdout.strip())]


BLAS_PROBE = r"""
import numpy as np
np.ones((64, 64), np.float32) @ np.ones((64, 64), np.float32)
libs = set()
for line in open("/proc/self/maps"):
    path = line.split()[-1]
    if "blas" in path.lower():
        libs.add(path)
print(" ".join(sorted(libs)))
"""


def numpy_blas():
    """The BLAS library numpy's matmul runs in (the GEMM peer); the reference
    BLAS is not a peer: it is 20x slower than an optimised one."""
    proc = subprocess.run([sys.executable, "-c", BLAS_PROBE], capture_output=True, text=True)
    libs = proc.stdout.split()
    real = sorted({os.path.realpath(lib) for lib in libs})
    if not any("openblas" in lib or "mkl" in lib or "blis" in lib for lib in real):
        sys.exit("cpu_bench.py: numpy uses the reference BLAS (" + (" ".join(real) or "none found")
                 + "), not a GEMM peer: apt-get install libopenblas0-pthread")
    return " ".join(real)


def machine_limits(cpu_peak, threads):
    """moe-cpu-peak's FMA rate (GFLOP/s) and copy bandwidth (GB/s)."""
    proc = subprocess.run([cpu_peak, "--threads", str(threads)], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"moe-cpu-peak failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def layer_bytes(spec, tokens, mats):
    """The compulsory float32 traffic of one call: every expert's weights and
    the router read once, the tokens read and the output written once."""
    d, ff, e = spec["d_model"], spec["d_ff"], spec["num_experts"]
    return 4.0 * (e * d * ff * mats + e * d + 2 * tokens * d)


def have_torch():
    return subprocess.run([sys.executable, "-c", "import torch"],
                          capture_output=True).returncode == 0


def summary(samples):
    med = statistics.median(samples)
    return med, (min(samples) / med - 1.0, max(samples) / med - 1.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moe-run", default=os.path.join(ROOT, "build", "bin", "moe-run"))
    parser.add_argument("--cpu-peak", default=os.path.join(ROOT, "build", "bin", "moe-cpu-peak"),
                        help="the tool that measures the machine's limits")
    parser.add_argument("--workdir", default="/tmp/moe-cpu-bench")
    parser.add_argument("--shapes", default="switch,mixtral,deepseek,qwen3")
    parser.add_argument("--threads", default=f"1,{os.cpu_count()}",
                        help="comma-separated thread counts (default: 1 and all)")
    parser.add_argument("--runs", type=int, default=3, help="timed calls per process")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--no-unfused", action="store_true", help="skip moe-run --fusion off")
    parser.add_argument("--json", help="also write every measurement to this file")
    parser.add_argument("--plot", help="also draw the table into this PNG (default with "
                        "--json OUT.json: OUT.png)")
    args = parser.parse_args()
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        if args.plot is None:
            args.plot = os.path.splitext(args.json)[0] + ".png"

    blas = numpy_blas()
    torch_ok = have_torch()
    if not torch_ok:
        log("PyTorch is not installed (apt-get install python3-torch): no eager peer")
    thread_counts = [int(t) for t in args.threads.split(",")]
    limits = {}
    for threads in thread_counts:
        log(f"machine limits, {threads} thr (moe-cpu-peak) ...")
        limits[threads] = machine_limits(args.cpu_peak, threads)
    title = (f"CPU: {cpu_model()}\nmedian of {args.rounds} interleaved rounds x {args.runs} "
             f"timed calls; GEMM-only: numpy on OpenBLAS, same FLOPs, same threads")
    rate_label = "expert GFLOP/s / GEMM-only GFLOP/s\n(same run, same threads)"
    results = []
    for name in args.shapes.split(","):
        if name not in SHAPES:
            sys.exit(f"unknown shape '{name}' (one of {', '.join(SHAPES)})")
        spec, tokens = SHAPES[name]
        if isinstance(spec, str):
            with open(os.path.join(SPECS, spec)) as f:
                spec = json.load(f)
        folder = os.path.join(args.workdir, name)
        log(f"{name}: T={tokens} {spec}")
        paths = make_inputs(spec, tokens, folder)
        # The kept rows (for the FLOPs and the GEMM peer) from one moe-run call.
        _, stats = run_moe(args.moe_run, paths, folder, 1, os.cpu_count(), "on")
        kept = sum(stats["tokens_per_expert"])
        mats = 3 if spec.get("activation") in GATED else 2
        flops = 2.0 * kept * spec["d_model"] * spec["d_ff"] * mats
        nbytes = layer_bytes(spec, tokens, mats)
        for threads in thread_counts:
            contenders = [("moe-run fused", lambda: run_moe(args.moe_run, paths, folder,
                                                            args.runs, threads, "on")[0])]
            if not args.no_unfused:
                contenders.append(("moe-run unfused", lambda: run_moe(
                    args.moe_run, paths, folder, args.runs, threads, "off")[0]))
            contenders.append((GEMM_WHO, lambda: run_peer(
                [GEMM_PEER, str(kept), str(spec["d_model"]), str(spec["d_ff"]), str(mats),
                 str(args.runs)], threads)))
            if torch_ok:
                contenders.append(("PyTorch eager loop", lambda: run_peer(
                    [TORCH_PEER, os.path.join(ROOT, "test", "e2e"), paths[0], paths[1],
                     paths[2], str(threads), str(args.runs)], threads)))
            samples = {who: [] for who, _ in contenders}
            for r in range(args.rounds):
                for who, measure in contenders:
                    log(f"  {threads} thr, round {r + 1}/{args.rounds}: {who} ...")
                    samples[who] += measure()
            for who, values in samples.items():
                results.append({"shape": name, "tokens": tokens, "rows": kept, "flops": flops,
                                "bytes": nbytes, "threads": threads, "who": who,
                                "samples_s": values})
        if args.json:  # after each shape: a later shape that fails keeps the earlier ones
            with open(args.json, "w") as f:
                json.dump({"cpu": cpu_model(), "title": title, "reference": GEMM_WHO,
                           "rate_label": rate_label, "limits": limits, "results": results},
                          f, indent=1)

    print(f"# CPU: {cpu_model()}")
    print(f"# GEMM peer: numpy on {blas}")
    for threads, limit in limits.items():
        print(f"# limits, {threads} thr (moe-cpu-peak, {limit['isa']}): float32 FMA "
              f"{limit['fma_gflops']:.1f} GFLOP/s, copy {limit['copy_gbs']:.1f} GB/s")
    print(f"# {args.rounds} interleaved rounds x {args.runs} timed calls; median over rounds "
          f"of each round's median; spread = min..max of the rounds; /peak and /bw: of the "
          f"limits above")
    print(f"{'shape':9} {'T':>5} {'rows':>5} {'GFLOP':>6} {'thr':>3} | {'who':22} {'ms':>9} "
          f"{'spread':>13} {'tok/s':>8} {'GFLOP/s':>8} {'/peak':>5} {'GB/s':>5} {'/bw':>5} "
          f"{'/GEMM':>6} {'/torch':>6}")
    for row in results:
        med, (lo, hi) = summary(row["samples_s"])
        peers = {r["who"]: summary(r["samples_s"])[0] for r in results
                 if r["shape"] == row["shape"] and r["threads"] == row["threads"]}
        gemm = peers.get(GEMM_WHO)
        torch_s = peers.get("PyTorch eager loop")
        limit = limits[row["threads"]]
        gflops, gbs = row["flops"] * 1e-9 / med, row["bytes"] * 1e-9 / med
        print(f"{row['shape']:9} {row['tokens']:5d} {row['rows']:5d} {row['flops'] * 1e-9:6.1f} "
              f"{row['threads']:3d} | {row['who']:22} {med * 1e3:9.1f} "
              f"{f'{lo * 100:+.0f}%..{hi * 100:+.0f}%':>13} {row['tokens'] / med:8.0f} "
              f"{gflops:8.1f} {gflops / limit['fma_gflops']:5.2f} {gbs:5.1f} "
              f"{gbs / limit['copy_gbs']:5.2f} {med / gemm:6.2f} "
              f"{(med / torch_s if torch_s else float('nan')):6.2f}")
    if args.plot:
        plot.try_draw(args.plot, results, title, reference=GEMM_WHO, rate_label=rate_label)


if __name__ == "__main__":
    main()
