//===- Passes.td - Conversions out of the moe dialect ------*- tablegen -*-===//
//
// Lowerings of the moe ops to upstream dialects; code in lib/Conversion.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_PASSES_TD
#define MOE_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertMoEToLinalg : Pass<"convert-moe-to-linalg"> {
  let summary = "Lower the moe ops to linalg, tensor, arith, math and scf";
  let description = [{
    Rewrites every moe op into upstream tensor-level IR that one-shot
    bufferization understands. A remaining `moe.layer` is decomposed first
    (as `--moe-decompose` would). Router and expert matmuls become
    `linalg.generic` / `linalg.batch_matmul` / `linalg.matmul` with f32
    accumulation whatever the element types; the softmax, log-sum-exp and
    statistics are linalg reductions (statistics accumulate in f64); top-k
    selection, the priority walk of slot assignment and the dispatch scatter
    are `scf.for` loops over tensors; the combine is a gathering
    `linalg.generic`. `moe.all_to_all` and `moe.all_reduce` over several
    ranks become calls of the runtime's C entry points
    (`moe_rt_all_to_all_<type>`, `moe_rt_all_reduce_<type>`) on buffers.
    `moe.sort_by_expert` is a walk over the assignments and
    `moe.grouped_matmul` a gathering `linalg.generic` per weight.

    With `cpu-kernels` (the CPU pipeline), `moe.grouped_matmul` is left for
    `moe-grouped-matmul-to-vector`, and the router logits become a
    one-expert `moe.grouped_matmul` over the transposed router, so that the
    same vector kernel computes them.

    With `runtime-checks`, every index the routing computes or consumes is
    checked where it is used (`cf.assert`, message naming the op and its
    location): the expert ids of `moe.top_k` / `moe.route_rows` and those
    `moe.assign_slots` / `moe.sort_by_expert` read, the slot and row each
    assignment is given, and the row counts of `moe.exchange_rows`.

    With `parallel-loops` (the GPU pipeline), the steps that the default
    lowering walks over tokens or rows become buffers written by a fixed
    sequence of two-dimensional `scf.parallel` loops, (blocks of 32, lane),
    each of which the GPU mapping makes one kernel, so that no step of a
    layer call is left to the host. `moe.route_rows`: the top-k of every
    token; for batch-prioritized routing the ranking key of every token and
    its position in its group's ranking; clearing the rows; per chunk of 128
    ranking positions, choice rank and expert the assignments and where
    they start among the group's; the kept assignments per group and expert
    and those of earlier groups; the counts; the block-aligned offsets; and
    each assignment's slot and row (its chunk's start plus the same-expert
    assignments before it in the chunk). The statistics
    (`moe.load_balance_loss`, `moe.router_z_loss`, `moe.count_dropped`):
    partial sums per chunk of 128 in parallel, then one element that adds
    them. The scatter-add of a `moe.grouped_matmul` left to this lowering:
    one loop over every element of every row with an atomic add into the
    token's row. Group-limited `moe.choice_scores`: one token per element
    (a group is kept when fewer than `keep` groups rank ahead of it, group
    scores recomputed rather than held in a per-thread array);
    `moe.expert_choice`: one (group, expert) per element running its
    capacity rounds; `moe.dispatch`: one element of one kept row per
    element. No loop carries a value from one element to the next; the
    results equal those of the default lowering (sums up to the order of
    their terms).
  }];
  let options = [
    Option<"cpuKernels", "cpu-kernels", "bool", /*default=*/"false",
           "Leave grouped matmuls (and the router matmul, as one) for the "
           "CPU vector kernels">,
    Option<"runtimeChecks", "runtime-checks", "bool", /*default=*/"false",
           "Check every expert id, slot and row index at run time "
           "(cf.assert naming the op)">,
    Option<"parallelLoops", "parallel-loops", "bool", /*default=*/"false",
           "Lower moe.route_rows, the statistics and the scatter-add to "
           "parallel loops over buffers (the GPU pipeline's kernels)">
  ];
  let dependentDialects = [
    "::mlir::moe::MoEDialect", "::mlir::cf::ControlFlowDialect",
    "::mlir::arith::ArithDialect", "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect", "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect", "::mlir::func::FuncDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::bufferization::BufferizationDialect"
  ];
}

def MoECopiesToLinalg : Pass<"moe-copies-to-linalg"> {
  let summary = "Rewrite memref.copy into linalg.copy";
  let description = [{
    Every `memref.copy` becomes a `linalg.copy` of the same buffers, or, when
    it reads a constant global holding one repeated value, a `linalg.fill` of
    that value (kernels cannot read host globals); copies of other globals
    stay. The GPU
    pipeline runs it after bufferization, so that the copies bufferization
    and `buffer-results-to-out-params` insert become parallel loops and then
    GPU kernels like every other linalg op, instead of host calls of MLIR's
    `memrefCopy` on device data.
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect",
                           "::mlir::arith::ArithDialect"];
}

def MoEHostToDevice : Pass<"moe-host-to-device"> {
  let summary = "Run the host code that touches buffers in one-thread "
                "kernels";
  let description = [{
    After the parallel loops have become `gpu.launch` ops: every span of
    host ops that reads or writes a buffer (loads, stores, loops and
    conditionals holding them, with the scalar ops among them) becomes the
    body of a `gpu.launch` of one block of one thread, so that no step of a
    layer call runs on the host: the host code only allocates, launches,
    calls the collectives and frees. Spans end at launches, allocations,
    deallocations and calls, and at loops holding one (a host loop that
    launches kernels stays a host loop). A span one of whose values is used
    after it stays on the host (with a remark under `remarks`). The steps the
    lowering emits as parallel loops are unaffected; what this moves is
    the sequential remainder (expert-choice and group-limited routing, a
    constant statistic stored into a result), which then runs on one GPU
    thread. The GPU pipeline runs it after `convert-parallel-loops-to-gpu`
    (not with host loops).
  }];
  let options = [
    Option<"remarks", "remarks", "bool", /*default=*/"false",
           "A remark on every span left on the host and why">
  ];
  let dependentDialects = ["::mlir::gpu::GPUDialect",
                           "::mlir::arith::ArithDialect"];
}

def MoEHoistBuffers : Pass<"moe-hoist-buffers", "::mlir::func::FuncOp"> {
  let summary = "Allocate a host function's buffers at its entry and free "
                "them at its exit";
  let description = [{
    Moves every `memref.alloc` without operands in the function's body (not
    in a loop or a kernel) to the start of the body, and every
    `memref.dealloc` of the body to just before its return. The GPU pipeline
    runs it after outlining, before `gpu-async-region`: the host's
    allocation calls have side effects, so `gpu-async-region` would wait for
    the stream before each one; with the buffers allocated first and freed
    last, the launches of a layer call form one asynchronous chain on one
    stream with a single wait at its end. The price is that temporaries
    are not reused within a call (peak memory: all of them at once).
  }];
  let dependentDialects = ["::mlir::memref::MemRefDialect"];
}

def MoEReductionLoops : Pass<"moe-reduction-loops"> {
  let summary = "Lower linalg reductions on buffers to loops that accumulate "
                "in registers";
  let description = [{
    A `linalg.generic` on buffers with one output whose reduction iterators
    are innermost becomes an `scf.parallel` over its parallel dimensions; in
    each iteration an `scf.for` nest over the reduction dimensions carries the
    running value as an iteration argument, starting from the output's
    value, and the result is stored once. Multiplications and additions of
    the body are marked `contract`, so a multiply-add becomes one fused
    instruction. Upstream's `convert-linalg-to-parallel-loops` reloads and
    stores the output in every reduction step instead: on a GPU a global
    store per multiply-add. The GPU pipeline runs it on generalized linalg
    ops before the remaining ones become parallel loops.
  }];
  let dependentDialects = ["::mlir::scf::SCFDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::affine::AffineDialect",
                           "::mlir::arith::ArithDialect"];
}

def MoEGroupedMatmulToVector : Pass<"moe-grouped-matmul-to-vector"> {
  let summary = "Lower moe.grouped_matmul to register-tiled vector kernels "
                "for the host CPU";
  let description = [{
    Replaces every `moe.grouped_matmul` (on tensors, before bufferization)
    by a kernel on its operands' buffers (`bufferization.to_buffer`, the
    result a new buffer returned by a restrict `bufferization.to_tensor`).

    The kernel splits the output columns into panels of `V` vectors of `W`
    f32 lanes and works on (column panel, expert) units: for every tile of
    `MR` rows of the expert, it keeps the `MR × V` accumulator vectors (twice
    that for gated activations, whose two weights share the loop) in
    registers over the whole reduction, loads `V` weight vectors per
    reduction step and multiplies them with the broadcast operand elements,
    which it reads through the gather index (the dispatch is the operand
    load; no rows are copied). The epilogue applies the activation and
    stores the rows, or with `scatter` scales them by the gate and adds them
    into the token's output row. A row tile past the expert's last row
    repeats that row and stores nothing for it.

    `W` and the register budget come from the host CPU (512-bit vectors and
    32 registers with AVX-512, 256 and 16 with AVX, 128 and 16 otherwise;
    `vector-bits` and `registers` override them, and so does the
    environment variable `MOE_CPU_VECTOR=<bits>x<registers>`, e.g. `512x32`);
    `V` is 4 / 2 vectors in
    flight per step for 32 / 16 registers, and `MR` the rows that fit the
    remaining registers (at most 8); `W` and `V` shrink until the panel
    divides the columns. Units are spread over threads by one `scf.parallel`
    (OpenMP in the CPU pipeline) without a barrier per expert: (expert,
    column panel) pairs, expert-major; a scatter kernel's units are groups
    of whole column panels, one per thread, over all experts, so no two
    threads add into the same output elements and each expert's rows are
    read once per group. `threads=1` emits plain loops; 0 takes the
    compiling machine's hardware threads as the number of groups.

    Weights are constants of a compiled layer, so they are packed once, by
    the caller, into the layout the kernel reads: a weight that is an
    argument of a public function and read only by grouped matmuls becomes
    `tensor<E x N/P x K x P>` in the signature (P the panel width: each
    panel's K rows of P columns contiguous), and the function gets
    `moe.packed_weights = array<i64: arg, P, ...>`; `moe-run` packs those
    arguments when it binds the weights (`runtime::HostTensor::packPanels`). Any
    other weight is packed per call into a panel buffer of the unit
    (`pack-weights=0` forces that).
  }];
  let options = [
    Option<"threads", "threads", "int64_t", /*default=*/"0",
           "1: sequential loops; otherwise one scf.parallel over the units">,
    Option<"vectorBits", "vector-bits", "int64_t", /*default=*/"0",
           "Vector register width in bits (0: from the host CPU)">,
    Option<"registers", "registers", "int64_t", /*default=*/"0",
           "Vector registers of the target (0: from the host CPU)">,
    Option<"packWeights", "pack-weights", "bool", /*default=*/"true",
           "Weights that are arguments of a public function take the panel "
           "layout in its signature (packed once by the caller)">
  ];
  let dependentDialects = ["::mlir::bufferization::BufferizationDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::vector::VectorDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::arith::ArithDialect"];
}

def MoEGroupedMatmulToBuffers : Pass<"moe-grouped-matmul-to-buffers"> {
  let summary = "Move the grouped matmuls a tensor-core kernel can take onto "
                "buffers";
  let description = [{
    Replaces every `moe.grouped_matmul` whose weights are bf16 or f16, with
    K a multiple of 32 and N of 64 (on tensors, before bufferization), by
    `moe.grouped_matmul_buffers` on its operands' buffers
    (`bufferization.to_buffer ... read_only`) writing into a new zero-filled
    buffer, returned by a restrict `bufferization.to_tensor`. The GPU
    pipeline runs it before `convert-moe-to-linalg` (which lowers the other
    grouped matmuls to loops) and `moe-grouped-matmul-to-gpu` after the
    buffer passes. `remarks=1` says which grouped matmuls stay and why.

    A result whose only user is another such grouped matmul with weights of
    the same type, as its token rows (the hidden rows between the up and
    the down projection), is written in that type (bf16 or f16, rounded to
    nearest even): the consumer's kernel rounds its operand rows to the
    weights' type anyway, so the numbers are the same, the rows move half
    the bytes, and the consumer copies them asynchronously.

    A scatter (the down projection with the combine) whose indices are the
    `row_token` of a `moe.route_rows` with k = 1 names every token row at
    most once; when its result's only user rounds it to the weights' type
    (`arith.truncf`: the output of a bf16 or f16 layer), the buffer op gets
    `unique_targets` and writes that type: each row's scaled value is
    rounded and stored (the same number as rounding 0 + value × scale), so
    the f32 sum, its atomic adds and the cast kernel after it go away and
    the zero fill moves half the bytes.
  }];
  let options = [
    Option<"remarks", "remarks", "bool", /*default=*/"false",
           "A remark on every grouped matmul left to the loop lowering">
  ];
  let dependentDialects = ["::mlir::bufferization::BufferizationDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::arith::ArithDialect"];
}

def MoEGroupedMatmulToGpu : Pass<"moe-grouped-matmul-to-gpu"> {
  let summary = "Lower moe.grouped_matmul_buffers to tensor-core GPU kernels";
  let description = [{
    Replaces every `moe.grouped_matmul_buffers` (bf16 or f16 weights; after
    the buffer passes, which do not accept the kernel's barriers and MMAs)
    by one `gpu.launch` of warp-level tensor-core MMAs: `nvvm.mma.sync` of
    shape m16n8k16, `row.col`, f32 accumulation (`HMMA.16816.F32.BF16` on
    sm_80 and later). Upstream `nvgpu.mma.sync` is not used because its NVVM
    lowering in LLVM 22 rejects bf16 operands ("failed to deduce operand PTX
    types"); the fragments and the op are the ones it would produce.

    Blocks: x over column tiles of BN columns (64; 128 for a grouped matmul
    with one weight where N is a multiple of 128, unless `max-tile-cols=64`:
    the accumulators of two weights' 64 columns, half the operand bytes per
    FLOP, twice the work per MMA instruction), y over row tiles of one expert of BM
    rows (expert e has ceil(counts[e] / BM) of them, numbered in expert
    order; each block finds its tile by a scan of the E counts; the grid's y
    size is ceil(R / BM) + E, the bound on the number of tiles, and blocks
    past the last tile do nothing). BM is 128 where the experts average at
    least 256 rows (R >= 256 E: both warpgroups share each weight tile, half
    the weight bytes per FLOP of 64-row tiles), else 64 (an expert's last
    tile is padded to BM rows); `tile-rows` forces it. BM / 16 warps of 32
    threads: warp w computes rows [16w, 16w + 16) of the tile, all BN
    columns, as BN / 8 MMA tiles per weight (both weights of a gated activation
    in the same reduction loop). Launch bounds: one block per SM
    (`moe.min_blocks_per_sm`, for `moe-launch-bounds`). With 64-k steps the
    kernels' shared memory passes 48 KiB (gated, 64-row tiles: 73776 bytes
    with warpgroup MMAs, 82944 with warp MMAs; 128-row tiles: 98352 and
    110592), which the runtime allows per kernel before its launch. Each reduction step of
    S = 64 k (where K is a multiple of 64; else, or with `max-step-depth=32`,
    32: a step of 64 halves the per-step costs besides the MMAs, the barrier
    waits and arrivals, buffer and phase arithmetic and loop, per MMA)
    stages the weight tiles (S k rows of BN columns, the weights' own
    layout) into dynamic shared memory with `cp.async.cg` (16 bytes per
    copy, through L2, no registers), and the tile's operand rows, read
    through the `gather` index from the token matrix (no dispatch buffer):
    with `cp.async` too when the tokens are in the weights' type (rows past
    the tile's are zero-filled: source size 0), otherwise through registers,
    converted to the weights' type. Rows are padded by 4 words so that the
    fragment loads meet no bank conflicts: `ldmatrix.x4` for A,
    `ldmatrix.x4.trans` for B (the k-pairs of one column from two k rows),
    one per weight and pair of column tiles per k16 step. The steps are
    software pipelined over three shared buffers: each step's copies form
    one cp.async group, issued two steps ahead; a step waits for its group
    (`cp.async.wait_group 1`), passes one barrier, issues the copies of the
    step two ahead into the buffer the previous step read, and runs its MMAs
    (register-staged operand words are loaded before the MMAs and stored
    after them). The epilogue works on
    the accumulator fragments: the activation (with the gate product for
    `geglu` / `swiglu`) and a store, or with `scatter` the gate scale and an
    atomic f32 add into the token's output row (the rows of one token lie in
    other experts' blocks).

    With `warpgroup` (sm_90a; `moe-gpu-pipeline` sets it for that chip)
    each 128 threads are one warpgroup (its 64 rows start 128 S bytes
    further in the operand tile) and each k16 step is one
    `nvvm.wgmma.mma_async` m64nBNk16 per weight and warpgroup (f32 accumulators, the same
    fragment layout, so the epilogue is shared), its operands read from
    shared memory through 64-bit matrix descriptors: the tiles are stored
    in the canonical layouts without swizzling, core matrices of 8 rows x
    16 bytes (each 16-byte copy is one core-matrix row), A K-major (LBO
    128 bytes along k, SBO 16 S along the rows), B N-major, i.e. transposed
    (the weights' k rows: LBO 16 BN along k, SBO 128 along the columns); no
    ldmatrix, no padding. The pipeline has no block barrier: mbarriers in
    shared memory (initialised by thread 0, then one barrier) track each
    buffer: `full` expects one arrival per thread for its copies
    (`cp.async.mbarrier.arrive.noinc`, when they land) and one for its
    register stores (f32 tokens), `empty` one per thread once its MMAs of
    the step are complete. Step i waits for `full` of its buffer (phase
    parity (i / 3) % 2), fences the tiles for the async proxy
    (`fence.proxy.async.shared::cta`: the copies and stores are
    generic-proxy writes), issues its MMAs as one wgmma group and waits for
    all groups but that one (`wgmma.wait_group 1`: the tensor cores keep
    working on step i while the thread goes on), so step i - 1's MMAs are
    complete: it arrives on that step's `empty`, waits for every thread's
    arrival there, and refills the buffer. After the loop it waits for the
    last group.

    The operand rows are rounded to the weights' type, so results follow
    the spec's bf16 tolerance rather than the f32 one.

    With `host-loops` the kernel's blocks, threads, tiles, index math,
    staging, fragment loads and epilogue become host loops in the kernel's
    order (per reduction step: the copies of all threads, stored at once,
    and their register-staged loads into a register file, the rows each lane
    gives its warp's ldmatrix, the words each lane takes of the rows its
    warp gave (for `.trans`, halves of two rows' words), the MMAs, the
    register-staged stores), and only the warp MMA
    is replaced by host code that computes D = A B + C of each lane from the
    registers of its warp's 32 lanes, by the PTX ISA's m16n8k16 fragment
    layout: the GPU kernel's structure, its fragment index math included,
    checked numerically without a GPU. With `warpgroup` each thread's
    accumulator elements are computed from the tiles at the addresses its
    descriptors' fields give (decoded from the 64-bit values). Its buffers
    are allocated and freed around the loops.
  }];
  let options = [
    Option<"hostLoops", "host-loops", "bool", /*default=*/"false",
           "Emit the kernel as host loops with a host MMA">,
    Option<"warpgroup", "warpgroup", "bool", /*default=*/"false",
           "Warpgroup MMAs (wgmma, sm_90a) from descriptor-addressed tiles "
           "instead of warp MMAs (mma.sync)">,
    Option<"tileRows", "tile-rows", "int64_t", /*default=*/"0",
           "Rows of a block tile: 64, 128, or 0 (128 where the experts "
           "average at least 256 rows, else 64)">,
    Option<"maxStepDepth", "max-step-depth", "int64_t", /*default=*/"64",
           "The k of a reduction step: 64 (where K is a multiple of 64, "
           "else 32) or 32">,
    Option<"maxTileCols", "max-tile-cols", "int64_t", /*default=*/"128",
           "Columns of a block tile with one weight: 128 (where N is a "
           "multiple of 128, else 64) or 64; with two weights always 64">
  ];
  let dependentDialects = ["::mlir::memref::MemRefDialect",
                           "::mlir::gpu::GPUDialect",
                           "::mlir::NVVM::NVVMDialect",
                           "::mlir::LLVM::LLVMDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::arith::ArithDialect"];
}

def MoEContractionToGpu : Pass<"moe-contraction-to-gpu"> {
  let summary = "Lower dense f32-accumulated contractions (the router's "
                "logits) to tiled SIMT GPU kernels";
  let description = [{
    Replaces every `linalg.generic` on static buffers computing
    `C[m, n] += f32(A[m, k]) * f32(B[n, k])` (indexing maps (m, k), (n, k)
    -> (m, n); A and B f32, bf16 or f16, each optionally `arith.extf`-ed in
    the body; C f32): in the GPU pipeline the router's logits `x · routerᵀ`,
    which the spec keeps in f32 whatever the layer's type, by one
    `gpu.launch` of shared-memory tiles (after the buffer passes).

    A block computes a BM x BN tile of C: BN is N rounded up to a power of
    two, 4 to 64, BM 64 (32 when BN <= 8), so that a layer with few experts
    still has many blocks; each thread computes RM x RN elements (RN 4, RM 4
    / 2 / 1 for BN >= 32 / 16 / smaller; 256 threads for BN 64, 128 for 32
    and 16, 64 and 32 below). Per step of 32 k values the threads load the
    block's A rows and B rows of the step (element e of a tile is row
    e / 32, k e % 32: a warp reads 32 consecutive k of one row, coalesced),
    convert them to f32 and store them transposed (tile[k][row], rows padded
    by 4 words) into shared memory; each thread then reads RM values of A and
    RN of B per k as aligned vectors (`ld.shared.v4.f32`) and updates its
    accumulators with `math.fma`. Two shared buffers per operand: step i
    issues the loads of step i + 1 before its multiply-adds and stores them
    into the other buffer after them, then passes one barrier. Elements
    past M, N or K are read at a clamped address and replaced by 0, and not
    stored. When the op right before (nothing with memory effects between)
    is a `linalg.fill` of C with 0, the fill is removed and the kernel stores
    its sums instead of adding them to C.

    Without it, `moe-reduction-loops` makes one thread per element of C that
    reads its A row and B row from global memory: the lanes of a warp read
    32 different B rows (32 sectors per load).

    With `host-loops` the kernel becomes host loops of the same structure
    (per block, per phase: loads, multiply-adds, stores; per thread), the
    shared tiles, every thread's accumulators and loaded values host
    buffers, and the vector loads scalar loads of the same elements, so the
    host-emulated pipeline checks the tiles' index math numerically.
    `remarks=1` says why a contraction is left to the loop lowering.
  }];
  let options = [
    Option<"hostLoops", "host-loops", "bool", /*default=*/"false",
           "Emit the kernel as host loops (per block, phase and thread)">,
    Option<"remarks", "remarks", "bool", /*default=*/"false",
           "A remark on every reduction left to the loop lowering">
  ];
  let dependentDialects = ["::mlir::memref::MemRefDialect",
                           "::mlir::gpu::GPUDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::vector::VectorDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::arith::ArithDialect"];
}

def MoELaunchBounds : Pass<"moe-launch-bounds", "::mlir::gpu::GPUModuleOp"> {
  let summary = "Give outlined kernels the occupancy hints their builders "
                "asked for";
  let description = [{
    A kernel builder that needs more than one block per SM to fit in the
    registers (CUDA's `__launch_bounds__(threads, minBlocks)`) marks an op of
    the `gpu.launch` body with `moe.min_blocks_per_sm = N : i32`, since
    `gpu-kernel-outlining` drops the launch's own attributes. After
    outlining, this pass moves the largest such mark of each `gpu.func` to
    the function as `nvvm.minctasm = N`, which the NVVM translation emits
    as `.minnctapersm N`: ptxas then budgets registers for N blocks of the
    kernel's threads. Without it ptxas may pick fewer registers than the
    kernel needs and spill (the router's tiled contraction: 40 registers
    and 8 bytes of spills at 256 threads).
  }];
  let dependentDialects = ["::mlir::NVVM::NVVMDialect"];
}

def MoEPlaceRowsToGpu : Pass<"moe-place-rows-to-gpu"> {
  let summary = "Lower moe.place_rows_buffers to two block-structured "
                "kernels";
  let description = [{
    Replaces every `moe.place_rows_buffers` (after the buffer passes, which
    do not accept barriers) by two `gpu.launch` ops that share memory within
    a block and synchronise at block barriers:

    - the chunk kernel, one block of up to 128 threads per chunk of 128
      ranking positions of a group (fewer when k · 128 words would pass the
      48 KiB of shared memory) (one thread per position): the chunk's
      experts of every choice rank into dynamic shared memory, the chunk's
      counts zeroed and a share of the rows cleared (token -1, gate 0);
      barrier; per choice rank j of its position, each thread counts the
      same-expert assignments before it in the chunk (walking the shared
      experts: deterministic, no atomics), and the last of them stores the
      chunk's count of (j, expert);
    - the place kernel, one block of 512 threads in four phases: per
      (group, expert) the start of every (rank, chunk) count among the
      group's assignments to that expert (earlier ranks first, then earlier
      chunks, the order of spec §3.3) and the kept total (at most the
      capacity); per expert the kept rows of the groups before each group
      and the expert's count; the block-aligned offsets; per assignment its
      slot (its chunk's start plus the assignments before it in the chunk),
      `keep`, and, when kept, the token and gate of its row.

    Scratch buffers (counts and starts per chunk, rank and expert; the
    within-chunk rank of every assignment; kept and earlier rows per group
    and expert) are allocated and freed around the kernels. With
    `host-loops` each kernel becomes host loops of the same structure (per
    block, per phase, per thread, the shared memory a host buffer): values
    pass between phases only through memory, as on the GPU, so the
    host-emulated pipeline checks the kernels' index math numerically.
  }];
  let options = [
    Option<"hostLoops", "host-loops", "bool", /*default=*/"false",
           "Emit the kernels as host loops (per block, phase and thread)">
  ];
  let dependentDialects = ["::mlir::memref::MemRefDialect",
                           "::mlir::gpu::GPUDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::cf::ControlFlowDialect",
                           "::mlir::arith::ArithDialect"];
}

def MoELowerRuntimeChecks : Pass<"moe-lower-runtime-checks", "::mlir::ModuleOp"> {
  let summary = "Failed cf.assert checks call the runtime's error reporter";
  let description = [{
    Rewrites every `cf.assert` of the host code (not inside a `gpu.module`)
    into a branch that, when the condition is false, calls
    `moe_rt_check_failed(message)` (a C function of the runtime: it prints
    `error: runtime check failed: <message>` on one line to stderr and ends
    the process with status 3) with the assert's message as a constant
    string. Run before `convert-cf-to-llvm`, which would otherwise lower the
    asserts to `puts` + `abort` (a message on stdout and a crash status).
    The pipelines run it when their `runtime-checks` option is on.
  }];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect",
                           "::mlir::cf::ControlFlowDialect"];
}

#endif // MOE_CONVERSION_PASSES_TD
