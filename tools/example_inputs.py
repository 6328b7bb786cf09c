#!/usr/bin/python3
"""Writes random weights (safetensors, our names) and tokens (.npy) for a
layer spec, for the main example: example_inputs.py SPEC.json TOKENS DIR."""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "e2e"))
import moe_io  # noqa: E402


def main():
    spec_path, tokens, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(spec_path) as f:
        spec = json.load(f)
    d, ff, e = spec["d_model"], spec["d_ff"], spec["num_experts"]
    rng = np.random.default_rng(2024)
    tensors = {
        "router": rng.standard_normal((e, d), dtype=np.float32) / np.sqrt(d),
        "w_in": rng.standard_normal((e, d, ff), dtype=np.float32) / np.sqrt(d),
        "w_out": rng.standard_normal((e, ff, d), dtype=np.float32) / np.sqrt(ff),
    }
    if spec.get("activation") in ("geglu", "swiglu"):
        tensors["w_gate"] = rng.standard_normal((e, d, ff), dtype=np.float32) / np.sqrt(d)
    os.makedirs(out, exist_ok=True)
    moe_io.write_safetensors(os.path.join(out, "weights.safetensors"), tensors)
    np.save(os.path.join(out, "x.npy"), rng.standard_normal((tokens, d), dtype=np.float32))


if __name__ == "__main__":
    main()
