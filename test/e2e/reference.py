"""Float64 reference of one MoE layer, written straight from shared/spec/moe-layer.md.

This is the independent oracle the end-to-end tests compare every backend against: it
implements spec section 3 (semantics), section 4 (statistics) and section 8 (routing
families beyond softmax top-k: sigmoid scores, score bias, group-limited choice, gate scale,
a shared expert, expert-choice routing) in float64 with numpy, importing nothing from the
project. The matrix products are vectorized; routing, priority and slot assignment are
explicit loops so that they read like the spec.

Entry points:
  apply_defaults(spec)                -> the layer spec with every default of sections 1 and 8
                                         filled in
  moe_layer(spec, x, router, w_in, w_gate, w_out, extra=None) -> (y, stats)
  moe_layer_details(..., extra=None)  -> dict with every intermediate (scores, choices,
                                         gates, kept mask, slots, ...) for tests and tie checks

Weights use our layout: router [E, D], w_in [E, D, F], w_gate [E, D, F] (gated activations
only, else None), w_out [E, F, D]. The weights of section 8 come in `extra`, a dict keyed by
the spec's weight names (see EXTRA_WEIGHTS): score_bias [E] (when score_bias),
shared_w_in [D, Fs], shared_w_gate [D, Fs] (gated activations), shared_w_out [Fs, D]
(when shared_d_ff = Fs > 0), shared_gate [D] (when shared_gate). A weight the spec needs that
is missing or mis-shaped, or a name that is not one of these, is a ValueError naming it;
weights the spec does not use are ignored (as w_gate is for ungated activations). When the
weights were stored as bfloat16, pass the rounded values: the reference evaluates whatever
numbers it is given, in float64.

With routing 'experts_choose', apply_defaults sets top_k, normalize_gates and priority to
None (they must be absent from the spec), and the per-assignment arrays of the details
(choice, gates, kept, slot) are [T, E], one column per expert: see moe_layer_details.
"""

import math

import numpy as np

ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "silu", "geglu", "swiglu")
GATED_ACTIVATIONS = ("geglu", "swiglu")
PRIORITIES = ("position", "batch_prioritized")
ROUTINGS = ("tokens_choose", "experts_choose")
SCORE_FUNCTIONS = ("softmax", "sigmoid")
GROUP_SCORES = ("max", "top2_sum")
SPEC_FIELDS = ("d_model", "d_ff", "num_experts", "top_k", "activation", "normalize_gates",
               "capacity_factor", "expert_capacity", "min_capacity", "group_size", "priority",
               # Section 8.
               "routing", "score_function", "score_bias", "num_groups", "topk_groups",
               "group_score", "gate_scale", "shared_d_ff", "shared_gate")
# Section 8 weights, passed in the `extra` dict of moe_layer / moe_layer_details.
EXTRA_WEIGHTS = ("score_bias", "shared_w_in", "shared_w_gate", "shared_w_out", "shared_gate")
# Fields that expert-choice routing does not have (section 8: present at all is an error).
TOKENS_CHOOSE_ONLY = ("top_k", "normalize_gates", "priority")


# ---------------------------------------------------------------------------------------------
# Sections 1 and 8: the layer spec and its defaults.
# ---------------------------------------------------------------------------------------------

def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def apply_defaults(spec):
    """Return a copy of the layer spec with every field present; raise ValueError naming
    the field on an unknown field, a wrong type or an impossible value. With routing
    'experts_choose' the fields top_k, normalize_gates and priority must be absent and are
    returned as None."""
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

    routing = spec.get("routing", "tokens_choose")
    if routing not in ROUTINGS:
        raise ValueError(f"field 'routing' must be one of {', '.join(ROUTINGS)}")
    experts_choose = routing == "experts_choose"
    if experts_choose:
        for name in TOKENS_CHOOSE_ONLY:
            if name in spec:
                raise ValueError(f"field '{name}' is not allowed with routing 'experts_choose'")

    if experts_choose:
        top_k = None
    else:
        top_k = spec.get("top_k", 1)
        if not _is_int(top_k) or not 1 <= top_k <= num_experts:
            raise ValueError(
                f"field 'top_k' must be an integer in [1, num_experts={num_experts}]")
    out["top_k"] = top_k

    activation = spec.get("activation", "relu")
    if activation not in ACTIVATIONS:
        raise ValueError(f"field 'activation' must be one of {', '.join(ACTIVATIONS)}")
    out["activation"] = activation

    if experts_choose:
        normalize = None
    else:
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

    if experts_choose:
        priority = None
    else:
        priority = spec.get("priority", "position")
        if priority not in PRIORITIES:
            raise ValueError(f"field 'priority' must be one of {', '.join(PRIORITIES)}")
    out["priority"] = priority

    # Section 8.
    out["routing"] = routing

    score_function = spec.get("score_function", "softmax")
    if score_function not in SCORE_FUNCTIONS:
        raise ValueError(f"field 'score_function' must be one of {', '.join(SCORE_FUNCTIONS)}")
    out["score_function"] = score_function

    score_bias = spec.get("score_bias", False)
    if not isinstance(score_bias, bool):
        raise ValueError("field 'score_bias' must be a boolean")
    out["score_bias"] = score_bias

    num_groups = spec.get("num_groups", 1)
    if not _is_int(num_groups) or num_groups < 1 or num_experts % num_groups != 0:
        raise ValueError(f"field 'num_groups' must be an integer >= 1 dividing "
                         f"num_experts={num_experts}")
    out["num_groups"] = num_groups
    experts_per_group = num_experts // num_groups

    topk_groups = spec.get("topk_groups", num_groups)
    if not _is_int(topk_groups) or not 1 <= topk_groups <= num_groups:
        raise ValueError(
            f"field 'topk_groups' must be an integer in [1, num_groups={num_groups}]")
    out["topk_groups"] = topk_groups

    group_score = spec.get("group_score", "max")
    if group_score not in GROUP_SCORES:
        raise ValueError(f"field 'group_score' must be one of {', '.join(GROUP_SCORES)}")
    if group_score == "top2_sum" and experts_per_group < 2:
        raise ValueError(f"field 'group_score' 'top2_sum' needs at least 2 experts per group "
                         f"(num_experts / num_groups = {experts_per_group})")
    out["group_score"] = group_score

    gate_scale = spec.get("gate_scale", 1.0)
    if not _is_number(gate_scale) or not math.isfinite(gate_scale) or gate_scale <= 0:
        raise ValueError("field 'gate_scale' must be a number > 0")
    out["gate_scale"] = float(gate_scale)

    shared_d_ff = spec.get("shared_d_ff", 0)
    if not _is_int(shared_d_ff) or shared_d_ff < 0:
        raise ValueError("field 'shared_d_ff' must be an integer >= 0")
    out["shared_d_ff"] = shared_d_ff

    shared_gate = spec.get("shared_gate", False)
    if not isinstance(shared_gate, bool):
        raise ValueError("field 'shared_gate' must be a boolean")
    if shared_gate and shared_d_ff == 0:
        raise ValueError("field 'shared_gate' needs a shared expert (shared_d_ff > 0)")
    out["shared_gate"] = shared_gate

    if experts_choose:
        # Section 8: expert-choice scores are the softmax of section 3.1, unbiased, ungrouped,
        # and every expert needs a finite number of slots.
        if score_function != "softmax":
            raise ValueError("field 'score_function' must be 'softmax' with routing "
                             "'experts_choose'")
        if score_bias:
            raise ValueError("field 'score_bias' must be false with routing 'experts_choose'")
        if num_groups != 1:
            raise ValueError("field 'num_groups' must be 1 with routing 'experts_choose'")
        if expert_capacity is None and capacity_factor is None:
            raise ValueError("field 'capacity_factor' must not be null with routing "
                             "'experts_choose' (set capacity_factor or expert_capacity)")
    elif top_k > topk_groups * experts_per_group:
        raise ValueError(f"field 'top_k' ({top_k}) exceeds the experts a token may choose from: "
                         f"topk_groups * num_experts / num_groups = "
                         f"{topk_groups * experts_per_group}")
    return out


# ---------------------------------------------------------------------------------------------
# Sections 3.1 and 8: router, scores, logsumexp.
# ---------------------------------------------------------------------------------------------

def sigmoid(z):
    """Elementwise 1 / (1 + e^-z), written so that no exp overflows: e^-|z| is at most 1.
    NaN stays NaN, +inf gives 1 and -inf gives 0."""
    z = np.asarray(z, dtype=np.float64)
    small = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + small), small / (1.0 + small))


def router_probabilities(x, router):
    """logits = x . router^T; returns (p [T, E], lse [T]) in float64, max-subtracted."""
    logits = x @ router.T
    row_max = logits.max(axis=1, keepdims=True)
    exp = np.exp(logits - row_max)
    total = exp.sum(axis=1, keepdims=True)
    p = exp / total
    lse = (row_max + np.log(total))[:, 0]
    return p, lse


def router_scores(x, router, score_function):
    """Section 8: returns (logits [T, E], s [T, E], lse [T]). s is the softmax of section 3.1
    or the elementwise sigmoid of the logits; lse is the logsumexp of the logits either way."""
    logits = x @ router.T
    p, lse = router_probabilities(x, router)
    if score_function == "softmax":
        return logits, p, lse
    return logits, sigmoid(logits), lse


# ---------------------------------------------------------------------------------------------
# Sections 3.2, 3.7 and 8: choices.
# ---------------------------------------------------------------------------------------------

def rank_value(value):
    """Section 3.7: in every choice a NaN score ranks as -inf (below every number)."""
    value = float(value)
    return -math.inf if math.isnan(value) else value


def best(values, count, candidates=None):
    """The `count` candidates (indices into `values`, default all) with the largest values,
    in descending order; NaN ranks as -inf; equal values go to the lower index."""
    if candidates is None:
        candidates = range(len(values))
    ranked = sorted(candidates, key=lambda i: (-rank_value(values[i]), i))
    return ranked[:count]


def group_scores(choice_scores_row, num_groups, group_score):
    """Section 8: the score of each of the G contiguous expert groups, from the choice
    scores c with NaN replaced by -inf: the group's largest c ('max') or the sum of its two
    largest ('top2_sum')."""
    per_group = len(choice_scores_row) // num_groups
    scores = []
    for g in range(num_groups):
        members = sorted((rank_value(v) for v in
                          choice_scores_row[g * per_group:(g + 1) * per_group]), reverse=True)
        if group_score == "max":
            scores.append(members[0])
        else:
            scores.append(members[0] + members[1])
    return scores


def tokens_choose(p, top_k, normalize_gates, *, bias=None, num_groups=1, topk_groups=None,
                  group_score="max", gate_scale=1.0):
    """Tokens choose (sections 3.2 and 8). For each token t:
      c[t] = s[t] (+ bias);
      with G > 1 groups: each group scored from c, the topk_groups best groups kept (ties to
        the lower group index; a NaN group score ranks as -inf); experts outside them get
        c = -inf;
      the k experts with the largest c, descending, ties to the lower expert index, NaN
        ranked as -inf. (So an expert outside the kept groups is chosen only when the kept
        groups hold fewer than k experts with a score that is a number: section 3.7 ranks a
        NaN as -inf, the same as the masked experts, and the tie goes to the lower index.)
      gates from the unbiased scores: s[t, e_j], divided by their sum when normalize_gates,
        then times gate_scale.
    `p` holds the scores s [T, E]. Returns (choice [T, k] int, gates [T, k] float64,
    choice_scores c [T, E], group_score [T, G], group_kept [T, G] bool, masked choice
    scores [T, E] (c with the experts of dropped groups at -inf))."""
    num_tokens, num_experts = p.shape
    if topk_groups is None:
        topk_groups = num_groups
    per_group = num_experts // num_groups
    c = p + bias[None, :] if bias is not None else p.copy()
    choice = np.zeros((num_tokens, top_k), dtype=np.int64)
    gates = np.zeros((num_tokens, top_k), dtype=np.float64)
    g_scores = np.zeros((num_tokens, num_groups), dtype=np.float64)
    group_kept = np.zeros((num_tokens, num_groups), dtype=bool)
    masked = c.copy()
    for t in range(num_tokens):
        g_scores[t] = group_scores(c[t], num_groups, group_score)
        for g in best(g_scores[t], topk_groups):
            group_kept[t, g] = True
        for e in range(num_experts):
            if not group_kept[t, e // per_group]:
                masked[t, e] = -math.inf
        choice[t] = best(masked[t], top_k)
        gates[t] = p[t, choice[t]]
        if normalize_gates:
            gates[t] = gates[t] / gates[t].sum()
        gates[t] = gates[t] * gate_scale
    return choice, gates, c, g_scores, group_kept, masked


def choose_experts(p, top_k, normalize_gates):
    """Section 3.2 alone (no bias, one expert group, gate_scale 1): the k experts with the
    largest probability, descending, ties to the lower index, NaN ranked as -inf.
    Returns (choice [T, k] int, gates [T, k] float64)."""
    choice, gates = tokens_choose(p, top_k, normalize_gates)[:2]
    return choice, gates


def experts_choose(s, group_size, capacity, gate_scale):
    """Expert choice (section 8). In each group of `group_size` tokens, each expert e takes
    the `capacity` tokens with the largest s[t, e] (NaN ranked as -inf), ties to the lower
    token index. Returns, token-major with one column per expert:
      taken [T, E] bool: expert e took token t;
      slot [T, E] int: the rank of t among the tokens e took in its group (0 = e's best),
        -1 where not taken;
      gates [T, E]: gate_scale * s[t, e] where taken, else 0."""
    num_tokens, num_experts = s.shape
    taken = np.zeros((num_tokens, num_experts), dtype=bool)
    slot = np.full((num_tokens, num_experts), -1, dtype=np.int64)
    for start in range(0, num_tokens, group_size):
        for e in range(num_experts):
            column = s[start:start + group_size, e]
            for rank, i in enumerate(best(column, capacity)):
                taken[start + i, e] = True
                slot[start + i, e] = rank
    gates = np.where(taken, gate_scale * s, 0.0)
    return taken, slot, gates


# ---------------------------------------------------------------------------------------------
# Section 3.3-3.4: capacity, priority, slots.
# ---------------------------------------------------------------------------------------------

def expert_capacity(spec, group_size):
    """C per group, or None when dropless. cf * k * S / E (tokens choose) or cf * S / E
    (experts choose, section 8) is evaluated left to right in Python (IEEE double) floats
    before the ceiling. Expert choice clamps C to at most S (an expert cannot take more
    tokens than its group has), also when it comes from expert_capacity."""
    if spec.get("routing", "tokens_choose") == "experts_choose":
        if spec["expert_capacity"] is not None:
            capacity = spec["expert_capacity"]
        else:
            raw = spec["capacity_factor"] * group_size / spec["num_experts"]
            capacity = max(spec["min_capacity"], math.ceil(raw))
        return min(capacity, group_size)
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
# The layer: sections 3, 4 and 8 together.
# ---------------------------------------------------------------------------------------------

def _as_f64(name, value, shape):
    array = np.asarray(value, dtype=np.float64)
    if array.shape != shape:
        raise ValueError(f"{name} has shape {list(array.shape)}, expected {list(shape)}")
    return array


def _extra_weights(spec, extra):
    """The section 8 weights the spec needs, from `extra`, as float64 arrays (absent ones
    as None). Raises ValueError naming a weight that is missing or mis-shaped, or a name in
    `extra` that is not a section 8 weight."""
    extra = {} if extra is None else extra
    for name in extra:
        if name not in EXTRA_WEIGHTS:
            raise ValueError(f"unknown weight '{name}' (expected one of "
                             f"{', '.join(EXTRA_WEIGHTS)})")
    d_model, num_experts, shared_d_ff = spec["d_model"], spec["num_experts"], spec["shared_d_ff"]
    needed = {}
    if spec["score_bias"]:
        needed["score_bias"] = (num_experts,)
    if shared_d_ff > 0:
        needed["shared_w_in"] = (d_model, shared_d_ff)
        if spec["activation"] in GATED_ACTIVATIONS:
            needed["shared_w_gate"] = (d_model, shared_d_ff)
        needed["shared_w_out"] = (shared_d_ff, d_model)
        if spec["shared_gate"]:
            needed["shared_gate"] = (d_model,)
    weights = dict.fromkeys(EXTRA_WEIGHTS)
    for name, shape in needed.items():
        if extra.get(name) is None:
            raise ValueError(f"the spec needs weight '{name}' {list(shape)} (missing from extra)")
        weights[name] = _as_f64(name, extra[name], shape)
    return weights


def moe_layer_details(spec, x, router, w_in, w_gate, w_out, extra=None):
    """Evaluate the layer in float64; return a dict with y, the statistics and every
    intermediate:
      spec        the spec with defaults (apply_defaults)
      logits      [T, E] x . router^T
      scores      [T, E] s: softmax or sigmoid of the logits (section 8)
      p           [T, E] the same array as scores (the softmax probabilities of section 3.1
                  when score_function is softmax)
      lse         [T] logsumexp of the logits
      choice_scores [T, E] c = s (+ score_bias): what tokens choose by (= s for expert choice)
      group_scores  [T, G] each expert group's score from c, NaN as -inf (section 8)
      group_kept    [T, G] bool: the group is among the token's topk_groups best
      masked_choice_scores [T, E] c with the experts of the other groups at -inf
      capacity, group_size   C per group (None when dropless) and S
      shared      [T, D] what the shared expert adds to y (sigma factor included; zeros when
                  shared_d_ff = 0); y_routed [T, D] = y - shared, the routed experts' part
      shared_factor [T] sigma(x . shared_gate), or ones without shared_gate
      taken       [T, E] bool: expert e processes token t (a kept assignment, or e took t)
    Tokens choose (sections 3 and 8):
      choice [T, k] experts in choice order; gates [T, k] (normalised, times gate_scale);
      kept [T, k] bool; slot [T, k] (-1 where dropped); top1_prob [T] = s[t, e_1], the key of
      batch_prioritized.
    Experts choose (section 8), token-major with one column per expert e:
      choice [T, E] = e in column e (0 .. E-1 on every row); kept [T, E] = taken (e took t);
      slot [T, E] = t's rank among the tokens e took in t's group (0 = e's best), -1 if not
      taken; gates [T, E] = gate_scale * s[t, e] where taken, else 0; top1_prob [T] = the
      token's largest s (NaN as -inf; no priority uses it)."""
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
    extra_w = _extra_weights(spec, extra)

    group_size = spec["group_size"] if spec["group_size"] is not None else num_tokens
    if num_tokens % group_size != 0:
        raise ValueError(f"field 'group_size' ({group_size}) does not divide T ({num_tokens})")

    # 3.1 and 8: router and scores.
    logits, s, lse = router_scores(x, router, spec["score_function"])
    capacity = expert_capacity(spec, group_size)
    y = np.zeros((num_tokens, d_model), dtype=np.float64)

    if spec["routing"] == "tokens_choose":
        # 3.2 and 8: choice and gates.
        choice, gates, c, g_scores, group_kept, masked = tokens_choose(
            s, spec["top_k"], spec["normalize_gates"], bias=extra_w["score_bias"],
            num_groups=spec["num_groups"], topk_groups=spec["topk_groups"],
            group_score=spec["group_score"], gate_scale=spec["gate_scale"])
        # Batch-prioritized ranks by the unbiased score of the first choice.
        top1_prob = s[np.arange(num_tokens), choice[:, 0]]

        # 3.3 capacity, 3.4 priority and slots.
        kept, slot = assign_slots(choice, top1_prob, group_size, capacity, num_experts,
                                  spec["priority"])

        # 3.5 experts, 3.6 combine (gates are not renormalised after drops).
        for e in range(num_experts):
            tokens, ranks = np.nonzero(kept & (choice == e))
            if tokens.size == 0:
                continue
            out = expert_forward(spec["activation"], x[tokens], w_in[e],
                                 w_gate[e] if gated else None, w_out[e])
            # A token chooses k distinct experts, so `tokens` has no repeats here.
            y[tokens] += gates[tokens, ranks][:, None] * out
        taken = np.zeros((num_tokens, num_experts), dtype=bool)
        for t, j in zip(*np.nonzero(kept)):
            taken[t, choice[t, j]] = True
    else:
        # Section 8, experts choose: softmax scores, no bias, one expert group.
        c = s.copy()
        g_scores = np.array([group_scores(row, 1, spec["group_score"]) for row in c])
        g_scores = g_scores.reshape(num_tokens, 1)
        group_kept = np.ones((num_tokens, 1), dtype=bool)
        masked = c.copy()
        taken, slot, gates = experts_choose(s, group_size, capacity, spec["gate_scale"])
        choice = np.tile(np.arange(num_experts, dtype=np.int64), (num_tokens, 1))
        kept = taken
        top1_prob = np.array([s[t, best(s[t], 1)[0]] for t in range(num_tokens)])
        for e in range(num_experts):
            tokens = np.nonzero(taken[:, e])[0]
            if tokens.size == 0:
                continue
            out = expert_forward(spec["activation"], x[tokens], w_in[e],
                                 w_gate[e] if gated else None, w_out[e])
            y[tokens] += gates[tokens, e][:, None] * out

    # Section 8: the shared expert, for every token, dropped or not.
    y_routed = y.copy()
    shared = np.zeros((num_tokens, d_model), dtype=np.float64)
    shared_factor = np.ones(num_tokens, dtype=np.float64)
    if spec["shared_d_ff"] > 0:
        out = expert_forward(spec["activation"], x, extra_w["shared_w_in"],
                             extra_w["shared_w_gate"], extra_w["shared_w_out"])
        if spec["shared_gate"]:
            shared_factor = sigmoid(x @ extra_w["shared_gate"])
        shared = shared_factor[:, None] * out
        y = y + shared

    # Sections 4 and 8: statistics.
    tokens_per_expert = [int(np.sum(taken[:, e])) for e in range(num_experts)]
    if spec["routing"] == "tokens_choose":
        dropped = int(kept.size - kept.sum())
        # P_e: mean over the group of s[t, e] / sum_e' s[t, e'] (for softmax, p itself).
        if spec["score_function"] == "softmax":
            normalized = s
        else:
            normalized = s / s.sum(axis=1, keepdims=True)
        group_losses = []
        for start in range(0, num_tokens, group_size):
            top1 = choice[start:start + group_size, 0]
            fraction = np.array([np.mean(top1 == e) for e in range(num_experts)])
            mean_prob = normalized[start:start + group_size].mean(axis=0)
            group_losses.append(num_experts * float(np.sum(fraction * mean_prob)))
        load_balance_loss = float(np.mean(group_losses))
    else:
        dropped = int(np.sum(~taken.any(axis=1)))
        load_balance_loss = None
    stats = {
        "capacity": capacity,
        "tokens_per_expert": tokens_per_expert,
        "dropped": dropped,
        "load_balance_loss": load_balance_loss,
        "router_z_loss": float(np.mean(lse ** 2)),
    }
    return {"y": y, "stats": stats, "spec": spec, "p": s, "lse": lse, "choice": choice,
            "gates": gates, "top1_prob": top1_prob, "capacity": capacity,
            "group_size": group_size, "kept": kept, "slot": slot,
            "logits": logits, "scores": s, "choice_scores": c, "group_scores": g_scores,
            "group_kept": group_kept, "masked_choice_scores": masked, "taken": taken,
            "shared": shared, "shared_factor": shared_factor, "y_routed": y_routed}


def moe_layer(spec, x, router, w_in, w_gate, w_out, extra=None):
    """The layer of spec sections 3 and 8 in float64 (w_gate is None unless the activation
    is gated; extra holds the section 8 weights, see EXTRA_WEIGHTS): returns (y [T, D]
    float64, stats dict of sections 4 and 8 with keys capacity, tokens_per_expert, dropped,
    load_balance_loss (None for experts_choose), router_z_loss)."""
    details = moe_layer_details(spec, x, router, w_in, w_gate, w_out, extra)
    return details["y"], details["stats"]
