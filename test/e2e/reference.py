"""Float64 reference of one MoE layer, written straight from shared/spec/moe-layer.md.

This is the independent oracle the end-to-end tests compare every backend against: it
implements spec section 3 (semantics) and section 4 (statistics) in float64 with numpy,
importing nothing from the project. The matrix products are vectorized; routing, priority
and slot assignment are explicit loops so that they read like the spec.

Entry points:
  apply_defaults(spec)                -> the layer spec with every default of section 1 filled in
  moe_layer(spec, x, router, w_in, w_gate, w_out) -> (y, stats)
  moe_layer_details(...)              -> dict with every intermediate (probabilities, choices,
                                         gates, kept mask, slots, ...) for tests and tie checks

Weights use our layout: router [E, D], w_in [E, D, F], w_gate [E, D, F] (gated activations
only, else None), w_out [E, F, D]. When the weights were stored as bfloat16, pass the rounded
values: the reference evaluates whatever numbers it is given, in float64.
"""

import math

import numpy as np

ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "silu", "geglu", "swiglu")
GATED_ACTIVATIONS = ("geglu", "swiglu")
PRIORITIES = ("position", "batch_prioritized")
SPEC_FIELDS = ("d_model", "d_ff", "num_experts", "top_k", "activation", "normalize_gates",
               "capacity_factor", "expert_capacity", "min_capacity", "group_size", "priority")


# ---------------------------------------------------------------------------------------------
# Section 1: the layer spec and its defaults.
# ---------------------------------------------------------------------------------------------

def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def apply_defaults(spec):
    """Return a copy of the layer spec with every field present; raise ValueError naming
    the field on an unknown field, a wrong type or an impossible value."""
    for name in spec:
        if name not in SPEC_FIELDS:
            raise ValueError(f"unknown field '{name}'")
    out = {}
    for name in ("d_model", "d_ff", "num_experts"):
        if name not in spec:
            raise ValueError(f"missing required field '{name}'")
        if not _is_int(spec[name]) or spec[name] <= 0:
            raise ValueError(f"field '{name}' must be an integer > 0")
        out[name] = spec[name]
    num_experts = out["num_experts"]

    top_k = spec.get("top_k", 1)
    if not _is_int(top_k) or not 1 <= top_k <= num_experts:
        raise ValueError(f"field 'top_k' must be an integer in [1, num_experts={num_experts}]")
    out["top_k"] = top_k

    activation = spec.get("activation", "relu")
    if activation not in ACTIVATIONS:
        raise ValueError(f"field 'activation' must be one of {', '.join(ACTIVATIONS)}")
    out["activation"] = activation

    normalize = spec.get("normalize_gates", top_k > 1)
    if not isinstance(normalize, bool):
        raise ValueError("field 'normalize_gates' must be a boolean")
    out["normalize_gates"] = normalize

    capacity_factor = spec.get("capacity_factor", None)
    if capacity_factor is not None and (not _is_number(capacity_factor) or capacity_factor <= 0):
        raise ValueError("field 'capacity_factor' must be a number > 0 or null")
    out["capacity_factor"] = capacity_factor

    # An absent expert_capacity is represented as None.
    expert_capacity = spec.get("expert_capacity", None)
    if expert_capacity is not None and (not _is_int(expert_capacity) or expert_capacity <= 0):
        raise ValueError("field 'expert_capacity' must be an integer > 0")
    out["expert_capacity"] = expert_capacity

    min_capacity = spec.get("min_capacity", 1)
    if not _is_int(min_capacity) or min_capacity < 1:
        raise ValueError("field 'min_capacity' must be an integer >= 1")
    out["min_capacity"] = min_capacity

    group_size = spec.get("group_size", None)
    if group_size is not None and (not _is_int(group_size) or group_size <= 0):
        raise ValueError("field 'group_size' must be an integer > 0 or null")
    out["group_size"] = group_size

    priority = spec.get("priority", "position")
    if priority not in PRIORITIES:
        raise ValueError(f"field 'priority' must be one of {', '.join(PRIORITIES)}")
    out["priority"] = priority
    return out


# ---------------------------------------------------------------------------------------------
# Section 3.1-3.2: router, softmax, logsumexp, top-k choice, gates.
# ---------------------------------------------------------------------------------------------

def router_probabilities(x, router):
    """logits = x . router^T; returns (p [T, E], lse [T]) in float64, max-subtracted."""
    logits = x @ router.T
    row_max = logits.max(axis=1, keepdims=True)
    exp = np.exp(logits - row_max)
    total = exp.sum(axis=1, keepdims=True)
    p = exp / total
    lse = (row_max + np.log(total))[:, 0]
    return p, lse


def choose_experts(p, top_k, normalize_gates):
    """The k experts with the largest probability, in descending order, equal probabilities
    to the lower expert index (a stable sort of -p keeps index order among equals; numpy
    sorts NaN after every number, the rank section 3.7 gives it).
    Returns (choice [T, k] int, gates [T, k] float64)."""
    num_tokens = p.shape[0]
    choice = np.zeros((num_tokens, top_k), dtype=np.int64)
    gates = np.zeros((num_tokens, top_k), dtype=np.float64)
    for t in range(num_tokens):
        order = np.argsort(-p[t], kind="stable")
        choice[t] = order[:top_k]
        gates[t] = p[t, choice[t]]
        if normalize_gates:
            gates[t] = gates[t] / gates[t].sum()
    return choice, gates


# ---------------------------------------------------------------------------------------------
# Section 3.3-3.4: capacity, priority, slots.
# ---------------------------------------------------------------------------------------------

def expert_capacity(spec, group_size):
    """C per group, or None when dropless. cf * k * S / E is evaluated left to right in
    Python (IEEE double) floats before the ceiling."""
    if spec["expert_capacity"] is not None:
        return spec["expert_capacity"]
    cf = spec["capacity_factor"]
    if cf is None:
        return None
    raw = cf * spec["top_k"] * group_size / spec["num_experts"]
    return max(spec["min_capacity"], math.ceil(raw))


def priority_order(top1_prob, priority):
    """Order of a group's tokens inside one choice rank, as positions in the group:
    group order for 'position'; descending top-1 probability, ties in group order, for
    'batch_prioritized' (Python's sort is stable)."""
    positions = list(range(len(top1_prob)))
    if priority == "position":
        return positions
    # Section 3.7: a NaN probability ranks below every number.
    def key(i):
        value = top1_prob[i]
        return math.inf if math.isnan(value) else -value
    return sorted(positions, key=key)


def assign_slots(choice, top1_prob, group_size, capacity, num_experts, priority):
    """Walk each group's ranking (every first choice before any second choice, ...) and
    give each assignment the next free slot of its expert, or drop it when the expert holds
    `capacity` already (capacity None = unbounded). Returns (kept [T, k] bool,
    slot [T, k] int, -1 where dropped)."""
    num_tokens, top_k = choice.shape
    kept = np.zeros((num_tokens, top_k), dtype=bool)
    slot = np.full((num_tokens, top_k), -1, dtype=np.int64)
    for start in range(0, num_tokens, group_size):
        used = [0] * num_experts
        order = priority_order(top1_prob[start:start + group_size], priority)
        for j in range(top_k):
            for i in order:
                t = start + i
                e = choice[t, j]
                if capacity is None or used[e] < capacity:
                    kept[t, j] = True
                    slot[t, j] = used[e]
                    used[e] += 1
    return kept, slot


# ---------------------------------------------------------------------------------------------
# Section 3.5: activations and experts.
# ---------------------------------------------------------------------------------------------

_erf = np.frompyfunc(math.erf, 1, 1)


def erf(x):
    """Elementwise math.erf (correctly rounded double erf) over an array."""
    return np.asarray(_erf(x), dtype=np.float64).reshape(np.shape(x))


def relu(x):
    return np.maximum(x, 0.0)


def gelu(x):
    """Exact GELU: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))."""
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def gelu_tanh(x):
    """Tanh-approximated GELU: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def silu(x):
    """x * sigmoid(x); sigmoid written with tanh so no exp overflows."""
    return x * 0.5 * (1.0 + np.tanh(0.5 * x))


ACTIVATION_FUNCTIONS = {"relu": relu, "gelu": gelu, "gelu_tanh": gelu_tanh, "silu": silu,
                        "geglu": gelu_tanh, "swiglu": silu}


def expert_forward(activation, x_rows, w_in, w_gate, w_out):
    """out = a . w_out with a = act(x . w_in), or, gated, act(x . w_gate) * (x . w_in)."""
    act = ACTIVATION_FUNCTIONS[activation]
    h = x_rows @ w_in
    if activation in GATED_ACTIVATIONS:
        a = act(x_rows @ w_gate) * h
    else:
        a = act(h)
    return a @ w_out


# ---------------------------------------------------------------------------------------------
# The layer: sections 3 and 4 together.
# ---------------------------------------------------------------------------------------------

def _as_f64(name, value, shape):
    array = np.asarray(value, dtype=np.float64)
    if array.shape != shape:
        raise ValueError(f"{name} has shape {list(array.shape)}, expected {list(shape)}")
    return array


def moe_layer_details(spec, x, router, w_in, w_gate, w_out):
    """Evaluate the layer in float64; return a dict with y, the statistics and every
    intermediate: spec (with defaults), p, lse, choice, gates, capacity, group_size,
    kept, slot."""
    spec = apply_defaults(spec)
    d_model, d_ff, num_experts = spec["d_model"], spec["d_ff"], spec["num_experts"]
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != d_model:
        raise ValueError(f"x has shape {list(x.shape)}, expected [T, {d_model}]")
    num_tokens = x.shape[0]
    router = _as_f64("router", router, (num_experts, d_model))
    w_in = _as_f64("w_in", w_in, (num_experts, d_model, d_ff))
    w_out = _as_f64("w_out", w_out, (num_experts, d_ff, d_model))
    gated = spec["activation"] in GATED_ACTIVATIONS
    if gated:
        if w_gate is None:
            raise ValueError(f"activation '{spec['activation']}' needs w_gate")
        w_gate = _as_f64("w_gate", w_gate, (num_experts, d_model, d_ff))

    group_size = spec["group_size"] if spec["group_size"] is not None else num_tokens
    if num_tokens % group_size != 0:
        raise ValueError(f"field 'group_size' ({group_size}) does not divide T ({num_tokens})")

    # 3.1 router, 3.2 choice and gates.
    p, lse = router_probabilities(x, router)
    choice, gates = choose_experts(p, spec["top_k"], spec["normalize_gates"])
    top1_prob = p[np.arange(num_tokens), choice[:, 0]]

    # 3.3 capacity, 3.4 priority and slots.
    capacity = expert_capacity(spec, group_size)
    kept, slot = assign_slots(choice, top1_prob, group_size, capacity, num_experts,
                              spec["priority"])

    # 3.5 experts, 3.6 combine (gates are not renormalised after drops).
    y = np.zeros((num_tokens, d_model), dtype=np.float64)
    for e in range(num_experts):
        tokens, ranks = np.nonzero(kept & (choice == e))
        if tokens.size == 0:
            continue
        out = expert_forward(spec["activation"], x[tokens], w_in[e],
                             w_gate[e] if gated else None, w_out[e])
        # A token chooses k distinct experts, so `tokens` has no repeats here.
        y[tokens] += gates[tokens, ranks][:, None] * out

    # Section 4: statistics.
    tokens_per_expert = [int(np.sum(kept & (choice == e))) for e in range(num_experts)]
    dropped = int(kept.size - kept.sum())
    group_losses = []
    for start in range(0, num_tokens, group_size):
        top1 = choice[start:start + group_size, 0]
        fraction = np.array([np.mean(top1 == e) for e in range(num_experts)])
        mean_prob = p[start:start + group_size].mean(axis=0)
        group_losses.append(num_experts * float(np.sum(fraction * mean_prob)))
    stats = {
        "capacity": capacity,
        "tokens_per_expert": tokens_per_expert,
        "dropped": dropped,
        "load_balance_loss": float(np.mean(group_losses)),
        "router_z_loss": float(np.mean(lse ** 2)),
    }
    return {"y": y, "stats": stats, "spec": spec, "p": p, "lse": lse, "choice": choice,
            "gates": gates, "top1_prob": top1_prob, "capacity": capacity,
            "group_size": group_size, "kept": kept, "slot": slot}


def moe_layer(spec, x, router, w_in, w_gate, w_out):
    """The layer of spec section 3 in float64 (w_gate is None unless the activation is
    gated): returns (y [T, D] float64, stats dict of section 4 with keys capacity,
    tokens_per_expert, dropped, load_balance_loss, router_z_loss)."""
    details = moe_layer_details(spec, x, router, w_in, w_gate, w_out)
    return details["y"], details["stats"]
