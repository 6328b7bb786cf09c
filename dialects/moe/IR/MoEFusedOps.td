//===- MoEFusedOps.td - The fused expert operations --------*- tablegen -*-===//
//
// The operations `moe-fuse-experts` rewrites dispatch → expert_ffn → combine
// into: the expert-sorted row layout of the kept assignments and the grouped
// matmul that reads token rows through it (no dispatch buffer). Included by
// MoEOps.td.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_IR_MOEFUSEDOPS_TD
#define MOE_IR_MOEFUSEDOPS_TD

//===----------------------------------------------------------------------===//
// moe.sort_by_expert
//===----------------------------------------------------------------------===//

def MoE_SortByExpertOp : MoE_Op<"sort_by_expert", [Pure]> {
  let summary = "the kept assignments as rows sorted by expert";
  let description = [{
    The index layout of the fused expert computation: instead of copying the
    tokens into a dispatch buffer, the experts read token rows through the
    index `row_token`. Takes the routing decisions of `moe.top_k` and
    `moe.assign_slots` in the packed layout (`slots` [T, k] are rows of an
    expert-major [T·k] layout: the kept assignments of expert e follow those
    of experts < e, in ranking order, and `counts` [E] says how many each
    expert kept) and returns:
    - `offsets` [E + 1] i64: the first row of expert e; expert e owns the
      rows [offsets[e], offsets[e] + counts[e]). Each expert's part starts
      on a multiple of `block` (default 1, no padding); `offsets[E]` is the
      number of rows in use, padding included.
    - `row_token` [R] i32: the token of each row, -1 for a row no assignment
      fills (block padding and the rows past `offsets[E]`).
    - `row_gate` [R] f32: the gate of each row's assignment, 0 for the empty
      rows.

    R = T·k + E·(block − 1), the most rows any routing can use. Within an
    expert, rows keep the ranking order of `moe.assign_slots`. Dropped
    assignments (keep false, slot −1) have no row.

    ```mlir
    %offsets, %row_token, %row_gate = moe.sort_by_expert %experts, %slots,
        %keep, %gates, %counts
        : tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1>,
          tensor<16x2xf32>, tensor<4xi64>
        -> tensor<5xi64>, tensor<32xi32>, tensor<32xf32>
    ```
  }];
  let arguments = (ins
    MoE_IndexMatrix:$experts,
    MoE_IndexMatrix:$slots,
    MoE_MaskMatrix:$keep,
    MoE_F32Matrix:$gates,
    MoE_I64Vector:$counts,
    DefaultValuedAttr<MoE_I64Attr, "1">:$block
  );
  let results = (outs MoE_I64Vector:$offsets, MoE_I32Vector:$row_token,
                      MoE_F32Vector:$row_gate);
  let assemblyFormat = [{
    $experts `,` $slots `,` $keep `,` $gates `,` $counts
    (`block` `=` $block^)? attr-dict `:` type(operands) `->` type(results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// moe.route_rows
//===----------------------------------------------------------------------===//

def MoE_RouteRowsOp : MoE_Op<"route_rows", [Pure, InferTypeOpAdaptor]> {
  let summary = "top-k choice, capacity and expert-sorted rows in one step";
  let description = [{
    The routing step of the fused expert computation: what `moe.top_k`,
    `moe.assign_slots` (packed layout) and `moe.sort_by_expert` compute one
    after the other, as one op whose lowering passes over the tokens once
    for the choice and the counting, then once to place the kept
    assignments (no slot matrix in between).

    From the router probabilities `probs` [T, E]:
    - `experts`, `gates` [T, k]: the choice of `moe.top_k` with `k`,
      `normalize`, `gate_scores` and `gate_scale` (with `gate_scores`, the
      batch-prioritized ranking reads them too: the unbiased score of the
      first choice, spec §8);
    - `keep` [T, k]: whether the assignment holds a slot under `capacity`
      (per group of `group_size` tokens) and `priority`, ranked as in
      `moe.assign_slots`; without a capacity every assignment is kept;
    - `counts` [E] i64: the kept assignments of each expert;
    - `offsets` [E + 1], `row_token` [R], `row_gate` [R] with
      R = T·k + E·(block − 1): the rows of `moe.sort_by_expert` with
      `block`. Within an expert, rows are in group order, then ranking order.

    `moe-fuse-experts` forms it from top_k → assign_slots → sort_by_expert.

    ```mlir
    %experts, %gates, %keep, %counts, %offsets, %row_token, %row_gate =
        moe.route_rows %probs k = 2 normalize group_size = 8 capacity = 4
        priority = position : tensor<16x4xf32>
    ```
  }];
  let arguments = (ins
    MoE_F32Matrix:$probs,
    MoE_I64Attr:$k,
    UnitAttr:$normalize,
    MoE_I64Attr:$group_size,
    OptionalAttr<MoE_I64Attr>:$capacity,
    DefaultValuedAttr<MoE_PriorityAttr, "::mlir::moe::Priority::Position">:$priority,
    DefaultValuedAttr<MoE_I64Attr, "1">:$block,
    Optional<MoE_F32Matrix>:$gate_scores,
    DefaultValuedAttr<F64Attr, "1.0">:$gate_scale
  );
  let results = (outs MoE_IndexMatrix:$experts, MoE_F32Matrix:$gates,
                      MoE_MaskMatrix:$keep, MoE_I64Vector:$counts,
                      MoE_I64Vector:$offsets, MoE_I32Vector:$row_token,
                      MoE_F32Vector:$row_gate);
  let assemblyFormat = [{
    $probs `k` `=` $k (`normalize` $normalize^)? `group_size` `=` $group_size
    (`capacity` `=` $capacity^)? `priority` `=` custom<PriorityKeyword>($priority)
    (`block` `=` $block^)? (`gate_scores` `(` $gate_scores^ `)`)?
    (`gate_scale` `=` $gate_scale^)? attr-dict `:` type(operands)
  }];
  let extraClassDeclaration = [{
    /// The scores the gates (and the batch-prioritized ranking) read.
    Value getGateSource() {
      return getGateScores() ? getGateScores() : getProbs();
    }
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// moe.grouped_matmul
//===----------------------------------------------------------------------===//

def MoE_GroupedMatmulOp : MoE_Op<"grouped_matmul",
    [Pure, AttrSizedOperandSegments]> {
  let summary = "one matmul per expert over its rows, with gather and epilogue";
  let description = [{
    For every expert e and every row r it owns, computes in f32
    acc[r] = a[r] · weight[e] (weight [E, K, N]), where the left operand row
    a[r] is `input[gather[r]]` with `gather` [R] (the gather is part of the
    operand load: no copy of the rows is made), or `input[r]` without it.
    Expert e owns the rows [offsets[e], offsets[e] + counts[e]); without
    `offsets`, expert e's rows follow those of experts < e
    (offsets[e] = Σ_{e' < e} counts[e']).

    Epilogue, per row:
    - with `activation`: act(acc), or for the gated activations (`geglu`,
      `swiglu`, which need `gate_weight`, a second [E, K, N] weight of the
      same product) act'(a[r] · gate_weight[e]) ⊙ acc: both products are
      computed by the same loop over K;
    - without `scatter`: the result is [R, N] f32 and row r holds the value;
      rows no expert owns are zero;
    - with `scatter(%indices, %scales)` ([R] i32 and [R] f32): the result is
      [T, N] f32 (T from the result type) and row r's value times
      `scales[r]` is added to result row `indices[r]`; result rows no row is
      added to are zero. This is the combine of the layer fused into the
      down projection.

    Accumulation is in f32 whatever the element types of `input` and the
    weights (f32, bf16 or f16).

    ```mlir
    %h = moe.grouped_matmul %x gather(%row_token) weight(%w_in)
        gate_weight(%w_gate) offsets(%offsets) counts(%counts)
        activation swiglu
        : tensor<16x32xf32>, tensor<32xi32>, tensor<4x32x64xf32>,
          tensor<4x32x64xf32>, tensor<5xi64>, tensor<4xi64> -> tensor<32x64xf32>
    %y = moe.grouped_matmul %h weight(%w_out) offsets(%offsets)
        counts(%counts) scatter(%row_token, %row_gate)
        : tensor<32x64xf32>, tensor<4x64x32xf32>, tensor<5xi64>,
          tensor<4xi64>, tensor<32xi32>, tensor<32xf32> -> tensor<16x32xf32>
    ```
  }];
  let arguments = (ins
    MoE_RowsTensor:$input,
    Optional<MoE_I32Vector>:$gather,
    MoE_Weight3D:$weight,
    Optional<MoE_Weight3D>:$gate_weight,
    Optional<MoE_I64Vector>:$offsets,
    MoE_I64Vector:$counts,
    Optional<MoE_I32Vector>:$scatter,
    Optional<MoE_F32Vector>:$scales,
    OptionalAttr<MoE_ActivationAttr>:$activation
  );
  let results = (outs MoE_F32Matrix:$result);
  let assemblyFormat = [{
    $input (`gather` `(` $gather^ `)`)? `weight` `(` $weight `)`
    (`gate_weight` `(` $gate_weight^ `)`)? (`offsets` `(` $offsets^ `)`)?
    `counts` `(` $counts `)` (`scatter` `(` $scatter^ `,` $scales `)`)?
    custom<OptionalActivation>($activation) attr-dict `:` type(operands)
    `->` type($result)
  }];
  let extraClassDeclaration = [{
    /// Rows of the left operand: the gather's length, or the input's rows.
    int64_t getNumRows() {
      if (getGather())
        return getGather().getType().getDimSize(0);
      return getInput().getType().getDimSize(0);
    }
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// moe.grouped_matmul_buffers
//===----------------------------------------------------------------------===//

def MoE_GroupedMatmulBuffersOp : MoE_Op<"grouped_matmul_buffers",
    [AttrSizedOperandSegments]> {
  let summary = "moe.grouped_matmul on buffers, into an output buffer";
  let description = [{
    The computation of `moe.grouped_matmul` with every operand a memref and
    the result written into `out` (which the op reads as well: the scatter
    form adds into it, so `out` must hold zeros before). Its memory effects
    are declared (reads of the operands, read and write of `out`), so the
    buffer passes (one-shot bufferization, the ownership-based deallocation)
    handle it, and the kernel that replaces it is built after them: the GPU
    pipeline's `moe-grouped-matmul-to-buffers` moves grouped matmuls onto
    buffers before bufferization and `moe-grouped-matmul-to-gpu` lowers this
    op to a tensor-core kernel (whose barriers and MMAs the deallocation
    pass does not accept).

    `out` is f32, or without `scatter` the weights' type: the rows are then
    rounded to it (round to nearest even) when stored, which is what a
    following grouped matmul with weights of that type does to its operand
    rows anyway.

    `unique_targets` (with `scatter` only) says that no two rows name the
    same output row (the rows of a top-1 routing): each row's value times
    its scale is then stored into its output row rather than added, and
    `out` may also be the weights' type (the value rounded to nearest even
    when stored: what rounding the sum over one row, 0 + value × scale, to
    that type gives). Output rows no row names keep what `out` held.

    ```mlir
    moe.grouped_matmul_buffers %x gather(%rows) weight(%w) counts(%c)
        out(%h) activation relu
        : memref<16x64xf32>, memref<32xi32>, memref<4x64x64xbf16>,
          memref<4xi64>, memref<32x64xf32>
    ```
  }];
  let arguments = (ins
    Arg<MemRefRankOf<MoE_FloatElts, [2]>, "token rows", [MemRead]>:$input,
    Arg<Optional<MemRefRankOf<[I32], [1]>>, "gather", [MemRead]>:$gather,
    Arg<MemRefRankOf<MoE_FloatElts, [3]>, "weight", [MemRead]>:$weight,
    Arg<Optional<MemRefRankOf<MoE_FloatElts, [3]>>, "gate weight",
        [MemRead]>:$gate_weight,
    Arg<Optional<MemRefRankOf<[I64], [1]>>, "offsets", [MemRead]>:$offsets,
    Arg<MemRefRankOf<[I64], [1]>, "counts", [MemRead]>:$counts,
    Arg<Optional<MemRefRankOf<[I32], [1]>>, "scatter", [MemRead]>:$scatter,
    Arg<Optional<MemRefRankOf<[F32], [1]>>, "scales", [MemRead]>:$scales,
    Arg<MemRefRankOf<MoE_FloatElts, [2]>, "output", [MemRead, MemWrite]>:$out,
    OptionalAttr<MoE_ActivationAttr>:$activation,
    UnitAttr:$unique_targets
  );
  let assemblyFormat = [{
    $input (`gather` `(` $gather^ `)`)? `weight` `(` $weight `)`
    (`gate_weight` `(` $gate_weight^ `)`)? (`offsets` `(` $offsets^ `)`)?
    `counts` `(` $counts `)` (`scatter` `(` $scatter^ `,` $scales `)`)?
    (`unique_targets` $unique_targets^)?
    `out` `(` $out `)` custom<OptionalActivation>($activation) attr-dict `:`
    type(operands)
  }];
  let extraClassDeclaration = [{
    /// Rows of the left operand: the gather's length, or the input's rows.
    int64_t getNumRows() {
      if (getGather())
        return getGather().getType().getDimSize(0);
      return getInput().getType().getDimSize(0);
    }
  }];
  let hasVerifier = 1;
}

def MoE_PlaceRowsBuffersOp : MoE_Op<"place_rows_buffers"> {
  let summary = "the counting half of moe.route_rows on buffers";
  let description = [{
    What `moe.route_rows` computes after the choice, on buffers: given the
    k experts and gates of every token (`experts`, `gates`, [T, k]) and,
    for batch-prioritized routing, the token at each ranking position of
    its group (`order`, [T]; without it position p is token p), it writes
    which assignments keep a slot (`keep`), the kept rows of every expert
    (`counts`, [E]), their block-aligned starts (`offsets`, [E + 1]) and the
    token and gate of every expert-sorted row (`row_token`, `row_gate`,
    [R]; -1 and 0 where no assignment lands), with the slots given per
    group of `group_size` ranking positions in order of choice rank, then
    ranking position, and `capacity` slots per expert and group (spec
    §3.3-3.4). `row_check`, when present, is the message of a runtime check
    of every row it writes.

    The GPU pipeline's `convert-moe-to-linalg{parallel-loops}` computes the
    choice and the ranking as parallel loops and leaves this step as this
    op, whose memory effects are declared so that the buffer passes handle
    it; `moe-place-rows-to-gpu` lowers it after them to two kernels that
    share memory within a block and synchronise at barriers (which the
    deallocation pass does not accept).

    ```mlir
    moe.place_rows_buffers experts(%e) gates(%g) keep(%k) counts(%c)
        offsets(%o) rows(%t, %w) group_size = 64 capacity = 20 block = 1
        : memref<64x2xi32>, memref<64x2xf32>, memref<64x2xi1>,
          memref<4xi64>, memref<5xi64>, memref<128xi32>, memref<128xf32>
    ```
  }];
  let arguments = (ins
    Arg<MemRefRankOf<[I32], [2]>, "experts", [MemRead]>:$experts,
    Arg<MemRefRankOf<[F32], [2]>, "gates", [MemRead]>:$gates,
    Arg<Optional<MemRefRankOf<[I32], [1]>>, "order", [MemRead]>:$order,
    Arg<MemRefRankOf<[I1], [2]>, "keep", [MemWrite]>:$keep,
    Arg<MemRefRankOf<[I64], [1]>, "counts", [MemWrite]>:$counts,
    Arg<MemRefRankOf<[I64], [1]>, "offsets", [MemWrite]>:$offsets,
    Arg<MemRefRankOf<[I32], [1]>, "row tokens", [MemWrite]>:$row_token,
    Arg<MemRefRankOf<[F32], [1]>, "row gates", [MemWrite]>:$row_gate,
    MoE_I64Attr:$group_size,
    OptionalAttr<MoE_I64Attr>:$capacity,
    DefaultValuedAttr<MoE_I64Attr, "1">:$block,
    OptionalAttr<StrAttr>:$row_check
  );
  let assemblyFormat = [{
    `experts` `(` $experts `)` `gates` `(` $gates `)`
    (`order` `(` $order^ `)`)? `keep` `(` $keep `)` `counts` `(` $counts `)`
    `offsets` `(` $offsets `)` `rows` `(` $row_token `,` $row_gate `)`
    `group_size` `=` $group_size (`capacity` `=` $capacity^)?
    (`block` `=` $block^)? (`row_check` $row_check^)? attr-dict `:`
    type(operands)
  }];
  let hasVerifier = 1;
}

#endif // MOE_IR_MOEFUSEDOPS_TD
