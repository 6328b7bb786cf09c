#!/usr/bin/python3
"""Inputs of the moe-run error tests: `make_inputs.py DIR`.

Writes into DIR (created if missing) one small valid set,

    spec.json           d_model 8, d_ff 16, num_experts 4, top_k 2, relu,
                        capacity_factor 1.0, group_size 4
    x.npy               float32 [8, 8]
    weights.safetensors router [4, 8], w_in [4, 8, 16], w_out [4, 16, 8], F32

and the deliberately bad (or, for the positive checks, differently named) variants

    x_width.npy                        float32 [8, 6] (width != d_model)
    x_f64.npy                          float64 [8, 8]
    x_rank3.npy                        float32 [2, 4, 8]
    x_empty.npy                        float32 [0, 8]
    x_bad.npy                          text, not an npy file
    weights_missing_wout.safetensors   router, w_in only
    weights_bad_shape.safetensors      w_in [4, 8, 15]
    weights_gate_nongated.safetensors  an extra w_gate although the spec is relu
    weights_truncated.safetensors      weights.safetensors cut in the middle of its data
    weights_hf_switch.safetensors      the same layer in Hugging Face Switch names under
                                       'encoder.block.1.layer.1.mlp.' (valid)
    weights_two_layers.safetensors     Switch layers under two prefixes (ambiguous)
    spec_bad.json                      invalid JSON
    spec_group3.json                   group_size 3, which does not divide T = 8
    spec_gated.json                    swiglu (weights.safetensors has no w_gate)

Everything comes from numpy.random.default_rng(SEED), so every run writes the same bytes.
"""

import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # write nothing outside DIR
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import moe_io  # noqa: E402

SEED = 20240611
TOKENS, D_MODEL, D_FF, EXPERTS = 8, 8, 16, 4
SWITCH_PREFIX = "encoder.block.1.layer.1.mlp."
OTHER_SWITCH_PREFIX = "encoder.block.3.layer.1.mlp."

SPEC = {
    "d_model": D_MODEL,
    "d_ff": D_FF,
    "num_experts": EXPERTS,
    "top_k": 2,
    "activation": "relu",
    "capacity_factor": 1.0,
    "group_size": 4,
}


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")


def switch_names(prefix, router, w_in, w_out):
    """Our [E, D], [E, D, F], [E, F, D] weights under Hugging Face Switch names (the
    expert matrices are stored transposed there: wi [F, D], wo [D, F])."""
    tensors = {prefix + "router.classifier.weight": router}
    for i in range(router.shape[0]):
        tensors[f"{prefix}experts.expert_{i}.wi.weight"] = np.ascontiguousarray(w_in[i].T)
        tensors[f"{prefix}experts.expert_{i}.wo.weight"] = np.ascontiguousarray(w_out[i].T)
    return tensors


def main(argv):
    if len(argv) != 2:
        print("usage: make_inputs.py DIR", file=sys.stderr)
        return 2
    out = argv[1]
    os.makedirs(out, exist_ok=True)

    def path(name):
        return os.path.join(out, name)

    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((TOKENS, D_MODEL)).astype(np.float32)
    router = rng.normal(0.0, 1.0 / np.sqrt(D_MODEL), (EXPERTS, D_MODEL)).astype(np.float32)
    w_in = rng.normal(0.0, 1.0 / np.sqrt(D_MODEL), (EXPERTS, D_MODEL, D_FF)).astype(np.float32)
    w_gate = rng.normal(0.0, 1.0 / np.sqrt(D_MODEL),
                        (EXPERTS, D_MODEL, D_FF)).astype(np.float32)
    w_out = rng.normal(0.0, 1.0 / np.sqrt(D_FF), (EXPERTS, D_FF, D_MODEL)).astype(np.float32)

    # The valid set.
    write_json(path("spec.json"), SPEC)
    moe_io.save_npy(path("x.npy"), x)
    ours = {"router": router, "w_in": w_in, "w_out": w_out}
    moe_io.write_safetensors(path("weights.safetensors"), ours)

    # Bad inputs.
    moe_io.save_npy(path("x_width.npy"), x[:, :6])
    np.save(path("x_f64.npy"), x.astype(np.float64), allow_pickle=False)
    moe_io.save_npy(path("x_rank3.npy"), x.reshape(2, 4, D_MODEL))
    moe_io.save_npy(path("x_empty.npy"), np.zeros((0, D_MODEL), dtype=np.float32))
    with open(path("x_bad.npy"), "w") as f:
        f.write("these are not the tokens you are looking for\n")

    # Bad weights.
    moe_io.write_safetensors(path("weights_missing_wout.safetensors"),
                             {"router": router, "w_in": w_in})
    moe_io.write_safetensors(path("weights_bad_shape.safetensors"),
                             {**ours, "w_in": w_in[:, :, :15]})
    moe_io.write_safetensors(path("weights_gate_nongated.safetensors"),
                             {**ours, "w_gate": w_gate})
    with open(path("weights.safetensors"), "rb") as f:
        blob = f.read()
    header_end = 8 + int.from_bytes(blob[:8], "little")
    cut = header_end + (len(blob) - header_end) // 2
    with open(path("weights_truncated.safetensors"), "wb") as f:
        f.write(blob[:cut])

    # Whole-model style files with Hugging Face Switch names.
    moe_io.write_safetensors(path("weights_hf_switch.safetensors"), {
        **switch_names(SWITCH_PREFIX, router, w_in, w_out),
        "shared.weight": rng.standard_normal((16, D_MODEL)).astype(np.float32),
    })
    moe_io.write_safetensors(path("weights_two_layers.safetensors"), {
        **switch_names(SWITCH_PREFIX, router, w_in, w_out),
        **switch_names(OTHER_SWITCH_PREFIX, router[::-1], w_in[::-1], w_out[::-1]),
    })

    # Bad specs.
    with open(path("spec_bad.json"), "w") as f:
        f.write('{\n  "d_model": 8,\n  "d_ff": 16,,\n  "num_experts": 4\n}\n')
    write_json(path("spec_group3.json"), {**SPEC, "group_size": 3})
    write_json(path("spec_gated.json"), {**SPEC, "activation": "swiglu"})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
