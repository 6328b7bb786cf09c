//===- MoEOps.td - Operations of the moe dialect ----------*- tablegen -*-===//
//
// The whole-layer operation `moe.layer` and the decomposed operations it is
// made of. Semantics follow ../shared/spec/moe-layer.md §3.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_IR_MOEOPS_TD
#define MOE_IR_MOEOPS_TD

include "moe/IR/MoEBase.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

//===----------------------------------------------------------------------===//
// moe.layer
//===----------------------------------------------------------------------===//

def MoE_LayerOp : MoE_Op<"layer",
    [Pure, InferTypeOpAdaptor, AttrSizedOperandSegments]> {
  let summary = "a whole sparse mixture-of-experts FFN layer";
  let description = [{
    Computes one MoE layer on `T` tokens exactly as the layer contract says:
    an f32 router, top-k choice, capacity-bounded slot assignment per routing
    group, the expert MLPs and the gated combine, plus the layer statistics;
    or one of the routing families of the contract's section 8.

    Operands: `input` [T, D]; `router` [E, D]; `w_in` [E, D, F]; `w_gate`
    [E, D, F] (present exactly when the activation is gated: `geglu`,
    `swiglu`); `w_out` [E, F, D]. Expert weights share one element type.
    Section 8 adds `score_bias` [E] (f32, added to the scores for the choice
    only), and a shared expert every token passes through: `shared_w_in`
    [D, Fs], `shared_w_gate` [D, Fs] (gated activations), `shared_w_out`
    [Fs, D], and `shared_gate` [D] when its output is scaled by
    σ(x · shared_gate).

    Attributes (one per spec field):
    - `top_k` (1 ≤ k ≤ E), `activation`, `normalize_gates` (unit);
    - capacity: `expert_capacity` (fixed C per group) or `capacity_factor`
      (C = max(`min_capacity`, ⌈cf · k · S / E⌉), evaluated in f64 in that
      order); neither means dropless. At most one of the two is present;
    - `group_size` S (divides T; absent means one group of T tokens);
    - `priority` (`position` or `batch_prioritized`);
    - section 8, printed after the priority only when not the default:
      `routing experts_choose` (each expert takes its C tokens of every
      group, C = max(`min_capacity`, ⌈cf · S / E⌉) at most S; `top_k` is then
      1 and there is no gate normalisation, priority, bias or expert group),
      `score_function sigmoid`, `num_groups` G (dividing E) with
      `topk_groups` (the groups a token may choose from) and `group_score`
      (`max` or `top2_sum`), and `gate_scale` (multiplies every gate).

    Results: `output` [T, D] with the input's element type; `tokens_per_expert`
    [E] (kept assignments summed over groups); `dropped` (dropped assignments,
    or for expert choice the tokens no expert took); `load_balance_loss`
    (NaN for expert choice, which the statistics write as null) and
    `router_z_loss` (unscaled, f32).

    Canonicalization removes attributes that cannot change the result: a
    capacity that can never overflow (C ≥ S) becomes dropless, a group size
    equal to T is dropped, gate normalisation is dropped when k = E over
    softmax scores (the chosen probabilities then sum to one), and expert
    groups that keep every group are dropped.

    Example:

    ```mlir
    %y, %tpe, %dropped, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo)
        top_k 2 activation relu normalize_gates capacity_factor 1.0
        group_size 8 priority position
        : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>,
          tensor<4x64x32xf32>
    ```

    DeepSeek-V3-style routing with a shared expert:

    ```mlir
    %y, %tpe, %dropped, %lb, %z = moe.layer %x router(%r) score_bias(%b)
        w_in(%wi) w_gate(%wg) w_out(%wo) shared_w_in(%si) shared_w_gate(%sg)
        shared_w_out(%so) top_k 2 activation swiglu normalize_gates
        priority position score_function sigmoid num_groups 4 topk_groups 2
        group_score top2_sum gate_scale 2.5
        : tensor<16x32xf32>, tensor<8x32xf32>, tensor<8xf32>,
          tensor<8x32x64xf32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>,
          tensor<32x48xf32>, tensor<32x48xf32>, tensor<48x32xf32>
    ```
  }];

  let arguments = (ins
    MoE_ActTensor:$input,
    MoE_Weight2D:$router,
    Optional<MoE_F32Vector>:$score_bias,
    MoE_Weight3D:$w_in,
    Optional<MoE_Weight3D>:$w_gate,
    MoE_Weight3D:$w_out,
    Optional<MoE_Weight2D>:$shared_w_in,
    Optional<MoE_Weight2D>:$shared_w_gate,
    Optional<MoE_Weight2D>:$shared_w_out,
    Optional<MoE_Weight1D>:$shared_gate,
    MoE_I64Attr:$top_k,
    MoE_ActivationAttr:$activation,
    UnitAttr:$normalize_gates,
    OptionalAttr<F64Attr>:$capacity_factor,
    OptionalAttr<MoE_I64Attr>:$expert_capacity,
    DefaultValuedAttr<MoE_I64Attr, "1">:$min_capacity,
    OptionalAttr<MoE_I64Attr>:$group_size,
    DefaultValuedAttr<MoE_PriorityAttr, "::mlir::moe::Priority::Position">:$priority,
    DefaultValuedAttr<MoE_RoutingAttr, "::mlir::moe::Routing::TokensChoose">:$routing,
    DefaultValuedAttr<MoE_ScoreFunctionAttr, "::mlir::moe::ScoreFunction::Softmax">:$score_function,
    DefaultValuedAttr<MoE_I64Attr, "1">:$num_groups,
    OptionalAttr<MoE_I64Attr>:$topk_groups,
    DefaultValuedAttr<MoE_GroupScoreAttr, "::mlir::moe::GroupScore::Max">:$group_score,
    DefaultValuedAttr<F64Attr, "1.0">:$gate_scale
  );
  let results = (outs
    MoE_ActTensor:$output,
    MoE_I64Vector:$tokens_per_expert,
    MoE_I64Scalar:$dropped,
    MoE_F32Scalar:$load_balance_loss,
    MoE_F32Scalar:$router_z_loss
  );

  let assemblyFormat = [{
    $input `router` `(` $router `)` (`score_bias` `(` $score_bias^ `)`)?
    `w_in` `(` $w_in `)`
    (`w_gate` `(` $w_gate^ `)`)? `w_out` `(` $w_out `)`
    (`shared_w_in` `(` $shared_w_in^ `)`)?
    (`shared_w_gate` `(` $shared_w_gate^ `)`)?
    (`shared_w_out` `(` $shared_w_out^ `)`)?
    (`shared_gate` `(` $shared_gate^ `)`)?
    `top_k` $top_k `activation` custom<ActivationKeyword>($activation)
    (`normalize_gates` $normalize_gates^)?
    (`capacity_factor` $capacity_factor^)?
    (`expert_capacity` $expert_capacity^)?
    (`min_capacity` $min_capacity^)?
    (`group_size` $group_size^)?
    `priority` custom<PriorityKeyword>($priority)
    custom<RoutingFamily>($routing, $score_function, $num_groups,
                          $topk_groups, $group_score, $gate_scale)
    attr-dict `:` type(operands)
  }];

  let extraClassDeclaration = [{
    int64_t getNumTokens();
    int64_t getNumExperts();
    int64_t getModelDim();
    int64_t getHiddenDim();
    /// S: tokens per routing group.
    int64_t getGroupTokens();
    /// C per group, or std::nullopt when the layer is dropless.
    std::optional<int64_t> getCapacity();
    /// True for expert-choice routing.
    bool isExpertsChoose() { return getRouting() == Routing::ExpertsChoose; }
    /// `gate_scale` as an attribute for the decomposed ops, or null when it
    /// is 1 (their default).
    FloatAttr getGateScaleAttrIfScaled() {
      return getGateScale().convertToDouble() == 1.0 ? FloatAttr()
                                                     : getGateScaleAttr();
    }
    /// The groups a token may choose from (`num_groups` by default).
    int64_t getKeptGroups() { return getTopkGroups().value_or(getNumGroups()); }
    /// True when the choice differs from "the k largest scores": a score
    /// bias or a group limit.
    bool hasChoiceScores() {
      return getScoreBias() || getKeptGroups() < getNumGroups();
    }
  }];

  let hasVerifier = 1;
  let hasCanonicalizer = 1;
}

//===----------------------------------------------------------------------===//
// moe.route
//===----------------------------------------------------------------------===//

def MoE_RouteOp : MoE_Op<"route", [Pure, InferTypeOpAdaptor]> {
  let summary = "router logits, scores and log-sum-exp in f32";
  let description = [{
    logits[t] = input[t] · routerᵀ, computed in f32 whatever the element
    types of `input` [T, D] and `router` [E, D]; probs[t] = softmax(logits[t])
    or, with `score_function sigmoid`, σ(logits[t]) elementwise (spec §8);
    lse[t] = logsumexp(logits[t]) for both. There is no router bias.

    ```mlir
    %logits, %probs, %lse = moe.route %x, %r : tensor<16x32xbf16>, tensor<4x32xbf16>
    %logits2, %scores, %lse2 = moe.route %x, %r score_function sigmoid
        : tensor<16x32xf32>, tensor<4x32xf32>
    ```
  }];
  let arguments = (ins MoE_ActTensor:$input, MoE_Weight2D:$router,
      DefaultValuedAttr<MoE_ScoreFunctionAttr,
                        "::mlir::moe::ScoreFunction::Softmax">:$score_function);
  let results = (outs MoE_F32Matrix:$logits, MoE_F32Matrix:$probs,
                      MoE_F32Vector:$lse);
  let assemblyFormat = [{
    $input `,` $router custom<OptionalScoreFunction>($score_function)
    attr-dict `:` type($input) `,` type($router)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// moe.choice_scores
//===----------------------------------------------------------------------===//

def MoE_ChoiceScoresOp : MoE_Op<"choice_scores",
    [Pure, InferTypeOpAdaptor]> {
  let summary = "the scores a token chooses its experts by (spec §8)";
  let description = [{
    c[t] = scores[t] + `bias` (when given, [E] f32). With `num_groups` G > 1
    the E experts form G contiguous groups of E/G; a group's score is the
    largest c of its experts (`max`) or the sum of its two largest
    (`top2_sum`); the `keep` best groups are kept (ties to the lower group
    index) and every expert outside them gets c = −∞, so `moe.top_k` never
    chooses it. A NaN c ranks as −∞ in the group scores (spec §3.7).

    ```mlir
    %c = moe.choice_scores %s bias(%b) num_groups = 4 keep = 2
        group_score top2_sum : tensor<16x8xf32>, tensor<8xf32>
    ```
  }];
  let arguments = (ins
    MoE_F32Matrix:$scores,
    Optional<MoE_F32Vector>:$bias,
    DefaultValuedAttr<MoE_I64Attr, "1">:$num_groups,
    DefaultValuedAttr<MoE_I64Attr, "1">:$keep,
    DefaultValuedAttr<MoE_GroupScoreAttr, "::mlir::moe::GroupScore::Max">:$group_score
  );
  let results = (outs MoE_F32Matrix:$result);
  let assemblyFormat = [{
    $scores (`bias` `(` $bias^ `)`)? `num_groups` `=` $num_groups
    `keep` `=` $keep `group_score` custom<GroupScoreKeyword>($group_score)
    attr-dict `:` type(operands)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// moe.top_k
//===----------------------------------------------------------------------===//

def MoE_TopKOp : MoE_Op<"top_k", [Pure, InferTypeOpAdaptor]> {
  let summary = "the k most probable experts of every token, with gates";
  let description = [{
    For each token, the `k` experts with the largest probability in
    descending order, equal probabilities going to the lower expert index
    (a NaN ranks as −∞). `gates[t, j]` is the probability of the j-th
    choice, divided by the sum of the k chosen probabilities when
    `normalize` is set, then multiplied by `gate_scale` (default 1).

    With `gate_scores(%s)` (spec §8) the experts are chosen by `probs` (the
    choice scores of `moe.choice_scores`) but the gates come from `%s`, the
    unbiased scores: gates[t, j] = s[t, e_j], normalised over the chosen s.

    Canonicalization drops `normalize` when k equals the number of experts
    and the gates are softmax probabilities.

    ```mlir
    %experts, %gates = moe.top_k %probs k = 2 normalize : tensor<16x4xf32>
    %e2, %g2 = moe.top_k %choice k = 2 normalize gate_scores(%scores)
        gate_scale = 2.5 : tensor<16x4xf32>, tensor<16x4xf32>
    ```
  }];
  let arguments = (ins MoE_F32Matrix:$probs, MoE_I64Attr:$k, UnitAttr:$normalize,
                       Optional<MoE_F32Matrix>:$gate_scores,
                       DefaultValuedAttr<F64Attr, "1.0">:$gate_scale);
  let results = (outs MoE_IndexMatrix:$experts, MoE_F32Matrix:$gates);
  let assemblyFormat = [{
    $probs `k` `=` $k (`normalize` $normalize^)?
    (`gate_scores` `(` $gate_scores^ `)`)? (`gate_scale` `=` $gate_scale^)?
    attr-dict `:` type(operands)
  }];
  let extraClassDeclaration = [{
    /// The scores the gates are read from.
    Value getGateSource() {
      return getGateScores() ? getGateScores() : getProbs();
    }
  }];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
}

//===----------------------------------------------------------------------===//
// moe.expert_choice
//===----------------------------------------------------------------------===//

def MoE_ExpertChoiceOp : MoE_Op<"expert_choice", [Pure, InferTypeOpAdaptor]> {
  let summary = "each expert takes its C best tokens of every group (§8)";
  let description = [{
    Expert-choice routing: in every group of `group_size` consecutive
    tokens, expert e takes the `capacity` tokens with the largest
    probs[t, e] (ties to the lower token index; a NaN ranks as −∞), C ≤ S.

    Results are token-major, in the form `moe.dispatch` and `moe.combine`
    read with k = E: `experts` [T, E] i32 holds e in column e; `slots`
    [T, E] the row of (t, e) in the padded [E, G·C, D] buffer, g·C + (rank
    of t among the tokens e took in group g), −1 where e did not take t;
    `keep` [T, E] whether e took t; `gates` [T, E] = `gate_scale` ·
    probs[t, e] (no renormalisation); `counts` [E] the tokens each expert
    took, summed over groups.

    ```mlir
    %experts, %slots, %keep, %gates, %counts = moe.expert_choice %probs
        group_size = 8 capacity = 2 : tensor<16x4xf32>
    ```
  }];
  let arguments = (ins MoE_F32Matrix:$probs, MoE_I64Attr:$group_size,
                       MoE_I64Attr:$capacity,
                       DefaultValuedAttr<F64Attr, "1.0">:$gate_scale);
  let results = (outs MoE_IndexMatrix:$experts, MoE_IndexMatrix:$slots,
                      MoE_MaskMatrix:$keep, MoE_F32Matrix:$gates,
                      MoE_I64Vector:$counts);
  let assemblyFormat = [{
    $probs `group_size` `=` $group_size `capacity` `=` $capacity
    (`gate_scale` `=` $gate_scale^)? attr-dict `:` type($probs)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// moe.assign_slots
//===----------------------------------------------------------------------===//

def MoE_AssignSlotsOp : MoE_Op<"assign_slots", [Pure, InferTypeOpAdaptor]> {
  let summary = "capacity-bounded slot assignment inside each routing group";
  let description = [{
    Ranks the assignments (t, j) of each group of `group_size` consecutive
    tokens: every first choice before any second choice, and so on; within one
    choice rank, tokens in group order (`position`) or by descending top-1
    probability, ties in group order (`batch_prioritized`, which reads the
    router probabilities `probs` [T, E]). Walking that ranking, an assignment
    takes the next free slot of its expert; when the expert already holds
    `capacity` assignments in the group, it is dropped.

    Results, for `experts` [T, k]:
    - `slots` [T, k] i32: the row of the assignment in the expert buffer that
      `moe.dispatch` fills. With a capacity C the buffer is padded by
      default, [E, G·C, D], and the row is g·C + (rank of the assignment
      among the kept assignments of its expert in group g). With `packed`,
      and always without a capacity (dropless), the buffer is packed,
      [T·k, D], expert-major, and the row is the global row: the kept
      assignments of expert e come after those of experts < e, in group
      order, then ranking order. A dropped assignment's slot is -1.
    - `keep` [T, k] i1: whether the assignment holds a slot.
    - `counts` [E] i64: kept assignments per expert summed over groups.

    ```mlir
    %slots, %keep, %counts = moe.assign_slots %experts num_experts = 4
        group_size = 8 capacity = 4 priority = batch_prioritized(%probs)
        : tensor<16x2xi32>, tensor<16x4xf32>
    ```
  }];
  let arguments = (ins
    MoE_IndexMatrix:$experts,
    Optional<MoE_F32Matrix>:$probs,
    MoE_I64Attr:$num_experts,
    MoE_I64Attr:$group_size,
    OptionalAttr<MoE_I64Attr>:$capacity,
    DefaultValuedAttr<MoE_PriorityAttr, "::mlir::moe::Priority::Position">:$priority,
    UnitAttr:$packed
  );
  let results = (outs MoE_IndexMatrix:$slots, MoE_MaskMatrix:$keep,
                      MoE_I64Vector:$counts);
  let assemblyFormat = [{
    $experts `num_experts` `=` $num_experts `group_size` `=` $group_size
    (`capacity` `=` $capacity^)? `priority` `=` custom<PriorityKeyword>($priority)
    (`(` $probs^ `)`)? (`packed` $packed^)?
    attr-dict `:` type(operands)
  }];
  let extraClassDeclaration = [{
    /// True when no capacity bounds the experts.
    bool isDropless() { return !getCapacity().has_value(); }
    /// True when the slots are rows of a packed [T·k, D] buffer.
    bool isPackedLayout() { return getPacked() || isDropless(); }
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// moe.dispatch
//===----------------------------------------------------------------------===//

def MoE_DispatchOp : MoE_Op<"dispatch", [Pure]> {
  let summary = "copy tokens into the expert buffers";
  let description = [{
    For every kept assignment (t, j) with expert e = experts[t, j] and row
    r = slots[t, j], copies input[t] into the buffer: into [e, r] of a padded
    [E, N, D] buffer, or into row r of a packed [R, D] buffer (R = T·k).
    Rows that receive no token are zero.

    ```mlir
    %buf = moe.dispatch %x, %experts, %slots, %keep
        : tensor<16x32xf32>, tensor<16x2xi32>, tensor<16x2xi32>,
          tensor<16x2xi1> -> tensor<4x8x32xf32>
    ```
  }];
  let arguments = (ins MoE_ActTensor:$input, MoE_IndexMatrix:$experts,
                       MoE_IndexMatrix:$slots, MoE_MaskMatrix:$keep);
  let results = (outs MoE_BufferTensor:$buffer);
  let assemblyFormat = [{
    $input `,` $experts `,` $slots `,` $keep attr-dict `:` type(operands)
    `->` type($buffer)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// moe.expert_ffn
//===----------------------------------------------------------------------===//

def MoE_ExpertFFNOp : MoE_Op<"expert_ffn",
    [Pure, AttrSizedOperandSegments, InferTypeOpAdaptor]> {
  let summary = "the expert MLPs over their buffers, batched over experts";
  let description = [{
    For every row x of expert e's part of the buffer: out = a · w_out[e] with
    a = act(x · w_in[e]), or for the gated activations
    a = act'(x · w_gate[e]) ⊙ (x · w_in[e]) where `geglu` uses `gelu_tanh`
    and `swiglu` uses `silu`. Accumulation is in f32; the result has the
    buffer's type.

    A padded buffer [E, N, D] gives expert e the rows [e, 0..N). A packed
    buffer [R, D] needs `counts` [E]: expert e owns the `counts[e]` rows that
    follow those of experts < e; rows past the total are zero.

    ```mlir
    %out = moe.expert_ffn %buf w_in(%wi) w_gate(%wg) w_out(%wo) activation swiglu
        : tensor<4x8x32xf32>, tensor<4x32x64xf32>, tensor<4x32x64xf32>,
          tensor<4x64x32xf32>
    ```
  }];
  let arguments = (ins
    MoE_BufferTensor:$buffer,
    MoE_Weight3D:$w_in,
    Optional<MoE_Weight3D>:$w_gate,
    MoE_Weight3D:$w_out,
    Optional<MoE_I64Vector>:$counts,
    MoE_ActivationAttr:$activation
  );
  let results = (outs MoE_BufferTensor:$result);
  let assemblyFormat = [{
    $buffer `w_in` `(` $w_in `)` (`w_gate` `(` $w_gate^ `)`)?
    `w_out` `(` $w_out `)` (`counts` `(` $counts^ `)`)?
    `activation` custom<ActivationKeyword>($activation) attr-dict `:`
    type(operands)
  }];
  let extraClassDeclaration = [{
    /// True for a packed [R, D] buffer.
    bool isPacked() { return getBuffer().getType().getRank() == 2; }
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// moe.combine
//===----------------------------------------------------------------------===//

def MoE_CombineOp : MoE_Op<"combine", [Pure, InferTypeOpAdaptor]> {
  let summary = "gated sum of the expert outputs back to the tokens";
  let description = [{
    y[t] = Σ_j keep[t, j] · gates[t, j] · out[experts[t, j], slots[t, j]]
    (row slots[t, j] of a packed buffer). A token whose assignments were all
    dropped gets zero. The result is [T, D] with the buffer's element type.

    ```mlir
    %y = moe.combine %out, %experts, %slots, %keep, %gates
        : tensor<4x8x32xf32>, tensor<16x2xi32>, tensor<16x2xi32>,
          tensor<16x2xi1>, tensor<16x2xf32>
    ```
  }];
  let arguments = (ins MoE_BufferTensor:$buffer, MoE_IndexMatrix:$experts,
                       MoE_IndexMatrix:$slots, MoE_MaskMatrix:$keep,
                       MoE_F32Matrix:$gates);
  let results = (outs MoE_ActTensor:$output);
  let assemblyFormat = [{
    $buffer `,` $experts `,` $slots `,` $keep `,` $gates attr-dict `:`
    type(operands)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// moe.shared_expert
//===----------------------------------------------------------------------===//

def MoE_SharedExpertOp : MoE_Op<"shared_expert",
    [Pure, InferTypeOpAdaptor, AttrSizedOperandSegments]> {
  let summary = "add the shared expert every token passes through (§8)";
  let description = [{
    output[t] = routed[t] + g[t] · (a[t] · `w_out`) with a[t] = act(x[t] ·
    `w_in`), or gated, act(x[t] · `w_gate`) ⊙ (x[t] · `w_in`), and g[t] =
    σ(x[t] · `gate`) when `gate` [D] is given, else 1. `input` x is [T, D],
    `routed` (the combined routed experts) [T, D], `w_in` and `w_gate`
    [D, Fs], `w_out` [Fs, D]. Products accumulate in f32; the sum is
    rounded once to the routed output's element type.

    ```mlir
    %y = moe.shared_expert %x, %routed w_in(%si) w_out(%so) gate(%g)
        activation relu : tensor<16x32xf32>, tensor<16x32xf32>,
          tensor<32x48xf32>, tensor<48x32xf32>, tensor<32xf32>
    ```
  }];
  let arguments = (ins MoE_ActTensor:$input, MoE_ActTensor:$routed,
                       MoE_Weight2D:$w_in, Optional<MoE_Weight2D>:$w_gate,
                       MoE_Weight2D:$w_out, Optional<MoE_Weight1D>:$gate,
                       MoE_ActivationAttr:$activation);
  let results = (outs MoE_ActTensor:$output);
  let assemblyFormat = [{
    $input `,` $routed `w_in` `(` $w_in `)` (`w_gate` `(` $w_gate^ `)`)?
    `w_out` `(` $w_out `)` (`gate` `(` $gate^ `)`)?
    `activation` custom<ActivationKeyword>($activation) attr-dict `:`
    type(operands)
  }];
  let hasVerifier = 1;
}

include "moe/IR/MoEFusedOps.td"

//===----------------------------------------------------------------------===//
// moe.all_to_all
//===----------------------------------------------------------------------===//

def MoE_AllToAllOp : MoE_Op<"all_to_all", [Pure, InferTypeOpAdaptor]> {
  let summary = "exchange expert buffers across a group of devices";
  let description = [{
    Each of the `ranks` participating devices splits its buffer along
    `split_dim` into `ranks` equal chunks, sends chunk i to rank i, and
    concatenates the chunks it receives, in rank order, along `concat_dim`.
    With split_dim = 0 and concat_dim = 1 this takes padded [E, N, D] buffers
    to [E/ranks, ranks·N, D] (each rank then holds every rank's slots of its
    own experts); the reverse exchange takes them back.

    An exchange over a single rank is the identity and folds away.

    ```mlir
    %local = moe.all_to_all %buf ranks = 2 split_dim = 0 concat_dim = 1
        : tensor<4x8x32xf32>
    ```
  }];
  let arguments = (ins MoE_BufferTensor:$input, MoE_I64Attr:$ranks,
                       MoE_I64Attr:$split_dim, MoE_I64Attr:$concat_dim);
  let results = (outs MoE_BufferTensor:$result);
  let assemblyFormat = [{
    $input `ranks` `=` $ranks `split_dim` `=` $split_dim
    `concat_dim` `=` $concat_dim attr-dict `:` type($input)
  }];
  let hasVerifier = 1;
  let hasFolder = 1;
}

def MoE_AllReduceOp : MoE_Op<"all_reduce",
    [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "elementwise sum of a tensor over a group of devices";
  let description = [{
    Every one of the `ranks` participating devices contributes a tensor of
    the same shape; each receives their elementwise sum. The sharded layer
    uses it to make its statistics global. A sum over one rank is the
    identity and folds away.

    ```mlir
    %total = moe.all_reduce %counts ranks = 4 : tensor<8xi64>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, MoE_I64Attr:$ranks);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input `ranks` `=` $ranks attr-dict `:` type($input)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

def MoE_AllGatherOp : MoE_Op<"all_gather", [Pure, InferTypeOpAdaptor]> {
  let summary = "concatenate a tensor from every rank along dimension 0";
  let description = [{
    Every one of the `ranks` participating devices contributes a tensor of
    the same shape; each receives them all concatenated along dimension 0 in
    rank order. The sharded layer gathers the routing decisions with it when
    routing groups span ranks. Over one rank it is the identity.

    ```mlir
    %all = moe.all_gather %experts ranks = 2 : tensor<8x2xi32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, MoE_I64Attr:$ranks);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input `ranks` `=` $ranks attr-dict `:` type($input)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

def MoE_ExchangeRowsOp : MoE_Op<"exchange_rows", [Pure]> {
  let summary = "send packed expert rows to the ranks that own the experts";
  let description = [{
    The variable-size exchange of expert parallelism (counts first, then the
    rows). `rows` [R, D] is a packed, expert-major buffer: expert e owns the
    `counts[e]` rows that follow those of experts < e. Of `ranks` ranks,
    rank q owns the E/ranks experts [q·E/ranks, (q+1)·E/ranks): every rank
    first sends each rank the counts of that rank's experts, then exactly
    those rows (no padding travels).

    Results: `received` [R', D], this rank's experts' rows, expert-major and,
    within an expert, in the order of the sending ranks (rows past the total
    are zero); `received_counts` [ranks, E/ranks] i64, the rows that rank i
    sent for local expert e. R' must hold every row this rank can receive;
    the runtime stops with an error otherwise. `moe.return_rows` sends rows
    of the same layout back.

    ```mlir
    %rows, %got = moe.exchange_rows %buf, %counts ranks = 2
        : tensor<32x16xf32>, tensor<4xi64> -> tensor<64x16xf32>, tensor<2x2xi64>
    ```
  }];
  let arguments = (ins MoE_RowsTensor:$rows, MoE_I64Vector:$counts,
                       MoE_I64Attr:$ranks);
  let results = (outs MoE_RowsTensor:$received, MoE_I64Matrix:$received_counts);
  let assemblyFormat = [{
    $rows `,` $counts `ranks` `=` $ranks attr-dict `:` type(operands) `->`
    type(results)
  }];
  let hasVerifier = 1;
}

def MoE_ReturnRowsOp : MoE_Op<"return_rows", [Pure]> {
  let summary = "send the expert rows of an exchange_rows back to their ranks";
  let description = [{
    The reverse of `moe.exchange_rows`: `rows` [R', D] has the layout of its
    `received` result (`received_counts` [ranks, E/ranks]); each rank gets back
    the rows it sent, in the packed expert-major order of its own buffer
    given by `counts` [E]. The result [R, D] has the row count of that
    buffer; rows past the total are zero.

    ```mlir
    %back = moe.return_rows %out, %got, %counts ranks = 2
        : tensor<64x16xf32>, tensor<2x2xi64>, tensor<4xi64> -> tensor<32x16xf32>
    ```
  }];
  let arguments = (ins MoE_RowsTensor:$rows, MoE_I64Matrix:$received_counts,
                       MoE_I64Vector:$counts, MoE_I64Attr:$ranks);
  let results = (outs MoE_RowsTensor:$result);
  let assemblyFormat = [{
    $rows `,` $received_counts `,` $counts `ranks` `=` $ranks attr-dict `:`
    type(operands) `->` type($result)
  }];
  let hasVerifier = 1;
}

def MoE_RankOp : MoE_Op<"rank"> {
  let summary = "this device's rank among the expert-parallel ranks";
  let description = [{
    The rank (0 to `ranks` − 1) of the device running the program, from the
    runtime's collectives engine. It has no side effects but is not pure:
    its value depends on where the program runs.

    ```mlir
    %r = moe.rank ranks = 4
    ```
  }];
  let arguments = (ins MoE_I64Attr:$ranks);
  let results = (outs Index:$rank);
  let assemblyFormat = "`ranks` `=` $ranks attr-dict";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Statistics
//===----------------------------------------------------------------------===//

def MoE_LoadBalanceLossOp : MoE_Op<"load_balance_loss",
    [Pure, InferTypeOpAdaptor]> {
  let summary = "the Switch load-balancing loss, unscaled";
  let description = [{
    Mean over groups of E · Σ_e f_e · P_e, where f_e is the fraction of the
    group's tokens whose first choice (`experts[t, 0]`, before dropping) is e
    and P_e the mean of probs[·, e] over the group. It is 1.0 for a perfectly
    balanced router. With `normalize` (sigmoid scores, spec §8), P_e is the
    mean of probs[·, e] / Σ_e' probs[·, e']. It does not fold for a single
    expert: a token whose
    router logit is NaN or infinite has NaN probabilities (spec §3.7), and
    then so is the loss.

    ```mlir
    %lb = moe.load_balance_loss %probs, %experts group_size = 8
        : tensor<16x4xf32>, tensor<16x2xi32>
    ```
  }];
  let arguments = (ins MoE_F32Matrix:$probs, MoE_IndexMatrix:$experts,
                       MoE_I64Attr:$group_size, UnitAttr:$normalize);
  let results = (outs MoE_F32Scalar:$loss);
  let assemblyFormat = [{
    $probs `,` $experts `group_size` `=` $group_size
    (`normalize` $normalize^)? attr-dict `:` type($probs) `,` type($experts)
  }];
  let hasVerifier = 1;
}

def MoE_RouterZLossOp : MoE_Op<"router_z_loss", [Pure, InferTypeOpAdaptor]> {
  let summary = "the ST-MoE router z-loss, unscaled";
  let description = [{
    Mean over tokens of lse[t]², where `lse` is the log-sum-exp of the router
    logits from `moe.route`.

    ```mlir
    %z = moe.router_z_loss %lse : tensor<16xf32>
    ```
  }];
  let arguments = (ins MoE_F32Vector:$lse);
  let results = (outs MoE_F32Scalar:$loss);
  let assemblyFormat = "$lse attr-dict `:` type($lse)";
  let hasVerifier = 1;
}

def MoE_CountDroppedOp : MoE_Op<"count_dropped", [Pure, InferTypeOpAdaptor]> {
  let summary = "number of dropped (token, choice) assignments";
  let description = [{
    Counts the false entries of `keep`, or with `tokens` (expert choice,
    spec §8) the rows of `keep` without a true entry: the tokens no expert
    took. Folds to zero when `keep` comes from a dropless
    `moe.assign_slots`.

    ```mlir
    %dropped = moe.count_dropped %keep : tensor<16x2xi1>
    %untaken = moe.count_dropped %taken tokens : tensor<16x4xi1>
    ```
  }];
  let arguments = (ins MoE_MaskMatrix:$keep, UnitAttr:$tokens);
  let results = (outs MoE_I64Scalar:$count);
  let assemblyFormat = "$keep (`tokens` $tokens^)? attr-dict `:` type($keep)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

#endif // MOE_IR_MOEOPS_TD
