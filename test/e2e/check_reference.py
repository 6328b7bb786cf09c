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

Prints one line per failed check and a summary; exits 1 on any mismatch.
"""

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


def run(spec, x, router, w_in, w_gate, w_out):
    return reference.moe_layer_details(spec, np.array(x, dtype=np.float64),
                                       np.array(router, dtype=np.float64),
                                       np.array(w_in, dtype=np.float64),
                                       None if w_gate is None else np.array(w_gate),
                                       np.array(w_out, dtype=np.float64))


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
                   "min_capacity": 1, "group_size": None, "priority": "position"},
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


def main():
    check_hand_top1()
    check_hand_top2_groups()
    check_activations()
    check_capacity_and_spec()
    check_brute_force()
    check_io()
    if FAILURES:
        print(f"check_reference: {len(FAILURES)} of {CHECKS[0]} checks FAILED")
        return 1
    print(f"check_reference: all {CHECKS[0]} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
