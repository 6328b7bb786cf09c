#!/usr/bin/python3
"""One layer output against the float64 reference:
`compare_reference.py SPEC.json WEIGHTS.safetensors X.npy Y.npy [--tol T]`.

The weights must be in our names (router, w_in, [w_gate,] w_out, F32). Prints
`PASS rel_err=...` when max|Y - ref| / max|ref| <= T (default 1e-5), else
`FAIL ...` and exits 1.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moe_io  # noqa: E402
import reference  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("spec")
    parser.add_argument("weights")
    parser.add_argument("x")
    parser.add_argument("y")
    parser.add_argument("--tol", type=float, default=1e-5)
    args = parser.parse_args()
    with open(args.spec) as f:
        spec = json.load(f)
    tensors, _ = moe_io.read_safetensors(args.weights)
    w = {k: np.asarray(v, dtype=np.float64) for k, v in tensors.items()}
    x = np.asarray(moe_io.load_npy(args.x), dtype=np.float64)
    y = np.asarray(moe_io.load_npy(args.y), dtype=np.float64)
    ref, _ = reference.moe_layer(spec, x, w["router"], w["w_in"], w.get("w_gate"),
                                 w["w_out"])
    err = np.max(np.abs(y - ref)) / max(np.max(np.abs(ref)), 1e-30)
    if y.shape != ref.shape or not err <= args.tol:
        print(f"FAIL shape {y.shape} vs {ref.shape}, rel_err={err:.3g}")
        sys.exit(1)
    print(f"PASS rel_err={err:.2e}")


if __name__ == "__main__":
    main()
