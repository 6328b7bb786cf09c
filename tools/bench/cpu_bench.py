#!/usr/bin/python3
"""CPU benchmark of moe-run against its peers, measured in the same run.

For each shape (Switch-Base-8 at T = 4096, Mixtral-8x7B at T = 512, both in
float32) it writes random weights and tokens, then measures:

  * moe-run --bench: the whole layer compiled by moe-cpu-pipeline;
  * GEMM-only: the same expert FLOPs as one OpenBLAS sgemm per weight matrix
    ([rows kept, D] x [D, F] and back), via numpy, with all cores and with one;
  * PyTorch eager: the usual per-expert loop (route, gather, matmuls,
    activation, index_add), with all cores.

It prints a table: time per layer, tokens/s, achieved GFLOP/s of the expert
GEMMs, and the ratio of each time to the GEMM-only time. Usage:

  tools/bench/cpu_bench.py --moe-run build/bin/moe-run [--workdir DIR]
                           [--shapes switch,mixtral] [--runs N]
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "test", "e2e"))
import moe_io  # noqa: E402

SHAPES = {
    "switch": ("switch-base-8.json", 4096),
    "mixtral": ("mixtral-8x7b.json", 512),
}
GATED = ("geglu", "swiglu")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


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


def run_moe(moe_run, spec_path, weights_path, x_path, folder, runs):
    out = os.path.join(folder, "y.npy")
    stats = os.path.join(folder, "stats.json")
    cmd = [moe_run, "--spec", spec_path, "--weights", weights_path, "--input", x_path,
           "--output", out, "--stats", stats, "--bench", str(runs)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"moe-run failed: {proc.stderr.strip()}")
    line = next(l for l in proc.stdout.splitlines() if l.startswith("BENCH "))
    with open(stats) as f:
        return json.loads(line[len("BENCH "):]), json.load(f)


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


def gemm_only(rows, d, ff, mats, runs, threads):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, "-c", GEMM_PEER, str(rows), str(d), str(ff),
                           str(mats), str(runs)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"GEMM peer failed: {proc.stderr.strip()}")
    return float(proc.stdout.strip())


def torch_loop(spec, weights_path, x_path, runs):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(os.cpu_count())
    t, _ = moe_io.read_safetensors(weights_path)
    router = torch.from_numpy(np.ascontiguousarray(t["router"]))
    w_in = torch.from_numpy(np.ascontiguousarray(t["w_in"]))
    w_out = torch.from_numpy(np.ascontiguousarray(t["w_out"]))
    w_gate = torch.from_numpy(np.ascontiguousarray(t["w_gate"])) if "w_gate" in t else None
    x = torch.from_numpy(np.load(x_path))
    k = spec.get("top_k", 1)
    act = spec.get("activation", "relu")

    def layer():
        with torch.no_grad():
            probs = torch.softmax(x @ router.T, dim=-1)
            gates, experts = torch.topk(probs, k, dim=-1)
            if k > 1:
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
        start = time.perf_counter()
        layer()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moe-run", default=os.path.join(ROOT, "build", "bin", "moe-run"))
    parser.add_argument("--workdir", default="/tmp/moe-cpu-bench")
    parser.add_argument("--shapes", default="switch,mixtral")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    rows = []
    for name in args.shapes.split(","):
        spec_file, tokens = SHAPES[name]
        with open(os.path.join(ROOT, "test", "Examples", "specs", spec_file)) as f:
            spec = json.load(f)
        folder = os.path.join(args.workdir, name)
        log(f"{name}: T={tokens} {spec}")
        spec_path, weights_path, x_path = make_inputs(spec, tokens, folder)
        log("  moe-run ...")
        bench, stats = run_moe(args.moe_run, spec_path, weights_path, x_path, folder, args.runs)
        kept = sum(stats["tokens_per_expert"])
        mats = 3 if spec.get("activation") in GATED else 2
        flops = 2.0 * kept * spec["d_model"] * spec["d_ff"] * mats
        log("  OpenBLAS GEMM-only ...")
        gemm_all = gemm_only(kept, spec["d_model"], spec["d_ff"], mats, args.runs, os.cpu_count())
        gemm_one = gemm_only(kept, spec["d_model"], spec["d_ff"], mats, args.runs, 1)
        log("  PyTorch eager loop ...")
        torch_s = torch_loop(spec, weights_path, x_path, args.runs)
        rows.append((name, tokens, kept, flops, bench, gemm_all, gemm_one, torch_s))

    print(f"{'shape':8} {'T':>5} {'rows':>5} {'GFLOP':>7} | {'who':28} {'ms':>9} {'tok/s':>9} {'GFLOP/s':>8} {'/GEMM':>6}")
    for name, tokens, kept, flops, bench, gemm_all, gemm_one, torch_s in rows:
        entries = [(f"moe-run ({os.cpu_count()} thr)", bench["median_s"]),
                   (f"OpenBLAS GEMM-only ({os.cpu_count()} thr)", gemm_all),
                   ("OpenBLAS GEMM-only (1 thr)", gemm_one)]
        if torch_s is not None:
            entries.append((f"PyTorch eager loop ({os.cpu_count()} thr)", torch_s))
        for who, seconds in entries:
            print(f"{name:8} {tokens:5d} {kept:5d} {flops * 1e-9:7.1f} | {who:28} {seconds * 1e3:9.1f} "
                  f"{tokens / seconds:9.0f} {flops * 1e-9 / seconds:8.1f} {seconds / gemm_all:6.2f}")


if __name__ == "__main__":
    main()
