#!/usr/bin/python3
"""Self-test of the float64 reference (reference.py) and of the file helpers (moe_io.py).

    /usr/bin/python3 check_reference.py

1. Hand-computed layers: tiny cases (D=2 or 3, E=2 or 3, identity routers) whose
   probabilities, choices, gates, slots, drops, batch-prioritized order, outputs and both
   losses are worked out in the comments and compared with the reference.
2. Activations at known points, the capacity formula, the defaults and the spec errors.
3. A brute-force cross-check on random small layers (many with exact ties): a second,
   differently written implementation builds each group's full ranking as a list of
   (choice rank, priority key, position) tuples, sorts it and walks it, then recomputes the
   output token by token and the statistics by other formulas.
4. Safetensors / bfloat16 / npy round trips.
5. Section 8 by hand: sigmoid scores and a score bias that changes the choice but not the
   gates (nor the batch-prioritized order), expert groups with `max` and `top2_sum` (group
   ties to the lower group), NaN ranked as -inf in group scores, gate_scale, the shared
   expert with and without shared_gate, expert choice (ties, a token nobody takes, C clamped
   to S, statistics), and every spec and weight error of section 8.
6. A section 8 brute-force cross-check on random small layers: a second implementation picks
   the kept groups by enumerating every subset of groups, ranks experts and tokens by
   counting who beats whom, and evaluates tokens one by one in Python floats.

Prints one line per failed check and a summary; exits 1 on any mismatch.
"""

import itertools
import math
import os
import random
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moe_io  # noqa: E402
import reference  # noqa: E402

FAILURES = []
CHECKS = [0]


def check(condition, what):
    CHECKS[0] += 1
    if not condition:
        FAILURES.append(what)
        print(f"MISMATCH: {what}")


def close(actual, expected, what, rel=1e-12, abs_tol=1e-14):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    ok = actual.shape == expected.shape and bool(
        np.all(np.abs(actual - expected) <= abs_tol + rel * np.abs(expected)))
    check(ok, f"{what}: got {actual.tolist()}, expected {expected.tolist()}")


def run(spec, x, router, w_in, w_gate, w_out, extra=None):
    return reference.moe_layer_details(spec, np.array(x, dtype=np.float64),
                                       np.array(router, dtype=np.float64),
                                       np.array(w_in, dtype=np.float64),
                                       None if w_gate is None else np.array(w_gate),
                                       np.array(w_out, dtype=np.float64), extra)


# ---------------------------------------------------------------------------------------------
# 1a. E=2, D=F=2, k=1, relu, one group of 4, expert_capacity 1.
#
# router = I, so logits = x. Expert e: w_in = I, w_out = (e+1) I, so out_e(x) = (e+1) relu(x).
#   t0 = (1, 1):     p = (1/2, 1/2)  tie -> expert 0, gate 1/2, lse = 1 + ln 2
#   t1 = (ln 3, 0):  p = (3/4, 1/4)  -> expert 0, gate 3/4,        lse = ln 4
#   t2 = (0, ln 3):  p = (1/4, 3/4)  -> expert 1, gate 3/4,        lse = ln 4
#   t3 = (ln 3, 0):  same as t1      -> expert 0, gate 3/4,        lse = ln 4
# k = 1 so normalize_gates defaults to false: the gate is the top-1 probability.
# position:  t0 -> e0 slot 0; t1 -> e0 full, dropped; t2 -> e1 slot 0; t3 -> e0 dropped.
#   y = [(1/2, 1/2), 0, 3/4 * 2 * (0, ln 3) = (0, 1.5 ln 3), 0]
# batch_prioritized: top-1 probabilities 1/2, 3/4, 3/4, 3/4 -> order t1, t2, t3 (tie: group
#   order), t0. t1 -> e0 slot 0; t2 -> e1 slot 0; t3 -> e0 dropped (it ties with t1 and comes
#   later in the group); t0 -> e0 dropped.
#   y = [0, 3/4 (ln 3, 0), (0, 1.5 ln 3), 0]
# Both: capacity 1, tokens_per_expert [1, 1], dropped 2.
# load balance: top-1 = e0, e0, e1, e0 -> f = (3/4, 1/4);
#   P = ((1/2 + 3/4 + 1/4 + 3/4) / 4, (1/2 + 1/4 + 3/4 + 1/4) / 4) = (9/16, 7/16);
#   E * sum f P = 2 * (27/64 + 7/64) = 68/64 = 1.0625.
# z loss: ((1 + ln 2)^2 + 3 (ln 4)^2) / 4.
# With expert_capacity 2 (position): t0 -> e0 slot 0, t1 -> e0 slot 1, t2 -> e1 slot 0,
#   t3 dropped; y1 = 3/4 (ln 3, 0).
# ---------------------------------------------------------------------------------------------

def check_hand_top1():
    ln3, ln4 = math.log(3.0), math.log(4.0)
    x = [[1.0, 1.0], [ln3, 0.0], [0.0, ln3], [ln3, 0.0]]
    router = np.eye(2)
    w_in = np.stack([np.eye(2), np.eye(2)])
    w_out = np.stack([np.eye(2), 2.0 * np.eye(2)])
    spec = {"d_model": 2, "d_ff": 2, "num_experts": 2, "expert_capacity": 1}
    z_loss = ((1.0 + math.log(2.0)) ** 2 + 3.0 * ln4 ** 2) / 4.0

    d = run(spec, x, router, w_in, None, w_out)
    close(d["p"], [[0.5, 0.5], [0.75, 0.25], [0.25, 0.75], [0.75, 0.25]], "1a p")
    close(d["lse"], [1.0 + math.log(2.0), ln4, ln4, ln4], "1a lse")
    check(d["choice"].tolist() == [[0], [0], [1], [0]], f"1a choice {d['choice'].tolist()}")
    close(d["gates"], [[0.5], [0.75], [0.75], [0.75]], "1a gates")
    check(d["slot"].tolist() == [[0], [-1], [0], [-1]], f"1a position slots {d['slot'].tolist()}")
    close(d["y"], [[0.5, 0.5], [0.0, 0.0], [0.0, 1.5 * ln3], [0.0, 0.0]], "1a position y")
    check(d["stats"]["capacity"] == 1, "1a capacity")
    check(d["stats"]["tokens_per_expert"] == [1, 1], "1a tokens_per_expert")
    check(d["stats"]["dropped"] == 2, "1a dropped")
    close(d["stats"]["load_balance_loss"], 1.0625, "1a load_balance_loss")
    close(d["stats"]["router_z_loss"], z_loss, "1a router_z_loss")

    d = run({**spec, "priority": "batch_prioritized"}, x, router, w_in, None, w_out)
    check(d["slot"].tolist() == [[-1], [0], [0], [-1]], f"1a bpr slots {d['slot'].tolist()}")
    close(d["y"], [[0.0, 0.0], [0.75 * ln3, 0.0], [0.0, 1.5 * ln3], [0.0, 0.0]], "1a bpr y")
    check(d["stats"]["tokens_per_expert"] == [1, 1] and d["stats"]["dropped"] == 2,
          "1a bpr counts")
    close(d["stats"]["load_balance_loss"], 1.0625, "1a bpr load_balance_loss")

    d = run({**spec, "expert_capacity": 2}, x, router, w_in, None, w_out)
    check(d["slot"].tolist() == [[0], [1], [0], [-1]], f"1a C=2 slots {d['slot'].tolist()}")
    close(d["y"], [[0.5, 0.5], [0.75 * ln3, 0.0], [0.0, 1.5 * ln3], [0.0, 0.0]], "1a C=2 y")
    check(d["stats"]["tokens_per_expert"] == [2, 1] and d["stats"]["dropped"] == 1,
          "1a C=2 counts")


# ---------------------------------------------------------------------------------------------
# 1b. E=3, D=F=3, k=2, relu, groups of 2, capacity_factor 0.75.
#
# C = max(1, ceil(0.75 * 2 * 2 / 3)) = ceil(1.0) = 1 per group. router = I (logits = x),
# w_in = I, w_out[e] = (e+1) I, so out_e(x) = (e+1) x for x >= 0.
# Every token's logits are a permutation of (2, 1, 0): with Z = e^2 + e + 1,
# a = e^2/Z, b = e/Z, c = 1/Z; lse = ln Z for every token.
# Normalized gates (k = 2 default): g1 = a/(a+b) = e/(e+1), g2 = 1/(e+1).
#   group 0: t0 = (2,1,0) -> e0, e1      t1 = (0,2,1) -> e1, e2
#     rank 1: t0 -> e0 kept, t1 -> e1 kept; rank 2: t0 -> e1 dropped (full), t1 -> e2 kept
#   group 1: t2 = (1,2,0) -> e1, e0      t3 = (1,0,2) -> e2, e0
#     rank 1: t2 -> e1 kept, t3 -> e2 kept; rank 2: t2 -> e0 kept, t3 -> e0 dropped
#   tokens_per_expert [2, 2, 2], dropped 2.
#   y0 = g1 * 1 * (2,1,0); y1 = (2 g1 + 3 g2) (0,2,1); y2 = (2 g1 + g2) (1,2,0);
#   y3 = 3 g1 (1,0,2).
# load balance:
#   group 0: f = (1/2, 1/2, 0), P = ((a+c)/2, (a+b)/2, (b+c)/2): 3 (2a+b+c)/4 = 3 (a+1)/4
#   group 1: f = (0, 1/2, 1/2), P = (b, (a+c)/2, (a+c)/2):        3 (a+c)/2
#   loss = (3 (a+1)/4 + 3 (a+c)/2) / 2.
# z loss = (ln Z)^2.
# batch_prioritized: every top-1 probability is a, all tied -> group order -> same as position.
# normalize_gates false: gates a and b instead of g1 and g2.
# dropless (capacity_factor null): nothing dropped, y0 = (g1 + 2 g2) (2,1,0),
#   y3 = (3 g1 + g2) (1,0,2), capacity null, tokens_per_expert [3, 3, 2].
# ---------------------------------------------------------------------------------------------

def check_hand_top2_groups():
    e = math.e
    big_z = e * e + e + 1.0
    a, b, c = e * e / big_z, e / big_z, 1.0 / big_z
    g1, g2 = e / (e + 1.0), 1.0 / (e + 1.0)
    x = [[2.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 2.0, 0.0], [1.0, 0.0, 2.0]]
    router = np.eye(3)
    w_in = np.stack([np.eye(3)] * 3)
    w_out = np.stack([(i + 1.0) * np.eye(3) for i in range(3)])
    spec = {"d_model": 3, "d_ff": 3, "num_experts": 3, "top_k": 2, "capacity_factor": 0.75,
            "group_size": 2}
    x_arr = np.array(x)
    lb = (3.0 * (a + 1.0) / 4.0 + 3.0 * (a + c) / 2.0) / 2.0

    def expect_y(first, second):
        return [first * x_arr[0], (2 * first + 3 * second) * x_arr[1],
                (2 * first + second) * x_arr[2], 3 * first * x_arr[3]]

    for priority in ("position", "batch_prioritized"):
        d = run({**spec, "priority": priority}, x, router, w_in, None, w_out)
        check(d["choice"].tolist() == [[0, 1], [1, 2], [1, 0], [2, 0]],
              f"1b {priority} choice {d['choice'].tolist()}")
        close(d["gates"], [[g1, g2]] * 4, f"1b {priority} gates")
        check(d["capacity"] == 1, f"1b {priority} capacity {d['capacity']}")
        check(d["slot"].tolist() == [[0, -1], [0, 0], [0, 0], [0, -1]],
              f"1b {priority} slots {d['slot'].tolist()}")
        close(d["y"], expect_y(g1, g2), f"1b {priority} y")
        check(d["stats"]["tokens_per_expert"] == [2, 2, 2], f"1b {priority} tokens_per_expert")
        check(d["stats"]["dropped"] == 2, f"1b {priority} dropped")
        close(d["stats"]["load_balance_loss"], lb, f"1b {priority} load_balance_loss")
        close(d["stats"]["router_z_loss"], math.log(big_z) ** 2, f"1b {priority} z loss")

    d = run({**spec, "normalize_gates": False}, x, router, w_in, None, w_out)
    close(d["gates"], [[a, b]] * 4, "1b raw gates")
    close(d["y"], expect_y(a, b), "1b raw-gate y")

    d = run({**spec, "capacity_factor": None}, x, router, w_in, None, w_out)
    check(d["stats"]["capacity"] is None and d["stats"]["dropped"] == 0, "1b dropless stats")
    check(d["stats"]["tokens_per_expert"] == [3, 3, 2], "1b dropless tokens_per_expert")
    close(d["y"], [(g1 + 2 * g2) * x_arr[0], (2 * g1 + 3 * g2) * x_arr[1],
                   (2 * g1 + g2) * x_arr[2], (3 * g1 + g2) * x_arr[3]], "1b dropless y")


# ---------------------------------------------------------------------------------------------
# 2. Activations, capacity formula, defaults, errors.
# ---------------------------------------------------------------------------------------------

# act(x) at x = 1, -1, 2: gelu = x Phi(x) (Phi(1) = 0.8413447460685429...), gelu_tanh,
# silu = x / (1 + e^-x).
KNOWN_ACTIVATIONS = {
    "relu": [1.0, 0.0, 2.0],
    "gelu": [0.8413447460685429, -0.15865525393145707, 1.9544997361036416],
    "gelu_tanh": [0.8411919906082768, -0.15880800939172324, 1.954597694087775],
    "silu": [0.7310585786300049, -0.2689414213699951, 1.7615941559557646],
}


def check_activations():
    # With E = 1 the probability and gate are 1, so D = F = 1 and unit weights give
    # y = act(x); gated: w_gate = 1, w_in = 2 gives y = act(x) * 2x. The router weight 0.3
    # makes lse = 0.3 x, so z loss = 0.09 (1 + 1 + 4) / 3 = 0.18; load balance = 1.
    x = [[1.0], [-1.0], [2.0]]
    xs = np.array([1.0, -1.0, 2.0])
    for activation, values in KNOWN_ACTIVATIONS.items():
        spec = {"d_model": 1, "d_ff": 1, "num_experts": 1, "activation": activation}
        d = run(spec, x, [[0.3]], [[[1.0]]], None, [[[1.0]]])
        close(d["y"][:, 0], values, f"activation {activation}")
        close(d["stats"]["router_z_loss"], 0.18, f"activation {activation} z loss")
        close(d["stats"]["load_balance_loss"], 1.0, f"activation {activation} lb loss")
    for activation, inner in (("geglu", "gelu_tanh"), ("swiglu", "silu")):
        spec = {"d_model": 1, "d_ff": 1, "num_experts": 1, "activation": activation}
        d = run(spec, x, [[0.3]], [[[2.0]]], [[[1.0]]], [[[1.0]]])
        close(d["y"][:, 0], np.array(KNOWN_ACTIVATIONS[inner]) * 2.0 * xs,
              f"activation {activation}")


def check_capacity_and_spec():
    def capacity(**fields):
        spec = reference.apply_defaults({"d_model": 1, "d_ff": 1, "num_experts": 8, **fields})
        return reference.expert_capacity(spec, 1024)

    check(capacity(capacity_factor=1.25) == 160, "capacity 1.25 * 1 * 1024 / 8 = 160")
    check(capacity(capacity_factor=2.0, top_k=2) == 512, "capacity 2 * 2 * 1024 / 8 = 512")
    check(capacity(capacity_factor=0.001, min_capacity=4) == 4, "min_capacity raises C to 4")
    check(capacity(capacity_factor=0.01) == 2, "ceil(1.28) = 2")
    check(capacity(expert_capacity=64, capacity_factor=1.0, min_capacity=1) == 64,
          "expert_capacity overrides capacity_factor")
    check(capacity() is None, "no capacity_factor, no expert_capacity: dropless")
    # cf * k * S / E in double, left to right: 0.1 * 3 * 10 / 3 = 1.0000000000000002 -> 2.
    spec = reference.apply_defaults({"d_model": 1, "d_ff": 1, "num_experts": 3, "top_k": 3,
                                     "capacity_factor": 0.1})
    check(reference.expert_capacity(spec, 10) == 2, "capacity uses double, left to right")

    full = reference.apply_defaults({"d_model": 4, "d_ff": 8, "num_experts": 2})
    check(full == {"d_model": 4, "d_ff": 8, "num_experts": 2, "top_k": 1, "activation": "relu",
                   "normalize_gates": False, "capacity_factor": None, "expert_capacity": None,
                   "min_capacity": 1, "group_size": None, "priority": "position",
                   "routing": "tokens_choose", "score_function": "softmax",
                   "score_bias": False, "num_groups": 1, "topk_groups": 1,
                   "group_score": "max", "gate_scale": 1.0, "shared_d_ff": 0,
                   "shared_gate": False},
          f"defaults {full}")
    top2 = reference.apply_defaults({"d_model": 4, "d_ff": 8, "num_experts": 2, "top_k": 2})
    check(top2["normalize_gates"] is True, "normalize_gates defaults to true when k > 1")

    base = {"d_model": 4, "d_ff": 8, "num_experts": 4}
    bad_specs = [
        ({**base, "experts": 4}, "experts"),
        ({"d_ff": 8, "num_experts": 4}, "d_model"),
        ({**base, "d_model": True}, "d_model"),
        ({**base, "d_ff": 0}, "d_ff"),
        ({**base, "top_k": 5}, "top_k"),
        ({**base, "top_k": 0}, "top_k"),
        ({**base, "activation": "tanh"}, "activation"),
        ({**base, "normalize_gates": 1}, "normalize_gates"),
        ({**base, "capacity_factor": 0}, "capacity_factor"),
        ({**base, "capacity_factor": "1.0"}, "capacity_factor"),
        ({**base, "expert_capacity": 0}, "expert_capacity"),
        ({**base, "min_capacity": 0}, "min_capacity"),
        ({**base, "group_size": 0}, "group_size"),
        ({**base, "priority": "random"}, "priority"),
    ]
    for spec, field in bad_specs:
        try:
            reference.apply_defaults(spec)
            check(False, f"spec {spec} accepted")
        except ValueError as err:
            check(field in str(err), f"error for {spec} names '{field}': {err}")
    try:
        run({**base, "group_size": 3}, np.zeros((8, 4)), np.zeros((4, 4)),
            np.zeros((4, 4, 8)), None, np.zeros((4, 8, 4)))
        check(False, "group_size 3 with T = 8 accepted")
    except ValueError as err:
        check("group_size" in str(err), f"group_size error names the field: {err}")


# ---------------------------------------------------------------------------------------------
# 3. Brute-force cross-check.
# ---------------------------------------------------------------------------------------------

def brute_force_router(x, router):
    """Probabilities and logsumexp with Python lists and math."""
    probs, lses = [], []
    for row in x:
        logits = [float(np.dot(row, weights)) for weights in router]
        top = max(logits)
        exps = [math.exp(v - top) for v in logits]
        total = sum(exps)
        probs.append([w / total for w in exps])
        lses.append(top + math.log(total))
    return probs, lses


def brute_force_layer(spec, x, probs, lses, w_in, w_gate, w_out):
    """A second implementation of sections 3.2-4 written differently from reference.py:
    Python lists for choice, one global ranking list per group sorted by tuple, output
    accumulated token by token, statistics by other formulas. It takes the router's
    probabilities as given: probabilities that are equal in exact arithmetic (permuted
    integer logits) can differ in the last bit depending on how exp and the sum are
    evaluated, and the two implementations must break such ties on the same numbers."""
    spec = reference.apply_defaults(spec)
    num_tokens, num_experts, k = len(x), spec["num_experts"], spec["top_k"]
    size = spec["group_size"] or num_tokens

    chosen = [sorted(range(num_experts), key=lambda e: (-probs[t][e], e))[:k]
              for t in range(num_tokens)]
    gates = []
    for t in range(num_tokens):
        g = [probs[t][e] for e in chosen[t]]
        if spec["normalize_gates"]:
            s = sum(g)
            g = [v / s for v in g]
        gates.append(g)

    if spec["expert_capacity"] is not None:
        cap = spec["expert_capacity"]
    elif spec["capacity_factor"] is not None:
        cap = max(spec["min_capacity"],
                  math.ceil(spec["capacity_factor"] * k * size / num_experts))
    else:
        cap = None

    slots = {}
    for start in range(0, num_tokens, size):
        ranking = []
        for pos in range(size):
            t = start + pos
            key = -max(probs[t]) if spec["priority"] == "batch_prioritized" else 0.0
            for j in range(k):
                ranking.append((j, key, pos, t, chosen[t][j]))
        ranking.sort()
        fill = {}
        for j, _, _, t, e in ranking:
            n = fill.get(e, 0)
            if cap is None or n < cap:
                slots[(t, j)] = n
                fill[e] = n + 1
            else:
                slots[(t, j)] = -1

    act = reference.ACTIVATION_FUNCTIONS[spec["activation"]]
    y = np.zeros((num_tokens, spec["d_model"]))
    for t in range(num_tokens):
        for j in range(k):
            if slots[(t, j)] < 0:
                continue
            e = chosen[t][j]
            h = x[t] @ w_in[e]
            a = act(x[t] @ w_gate[e]) * h if w_gate is not None else act(h)
            y[t] = y[t] + gates[t][j] * (a @ w_out[e])

    counts = [sum(1 for (t, j), s in slots.items() if s >= 0 and chosen[t][j] == e)
              for e in range(num_experts)]
    group_losses = []
    for start in range(0, num_tokens, size):
        members = range(start, start + size)
        mean_p = [sum(probs[t][e] for t in members) / size for e in range(num_experts)]
        # E * sum_e f_e P_e = (E / S) * sum over tokens of P at the token's top-1 expert.
        group_losses.append(num_experts / size * sum(mean_p[chosen[t][0]] for t in members))
    stats = {"capacity": cap, "tokens_per_expert": counts,
             "dropped": sum(1 for s in slots.values() if s < 0),
             "load_balance_loss": sum(group_losses) / len(group_losses),
             "router_z_loss": sum(v * v for v in lses) / num_tokens}
    slot_array = np.array([[slots[(t, j)] for j in range(k)] for t in range(num_tokens)])
    return y, stats, np.array(chosen), slot_array


def random_case(rng):
    """A random small layer; half of them with small-integer logits so that exact ties in
    probability (choice and batch-prioritized order) are frequent."""
    num_experts = rng.randint(1, 6)
    top_k = rng.randint(1, num_experts)
    num_tokens = rng.randint(1, 24)
    divisors = [s for s in range(1, num_tokens + 1) if num_tokens % s == 0]
    d_model, d_ff = rng.randint(1, 4), rng.randint(1, 5)
    spec = {"d_model": d_model, "d_ff": d_ff, "num_experts": num_experts, "top_k": top_k,
            "activation": rng.choice(reference.ACTIVATIONS),
            "priority": rng.choice(reference.PRIORITIES)}
    if rng.random() < 0.5:
        spec["group_size"] = rng.choice(divisors)
    capacity_kind = rng.choice(["none", "fixed", "factor"])
    if capacity_kind == "fixed":
        spec["expert_capacity"] = rng.randint(1, 4)
    elif capacity_kind == "factor":
        spec["capacity_factor"] = rng.choice([0.25, 0.5, 0.75, 1.0, 1.25, 2.0])
        spec["min_capacity"] = rng.randint(1, 3)
    if rng.random() < 0.3:
        spec["normalize_gates"] = rng.random() < 0.5
    nprng = np.random.default_rng(rng.randint(0, 2 ** 31))
    if rng.random() < 0.5:
        x = nprng.integers(-1, 2, (num_tokens, d_model)).astype(np.float64)
        router = nprng.integers(-1, 2, (num_experts, d_model)).astype(np.float64)
    else:
        x = nprng.standard_normal((num_tokens, d_model))
        router = nprng.standard_normal((num_experts, d_model))
    w_in = nprng.standard_normal((num_experts, d_model, d_ff))
    w_gate = nprng.standard_normal((num_experts, d_model, d_ff)) \
        if spec["activation"] in reference.GATED_ACTIVATIONS else None
    w_out = nprng.standard_normal((num_experts, d_ff, d_model))
    return spec, x, router, w_in, w_gate, w_out


def check_brute_force(trials=400):
    rng = random.Random(20240601)
    for trial in range(trials):
        spec, x, router, w_in, w_gate, w_out = random_case(rng)
        d = reference.moe_layer_details(spec, x, router, w_in, w_gate, w_out)
        where = f"random trial {trial} {spec}"
        probs, lses = brute_force_router(x, router)
        close(d["p"], probs, f"{where}: p")
        close(d["lse"], lses, f"{where}: lse")
        y, stats, chosen, slots = brute_force_layer(spec, x, d["p"].tolist(), lses, w_in,
                                                    w_gate, w_out)
        check(np.array_equal(d["choice"], chosen), f"{where}: choice")
        check(np.array_equal(d["slot"], slots), f"{where}: slots {d['slot'].tolist()} vs "
                                                f"{slots.tolist()}")
        check(np.array_equal(d["kept"], slots >= 0), f"{where}: kept")
        close(d["y"], y, f"{where}: y", rel=1e-12, abs_tol=1e-12)
        for key in ("capacity", "tokens_per_expert", "dropped"):
            check(d["stats"][key] == stats[key], f"{where}: {key} {d['stats'][key]} vs "
                                                 f"{stats[key]}")
        for key in ("load_balance_loss", "router_z_loss"):
            close(d["stats"][key], stats[key], f"{where}: {key}")
        # Slots of each expert in each group are 0, 1, ..., n-1 with n <= C.
        size = d["group_size"]
        for start in range(0, len(x), size):
            for e in range(spec["num_experts"]):
                mask = d["kept"][start:start + size] & (d["choice"][start:start + size] == e)
                got = sorted(d["slot"][start:start + size][mask].tolist())
                ok = got == list(range(len(got))) and (
                    d["capacity"] is None or len(got) <= d["capacity"])
                check(ok, f"{where}: slots of expert {e} at group {start}: {got}")


# ---------------------------------------------------------------------------------------------
# 4. File helpers.
# ---------------------------------------------------------------------------------------------

def check_io():
    one = 1.0
    values = np.array([one, one + 2.0 ** -8, one + 3 * 2.0 ** -8, one + 2.0 ** -8 + 2.0 ** -20,
                       -2.5, 0.0, np.inf, 3.4e38], dtype=np.float32)
    # 1 + 2^-8 is halfway between 1 (0x3F80, even) and 1 + 2^-7 (0x3F81): to even, 0x3F80.
    # 1 + 3 * 2^-8 is halfway between 0x3F81 and 0x3F82 (even): 0x3F82. Just above a
    # halfway point rounds up. 3.4e38 rounds up past the largest bfloat16 to infinity.
    bits = moe_io.bf16_bits(values).tolist()
    check(bits == [0x3F80, 0x3F80, 0x3F82, 0x3F81, 0xC020, 0x0000, 0x7F80, 0x7F80],
          f"bf16 rounding {[hex(b) for b in bits]}")
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(7)
        tensors = {"router": rng.standard_normal((3, 5)).astype(np.float32),
                   "experts.0.w1.weight": rng.standard_normal((4, 5)).astype(np.float32)}
        for dtype in ("F32", "BF16"):
            path = os.path.join(tmp, f"w_{dtype}.safetensors")
            moe_io.write_safetensors(path, tensors, dtype=dtype, metadata={"format": "pt"})
            with open(path, "rb") as f:
                header_len = int.from_bytes(f.read(8), "little")
            check(header_len % 8 == 0, f"{dtype} header length {header_len} is 8-aligned")
            back, dtypes = moe_io.read_safetensors(path)
            check(set(back) == set(tensors) and set(dtypes.values()) == {dtype},
                  f"{dtype} names and dtypes {dtypes}")
            for name, value in tensors.items():
                want = value if dtype == "F32" else moe_io.round_to_bf16(value)
                check(back[name].dtype == np.float32 and np.array_equal(back[name], want),
                      f"{dtype} round trip of {name}")
        path = os.path.join(tmp, "x.npy")
        x = rng.standard_normal((4, 3))
        moe_io.save_npy(path, x)
        back = moe_io.load_npy(path)
        check(back.dtype == np.float32 and np.array_equal(back, x.astype(np.float32)),
              "npy round trip")


# ---------------------------------------------------------------------------------------------
# 5. Section 8 by hand: sigmoid scores, score bias, expert groups, gate scale, shared expert,
#    expert choice, NaN in group scores.
#
# Sigmoid values used below: s(0) = 1/2 exactly; s(ln 3) = 3/4, s(-ln 3) = 1/4,
# s(ln 2) = 2/3, s(ln 7) = 7/8, s(-ln 7) = 1/8 (s(ln a) = a / (a + 1)).
# ---------------------------------------------------------------------------------------------

# 5a. E=3, D=F=3, k=2 (normalize_gates defaults to true), relu, sigmoid, dropless.
# router = I (logits = x), w_in = I, w_out[e] = (e+1) I: out_e(x) = (e+1) relu(x).
#   t0 = (ln 3, 0, -ln 3): s = (3/4, 1/2, 1/4), lse = ln(3 + 1 + 1/3) = ln(13/3)
#   t1 = (0, ln 3, 0):     s = (1/2, 3/4, 1/2), lse = ln(1 + 3 + 1) = ln 5
# No bias: t0 -> e0, e1, gates 3/5, 2/5; t1 -> e1 then e0 (e0 and e2 tie at exactly 1/2:
#   the lower index), gates 3/5, 2/5.
#   load balance (P from s / sum s): t0 s / (3/2) = (1/2, 1/3, 1/6); t1 s / (7/4) =
#   (2/7, 3/7, 2/7); P = (11/28, 8/21, 19/84); f = (1/2, 1/2, 0);
#   3 (11/28 + 8/21) / 2 = 3/2 * 65/84 = 65/56.
#   y0 = (3/5 + 2 * 2/5) (ln 3, 0, 0) = 7/5 (ln 3, 0, 0); y1 = (3/5 * 2 + 2/5 * 1) (0, ln 3, 0)
#      = 8/5 (0, ln 3, 0).
# Bias (0, 0, 3/4): c0 = (3/4, 1/2, 1) -> e2, e0; c1 = (1/2, 3/4, 5/4) -> e2, e1.
#   Gates from the unbiased s: t0 s2 / (s2 + s0) = (1/4) / 1 = 1/4, then 3/4;
#   t1 s2 / (s2 + s1) = (1/2) / (5/4) = 2/5, then 3/5 (from c it would be 4/7, 3/7 and 5/8,
#   3/8). Raw (normalize_gates false): (1/4, 3/4) and (1/2, 3/4).
#   y0 = (1/4 * 3 + 3/4 * 1) (ln 3, 0, 0) = 3/2 (ln 3, 0, 0);
#   y1 = (2/5 * 3 + 3/5 * 2) (0, ln 3, 0) = 12/5 (0, ln 3, 0).
#   load balance: f = (0, 0, 1): 3 * P2 = 3 * 19/84 = 19/28. z loss is the same with and
#   without bias: (ln(13/3)^2 + ln(5)^2) / 2.
# gate_scale 2.5 (with bias): gates (5/8, 15/8) and (1, 3/2), y times 2.5.
# ---------------------------------------------------------------------------------------------

def check_hand_sigmoid_bias():
    ln3 = math.log(3.0)
    x = [[ln3, 0.0, -ln3], [0.0, ln3, 0.0]]
    router = np.eye(3)
    w_in = np.stack([np.eye(3)] * 3)
    w_out = np.stack([(i + 1.0) * np.eye(3) for i in range(3)])
    spec = {"d_model": 3, "d_ff": 3, "num_experts": 3, "top_k": 2, "score_function": "sigmoid"}
    bias = {"score_bias": np.array([0.0, 0.0, 0.75])}
    z_loss = (math.log(13.0 / 3.0) ** 2 + math.log(5.0) ** 2) / 2.0
    s = [[0.75, 0.5, 0.25], [0.5, 0.75, 0.5]]

    d = run(spec, x, router, w_in, None, w_out)
    close(d["scores"], s, "5a sigmoid scores")
    close(d["p"], s, "5a p holds the scores")
    close(d["lse"], [math.log(13.0 / 3.0), math.log(5.0)], "5a lse of the logits")
    check(d["choice"].tolist() == [[0, 1], [1, 0]], f"5a choice {d['choice'].tolist()}")
    close(d["gates"], [[0.6, 0.4], [0.6, 0.4]], "5a gates")
    close(d["y"], [[1.4 * ln3, 0.0, 0.0], [0.0, 1.6 * ln3, 0.0]], "5a y")
    close(d["stats"]["load_balance_loss"], 65.0 / 56.0, "5a load_balance_loss")
    close(d["stats"]["router_z_loss"], z_loss, "5a router_z_loss")

    d = run({**spec, "score_bias": True}, x, router, w_in, None, w_out, bias)
    close(d["choice_scores"], [[0.75, 0.5, 1.0], [0.5, 0.75, 1.25]], "5a biased choice scores")
    close(d["scores"], s, "5a scores stay unbiased")
    check(d["choice"].tolist() == [[2, 0], [2, 1]], f"5a biased choice {d['choice'].tolist()}")
    close(d["gates"], [[0.25, 0.75], [0.4, 0.6]], "5a gates from unbiased scores")
    close(d["y"], [[1.5 * ln3, 0.0, 0.0], [0.0, 2.4 * ln3, 0.0]], "5a biased y")
    close(d["stats"]["load_balance_loss"], 19.0 / 28.0, "5a biased load_balance_loss")
    close(d["stats"]["router_z_loss"], z_loss, "5a biased router_z_loss")
    check(d["stats"]["tokens_per_expert"] == [1, 1, 2] and d["stats"]["dropped"] == 0,
          f"5a biased counts {d['stats']}")

    d = run({**spec, "score_bias": True, "normalize_gates": False}, x, router, w_in, None,
            w_out, bias)
    close(d["gates"], [[0.25, 0.75], [0.5, 0.75]], "5a raw gates from unbiased scores")

    d = run({**spec, "score_bias": True, "gate_scale": 2.5}, x, router, w_in, None, w_out,
            bias)
    close(d["gates"], [[0.625, 1.875], [1.0, 1.5]], "5a gate_scale gates")
    close(d["y"], [[3.75 * ln3, 0.0, 0.0], [0.0, 6.0 * ln3, 0.0]], "5a gate_scale y")


# 5b. Batch-prioritized ranks by the unbiased first-choice score, not by the biased one.
# E=3, k=2, sigmoid, bias (0, 0, 1/2), expert_capacity 1, router = I.
#   t0 = (-ln 7, -ln 3, 0): s = (1/8, 1/4, 1/2), c = (1/8, 1/4, 1)   -> e2, e1; key s = 1/2
#   t1 = (ln 7, ln 3, -ln 7): s = (7/8, 3/4, 1/8), c = (7/8, 3/4, 5/8) -> e0, e1; key s = 7/8
# Rank 1: t0 -> e2, t1 -> e0, both kept. Rank 2: both want e1 (C = 1).
#   position: t0 first -> t0 keeps e1, t1's second choice dropped: slots [[0, 0], [0, -1]].
#   batch_prioritized by s: 7/8 > 1/2 -> t1 first: slots [[0, -1], [0, 0]] (by the biased
#   c it would be 1 > 7/8, t0 first, as position).
#   Either way tokens_per_expert [1, 1, 1], dropped 1.
#   Gates: t0 s2 / (s2 + s1) = 2/3, 1/3; t1 (7/8) / (13/8) = 7/13, 6/13.

def check_hand_bias_priority():
    ln3, ln7 = math.log(3.0), math.log(7.0)
    x = [[-ln7, -ln3, 0.0], [ln7, ln3, -ln7]]
    spec = {"d_model": 3, "d_ff": 3, "num_experts": 3, "top_k": 2, "score_function": "sigmoid",
            "score_bias": True, "expert_capacity": 1}
    extra = {"score_bias": [0.0, 0.0, 0.5]}
    args = (x, np.eye(3), np.stack([np.eye(3)] * 3), None, np.stack([np.eye(3)] * 3), extra)
    expected = {"position": [[0, 0], [0, -1]], "batch_prioritized": [[0, -1], [0, 0]]}
    for priority, slots in expected.items():
        d = run({**spec, "priority": priority}, *args)
        check(d["choice"].tolist() == [[2, 1], [0, 1]], f"5b {priority} choice")
        close(d["gates"], [[2.0 / 3.0, 1.0 / 3.0], [7.0 / 13.0, 6.0 / 13.0]],
              f"5b {priority} gates")
        close(d["top1_prob"], [0.5, 0.875], f"5b {priority} top1_prob is unbiased")
        check(d["slot"].tolist() == slots, f"5b {priority} slots {d['slot'].tolist()}")
        check(d["stats"]["tokens_per_expert"] == [1, 1, 1] and d["stats"]["dropped"] == 1,
              f"5b {priority} counts {d['stats']}")


# 5c. Expert groups. E=4 in G=2 groups {0, 1}, {2, 3}, topk_groups 1, k=2 (normalized),
# softmax, dropless; router = I, x = ln(w) so p = w / sum w; relu(x) = x (w >= 1);
# out_e(x) = (e+1) x.
#   t0 w = (4, 1, 3, 3) / 11   t1 w = (3, 1, 3, 1) / 8   t2 w = (3, 1, 3, 2) / 9
# max:      t0 groups (4/11, 3/11) -> g0 -> e0, e1, gates 4/5, 1/5;
#           t1 (3/8, 3/8): tie -> lower group g0 -> e0, e1, gates 3/4, 1/4;
#           t2 (3/9, 3/9): tie -> g0 -> e0, e1, gates 3/4, 1/4.
#   y = (4/5 + 2/5) x0 = 6/5 x0, (3/4 + 2/4) x1 = 5/4 x1, 5/4 x2.
#   load balance: every top-1 is e0: f = (1, 0, 0, 0), P0 = (4/11 + 3/8 + 1/3) / 3:
#   4 P0.
# top2_sum: t0 (5/11, 6/11) -> g1 -> e2, e3 (tie 3/11: lower index first), gates 1/2, 1/2;
#           t1 (4/8, 4/8): tie (p0 = p2 and p1 = p3 bit for bit) -> g0 -> e0, e1, 3/4, 1/4;
#           t2 (4/9, 5/9) -> g1 -> e2, e3, gates 3/5, 2/5.
#   y = (3/2 + 4/2) x0 = 7/2 x0, 5/4 x1, (9/5 + 8/5) x2 = 17/5 x2.
#   load balance: top-1 e2, e0, e2: f = (1/3, 0, 2/3, 0), P2 = (3/11 + 3/8 + 1/3) / 3:
#   4 (P0 / 3 + 2 P2 / 3).
# topk_groups 2 (every group kept) is plain top-2: t0 -> e0, e2 (e2 and e3 tie), 4/7, 3/7.
# ---------------------------------------------------------------------------------------------

def check_hand_expert_groups():
    w = np.array([[4.0, 1.0, 3.0, 3.0], [3.0, 1.0, 3.0, 1.0], [3.0, 1.0, 3.0, 2.0]])
    x = np.log(w)
    router = np.eye(4)
    w_in = np.stack([np.eye(4)] * 4)
    w_out = np.stack([(i + 1.0) * np.eye(4) for i in range(4)])
    spec = {"d_model": 4, "d_ff": 4, "num_experts": 4, "top_k": 2, "num_groups": 2,
            "topk_groups": 1}
    p0 = (4.0 / 11.0 + 3.0 / 8.0 + 1.0 / 3.0) / 3.0
    p2 = (3.0 / 11.0 + 3.0 / 8.0 + 1.0 / 3.0) / 3.0
    inf = math.inf

    d = run({**spec, "group_score": "max"}, x, router, w_in, None, w_out)
    close(d["group_scores"], [[4 / 11, 3 / 11], [3 / 8, 3 / 8], [3 / 9, 3 / 9]],
          "5c max group scores")
    check(d["group_kept"].tolist() == [[True, False]] * 3, "5c max kept groups")
    check(d["choice"].tolist() == [[0, 1]] * 3, f"5c max choice {d['choice'].tolist()}")
    close(d["gates"], [[0.8, 0.2], [0.75, 0.25], [0.75, 0.25]], "5c max gates")
    check(d["masked_choice_scores"][0, 2:].tolist() == [-inf, -inf],
          "5c experts of dropped groups masked to -inf")
    close(d["masked_choice_scores"][0, :2], [4 / 11, 1 / 11], "5c kept group unmasked")
    close(d["y"], [1.2 * x[0], 1.25 * x[1], 1.25 * x[2]], "5c max y")
    close(d["stats"]["load_balance_loss"], 4.0 * p0, "5c max load_balance_loss")

    d = run({**spec, "group_score": "top2_sum"}, x, router, w_in, None, w_out)
    close(d["group_scores"], [[5 / 11, 6 / 11], [4 / 8, 4 / 8], [4 / 9, 5 / 9]],
          "5c top2_sum group scores")
    check(d["group_kept"].tolist() == [[False, True], [True, False], [False, True]],
          f"5c top2_sum kept groups {d['group_kept'].tolist()}")
    check(d["choice"].tolist() == [[2, 3], [0, 1], [2, 3]],
          f"5c top2_sum choice {d['choice'].tolist()}")
    close(d["gates"], [[0.5, 0.5], [0.75, 0.25], [0.6, 0.4]], "5c top2_sum gates")
    close(d["y"], [3.5 * x[0], 1.25 * x[1], 3.4 * x[2]], "5c top2_sum y")
    close(d["stats"]["load_balance_loss"], 4.0 * (p0 / 3.0 + 2.0 * p2 / 3.0),
          "5c top2_sum load_balance_loss")

    d = run({**spec, "topk_groups": 2}, x, router, w_in, None, w_out)
    check(d["choice"][0].tolist() == [0, 2], f"5c all groups kept: {d['choice'].tolist()}")
    close(d["gates"][0], [4.0 / 7.0, 3.0 / 7.0], "5c all groups kept: gates")


# 5d. NaN ranks as -inf in group scores (section 3.7). Sigmoid, router = I, relu.
# (i) E=6, G=2 ({0,1,2}, {3,4,5}), topk_groups 1, k=1, bias (NaN, 0, 0, 0, 0, 0): c0 = NaN.
#   t0 = (0, ln 3, 0, ln 2, ln 2, -ln 3): s = (1/2, 3/4, 1/2, 2/3, 2/3, 1/4)
#     max: g0 = max(-inf, 3/4, 1/2) = 3/4 > g1 = 2/3 -> g0 -> e1, gate 3/4
#          (a NaN that spread to the group score would have sent it to g1).
#     top2_sum: g0 = 3/4 + 1/2 = 5/4 < g1 = 4/3 -> g1 -> e3 (ties e4), gate 2/3.
#   t1 = (0, ln 3, ln 3, ln 2, ln 2, -ln 3): s = (1/2, 3/4, 3/4, 2/3, 2/3, 1/4)
#     max: g0 = 3/4 -> e1 (ties e2), gate 3/4; top2_sum: g0 = 3/2 > 4/3 -> e1, gate 3/4.
# (ii) E=4, G=2, topk_groups 1, k=2, bias (0, 0, NaN, 0); t = (-ln 3, -ln 3, 0, 0):
#   s = (1/4, 1/4, 1/2, 1/2), c = (1/4, 1/4, NaN, 1/2).
#     max: g0 = 1/4, g1 = max(-inf, 1/2) = 1/2 -> g1 -> e3; then e2 (NaN) and the masked
#     e0, e1 all rank as -inf: the tie goes to the lower index, e0. Gates from s,
#     normalized (k = 2): (1/2, 1/4) / (3/4) = 2/3, 1/3.
#     top2_sum: g1 = -inf + 1/2 = -inf < g0 = 1/2 -> g0 -> e0, e1, gates 1/2, 1/2.
# (iii) softmax, same groups, a token with a NaN logit: every p is NaN, both group scores
#   -inf, tie -> g0 -> e0, e1 (valid experts; y is NaN by the arithmetic).
# ---------------------------------------------------------------------------------------------

def check_hand_nan_groups():
    ln2, ln3 = math.log(2.0), math.log(3.0)
    x = [[0.0, ln3, 0.0, ln2, ln2, -ln3], [0.0, ln3, ln3, ln2, ln2, -ln3]]
    spec = {"d_model": 6, "d_ff": 6, "num_experts": 6, "score_function": "sigmoid",
            "score_bias": True, "num_groups": 2, "topk_groups": 1}
    extra = {"score_bias": [math.nan, 0.0, 0.0, 0.0, 0.0, 0.0]}
    args = (np.eye(6), np.stack([np.eye(6)] * 6), None, np.stack([np.eye(6)] * 6), extra)
    d = run({**spec, "group_score": "max"}, x, *args)
    close(d["group_scores"], [[0.75, 2 / 3], [0.75, 2 / 3]], "5d(i) max group scores")
    check(d["choice"].tolist() == [[1], [1]], f"5d(i) max choice {d['choice'].tolist()}")
    close(d["gates"], [[0.75], [0.75]], "5d(i) max gates")
    d = run({**spec, "group_score": "top2_sum"}, x, *args)
    close(d["group_scores"], [[1.25, 4 / 3], [1.5, 4 / 3]], "5d(i) top2_sum group scores")
    check(d["choice"].tolist() == [[3], [1]], f"5d(i) top2_sum choice {d['choice'].tolist()}")
    close(d["gates"], [[2 / 3], [0.75]], "5d(i) top2_sum gates")

    x = [[-ln3, -ln3, 0.0, 0.0]]
    spec = {"d_model": 4, "d_ff": 4, "num_experts": 4, "top_k": 2, "score_function": "sigmoid",
            "score_bias": True, "num_groups": 2, "topk_groups": 1}
    args = (np.eye(4), np.stack([np.eye(4)] * 4), None, np.stack([np.eye(4)] * 4),
            {"score_bias": [0.0, 0.0, math.nan, 0.0]})
    d = run({**spec, "group_score": "max"}, x, *args)
    check(d["group_kept"].tolist() == [[False, True]], "5d(ii) max keeps g1")
    check(d["choice"].tolist() == [[3, 0]], f"5d(ii) max choice {d['choice'].tolist()}")
    close(d["gates"], [[2 / 3, 1 / 3]], "5d(ii) max gates")
    d = run({**spec, "group_score": "top2_sum"}, x, *args)
    close(d["group_scores"][0, 0], 0.5, "5d(ii) top2_sum score of g0")
    check(d["group_scores"][0, 1] == -math.inf,
          f"5d(ii) top2_sum: a NaN makes g1's score -inf {d['group_scores'].tolist()}")
    check(d["choice"].tolist() == [[0, 1]], f"5d(ii) top2_sum choice {d['choice'].tolist()}")
    close(d["gates"], [[0.5, 0.5]], "5d(ii) top2_sum gates")

    spec = {"d_model": 4, "d_ff": 4, "num_experts": 4, "top_k": 2, "num_groups": 2,
            "topk_groups": 1}
    with np.errstate(invalid="ignore"):
        d = run(spec, [[math.nan, 0.0, 0.0, 0.0]], np.eye(4), np.stack([np.eye(4)] * 4), None,
                np.stack([np.eye(4)] * 4))
    check(d["choice"].tolist() == [[0, 1]], f"5d(iii) NaN token choice {d['choice'].tolist()}")
    check(d["group_scores"][0].tolist() == [-math.inf, -math.inf],
          f"5d(iii) NaN group scores {d['group_scores'].tolist()}")


# 5e. Shared expert. E=2, D=F=Fs=2, k=1, relu; router = 0 -> p = (1/2, 1/2), tie -> e0,
# gate 1/2; w_in = I, w_out = (I, 2I); shared_w_in = I, shared_w_out = 3 I.
#   t0 = (1, 2): routed 1/2 (1, 2) = (1/2, 1); shared 3 (1, 2) = (3, 6);  y0 = (7/2, 7)
#   t1 = (-1, 1): routed 1/2 (0, 1) = (0, 1/2); shared (0, 3);            y1 = (0, 7/2)
# shared_gate (ln 3, 0): t0 x . g = ln 3 -> factor 3/4: shared (9/4, 9/2), y0 = (11/4, 11/2);
#   t1 x . g = -ln 3 -> 1/4: shared (0, 3/4), y1 = (0, 5/4).
# expert_capacity 1: t1 is dropped but still gets the shared expert: y1 = (0, 3), or (0, 3/4)
#   with shared_gate; statistics ignore the shared expert: tokens_per_expert [1, 0],
#   dropped 1, load balance 2 * 1 * 1/2 = 1, z loss (ln 2)^2.
# Gated (swiglu), E=1, D=F=Fs=1, x = 1: routed silu(1 * 1) * (1 * 2) * 1 = 2 silu(1);
#   shared (shared_w_in 1, shared_w_gate 2, shared_w_out 3) silu(2) * 1 * 3 = 3 silu(2);
#   with shared_gate ln 3: 3/4 of that.
# ---------------------------------------------------------------------------------------------

def check_hand_shared_expert():
    ln3 = math.log(3.0)
    x = [[1.0, 2.0], [-1.0, 1.0]]
    spec = {"d_model": 2, "d_ff": 2, "num_experts": 2, "shared_d_ff": 2}
    weights = (np.zeros((2, 2)), np.stack([np.eye(2)] * 2), None,
               np.stack([np.eye(2), 2.0 * np.eye(2)]))
    extra = {"shared_w_in": np.eye(2), "shared_w_out": 3.0 * np.eye(2)}
    gate = {**extra, "shared_gate": [ln3, 0.0]}

    d = run(spec, x, *weights, extra)
    close(d["y"], [[3.5, 7.0], [0.0, 3.5]], "5e shared y")
    close(d["shared"], [[3.0, 6.0], [0.0, 3.0]], "5e shared output")
    close(d["y_routed"], [[0.5, 1.0], [0.0, 0.5]], "5e routed part")
    d = run({**spec, "shared_gate": True}, x, *weights, gate)
    close(d["shared_factor"], [0.75, 0.25], "5e shared_gate factors")
    close(d["y"], [[2.75, 5.5], [0.0, 1.25]], "5e shared_gate y")
    d = run({**spec, "expert_capacity": 1}, x, *weights, extra)
    close(d["y"], [[3.5, 7.0], [0.0, 3.0]], "5e dropped token keeps the shared expert")
    check(d["stats"]["tokens_per_expert"] == [1, 0] and d["stats"]["dropped"] == 1,
          f"5e shared expert counts in no statistic {d['stats']}")
    close(d["stats"]["load_balance_loss"], 1.0, "5e load_balance_loss")
    close(d["stats"]["router_z_loss"], math.log(2.0) ** 2, "5e router_z_loss")
    d = run({**spec, "expert_capacity": 1, "shared_gate": True}, x, *weights, gate)
    close(d["y"], [[2.75, 5.5], [0.0, 0.75]], "5e dropped token, shared_gate")
    d = run({"d_model": 2, "d_ff": 2, "num_experts": 2}, x, *weights)
    check(np.array_equal(d["shared"], np.zeros((2, 2))), "5e no shared expert: zeros")

    silu1, silu2 = KNOWN_ACTIVATIONS["silu"][0], KNOWN_ACTIVATIONS["silu"][2]
    spec = {"d_model": 1, "d_ff": 1, "num_experts": 1, "activation": "swiglu", "shared_d_ff": 1}
    extra = {"shared_w_in": [[1.0]], "shared_w_gate": [[2.0]], "shared_w_out": [[3.0]]}
    d = run(spec, [[1.0]], [[0.0]], [[[2.0]]], [[[1.0]]], [[[1.0]]], extra)
    close(d["y"], [[2.0 * silu1 + 3.0 * silu2]], "5e gated shared expert")
    d = run({**spec, "shared_gate": True}, [[1.0]], [[0.0]], [[[2.0]]], [[[1.0]]], [[[1.0]]],
            {**extra, "shared_gate": [ln3]})
    close(d["y"], [[2.0 * silu1 + 2.25 * silu2]], "5e gated shared expert, shared_gate")


# 5f. Expert choice. E=2, D=F=2, relu, router = I, w_in = I, w_out[e] = (e+1) I,
# gate_scale 2, one group of 5, expert_capacity 2 (also from capacity_factor 0.5:
# ceil(0.5 * 5 / 2) = ceil(1.25) = 2). relu(x) = x for these tokens.
#   t0 = (1, 1)          p = (1/2, 1/2)  lse = 1 + ln 2
#   t1 = (1 + ln 3, 1)   p = (3/4, 1/4)  lse = 1 + ln 4
#   t2 = (1, 1 + ln 3)   p = (1/4, 3/4)  lse = 1 + ln 4
#   t3 = t1, t4 = t0
# e0 by p[., 0] = (1/2, 3/4, 1/4, 3/4, 1/2): t1 (slot 0), t3 (tie with t1: slot 1).
# e1 by p[., 1] = (1/2, 1/4, 3/4, 1/4, 1/2): t2 (slot 0), then t0 and t4 tie at 1/2: t0
#   (the lower token index, slot 1). Nobody takes t4: dropped 1.
# gates = 2 p where taken: t0 (0, 1), t1 (3/2, 0), t2 (0, 3/2), t3 (3/2, 0), t4 (0, 0).
# y0 = 1 * 2 (1, 1) = (2, 2); y1 = y3 = 3/2 (1 + ln 3, 1); y2 = 3/2 * 2 (1, 1 + ln 3);
#   y4 = 0. tokens_per_expert [2, 2], capacity 2, load_balance_loss null,
#   z loss (2 (1 + ln 2)^2 + 3 (1 + ln 4)^2) / 5.
# Groups of 2 (t0..t3), expert_capacity 1: g0 e0 (1/2, 3/4) -> t1, e1 (1/2, 1/4) -> t0;
#   g1 e0 (1/4, 3/4) -> t3, e1 (3/4, 1/4) -> t2: everyone taken, dropped 0, [2, 2].
# expert_capacity 9 > S = 5: C = 5, every expert takes every token:
#   y0 = 2 (1/2 + 2/2) (1, 1) = (3, 3); tokens_per_expert [5, 5], dropped 0.
# Two tokens taken by the same expert set: t0 = (1, 1), t1 = NaN row, C = 1: every p of t1
#   is NaN (ranks as -inf), so both experts take t0: y0 = 2 (1/2 * 1 + 1/2 * 2) (1, 1)
#   = (3, 3); t1 is not taken, y1 = 0; dropped 1, tokens_per_expert [1, 1].
# Shared expert with expert choice (shared_w_in = I, shared_w_out = I): t4 gets only x4.
# ---------------------------------------------------------------------------------------------

def check_hand_experts_choose():
    ln3 = math.log(3.0)
    x = np.array([[1.0, 1.0], [1.0 + ln3, 1.0], [1.0, 1.0 + ln3], [1.0 + ln3, 1.0],
                  [1.0, 1.0]])
    weights = (np.eye(2), np.stack([np.eye(2)] * 2), None,
               np.stack([np.eye(2), 2.0 * np.eye(2)]))
    spec = {"d_model": 2, "d_ff": 2, "num_experts": 2, "routing": "experts_choose",
            "gate_scale": 2.0}
    z_loss = (2 * (1 + math.log(2.0)) ** 2 + 3 * (1 + math.log(4.0)) ** 2) / 5
    want_y = [[2.0, 2.0], 1.5 * x[1], 3.0 * x[2], 1.5 * x[3], [0.0, 0.0]]
    for capacity in ({"expert_capacity": 2}, {"capacity_factor": 0.5}):
        d = run({**spec, **capacity}, x, *weights)
        where = f"5f {capacity}"
        check(d["capacity"] == 2, f"{where} capacity {d['capacity']}")
        check(d["taken"].tolist() == [[False, True], [True, False], [False, True],
                                      [True, False], [False, False]],
              f"{where} taken {d['taken'].tolist()}")
        check(np.array_equal(d["kept"], d["taken"]), f"{where} kept = taken")
        check(d["slot"].tolist() == [[-1, 1], [0, -1], [-1, 0], [1, -1], [-1, -1]],
              f"{where} slot {d['slot'].tolist()}")
        check(d["choice"].tolist() == [[0, 1]] * 5, f"{where} choice")
        close(d["gates"], [[0, 1], [1.5, 0], [0, 1.5], [1.5, 0], [0, 0]], f"{where} gates")
        close(d["y"], want_y, f"{where} y")
        close(d["top1_prob"], [0.5, 0.75, 0.75, 0.75, 0.5], f"{where} top1_prob")
        stats = d["stats"]
        check(stats["capacity"] == 2 and stats["tokens_per_expert"] == [2, 2]
              and stats["dropped"] == 1 and stats["load_balance_loss"] is None,
              f"{where} stats {stats}")
        close(stats["router_z_loss"], z_loss, f"{where} router_z_loss")

    d = run({**spec, "expert_capacity": 1, "group_size": 2}, x[:4], *weights)
    check(d["taken"].tolist() == [[False, True], [True, False], [False, True], [True, False]],
          f"5f groups taken {d['taken'].tolist()}")
    check(d["stats"]["dropped"] == 0 and d["stats"]["tokens_per_expert"] == [2, 2],
          f"5f groups stats {d['stats']}")

    d = run({**spec, "expert_capacity": 9}, x, *weights)
    check(d["capacity"] == 5 and d["stats"]["tokens_per_expert"] == [5, 5]
          and d["stats"]["dropped"] == 0, f"5f C clamped to S: {d['stats']}")
    close(d["y"][0], [3.0, 3.0], "5f every expert takes t0")

    with np.errstate(invalid="ignore"):
        d = run({**spec, "expert_capacity": 1}, [[1.0, 1.0], [math.nan, math.nan]], *weights)
    check(d["taken"].tolist() == [[True, True], [False, False]],
          f"5f NaN token ranks last {d['taken'].tolist()}")
    check(np.array_equal(d["y"], [[3.0, 3.0], [0.0, 0.0]]), f"5f NaN y {d['y'].tolist()}")
    check(d["stats"]["dropped"] == 1 and d["stats"]["tokens_per_expert"] == [1, 1],
          f"5f NaN stats {d['stats']}")

    d = run({**spec, "expert_capacity": 2, "shared_d_ff": 2}, x, *weights,
            {"shared_w_in": np.eye(2), "shared_w_out": np.eye(2)})
    close(d["y"], np.array(want_y) + x, "5f expert choice with a shared expert")


def check_section8_spec():
    def capacity(num_experts=2, **fields):
        spec = reference.apply_defaults({"d_model": 1, "d_ff": 1, "num_experts": num_experts,
                                         "routing": "experts_choose", **fields})
        return reference.expert_capacity(spec, 1024)

    # Expert choice: cf * S / E, no k factor, at most S.
    check(capacity(8, capacity_factor=1.25) == 160, "expert choice C = 1.25 * 1024 / 8")
    check(capacity(8, capacity_factor=0.001, min_capacity=4) == 4, "expert choice min_capacity")
    check(capacity(capacity_factor=3.0) == 1024, "expert choice C at most S (factor)")
    check(capacity(expert_capacity=2000) == 1024, "expert choice C at most S (fixed)")
    check(capacity(expert_capacity=7, capacity_factor=2.0) == 7, "expert choice fixed C")

    ec = reference.apply_defaults({"d_model": 4, "d_ff": 8, "num_experts": 2,
                                   "routing": "experts_choose", "capacity_factor": 1.0,
                                   "score_bias": False, "num_groups": 1,
                                   "score_function": "softmax"})
    check(ec["top_k"] is None and ec["normalize_gates"] is None and ec["priority"] is None
          and ec["routing"] == "experts_choose", f"expert-choice defaults {ec}")
    ds = reference.apply_defaults({"d_model": 4, "d_ff": 8, "num_experts": 256, "top_k": 8,
                                   "score_function": "sigmoid", "score_bias": True,
                                   "num_groups": 8, "topk_groups": 4,
                                   "group_score": "top2_sum", "gate_scale": 2.5,
                                   "shared_d_ff": 16})
    check(ds["normalize_gates"] is True and ds["gate_scale"] == 2.5 and not ds["shared_gate"],
          f"DeepSeek-V3-like spec {ds}")
    groups = reference.apply_defaults({"d_model": 4, "d_ff": 8, "num_experts": 6,
                                       "num_groups": 3})
    check(groups["topk_groups"] == 3, "topk_groups defaults to num_groups")
    check(reference.apply_defaults({"d_model": 4, "d_ff": 8, "num_experts": 4, "top_k": 2,
                                    "num_groups": 2, "topk_groups": 1})["top_k"] == 2,
          "k = topk_groups * E / G is allowed")

    base = {"d_model": 4, "d_ff": 8, "num_experts": 4}
    ec = {**base, "routing": "experts_choose", "expert_capacity": 2}
    bad_specs = [
        ({**base, "routing": "random"}, "routing"),
        ({**base, "score_function": "tanh"}, "score_function"),
        ({**base, "score_bias": 1}, "score_bias"),
        ({**base, "num_groups": 0}, "num_groups"),
        ({**base, "num_groups": 3}, "num_groups"),
        ({**base, "num_groups": True}, "num_groups"),
        ({**base, "num_groups": 2, "topk_groups": 0}, "topk_groups"),
        ({**base, "num_groups": 2, "topk_groups": 3}, "topk_groups"),
        ({**base, "topk_groups": 2}, "topk_groups"),
        ({**base, "group_score": "sum"}, "group_score"),
        ({**base, "num_groups": 4, "group_score": "top2_sum"}, "group_score"),
        ({**base, "gate_scale": 0}, "gate_scale"),
        ({**base, "gate_scale": -1.0}, "gate_scale"),
        ({**base, "gate_scale": "2.5"}, "gate_scale"),
        ({**base, "gate_scale": True}, "gate_scale"),
        ({**base, "shared_d_ff": -1}, "shared_d_ff"),
        ({**base, "shared_d_ff": 1.5}, "shared_d_ff"),
        ({**base, "shared_gate": 1, "shared_d_ff": 4}, "shared_gate"),
        ({**base, "shared_gate": True}, "shared_gate"),
        ({**base, "shared_gate": True, "shared_d_ff": 0}, "shared_gate"),
        ({**base, "top_k": 3, "num_groups": 2, "topk_groups": 1}, "top_k"),
        ({**base, "top_k": 2, "num_groups": 4, "topk_groups": 1}, "top_k"),
        ({**ec, "top_k": 1}, "top_k"),
        ({**ec, "normalize_gates": False}, "normalize_gates"),
        ({**ec, "priority": "position"}, "priority"),
        ({**ec, "score_bias": True}, "score_bias"),
        ({**ec, "num_groups": 2}, "num_groups"),
        ({**ec, "score_function": "sigmoid"}, "score_function"),
        ({**base, "routing": "experts_choose"}, "capacity_factor"),
        ({**base, "routing": "experts_choose", "capacity_factor": None}, "capacity_factor"),
    ]
    for spec, field in bad_specs:
        try:
            reference.apply_defaults(spec)
            check(False, f"spec {spec} accepted")
        except ValueError as err:
            check(f"'{field}'" in str(err), f"error for {spec} names '{field}': {err}")

    # The section 8 weights: missing, mis-shaped or unknown ones are errors naming them.
    layer = (np.zeros((3, 4)), np.zeros((4, 4)), np.zeros((4, 4, 8)), None, np.zeros((4, 8, 4)))
    gated = (np.zeros((3, 4)), np.zeros((4, 4)), np.zeros((4, 4, 8)), np.zeros((4, 4, 8)),
             np.zeros((4, 8, 4)))
    shared = {"shared_w_in": np.zeros((4, 2)), "shared_w_out": np.zeros((2, 4))}
    bad_weights = [
        ({**base, "score_bias": True}, layer, None, "score_bias"),
        ({**base, "score_bias": True}, layer, {"score_bias": np.zeros(5)}, "score_bias"),
        ({**base, "shared_d_ff": 2}, layer, {"shared_w_out": np.zeros((2, 4))}, "shared_w_in"),
        ({**base, "shared_d_ff": 2}, layer, {"shared_w_in": np.zeros((4, 2))}, "shared_w_out"),
        ({**base, "shared_d_ff": 2}, layer, {**shared, "shared_w_in": np.zeros((2, 4))},
         "shared_w_in"),
        ({**base, "shared_d_ff": 3}, layer, shared, "shared_w_in"),
        ({**base, "shared_d_ff": 2, "activation": "swiglu"}, gated, shared, "shared_w_gate"),
        ({**base, "shared_d_ff": 2, "activation": "geglu"}, gated,
         {**shared, "shared_w_gate": np.zeros((4, 3))}, "shared_w_gate"),
        ({**base, "shared_d_ff": 2, "shared_gate": True}, layer, shared, "shared_gate"),
        ({**base, "shared_d_ff": 2, "shared_gate": True}, layer,
         {**shared, "shared_gate": np.zeros((4, 1))}, "shared_gate"),
        (base, layer, {"bias": np.zeros(4)}, "bias"),
    ]
    for spec, (x, router, w_in, w_gate, w_out), extra, name in bad_weights:
        try:
            reference.moe_layer(spec, x, router, w_in, w_gate, w_out, extra)
            check(False, f"weights {sorted(extra or {})} for {spec} accepted")
        except ValueError as err:
            check(f"'{name}'" in str(err) or str(err).startswith(name + " "),
                  f"error for {spec} / {sorted(extra or {})} names '{name}': {err}")
    # Weights the spec does not use are ignored, as w_gate is for ungated activations.
    y, _ = reference.moe_layer(base, *layer, {"score_bias": np.zeros(4), **shared})
    check(np.array_equal(y, np.zeros((3, 4))), "unused section 8 weights are ignored")


# ---------------------------------------------------------------------------------------------
# 6. Section 8 brute force: random specs with sigmoid scores, score bias (some NaN), expert
#    groups, gate scale, shared experts and expert choice, against a second implementation
#    that picks the kept groups by enumerating every subset of groups, ranks experts and
#    tokens by counting who beats whom, and works token by token in Python floats.
# ---------------------------------------------------------------------------------------------

def brute_sigmoid(z):
    if math.isnan(z):
        return math.nan
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    return math.exp(z) / (1.0 + math.exp(z))


def brute_beats(values, a, b):
    """Index a ranks above index b: larger value (a NaN counts as -inf), or equal and lower."""
    va = -math.inf if math.isnan(values[a]) else values[a]
    vb = -math.inf if math.isnan(values[b]) else values[b]
    return va > vb or (va == vb and a < b)


def brute_group_score(keys, group_score):
    """keys: a group's choice scores with NaN already -inf. 'top2_sum' as the best pair sum."""
    if group_score == "max":
        return max(keys)
    pair_sums = [keys[i] + keys[j] for i, j in itertools.combinations(range(len(keys)), 2)]
    return max(-math.inf if math.isnan(v) else v for v in pair_sums)


def brute_force_section8(spec, x, scores, lses, w_in, w_gate, w_out, extra):
    """Section 8 again, from the scores the reference computed (see brute_force_layer)."""
    spec = reference.apply_defaults(spec)
    num_tokens, num_experts = len(x), spec["num_experts"]
    size = spec["group_size"] or num_tokens
    act = reference.ACTIVATION_FUNCTIONS[spec["activation"]]
    scale = spec["gate_scale"]

    def expert_out(e, t):
        h = x[t] @ w_in[e]
        a = act(x[t] @ w_gate[e]) * h if w_gate is not None else act(h)
        return a @ w_out[e]

    y = np.zeros((num_tokens, spec["d_model"]))
    result = {}
    if spec["routing"] == "tokens_choose":
        k, num_groups = spec["top_k"], spec["num_groups"]
        per_group = num_experts // num_groups
        bias = list(extra["score_bias"]) if spec["score_bias"] else [0.0] * num_experts
        chosen, gates, kept_groups = [], [], []
        for t in range(num_tokens):
            c = [scores[t][e] + bias[e] for e in range(num_experts)]
            keys = [-math.inf if math.isnan(v) else v for v in c]
            gscore = [brute_group_score(keys[g * per_group:(g + 1) * per_group],
                                        spec["group_score"]) for g in range(num_groups)]
            # The kept set: the one subset of topk_groups groups whose every member beats
            # every group outside it.
            winners = [set(subset)
                       for subset in itertools.combinations(range(num_groups), spec["topk_groups"])
                       if all(brute_beats(gscore, a, b) for a in subset
                              for b in range(num_groups) if b not in subset)]
            assert len(winners) == 1, winners
            kept_groups.append([g in winners[0] for g in range(num_groups)])
            allowed = [e for e in range(num_experts) if e // per_group in winners[0]]
            # An allowed expert's place = how many allowed experts beat it.
            place = {e: sum(brute_beats(c, o, e) for o in allowed) for e in allowed}
            mine = [next(e for e in allowed if place[e] == j) for j in range(k)]
            chosen.append(mine)
            g = [scores[t][e] for e in mine]
            if spec["normalize_gates"]:
                total = sum(g)
                g = [v / total for v in g]
            gates.append([v * scale for v in g])

        if spec["expert_capacity"] is not None:
            cap = spec["expert_capacity"]
        elif spec["capacity_factor"] is not None:
            cap = max(spec["min_capacity"],
                      math.ceil(spec["capacity_factor"] * k * size / num_experts))
        else:
            cap = None
        slots = {}
        for start in range(0, num_tokens, size):
            ranking = []
            for pos in range(size):
                t = start + pos
                key = -scores[t][chosen[t][0]] if spec["priority"] == "batch_prioritized" \
                    else 0.0
                ranking.extend((j, key, pos, t, chosen[t][j]) for j in range(k))
            ranking.sort()
            fill = {}
            for j, _, _, t, e in ranking:
                n = fill.get(e, 0)
                slots[(t, j)] = n if cap is None or n < cap else -1
                fill[e] = n + 1 if slots[(t, j)] >= 0 else n
        for t in range(num_tokens):
            for j in range(k):
                if slots[(t, j)] >= 0:
                    y[t] = y[t] + gates[t][j] * expert_out(chosen[t][j], t)
        counts = [sum(1 for (t, j), s in slots.items() if s >= 0 and chosen[t][j] == e)
                  for e in range(num_experts)]
        losses = []
        for start in range(0, num_tokens, size):
            members = range(start, start + size)
            mean_p = [sum(scores[t][e] / sum(scores[t]) for t in members) / size
                      for e in range(num_experts)]
            losses.append(num_experts / size * sum(mean_p[chosen[t][0]] for t in members))
        stats = {"capacity": cap, "tokens_per_expert": counts,
                 "dropped": sum(1 for s in slots.values() if s < 0),
                 "load_balance_loss": sum(losses) / len(losses)}
        result.update(choice=np.array(chosen), gates=np.array(gates),
                      slot=np.array([[slots[(t, j)] for j in range(k)]
                                     for t in range(num_tokens)]),
                      group_kept=np.array(kept_groups))
    else:
        if spec["expert_capacity"] is not None:
            cap = spec["expert_capacity"]
        else:
            cap = max(spec["min_capacity"],
                      math.ceil(spec["capacity_factor"] * size / num_experts))
        cap = min(cap, size)
        slot = np.full((num_tokens, num_experts), -1)
        for start in range(0, num_tokens, size):
            for e in range(num_experts):
                column = [scores[start + i][e] for i in range(size)]
                for i in range(size):
                    place = sum(brute_beats(column, o, i) for o in range(size))
                    if place < cap:
                        slot[start + i, e] = place
        for t in range(num_tokens):
            for e in range(num_experts):
                if slot[t, e] >= 0:
                    y[t] = y[t] + scale * scores[t][e] * expert_out(e, t)
        stats = {"capacity": cap,
                 "tokens_per_expert": [int(np.sum(slot[:, e] >= 0))
                                       for e in range(num_experts)],
                 "dropped": sum(1 for t in range(num_tokens) if max(slot[t]) < 0),
                 "load_balance_loss": None}
        result.update(slot=slot, taken=slot >= 0)

    shared = np.zeros_like(y)
    if spec["shared_d_ff"] > 0:
        for t in range(num_tokens):
            h = x[t] @ extra["shared_w_in"]
            a = act(x[t] @ extra["shared_w_gate"]) * h \
                if spec["activation"] in reference.GATED_ACTIVATIONS else act(h)
            factor = brute_sigmoid(float(x[t] @ extra["shared_gate"])) \
                if spec["shared_gate"] else 1.0
            shared[t] = factor * (a @ extra["shared_w_out"])
    stats["router_z_loss"] = sum(v * v for v in lses) / num_tokens
    result.update(y=y + shared, shared=shared, stats=stats)
    return result


def random_case_section8(rng):
    """A random small layer using the fields of section 8: half with small-integer logits and
    biases from a few values so that exact ties are frequent; one bias in ten holds a NaN."""
    experts_choose = rng.random() < 0.35
    num_experts = rng.randint(1, 8)
    num_tokens = rng.randint(1, 16)
    divisors = [s for s in range(1, num_tokens + 1) if num_tokens % s == 0]
    d_model, d_ff = rng.randint(1, 4), rng.randint(1, 4)
    spec = {"d_model": d_model, "d_ff": d_ff, "num_experts": num_experts,
            "activation": rng.choice(reference.ACTIVATIONS)}
    if rng.random() < 0.5:
        spec["group_size"] = rng.choice(divisors)
    if rng.random() < 0.6:
        spec["gate_scale"] = rng.choice([0.5, 1.0, 2.5, 16])
    nprng = np.random.default_rng(rng.randint(0, 2 ** 31))
    extra = {}
    if experts_choose:
        spec["routing"] = "experts_choose"
        if rng.random() < 0.5:
            spec["expert_capacity"] = rng.randint(1, 6)
        else:
            spec["capacity_factor"] = rng.choice([0.25, 0.5, 1.0, 1.5, 3.0])
            spec["min_capacity"] = rng.randint(1, 3)
    else:
        num_groups = rng.choice([g for g in range(1, num_experts + 1) if num_experts % g == 0])
        per_group = num_experts // num_groups
        if num_groups > 1 or rng.random() < 0.2:
            spec["num_groups"] = num_groups
            spec["topk_groups"] = rng.randint(1, num_groups)
        topk_groups = spec.get("topk_groups", num_groups)
        if per_group >= 2 and rng.random() < 0.5:
            spec["group_score"] = "top2_sum"
        spec["top_k"] = rng.randint(1, topk_groups * per_group)
        spec["score_function"] = rng.choice(reference.SCORE_FUNCTIONS)
        spec["priority"] = rng.choice(reference.PRIORITIES)
        if rng.random() < 0.3:
            spec["normalize_gates"] = rng.random() < 0.5
        capacity_kind = rng.choice(["none", "fixed", "factor"])
        if capacity_kind == "fixed":
            spec["expert_capacity"] = rng.randint(1, 4)
        elif capacity_kind == "factor":
            spec["capacity_factor"] = rng.choice([0.25, 0.5, 1.0, 2.0])
            spec["min_capacity"] = rng.randint(1, 3)
        if rng.random() < 0.6:
            spec["score_bias"] = True
            bias = nprng.choice([-0.5, -0.25, 0.0, 0.25, 0.5], num_experts)
            if rng.random() < 0.1:
                bias[rng.randrange(num_experts)] = math.nan
            extra["score_bias"] = bias
    if rng.random() < 0.4:
        fs = rng.randint(1, 3)
        spec["shared_d_ff"] = fs
        extra["shared_w_in"] = nprng.standard_normal((d_model, fs))
        extra["shared_w_gate"] = nprng.standard_normal((d_model, fs))
        extra["shared_w_out"] = nprng.standard_normal((fs, d_model))
        if rng.random() < 0.5:
            spec["shared_gate"] = True
            extra["shared_gate"] = nprng.standard_normal(d_model)
    if rng.random() < 0.5:
        x = nprng.integers(-1, 2, (num_tokens, d_model)).astype(np.float64)
        router = nprng.integers(-1, 2, (num_experts, d_model)).astype(np.float64)
    else:
        x = nprng.standard_normal((num_tokens, d_model))
        router = nprng.standard_normal((num_experts, d_model))
    w_in = nprng.standard_normal((num_experts, d_model, d_ff))
    w_gate = nprng.standard_normal((num_experts, d_model, d_ff)) \
        if spec["activation"] in reference.GATED_ACTIVATIONS else None
    w_out = nprng.standard_normal((num_experts, d_ff, d_model))
    return spec, x, router, w_in, w_gate, w_out, extra


def check_brute_force_section8(trials=1000):
    rng = random.Random(20250301)
    for trial in range(trials):
        spec, x, router, w_in, w_gate, w_out, extra = random_case_section8(rng)
        d = reference.moe_layer_details(spec, x, router, w_in, w_gate, w_out, extra)
        where = f"section 8 random trial {trial} {spec}"
        if d["spec"]["score_function"] == "softmax":
            want, lses = brute_force_router(x, router)
        else:
            _, lses = brute_force_router(x, router)
            want = [[brute_sigmoid(float(np.dot(row, weights))) for weights in router]
                    for row in x]
        close(d["scores"], want, f"{where}: scores")
        close(d["lse"], lses, f"{where}: lse")
        b = brute_force_section8(spec, x, d["scores"].tolist(), lses, w_in, w_gate, w_out,
                                 extra)
        if d["spec"]["routing"] == "tokens_choose":
            check(np.array_equal(d["choice"], b["choice"]),
                  f"{where}: choice {d['choice'].tolist()} vs {b['choice'].tolist()}")
            check(np.array_equal(d["group_kept"], b["group_kept"]), f"{where}: group_kept")
            close(d["gates"], b["gates"], f"{where}: gates")
        else:
            check(np.array_equal(d["taken"], b["taken"]), f"{where}: taken")
            check(np.array_equal(d["kept"], b["taken"]), f"{where}: kept")
            close(d["gates"], np.where(b["taken"], d["spec"]["gate_scale"] * d["scores"], 0.0),
                  f"{where}: gates")
        check(np.array_equal(d["slot"], b["slot"]),
              f"{where}: slots {d['slot'].tolist()} vs {b['slot'].tolist()}")
        close(d["shared"], b["shared"], f"{where}: shared", rel=1e-12, abs_tol=1e-12)
        close(d["y"], b["y"], f"{where}: y", rel=1e-12, abs_tol=1e-12)
        for key in ("capacity", "tokens_per_expert", "dropped"):
            check(d["stats"][key] == b["stats"][key],
                  f"{where}: {key} {d['stats'][key]} vs {b['stats'][key]}")
        if b["stats"]["load_balance_loss"] is None:
            check(d["stats"]["load_balance_loss"] is None, f"{where}: load_balance_loss null")
        else:
            close(d["stats"]["load_balance_loss"], b["stats"]["load_balance_loss"],
                  f"{where}: load_balance_loss")
        close(d["stats"]["router_z_loss"], b["stats"]["router_z_loss"],
              f"{where}: router_z_loss")


def main():
    check_hand_top1()
    check_hand_top2_groups()
    check_activations()
    check_capacity_and_spec()
    check_brute_force()
    check_io()
    check_hand_sigmoid_bias()
    check_hand_bias_priority()
    check_hand_expert_groups()
    check_hand_nan_groups()
    check_hand_shared_expert()
    check_hand_experts_choose()
    check_section8_spec()
    check_brute_force_section8()
    if FAILURES:
        print(f"check_reference: {len(FAILURES)} of {CHECKS[0]} checks FAILED")
        return 1
    print(f"check_reference: all {CHECKS[0]} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
