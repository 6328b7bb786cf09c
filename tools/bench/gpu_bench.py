#!/usr/bin/env python3
"""GPU benchmark of a compiled moe layer against PyTorch, measured in the same run.

Shapes (bfloat16 tokens and weights, router and accumulation in float32):
Switch-Base-8 at T = 16384, Mixtral-8x7B at T = 4096 and the DeepSeek-V3 expert shape
(E 256, k 8, D 7168, F 2048, swiglu, dropless, softmax routing: tools/bench/specs/
deepseek-v3-shape.json) at T = 4096. For each it makes random weights on the GPU (written
once to a safetensors file for our runner) and random tokens, then measures, interleaved in
rounds (ours, eager, grouped; ours, eager, grouped; ...):

  * ours: the packages of tools/gpu_prepare.sh (moe-gpu-run, no LLVM needed on the GPU
    machine; --packages DIR, DIR/<shape>), or moe-run --backend cuda (--moe-run); where
    DIR/<shape>-warp exists too, "ours (warp MMA)": the same layer with mma.sync kernels
    instead of the default (warpgroup MMAs on sm_90a); where DIR/<shape>-rows64 or
    -rows128 exists, "ours (64-row tiles)" or "ours (128-row tiles)": the tensor-core
    kernels with the block tile the default did not pick; where DIR/<shape>-narrow
    exists, "ours (32-k steps, 64 columns)": their earlier loop shape;
  * PyTorch eager: the usual per-expert loop (route, gather, matmuls, activation, index_add);
  * PyTorch grouped: the same routing, tokens sorted by expert once, then torch._grouped_mm
    for the up (and gate) and the down projections, and one index_add;
  * the machine: the measured bf16 matmul rate (8192^3) and copy bandwidth (2 GiB).

It prints the median time per layer over the rounds and the spread (min and max relative
to the median), tokens/s, achieved TFLOP/s of the expert GEMMs (kept assignments only),
GB/s (weights read once, tokens in and out), the fraction of the roofline
(max(FLOPs / measured peak, bytes / measured bandwidth) / time) and the ratio to each
PyTorch peer; then how far each output is from ours. The PyTorch peers do not drop tokens
(Switch's capacity is not modelled), so for Switch the difference includes the drops.
--json writes every measurement; --plot (default with --json OUT.json: OUT.png) draws them
(tools/bench/plot.py, with matplotlib): tokens/s per shape for each contender, and each
one's expert TFLOP/s as a fraction of the measured bf16 matmul rate.

  tools/bench/gpu_bench.py --packages DIR [--shapes switch,mixtral,deepseek] [--rounds 5]
                           [--runs 10] [--workdir DIR] [--json OUT.json] [--plot OUT.png]
  tools/bench/gpu_bench.py --moe-run build/bin/moe-run ...

It needs a GPU, PyTorch with CUDA and numpy, and says which is missing otherwise.
"""

import argparse
import json
import os
import struct
import subprocess
import sys
import time

import numpy as np

import plot  # tools/bench/plot.py, beside this script

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPECS = os.path.join(ROOT, "test", "Examples", "specs")
SHAPES = {
    "switch": (os.path.join(SPECS, "switch-base-8.json"), 16384),
    "mixtral": (os.path.join(SPECS, "mixtral-8x7b.json"), 4096),
    "deepseek": (os.path.join(ROOT, "tools", "bench", "specs", "deepseek-v3-shape.json"), 4096),
}
GATED = ("geglu", "swiglu")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def event_times(torch, fn, runs):
    """Seconds of each of `runs` calls of fn(), timed with CUDA events, after a warm-up."""
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
    return times


def median(values):
    return sorted(values)[len(values) // 2]


def machine_limits(torch, runs):
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    peak = 2.0 * n ** 3 / median(event_times(torch, lambda: a @ b, runs))
    src = torch.empty(1 << 30, device="cuda", dtype=torch.int16)
    dst = torch.empty_like(src)
    bandwidth = 2.0 * src.numel() * 2 / median(event_times(torch, lambda: dst.copy_(src), runs))
    del a, b, src, dst
    return peak, bandwidth


def write_safetensors(torch, path, tensors):
    """Writes device tensors (name -> bf16 or f32 torch tensor) one after the other, 256 MiB
    at a time through the host, so a file of tens of GB never sits in host memory whole."""
    kinds = {torch.bfloat16: ("BF16", 2, torch.int16), torch.float32: ("F32", 4, torch.int32)}
    header, offset = {}, 0
    for name in sorted(tensors):
        kind, size, _ = kinds[tensors[name].dtype]
        count = tensors[name].numel()
        header[name] = {"dtype": kind, "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + count * size]}
        offset += count * size
    text = json.dumps(header, separators=(",", ":")).encode()
    # The data section 64-byte aligned: the runner then uses the weights where
    # the file is mapped instead of copying them (tens of GB for DeepSeek-V3).
    text += b" " * (-(8 + len(text)) % 64)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name in sorted(tensors):
            t = tensors[name]
            bits = t.contiguous().reshape(-1).view(kinds[t.dtype][2])
            step = 1 << 27
            for begin in range(0, bits.numel(), step):
                f.write(bits[begin:begin + step].cpu().numpy().tobytes())


def make_inputs(torch, spec, tokens, folder, device="cuda"):
    """Random weights on the GPU (router f32 values stored as BF16, like the experts) and
    bf16-valued float32 tokens; the weights file is written once per folder."""
    os.makedirs(folder, exist_ok=True)
    paths = {"spec": os.path.join(folder, "spec.json"),
             "weights": os.path.join(folder, "weights.safetensors"),
             "x": os.path.join(folder, "x.npy")}
    with open(paths["spec"], "w") as f:
        json.dump(spec, f)
    d, ff, e = spec["d_model"], spec["d_ff"], spec["num_experts"]
    gen = torch.Generator(device=device)
    gen.manual_seed(0)
    bf16 = dict(device=device, dtype=torch.bfloat16, generator=gen)
    w = {"router": torch.randn(e, d, **bf16) / d ** 0.5,
         "w_in": torch.randn(e, d, ff, **bf16) / d ** 0.5,
         "w_out": torch.randn(e, ff, d, **bf16) / ff ** 0.5}
    if spec.get("activation") in GATED:
        w["w_gate"] = torch.randn(e, d, ff, **bf16) / d ** 0.5
    if not os.path.exists(paths["weights"]):
        gib = sum(t.numel() * 2 for t in w.values()) / 2 ** 30
        log(f"  writing {gib:.1f} GiB of BF16 weights to {paths['weights']} ...")
        write_safetensors(torch, paths["weights"], w)
    x = torch.randn(tokens, d, **bf16)
    np.save(paths["x"], x.float().cpu().numpy())
    return paths, w, x


def routing(torch, spec, x, router):
    probs = torch.softmax(x.float() @ router.float().T, dim=-1)
    k = spec.get("top_k", 1)
    gates, experts = torch.topk(probs, k, dim=-1)
    if spec.get("normalize_gates", k > 1):
        gates = gates / gates.sum(-1, keepdim=True)
    return gates, experts


def activation(torch, spec, h, g):
    functional = torch.nn.functional
    act = spec.get("activation", "relu")
    if act == "swiglu":
        return functional.silu(g) * h
    if act == "geglu":
        return functional.gelu(g, approximate="tanh") * h
    return torch.relu(h) if act == "relu" else functional.gelu(h)


def eager_layer(torch, spec, w, x):
    """The PyTorch eager per-expert loop, in bf16 (router in f32)."""
    def layer():
        with torch.no_grad():
            gates, experts = routing(torch, spec, x, w["router"])
            y = torch.zeros_like(x)
            for e in range(w["router"].shape[0]):
                tok, slot = torch.where(experts == e)
                if tok.numel() == 0:
                    continue
                xe = x[tok]
                a = activation(torch, spec, xe @ w["w_in"][e],
                               xe @ w["w_gate"][e] if "w_gate" in w else None)
                y.index_add_(0, tok, ((a @ w["w_out"][e]).float()
                                      * gates[tok, slot, None]).to(y.dtype))
            return y
    return layer


def grouped_layer(torch, spec, w, x):
    """The same routing, the tokens sorted by expert once, torch._grouped_mm for each
    projection (offsets = running counts), one index_add. Weights are given to
    _grouped_mm column-major when it refuses the row-major [E, K, N] layout."""
    k = spec.get("top_k", 1)
    experts_n = w["router"].shape[0]
    names = [n for n in ("w_in", "w_gate", "w_out") if n in w]
    mats = {n: w[n] for n in names}

    def grouped(a, b, offs):
        if hasattr(torch, "_grouped_mm") and a.is_cuda:
            return torch._grouped_mm(a, b, offs=offs)
        # --self-test on the CPU: the same contract, one matmul per group.
        out, start = [], 0
        for g, end in enumerate(offs.tolist()):
            out.append(a[start:end] @ b[g])
            start = end
        return torch.cat(out)

    def layer():
        with torch.no_grad():
            gates, experts = routing(torch, spec, x, w["router"])
            flat = experts.reshape(-1)
            order = torch.argsort(flat, stable=True)
            tok = order // k
            offs = torch.cumsum(torch.bincount(flat, minlength=experts_n), 0).to(torch.int32)
            xs = x[tok]
            a = activation(torch, spec, grouped(xs, mats["w_in"], offs),
                           grouped(xs, mats["w_gate"], offs) if "w_gate" in mats else None)
            out = grouped(a, mats["w_out"], offs)
            y = torch.zeros_like(x)
            y.index_add_(0, tok, (out.float() * gates.reshape(-1)[order, None]).to(y.dtype))
            return y

    try:
        layer()
    except RuntimeError as error:
        log(f"  torch._grouped_mm refused row-major weights ({str(error).splitlines()[0]}); "
            "using column-major copies")
        for n in names:
            mats[n] = w[n].transpose(-2, -1).contiguous().transpose(-2, -1)
    return layer


def run_ours(args, name, paths, folder, variant="", flags=()):
    """One process of moe-gpu-run (or moe-run --backend cuda) timing --runs calls;
    `variant` names another package of the shape (DIR/<shape><variant>), `flags`
    are more flags of the runner (--cuda-graph)."""
    out, stats = os.path.join(folder, "y.npy"), os.path.join(folder, "stats.json")
    if args.self_test:
        cmd = [args.moe_run, "--act-dtype", "bf16", "--spec", paths["spec"]]
    elif args.packages:
        package = os.path.join(args.packages, name + variant)
        runner = os.path.join(args.packages, "moe-gpu-run")
        if not os.path.exists(runner):
            runner = os.path.join(package, "moe-gpu-run")
        cmd = [runner, "--artifact", os.path.join(package, "layer.cuda.json"),
               "--host", os.path.join(package, "layer.host.so")]
    else:
        cmd = [args.moe_run, "--backend", "cuda", "--act-dtype", "bf16",
               "--spec", paths["spec"]]
    cmd += ["--weights", paths["weights"], "--input", paths["x"], "--output", out,
            "--stats", stats, "--bench", str(args.runs), *flags]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"gpu_bench: {' '.join(cmd[:1])} failed: {proc.stderr.strip()}")
    line = next(l for l in proc.stdout.splitlines() if l.startswith("BENCH "))
    with open(stats) as f:
        return json.loads(line[len("BENCH "):])["median_s"], json.load(f), np.load(out)


def priority(contenders):
    """The contenders in the order --budget-s keeps them: ours, the two PyTorch peers,
    ours with a CUDA graph, ours with the earlier loop shape, then the other variants."""
    first = ["ours", "PyTorch grouped", "PyTorch eager", "ours (CUDA graph)",
             "ours (32-k steps, 64 columns)"]
    return ([who for who in first if who in contenders]
            + [who for who in contenders if who not in first])


def plan_rounds(cost, order, rounds, left):
    """After round 1 (`cost`: seconds each contender took in it): the contenders and the
    number of rounds (round 1 included) that fit in `left` more seconds. All of `order`
    when min(3, rounds) rounds fit, else the fewest contenders dropped from its end (the
    first three always stay) so that they do; as many rounds as fit, up to `rounds`."""
    want = min(3, rounds)
    for n in range(len(order), min(3, len(order)) - 1, -1):
        keep = order[:n]
        per_round = sum(cost[who] for who in keep)
        fit = 1 + int(max(left, 0) // per_round) if per_round > 0 else rounds
        if fit >= want or n == min(3, len(order)):
            return keep, max(1, min(rounds, fit))
    return order, rounds


def summary(times):
    m = median(times)
    return m, min(times) / m - 1, max(times) / m - 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moe-run", default=os.path.join(ROOT, "build", "bin", "moe-run"))
    parser.add_argument("--packages", help="the bench folder of tools/gpu_prepare.sh "
                        "(one package per shape), run instead of moe-run")
    parser.add_argument("--workdir", default="/tmp/moe-gpu-bench")
    parser.add_argument("--shapes", default="switch,mixtral,deepseek")
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved rounds of the contenders")
    parser.add_argument("--runs", type=int, default=10, help="timed calls per round")
    parser.add_argument("--budget-s", type=float, default=0,
                        help="seconds the whole run may take (0: no limit): after a "
                        "shape's first round, the rounds (at least 3 where possible) "
                        "and the contenders kept (ours, grouped and eager first) fit "
                        "that shape's share of what is left")
    parser.add_argument("--self-test", action="store_true",
                        help="no GPU: check the weights file, both PyTorch peers and our layer "
                        "(moe-run on the CPU) against each other on a small shape; exits 1 "
                        "when an output differs by more than 2e-2")
    parser.add_argument("--json", help="also write every measurement to this file")
    parser.add_argument("--plot", help="also draw the table into this PNG (default with "
                        "--json OUT.json: OUT.png)")
    args = parser.parse_args()
    started = time.monotonic()
    if args.budget_s < 0:
        sys.exit(f"gpu_bench: --budget-s needs a non-negative number, got {args.budget_s}")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        if args.plot is None:
            args.plot = os.path.splitext(args.json)[0] + ".png"
    if args.self_test:
        return self_test(args)
    unknown = [s for s in args.shapes.split(",") if s not in SHAPES]
    if unknown:
        sys.exit(f"gpu_bench: unknown shape '{unknown[0]}' (known: {', '.join(SHAPES)})")
    try:
        import torch
    except ImportError:
        sys.exit("gpu_bench: PyTorch is not installed: no GPU peer to measure against")
    if not torch.cuda.is_available():
        sys.exit("gpu_bench: no CUDA GPU answers here: nothing to measure")

    device = torch.cuda.get_device_name()
    log(f"device: {device}")
    peak, bandwidth = machine_limits(torch, args.runs)
    print(f"# device {device}, torch {torch.__version__}: {peak * 1e-12:.1f} TFLOP/s bf16 "
          f"matmul, {bandwidth * 1e-9:.0f} GB/s copy (measured in this run); medians over "
          f"{args.rounds} interleaved rounds of {args.runs} calls, spread = min/max vs median")
    print(f"{'shape':8} {'T':>6} | {'who':17} {'ms':>9} {'spread':>13} {'n':>2} {'tok/s':>10} "
          f"{'TFLOP/s':>8} {'GB/s':>7} {'roofline':>8} {'/eager':>7} {'/grouped':>8}")
    title = (f"GPU: {device}, torch {torch.__version__}; bf16 matmul {peak * 1e-12:.1f} "
             f"TFLOP/s, copy {bandwidth * 1e-9:.0f} GB/s (measured in this run)\n"
             f"median of {args.rounds} interleaved rounds of {args.runs} calls")
    rate_label = f"expert TFLOP/s / bf16 matmul\n({peak * 1e-12:.1f} TFLOP/s, 8192^3)"
    results = []
    shapes = args.shapes.split(",")
    deadline = started + args.budget_s if args.budget_s else None
    for index, name in enumerate(shapes):
        if deadline is not None and time.monotonic() >= deadline:
            log(f"{name}: skipped, --budget-s {args.budget_s:.0f} is spent")
            print(f"{name:8} skipped: the time budget (--budget-s) was spent")
            continue
        spec_file, tokens = SHAPES[name]
        with open(spec_file) as f:
            spec = json.load(f)
        folder = os.path.join(args.workdir, name)
        log(f"{name}: T={tokens} {spec}")
        began = time.monotonic()
        paths, w, x = make_inputs(torch, spec, tokens, folder)
        log(f"  inputs ready in {time.monotonic() - began:.1f} s")
        # Our packages: the default one, and where gpu_prepare.sh made it the
        # warp-MMA one (on sm_90a the default uses warpgroup MMAs).
        ours = {"ours": ("", ())}
        if not args.self_test:
            # The same calls replayed from a CUDA graph (no launch per kernel).
            ours["ours (CUDA graph)"] = ("", ("--cuda-graph",))
        if args.packages and os.path.isdir(os.path.join(args.packages, name + "-warp")):
            ours["ours (warp MMA)"] = ("-warp", ())
        for rows in (64, 128):
            if args.packages and os.path.isdir(os.path.join(args.packages,
                                                            f"{name}-rows{rows}")):
                ours[f"ours ({rows}-row tiles)"] = (f"-rows{rows}", ())
        if args.packages and os.path.isdir(os.path.join(args.packages, name + "-narrow")):
            ours["ours (32-k steps, 64 columns)"] = ("-narrow", ())
        contenders = {who: None for who in ours}
        contenders.update({"PyTorch eager": eager_layer(torch, spec, w, x),
                           "PyTorch grouped": grouped_layer(torch, spec, w, x)})
        times = {who: [] for who in contenders}
        outputs = {}
        # What a round of each contender costs here (a process of ours loads
        # its weights each time), measured in round 1; later rounds keep to
        # this shape's share of --budget-s.
        cost = {}
        keep, rounds = list(contenders), args.rounds
        for r in range(args.rounds):
            if r >= rounds:
                break
            log(f"  round {r + 1}/{rounds}")
            for who in keep:
                fn = contenders[who]
                began = time.monotonic()
                if fn is None:
                    seconds, stats, outputs[who] = run_ours(args, name, paths, folder,
                                                            *ours[who])
                    times[who].append(seconds)
                else:
                    times[who].append(median(event_times(torch, fn, args.runs)))
                cost[who] = time.monotonic() - began
            if r == 0 and deadline is not None:
                log("  round 1 took " + ", ".join(f"{who} {cost[who]:.1f} s"
                                                  for who in keep))
                share = (deadline - time.monotonic()) / (len(shapes) - index)
                keep, rounds = plan_rounds(cost, priority(list(contenders)), args.rounds,
                                           share)
                if len(keep) < len(contenders) or rounds < args.rounds:
                    log(f"  --budget-s: {rounds} rounds of {', '.join(keep)} "
                        f"fit in this shape's {max(share, 0):.0f} s")

        kept = sum(stats["tokens_per_expert"])
        mats = 3 if spec.get("activation") in GATED else 2
        d, ff, e = spec["d_model"], spec["d_ff"], spec["num_experts"]
        flops = 2.0 * kept * d * ff * mats
        moved = 2.0 * (e * d * ff * mats + 2 * tokens * d)  # bf16 weights once, x in, y out
        roof = max(flops / peak, moved / bandwidth)
        eager_s = median(times["PyTorch eager"])
        grouped_s = median(times["PyTorch grouped"])
        for who in contenders:
            m, lo, hi = summary(times[who])
            print(f"{name:8} {tokens:6d} | {who:17} {m * 1e3:9.3f} {lo:+6.1%}..{hi:+5.1%} "
                  f"{len(times[who]):2d} "
                  f"{tokens / m:10.0f} {flops * 1e-12 / m:8.2f} {moved * 1e-9 / m:7.0f} "
                  f"{roof / m:8.3f} {m / eager_s:7.2f} {m / grouped_s:8.2f}")
            results.append({"shape": name, "tokens": tokens, "rows": kept, "flops": flops,
                            "bytes": moved, "who": who, "samples_s": times[who]})
        for who in ("PyTorch eager", "PyTorch grouped"):
            peer = contenders[who]().float().cpu().numpy()
            for mine, y in outputs.items():
                diff = float(np.linalg.norm(y - peer) / max(np.linalg.norm(peer), 1e-30))
                print(f"{name:8} output of {mine} vs {who}: relative difference {diff:.2e}")
        del contenders, w, x
        torch.cuda.empty_cache()
        if args.json:  # after each shape: a later shape that fails keeps the earlier ones
            with open(args.json, "w") as f:
                json.dump({"device": device, "torch": torch.__version__, "title": title,
                           "peak_flops": peak, "bandwidth_bytes_s": bandwidth,
                           "rate_label": rate_label, "results": results}, f, indent=1)

    if args.plot:
        plot.try_draw(args.plot, results, title, peak_flops=peak, rate_label=rate_label)


def self_test(args):
    import torch
    spec = {"d_model": 64, "d_ff": 128, "num_experts": 4, "top_k": 2, "activation": "swiglu",
            "normalize_gates": True, "capacity_factor": None}
    tokens = 48
    folder = os.path.join(args.workdir, "self-test")
    paths, w, x = make_inputs(torch, spec, tokens, folder, device="cpu")
    _, _, ours = run_ours(args, "self-test", paths, folder)
    failed = False
    outputs = {"PyTorch eager": eager_layer(torch, spec, w, x)().float().numpy(),
               "PyTorch grouped": grouped_layer(torch, spec, w, x)().float().numpy()}
    for who, y in outputs.items():
        diff = float(np.linalg.norm(ours - y) / np.linalg.norm(y))
        failed |= not diff <= 2e-2
        print(f"self-test: ours vs {who}: relative difference {diff:.2e}")
    diff = float(np.linalg.norm(outputs["PyTorch eager"] - outputs["PyTorch grouped"])
                 / np.linalg.norm(outputs["PyTorch eager"]))
    failed |= not diff <= 2e-2
    print(f"self-test: eager vs grouped: relative difference {diff:.2e}")
    print("self-test: FAIL" if failed else "self-test: OK")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
