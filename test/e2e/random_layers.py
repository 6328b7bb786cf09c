#!/usr/bin/python3
"""A fuzzer for the compiled layer: random valid layers, compiled and run.

    random_layers.py --moe-run PATH --workdir DIR [--count N | --seconds S] [--seed S]

Each trial draws a layer spec (d_model, d_ff, E, k, activation, normalize_gates, capacity
factor / fixed capacity / min_capacity / dropless, group size, priority; in half the trials
the routing families of spec section 8 too: sigmoid scores, a score bias, expert groups with
max or top2_sum, gate_scale, a shared expert with or without its gate, or expert choice) and
a token count
from numpy.random.default_rng(seed + trial), random float32 weights and tokens, and one of
four input kinds: normal; with a few NaN / +-inf elements in the tokens or a weight;
a whole NaN token; extreme finite magnitudes (1e30) in some tokens. It runs

    moe-run --spec ... --allow-non-finite --runtime-checks [--backend gpu-loops] [--fusion off]

(backend and fusion drawn too), and requires exit status 0 (no crash, no failed runtime
check). For normal inputs without routing near-ties, and for the non-finite kinds, the
results must match the float64 reference of reference.py (non_finite.compare: rows the
reference finds finite within 1e-5, the same elements non-finite elsewhere, integer
statistics exact); extreme magnitudes overflow float32 where float64 does not, so there only
the clean run is required. Prints one line per trial (PASS / FAIL with the spec and the
command to reproduce) and a summary; exits 1 on any failure.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moe_io  # noqa: E402
import non_finite  # noqa: E402
import reference  # noqa: E402
import run_case  # noqa: E402

ACTIVATIONS = ["relu", "gelu", "gelu_tanh", "silu", "geglu", "swiglu"]
KINDS = ["normal", "non_finite", "nan_token", "extreme"]


def draw(rng):
    """A random valid spec and token count."""
    experts = int(rng.integers(1, 9))
    spec = {"d_model": int(rng.choice([4, 8, 16])), "d_ff": int(rng.choice([8, 16, 32])),
            "num_experts": experts, "top_k": int(rng.integers(1, min(experts, 4) + 1)),
            "activation": str(rng.choice(ACTIVATIONS)),
            "normalize_gates": bool(rng.integers(0, 2))}
    groups = int(rng.integers(1, 4))
    group_size = int(rng.integers(1, 13))
    tokens = groups * group_size
    capacity = rng.integers(0, 3)
    if capacity == 1:
        spec["capacity_factor"] = float(rng.choice([0.5, 1.0, 1.25, 2.0]))
        spec["min_capacity"] = int(rng.integers(1, 5))
    elif capacity == 2:
        spec["expert_capacity"] = int(rng.integers(1, 6))
    if capacity and rng.integers(0, 2):
        spec["group_size"] = group_size
        spec["priority"] = str(rng.choice(["position", "batch_prioritized"]))
    if rng.integers(0, 2):
        draw_routing_family(rng, spec, capacity)
    return spec, tokens


def draw_routing_family(rng, spec, capacity):
    """Spec section 8 fields on top of a drawn spec: expert choice (when it has a capacity,
    in a third of the trials), else token choice with sigmoid scores, a bias, expert groups,
    a gate scale; a shared expert either way."""
    experts = spec["num_experts"]
    if capacity and rng.integers(0, 3) == 0:
        spec["routing"] = "experts_choose"
        for name in ("top_k", "normalize_gates", "priority"):
            spec.pop(name, None)
    else:
        if rng.integers(0, 2):
            spec["score_function"] = "sigmoid"
        if rng.integers(0, 2):
            spec["score_bias"] = True
        divisors = [g for g in range(2, experts + 1) if experts % g == 0]
        if divisors and rng.integers(0, 2):
            groups = int(rng.choice(divisors))
            spec["num_groups"] = groups
            spec["topk_groups"] = int(rng.integers(1, groups + 1))
            if experts // groups >= 2 and rng.integers(0, 2):
                spec["group_score"] = "top2_sum"
            spec["top_k"] = min(spec["top_k"], spec["topk_groups"] * (experts // groups))
    if rng.integers(0, 2):
        spec["gate_scale"] = float(rng.choice([0.5, 1.5, 2.5]))
    if rng.integers(0, 2):
        spec["shared_d_ff"] = int(rng.choice([4, 8, 16]))
        if rng.integers(0, 2):
            spec["shared_gate"] = True


def inputs(rng, spec, tokens, kind):
    d, f, e = spec["d_model"], spec["d_ff"], spec["num_experts"]
    values = {"x": rng.standard_normal((tokens, d)),
              "router": rng.normal(0, 1 / math.sqrt(d), (e, d)),
              "w_in": rng.normal(0, 1 / math.sqrt(d), (e, d, f)),
              "w_out": rng.normal(0, 1 / math.sqrt(f), (e, f, d))}
    gated = spec["activation"] in reference.GATED_ACTIVATIONS
    if gated:
        values["w_gate"] = rng.normal(0, 1 / math.sqrt(d), (e, d, f))
    if spec.get("score_bias"):
        values["score_bias"] = rng.normal(0, 0.1, e)
    shared = spec.get("shared_d_ff", 0)
    if shared:
        values["shared_w_in"] = rng.normal(0, 1 / math.sqrt(d), (d, shared))
        if gated:
            values["shared_w_gate"] = rng.normal(0, 1 / math.sqrt(d), (d, shared))
        values["shared_w_out"] = rng.normal(0, 1 / math.sqrt(shared), (shared, d))
    if spec.get("shared_gate"):
        values["shared_gate"] = rng.normal(0, 1 / math.sqrt(d), d)
    values = {k: np.asarray(v, dtype=np.float32) for k, v in values.items()}
    if kind == "non_finite":
        poisonable = ["x", "x", "w_in", "w_out", "router"] + \
            [name for name in reference.EXTRA_WEIGHTS if name in values]
        for _ in range(int(rng.integers(1, 4))):
            name = str(rng.choice(poisonable))
            flat = values[name].reshape(-1)
            flat[int(rng.integers(0, flat.size))] = rng.choice([np.nan, np.inf, -np.inf])
    elif kind == "nan_token":
        values["x"][int(rng.integers(0, tokens))] = np.nan
    elif kind == "extreme":
        rows = rng.integers(0, tokens, size=int(rng.integers(1, 3)))
        values["x"][rows] *= np.float32(1e30)
    return values


def trial(args, index):
    rng = np.random.default_rng(args.seed + index)
    spec, tokens = draw(rng)
    kind = KINDS[int(rng.integers(0, len(KINDS)))]
    backend = "gpu-loops" if rng.integers(0, 4) == 0 else "cpu"
    fusion = "off" if rng.integers(0, 4) == 0 else "on"
    values = inputs(rng, spec, tokens, kind)
    paths, command = non_finite.write_case(
        args.moe_run, os.path.join(args.workdir, f"trial-{index}"), spec, values)
    command += ["--allow-non-finite", "--runtime-checks", "--backend", backend,
                "--fusion", fusion]
    label = f"trial {index} ({kind}, {backend}, fusion {fusion}, T={tokens}, {json.dumps(spec)})"
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return False, f"FAIL {label}: timed out; rerun: {' '.join(command)}"
    if done.returncode != 0:
        return False, (f"FAIL {label}: exit {done.returncode}: {done.stderr.strip()[:300]}; "
                       f"rerun: {' '.join(command)}")
    if kind == "extreme":
        return True, f"PASS {label}: ran"
    with np.errstate(all="ignore"):
        extra = {k: v for k, v in values.items() if k in reference.EXTRA_WEIGHTS}
        details = reference.moe_layer_details(spec, values["x"], values["router"],
                                              values["w_in"], values.get("w_gate"),
                                              values["w_out"], extra or None)
        if kind == "normal" and run_case.near_ties(details, allow_exact=False):
            return True, f"PASS {label}: ran (near-tie: not compared)"
    with open(paths["stats.json"]) as f:
        stats = json.load(f)
    problem = non_finite.compare(moe_io.load_npy(paths["y.npy"]), stats, details)
    if problem:
        return False, f"FAIL {label}: {problem}; rerun: {' '.join(command)}"
    return True, f"PASS {label}: matches the reference"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moe-run", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=0,
                        help="run trials until this much time has passed (overrides --count)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.time()
    failed = index = 0
    while (time.time() - start < args.seconds) if args.seconds else index < args.count:
        ok, line = trial(args, index)
        failed += not ok
        print(line, flush=True)
        index += 1
    print(f"random_layers: {index} trials, {failed} failed, {time.time() - start:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
