#!/usr/bin/env python3
"""GPU benchmark of moe-run --backend cuda against PyTorch, measured in the same run.

For each shape (Switch-Base-8 at T = 16384, Mixtral-8x7B at T = 4096, bfloat16 tokens
and weights, router and accumulation in float32) it writes random weights and tokens,
then measures on the GPU:

  * the machine: the best bf16 matrix rate (torch.matmul, 8192^3) and the memory
    bandwidth (a device-to-device copy of 2 GiB, read + write bytes);
  * the layer compiled by moe-gpu-pipeline: either moe-run --backend cuda --act-dtype
    bf16 --bench N, or, on a GPU machine without LLVM/MLIR, the packages that
    tools/gpu_package.sh made for each shape on the build machine (--packages DIR:
    DIR/switch and DIR/mixtral, run with their moe-gpu-run);
  * PyTorch eager: the usual per-expert loop (route, gather, matmuls, activation,
    index_add) in bf16 on the same inputs.

It prints, per shape and per contender: time per layer, tokens/s, achieved TFLOP/s of
the expert GEMMs (kept assignments only), achieved GB/s (weights read once plus tokens
in and out), the roofline fraction (max(FLOPs / peak rate, bytes / bandwidth) divided by
the time) and the ratio to PyTorch. It needs a GPU, PyTorch with CUDA and numpy; it
exits with a message where they are missing. Usage:

  tools/bench/gpu_bench.py --moe-run build/bin/moe-run [--workdir DIR]
                           [--shapes switch,mixtral] [--runs N]
  tools/bench/gpu_bench.py --packages DIR ...

The packages, made on the build machine:

  tools/gpu_package.sh --spec test/Examples/specs/switch-base-8.json --tokens 16384 \
      --act-dtype bf16 --weight-dtype bf16 -o DIR/switch
  tools/gpu_package.sh --spec test/Examples/specs/mixtral-8x7b.json --tokens 4096 \
      --act-dtype bf16 --weight-dtype bf16 -o DIR/mixtral
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
    "switch": ("switch-base-8.json", 16384),
    "mixtral": ("mixtral-8x7b.json", 4096),
}
GATED = ("geglu", "swiglu")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def median_time(torch, fn, runs):
    """Median seconds of fn() over `runs` calls, with CUDA events, after a warm-up."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e-3)
    return sorted(times)[len(times) // 2]


def machine_limits(torch, runs):
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    peak = 2.0 * n ** 3 / median_time(torch, lambda: a @ b, runs)
    src = torch.empty(1 << 30, device="cuda", dtype=torch.int16)
    dst = torch.empty_like(src)
    bandwidth = 2.0 * src.numel() * 2 / median_time(torch, lambda: dst.copy_(src), runs)
    return peak, bandwidth


def make_inputs(spec, tokens, folder):
    """Random weights stored as BF16 (our names) and float32 tokens, written once."""
    os.makedirs(folder, exist_ok=True)
    paths = {k: os.path.join(folder, f) for k, f in (
        ("spec", "spec.json"), ("weights", "weights.safetensors"), ("x", "x.npy"))}
    with open(paths["spec"], "w") as f:
        json.dump(spec, f)
    d, ff, e = spec["d_model"], spec["d_ff"], spec["num_experts"]
    rng = np.random.default_rng(0)
    if not os.path.exists(paths["weights"]):
        log(f"  writing weights ({e} experts, D={d}, F={ff}, BF16) ...")
        tensors = {
            "router": rng.standard_normal((e, d), dtype=np.float32) / np.sqrt(d),
            "w_in": rng.standard_normal((e, d, ff), dtype=np.float32) / np.sqrt(d),
            "w_out": rng.standard_normal((e, ff, d), dtype=np.float32) / np.sqrt(ff),
        }
        if spec.get("activation") in GATED:
            tensors["w_gate"] = rng.standard_normal((e, d, ff), dtype=np.float32) / np.sqrt(d)
        moe_io.write_safetensors(paths["weights"], tensors, dtype="BF16")
        del tensors
    np.save(paths["x"], moe_io.round_to_bf16(rng.standard_normal((tokens, d), dtype=np.float32)))
    return paths


def run_moe(moe_run, package, paths, folder, runs):
    """moe-run --backend cuda, or the package's moe-gpu-run when `package` is set."""
    out, stats = os.path.join(folder, "y.npy"), os.path.join(folder, "stats.json")
    if package:
        cmd = [os.path.join(package, "moe-gpu-run"),
               "--artifact", os.path.join(package, "layer.cuda.json"),
               "--host", os.path.join(package, "layer.host.so")]
    else:
        cmd = [moe_run, "--backend", "cuda", "--act-dtype", "bf16", "--spec", paths["spec"]]
    cmd += ["--weights", paths["weights"], "--input", paths["x"], "--output", out,
            "--stats", stats, "--bench", str(runs)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"moe-run failed: {proc.stderr.strip()}")
    line = next(l for l in proc.stdout.splitlines() if l.startswith("BENCH "))
    with open(stats) as f:
        return json.loads(line[len("BENCH "):]), json.load(f), np.load(out)


def torch_layer(torch, spec, paths):
    """The PyTorch eager per-expert loop on the GPU, in bf16 (router in f32)."""
    t, _ = moe_io.read_safetensors(paths["weights"])
    dev = dict(device="cuda")
    router = torch.from_numpy(np.ascontiguousarray(t["router"])).to(**dev)
    w = {k: torch.from_numpy(np.ascontiguousarray(t[k])).to(dtype=torch.bfloat16, **dev)
         for k in ("w_in", "w_out", "w_gate") if k in t}
    x = torch.from_numpy(np.load(paths["x"])).to(dtype=torch.bfloat16, **dev)
    k, act = spec.get("top_k", 1), spec.get("activation", "relu")
    functional = torch.nn.functional

    def layer():
        with torch.no_grad():
            probs = torch.softmax(x.float() @ router.T, dim=-1)
            gates, experts = torch.topk(probs, k, dim=-1)
            if spec.get("normalize_gates", k > 1):
                gates = gates / gates.sum(-1, keepdim=True)
            y = torch.zeros_like(x)
            for e in range(router.shape[0]):
                tok, slot = torch.where(experts == e)
                if tok.numel() == 0:
                    continue
                xe = x[tok]
                h = xe @ w["w_in"][e]
                if "w_gate" in w:
                    g = xe @ w["w_gate"][e]
                    g = functional.silu(g) if act == "swiglu" else functional.gelu(g, approximate="tanh")
                    a = g * h
                else:
                    a = torch.relu(h) if act == "relu" else functional.gelu(h)
                y.index_add_(0, tok, ((a @ w["w_out"][e]).float() * gates[tok, slot, None]).to(y.dtype))
            return y

    return layer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moe-run", default=os.path.join(ROOT, "build", "bin", "moe-run"))
    parser.add_argument("--packages", help="folder of tools/gpu_package.sh outputs, one "
                        "per shape (switch/, mixtral/), run instead of moe-run")
    parser.add_argument("--workdir", default="/tmp/moe-gpu-bench")
    parser.add_argument("--shapes", default="switch,mixtral")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("gpu_bench: PyTorch is not installed: no GPU peer to measure against")
    if not torch.cuda.is_available():
        sys.exit("gpu_bench: no CUDA GPU answers here: nothing to measure")

    log(f"device: {torch.cuda.get_device_name()}")
    peak, bandwidth = machine_limits(torch, args.runs)
    log(f"measured: {peak * 1e-12:.1f} TFLOP/s bf16 matmul, {bandwidth * 1e-9:.0f} GB/s copy")
    print(f"device {torch.cuda.get_device_name()}: peak {peak * 1e-12:.1f} TFLOP/s (bf16 "
          f"matmul), {bandwidth * 1e-9:.0f} GB/s (copy), both measured in this run")
    print(f"{'shape':8} {'T':>6} | {'who':14} {'ms':>9} {'tok/s':>10} {'TFLOP/s':>8} "
          f"{'GB/s':>7} {'roofline':>8} {'/torch':>7}")
    for name in args.shapes.split(","):
        spec_file, tokens = SHAPES[name]
        with open(os.path.join(ROOT, "test", "Examples", "specs", spec_file)) as f:
            spec = json.load(f)
        folder = os.path.join(args.workdir, name)
        log(f"{name}: T={tokens} {spec}")
        paths = make_inputs(spec, tokens, folder)
        log("  moe-gpu-run (package) ..." if args.packages else "  moe-run --backend cuda ...")
        package = os.path.join(args.packages, name) if args.packages else None
        bench, stats, y = run_moe(args.moe_run, package, paths, folder, args.runs)
        log("  PyTorch eager loop ...")
        layer = torch_layer(torch, spec, paths)
        torch_s = median_time(torch, layer, args.runs)
        y_torch = layer().float().cpu().numpy()
        diff = float(np.linalg.norm(y - y_torch) / max(np.linalg.norm(y_torch), 1e-30))

        kept = sum(stats["tokens_per_expert"])
        mats = 3 if spec.get("activation") in GATED else 2
        d, ff, e = spec["d_model"], spec["d_ff"], spec["num_experts"]
        flops = 2.0 * kept * d * ff * mats
        moved = 2.0 * (e * d * ff * mats + 2 * tokens * d)  # bf16 weights once, x in, y out
        roof = max(flops / peak, moved / bandwidth)
        for who, seconds in (("moe-run cuda", bench["median_s"]), ("PyTorch eager", torch_s)):
            print(f"{name:8} {tokens:6d} | {who:14} {seconds * 1e3:9.2f} {tokens / seconds:10.0f} "
                  f"{flops * 1e-12 / seconds:8.2f} {moved * 1e-9 / seconds:7.0f} "
                  f"{roof / seconds:8.3f} {seconds / torch_s:7.2f}")
        print(f"{name:8} moe-run vs PyTorch output: rel. difference {diff:.2e}")


if __name__ == "__main__":
    main()
