//===- Passes.td - Passes of the moe toolchain --------------*- tablegen -*-===//
//
// Declarations of the moe passes; options live here, code in lib/Transforms.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TRANSFORMS_PASSES_TD
#define MOE_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def MoEDecompose : Pass<"moe-decompose"> {
  let summary = "Rewrite moe.layer into the decomposed moe ops";
  let description = [{
    Replaces every `moe.layer` by the steps of the layer contract:
    `moe.route` → `moe.top_k` → `moe.assign_slots` → `moe.dispatch` →
    `moe.expert_ffn` → `moe.combine`, plus `moe.load_balance_loss`,
    `moe.router_z_loss` and `moe.count_dropped` for the statistics.

    A layer with a capacity C uses padded expert buffers [E, G·C', D] where
    C' = min(C, S) (an expert never receives more than S assignments of one
    group, so rows past S could never be filled). A dropless layer uses a
    packed buffer [T·k, D] sorted by expert, and passes the per-expert counts
    to `moe.expert_ffn`. With `packed-capacity`, capacity-bounded layers use
    the packed layout too (only kept assignments occupy rows), which spends
    no work on empty slots; the padded layout is what an exchange of expert
    buffers between ranks needs.

    Example: `moe-opt --moe-decompose layer.mlir`.
  }];
  let options = [
    Option<"packedCapacity", "packed-capacity", "bool", /*default=*/"false",
           "Use the packed [T·k, D] buffer for capacity-bounded layers too">
  ];
  let dependentDialects = ["::mlir::moe::MoEDialect"];
}

def MoEShardExperts : Pass<"moe-shard-experts", "::mlir::ModuleOp"> {
  let summary = "Rewrite a layer into the program each expert-parallel rank runs";
  let description = [{
    For `ranks` = N > 1, rewrites every `moe.layer` (whose operands are
    arguments of its function) into the per-rank program of expert
    parallelism: the function now takes the rank's T/N tokens and the E/N
    experts it holds (w_in, w_gate, w_out sliced along E; the router stays
    whole), routes its own tokens, dispatches them into padded [E, G·C, D]
    buffers, exchanges them with `moe.all_to_all` (split over experts,
    concatenated over slots) so that it holds the slots of its experts from
    every rank, runs its experts, exchanges the results back and combines.
    The statistics are made global with `moe.all_reduce`. Rank r holds the
    tokens [r·T/N, (r+1)·T/N) and the experts [r·E/N, (r+1)·E/N).

    When every routing group lies within one rank (group_size divides T/N)
    each rank routes its own groups, and the exchanges carry only its slots.
    When capacity-bounded groups span ranks, the ranks gather everyone's
    routing decisions (`moe.all_gather`) and assign slots over the global
    token order, exactly as the unsharded layer does; the expert buffers are
    then indexed by global slots, so the owner of an expert sums the
    disjoint rows it receives and every rank gathers the expert outputs back.
    A dropless layer drops nothing, so every rank routes its own tokens into
    a packed expert-major buffer and the variable-size exchange
    (`moe.exchange_rows`: counts first, then exactly the rows; then
    `moe.return_rows`) moves only the rows whose expert lives elsewhere; its
    load-balancing loss reads gathered decisions when groups span ranks.
    Layers it cannot shard get a diagnostic: E or T not divisible by N.

    With `replicas` = R > 1 the N ranks are one of R data-parallel replicas:
    the function takes T/(N·R) tokens (rank r: the r-th slice, experts of
    block r mod N), every exchange stays within the replica's N ranks
    (`ranks = N`), and the statistics are summed and averaged over all N·R
    ranks (`moe.all_reduce ranks = N·R`; the runtime sends each exchange to
    the group of its size). Routing groups must lie within a replica.

    The exchange is our own `moe.all_to_all` rather than upstream's
    `shard.all_to_all`: expert parallelism needs only a one-dimensional
    group of ranks, and keeping the op in our dialect lets the runtime
    choose MPI or NCCL without a `shard.grid` symbol.
  }];
  let options = [
    Option<"ranks", "ranks", "int64_t", /*default=*/"1",
           "Expert-parallel ranks N (E and T must be divisible by N)">,
    Option<"replicas", "replicas", "int64_t", /*default=*/"1",
           "Data-parallel replicas R of the N-rank expert-parallel group: "
           "N*R ranks, each with T/(N*R) tokens; routing groups must not "
           "span replicas">
  ];
  let dependentDialects = ["::mlir::moe::MoEDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect"];
}

def MoEFuseExperts : Pass<"moe-fuse-experts"> {
  let summary = "Fuse dispatch, expert MLPs and combine into grouped matmuls";
  let description = [{
    Rewrites the decomposed expert computation into the fused structure the
    CPU and GPU pipelines share:

    - `moe.dispatch` → `moe.expert_ffn` → `moe.combine` on a packed buffer
      (the layout of dropless layers, and of capacity-bounded ones under
      `moe-decompose{packed-capacity}`) becomes `moe.sort_by_expert` (the
      kept assignments as expert-sorted rows: offsets, token of each row,
      gate of each row), a `moe.grouped_matmul` that gathers the token rows
      in its operand load and applies the activation in its epilogue (for
      gated activations `w_in` and `w_gate` in one loop), and a second one
      over `w_out` whose epilogue multiplies by the gate and adds into the
      token's output row. No dispatch buffer ([T·k, D] copy of the tokens)
      and no per-expert output buffer remain.
    - A `moe.expert_ffn` on a packed buffer that does not come from a
      dispatch (the rows a sharded dropless layer receives from other ranks)
      becomes two grouped matmuls without gather or scatter.

    Padded [E, N, D] expert buffers (the exchange layout of sharded
    capacity-bounded layers) are left as they are. `block` aligns each
    expert's rows to a multiple of that size (for tile-sized GPU blocks).
    The pipelines run this pass unless their `fusion` option is off, so that
    both programs can be compared.

    Example: `moe-opt --moe-decompose=packed-capacity=1 --moe-fuse-experts`.
  }];
  let options = [
    Option<"block", "block", "int64_t", /*default=*/"1",
           "Align each expert's rows to a multiple of this many rows">
  ];
  let dependentDialects = ["::mlir::moe::MoEDialect",
                           "::mlir::arith::ArithDialect"];
}

def MoEVectorizeMatmuls : Pass<"moe-vectorize-matmuls", "::mlir::ModuleOp"> {
  let summary = "Register-tile and vectorize static matmuls for the host CPU";
  let description = [{
    Outlines every `linalg.matmul` and `linalg.batch_matmul` with static
    shapes and tensor semantics into a kernel function, blocks it by columns
    (up to 32) and then by reduction (up to 256; a [256, 32] weight panel
    stays in L1 across all row tiles), and register-tiles it by up to 8 rows
    with one reduction step per iteration (the largest sizes that divide the
    op's dimensions). The tiles are vectorized, the
    accumulator tile is hoisted out of the reduction loop into registers, and
    the contraction becomes broadcast-FMA outer products. Mixed element types
    (bf16 weights, f32 accumulator) are supported. The schedule is a
    transform-dialect script that the pass builds and interprets; ops it does
    not handle (dynamic shapes) are left for the generic loop lowering.

    With `threads` > 1 the column dimension is first split over that many
    threads (`scf.forall`, lowered to OpenMP by the CPU pipeline); 0 means
    one thread per hardware thread of the compiling machine.
  }];
  let options = [
    Option<"threads", "threads", "int64_t", /*default=*/"0",
           "Threads to split each matmul's columns over (0: all hardware "
           "threads, 1: no threading)">
  ];
  let dependentDialects = [
    "::mlir::transform::TransformDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::func::FuncDialect",
    "::mlir::vector::VectorDialect", "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect", "::mlir::arith::ArithDialect"
  ];
}

#endif // MOE_TRANSFORMS_PASSES_TD
