#!/usr/bin/python3
"""Spec section 3.7: tokens or weights holding NaN or +-inf.

    non_finite.py --moe-run PATH --workdir DIR [--backend cpu|gpu-loops] [--fusion on|off]
                  [--errors] [--layers L1,L2] [--shards N] [--runtime-checks]

For each layer (capacity-bounded top-1 in groups, batch-prioritized top-2 with a capacity,
dropless top-2 SwiGLU) and each fault (one +inf, one -inf, one NaN, a whole NaN token, a NaN
in a weight), it writes the case and runs moe-run twice:

- without flags (with --errors only): exit status non-zero and one stderr line naming the
  file, the token or weight and the first bad element;
- with --allow-non-finite: exit status 0, and the float64 reference of reference.py (NaN
  ranked below every number) reproduced: rows the reference computes as finite within 1e-5
  relative, the same elements non-finite elsewhere, tokens_per_expert and dropped exact, a
  loss that the reference finds NaN written as null.

Prints one PASS/FAIL line per run; exits 1 when any failed.
"""

import argparse
import json
import math
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moe_io  # noqa: E402
import reference  # noqa: E402

DIMS = {"d_model": 16, "d_ff": 32, "num_experts": 4}
LAYERS = {
    "groups": {**DIMS, "top_k": 1, "activation": "relu", "capacity_factor": 1.0,
               "min_capacity": 1, "group_size": 8},
    "bpr": {**DIMS, "top_k": 2, "activation": "gelu", "normalize_gates": True,
            "expert_capacity": 3, "group_size": 16, "priority": "batch_prioritized"},
    "dropless": {**DIMS, "top_k": 2, "activation": "swiglu", "normalize_gates": True},
}
TOKENS = 32
# (name, what the error names, how the inputs are spoiled)
FAULTS = [
    ("inf", "token 5 holds +inf (column 3)", lambda w: w["x"].__setitem__((5, 3), np.inf)),
    ("neg-inf", "token 9 holds -inf (column 0)",
     lambda w: w["x"].__setitem__((9, 0), -np.inf)),
    ("nan", "token 2 holds NaN (column 7)", lambda w: w["x"].__setitem__((2, 7), np.nan)),
    ("nan-row", "token 17 holds NaN (column 0)",
     lambda w: w["x"].__setitem__(17, np.nan)),
    ("nan-weight", "weight w_out holds NaN at [2, 4, 1]",
     lambda w: w["w_out"].__setitem__((2, 4, 1), np.nan)),
]


def inputs_for(spec, seed):
    rng = np.random.default_rng(seed)
    d, f, e = spec["d_model"], spec["d_ff"], spec["num_experts"]
    values = {
        "x": rng.standard_normal((TOKENS, d)),
        "router": rng.normal(0, 1 / math.sqrt(d), (e, d)),
        "w_in": rng.normal(0, 1 / math.sqrt(d), (e, d, f)),
        "w_out": rng.normal(0, 1 / math.sqrt(f), (e, f, d)),
    }
    if spec["activation"] in reference.GATED_ACTIVATIONS:
        values["w_gate"] = rng.normal(0, 1 / math.sqrt(d), (e, d, f))
    return {k: np.asarray(v, dtype=np.float32) for k, v in values.items()}


def compare(y, stats, ref):
    """What differs between the tool's results and the reference, or None."""
    want = ref["y"]
    if y.shape != want.shape:
        return f"y has shape {list(y.shape)}, expected {list(want.shape)}"
    finite_rows = np.all(np.isfinite(want), axis=1)
    if not np.array_equal(np.isfinite(y[~finite_rows]), np.isfinite(want[~finite_rows])):
        return "non-finite elements differ from the reference"
    if np.any(finite_rows):
        got, exp = y[finite_rows].astype(np.float64), want[finite_rows]
        scale = np.linalg.norm(exp)
        err = np.linalg.norm(got - exp) / scale if scale > 0 else np.abs(got).max()
        if not np.isfinite(err) or err > 1e-5:
            return f"finite rows differ: relative error {err:.2e}"
    ref_stats = ref["stats"]
    for key in ("tokens_per_expert", "dropped", "capacity"):
        if stats.get(key) != ref_stats[key]:
            return f"{key} {stats.get(key)} != reference {ref_stats[key]}"
    for key in ("load_balance_loss", "router_z_loss"):
        value, expected = stats.get(key), ref_stats[key]
        if expected is None:
            # Expert choice has no load-balance loss (spec section 8).
            if value is not None:
                return f"{key} {value}, the reference has none (null)"
        elif math.isnan(expected):
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                return f"{key} {value}, the reference is NaN"
        elif value is None or abs(value - expected) > 1e-5 * max(abs(expected), 1e-30):
            return f"{key} {value} != reference {expected}"
    return None


def write_case(moe_run, case_dir, spec, values):
    """Writes spec.json, w.safetensors (every tensor of `values` but x) and x.npy into
    `case_dir`. Returns their paths with those of y.npy and stats.json, and the moe-run command
    that reads the inputs and writes the outputs."""
    os.makedirs(case_dir, exist_ok=True)
    paths = {k: os.path.join(case_dir, k) for k in
             ("spec.json", "w.safetensors", "x.npy", "y.npy", "stats.json")}
    with open(paths["spec.json"], "w") as out:
        json.dump(spec, out)
    moe_io.write_safetensors(paths["w.safetensors"],
                             {k: v for k, v in values.items() if k != "x"})
    moe_io.save_npy(paths["x.npy"], values["x"])
    command = [moe_run, "--spec", paths["spec.json"], "--weights", paths["w.safetensors"],
               "--input", paths["x.npy"], "--output", paths["y.npy"],
               "--stats", paths["stats.json"]]
    return paths, command


def run(args, layer, fault):
    name = f"{layer}/{fault[0]}"
    spec = LAYERS[layer]
    values = inputs_for(spec, seed=len(layer) * 7 + len(fault[0]))
    fault[2](values)
    paths, command = write_case(args.moe_run, os.path.join(args.workdir, layer, fault[0]),
                                spec, values)
    command += ["--backend", args.backend, "--fusion", args.fusion]
    if args.runtime_checks:
        command.append("--runtime-checks")
    if args.shards > 1:
        command = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np",
                   str(args.shards)] + command + ["--shards", str(args.shards)]
    lines = []
    ok = True
    if args.errors:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        stderr = done.stderr.strip()
        where = paths["x.npy"] if fault[0] != "nan-weight" else paths["w.safetensors"]
        expected = f"{where}: error: {fault[1]}"
        good = (done.returncode != 0 and stderr.count("\n") == 0 and expected in stderr
                and "--allow-non-finite" in stderr)
        ok &= good
        lines.append(f"{'PASS' if good else 'FAIL'} {name} error: "
                     f"{stderr if good else repr(stderr) + f' (status {done.returncode})'}")
    for path in (paths["y.npy"], paths["stats.json"]):
        if os.path.exists(path):
            os.remove(path)
    done = subprocess.run(command + ["--allow-non-finite"], capture_output=True, text=True,
                          timeout=300)
    if done.returncode != 0:
        lines.append(f"FAIL {name} allowed: status {done.returncode}: {done.stderr.strip()}")
        return False, lines
    with np.errstate(invalid="ignore", over="ignore"):
        ref = reference.moe_layer_details(spec, values["x"], values["router"],
                                          values["w_in"], values.get("w_gate"),
                                          values["w_out"])
    with open(paths["stats.json"]) as f:
        stats = json.load(f)
    problem = compare(moe_io.load_npy(paths["y.npy"]), stats, ref)
    ok &= problem is None
    lines.append(f"{'PASS' if problem is None else 'FAIL'} {name} allowed"
                 + (f": {problem}" if problem else f": dropped {stats['dropped']}"))
    return ok, lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moe-run", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--fusion", default="on")
    parser.add_argument("--errors", action="store_true",
                        help="also check the default error of each fault")
    parser.add_argument("--layers", default=",".join(LAYERS))
    parser.add_argument("--runtime-checks", action="store_true",
                        help="compile with moe-run --runtime-checks")
    parser.add_argument("--shards", type=int, default=1,
                        help="expert-parallel ranks (under mpirun)")
    args = parser.parse_args()
    failed = 0
    for layer in args.layers.split(","):
        for fault in FAULTS:
            ok, lines = run(args, layer, fault)
            failed += not ok
            print("\n".join(lines), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
