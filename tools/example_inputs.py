#!/usr/bin/python3
"""Writes random weights (safetensors, our names) and tokens (.npy) for a
layer spec, for the examples: example_inputs.py SPEC.json TOKENS DIR.

The spec section 8 weights are written when the spec asks for them: the
choice bias `score_bias` [E] and the shared expert (`shared_w_in`,
`shared_w_gate`, `shared_w_out`, `shared_gate`)."""

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
    gated = spec.get("activation") in ("geglu", "swiglu")
    if gated:
        tensors["w_gate"] = rng.standard_normal((e, d, ff), dtype=np.float32) / np.sqrt(d)
    if spec.get("score_bias"):
        tensors["score_bias"] = 0.1 * rng.standard_normal(e, dtype=np.float32)
    shared = spec.get("shared_d_ff", 0)
    if shared:
        tensors["shared_w_in"] = rng.standard_normal((d, shared), dtype=np.float32) / np.sqrt(d)
        if gated:
            tensors["shared_w_gate"] = (rng.standard_normal((d, shared), dtype=np.float32) /
                                        np.sqrt(d))
        tensors["shared_w_out"] = (rng.standard_normal((shared, d), dtype=np.float32) /
                                   np.sqrt(shared))
    if spec.get("shared_gate"):
        tensors["shared_gate"] = rng.standard_normal(d, dtype=np.float32) / np.sqrt(d)
    os.makedirs(out, exist_ok=True)
    moe_io.write_safetensors(os.path.join(out, "weights.safetensors"), tensors)
    np.save(os.path.join(out, "x.npy"), rng.standard_normal((tokens, d), dtype=np.float32))


if __name__ == "__main__":
    main()
