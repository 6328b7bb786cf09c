#!/usr/bin/python3
"""End-to-end harness: runs `moe-run` on named cases and checks it against reference.py.

    run_case.py --moe-run PATH --workdir DIR --case NAME|all [--backend cpu] [--timeout S]
                [--act-dtype f32|bf16] [--fusion on|off] [--shards N [--replicas R]]
                [--runtime-checks]
    run_case.py --list

For each case it generates the inputs deterministically, writes DIR/NAME/{spec.json,
weights.safetensors, x.npy}, runs

    moe-run --spec spec.json --weights weights.safetensors --input x.npy --output y.npy
            --stats stats.json [--backend B]

and compares y.npy and stats.json with the float64 reference (spec section 5): relative
Frobenius error of y at most 1e-5 with float32 weights, 2e-2 with bfloat16 weights (a zero
reference output needs an exactly zero output); capacity, tokens_per_expert and dropped exact;
load_balance_loss and router_z_loss to 1e-5 relative (2e-2 with bfloat16 weights). The
reference results are left beside the tool's as y_ref.npy and stats_ref.json.

It prints one line per case, `PASS name: ...` or `FAIL name: <what differed>`, and exits 1
when any case failed (2 on a usage error).

For a GPU machine without a compiler, the cases are prepared on the build machine and run
there with moe-gpu-run:

    run_case.py --prepare-gpu BUILD --workdir DIR --case all [--act-dtype bf16]
    run_case.py --run-prepared --workdir DIR --case all       (on the GPU machine)

--jobs N runs N cases at a time (one process each; the lines keep the case order).
"""

import argparse
import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The repository, for tools/gpu_package.sh.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import moe_io  # noqa: E402
import reference  # noqa: E402

# Routing near-ties. The backends route in float32, the reference in float64. When two
# probabilities that decide routing differ by less than float32 rounding, both answers are
# right (spec section 5) but the comparison would fail. So before a case runs, the reference
# checks every gap that decides something: for each token, the gaps between consecutive
# sorted probabilities among its k chosen experts and the best unchosen one (choice, choice
# rank, top-1 for the load-balance loss), and with batch_prioritized, the gaps between
# consecutive top-1 probabilities inside each group. A gap below NEAR_TIE_REL relative to the
# larger value is a near-tie, and the case is regenerated with seed + 1000, seed + 2000, ...
# (deterministically, so every run uses the same inputs). Gaps that are exactly zero by
# construction (the `ties` case: duplicated router rows and duplicated tokens, equal in float32
# as well) are exact ties that the tie rules of spec section 3 decide, and are allowed there.
# The same loop regenerates a case whose inputs do not show what the case is there to test
# (its `expect` list: drops happen, priority changes the outcome, ...).
NEAR_TIE_REL = 1e-6
RESEED_STEP = 1000
MAX_ATTEMPTS = 20

Y_TOL = {"f32": 1e-5, "bf16": 2e-2}
LOSS_TOL = {"f32": 1e-5, "bf16": 2e-2}


@dataclass(frozen=True)
class Case:
    """One end-to-end case: the layer spec as written to spec.json (defaults left to the
    tool), the token count, the base seed, how the weights are stored and named, how the
    inputs are generated, and what the generated inputs must show."""
    description: str
    spec: dict
    tokens: int
    seed: int
    weights: str = "f32"        # "f32" or "bf16" in the safetensors file
    naming: str = "ours"        # "ours", "hf-switch", "hf-mixtral", "hf-proj" (DeepSeek,
                                # Qwen, OLMoE: gate_proj / up_proj / down_proj)
    inputs: str = "normal"      # "normal", "one_expert", "ties"
    expect: tuple = ()          # "drops", "no_drops", "priority_matters", "one_expert",
                                # "tie_decides", "bias_matters", "groups_matter",
                                # "untaken" (expert choice: a token no expert takes)


def _dims(d_model=16, d_ff=32, num_experts=4):
    return {"d_model": d_model, "d_ff": d_ff, "num_experts": num_experts}


CASES = {
    "tiny": Case(
        "the shape of shared/examples/tiny.json: E=4, k=2, cf 1.0, S=8",
        {**_dims(), "top_k": 2, "activation": "relu", "capacity_factor": 1.0,
         "min_capacity": 1, "group_size": 8},
        tokens=32, seed=1, expect=("drops",)),
    "t1": Case(
        "a single token (T=1), defaults for activation and normalize_gates",
        {**_dims(), "top_k": 2, "capacity_factor": 1.0},
        tokens=1, seed=2, expect=("no_drops",)),
    "e1": Case(
        "one expert (E=1): gate 1, load-balance loss 1, every other field defaulted",
        _dims(num_experts=1),
        tokens=16, seed=3, expect=("no_drops",)),
    "k_eq_e": Case(
        "k = E = 4: every token to every expert, cf 0.5 so later choice ranks drop",
        {**_dims(), "top_k": 4, "capacity_factor": 0.5},
        tokens=16, seed=4, expect=("drops",)),
    "k8_of_32": Case(
        "DeepSeek-like fan-out: E=32, k=8, cf 1.0",
        {**_dims(32, 16, 32), "top_k": 8, "capacity_factor": 1.0},
        tokens=64, seed=5, expect=("drops",)),
    "one_expert": Case(
        "every token's top-1 is expert 0 (huge router logit); C=8 of 32, 24 dropped",
        {**_dims(32, 32, 4), "top_k": 1, "capacity_factor": 1.0},
        tokens=32, seed=6, inputs="one_expert", expect=("one_expert", "drops")),
    "capacity1": Case(
        "expert_capacity 1 with two groups of 8, k=2",
        {**_dims(), "top_k": 2, "expert_capacity": 1, "group_size": 8},
        tokens=16, seed=7, expect=("drops",)),
    "groups": Case(
        "four groups of 8 (S < T), k=1, cf 1.0 -> C=2 per group, explicit position priority",
        {**_dims(), "top_k": 1, "capacity_factor": 1.0, "group_size": 8,
         "priority": "position"},
        tokens=32, seed=8, expect=("drops",)),
    "bpr": Case(
        "batch_prioritized, one group, k=2, cf 0.75: drops decided by top-1 probability",
        {**_dims(), "top_k": 2, "capacity_factor": 0.75, "priority": "batch_prioritized"},
        tokens=32, seed=9, expect=("drops", "priority_matters")),
    "bpr_groups": Case(
        "batch_prioritized inside four groups of 16, k=2, cf 1.0",
        {**_dims(), "top_k": 2, "capacity_factor": 1.0, "group_size": 16,
         "priority": "batch_prioritized"},
        tokens=64, seed=10, expect=("drops", "priority_matters")),
    "bpr_chunks": Case(
        "batch_prioritized in two groups of 300, k=2, cf 0.9: on the GPU the ranking positions "
        "of a group are counted in chunks of 128 (3 per group, the last partial)",
        {**_dims(), "top_k": 2, "capacity_factor": 0.9, "group_size": 300,
         "priority": "batch_prioritized"},
        tokens=600, seed=28, expect=("drops", "priority_matters")),
    "fixed_capacity": Case(
        "expert_capacity 3 overriding capacity_factor 4.0",
        {**_dims(), "top_k": 2, "expert_capacity": 3, "capacity_factor": 4.0},
        tokens=16, seed=11, expect=("drops",)),
    "dropless": Case(
        "capacity_factor null (dropless) with groups of 16: capacity null, nothing dropped",
        {**_dims(), "top_k": 2, "capacity_factor": None, "group_size": 16},
        tokens=64, seed=12, expect=("no_drops",)),
    "dropless_chunks": Case(
        "dropless with ~150 rows per expert: packed rows run in chunks of 128, 64, ... 8",
        {**_dims(), "top_k": 2, "capacity_factor": None},
        tokens=300, seed=27, expect=("no_drops",)),
    "min_capacity": Case(
        "cf 0.1 gives ceil(0.8) = 1, min_capacity 3 raises C to 3",
        {**_dims(), "top_k": 1, "capacity_factor": 0.1, "min_capacity": 3},
        tokens=32, seed=13, expect=("drops",)),
    "act_relu": Case(
        "relu experts, k=2, cf 1.25",
        {**_dims(), "top_k": 2, "activation": "relu", "capacity_factor": 1.25},
        tokens=32, seed=14),
    "act_gelu": Case(
        "exact (erf) gelu experts, k=2, cf 1.25",
        {**_dims(), "top_k": 2, "activation": "gelu", "capacity_factor": 1.25},
        tokens=32, seed=15),
    "act_gelu_tanh": Case(
        "tanh-approximated gelu experts, k=2, cf 1.25",
        {**_dims(), "top_k": 2, "activation": "gelu_tanh", "capacity_factor": 1.25},
        tokens=32, seed=16),
    "act_silu": Case(
        "silu experts, k=2, cf 1.25",
        {**_dims(), "top_k": 2, "activation": "silu", "capacity_factor": 1.25},
        tokens=32, seed=17),
    "act_geglu": Case(
        "geglu experts: gelu_tanh(x.w_gate) * (x.w_in), k=2, cf 1.25",
        {**_dims(), "top_k": 2, "activation": "geglu", "capacity_factor": 1.25},
        tokens=32, seed=18),
    "act_swiglu": Case(
        "swiglu experts: silu(x.w_gate) * (x.w_in), k=2, cf 1.25",
        {**_dims(), "top_k": 2, "activation": "swiglu", "capacity_factor": 1.25},
        tokens=32, seed=19),
    "raw_gates_top2": Case(
        "normalize_gates false with k=2: gates are the raw probabilities",
        {**_dims(), "top_k": 2, "normalize_gates": False, "capacity_factor": 1.25},
        tokens=32, seed=20),
    "normalize_top1": Case(
        "normalize_gates true with k=1: every gate is 1.0",
        {**_dims(), "top_k": 1, "normalize_gates": True, "capacity_factor": 1.25},
        tokens=32, seed=21),
    "bf16_weights": Case(
        "every weight stored as BF16 (router included), swiglu, k=2, cf 1.0",
        {**_dims(32, 64, 4), "top_k": 2, "activation": "swiglu", "capacity_factor": 1.0},
        tokens=32, seed=22, weights="bf16"),
    "bf16_mma_dropless": Case(
        "BF16 weights in the shapes of the GPU tensor-core kernel (K a multiple of 32, N of 64, "
        "experts of more than one 64-row tile), dropless, swiglu, k=2",
        {**_dims(64, 128, 4), "top_k": 2, "activation": "swiglu", "capacity_factor": None},
        tokens=160, seed=60, weights="bf16"),
    "bf16_mma_large": Case(
        "BF16 weights, tensor-core shapes, experts of about 300 rows: the GPU kernels take "
        "128-row tiles (two warpgroups), more than one per expert and the last partly filled; "
        "dropless, swiglu, k=2",
        {**_dims(64, 128, 4), "top_k": 2, "activation": "swiglu", "capacity_factor": None},
        tokens=600, seed=62, weights="bf16"),
    "bf16_mma_gelu": Case(
        "BF16 weights, tensor-core shapes, ungated gelu, k=1 of 8, capacity 1.25 with drops",
        {**_dims(64, 64, 8), "top_k": 1, "activation": "gelu", "capacity_factor": 1.25},
        tokens=64, seed=61, weights="bf16"),
    "bf16_mma_wide": Case(
        "BF16 weights, tensor-core shapes with N a multiple of 128 and one weight (ungated "
        "gelu): the GPU kernels take 128-column tiles in both projections, the down "
        "projection's with the scatter-add; k=2 of 4, dropless",
        {**_dims(128, 128, 4), "top_k": 2, "activation": "gelu", "capacity_factor": None},
        tokens=200, seed=63, weights="bf16"),
    "hf_switch": Case(
        "Hugging Face Switch names, k=1, expert_capacity 2, groups of 8 (one sequence)",
        {**_dims(16, 32, 8), "top_k": 1, "activation": "relu", "expert_capacity": 2,
         "group_size": 8},
        tokens=16, seed=23, naming="hf-switch", expect=("drops",)),
    "hf_mixtral": Case(
        "Hugging Face Mixtral names, swiglu, k=2 normalized, dropless",
        {**_dims(16, 32, 8), "top_k": 2, "activation": "swiglu", "normalize_gates": True,
         "capacity_factor": None},
        tokens=16, seed=24, naming="hf-mixtral", expect=("no_drops",)),
    "medium": Case(
        "T=256, D=64, F=128, E=8, k=2, gelu, cf 1.25, groups of 64",
        {**_dims(64, 128, 8), "top_k": 2, "activation": "gelu", "capacity_factor": 1.25,
         "group_size": 64},
        tokens=256, seed=25),
    "ties": Case(
        "exact ties: router rows 0=1 and 2=3, tokens repeated 5 times, a zero token; "
        "batch_prioritized, expert_capacity 3",
        {**_dims(), "top_k": 2, "expert_capacity": 3, "priority": "batch_prioritized"},
        tokens=16, seed=26, inputs="ties", expect=("drops", "tie_decides")),
    # Spec section 8: the routing families of current models.
    "deepseek_v3": Case(
        "DeepSeek-V3 routing: sigmoid + score_bias (choice only), 4 groups of 2 with "
        "top2_sum, 2 kept, k=2 normalized, gate_scale 2.5, shared swiglu expert, dropless",
        {**_dims(16, 24, 8), "top_k": 2, "activation": "swiglu", "score_function": "sigmoid",
         "score_bias": True, "num_groups": 4, "topk_groups": 2, "group_score": "top2_sum",
         "normalize_gates": True, "gate_scale": 2.5, "shared_d_ff": 40,
         "capacity_factor": None},
        tokens=32, seed=40, expect=("bias_matters", "groups_matter")),
    "deepseek_v2_capacity": Case(
        "DeepSeek-V2 group_limited_greedy (softmax, max, 2 of 4 groups), k=3 raw gates, "
        "gate_scale 1.5, shared relu expert, cf 1.0 with batch_prioritized",
        {**_dims(16, 24, 8), "top_k": 3, "activation": "relu", "num_groups": 4,
         "topk_groups": 2, "group_score": "max", "normalize_gates": False, "gate_scale": 1.5,
         "shared_d_ff": 32, "capacity_factor": 1.0, "priority": "batch_prioritized",
         "group_size": 16},
        tokens=32, seed=41, expect=("drops", "groups_matter")),
    "sigmoid_bias_bpr": Case(
        "sigmoid + bias with capacity and batch_prioritized: the ranking reads the unbiased "
        "top-1 score; load-balance P_e from normalized sigmoid scores",
        {**_dims(), "top_k": 2, "score_function": "sigmoid", "score_bias": True,
         "capacity_factor": 0.75, "priority": "batch_prioritized"},
        tokens=32, seed=42, expect=("drops", "bias_matters", "priority_matters")),
    "qwen2_shared_gate": Case(
        "Qwen2-MoE: softmax top-4 of 8 raw, shared swiglu expert scaled by "
        "sigmoid(x . shared_gate), Hugging Face gate_proj/up_proj/down_proj names",
        {**_dims(16, 24, 8), "top_k": 4, "activation": "swiglu", "normalize_gates": False,
         "shared_d_ff": 48, "shared_gate": True, "capacity_factor": None},
        tokens=16, seed=43, naming="hf-proj", expect=("no_drops",)),
    "hf_deepseek": Case(
        "DeepSeek names (gate.e_score_correction_bias, shared_experts.*), sigmoid, bias, "
        "8 groups of 1 with max, 4 kept",
        {**_dims(16, 24, 8), "top_k": 2, "activation": "swiglu", "score_function": "sigmoid",
         "score_bias": True, "num_groups": 8, "topk_groups": 4, "normalize_gates": True,
         "gate_scale": 2.0, "shared_d_ff": 24, "capacity_factor": None},
        tokens=16, seed=44, naming="hf-proj", expect=("bias_matters",)),
    "expert_choice": Case(
        "expert choice: each of 8 experts takes its C = 4 best tokens of each group of 16 "
        "(cf 2.0), gelu_tanh; some tokens are taken by no expert",
        {**_dims(16, 32, 8), "routing": "experts_choose", "activation": "gelu_tanh",
         "capacity_factor": 2.0, "group_size": 16},
        tokens=32, seed=45, expect=("untaken",)),
    "expert_choice_ties": Case(
        "expert choice with exact ties: experts 0=1 and 2=3 take the same tokens, repeated "
        "tokens tie (the lower index wins), expert_capacity 3",
        {**_dims(), "routing": "experts_choose", "expert_capacity": 3},
        tokens=16, seed=46, inputs="ties", expect=("tie_decides", "untaken")),
    "expert_choice_shared": Case(
        "expert choice with gate_scale 2 and a shared swiglu expert, min_capacity 3 "
        "(cf 0.5 gives 2)",
        {**_dims(16, 24, 4), "routing": "experts_choose", "activation": "swiglu",
         "capacity_factor": 0.5, "min_capacity": 3, "gate_scale": 2.0, "shared_d_ff": 16},
        tokens=16, seed=47, expect=("untaken",)),
    "deepseek_v3_routing": Case(
        "deepseek-v3.json's routing at full width (E=256, k=8, 8 groups of 32, top2_sum, "
        "4 kept, sigmoid + bias, gate_scale 2.5, shared expert) on narrow experts",
        {**_dims(32, 16, 256), "top_k": 8, "activation": "swiglu", "score_function": "sigmoid",
         "score_bias": True, "num_groups": 8, "topk_groups": 4, "group_score": "top2_sum",
         "normalize_gates": True, "gate_scale": 2.5, "shared_d_ff": 16,
         "capacity_factor": None},
        tokens=32, seed=49, expect=("bias_matters", "groups_matter")),
    "deepseek_bf16": Case(
        "the DeepSeek-V3 routing with every weight stored as BF16 (score_bias too)",
        {**_dims(32, 32, 8), "top_k": 2, "activation": "swiglu", "score_function": "sigmoid",
         "score_bias": True, "num_groups": 4, "topk_groups": 2, "group_score": "top2_sum",
         "normalize_gates": True, "gate_scale": 2.5, "shared_d_ff": 32,
         "capacity_factor": None},
        tokens=32, seed=48, weights="bf16"),
}


# ---------------------------------------------------------------------------------------------
# Inputs.
# ---------------------------------------------------------------------------------------------

def generate_inputs(case, seed):
    """Float32 inputs for `case` from numpy.random.default_rng(seed): x [T, D] ~ N(0, 1);
    router ~ N(0, 1/sqrt(D)) so logits are O(1); w_in, w_gate ~ N(0, 1/sqrt(D)); w_out ~
    N(0, 1/sqrt(F)). Weights stored as BF16 are rounded here, so the reference sees exactly
    the values in the file. Returns a dict with x, router, w_in, w_gate (None unless gated),
    w_out and copies (lists of token indices holding the same row, for the ties case)."""
    spec = reference.apply_defaults(case.spec)
    d_model, d_ff, num_experts = spec["d_model"], spec["d_ff"], spec["num_experts"]
    gated = spec["activation"] in reference.GATED_ACTIVATIONS
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((case.tokens, d_model))
    router = rng.normal(0.0, 1.0 / math.sqrt(d_model), (num_experts, d_model))
    w_in = rng.normal(0.0, 1.0 / math.sqrt(d_model), (num_experts, d_model, d_ff))
    w_gate = rng.normal(0.0, 1.0 / math.sqrt(d_model), (num_experts, d_model, d_ff))
    w_out = rng.normal(0.0, 1.0 / math.sqrt(d_ff), (num_experts, d_ff, d_model))
    copies = []

    if case.inputs == "one_expert":
        # Give every token a common component and point expert 0's router row along it:
        # expert 0's logit is about 30 for every token, the others O(1).
        shift = rng.standard_normal(d_model)
        x = x + shift
        mean_token = x.mean(axis=0)
        router[0] = 30.0 * mean_token / float(mean_token @ mean_token)
    elif case.inputs == "ties":
        # Expert pairs with equal router rows tie on every token (the lower index wins);
        # three base tokens repeated five times tie in batch_prioritized order (group order
        # wins); token 0 is zero, so its probabilities are all 1/E.
        if num_experts != 4 or case.tokens != 16:
            raise ValueError("the ties generator is written for E=4 and T=16")
        router[1] = router[0]
        router[3] = router[2]
        base = x[:3].copy()
        owner = rng.permutation(np.repeat(np.arange(3), 5))
        x = np.zeros((case.tokens, d_model))
        x[1:] = base[owner]
        copies = [[1 + int(i) for i in np.nonzero(owner == b)[0]] for b in range(3)]
    elif case.inputs != "normal":
        raise ValueError(f"unknown input generator '{case.inputs}'")

    def stored(values):
        values = np.asarray(values, dtype=np.float32)
        return moe_io.round_to_bf16(values) if case.weights == "bf16" else values

    # Section 8 weights, drawn after the others so that earlier cases keep their inputs:
    # a choice bias of the size of the score differences (sigmoid scores sit near 1/2),
    # and a shared expert like the routed ones.
    extra = {}
    if spec["score_bias"]:
        extra["score_bias"] = stored(rng.normal(0.0, 0.1, num_experts))
    shared = spec["shared_d_ff"]
    if shared:
        extra["shared_w_in"] = stored(rng.normal(0.0, 1.0 / math.sqrt(d_model),
                                                 (d_model, shared)))
        if gated:
            extra["shared_w_gate"] = stored(rng.normal(0.0, 1.0 / math.sqrt(d_model),
                                                       (d_model, shared)))
        extra["shared_w_out"] = stored(rng.normal(0.0, 1.0 / math.sqrt(shared),
                                                  (shared, d_model)))
    if spec["shared_gate"]:
        extra["shared_gate"] = stored(rng.normal(0.0, 1.0 / math.sqrt(d_model), d_model))

    return {"x": np.asarray(x, dtype=np.float32), "router": stored(router),
            "w_in": stored(w_in), "w_gate": stored(w_gate) if gated else None,
            "w_out": stored(w_out), "extra": extra, "copies": copies}


def named_weights(naming, inputs):
    """The weight tensors under the names `naming` uses (Hugging Face layouts transposed)."""
    router, w_in, w_gate, w_out = (inputs[k] for k in ("router", "w_in", "w_gate", "w_out"))
    extra = inputs.get("extra", {})
    if naming == "ours":
        tensors = {"router": router, "w_in": w_in, "w_out": w_out, **extra}
        if w_gate is not None:
            tensors["w_gate"] = w_gate
        return tensors
    if naming == "hf-proj":
        # DeepSeek / Qwen / OLMoE: [out, in] projections; DeepSeek's shared expert is
        # `shared_experts.`, Qwen2's `shared_expert.` with a [1, D] `shared_expert_gate`.
        if w_gate is None:
            raise ValueError("gate_proj/up_proj/down_proj experts are gated (swiglu)")
        tensors = {"gate.weight": router}
        for i in range(router.shape[0]):
            tensors[f"experts.{i}.gate_proj.weight"] = w_gate[i].T
            tensors[f"experts.{i}.up_proj.weight"] = w_in[i].T
            tensors[f"experts.{i}.down_proj.weight"] = w_out[i].T
        if "score_bias" in extra:
            tensors["gate.e_score_correction_bias"] = extra["score_bias"]
        if "shared_w_in" in extra:
            shared = "shared_expert." if "shared_gate" in extra else "shared_experts."
            tensors[shared + "gate_proj.weight"] = extra["shared_w_gate"].T
            tensors[shared + "up_proj.weight"] = extra["shared_w_in"].T
            tensors[shared + "down_proj.weight"] = extra["shared_w_out"].T
        if "shared_gate" in extra:
            tensors["shared_expert_gate.weight"] = extra["shared_gate"][None, :]
        return tensors
    if extra:
        raise ValueError(f"the {naming} layout has no section 8 weights")
    if naming == "hf-switch":
        if w_gate is not None:
            raise ValueError("Switch checkpoints have no gated experts")
        tensors = {"router.classifier.weight": router}
        for i in range(router.shape[0]):
            tensors[f"experts.expert_{i}.wi.weight"] = w_in[i].T
            tensors[f"experts.expert_{i}.wo.weight"] = w_out[i].T
        return tensors
    if naming == "hf-mixtral":
        if w_gate is None:
            raise ValueError("Mixtral checkpoints have gated (swiglu) experts")
        tensors = {"gate.weight": router}
        for i in range(router.shape[0]):
            tensors[f"experts.{i}.w1.weight"] = w_gate[i].T
            tensors[f"experts.{i}.w3.weight"] = w_in[i].T
            tensors[f"experts.{i}.w2.weight"] = w_out[i].T
        return tensors
    raise ValueError(f"unknown weight naming '{naming}'")


def run_reference(spec, inputs):
    return reference.moe_layer_details(spec, inputs["x"], inputs["router"], inputs["w_in"],
                                       inputs["w_gate"], inputs["w_out"],
                                       inputs.get("extra") or None)


def _gap_problem(high, low, allow_exact):
    """A near-tie between two scores high >= low (relative to the larger magnitude:
    choice scores with a bias can be negative), or None."""
    gap = high - low
    if gap == 0.0 and allow_exact:
        return None
    scale = max(abs(high), abs(low))
    if gap < NEAR_TIE_REL * scale:
        return f"{gap / scale if scale else 0.0:.1e} relative"
    return None


def near_ties(details, allow_exact):
    """Every routing-relevant score gap below NEAR_TIE_REL (see the comment at the top)."""
    spec, p = details["spec"], details["p"]
    num_tokens, num_experts = p.shape
    problems = []
    size = details["group_size"]
    if spec["routing"] == "experts_choose":
        # Which tokens an expert takes: the gap at its capacity cut in each group.
        capacity = details["capacity"]
        for start in range(0, num_tokens, size):
            for e in range(num_experts):
                column = sorted(p[start:start + size, e], reverse=True)
                if capacity < len(column):
                    gap = _gap_problem(column[capacity - 1], column[capacity], allow_exact)
                    if gap:
                        problems.append(f"group at token {start}, expert {e}: cut: {gap}")
        return problems
    # The choice reads the masked choice scores (the scores themselves without section 8).
    choice_scores = details.get("masked_choice_scores", p)
    for t in range(num_tokens):
        ranked = sorted(choice_scores[t], reverse=True)
        for i in range(min(spec["top_k"], num_experts - 1)):
            if ranked[i + 1] == -math.inf:
                break
            gap = _gap_problem(ranked[i], ranked[i + 1], allow_exact)
            if gap:
                problems.append(f"token {t}: scores ranked {i + 1} and {i + 2}: {gap}")
        if spec["topk_groups"] < spec["num_groups"]:
            groups = sorted(details["group_scores"][t], reverse=True)
            cut = spec["topk_groups"]
            gap = _gap_problem(groups[cut - 1], groups[cut], allow_exact)
            if gap:
                problems.append(f"token {t}: group scores at the cut: {gap}")
    if spec["priority"] == "batch_prioritized":
        for start in range(0, num_tokens, size):
            top1 = sorted(details["top1_prob"][start:start + size], reverse=True)
            for high, low in zip(top1, top1[1:]):
                gap = _gap_problem(high, low, allow_exact)
                if gap:
                    problems.append(f"group at token {start}: top-1 order: {gap}")
    return problems


def unmet_expectations(case, inputs, details):
    """The entries of case.expect that these inputs do not show."""
    stats = details["stats"]
    unmet = []
    for want in case.expect:
        if want == "drops":
            ok = stats["dropped"] > 0
        elif want == "no_drops":
            ok = stats["dropped"] == 0
        elif want == "one_expert":
            ok = bool(np.all(details["choice"][:, 0] == 0))
        elif want == "priority_matters":
            other = "position" if details["spec"]["priority"] != "position" else \
                "batch_prioritized"
            swapped = run_reference({**case.spec, "priority": other}, inputs)
            ok = not np.array_equal(swapped["kept"], details["kept"])
        elif want == "tie_decides":
            kept = details["kept"]
            ok = any(len({bool(kept[t, j]) for t in group}) > 1
                     for group in inputs["copies"] for j in range(kept.shape[1]))
        elif want == "bias_matters":
            unbiased = run_reference({**case.spec, "score_bias": False}, inputs)
            ok = not np.array_equal(unbiased["choice"], details["choice"])
        elif want == "groups_matter":
            ungrouped = run_reference({**case.spec, "topk_groups": details["spec"]["num_groups"]},
                                      inputs)
            ok = not np.array_equal(ungrouped["choice"], details["choice"])
        elif want == "untaken":
            ok = stats["dropped"] > 0
        else:
            raise ValueError(f"unknown expectation '{want}'")
        if not ok:
            unmet.append(want)
    return unmet


def prepare(case, act_dtype="f32"):
    """Generate the inputs of `case`, reseeding past near-ties and unmet expectations.
    With bfloat16 activations the tokens are rounded to bfloat16 first, so that the
    reference sees exactly what the layer computes from. Returns (seed, inputs,
    reference details)."""
    seed = case.seed
    reasons = []
    for _ in range(MAX_ATTEMPTS):
        inputs = generate_inputs(case, seed)
        if act_dtype == "bf16":
            inputs["x"] = moe_io.round_to_bf16(inputs["x"])
        details = run_reference(case.spec, inputs)
        problems = near_ties(details, allow_exact=case.inputs == "ties")
        problems += [f"expected {want}" for want in unmet_expectations(case, inputs, details)]
        if not problems:
            return seed, inputs, details
        reasons.append(f"seed {seed}: {problems[0]}")
        seed += RESEED_STEP
    raise RuntimeError("no usable inputs after " + str(MAX_ATTEMPTS) + " seeds; " +
                       "; ".join(reasons[:3]))


# ---------------------------------------------------------------------------------------------
# Running the tool and comparing.
# ---------------------------------------------------------------------------------------------

def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def compare_outputs(case, y, stats, ref, act_dtype="f32"):
    """Return (problems, rel_err): everything in y / stats that breaks spec section 5
    (bfloat16 tolerances when the weights or the activations are bfloat16)."""
    precision = "bf16" if "bf16" in (case.weights, act_dtype) else "f32"
    problems = []
    ref_y, ref_stats = ref["y"], ref["stats"]
    rel_err = float("nan")
    if y.dtype != np.float32:
        problems.append(f"y dtype {y.dtype}, expected float32")
    if y.shape != ref_y.shape:
        problems.append(f"y shape {list(y.shape)}, expected {list(ref_y.shape)}")
    elif not np.all(np.isfinite(y)):
        problems.append(f"y has {int(np.sum(~np.isfinite(y)))} non-finite values")
    else:
        y64 = y.astype(np.float64)
        ref_norm = float(np.linalg.norm(ref_y))
        err_norm = float(np.linalg.norm(y64 - ref_y))
        if ref_norm == 0.0:
            rel_err = 0.0 if float(np.linalg.norm(y64)) == 0.0 else float("inf")
            if rel_err != 0.0:
                problems.append("y is not zero although the reference output is")
        else:
            rel_err = err_norm / ref_norm
            if not rel_err <= Y_TOL[precision]:
                worst = int(np.argmax(np.linalg.norm(y64 - ref_y, axis=1)))
                problems.append(f"rel_err {rel_err:.3e} > {Y_TOL[precision]:g} "
                                f"(worst token {worst})")

    if not isinstance(stats, dict):
        problems.append("stats is not a JSON object")
        return problems, rel_err
    for key in ("capacity", "tokens_per_expert", "dropped", "load_balance_loss",
                "router_z_loss"):
        if key not in stats:
            problems.append(f"stats lacks '{key}'")
    capacity = stats.get("capacity", "absent")
    if "capacity" in stats and not (capacity == ref_stats["capacity"] and
                                    (capacity is None or _is_int(capacity))):
        problems.append(f"capacity {json.dumps(capacity)} != {json.dumps(ref_stats['capacity'])}")
    tokens = stats.get("tokens_per_expert")
    if "tokens_per_expert" in stats and not (
            isinstance(tokens, list) and all(_is_int(v) for v in tokens) and
            tokens == ref_stats["tokens_per_expert"]):
        problems.append(f"tokens_per_expert {json.dumps(tokens)} != "
                        f"{ref_stats['tokens_per_expert']}")
    dropped = stats.get("dropped")
    if "dropped" in stats and not (_is_int(dropped) and dropped == ref_stats["dropped"]):
        problems.append(f"dropped {json.dumps(dropped)} != {ref_stats['dropped']}")
    for key in ("load_balance_loss", "router_z_loss"):
        if key not in stats:
            continue
        value, want = stats[key], ref_stats[key]
        tol = LOSS_TOL[precision]
        if want is None:
            # Expert choice has no load-balance loss (spec section 8): null.
            if value is not None:
                problems.append(f"{key} {json.dumps(value)} != null")
            continue
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and
                abs(value - want) <= tol * abs(want)):
            problems.append(f"{key} {json.dumps(value)} != {want:.9g} (rel tol {tol:g})")
    return problems, rel_err


def row_traffic(choice, num_experts, shards, d_model, element_bytes=4, replicas=1):
    """Bytes each rank sends (= receives) in the variable-size row exchange of a
    dropless layer: rank r's tokens are the r-th contiguous slice of shards*replicas,
    it holds expert block r mod shards, and exchanges within its replica's ranks; a
    (token, choice) assignment whose expert lives on another rank travels there and
    back, so both ends send its row once."""
    tokens = choice.shape[0]
    world = shards * replicas
    token_rank = np.arange(tokens)[:, None] // (tokens // world)
    owner = (token_rank // shards) * shards + choice // (num_experts // shards)
    away = token_rank != owner
    rows = [int(np.sum(away & (token_rank == r))) + int(np.sum(away & (owner == r)))
            for r in range(world)]
    return [n * d_model * element_bytes for n in rows]


def case_paths(case_dir):
    return {key: os.path.join(case_dir, file) for key, file in (
        ("spec", "spec.json"), ("weights", "weights.safetensors"), ("x", "x.npy"),
        ("y", "y.npy"), ("stats", "stats.json"), ("y_ref", "y_ref.npy"),
        ("stats_ref", "stats_ref.json"))}


def write_case(name, case, workdir, act_dtype):
    """Generate the inputs of a case and write them with the reference results to
    DIR/NAME/; returns (seed, reference details, paths). Raises RuntimeError or
    ValueError when no usable inputs are found."""
    seed, inputs, ref = prepare(case, act_dtype)
    case_dir = os.path.join(workdir, name)
    os.makedirs(case_dir, exist_ok=True)
    paths = case_paths(case_dir)
    with open(paths["spec"], "w") as f:
        json.dump(case.spec, f, indent=2)
        f.write("\n")
    moe_io.write_safetensors(paths["weights"], named_weights(case.naming, inputs),
                             dtype="BF16" if case.weights == "bf16" else "F32")
    moe_io.save_npy(paths["x"], inputs["x"])
    np.save(paths["y_ref"], ref["y"])
    with open(paths["stats_ref"], "w") as f:
        json.dump(ref["stats"], f, indent=2)
        f.write("\n")
    for stale in (paths["y"], paths["stats"]):
        if os.path.exists(stale):
            os.remove(stale)
    return seed, ref, paths


def prepare_gpu(name, case, workdir, act_dtype, build):
    """Write a case and compile it for the GPU with tools/gpu_package.sh into
    DIR/NAME/pkg (without the runner, which goes once to DIR/moe-gpu-run), so that
    --run-prepared can check it on a GPU machine that has no compiler."""
    try:
        seed, _, paths = write_case(name, case, workdir, act_dtype)
    except (RuntimeError, ValueError) as err:
        return False, f"FAIL {name}: harness could not generate inputs: {err}"
    command = [os.path.join(ROOT, "tools", "gpu_package.sh"), "--spec", paths["spec"],
               "--tokens", str(case.tokens), "--act-dtype", act_dtype,
               "--weight-dtype", "bf16" if case.weights == "bf16" else "f32",
               "--no-runner", "-o", os.path.join(workdir, name, "pkg")]
    result = subprocess.run(command, capture_output=True, text=True,
                            env=dict(os.environ, MOE_BUILD_DIR=build))
    if result.returncode != 0:
        return False, f"FAIL {name}: gpu_package.sh: {result.stderr.strip()}"
    with open(os.path.join(workdir, name, "case.json"), "w") as f:
        json.dump({"name": name, "seed": seed, "act_dtype": act_dtype}, f)
    return True, f"PREPARED {name}: seed={seed}"


def run_prepared(name, case, workdir, timeout, cuda_graph=False):
    """Run a case prepared by prepare_gpu with DIR/moe-gpu-run and check it
    (with `cuda_graph`, the call replayed from a CUDA graph)."""
    case_dir = os.path.join(workdir, name)
    paths = case_paths(case_dir)
    try:
        with open(os.path.join(case_dir, "case.json")) as f:
            act_dtype = json.load(f)["act_dtype"]
        ref = {"y": np.load(paths["y_ref"])}
        with open(paths["stats_ref"]) as f:
            ref["stats"] = json.load(f)
    except (OSError, ValueError, KeyError) as err:
        return False, f"FAIL {name}: not prepared ({err})"
    package = os.path.join(case_dir, "pkg")
    command = [os.path.join(workdir, "moe-gpu-run"),
               "--artifact", os.path.join(package, "layer.cuda.json"),
               "--host", os.path.join(package, "layer.host.so"),
               "--weights", paths["weights"], "--input", paths["x"],
               "--output", paths["y"], "--stats", paths["stats"]]
    if cuda_graph:
        command.append("--cuda-graph")
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"FAIL {name}: moe-gpu-run ran past {timeout} s"
    if result.returncode != 0:
        return False, f"FAIL {name}: moe-gpu-run exited {result.returncode}: " + \
            (result.stderr.strip().splitlines() or ["(no message)"])[0]
    y = moe_io.load_npy(paths["y"])
    with open(paths["stats"]) as f:
        stats = json.load(f)
    problems, rel_err = compare_outputs(case, y, stats, ref, act_dtype)
    if problems:
        return False, f"FAIL {name}: " + "; ".join(problems)
    return True, f"PASS {name}: rel_err={rel_err:.2e} dropped={ref['stats']['dropped']}"


def run_one(name, case, moe_run, workdir, backend, timeout, shards=1, act_dtype="f32",
            replicas=1, fusion=None, runtime_checks=False, gpu_chip=None):
    """Run one case; return (passed, summary line). With shards > 1 (or replicas > 1) the
    tool runs under mpirun with --shards (and --replicas), and its output must also match
    the unsharded run's to 1e-6 relative, with identical statistics."""
    world = shards * replicas
    if world > 1:
        experts = case.spec["num_experts"]
        if case.tokens % world or experts % shards:
            # Spec §6: T (and E) not divisible by N is an error, tested apart.
            return True, (f"SKIP {name}: T={case.tokens}, E={experts} do not both divide "
                          f"over {shards} ranks x {replicas} replicas")
        group = case.spec.get("group_size") or case.tokens
        if replicas > 1 and (case.tokens // replicas) % group:
            # Routing groups may not span replicas (an error, tested apart).
            return True, (f"SKIP {name}: groups of {group} tokens span replicas of "
                          f"{case.tokens // replicas}")
    try:
        seed, ref, paths = write_case(name, case, workdir, act_dtype)
    except (RuntimeError, ValueError) as err:
        return False, f"FAIL {name}: harness could not generate inputs: {err}"
    case_dir = os.path.dirname(paths["spec"])

    def run_tool(ranks, y_path, stats_path):
        """Runs moe-run (under mpirun for ranks > 1); returns an error line or None."""
        command = [moe_run, "--spec", paths["spec"], "--weights", paths["weights"],
                   "--input", paths["x"], "--output", y_path, "--stats", stats_path]
        if backend:
            command += ["--backend", backend]
        if act_dtype != "f32":
            command += ["--act-dtype", act_dtype]
        if fusion:
            command += ["--fusion", fusion]
        if runtime_checks:
            command += ["--runtime-checks"]
        if gpu_chip:
            command += ["--gpu-chip", gpu_chip]
        if ranks > 1:
            command = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np",
                       str(ranks)] + command + ["--shards", str(ranks // replicas)]
            if replicas > 1:
                command += ["--replicas", str(replicas)]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return f"moe-run ran past {timeout} s"
        except OSError as err:
            return f"cannot run moe-run: {err}"
        if result.returncode != 0:
            lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
            errors = [line for line in lines if "error:" in line]
            shown = errors[0] if errors else " | ".join(lines[:6])
            return f"moe-run exited {result.returncode}: {shown}"
        return None

    def read_outputs(y_path, stats_path):
        y = moe_io.load_npy(y_path)
        with open(stats_path) as f:
            return y, json.load(f)

    error = run_tool(world, paths["y"], paths["stats"])
    if error:
        return False, f"FAIL {name}: {error}"
    try:
        y, stats = read_outputs(paths["y"], paths["stats"])
    except (OSError, ValueError) as err:
        return False, f"FAIL {name}: cannot read the outputs: {err}"

    problems, rel_err = compare_outputs(case, y, stats, ref, act_dtype)
    if world > 1 and not problems:
        single_y = os.path.join(case_dir, "y_single.npy")
        single_stats = os.path.join(case_dir, "stats_single.json")
        error = run_tool(1, single_y, single_stats)
        if error:
            return False, f"FAIL {name}: unsharded run: {error}"
        y1, stats1 = read_outputs(single_y, single_stats)
        diff = float(np.linalg.norm(y.astype(np.float64) - y1) /
                     max(np.linalg.norm(y1.astype(np.float64)), 1e-30))
        if diff > 1e-6:
            problems.append(f"sharded output differs from the unsharded one by {diff:.2e}")
        for key in ("capacity", "tokens_per_expert", "dropped"):
            if stats.get(key) != stats1.get(key):
                problems.append(f"sharded {key} {stats.get(key)} != unsharded {stats1.get(key)}")
        for key in ("load_balance_loss", "router_z_loss"):
            if stats[key] is None or stats1[key] is None:
                if stats[key] != stats1[key]:
                    problems.append(f"sharded {key} {stats[key]} != unsharded {stats1[key]}")
                continue
            if abs(stats[key] - stats1[key]) > 1e-6 * max(abs(stats1[key]), 1e-30):
                problems.append(f"sharded {key} {stats[key]} != unsharded {stats1[key]}")
        comm = stats.get("communication", {})
        expected = [comm.get("static_bytes_per_rank")] * world
        dropless = case.spec.get("capacity_factor") is None and "expert_capacity" not in case.spec
        if dropless and shards > 1:
            # Dropless: the variable-size exchange moves exactly the rows of the
            # assignments whose expert lives on another rank, out and back.
            expected = [e + b for e, b in
                        zip(expected, row_traffic(ref["choice"], experts, shards,
                                                  case.spec["d_model"],
                                                  replicas=replicas))]
            if comm.get("data_dependent_rows") is not True:
                problems.append("a dropless layer's report lacks data_dependent_rows")
        for key in ("measured_bytes_sent", "measured_bytes_received"):
            if comm.get(key) != expected:
                problems.append(f"{key} {comm.get(key)} != expected {expected} per rank")
    if problems:
        return False, f"FAIL {name}: " + "; ".join(problems)
    return True, (f"PASS {name}: rel_err={rel_err:.2e} dropped={ref['stats']['dropped']} "
                  f"seed={seed}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moe-run", help="path of the moe-run tool")
    parser.add_argument("--workdir", help="folder for the generated files (one per case)")
    parser.add_argument("--case", help="a case name, names separated by commas, or 'all'")
    parser.add_argument("--backend", help="passed to moe-run as --backend")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds one moe-run call may take (default 300)")
    parser.add_argument("--replicas", type=int, default=1,
                        help="data-parallel replicas of the --shards ranks (mpirun -np "
                             "shards*replicas)")
    parser.add_argument("--shards", type=int, default=1,
                        help="expert-parallel ranks: run under mpirun with --shards and "
                             "also compare with the unsharded run")
    parser.add_argument("--act-dtype", choices=("f32", "bf16"), default="f32",
                        help="activation type passed to moe-run (bf16: tokens rounded to "
                             "bfloat16 for the reference too, bfloat16 tolerances)")
    parser.add_argument("--fusion", choices=("on", "off"),
                        help="passed to moe-run as --fusion (default: the tool's, on)")
    parser.add_argument("--runtime-checks", action="store_true",
                        help="run moe-run with --runtime-checks (index and memory-access "
                             "checks compiled in)")
    parser.add_argument("--gpu-chip",
                        help="passed to moe-run as --gpu-chip (which chip's kernels the cuda "
                             "backend builds and gpu-loops emulates)")
    parser.add_argument("--prepare-gpu", metavar="BUILD",
                        help="instead of running: write each case and compile it for the "
                             "GPU with tools/gpu_package.sh and the tools of BUILD, for "
                             "--run-prepared on a GPU machine without a compiler")
    parser.add_argument("--run-prepared", action="store_true",
                        help="run the cases --prepare-gpu wrote into --workdir with its "
                             "moe-gpu-run, and check them")
    parser.add_argument("--cuda-graph", action="store_true",
                        help="with --run-prepared: moe-gpu-run --cuda-graph (the call "
                             "replayed from a CUDA graph)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="cases run at a time (default 1); each is its own process, so "
                             "the cases of --run-prepared share the GPU")
    parser.add_argument("--list", action="store_true", help="print the case names and exit")
    args = parser.parse_args(argv)

    if args.list:
        for name in CASES:
            print(name)
        return 0
    if not (args.workdir and args.case):
        parser.error("--workdir and --case are required (or --list)")
    if not (args.moe_run or args.prepare_gpu or args.run_prepared):
        parser.error("--moe-run is required to run cases")
    if args.case == "all":
        names = list(CASES)
    else:
        names = args.case.split(",")
        unknown = [name for name in names if name not in CASES]
        if unknown:
            parser.error(f"unknown case '{unknown[0]}' (see --list)")

    if args.prepare_gpu:
        os.makedirs(args.workdir, exist_ok=True)
        runner = os.path.join(args.prepare_gpu, "bin", "moe-gpu-run")
        subprocess.run(["cp", runner, os.path.join(args.workdir, "moe-gpu-run")], check=True)
    if args.jobs < 1:
        parser.error(f"--jobs needs a positive count, got {args.jobs}")

    def one(name):
        if args.prepare_gpu:
            return prepare_gpu(name, CASES[name], args.workdir, args.act_dtype,
                               args.prepare_gpu)
        if args.run_prepared:
            return run_prepared(name, CASES[name], args.workdir, args.timeout,
                                args.cuda_graph)
        return run_one(name, CASES[name], args.moe_run, args.workdir, args.backend,
                       args.timeout, args.shards, args.act_dtype, args.replicas, args.fusion,
                       args.runtime_checks, args.gpu_chip)

    failures = 0
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        # map() yields in case order, each line as soon as its case and the
        # ones before it are done.
        for passed, line in pool.map(one, names):
            print(line, flush=True)
            failures += not passed
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
