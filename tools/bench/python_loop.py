#!/usr/bin/python3
"""Per-call overhead of the Python package: `python_loop.py [--tokens 1024] [--calls 100]`.

Compiles Switch-Base-8 (test/Examples/specs/switch-base-8.json) once for
--tokens tokens, binds random float32 weights once, then, interleaved for
--rounds rounds: --calls calls from a Python loop (`y, stats = layer(x)`,
allocating y each time, as a model would) and as many calls from a C++ loop
in the extension (BoundLayer.time_calls: the layer's own time). Prints the
compile and bind times, the median per-call time of each with its spread
(min..max of the round medians) and the overhead per call: Python loop
median minus C++ loop median. Run with PYTHONPATH=<build>/python.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

import moe

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    with open(os.path.join(ROOT, "test", "Examples", "specs", "switch-base-8.json")) as f:
        spec = json.load(f)
    e, d, ff = spec["num_experts"], spec["d_model"], spec["d_ff"]
    rng = np.random.default_rng(0)
    weights = {"router": rng.standard_normal((e, d), dtype=np.float32),
               "w_in": rng.standard_normal((e, d, ff), dtype=np.float32) / np.sqrt(d),
               "w_out": rng.standard_normal((e, ff, d), dtype=np.float32) / np.sqrt(ff)}
    x = rng.standard_normal((args.tokens, d), dtype=np.float32)

    start = time.perf_counter()
    layer = moe.compile(spec, tokens=args.tokens, threads=args.threads)
    compiled = time.perf_counter()
    bound = layer.bind_weights(weights)
    bound_at = time.perf_counter()
    y = np.empty_like(x)
    bound.time_calls(x, y, 3)  # warm-up

    py_rounds, cpp_rounds = [], []
    for _ in range(args.rounds):
        times = []
        for _ in range(args.calls):
            t0 = time.perf_counter()
            out, stats = bound(x)
            times.append(time.perf_counter() - t0)
        py_rounds.append(times)
        cpp_rounds.append(bound.time_calls(x, y, args.calls))

    def summary(rounds):
        med = statistics.median([t for r in rounds for t in r])
        per_round = [statistics.median(r) for r in rounds]
        return med, min(per_round) / med - 1, max(per_round) / med - 1

    py_med, py_lo, py_hi = summary(py_rounds)
    cpp_med, cpp_lo, cpp_hi = summary(cpp_rounds)
    print(f"# CPU: {cpu_model()}, {os.cpu_count()} logical CPUs, threads={args.threads or 'all'}")
    print(f"# Switch-Base-8, T={args.tokens}: compiled once in "
          f"{compiled - start:.2f} s{' (from the cache)' if layer.from_cache else ''}, "
          f"weights bound once in {bound_at - compiled:.3f} s")
    print(f"# {args.rounds} interleaved rounds x {args.calls} calls")
    print(f"python loop  median {py_med * 1e3:8.3f} ms/call  spread {py_lo:+.0%}..{py_hi:+.0%}")
    print(f"C++ loop     median {cpp_med * 1e3:8.3f} ms/call  spread {cpp_lo:+.0%}..{cpp_hi:+.0%}")
    print(f"overhead per call: {(py_med - cpp_med) * 1e6:.1f} us "
          f"({(py_med - cpp_med) / cpp_med:+.2%} of the layer's time)")


if __name__ == "__main__":
    sys.exit(main())
