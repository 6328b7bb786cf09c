//===- GroupedMatmulToGpu.cpp - Grouped matmuls on tensor cores ----------===//
//
// The moe-grouped-matmul-to-gpu pass: every moe.grouped_matmul whose weights
// are bf16 or f16 becomes one GPU kernel of tensor-core MMAs with f32
// accumulation, warp-level (`mma.sync.m16n8k16`) or, for sm_90a,
// warpgroup-level (`wgmma.mma_async` m64n64k16 or m64n128k16 on
// descriptor-addressed shared tiles): a block per (64- or 128-row tile of
// one expert, 64- or 128-column tile), the weight tile and the tile's operand
// rows (gathered through the index) copied into shared memory by cp.async in a
// three-stage pipeline (operand rows that need a conversion to the
// weights' type go through registers), fragments by ldmatrix (.trans for
// the weights' k rows), and the epilogue (activation, or gate scale and
// scatter-add) on the accumulator fragments. With `host-loops` the same
// blocks, tiles, index math, staging, fragment loads and epilogue run as
// host loops (a copy stores its words at once), and only the warp's MMA is
// replaced by a host computation
// of D = A B + C from the fragment registers of the warp's 32 lanes (the
// PTX ISA's m16n8k16 layout, written independently of the fragment loads).
//
//===----------------------------------------------------------------------===//

#include "GpuKernels.h"
#include "MoEToLinalg/Emitter.h"
#include "moe/Conversion/Passes.h"
#include "moe/IR/MoEOps.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEGROUPEDMATMULTOBUFFERS
#define GEN_PASS_DEF_MOEGROUPEDMATMULTOGPU
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::lowering::ix;
using mlir::moe::kernels::loadRow;
using mlir::moe::kernels::storeRow;

namespace {

// The block tile: rowsPerTile rows of one expert (64 or 128, chosen per
// grouped matmul) × tileCols columns (64, or 128 for a grouped matmul with
// one weight: the accumulators of two weights' 64 columns), the reduction
// staged stepDepth at a time (64 where K allows, else 32); warpCount =
// rowsPerTile / 16 warps, warp w owning rows [16w, 16w + 16) and all tileCols
// columns as nTiles = tileCols / 8 MMA tiles of 16 × 8 (with warpgroup MMAs,
// warpgroup v = warps 4v to 4v + 3 owns rows [64v, 64v + 64), the same
// rows, one m64nNk16 MMA per weight and k16 step, N = tileCols). 128 rows
// per block halve the weight bytes each block reads per FLOP against 64
// (both warpgroups read the one B tile): a bf16 gated tile step moves 16
// KiB for 1 MFLOP per 32 k (65 FLOP per byte from L2) where the 64-row tile
// moves 12 KiB for 0.5 MFLOP (43); but an expert's last tile is padded to
// 128 rows, so 128 is chosen only where experts average at least
// kLargeTileMinRows rows. 128 columns for one weight do the same for the
// operand rows, and give each MMA instruction twice the work. A step of 64
// k instead of 32 halves what each step costs besides its MMAs (the waits
// on and arrivals at the buffers' barriers, the buffer and phase
// arithmetic, the loop) per MMA.
constexpr int64_t kMinCols = 64, kMinStepDepth = 32;
constexpr int64_t kLargeTileMinRows = 256;
// Reduction steps in flight: kStages shared buffers of each tile, filled
// kStages - 1 steps ahead of the MMAs.
constexpr int64_t kStages = 3;
// Shared tiles hold pairs of elements as 32-bit words. The operand tile:
// rowsPerTile rows of the step's stepDepth elements (stepWords words),
// pitchA words apart; the weight tiles: stepDepth rows (k) of tileCols
// elements (bWords words, the weights' own layout), bPitch words apart. The
// 4 words of padding put the 8 rows of an ldmatrix matrix in 8 distinct
// groups of 4 banks (rows 20, 36 or 68 words apart).
// The warpgroup MMA's tiles: core matrices of 8 rows x 16 bytes (32 words),
// coresB per weight tile (stepDepth x tileCols) and buffer. A warpgroup's
// 64 rows start warpgroupBytes apart in the operand tile.
constexpr int64_t kWarpgroupRows = 64;
// An asynchronous copy moves 16 bytes: kChunk elements of 16 bits.
constexpr int64_t kChunk = 8;
// Warpgroup MMA groups (one per reduction step) left running while the
// next step is set up: waiting for all of them each step (wgmma.wait_group
// 0) would drain the tensor cores' pipeline at every step; with one left,
// step i's MMAs run while the thread releases step i - 1's buffer, refills
// it and waits for step i + 1's tiles.
constexpr int64_t kMmaGroupsInFlight = 1;
// Blocks per SM the kernel's registers must allow (with 256 threads, two
// weights' accumulators take 64 registers per thread).
constexpr int64_t kMinBlocksPerSM = 1;

class MmaKernel {
public:
  /// `rows`: the rows of a block tile, 64 or 128; `columns`: its columns,
  /// 64 or 128; `depth`: the k of a reduction step, 32 or 64.
  MmaKernel(GroupedMatmulBuffersOp op, bool hostLoops, bool warpgroup,
            int64_t rows, int64_t columns, int64_t depth)
      : op(op), hostLoops(hostLoops), warpgroup(warpgroup), rowsPerTile(rows),
        warpCount(rows / 16), threadCount(32 * warpCount), tileCols(columns),
        nTiles(columns / 8), bWords(columns / 2), bPitch(bWords + 4),
        stepDepth(depth), stepWords(depth / 2), pitchA(stepWords + 4),
        aTileBytes(rows * pitchA * 4), bTileBytes(depth * bPitch * 4),
        coresA(rows * depth / 64), coresB(depth * columns / 64),
        warpgroupBytes(kWarpgroupRows / 8 * (depth / 8) * 128),
        copiesA(rows * depth / kChunk / threadCount),
        copiesB(depth * columns / kChunk / threadCount),
        prefetchA(rows * stepWords / threadCount) {
    assert((rows == 64 || rows == 128) && "whole warpgroups of 16-row bands");
    assert(isTileColsChoice(columns) && "whole MMA column tiles");
    assert(isStepDepthChoice(depth) &&
           "whole core matrices and ldmatrix tiles per step");
    assert(copiesA * threadCount * kChunk == rows * depth &&
           copiesB * threadCount * kChunk == depth * columns &&
           "whole copies per thread");
    assert(rows % (threadCount / (stepWords / 2)) == 0 &&
           "register-staged operand rows: whole passes of threads a row");
  }

  /// The k of a reduction step for K = `k`: `most` (32 or 64) where it
  /// divides K, else 32 (unsupported() requires that).
  static int64_t stepDepthFor(int64_t k, int64_t most) {
    return k % most == 0 ? most : kMinStepDepth;
  }

  /// The block tile's columns for N = `n` columns of `weights` weights:
  /// `most` (64 or 128) for one weight where it divides N, else 64.
  static int64_t tileColsFor(int64_t n, int64_t weights, int64_t most) {
    return weights == 1 && n % most == 0 ? most : kMinCols;
  }

  /// The block tile's rows for a grouped matmul of `rows` rows over
  /// `experts` experts: 128 where the experts average at least
  /// kLargeTileMinRows rows, else 64.
  static int64_t tileRowsFor(int64_t rows, int64_t experts) {
    return rows >= kLargeTileMinRows * experts ? 128 : 64;
  }

  /// Why a grouped matmul with these weights cannot use the kernel (empty
  /// when it can).
  static std::string unsupported(ShapedType weightType, Value gateWeight);

  /// Emits the kernel in place of `op`.
  void build(OpBuilder &builder);

private:
  Value loadIndex(ImplicitLocOpBuilder &b, Value memref, ValueRange at) {
    return arith::IndexCastOp::create(b, b.getIndexType(),
                                      memref::LoadOp::create(b, memref, at));
  }
  /// Two elements of the weights' type packed into a word, `lo` in the low
  /// half (the lower k of an MMA fragment register).
  Value pack(ImplicitLocOpBuilder &b, Value lo, Value hi);
  /// Two 16-bit values packed into a word, `lo` in the low half.
  Value packBits(ImplicitLocOpBuilder &b, Value lo, Value hi);
  /// The 16 bits of half `high` (an i32 0 or 1) of a word.
  Value halfBits(ImplicitLocOpBuilder &b, Value word, Value high);
  /// Element `high` (0 or 1) of a packed word, as f32.
  Value unpack(ImplicitLocOpBuilder &b, Value word, int high);
  /// A value of any float type in the weights' type.
  Value toMmaType(ImplicitLocOpBuilder &b, Value v);

  /// Finds the tile of block row `by`: sets `expert`, `tileStart` (its
  /// first row) and `tileRows` (0 for a block past the last tile).
  void locate(ImplicitLocOpBuilder &b, Value by);
  /// A thread's position: its warp, its lane = 4 g + q.
  struct LaneIds {
    Value warp, lane, g, q;
  };
  LaneIds laneIds(ImplicitLocOpBuilder &b, Value tid);
  /// A word of a shared tile: the tile and its (row, word).
  struct TileWord {
    Value tile, row, word;
  };
  /// An asynchronous copy of kChunk elements: from `source` at `at` (the
  /// last index the first element's) to the shared words at `to`; with
  /// `valid` false (a row past the tile's), zeros.
  struct Copy {
    TileWord to;
    Value source;
    SmallVector<Value> at;
    Value valid;
  };
  /// Thread `tid`'s copies for reduction step `k0`: copiesA of the operand
  /// tile (when its rows need no conversion), then copiesB of each weight
  /// tile, neighbouring threads copying neighbouring 16 bytes.
  SmallVector<Copy> copies(ImplicitLocOpBuilder &b, Value tid, Value k0,
                           Value col0);
  /// Issues thread `tid`'s copies of step `k0` into buffer `stage`:
  /// `cp.async.cg` (16 bytes, zero-filled for rows past the tile), or on the
  /// host the same words stored at once.
  void issueCopies(ImplicitLocOpBuilder &b, Value tid, Value k0, Value col0,
                   Value stage);
  /// Where word `word` of operand row `row` (of k row `k` of weight tile
  /// `tile`) lies: rows `pitchA` (`bPitch`) words apart for the warp MMA;
  /// for the warpgroup MMA, the canonical layouts without swizzling: core
  /// matrices of 8 rows x 16 bytes (128 contiguous bytes), the operand's
  /// K-major (8 tile rows x 8 k; core matrices along k adjacent, stepDepth / 8
  /// per 8 rows), the weights' N-major (8 k rows x 8 columns; along the
  /// columns adjacent, tileCols / 8 per 8 k rows).
  TileWord operandWord(ImplicitLocOpBuilder &b, Value row, Value word);
  /// Word `word` of row `row` of a core-matrix tile whose rows of 8 hold
  /// `coresPerRows` core matrices.
  TileWord coreWord(ImplicitLocOpBuilder &b, Value tile, Value row, Value word,
                    int64_t coresPerRows);
  TileWord weightWord(ImplicitLocOpBuilder &b, Value tile, Value k, Value word);
  /// The byte address of a tile's word in buffer `stage` as an i64: in the
  /// shared window on the GPU, from the tile's start with `fromTile` (the
  /// host's descriptors).
  Value tileByte(ImplicitLocOpBuilder &b, const TileWord &word, Value stage,
                 bool fromTile);
  /// The shared address of a tile's word in buffer `stage`.
  Value sharedAddress(ImplicitLocOpBuilder &b, const TileWord &word,
                      Value stage);
  /// The address `bytes` (an index) past the start of `buffer`, as an i64.
  Value bufferByte(ImplicitLocOpBuilder &b, Value buffer, Value bytes);
  /// An i64 address as a pointer into address space `space`.
  Value pointer(ImplicitLocOpBuilder &b, Value address, unsigned space);
  /// Whether operand tile row `row` holds a row (`valid`), and the token
  /// row it reads (through the gather index; the tile's first row for rows
  /// past its end, which read zeros).
  std::pair<Value, Value> operandSource(ImplicitLocOpBuilder &b, Value row);
  /// Thread `tid`'s asynchronous copy `p` of the operand tile: its row and
  /// its chunk of kChunk elements in the row.
  std::pair<Value, Value> operandCopy(ImplicitLocOpBuilder &b, Value tid,
                                      int64_t p);
  /// operandSource of each operand row thread `tid` reads in a step: of
  /// each of its copiesA copies (asyncA), or of each pair of words it
  /// stages through registers. The same in every step: the kernel
  /// computes them once, before the reduction loop (`rowSources`), since
  /// the compiler cannot move the index loads out of a loop that writes
  /// shared memory, and a copy's address would wait for one every step.
  SmallVector<std::pair<Value, Value>> operandSources(ImplicitLocOpBuilder &b,
                                                      Value tid);
  /// A wgmma shared-memory matrix descriptor (no swizzling): start address,
  /// and the byte distances of core matrices adjacent along k (`alongK`)
  /// and along the rows or columns (`alongMN`).
  Value descriptor(ImplicitLocOpBuilder &b, Value start, int64_t alongK,
                   int64_t alongMN);
  /// Thread `tid`'s warpgroup MMA descriptors of k16 step `step` in buffer
  /// `stage`: the operand tile's, then each weight tile's.
  SmallVector<Value> descriptors(ImplicitLocOpBuilder &b, Value tid,
                                 int64_t step, Value stage);
  /// Thread `tid`'s descriptors of the first k16 step of buffer 0, from
  /// which descriptors() offsets the others (on the GPU computed once per
  /// block, `descBases`).
  SmallVector<Value> baseDescriptors(ImplicitLocOpBuilder &b, Value tid);
  /// One reduction step of the accumulators by warpgroup MMAs
  /// (m64n64k16, operands from shared memory through descriptors), issued
  /// as one group; returns once at most the newest kMmaGroupsInFlight
  /// groups are pending (the loop's last step's results are waited for
  /// after it, before the epilogue reads them).
  SmallVector<Value> contractWarpgroup(ImplicitLocOpBuilder &b, Value tid,
                                       ValueRange acc, Value stage);
  /// The warpgroup kernel's mbarriers: `full` of buffer `stage` completes a
  /// phase when the step's tiles have landed (every thread's copies, and
  /// stores), `empty` when every thread's MMAs of the step are done with it.
  Value barrierAddress(ImplicitLocOpBuilder &b, Value stage, bool empty);
  /// Waits until the phase of `barrier` that step `step` (of the steps
  /// using its buffer, one phase each) completes.
  void waitForStep(ImplicitLocOpBuilder &b, Value barrier, Value step);
  /// The host's warpgroup MMAs for thread `tid`: its accumulator elements
  /// (the m64nNk16 fragment layout) from the tiles, read through the
  /// decoded descriptors.
  SmallVector<Value> emulateWarpgroupMma(ImplicitLocOpBuilder &b, Value tid,
                                         ValueRange acc, Value stage);
  /// The global address of element `at` of a buffer of 16-bit elements.
  Value globalAddress(ImplicitLocOpBuilder &b, Value buffer, ValueRange at);
  /// Without asynchronous operand copies (f32 tokens): the operand words
  /// (row, word of the row) thread `tid` stages each step through registers,
  /// with the loads of neighbouring threads contiguous (pairs of neighbouring
  /// words of one row); loadStage converts and packs them for step `k0`,
  /// storeStage stores them into buffer `stage`.
  SmallVector<TileWord> stageWords(ImplicitLocOpBuilder &b, Value tid);
  SmallVector<Value> loadStage(ImplicitLocOpBuilder &b, Value tid, Value k0);
  void storeStage(ImplicitLocOpBuilder &b, Value tid, ValueRange words,
                  Value stage);
  /// Thread `tid`'s ldmatrix.x4 rows for k16 step `step` (where the row it
  /// gives its warp starts): one for A, then one per (weight, pair of
  /// column tiles), these transposing (`.trans`: the weight tiles hold k
  /// rows, the MMA's B fragments k-pairs of one column).
  SmallVector<TileWord> matrixLoads(ImplicitLocOpBuilder &b, Value tid,
                                    int64_t step);
  int64_t matrixLoadCount() const { return 1 + numWeights * nTiles / 2; }
  /// Thread `tid`'s MMA operand registers of k16 step `step` from buffer
  /// `stage`, by ldmatrix, as 32-bit words: A's 4, then 2 per (weight,
  /// column tile).
  SmallVector<Value> fragments(ImplicitLocOpBuilder &b, Value tid, int64_t step,
                               Value stage);
  /// One reduction step of thread `tid`'s accumulators: the warp's MMAs.
  SmallVector<Value> contract(ImplicitLocOpBuilder &b, Value tid,
                              ValueRange acc, Value stage);
  /// The host's ldmatrix: thread `t`'s words of the rows its warp's lanes
  /// gave (in hostRows), from buffer `stage`, into hostFrag.
  void emulateMatrixLoads(ImplicitLocOpBuilder &b, Value t, Value stage);
  /// The host's warp MMAs, from every lane's registers in hostFrag.
  SmallVector<Value> emulateMma(ImplicitLocOpBuilder &b, Value tid,
                                ValueRange acc);
  int64_t fragWords() const { return 4 + numWeights * nTiles * 2; }
  int64_t accAt(int64_t w, int64_t j, int64_t i) const {
    return (w * nTiles + j) * 4 + i;
  }
  /// Activation, then store or scaled scatter-add of the fragments.
  void epilogue(ImplicitLocOpBuilder &b, Value tid, Value col0, ValueRange acc);
  /// The block at (bx, by): locate, reduction steps, epilogue.
  void block(ImplicitLocOpBuilder &b, Value bx, Value by, Value tid);

  int64_t accCount() const { return numWeights * nTiles * 4; }

  GroupedMatmulBuffersOp op;
  bool hostLoops;
  // wgmma (sm_90a) instead of mma.sync.
  bool warpgroup;
  Value input, gather, weights[2], offsets, counts, scatter, scales, out;
  // Shared tiles (workgroup memory, or host buffers), and on the host the
  // accumulators ([threadCount, accCount]), MMA operand registers
  // ([threadCount, 2 fragWords]) and prefetch registers of every thread.
  Value tileA, tileB[2], hostAcc, hostFrag, hostPrefetch, hostRows;
  // The warpgroup kernel's 2 kStages mbarriers (full, then empty).
  Value barriers;
  Value expert, tileStart, tileRows;
  // On the GPU, the thread's operandSources (empty on the host, which
  // computes them where they are used).
  SmallVector<std::pair<Value, Value>> rowSources;
  // On the GPU with warpgroup MMAs, the thread's baseDescriptors.
  SmallVector<Value> descBases;
  Type mmaType;
  // Whether the operand rows are copied asynchronously (tokens in the
  // weights' type) rather than converted through registers.
  bool asyncA = false;
  int64_t numWeights = 1, depth = 0, cols = 0, experts = 0;
  // The block tile's rows and threads and the step's depth, and what
  // follows from them; per thread and step the asynchronous copies of the
  // operand tile and of each weight tile, and the operand words staged
  // through registers.
  // The reduction step's k, its words per operand row and the operand
  // tile's row pitch (warp MMA), the bytes of the operand and weight tiles
  // (warp MMA) and their core matrices (warpgroup MMA), the distance of the
  // warpgroups' rows in the operand tile.
  const int64_t rowsPerTile, warpCount, threadCount, tileCols, nTiles, bWords,
      bPitch, stepDepth, stepWords, pitchA, aTileBytes, bTileBytes, coresA,
      coresB, warpgroupBytes, copiesA, copiesB, prefetchA;
};

std::string MmaKernel::unsupported(ShapedType weightType, Value gateWeight) {
  Type elt = weightType.getElementType();
  if (!elt.isBF16() && !elt.isF16())
    return "f32 weights (the tensor-core kernel takes bf16 or f16)";
  if (gateWeight &&
      cast<ShapedType>(gateWeight.getType()).getElementType() != elt)
    return "weight and gate weight of different types";
  if (weightType.getDimSize(1) % kMinStepDepth != 0)
    return "K = " + std::to_string(weightType.getDimSize(1)) +
           " is not a multiple of " + std::to_string(kMinStepDepth);
  if (weightType.getDimSize(2) % kMinCols != 0)
    return "N = " + std::to_string(weightType.getDimSize(2)) +
           " is not a multiple of " + std::to_string(kMinCols);
  return "";
}

Value MmaKernel::toMmaType(ImplicitLocOpBuilder &b, Value v) {
  if (v.getType() == mmaType)
    return v;
  if (v.getType() != b.getF32Type())
    v = arith::ExtFOp::create(b, b.getF32Type(), v);
  return arith::TruncFOp::create(b, mmaType, v);
}

Value MmaKernel::packBits(ImplicitLocOpBuilder &b, Value lo, Value hi) {
  Value high =
      arith::ShLIOp::create(b, arith::ExtUIOp::create(b, b.getI32Type(), hi),
                            arith::ConstantIntOp::create(b, 16, 32));
  return arith::OrIOp::create(b, arith::ExtUIOp::create(b, b.getI32Type(), lo),
                              high);
}

Value MmaKernel::pack(ImplicitLocOpBuilder &b, Value lo, Value hi) {
  auto bits = [&](Value v) -> Value {
    return arith::BitcastOp::create(b, b.getI16Type(), v);
  };
  return packBits(b, bits(lo), bits(hi));
}

Value MmaKernel::halfBits(ImplicitLocOpBuilder &b, Value word, Value high) {
  Value shift =
      arith::MulIOp::create(b, high, arith::ConstantIntOp::create(b, 16, 32));
  return arith::TruncIOp::create(b, b.getI16Type(),
                                 arith::ShRUIOp::create(b, word, shift));
}

Value MmaKernel::unpack(ImplicitLocOpBuilder &b, Value word, int high) {
  Value bits = halfBits(b, word, arith::ConstantIntOp::create(b, high, 32));
  Value element = arith::BitcastOp::create(b, mmaType, bits);
  return arith::ExtFOp::create(b, b.getF32Type(), element);
}

void MmaKernel::locate(ImplicitLocOpBuilder &b, Value by) {
  // Expert e has ceil(counts[e] / rowsPerTile) tiles, numbered in expert order;
  // block row `by` takes tile `by` (a scan of E counts per block).
  Value zero = cst(b, 0);
  auto loop = scf::ForOp::create(
      b, b.getLoc(), zero, cst(b, experts), cst(b, 1),
      ValueRange{zero, zero, zero, zero, zero},
      [&](OpBuilder &nested, Location loc, Value e, ValueRange acc) {
        ImplicitLocOpBuilder lb(loc, nested);
        Value tileBase = acc[0], packedStart = acc[1];
        Value count = loadIndex(lb, counts, {e});
        Value tiles =
            arith::CeilDivUIOp::create(lb, count, cst(lb, rowsPerTile));
        Value start = offsets ? loadIndex(lb, offsets, {e}) : packedStart;
        Value nextBase = add(lb, tileBase, tiles);
        Value hit = arith::AndIOp::create(
            lb,
            arith::CmpIOp::create(lb, arith::CmpIPredicate::ule, tileBase, by),
            arith::CmpIOp::create(lb, arith::CmpIPredicate::ult, by, nextBase));
        Value first =
            mul(lb, arith::SubIOp::create(lb, by, tileBase), rowsPerTile);
        Value rows = arith::MinUIOp::create(
            lb, arith::SubIOp::create(lb, count, first), cst(lb, rowsPerTile));
        scf::YieldOp::create(
            lb, ValueRange{nextBase, add(lb, packedStart, count),
                           arith::SelectOp::create(lb, hit, e, acc[2]),
                           arith::SelectOp::create(
                               lb, hit, add(lb, start, first), acc[3]),
                           arith::SelectOp::create(lb, hit, rows, acc[4])});
      });
  expert = loop.getResult(2);
  tileStart = loop.getResult(3);
  tileRows = loop.getResult(4);
}

MmaKernel::LaneIds MmaKernel::laneIds(ImplicitLocOpBuilder &b, Value tid) {
  LaneIds ids;
  ids.warp = div(b, tid, 32);
  ids.lane = rem(b, tid, 32);
  ids.g = div(b, ids.lane, 4);
  ids.q = rem(b, ids.lane, 4);
  return ids;
}

SmallVector<MmaKernel::Copy>
MmaKernel::copies(ImplicitLocOpBuilder &b, Value tid, Value k0, Value col0) {
  SmallVector<Copy> result;
  if (asyncA) {
    // Operand rows gathered through the index; zeros past the tile's rows.
    SmallVector<std::pair<Value, Value>> sources =
        rowSources.empty() ? operandSources(b, tid) : rowSources;
    for (int64_t p = 0; p < copiesA; ++p) {
      auto [row, chunk] = operandCopy(b, tid, p);
      auto [valid, source] = sources[p];
      result.push_back({operandWord(b, row, mul(b, chunk, kChunk / 2)),
                        input,
                        {source, add(b, k0, mul(b, chunk, kChunk))},
                        valid});
    }
  }
  // tileCols / kChunk neighbouring threads copy one k row of a weight tile.
  const int64_t bPerRow = tileCols / kChunk;
  for (int64_t w = 0; w < numWeights; ++w)
    for (int64_t p = 0; p < copiesB; ++p) {
      Value c = add(b, tid, cst(b, p * threadCount));
      Value k = div(b, c, bPerRow);
      Value chunk = rem(b, c, bPerRow);
      result.push_back(
          {weightWord(b, tileB[w], k, mul(b, chunk, kChunk / 2)),
           weights[w],
           {expert, add(b, k0, k), add(b, col0, mul(b, chunk, kChunk))},
           Value()});
    }
  return result;
}

MmaKernel::TileWord MmaKernel::coreWord(ImplicitLocOpBuilder &b, Value tile,
                                        Value row, Value word,
                                        int64_t coresPerRows) {
  // Core matrix (row / 8, word / 4), its row row % 8.
  Value core = add(b, mul(b, div(b, row, 8), coresPerRows), div(b, word, 4));
  return {tile, core, add(b, mul(b, rem(b, row, 8), 4), rem(b, word, 4))};
}

MmaKernel::TileWord MmaKernel::operandWord(ImplicitLocOpBuilder &b, Value row,
                                           Value word) {
  if (!warpgroup)
    return {tileA, row, word};
  return coreWord(b, tileA, row, word, stepDepth / 8);
}

MmaKernel::TileWord MmaKernel::weightWord(ImplicitLocOpBuilder &b, Value tile,
                                          Value k, Value word) {
  if (!warpgroup)
    return {tile, k, word};
  return coreWord(b, tile, k, word, tileCols / 8);
}

Value MmaKernel::tileByte(ImplicitLocOpBuilder &b, const TileWord &word,
                          Value stage, bool fromTile) {
  auto type = cast<MemRefType>(word.tile.getType());
  Value element =
      add(b,
          mul(b, add(b, mul(b, stage, type.getDimSize(1)), word.row),
              type.getDimSize(2)),
          word.word);
  Value bytes = mul(b, element, 4);
  if (fromTile)
    return arith::IndexCastOp::create(b, b.getI64Type(), bytes);
  return bufferByte(b, word.tile, bytes);
}

Value MmaKernel::sharedAddress(ImplicitLocOpBuilder &b, const TileWord &word,
                               Value stage) {
  return pointer(b, tileByte(b, word, stage, /*fromTile=*/false), 3);
}

Value MmaKernel::bufferByte(ImplicitLocOpBuilder &b, Value buffer,
                            Value bytes) {
  Value base = memref::ExtractAlignedPointerAsIndexOp::create(b, buffer);
  return arith::IndexCastOp::create(b, b.getI64Type(), add(b, base, bytes));
}

Value MmaKernel::pointer(ImplicitLocOpBuilder &b, Value address,
                         unsigned space) {
  return LLVM::IntToPtrOp::create(
      b, LLVM::LLVMPointerType::get(b.getContext(), space), address);
}

std::pair<Value, Value> MmaKernel::operandSource(ImplicitLocOpBuilder &b,
                                                 Value row) {
  Value valid =
      arith::CmpIOp::create(b, arith::CmpIPredicate::ult, row, tileRows);
  Value at =
      arith::SelectOp::create(b, valid, add(b, tileStart, row), tileStart);
  return {valid, gather ? loadIndex(b, gather, {at}) : at};
}

std::pair<Value, Value> MmaKernel::operandCopy(ImplicitLocOpBuilder &b,
                                               Value tid, int64_t p) {
  // stepDepth / kChunk neighbouring threads copy one operand row.
  const int64_t perRow = stepDepth / kChunk;
  Value c = add(b, tid, cst(b, p * threadCount));
  return {div(b, c, perRow), rem(b, c, perRow)};
}

SmallVector<std::pair<Value, Value>>
MmaKernel::operandSources(ImplicitLocOpBuilder &b, Value tid) {
  SmallVector<std::pair<Value, Value>> sources;
  if (asyncA) {
    for (int64_t p = 0; p < copiesA; ++p)
      sources.push_back(operandSource(b, operandCopy(b, tid, p).first));
    return sources;
  }
  SmallVector<TileWord> slots = stageWords(b, tid);
  for (int64_t i = 0; i < prefetchA; i += 2)
    sources.push_back(operandSource(b, slots[i].row));
  return sources;
}

Value MmaKernel::descriptor(ImplicitLocOpBuilder &b, Value start,
                            int64_t alongK, int64_t alongMN) {
  // Bits 0-13: the start address, 16-29: the leading (k) byte offset,
  // 32-45: the stride (row or column) byte offset, each as (x & 0x3FFFF)
  // >> 4; base offset 0 and layout type 0 (no swizzling) above.
  auto i64 = [&](int64_t v) -> Value {
    return arith::ConstantIntOp::create(b, v, 64);
  };
  auto field = [&](int64_t bytes, int64_t shift) {
    return ((bytes & 0x3FFFF) >> 4) << shift;
  };
  Value startField = arith::ShRUIOp::create(
      b, arith::AndIOp::create(b, start, i64(0x3FFFF)), i64(4));
  return arith::OrIOp::create(b, startField,
                              i64(field(alongK, 16) | field(alongMN, 32)));
}

SmallVector<Value> MmaKernel::baseDescriptors(ImplicitLocOpBuilder &b,
                                              Value tid) {
  // The first k16 step of buffer 0: the operand tile's core matrices from
  // the first of the thread's warpgroup's rows (128 bytes apart along k,
  // stepDepth / 8 x 128 along the rows), each weight tile's from k row 0
  // (tileCols / 8 x 128 bytes apart along k, 128 along the columns).
  Value zero = cst(b, 0);
  SmallVector<Value> result;
  Value firstCore = mul(b, div(b, tid, 128), warpgroupBytes / 128);
  result.push_back(
      descriptor(b, tileByte(b, {tileA, firstCore, zero}, zero, hostLoops), 128,
                 stepDepth / 8 * 128));
  for (int64_t w = 0; w < numWeights; ++w)
    result.push_back(
        descriptor(b, tileByte(b, {tileB[w], zero, zero}, zero, hostLoops),
                   tileCols / 8 * 128, 128));
  return result;
}

SmallVector<Value> MmaKernel::descriptors(ImplicitLocOpBuilder &b, Value tid,
                                          int64_t step, Value stage) {
  // Step `step` of buffer `stage` reads k [16 step, 16 step + 16): the
  // operand tile's core matrices from column 2 step, each weight tile's
  // from k row 16 step. Shared addresses stay below 2^18 bytes, so the
  // start field (address >> 4) of the base descriptors takes the offset
  // without carrying into the fields above it: an add.
  SmallVector<Value> result =
      descBases.empty() ? baseDescriptors(b, tid) : descBases;
  auto offset = [&](Value desc, int64_t stageBytes, int64_t stepBytes) {
    Value units =
        add(b, mul(b, stage, stageBytes / 16), cst(b, step * stepBytes / 16));
    return arith::AddIOp::create(
        b, desc, arith::IndexCastOp::create(b, b.getI64Type(), units));
  };
  result[0] = offset(result[0], coresA * 128, 2 * 128);
  for (int64_t w = 0; w < numWeights; ++w)
    result[1 + w] =
        offset(result[1 + w], coresB * 128, 2 * (tileCols / 8) * 128);
  return result;
}

SmallVector<Value> MmaKernel::contractWarpgroup(ImplicitLocOpBuilder &b,
                                                Value tid, ValueRange acc,
                                                Value stage) {
  MLIRContext *ctx = b.getContext();
  int64_t perWeight = nTiles * 4;
  auto structType = LLVM::LLVMStructType::getLiteral(
      ctx, SmallVector<Type>(perWeight, b.getF32Type()));
  // The accumulators as the MMA's registers (element 4 j + i: column tile
  // j, fragment element i, as for the warp MMA).
  NVVM::WgmmaFenceAlignedOp::create(b);
  SmallVector<Value> regs;
  for (int64_t w = 0; w < numWeights; ++w) {
    Value packed = LLVM::UndefOp::create(b, structType);
    for (int64_t i = 0; i < perWeight; ++i)
      packed = LLVM::InsertValueOp::create(b, packed, acc[w * perWeight + i],
                                           ArrayRef<int64_t>{i});
    regs.push_back(packed);
  }
  NVVM::WGMMATypes type =
      mmaType.isBF16() ? NVVM::WGMMATypes::bf16 : NVVM::WGMMATypes::f16;
  for (int64_t step = 0; step < stepDepth / 16; ++step) {
    SmallVector<Value> desc = descriptors(b, tid, step, stage);
    // A K-major (layout row), B N-major (layout row: transposed).
    for (int64_t w = 0; w < numWeights; ++w)
      regs[w] = NVVM::WgmmaMmaAsyncOp::create(
          b, structType, regs[w], desc[0], desc[1 + w],
          NVVM::MMAShapeAttr::get(ctx, 64, tileCols, 16), type, type,
          NVVM::WGMMATypes::f32, NVVM::WGMMAScaleOut::one,
          NVVM::WGMMAScaleIn::one, NVVM::WGMMAScaleIn::one,
          NVVM::MMALayout::row, NVVM::MMALayout::row,
          NVVM::MMAIntOverflowAttr());
  }
  // The previous step's MMAs complete (its buffer can be refilled) while
  // this step's run.
  NVVM::WgmmaGroupSyncAlignedOp::create(b);
  NVVM::WgmmaWaitGroupSyncOp::create(b, kMmaGroupsInFlight);
  SmallVector<Value> next;
  for (int64_t w = 0; w < numWeights; ++w)
    for (int64_t i = 0; i < perWeight; ++i)
      next.push_back(LLVM::ExtractValueOp::create(b, regs[w], i));
  return next;
}

Value MmaKernel::barrierAddress(ImplicitLocOpBuilder &b, Value stage,
                                bool empty) {
  Value index = empty ? add(b, stage, cst(b, kStages)) : stage;
  return pointer(b, bufferByte(b, barriers, mul(b, index, 8)), 3);
}

void MmaKernel::waitForStep(ImplicitLocOpBuilder &b, Value barrier,
                            Value step) {
  Value phase = arith::RemUIOp::create(b, div(b, step, kStages), cst(b, 2));
  // A suspend-time hint of 10 ms per try (the op loops until the phase
  // completes).
  NVVM::MBarrierTryWaitParityOp::create(
      b, barrier, arith::IndexCastOp::create(b, b.getI32Type(), phase),
      arith::ConstantIntOp::create(b, 10000000, 32));
}

SmallVector<Value> MmaKernel::emulateWarpgroupMma(ImplicitLocOpBuilder &b,
                                                  Value tid, ValueRange acc,
                                                  Value stage) {
  // Thread 32 w + 4 g + q holds D[16 (w % 4) + g + 8 h][8 j + 2 q + c] of
  // its warpgroup's MMA as register 4 j + 2 h + c. A[r][k] lies at byte start +
  // (r / 8) SBO + (r % 8) 16 + (k / 8) LBO + (k % 8) 2 of the operand tile
  // (K-major); B[k][n] at start + (n / 8) SBO + (n % 8) 2 + (k / 8) LBO + (k %
  // 8) 16 of the weight tile (N-major); the fields decoded from the
  // descriptors.
  SmallVector<Value> next(acc.begin(), acc.end());
  LaneIds ids = laneIds(b, tid);
  Type i64 = b.getI64Type();
  auto c64 = [](ImplicitLocOpBuilder &lb, int64_t v) -> Value {
    return arith::ConstantIntOp::create(lb, v, 64);
  };
  auto fieldOf = [&](ImplicitLocOpBuilder &lb, Value desc,
                     int64_t shift) -> Value {
    Value bits = arith::AndIOp::create(
        lb, arith::ShRUIOp::create(lb, desc, c64(lb, shift)), c64(lb, 0x3FFF));
    return arith::ShLIOp::create(lb, bits, c64(lb, 4));
  };
  auto asI64 = [&](ImplicitLocOpBuilder &lb, Value index) -> Value {
    return arith::IndexCastOp::create(lb, i64, index);
  };
  // The element at byte `byte` of a tile, as f32.
  auto element = [&](ImplicitLocOpBuilder &lb, Value tile,
                     Value byte) -> Value {
    auto type = cast<MemRefType>(tile.getType());
    int64_t rows = type.getDimSize(1), rowWords = type.getDimSize(2);
    Value at = arith::IndexCastOp::create(
        lb, lb.getIndexType(), arith::DivUIOp::create(lb, byte, c64(lb, 4)));
    Value row = div(lb, at, rowWords);
    Value word = memref::LoadOp::create(lb, tile,
                                        ValueRange{div(lb, row, rows),
                                                   rem(lb, row, rows),
                                                   rem(lb, at, rowWords)});
    Value half = arith::TruncIOp::create(
        lb, lb.getI32Type(),
        arith::RemUIOp::create(lb, arith::DivUIOp::create(lb, byte, c64(lb, 2)),
                               c64(lb, 2)));
    Value bits = halfBits(lb, word, half);
    Value value = arith::BitcastOp::create(lb, mmaType, bits);
    return arith::ExtFOp::create(lb, lb.getF32Type(), value);
  };
  // A descriptor's fields: start, stride along k (LBO), along the rows or
  // columns (SBO).
  struct Fields {
    Value start, alongK, alongMN;
  };
  for (int64_t step = 0; step < stepDepth / 16; ++step) {
    SmallVector<Fields> fields;
    for (Value desc : descriptors(b, tid, step, stage))
      fields.push_back(
          {fieldOf(b, desc, 0), fieldOf(b, desc, 16), fieldOf(b, desc, 32)});
    for (int64_t w = 0; w < numWeights; ++w)
      for (int64_t j = 0; j < nTiles; ++j)
        for (int64_t i = 0; i < 4; ++i) {
          Value row =
              asI64(b, add(b, add(b, mul(b, rem(b, ids.warp, 4), 16), ids.g),
                           cst(b, 8 * (i / 2))));
          Value col = asI64(b, add(b, mul(b, ids.q, 2), cst(b, 8 * j + i % 2)));
          auto loop = scf::ForOp::create(
              b, b.getLoc(), cst(b, 0), cst(b, 16), cst(b, 1),
              ValueRange{next[accAt(w, j, i)]},
              [&](OpBuilder &nested, Location loc, Value kIndex,
                  ValueRange sum) {
                ImplicitLocOpBuilder lb(loc, nested);
                Value k = asI64(lb, kIndex);
                // start + (x / 8) * stride8 + (x % 8) * bytes + ...
                auto address = [&](const Fields &f, Value x, int64_t xBytes,
                                   Value y, int64_t yBytes) -> Value {
                  Value sum = f.start;
                  auto part = [&](Value v, Value stride8, int64_t bytes) {
                    Value high = arith::MulIOp::create(
                        lb, arith::DivUIOp::create(lb, v, c64(lb, 8)), stride8);
                    Value low = arith::MulIOp::create(
                        lb, arith::RemUIOp::create(lb, v, c64(lb, 8)),
                        c64(lb, bytes));
                    sum = arith::AddIOp::create(
                        lb, sum, arith::AddIOp::create(lb, high, low));
                  };
                  // x along the rows or columns (SBO), y along k (LBO).
                  part(x, f.alongMN, xBytes);
                  part(y, f.alongK, yBytes);
                  return sum;
                };
                Value a = element(lb, tileA, address(fields[0], row, 16, k, 2));
                Value bv = element(lb, tileB[w],
                                   address(fields[1 + w], col, 2, k, 16));
                scf::YieldOp::create(
                    lb, ValueRange{math::FmaOp::create(lb, a, bv, sum[0])});
              });
          next[accAt(w, j, i)] = loop.getResult(0);
        }
  }
  return next;
}

Value MmaKernel::globalAddress(ImplicitLocOpBuilder &b, Value buffer,
                               ValueRange at) {
  auto metadata = memref::ExtractStridedMetadataOp::create(b, buffer);
  Value element = metadata.getOffset();
  for (auto [index, stride] : llvm::zip_equal(at, metadata.getStrides()))
    element = add(b, element, arith::MulIOp::create(b, index, stride));
  return pointer(b, bufferByte(b, buffer, mul(b, element, 2)), 1);
}

void MmaKernel::issueCopies(ImplicitLocOpBuilder &b, Value tid, Value k0,
                            Value col0, Value stage) {
  for (const Copy &copy : copies(b, tid, k0, col0)) {
    if (!hostLoops) {
      // 16 bytes through L2 only; `valid` false reads none and fills zeros.
      Value bytes;
      if (copy.valid)
        bytes = arith::SelectOp::create(b, copy.valid,
                                        arith::ConstantIntOp::create(b, 16, 32),
                                        arith::ConstantIntOp::create(b, 0, 32));
      NVVM::CpAsyncOp::create(b, sharedAddress(b, copy.to, stage),
                              globalAddress(b, copy.source, copy.at),
                              /*size=*/16, NVVM::LoadCacheModifierKind::CG,
                              bytes);
      continue;
    }
    Value zeroWord = arith::ConstantIntOp::create(b, 0, 32);
    for (int64_t i = 0; i < kChunk / 2; ++i) {
      SmallVector<Value> at(copy.at);
      Value &k = at.back();
      k = add(b, k, cst(b, 2 * i));
      Value lo = memref::LoadOp::create(b, copy.source, at);
      k = add(b, k, cst(b, 1));
      Value hi = memref::LoadOp::create(b, copy.source, at);
      Value word = pack(b, lo, hi);
      if (copy.valid)
        word = arith::SelectOp::create(b, copy.valid, word, zeroWord);
      memref::StoreOp::create(
          b, word, copy.to.tile,
          ValueRange{stage, copy.to.row, add(b, copy.to.word, cst(b, i))});
    }
  }
}

SmallVector<MmaKernel::TileWord> MmaKernel::stageWords(ImplicitLocOpBuilder &b,
                                                       Value tid) {
  SmallVector<TileWord> slots;
  // In each pass, stepWords / 2 neighbouring threads cover the stepWords
  // words (stepDepth elements) of one row, two words each: tile row
  // rowsPerPass pass + tid / perRow, words 2 (tid % perRow) and the next.
  const int64_t perRow = stepWords / 2, rowsPerPass = threadCount / perRow;
  Value rowInPass = div(b, tid, perRow);
  Value firstWord = mul(b, rem(b, tid, perRow), 2);
  for (int64_t pass = 0; pass < rowsPerTile / rowsPerPass; ++pass)
    for (int64_t w = 0; w < 2; ++w)
      slots.push_back({tileA, add(b, rowInPass, cst(b, rowsPerPass * pass)),
                       add(b, firstWord, cst(b, w))});
  return slots;
}

SmallVector<Value> MmaKernel::loadStage(ImplicitLocOpBuilder &b, Value tid,
                                        Value k0) {
  SmallVector<TileWord> slots = stageWords(b, tid);
  SmallVector<std::pair<Value, Value>> sources =
      rowSources.empty() ? operandSources(b, tid) : rowSources;
  SmallVector<Value> words;
  // Pairs of words of one gathered row (zeros past the tile's rows).
  Value zeroWord = arith::ConstantIntOp::create(b, 0, 32);
  for (int64_t i = 0; i < prefetchA; i += 2) {
    auto [valid, source] = sources[i / 2];
    for (int64_t w = i; w < i + 2; ++w) {
      Value k = add(b, k0, mul(b, slots[w].word, 2));
      Value lo = memref::LoadOp::create(b, input, ValueRange{source, k});
      Value hi = memref::LoadOp::create(
          b, input, ValueRange{source, add(b, k, cst(b, 1))});
      words.push_back(arith::SelectOp::create(
          b, valid, pack(b, toMmaType(b, lo), toMmaType(b, hi)), zeroWord));
    }
  }
  return words;
}

void MmaKernel::storeStage(ImplicitLocOpBuilder &b, Value tid, ValueRange words,
                           Value stage) {
  for (auto [slot, word] : llvm::zip_equal(stageWords(b, tid), words)) {
    TileWord to = operandWord(b, slot.row, slot.word);
    memref::StoreOp::create(b, word, to.tile,
                            ValueRange{stage, to.row, to.word});
  }
}

SmallVector<MmaKernel::TileWord>
MmaKernel::matrixLoads(ImplicitLocOpBuilder &b, Value tid, int64_t step) {
  // ldmatrix.x4 reads four 8 x 8 b16 matrices (8 rows of 4 words); lane l
  // gives the start of row l % 8 of matrix l / 8. Without .trans, lane
  // 4 g + q receives word (g, q) of each; with .trans, the elements
  // (2 q, g) and (2 q + 1, g) as one word.
  // A's fragment registers (row g | g + 8, word q | q + 4 of the k16 step)
  // are matrices (rows 0-7 | 8-15) x (words 0-3 | 4-7) of the warp's 16
  // rows. B's (k-pair q | q + 4 of column g) for column tiles j and j + 1
  // are the transposed matrices (k rows 0-7 | 8-15 of the step) x (the
  // tile's 8 columns, 4 words).
  LaneIds ids = laneIds(b, tid);
  Value matrix = div(b, ids.lane, 8);
  Value rowInMatrix = rem(b, ids.lane, 8);
  Value low = rem(b, matrix, 2);
  Value high = div(b, matrix, 2);
  SmallVector<TileWord> loads;
  loads.push_back(
      {tileA, add(b, add(b, mul(b, ids.warp, 16), rowInMatrix), mul(b, low, 8)),
       add(b, cst(b, step * 8), mul(b, high, 4))});
  Value kRow = add(b, add(b, cst(b, step * 16), mul(b, low, 8)), rowInMatrix);
  for (int64_t w = 0; w < numWeights; ++w)
    for (int64_t j = 0; j < nTiles; j += 2)
      loads.push_back({tileB[w], kRow, mul(b, add(b, high, cst(b, j)), 4)});
  return loads;
}

SmallVector<Value> MmaKernel::fragments(ImplicitLocOpBuilder &b, Value tid,
                                        int64_t step, Value stage) {
  MLIRContext *ctx = b.getContext();
  Type i32 = b.getI32Type();
  auto quad = LLVM::LLVMStructType::getLiteral(ctx, {i32, i32, i32, i32});
  SmallVector<Value> words;
  for (auto [c, load] : llvm::enumerate(matrixLoads(b, tid, step))) {
    // The weight tiles' matrices are transposed (layout col = .trans).
    Value regs = NVVM::LdMatrixOp::create(
        b, quad, sharedAddress(b, load, stage), /*num=*/4,
        c == 0 ? NVVM::MMALayout::row : NVVM::MMALayout::col,
        NVVM::LdStMatrixShapeAttr::get(ctx, 8, 8),
        NVVM::LdStMatrixEltType::B16);
    for (int64_t i = 0; i < 4; ++i)
      words.push_back(LLVM::ExtractValueOp::create(b, regs, i));
  }
  return words;
}

SmallVector<Value> MmaKernel::contract(ImplicitLocOpBuilder &b, Value tid,
                                       ValueRange acc, Value stage) {
  SmallVector<Value> next(acc.begin(), acc.end());
  MLIRContext *ctx = b.getContext();
  Type f32 = b.getF32Type();
  auto resultType = LLVM::LLVMStructType::getLiteral(ctx, {f32, f32, f32, f32});
  NVVM::MMATypes ptxType =
      mmaType.isBF16() ? NVVM::MMATypes::bf16 : NVVM::MMATypes::f16;
  // f16 operands are f16x2 registers; bf16 ones are 32-bit integers.
  auto operand = [&](Value word) -> Value {
    if (ptxType == NVVM::MMATypes::bf16)
      return word;
    return LLVM::BitcastOp::create(b, VectorType::get({2}, mmaType), word);
  };
  for (int64_t step = 0; step < stepDepth / 16; ++step) {
    SmallVector<Value> words = fragments(b, tid, step, stage);
    SmallVector<Value> a;
    for (int64_t r = 0; r < 4; ++r)
      a.push_back(operand(words[r]));
    for (int64_t w = 0; w < numWeights; ++w)
      for (int64_t j = 0; j < nTiles; ++j) {
        int64_t at = 4 + (w * nTiles + j) * 2;
        SmallVector<Value> bw{operand(words[at]), operand(words[at + 1])};
        SmallVector<Value> c;
        for (int64_t i = 0; i < 4; ++i)
          c.push_back(next[accAt(w, j, i)]);
        Value d = NVVM::MmaOp::create(
            b, resultType, a, bw, c, ArrayRef<int64_t>{16, 8, 16}, std::nullopt,
            std::nullopt, std::array<NVVM::MMATypes, 2>{ptxType, ptxType},
            std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                           NVVM::MMALayout::col});
        for (int64_t i = 0; i < 4; ++i)
          next[accAt(w, j, i)] = LLVM::ExtractValueOp::create(b, d, i);
      }
  }
  return next;
}

void MmaKernel::emulateMatrixLoads(ImplicitLocOpBuilder &b, Value t,
                                   Value stage) {
  // Lane 4 g + q reads row g (or, transposing, rows 2 q and 2 q + 1) of
  // matrix m, whose rows lanes 8 m + r of its warp gave.
  LaneIds ids = laneIds(b, t);
  Value warpBase = mul(b, ids.warp, 32);
  Value gHalf = arith::IndexCastOp::create(b, b.getI32Type(), rem(b, ids.g, 2));
  Value gWord = div(b, ids.g, 2);
  for (int64_t step = 0; step < stepDepth / 16; ++step)
    for (auto [c, load] : llvm::enumerate(matrixLoads(b, t, step))) {
      int64_t slot = (step * matrixLoadCount() + c) * 2;
      Value tile = load.tile;
      // Word `offset` past the start of the row lane 8 m + r gave.
      auto rowWord = [&](int64_t m, Value r, Value offset) -> Value {
        Value from = add(b, add(b, warpBase, cst(b, 8 * m)), r);
        Value row =
            memref::LoadOp::create(b, hostRows, ValueRange{from, cst(b, slot)});
        Value word = add(b,
                         memref::LoadOp::create(
                             b, hostRows, ValueRange{from, cst(b, slot + 1)}),
                         offset);
        return memref::LoadOp::create(b, tile, ValueRange{stage, row, word});
      };
      for (int64_t m = 0; m < 4; ++m) {
        Value value;
        if (c == 0) {
          value = rowWord(m, ids.g, ids.q);
        } else {
          Value twoQ = mul(b, ids.q, 2);
          value = packBits(
              b, halfBits(b, rowWord(m, twoQ, gWord), gHalf),
              halfBits(b, rowWord(m, add(b, twoQ, cst(b, 1)), gWord), gHalf));
        }
        memref::StoreOp::create(
            b, value, hostFrag,
            ValueRange{t, cst(b, step * fragWords() + 4 * c + m)});
      }
    }
}

SmallVector<Value> MmaKernel::emulateMma(ImplicitLocOpBuilder &b, Value tid,
                                         ValueRange acc) {
  // D = A B + C for every MMA of thread tid's warp, from the fragment
  // registers its 32 lanes hold (hostFrag): A[r][k] is half k % 2 of
  // register (r / 8) + 2 (k / 8) of lane 4 (r % 8) + (k % 8) / 2; B[k][n]
  // half k % 2 of register k / 8 of lane 4 n + (k % 8) / 2. Lane 4 g + q
  // holds D[g | g + 8][2 q | 2 q + 1].
  SmallVector<Value> next(acc.begin(), acc.end());
  LaneIds ids = laneIds(b, tid);
  Value warpBase = mul(b, ids.warp, 32), g = ids.g, q = ids.q;
  for (int64_t step = 0; step < stepDepth / 16; ++step) {
    int64_t base = step * fragWords();
    for (int64_t w = 0; w < numWeights; ++w)
      for (int64_t j = 0; j < nTiles; ++j)
        for (int64_t i = 0; i < 4; ++i) {
          int64_t rowHigh = i / 2; // row g + 8 rowHigh
          Value col = add(b, mul(b, q, 2), cst(b, i % 2));
          auto loop = scf::ForOp::create(
              b, b.getLoc(), cst(b, 0), cst(b, 16), cst(b, 1),
              ValueRange{next[accAt(w, j, i)]},
              [&](OpBuilder &nested, Location loc, Value k, ValueRange sum) {
                ImplicitLocOpBuilder lb(loc, nested);
                Value kHigh = div(lb, k, 8);
                Value kPair =
                    arith::DivUIOp::create(lb, rem(lb, k, 8), cst(lb, 2));
                Value half = arith::IndexCastOp::create(lb, lb.getI32Type(),
                                                        rem(lb, k, 2));
                Value laneA = add(lb, add(lb, warpBase, mul(lb, g, 4)), kPair);
                Value regA =
                    add(lb, mul(lb, kHigh, 2), cst(lb, base + rowHigh));
                Value laneB =
                    add(lb, add(lb, warpBase, mul(lb, col, 4)), kPair);
                Value regB =
                    add(lb, kHigh, cst(lb, base + 4 + (w * nTiles + j) * 2));
                auto element = [&](Value lane, Value reg) {
                  Value word = memref::LoadOp::create(lb, hostFrag,
                                                      ValueRange{lane, reg});
                  Value shift = arith::MulIOp::create(
                      lb, half, arith::ConstantIntOp::create(lb, 16, 32));
                  return unpack(lb, arith::ShRUIOp::create(lb, word, shift), 0);
                };
                Value s = math::FmaOp::create(lb, element(laneA, regA),
                                              element(laneB, regB), sum[0]);
                scf::YieldOp::create(lb, s);
              });
          next[accAt(w, j, i)] = loop.getResult(0);
        }
  }
  return next;
}

void MmaKernel::epilogue(ImplicitLocOpBuilder &b, Value tid, Value col0,
                         ValueRange acc) {
  LaneIds ids = laneIds(b, tid);
  Value warp = ids.warp, g = ids.g, q = ids.q;
  for (int64_t half = 0; half < 2; ++half) {
    Value local = add(b, add(b, mul(b, warp, 16), g), cst(b, 8 * half));
    Value valid =
        arith::CmpIOp::create(b, arith::CmpIPredicate::ult, local, tileRows);
    scf::IfOp::create(b, valid, [&](OpBuilder &nested, Location loc) {
      ImplicitLocOpBuilder eb(loc, nested);
      Value row = add(eb, tileStart, local);
      Value target = row, scale;
      if (scatter) {
        target = loadIndex(eb, scatter, {row});
        scale = memref::LoadOp::create(eb, scales, ValueRange{row});
      }
      for (int64_t j = 0; j < nTiles; ++j)
        for (int64_t i = 0; i < 2; ++i) {
          int64_t at = j * 4 + 2 * half + i;
          Value value = acc[at];
          if (std::optional<Activation> act = op.getActivation())
            value = lowering::activate(eb, *act, value,
                                       numWeights == 2 ? acc[nTiles * 4 + at]
                                                       : Value());
          Value col = add(eb, add(eb, col0, cst(eb, 8 * j + i)), mul(eb, q, 2));
          if (scatter)
            value = arith::MulFOp::create(eb, scale, value);
          if (scatter && !op.getUniqueTargets()) {
            // Rows of one token sit in other experts' blocks: the adds of
            // concurrent blocks are atomic.
            memref::AtomicRMWOp::create(eb, arith::AtomicRMWKind::addf, value,
                                        out, ValueRange{target, col});
          } else {
            // A scatter to unique targets stores like the plain epilogue.
            Type outType = cast<MemRefType>(out.getType()).getElementType();
            if (outType != value.getType())
              value = arith::TruncFOp::create(eb, outType, value);
            memref::StoreOp::create(eb, value, out, ValueRange{target, col});
          }
        }
      scf::YieldOp::create(eb);
    });
  }
}

void MmaKernel::block(ImplicitLocOpBuilder &b, Value bx, Value by, Value tid) {
  locate(b, by);
  Value any =
      arith::CmpIOp::create(b, arith::CmpIPredicate::ugt, tileRows, cst(b, 0));
  Value col0 = mul(b, bx, tileCols);
  auto forThreads = [&](ImplicitLocOpBuilder &ib,
                        function_ref<void(ImplicitLocOpBuilder &, Value)> fn) {
    lowering::forEach(ib, cst(ib, 0), cst(ib, threadCount), fn);
  };
  // The host keeps every thread's accumulators in hostAcc[t, i].
  auto loadAcc = [&](ImplicitLocOpBuilder &tb, Value t) {
    return loadRow(tb, hostAcc, t, accCount());
  };
  scf::IfOp::create(b, any, [&](OpBuilder &nested, Location loc) {
    ImplicitLocOpBuilder ib(loc, nested);
    Value zero = arith::ConstantOp::create(ib, ib.getF32FloatAttr(0));
    if (hostLoops)
      linalg::FillOp::create(ib, ValueRange{zero}, ValueRange{hostAcc});
    // Software pipeline over kStages shared buffers: step i's MMAs read
    // buffer i % kStages while the copies of step i + kStages - 1 fill
    // buffer (i - 1) % kStages, which step i - 1 read. Operand rows that
    // need a conversion go through registers: loaded before the MMAs,
    // stored after them into the same buffer. Steps past the last copy the
    // last step again (into a buffer no later step reads) instead of
    // branching.
    // Warp MMAs: each step's copies form one cp.async group; waiting for
    // all but the newest kStages - 2 groups, then a barrier, makes step i's
    // tiles complete and visible, and every thread done with step i - 1.
    // Warpgroup MMAs: no barrier in the loop. A buffer's `full` mbarrier
    // counts each thread's copies (cp.async.mbarrier.arrive.noinc: when they
    // land) and register stores (an arrive), its `empty` mbarrier each
    // thread's arrive after its MMAs of the step completed; step i waits for
    // full (i % kStages), issues its MMAs, waits for those of step i - 1 (one
    // group stays in flight), arrives on empty of step i - 1 and waits for
    // it before refilling buffer (i - 1) % kStages.
    if (!hostLoops) {
      rowSources = operandSources(ib, tid);
      if (warpgroup)
        descBases = baseDescriptors(ib, tid);
    }
    bool mbarriers = warpgroup && !hostLoops;
    if (mbarriers) {
      Value first =
          arith::CmpIOp::create(ib, arith::CmpIPredicate::eq, tid, cst(ib, 0));
      int64_t arrivals = asyncA ? threadCount : 2 * threadCount;
      for (int64_t s = 0; s < kStages; ++s)
        for (bool empty : {false, true})
          NVVM::MBarrierInitOp::create(
              ib, barrierAddress(ib, cst(ib, s), empty),
              arith::ConstantIntOp::create(ib, empty ? threadCount : arrivals,
                                           32),
              first);
      NVVM::FenceMbarrierInitOp::create(ib);
      gpu::BarrierOp::create(ib);
    }
    // After a thread's copies (and stores) into buffer `stage`.
    auto arriveFull = [&](ImplicitLocOpBuilder &tb, Value stage, bool stored) {
      Value full = barrierAddress(tb, stage, /*empty=*/false);
      if (!stored)
        NVVM::CpAsyncMBarrierArriveOp::create(tb, full, /*noinc=*/true);
      else
        NVVM::MBarrierArriveOp::create(tb, Type(), full, Value());
    };
    Value lastStep = cst(ib, depth - stepDepth);
    auto fill = [&](ImplicitLocOpBuilder &tb, Value t, Value k, Value stage) {
      issueCopies(tb, t, k, col0, stage);
      if (!asyncA)
        storeStage(tb, t, loadStage(tb, t, k), stage);
    };
    for (int64_t s = 0; s + 1 < kStages; ++s) {
      Value k = cst(ib, std::min(s * stepDepth, depth - stepDepth));
      if (hostLoops) {
        forThreads(ib, [&](ImplicitLocOpBuilder &tb, Value t) {
          fill(tb, t, k, cst(tb, s));
        });
      } else {
        fill(ib, tid, k, cst(ib, s));
        if (mbarriers) {
          arriveFull(ib, cst(ib, s), /*stored=*/false);
          if (!asyncA)
            arriveFull(ib, cst(ib, s), /*stored=*/true);
        } else {
          NVVM::CpAsyncCommitGroupOp::create(ib);
        }
      }
    }
    SmallVector<Value> inits(hostLoops ? 0 : accCount(), zero);
    auto loop = scf::ForOp::create(
        ib, loc, cst(ib, 0), cst(ib, depth), cst(ib, stepDepth), inits,
        [&](OpBuilder &nested, Location loc, Value k0, ValueRange acc) {
          ImplicitLocOpBuilder kb(loc, nested);
          Value i = div(kb, k0, stepDepth);
          Value stage = rem(kb, i, kStages);
          Value ahead = arith::RemUIOp::create(
              kb, add(kb, i, cst(kb, kStages - 1)), cst(kb, kStages));
          Value next = arith::MinUIOp::create(
              kb, add(kb, k0, cst(kb, (kStages - 1) * stepDepth)), lastStep);
          if (hostLoops) {
            forThreads(kb, [&](ImplicitLocOpBuilder &tb, Value t) {
              issueCopies(tb, t, next, col0, ahead);
              if (!asyncA)
                storeRow(tb, hostPrefetch, t, loadStage(tb, t, next));
            });
            if (warpgroup) {
              // The warpgroup's MMAs: each thread's accumulators from the
              // tiles, through the descriptors.
              forThreads(kb, [&](ImplicitLocOpBuilder &tb, Value t) {
                storeRow(tb, hostAcc, t,
                         emulateWarpgroupMma(tb, t, loadAcc(tb, t), stage));
              });
            } else {
              // ldmatrix: every lane gives its rows (hostRows), then every
              // lane takes its words of the rows its warp gave.
              forThreads(kb, [&](ImplicitLocOpBuilder &tb, Value t) {
                SmallVector<Value> rows;
                for (int64_t step = 0; step < stepDepth / 16; ++step)
                  for (const TileWord &load : matrixLoads(tb, t, step))
                    rows.append({load.row, load.word});
                storeRow(tb, hostRows, t, rows);
              });
              forThreads(kb, [&](ImplicitLocOpBuilder &tb, Value t) {
                emulateMatrixLoads(tb, t, stage);
              });
              forThreads(kb, [&](ImplicitLocOpBuilder &tb, Value t) {
                storeRow(tb, hostAcc, t, emulateMma(tb, t, loadAcc(tb, t)));
              });
            }
            if (!asyncA)
              forThreads(kb, [&](ImplicitLocOpBuilder &tb, Value t) {
                storeStage(tb, t, loadRow(tb, hostPrefetch, t, prefetchA),
                           ahead);
              });
            scf::YieldOp::create(kb);
            return;
          }
          if (mbarriers) {
            SmallVector<Value> words;
            waitForStep(kb, barrierAddress(kb, stage, /*empty=*/false), i);
            // The warpgroup MMA reads shared memory through the async
            // proxy: the tiles (generic-proxy writes, now visible to this
            // thread) are fenced for it.
            NVVM::FenceProxyOp::create(
                kb, NVVM::ProxyKind::async_shared,
                NVVM::SharedSpaceAttr::get(kb.getContext(),
                                           NVVM::SharedSpace::shared_cta));
            if (!asyncA)
              words = loadStage(kb, tid, next);
            SmallVector<Value> sums = contractWarpgroup(kb, tid, acc, stage);
            // Buffer `ahead` last held step i - 1 (none before step 1), whose
            // MMAs this thread's warpgroup has completed (only step i's are
            // in flight): the thread says so on its `empty` mbarrier and
            // refills the buffer once every thread has.
            Value later = arith::CmpIOp::create(kb, arith::CmpIPredicate::ugt,
                                                i, cst(kb, 0));
            scf::IfOp::create(kb, later, [&](OpBuilder &nested, Location loc) {
              ImplicitLocOpBuilder wb(loc, nested);
              Value empty = barrierAddress(wb, ahead, /*empty=*/true);
              NVVM::MBarrierArriveOp::create(wb, Type(), empty, Value());
              waitForStep(wb, empty, arith::SubIOp::create(wb, i, cst(wb, 1)));
              scf::YieldOp::create(wb);
            });
            issueCopies(kb, tid, next, col0, ahead);
            arriveFull(kb, ahead, /*stored=*/false);
            if (!asyncA) {
              storeStage(kb, tid, words, ahead);
              arriveFull(kb, ahead, /*stored=*/true);
            }
            scf::YieldOp::create(kb, sums);
            return;
          }
          NVVM::CpAsyncWaitGroupOp::create(kb, kStages - 2);
          gpu::BarrierOp::create(kb);
          SmallVector<Value> words;
          if (!asyncA)
            words = loadStage(kb, tid, next);
          issueCopies(kb, tid, next, col0, ahead);
          NVVM::CpAsyncCommitGroupOp::create(kb);
          SmallVector<Value> sums = contract(kb, tid, acc, stage);
          if (!asyncA)
            storeStage(kb, tid, words, ahead);
          scf::YieldOp::create(kb, sums);
        });
    if (hostLoops) {
      forThreads(ib, [&](ImplicitLocOpBuilder &tb, Value t) {
        epilogue(tb, t, col0, loadAcc(tb, t));
      });
    } else {
      // No copy outlives the kernel; the last step's MMAs are complete
      // before the epilogue reads the accumulators.
      if (mbarriers) {
        NVVM::CpAsyncCommitGroupOp::create(ib);
        NVVM::WgmmaWaitGroupSyncOp::create(ib, 0);
      }
      NVVM::CpAsyncWaitGroupOp::create(ib, 0);
      epilogue(ib, tid, col0, loop.getResults());
    }
    scf::YieldOp::create(ib);
  });
}

void MmaKernel::build(OpBuilder &builder) {
  ImplicitLocOpBuilder b(op.getLoc(), builder);
  auto weightType = op.getWeight().getType();
  experts = weightType.getDimSize(0);
  depth = weightType.getDimSize(1);
  cols = weightType.getDimSize(2);
  mmaType = weightType.getElementType();
  input = op.getInput();
  asyncA = cast<ShapedType>(input.getType()).getElementType() == mmaType;
  gather = op.getGather();
  weights[0] = op.getWeight();
  if (op.getGateWeight()) {
    weights[1] = op.getGateWeight();
    numWeights = 2;
  }
  offsets = op.getOffsets();
  counts = op.getCounts();
  scatter = op.getScatter();
  scales = op.getScales();
  out = op.getOut();

  // Blocks: x over column tiles, y over row tiles; the tiles of all experts
  // number at most ceil(R / rowsPerTile) + E.
  int64_t gridX = cols / tileCols;
  int64_t gridY = (op.getNumRows() + rowsPerTile - 1) / rowsPerTile + experts;
  // kStages buffers of each tile (the software pipeline's).
  auto tileType = [&](int64_t rows, int64_t pitch, Attribute space) {
    return MemRefType::get({kStages, rows, pitch}, b.getI32Type(),
                           MemRefLayoutAttrInterface(), space);
  };
  // The warpgroup MMA's tiles: coresA / coresB core matrices of 32 words.
  auto aType = [&](Attribute space) {
    return warpgroup ? tileType(coresA, 32, space)
                     : tileType(rowsPerTile, pitchA, space);
  };
  auto bType = [&](Attribute space) {
    return warpgroup ? tileType(coresB, 32, space)
                     : tileType(stepDepth, bPitch, space);
  };
  int64_t aBytes = warpgroup ? coresA * 128 : aTileBytes,
          bBytes = warpgroup ? coresB * 128 : bTileBytes;
  if (hostLoops) {
    tileA = memref::AllocOp::create(b, aType(Attribute()));
    for (int64_t w = 0; w < numWeights; ++w)
      tileB[w] = memref::AllocOp::create(b, bType(Attribute()));
    hostAcc = memref::AllocOp::create(
        b, MemRefType::get({threadCount, accCount()}, b.getF32Type()));
    // The warp MMA's operand registers and ldmatrix rows of every thread.
    if (!warpgroup) {
      hostFrag = memref::AllocOp::create(
          b, MemRefType::get({threadCount, stepDepth / 16 * fragWords()},
                             b.getI32Type()));
      hostRows = memref::AllocOp::create(
          b,
          MemRefType::get({threadCount, stepDepth / 16 * matrixLoadCount() * 2},
                          b.getIndexType()));
    }
    if (!asyncA)
      hostPrefetch = memref::AllocOp::create(
          b, MemRefType::get({threadCount, prefetchA}, b.getI32Type()));
    kernels::forEachBlock(b, gridX, gridY,
                          [&](ImplicitLocOpBuilder &bb, Value bx, Value by) {
                            block(bb, bx, by, Value());
                          });
    // After the buffer passes: the host buffers are freed here.
    for (Value buffer :
         {tileA, tileB[0], tileB[1], hostAcc, hostPrefetch, hostFrag, hostRows})
      if (buffer)
        memref::DeallocOp::create(b, buffer);
  } else {
    int64_t tileBytes = kStages * (aBytes + numWeights * bBytes);
    int64_t sharedBytes = tileBytes + (warpgroup ? 2 * kStages * 8 : 0);
    // Two warpgroups' accumulators (CUDA's __launch_bounds__(256, 1)).
    kernels::launch(
        b, gridX, gridY, threadCount, sharedBytes, kMinBlocksPerSM,
        [&](ImplicitLocOpBuilder &kb, gpu::LaunchOp launch, Value shared) {
          auto space = gpu::AddressSpaceAttr::get(kb.getContext(),
                                                  gpu::AddressSpace::Workgroup);
          auto view = [&](MemRefType type, int64_t byteShift) -> Value {
            return memref::ViewOp::create(kb, type, shared, cst(kb, byteShift),
                                          ValueRange{});
          };
          tileA = view(aType(space), 0);
          for (int64_t w = 0; w < numWeights; ++w)
            tileB[w] = view(bType(space), kStages * (aBytes + w * bBytes));
          if (warpgroup)
            barriers = view(MemRefType::get({2 * kStages}, kb.getI64Type(),
                                            MemRefLayoutAttrInterface(), space),
                            tileBytes);
          block(kb, launch.getBlockIds().x, launch.getBlockIds().y,
                launch.getThreadIds().x);
        });
  }
}

struct GroupedMatmulToBuffersPass
    : mlir::moe::impl::MoEGroupedMatmulToBuffersBase<
          GroupedMatmulToBuffersPass> {
  using MoEGroupedMatmulToBuffersBase::MoEGroupedMatmulToBuffersBase;

  void runOnOperation() override {
    SmallVector<GroupedMatmulOp> ops;
    getOperation()->walk([&](GroupedMatmulOp op) { ops.push_back(op); });
    for (GroupedMatmulOp op : ops) {
      std::string why =
          MmaKernel::unsupported(op.getWeight().getType(), op.getGateWeight());
      if (!why.empty()) {
        if (remarks)
          op.emitRemark("moe-grouped-matmul-to-buffers: kept for the loop "
                        "lowering: ")
              << why;
        continue;
      }
      OpBuilder builder(op);
      ImplicitLocOpBuilder b(op.getLoc(), builder);
      // The operands' buffers, in operand order.
      SmallVector<Value> buffers;
      for (Value tensor : {Value(op.getInput()), Value(op.getGather()),
                           Value(op.getWeight()), Value(op.getGateWeight()),
                           Value(op.getOffsets()), Value(op.getCounts()),
                           Value(op.getScatter()), Value(op.getScales())})
        buffers.push_back(lowering::readOnlyBuffer(b, tensor));
      // Rows that only a tensor-core grouped matmul with weights of this
      // type reads (the hidden rows between the projections) are stored in
      // that type: it rounds them so when it loads them, and they move
      // half the bytes (and can be copied asynchronously).
      Type outType = b.getF32Type();
      Type weightType = op.getWeight().getType().getElementType();
      // Whether only a tensor-core kernel over the same rows reads the
      // result: it reads no row that no expert owns (its operand rows past
      // a tile's are zero-filled, not loaded), so those need no zeros.
      bool ownedRowsOnly = false;
      if (!op.getScatter() && op.getResult().hasOneUse())
        if (auto next = dyn_cast<GroupedMatmulOp>(*op.getResult().user_begin()))
          if (next.getInput() == op.getResult() &&
              next.getWeight().getType().getElementType() == weightType &&
              MmaKernel::unsupported(next.getWeight().getType(),
                                     next.getGateWeight())
                  .empty()) {
            outType = weightType;
            ownedRowsOnly = !next.getGather() &&
                            next.getOffsets() == op.getOffsets() &&
                            next.getCounts() == op.getCounts();
          }
      // The rows of a top-1 routing name every token row at most once: the
      // scatter stores instead of adding. When the sum is only rounded to
      // the weights' type (the layer's bf16 or f16 output), each row's value
      // is stored rounded into an output of that type: no f32 sum, no
      // atomics, no cast.
      bool uniqueTargets = false;
      if (Value rows = op.getScatter())
        if (auto route = rows.getDefiningOp<RouteRowsOp>())
          uniqueTargets = route.getK() == 1 && rows == route.getRowToken();
      arith::TruncFOp rounding;
      if (uniqueTargets && op.getResult().hasOneUse()) {
        rounding = dyn_cast<arith::TruncFOp>(*op.getResult().user_begin());
        if (rounding && getElementTypeOrSelf(rounding.getType()) == weightType)
          outType = weightType;
        else
          rounding = {};
      }
      auto resultType =
          RankedTensorType::get(op.getResult().getType().getShape(), outType);
      Value out = memref::AllocOp::create(
          b, MemRefType::get(resultType.getShape(), outType));
      // Rows no expert owns (and, for a scatter, every row before the
      // adds) are zero, unless nothing reads them.
      if (!ownedRowsOnly) {
        Value zero =
            arith::ConstantOp::create(b, outType, b.getFloatAttr(outType, 0));
        linalg::FillOp::create(b, ValueRange{zero}, ValueRange{out});
      }
      GroupedMatmulBuffersOp::create(
          b, buffers[0], buffers[1], buffers[2], buffers[3], buffers[4],
          buffers[5], buffers[6], buffers[7], out, op.getActivationAttr(),
          uniqueTargets ? b.getUnitAttr() : UnitAttr());
      Value result = bufferization::ToTensorOp::create(
          b, resultType, out, /*restrict=*/true, /*writable=*/true);
      if (rounding) {
        rounding.getResult().replaceAllUsesWith(result);
        rounding.erase();
      } else {
        op.getResult().replaceAllUsesWith(result);
      }
      op.erase();
    }
  }
};

struct GroupedMatmulToGpuPass
    : mlir::moe::impl::MoEGroupedMatmulToGpuBase<GroupedMatmulToGpuPass> {
  using MoEGroupedMatmulToGpuBase::MoEGroupedMatmulToGpuBase;

  void runOnOperation() override {
    SmallVector<GroupedMatmulBuffersOp> ops;
    getOperation()->walk([&](GroupedMatmulBuffersOp op) { ops.push_back(op); });
    for (GroupedMatmulBuffersOp op : ops) {
      std::string why =
          MmaKernel::unsupported(op.getWeight().getType(), op.getGateWeight());
      if (!why.empty()) {
        op.emitOpError("moe-grouped-matmul-to-gpu: no tensor-core kernel "
                       "for ")
            << why;
        return signalPassFailure();
      }
      OpBuilder builder(op);
      if (!isTileRowsChoice(tileRows)) {
        op.emitOpError("moe-grouped-matmul-to-gpu: tile-rows must be 0 "
                       "(chosen per grouped matmul), 64 or 128, not ")
            << int64_t(tileRows);
        return signalPassFailure();
      }
      if (!isStepDepthChoice(maxStepDepth)) {
        op.emitOpError("moe-grouped-matmul-to-gpu: max-step-depth must be "
                       "32 or 64, not ")
            << int64_t(maxStepDepth);
        return signalPassFailure();
      }
      if (!isTileColsChoice(maxTileCols)) {
        op.emitOpError("moe-grouped-matmul-to-gpu: max-tile-cols must be 64 "
                       "or 128, not ")
            << int64_t(maxTileCols);
        return signalPassFailure();
      }
      auto weightType = op.getWeight().getType();
      int64_t rows = tileRows != 0
                         ? int64_t(tileRows)
                         : MmaKernel::tileRowsFor(op.getNumRows(),
                                                  weightType.getDimSize(0));
      int64_t depth =
          MmaKernel::stepDepthFor(weightType.getDimSize(1), maxStepDepth);
      int64_t columns = MmaKernel::tileColsFor(
          weightType.getDimSize(2), op.getGateWeight() ? 2 : 1, maxTileCols);
      MmaKernel(op, hostLoops, warpgroup, rows, columns, depth).build(builder);
      op.erase();
    }
  }
};

} // namespace
