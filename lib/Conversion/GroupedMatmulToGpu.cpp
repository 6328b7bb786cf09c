//===- GroupedMatmulToGpu.cpp - Grouped matmuls on tensor cores ----------===//
//
// The moe-grouped-matmul-to-gpu pass: every moe.grouped_matmul whose weights
// are bf16 or f16 becomes one GPU kernel of warp-level tensor-core MMAs
// (`mma.sync.m16n8k16`, f32 accumulation): a block per (64-row tile of one
// expert, 64-column tile), the tile's operand rows gathered through the
// index into shared memory while they are converted to the weights' type,
// the weight tile staged beside them (k-pairs packed in 32-bit words, the
// layout the MMA's fragments read), and the epilogue (activation, or gate
// scale and scatter-add) on the accumulator fragments. With `host-loops` the
// same blocks, tiles, index math, staging, fragment loads and epilogue run
// as host loops, and only the warp's MMA is replaced by a host computation
// of D = A B + C from the fragment registers of the warp's 32 lanes (the
// PTX ISA's m16n8k16 layout, written independently of the fragment loads).
//
//===----------------------------------------------------------------------===//

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

namespace {

// The block tile: kRows rows of one expert × kCols columns, the reduction
// staged kDepth at a time; kWarps warps, warp w owning rows [16w, 16w + 16)
// and all kCols columns as kCols / 8 MMA tiles of 16 × 8.
constexpr int64_t kRows = 64, kCols = 64, kDepth = 32, kWarps = 4;
constexpr int64_t kThreads = 32 * kWarps;
constexpr int64_t kNTiles = kCols / 8;
// Shared tiles hold k-pairs as 32-bit words: kWords per row, rows kPitch
// words apart (4 words of padding keep a fragment load free of bank
// conflicts: the 8 row groups × 4 threads of a warp hit 32 distinct banks).
constexpr int64_t kWords = kDepth / 2, kPitch = kWords + 4;
constexpr int64_t kTileBytes = kRows * kPitch * 4;
// Words each thread stages per step: of the operand tile, of each weight.
constexpr int64_t kPrefetchA = kRows * kWords / kThreads,
                  kPrefetchB = kCols * kWords / kThreads;
static_assert(kRows == 16 * kWarps && kCols == kRows,
              "one 16-row MMA band per warp; A and B tiles share a shape");

class MmaKernel {
public:
  MmaKernel(GroupedMatmulBuffersOp op, bool hostLoops)
      : op(op), hostLoops(hostLoops) {}

  /// Why a grouped matmul with these weights cannot use the kernel (empty
  /// when it can).
  static std::string unsupported(ShapedType weightType, Value gateWeight);

  /// Emits the kernel in place of `op`.
  void build(OpBuilder &builder);

private:
  Value cst(ImplicitLocOpBuilder &b, int64_t v) {
    return arith::ConstantIndexOp::create(b, v);
  }
  Value add(ImplicitLocOpBuilder &b, Value x, Value y) {
    return arith::AddIOp::create(b, x, y);
  }
  Value mul(ImplicitLocOpBuilder &b, Value x, int64_t y) {
    return arith::MulIOp::create(b, x, cst(b, y));
  }
  Value loadIndex(ImplicitLocOpBuilder &b, Value memref, ValueRange at) {
    return arith::IndexCastOp::create(b, b.getIndexType(),
                                      memref::LoadOp::create(b, memref, at));
  }
  /// Two elements of the weights' type packed into a word, `lo` in the low
  /// half (the lower k of an MMA fragment register).
  Value pack(ImplicitLocOpBuilder &b, Value lo, Value hi);
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
  /// The shared words thread `tid` stages each step, with the loads of
  /// neighbouring threads contiguous: kPrefetchA of the operand tile (pairs
  /// of neighbouring words of one row), then kPrefetchB of each weight tile
  /// (row = column of the step's weight tile, word = k-pair).
  SmallVector<TileWord> stageWords(ImplicitLocOpBuilder &b, Value tid);
  /// Thread `tid`'s loads for reduction step `k0`, converted and packed, in
  /// the order of stageWords.
  SmallVector<Value> loadStage(ImplicitLocOpBuilder &b, Value tid, Value k0,
                               Value col0);
  /// Stores what loadStage returned into shared buffer `parity`.
  void storeStage(ImplicitLocOpBuilder &b, Value tid, ValueRange words,
                  Value parity);
  int64_t prefetchWords() const { return kPrefetchA + numWeights * kPrefetchB; }
  /// Thread `tid`'s ldmatrix.x4 rows for k16 step `step` (where the row it
  /// gives its warp starts): one for A, then one per (weight, pair of
  /// column tiles).
  SmallVector<TileWord> matrixLoads(ImplicitLocOpBuilder &b, Value tid,
                                    int64_t step);
  int64_t matrixLoadCount() const { return 1 + numWeights * kNTiles / 2; }
  /// Thread `tid`'s MMA operand registers of k16 step `step` from buffer
  /// `parity`, by ldmatrix, as 32-bit words: A's 4, then 2 per (weight,
  /// column tile).
  SmallVector<Value> fragments(ImplicitLocOpBuilder &b, Value tid,
                               int64_t step, Value parity);
  /// One reduction step of thread `tid`'s accumulators: the warp's MMAs.
  SmallVector<Value> contract(ImplicitLocOpBuilder &b, Value tid,
                              ValueRange acc, Value parity);
  /// The host's ldmatrix: thread `t`'s words of the rows its warp's lanes
  /// gave (in hostRows), from buffer `parity`, into hostFrag.
  void emulateMatrixLoads(ImplicitLocOpBuilder &b, Value t, Value parity);
  /// The host's warp MMAs, from every lane's registers in hostFrag.
  SmallVector<Value> emulateMma(ImplicitLocOpBuilder &b, Value tid,
                                ValueRange acc);
  /// Row `t` of a host buffer [kThreads, n]: its first `count` values, or
  /// stores `values` at its start.
  SmallVector<Value> loadRow(ImplicitLocOpBuilder &b, Value buffer, Value t,
                             int64_t count);
  void storeRow(ImplicitLocOpBuilder &b, Value buffer, Value t,
                ValueRange values);
  int64_t fragWords() const { return 4 + numWeights * kNTiles * 2; }
  static int64_t accAt(int64_t w, int64_t j, int64_t i) {
    return (w * kNTiles + j) * 4 + i;
  }
  /// Activation, then store or scaled scatter-add of the fragments.
  void epilogue(ImplicitLocOpBuilder &b, Value tid, Value col0,
                ValueRange acc);
  /// The block at (bx, by): locate, reduction steps, epilogue.
  void block(ImplicitLocOpBuilder &b, Value bx, Value by, Value tid);

  int64_t accCount() const { return numWeights * kNTiles * 4; }

  GroupedMatmulBuffersOp op;
  bool hostLoops;
  Value input, gather, weights[2], offsets, counts, scatter, scales, out;
  // Shared tiles (workgroup memory, or host buffers), and on the host the
  // accumulators ([kThreads, accCount]), MMA operand registers
  // ([kThreads, 2 fragWords]) and prefetch registers of every thread.
  Value tileA, tileB[2], hostAcc, hostFrag, hostPrefetch, hostRows;
  Value expert, tileStart, tileRows;
  Type mmaType;
  int64_t numWeights = 1, depth = 0, cols = 0, experts = 0;
};

std::string MmaKernel::unsupported(ShapedType weightType, Value gateWeight) {
  Type elt = weightType.getElementType();
  if (!elt.isBF16() && !elt.isF16())
    return "f32 weights (the tensor-core kernel takes bf16 or f16)";
  if (gateWeight &&
      cast<ShapedType>(gateWeight.getType()).getElementType() != elt)
    return "weight and gate weight of different types";
  if (weightType.getDimSize(1) % kDepth != 0)
    return "K = " + std::to_string(weightType.getDimSize(1)) +
           " is not a multiple of " + std::to_string(kDepth);
  if (weightType.getDimSize(2) % kCols != 0)
    return "N = " + std::to_string(weightType.getDimSize(2)) +
           " is not a multiple of " + std::to_string(kCols);
  return "";
}

Value MmaKernel::toMmaType(ImplicitLocOpBuilder &b, Value v) {
  if (v.getType() == mmaType)
    return v;
  if (v.getType() != b.getF32Type())
    v = arith::ExtFOp::create(b, b.getF32Type(), v);
  return arith::TruncFOp::create(b, mmaType, v);
}

Value MmaKernel::pack(ImplicitLocOpBuilder &b, Value lo, Value hi) {
  auto word = [&](Value v) -> Value {
    return arith::ExtUIOp::create(
        b, b.getI32Type(), arith::BitcastOp::create(b, b.getI16Type(), v));
  };
  Value high = arith::ShLIOp::create(
      b, word(hi), arith::ConstantIntOp::create(b, 16, 32));
  return arith::OrIOp::create(b, word(lo), high);
}

Value MmaKernel::unpack(ImplicitLocOpBuilder &b, Value word, int high) {
  if (high)
    word = arith::ShRUIOp::create(b, word,
                                  arith::ConstantIntOp::create(b, 16, 32));
  Value half = arith::TruncIOp::create(b, b.getI16Type(), word);
  Value element = arith::BitcastOp::create(b, mmaType, half);
  return arith::ExtFOp::create(b, b.getF32Type(), element);
}

void MmaKernel::locate(ImplicitLocOpBuilder &b, Value by) {
  // Expert e has ceil(counts[e] / kRows) tiles, numbered in expert order;
  // block row `by` takes tile `by` (a scan of E counts per block).
  Value zero = cst(b, 0);
  auto loop = scf::ForOp::create(
      b, b.getLoc(), zero, cst(b, experts), cst(b, 1),
      ValueRange{zero, zero, zero, zero, zero},
      [&](OpBuilder &nested, Location loc, Value e, ValueRange acc) {
        ImplicitLocOpBuilder lb(loc, nested);
        Value tileBase = acc[0], packedStart = acc[1];
        Value count = loadIndex(lb, counts, {e});
        Value tiles = arith::CeilDivUIOp::create(lb, count, cst(lb, kRows));
        Value start =
            offsets ? loadIndex(lb, offsets, {e}) : packedStart;
        Value nextBase = add(lb, tileBase, tiles);
        Value hit = arith::AndIOp::create(
            lb,
            arith::CmpIOp::create(lb, arith::CmpIPredicate::ule, tileBase, by),
            arith::CmpIOp::create(lb, arith::CmpIPredicate::ult, by,
                                  nextBase));
        Value first = mul(lb, arith::SubIOp::create(lb, by, tileBase), kRows);
        Value rows = arith::MinUIOp::create(
            lb, arith::SubIOp::create(lb, count, first), cst(lb, kRows));
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
  ids.warp = arith::DivUIOp::create(b, tid, cst(b, 32));
  ids.lane = arith::RemUIOp::create(b, tid, cst(b, 32));
  ids.g = arith::DivUIOp::create(b, ids.lane, cst(b, 4));
  ids.q = arith::RemUIOp::create(b, ids.lane, cst(b, 4));
  return ids;
}

SmallVector<MmaKernel::TileWord>
MmaKernel::stageWords(ImplicitLocOpBuilder &b, Value tid) {
  SmallVector<TileWord> slots;
  // Operand rows: in each of 4 passes, 8 neighbouring threads cover the 16
  // words (32 elements) of one row: tile row 16 pass + tid / 8, words
  // 2 (tid % 8) and the next.
  Value rowInPass = arith::DivUIOp::create(b, tid, cst(b, 8));
  Value firstWord = mul(b, arith::RemUIOp::create(b, tid, cst(b, 8)), 2);
  for (int64_t pass = 0; pass < kRows / 16; ++pass)
    for (int64_t w = 0; w < 2; ++w)
      slots.push_back({tileA, add(b, rowInPass, cst(b, 16 * pass)),
                       add(b, firstWord, cst(b, w))});
  // Weights, transposed into tile rows: thread tid takes column tid % 64
  // and k-pairs [8 (tid / 64), + 8), so a warp reads 32 contiguous
  // elements of a weight row per load.
  Value n = arith::RemUIOp::create(b, tid, cst(b, kCols));
  Value firstPair =
      mul(b, arith::DivUIOp::create(b, tid, cst(b, kCols)), kPrefetchB);
  for (int64_t w = 0; w < numWeights; ++w)
    for (int64_t p = 0; p < kPrefetchB; ++p)
      slots.push_back({tileB[w], n, add(b, firstPair, cst(b, p))});
  return slots;
}

SmallVector<Value> MmaKernel::loadStage(ImplicitLocOpBuilder &b, Value tid,
                                        Value k0, Value col0) {
  SmallVector<TileWord> slots = stageWords(b, tid);
  SmallVector<Value> words;
  // Operand words, pairs of one gathered row (zeros past the tile's rows).
  Value zeroWord = arith::ConstantIntOp::create(b, 0, 32);
  for (int64_t i = 0; i < kPrefetchA; i += 2) {
    Value row = slots[i].row;
    Value valid =
        arith::CmpIOp::create(b, arith::CmpIPredicate::ult, row, tileRows);
    Value at = arith::SelectOp::create(b, valid, add(b, tileStart, row),
                                       tileStart);
    Value source = gather ? loadIndex(b, gather, {at}) : at;
    for (int64_t w = i; w < i + 2; ++w) {
      Value k = add(b, k0, mul(b, slots[w].word, 2));
      Value lo = memref::LoadOp::create(b, input, ValueRange{source, k});
      Value hi = memref::LoadOp::create(
          b, input, ValueRange{source, add(b, k, cst(b, 1))});
      words.push_back(arith::SelectOp::create(
          b, valid, pack(b, toMmaType(b, lo), toMmaType(b, hi)), zeroWord));
    }
  }
  // Weight k-pairs of the slot's column.
  for (int64_t w = 0; w < numWeights; ++w)
    for (int64_t p = 0; p < kPrefetchB; ++p) {
      const TileWord &slot = slots[kPrefetchA + w * kPrefetchB + p];
      Value col = add(b, col0, slot.row);
      Value k = add(b, k0, mul(b, slot.word, 2));
      Value lo = memref::LoadOp::create(b, weights[w],
                                        ValueRange{expert, k, col});
      Value hi = memref::LoadOp::create(
          b, weights[w], ValueRange{expert, add(b, k, cst(b, 1)), col});
      words.push_back(pack(b, lo, hi));
    }
  return words;
}

void MmaKernel::storeStage(ImplicitLocOpBuilder &b, Value tid,
                           ValueRange words, Value parity) {
  for (auto [slot, word] : llvm::zip_equal(stageWords(b, tid), words))
    memref::StoreOp::create(b, word, slot.tile,
                            ValueRange{parity, slot.row, slot.word});
}

SmallVector<Value> MmaKernel::loadRow(ImplicitLocOpBuilder &b, Value buffer,
                                      Value t, int64_t count) {
  SmallVector<Value> values;
  for (int64_t i = 0; i < count; ++i)
    values.push_back(
        memref::LoadOp::create(b, buffer, ValueRange{t, cst(b, i)}));
  return values;
}

void MmaKernel::storeRow(ImplicitLocOpBuilder &b, Value buffer, Value t,
                         ValueRange values) {
  for (auto [i, v] : llvm::enumerate(values))
    memref::StoreOp::create(b, v, buffer, ValueRange{t, cst(b, i)});
}

SmallVector<MmaKernel::TileWord>
MmaKernel::matrixLoads(ImplicitLocOpBuilder &b, Value tid, int64_t step) {
  // ldmatrix.x4 gives lane 4 g + q word (g, q) of each of four 8 x 8 b16
  // matrices (8 rows of 4 words); lane l gives the start of row l % 8 of
  // matrix l / 8. A's fragment registers (row g | g + 8, word q | q + 4 of
  // the k16 step) are matrices (rows 0-7 | 8-15) x (words 0-3 | 4-7) of the
  // warp's 16 rows; B's (column g of an 8-column tile, word q | q + 4) for
  // two column tiles are their 8 rows of tileB x (words 0-3 | 4-7).
  LaneIds ids = laneIds(b, tid);
  Value matrix = arith::DivUIOp::create(b, ids.lane, cst(b, 8));
  Value rowInMatrix = arith::RemUIOp::create(b, ids.lane, cst(b, 8));
  Value low = arith::RemUIOp::create(b, matrix, cst(b, 2));
  Value high = arith::DivUIOp::create(b, matrix, cst(b, 2));
  Value stepWord = cst(b, step * 8);
  SmallVector<TileWord> loads;
  loads.push_back({tileA,
                   add(b, add(b, mul(b, ids.warp, 16), rowInMatrix),
                       mul(b, low, 8)),
                   add(b, stepWord, mul(b, high, 4))});
  for (int64_t w = 0; w < numWeights; ++w)
    for (int64_t j = 0; j < kNTiles; j += 2)
      loads.push_back({tileB[w],
                       add(b, add(b, cst(b, 8 * j), mul(b, high, 8)),
                           rowInMatrix),
                       add(b, stepWord, mul(b, low, 4))});
  return loads;
}

SmallVector<Value> MmaKernel::fragments(ImplicitLocOpBuilder &b, Value tid,
                                        int64_t step, Value parity) {
  MLIRContext *ctx = b.getContext();
  Type i32 = b.getI32Type();
  auto quad = LLVM::LLVMStructType::getLiteral(ctx, {i32, i32, i32, i32});
  auto shared = LLVM::LLVMPointerType::get(ctx, 3);
  SmallVector<Value> words;
  for (const TileWord &load : matrixLoads(b, tid, step)) {
    // The row's address: the tile's base plus 4 bytes per word.
    Value base = memref::ExtractAlignedPointerAsIndexOp::create(b, load.tile);
    Value element =
        add(b, mul(b, add(b, mul(b, parity, kRows), load.row), kPitch),
            load.word);
    Value address = arith::IndexCastOp::create(
        b, b.getI64Type(), add(b, base, mul(b, element, 4)));
    Value pointer = LLVM::IntToPtrOp::create(b, shared, address);
    Value regs = NVVM::LdMatrixOp::create(
        b, quad, pointer, /*num=*/4, NVVM::MMALayout::row,
        NVVM::LdStMatrixShapeAttr::get(ctx, 8, 8),
        NVVM::LdStMatrixEltType::B16);
    for (int64_t i = 0; i < 4; ++i)
      words.push_back(LLVM::ExtractValueOp::create(b, regs, i));
  }
  return words;
}

SmallVector<Value> MmaKernel::contract(ImplicitLocOpBuilder &b, Value tid,
                                       ValueRange acc, Value parity) {
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
  for (int64_t step = 0; step < kDepth / 16; ++step) {
    SmallVector<Value> words = fragments(b, tid, step, parity);
    SmallVector<Value> a;
    for (int64_t r = 0; r < 4; ++r)
      a.push_back(operand(words[r]));
    for (int64_t w = 0; w < numWeights; ++w)
      for (int64_t j = 0; j < kNTiles; ++j) {
        int64_t at = 4 + (w * kNTiles + j) * 2;
        SmallVector<Value> bw{operand(words[at]), operand(words[at + 1])};
        SmallVector<Value> c;
        for (int64_t i = 0; i < 4; ++i)
          c.push_back(next[accAt(w, j, i)]);
        Value d = NVVM::MmaOp::create(
            b, resultType, a, bw, c, ArrayRef<int64_t>{16, 8, 16},
            std::nullopt, std::nullopt,
            std::array<NVVM::MMATypes, 2>{ptxType, ptxType},
            std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                           NVVM::MMALayout::col});
        for (int64_t i = 0; i < 4; ++i)
          next[accAt(w, j, i)] = LLVM::ExtractValueOp::create(b, d, i);
      }
  }
  return next;
}

void MmaKernel::emulateMatrixLoads(ImplicitLocOpBuilder &b, Value t,
                                   Value parity) {
  // Lane 4 g + q takes word q of row g of matrix m, whose rows lane 8 m + g
  // of its warp gave.
  LaneIds ids = laneIds(b, t);
  Value warpBase = mul(b, ids.warp, 32);
  for (int64_t step = 0; step < kDepth / 16; ++step)
    for (auto [c, load] : llvm::enumerate(matrixLoads(b, t, step)))
      for (int64_t m = 0; m < 4; ++m) {
        Value from = add(b, add(b, warpBase, cst(b, 8 * m)), ids.g);
        int64_t slot = (step * matrixLoadCount() + c) * 2;
        Value row =
            memref::LoadOp::create(b, hostRows, ValueRange{from, cst(b, slot)});
        Value word = add(b,
                         memref::LoadOp::create(
                             b, hostRows, ValueRange{from, cst(b, slot + 1)}),
                         ids.q);
        Value value = memref::LoadOp::create(b, load.tile,
                                             ValueRange{parity, row, word});
        memref::StoreOp::create(
            b, value, hostFrag,
            ValueRange{t, cst(b, step * fragWords() + 4 * c + m)});
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
  for (int64_t step = 0; step < kDepth / 16; ++step) {
    int64_t base = step * fragWords();
    for (int64_t w = 0; w < numWeights; ++w)
      for (int64_t j = 0; j < kNTiles; ++j)
        for (int64_t i = 0; i < 4; ++i) {
          int64_t rowHigh = i / 2; // row g + 8 rowHigh
          Value col = add(b, mul(b, q, 2), cst(b, i % 2));
          auto loop = scf::ForOp::create(
              b, b.getLoc(), cst(b, 0), cst(b, 16), cst(b, 1),
              ValueRange{next[accAt(w, j, i)]},
              [&](OpBuilder &nested, Location loc, Value k, ValueRange sum) {
                ImplicitLocOpBuilder lb(loc, nested);
                Value kHigh = arith::DivUIOp::create(lb, k, cst(lb, 8));
                Value kPair = arith::DivUIOp::create(
                    lb, arith::RemUIOp::create(lb, k, cst(lb, 8)), cst(lb, 2));
                Value half = arith::IndexCastOp::create(
                    lb, lb.getI32Type(),
                    arith::RemUIOp::create(lb, k, cst(lb, 2)));
                Value laneA = add(lb, add(lb, warpBase, mul(lb, g, 4)), kPair);
                Value regA = add(lb, mul(lb, kHigh, 2),
                                 cst(lb, base + rowHigh));
                Value laneB = add(lb, add(lb, warpBase, mul(lb, col, 4)),
                                  kPair);
                Value regB = add(lb, kHigh,
                                 cst(lb, base + 4 + (w * kNTiles + j) * 2));
                auto element = [&](Value lane, Value reg) {
                  Value word = memref::LoadOp::create(lb, hostFrag,
                                                      ValueRange{lane, reg});
                  Value shift = arith::MulIOp::create(
                      lb, half, arith::ConstantIntOp::create(lb, 16, 32));
                  return unpack(lb, arith::ShRUIOp::create(lb, word, shift),
                                0);
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
      for (int64_t j = 0; j < kNTiles; ++j)
        for (int64_t i = 0; i < 2; ++i) {
          int64_t at = j * 4 + 2 * half + i;
          Value value = acc[at];
          if (std::optional<Activation> act = op.getActivation())
            value = lowering::activate(
                eb, *act, value,
                numWeights == 2 ? acc[kNTiles * 4 + at] : Value());
          Value col = add(eb, add(eb, col0, cst(eb, 8 * j + i)), mul(eb, q, 2));
          if (scatter) {
            // Rows of one token sit in other experts' blocks: the adds of
            // concurrent blocks are atomic.
            memref::AtomicRMWOp::create(
                eb, arith::AtomicRMWKind::addf,
                arith::MulFOp::create(eb, scale, value), out,
                ValueRange{target, col});
          } else {
            memref::StoreOp::create(eb, value, out, ValueRange{target, col});
          }
        }
      scf::YieldOp::create(eb);
    });
  }
}

void MmaKernel::block(ImplicitLocOpBuilder &b, Value bx, Value by,
                      Value tid) {
  locate(b, by);
  Value any = arith::CmpIOp::create(b, arith::CmpIPredicate::ugt, tileRows,
                                    cst(b, 0));
  Value col0 = mul(b, bx, kCols);
  auto forThreads = [&](ImplicitLocOpBuilder &ib,
                        function_ref<void(ImplicitLocOpBuilder &, Value)> fn) {
    lowering::forEach(ib, cst(ib, 0), cst(ib, kThreads), fn);
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
    // Software pipeline over two shared buffers: step i's MMAs read buffer
    // i % 2 while its threads hold step i + 1's words in registers (loaded
    // before the MMAs, stored into the other buffer after them); one
    // barrier per step. Buffer (i + 1) % 2 was last read in step i - 1,
    // which every thread finished before that step's barrier. The last
    // step loads (and stores) its own words again instead of branching.
    Value lastStep = cst(ib, depth - kDepth);
    Value zeroParity = cst(ib, 0);
    if (hostLoops) {
      forThreads(ib, [&](ImplicitLocOpBuilder &tb, Value t) {
        storeStage(tb, t, loadStage(tb, t, cst(tb, 0), col0), zeroParity);
      });
    } else {
      storeStage(ib, tid, loadStage(ib, tid, cst(ib, 0), col0), zeroParity);
      gpu::BarrierOp::create(ib);
    }
    SmallVector<Value> inits(hostLoops ? 0 : accCount(), zero);
    auto loop = scf::ForOp::create(
        ib, loc, cst(ib, 0), cst(ib, depth), cst(ib, kDepth), inits,
        [&](OpBuilder &nested, Location loc, Value k0, ValueRange acc) {
          ImplicitLocOpBuilder kb(loc, nested);
          Value parity = arith::RemUIOp::create(
              kb, arith::DivUIOp::create(kb, k0, cst(kb, kDepth)),
              cst(kb, 2));
          Value other = arith::SubIOp::create(kb, cst(kb, 1), parity);
          Value next = arith::MinUIOp::create(kb, add(kb, k0, cst(kb, kDepth)),
                                              lastStep);
          if (hostLoops) {
            forThreads(kb, [&](ImplicitLocOpBuilder &tb, Value t) {
              storeRow(tb, hostPrefetch, t, loadStage(tb, t, next, col0));
            });
            // ldmatrix: every lane gives its rows (hostRows), then every
            // lane takes its words of the rows its warp gave.
            forThreads(kb, [&](ImplicitLocOpBuilder &tb, Value t) {
              SmallVector<Value> rows;
              for (int64_t step = 0; step < kDepth / 16; ++step)
                for (const TileWord &load : matrixLoads(tb, t, step))
                  rows.append({load.row, load.word});
              storeRow(tb, hostRows, t, rows);
            });
            forThreads(kb, [&](ImplicitLocOpBuilder &tb, Value t) {
              emulateMatrixLoads(tb, t, parity);
            });
            forThreads(kb, [&](ImplicitLocOpBuilder &tb, Value t) {
              storeRow(tb, hostAcc, t, emulateMma(tb, t, loadAcc(tb, t)));
            });
            forThreads(kb, [&](ImplicitLocOpBuilder &tb, Value t) {
              storeStage(tb, t, loadRow(tb, hostPrefetch, t, prefetchWords()),
                         other);
            });
            scf::YieldOp::create(kb);
            return;
          }
          SmallVector<Value> words = loadStage(kb, tid, next, col0);
          SmallVector<Value> sums = contract(kb, tid, acc, parity);
          storeStage(kb, tid, words, other);
          gpu::BarrierOp::create(kb);
          scf::YieldOp::create(kb, sums);
        });
    if (hostLoops)
      forThreads(ib, [&](ImplicitLocOpBuilder &tb, Value t) {
        epilogue(tb, t, col0, loadAcc(tb, t));
      });
    else
      epilogue(ib, tid, col0, loop.getResults());
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
  // number at most ceil(R / kRows) + E.
  int64_t gridX = cols / kCols;
  int64_t gridY = (op.getNumRows() + kRows - 1) / kRows + experts;
  // Two buffers of each tile (the software pipeline's).
  auto tileType = [&](Attribute space) {
    return MemRefType::get({2, kRows, kPitch}, b.getI32Type(),
                           MemRefLayoutAttrInterface(), space);
  };
  if (hostLoops) {
    tileA = memref::AllocOp::create(b, tileType(Attribute()));
    for (int64_t w = 0; w < numWeights; ++w)
      tileB[w] = memref::AllocOp::create(b, tileType(Attribute()));
    hostAcc = memref::AllocOp::create(
        b, MemRefType::get({kThreads, accCount()}, b.getF32Type()));
    hostFrag = memref::AllocOp::create(
        b, MemRefType::get({kThreads, kDepth / 16 * fragWords()},
                           b.getI32Type()));
    hostPrefetch = memref::AllocOp::create(
        b, MemRefType::get({kThreads, prefetchWords()}, b.getI32Type()));
    hostRows = memref::AllocOp::create(
        b, MemRefType::get({kThreads, kDepth / 16 * matrixLoadCount() * 2},
                           b.getIndexType()));
    lowering::forEach(b, cst(b, 0), cst(b, gridY),
                      [&](ImplicitLocOpBuilder &yb, Value by) {
                        lowering::forEach(
                            yb, cst(yb, 0), cst(yb, gridX),
                            [&](ImplicitLocOpBuilder &xb, Value bx) {
                              block(xb, bx, by, Value());
                            });
                      });
    // After the buffer passes: the host buffers are freed here.
    for (Value buffer :
         {tileA, tileB[0], tileB[1], hostAcc, hostFrag, hostPrefetch, hostRows})
      if (buffer)
        memref::DeallocOp::create(b, buffer);
  } else {
    Value one = cst(b, 1);
    int64_t sharedBytes = 2 * (1 + numWeights) * kTileBytes;
    auto launch = gpu::LaunchOp::create(
        b, cst(b, gridX), cst(b, gridY), one, cst(b, kThreads), one, one,
        arith::ConstantIntOp::create(b, sharedBytes, 32));
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&launch.getBody().front());
    auto space = gpu::AddressSpaceAttr::get(b.getContext(),
                                            gpu::AddressSpace::Workgroup);
    Value shared = gpu::DynamicSharedMemoryOp::create(
        b, MemRefType::get({ShapedType::kDynamic}, b.getI8Type(),
                           MemRefLayoutAttrInterface(), space));
    auto view = [&](int64_t index) -> Value {
      return memref::ViewOp::create(b, tileType(space), shared,
                                    cst(b, 2 * index * kTileBytes),
                                    ValueRange{});
    };
    tileA = view(0);
    for (int64_t w = 0; w < numWeights; ++w)
      tileB[w] = view(1 + w);
    block(b, launch.getBlockIds().x, launch.getBlockIds().y,
          launch.getThreadIds().x);
    gpu::TerminatorOp::create(b);
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
      for (Value tensor :
           {Value(op.getInput()), Value(op.getGather()), Value(op.getWeight()),
            Value(op.getGateWeight()), Value(op.getOffsets()),
            Value(op.getCounts()), Value(op.getScatter()),
            Value(op.getScales())})
        buffers.push_back(lowering::readOnlyBuffer(b, tensor));
      auto resultType = op.getResult().getType();
      Value out = memref::AllocOp::create(
          b, MemRefType::get(resultType.getShape(), b.getF32Type()));
      // Rows no expert owns (and, for a scatter, every row before the
      // adds) are zero.
      Value zero = arith::ConstantOp::create(b, b.getF32FloatAttr(0));
      linalg::FillOp::create(b, ValueRange{zero}, ValueRange{out});
      GroupedMatmulBuffersOp::create(b, buffers[0], buffers[1], buffers[2],
                                     buffers[3], buffers[4], buffers[5],
                                     buffers[6], buffers[7], out,
                                     op.getActivationAttr());
      Value result = bufferization::ToTensorOp::create(
          b, resultType, out, /*restrict=*/true, /*writable=*/true);
      op.getResult().replaceAllUsesWith(result);
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
      MmaKernel(op, hostLoops).build(builder);
      op.erase();
    }
  }
};

} // namespace
