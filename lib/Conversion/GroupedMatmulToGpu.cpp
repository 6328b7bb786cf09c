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
  /// Thread `tid`'s part of staging reduction step `k0`: 8 words of the
  /// gathered operand rows and 8 of each weight tile, with the loads of
  /// neighbouring threads contiguous.
  /// Thread `tid`'s loads for reduction step `k0`, converted and packed:
  /// kPrefetchA operand words, then kPrefetchB words per weight.
  SmallVector<Value> loadStage(ImplicitLocOpBuilder &b, Value tid, Value k0,
                               Value col0);
  /// Stores what loadStage returned into shared buffer `parity`.
  void storeStage(ImplicitLocOpBuilder &b, Value tid, ValueRange words,
                  Value parity);
  int64_t prefetchWords() const { return kPrefetchA + numWeights * kPrefetchB; }
  /// One ldmatrix.x4 of a thread: the tile and the (row, word) where the
  /// row it gives the warp starts.
  struct MatrixLoad {
    Value tile, row, word;
  };
  /// Thread `tid`'s ldmatrix rows for k16 step `step`: one for A, then one
  /// per (weight, pair of column tiles).
  SmallVector<MatrixLoad> matrixLoads(ImplicitLocOpBuilder &b, Value tid,
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
  /// The same on the host, from every lane's registers in hostFrag.
  SmallVector<Value> emulateMma(ImplicitLocOpBuilder &b, Value tid,
                                ValueRange acc);
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
                           arith::SelectOp::create(lb, hit, add(lb, start, first),
                                                   acc[3]),
                           arith::SelectOp::create(lb, hit, rows, acc[4])});
      });
  expert = loop.getResult(2);
  tileStart = loop.getResult(3);
  tileRows = loop.getResult(4);
}

SmallVector<Value> MmaKernel::loadStage(ImplicitLocOpBuilder &b, Value tid,
                                        Value k0, Value col0) {
  SmallVector<Value> words;
  // Operand rows, coalesced: in each of 4 passes, 8 neighbouring threads
  // read 32 contiguous elements of one gathered row (tile row 16 pass +
  // tid / 8, words 2 (tid % 8) and the next); zeros past the tile's rows.
  Value zeroWord = arith::ConstantIntOp::create(b, 0, 32);
  Value rowInPass = arith::DivUIOp::create(b, tid, cst(b, 8));
  Value firstWord = mul(b, arith::RemUIOp::create(b, tid, cst(b, 8)), 2);
  for (int64_t pass = 0; pass < kRows / 16; ++pass) {
    Value row = add(b, rowInPass, cst(b, 16 * pass));
    Value valid =
        arith::CmpIOp::create(b, arith::CmpIPredicate::ult, row, tileRows);
    Value at = arith::SelectOp::create(b, valid, add(b, tileStart, row),
                                       tileStart);
    Value source = gather ? loadIndex(b, gather, {at}) : at;
    for (int64_t w = 0; w < 2; ++w) {
      Value k = add(b, k0, mul(b, add(b, firstWord, cst(b, w)), 2));
      Value lo = memref::LoadOp::create(b, input, ValueRange{source, k});
      Value hi = memref::LoadOp::create(
          b, input, ValueRange{source, add(b, k, cst(b, 1))});
      words.push_back(arith::SelectOp::create(
          b, valid, pack(b, toMmaType(b, lo), toMmaType(b, hi)), zeroWord));
    }
  }
  // Weights, coalesced: thread tid takes column tid % 64 and k-pairs
  // [8 (tid / 64), + 8), so a warp reads 32 contiguous elements of a weight
  // row per load.
  Value col = add(b, col0, arith::RemUIOp::create(b, tid, cst(b, kCols)));
  Value firstPair =
      mul(b, arith::DivUIOp::create(b, tid, cst(b, kCols)), kPrefetchB);
  for (int64_t w = 0; w < numWeights; ++w)
    for (int64_t p = 0; p < kPrefetchB; ++p) {
      Value k = add(b, k0, mul(b, add(b, firstPair, cst(b, p)), 2));
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
  // The coordinates of loadStage's words: operand tile rows, and the
  // weights transposed into tile rows (one per column).
  Value rowInPass = arith::DivUIOp::create(b, tid, cst(b, 8));
  Value firstWord = mul(b, arith::RemUIOp::create(b, tid, cst(b, 8)), 2);
  int64_t at = 0;
  for (int64_t pass = 0; pass < kRows / 16; ++pass)
    for (int64_t w = 0; w < 2; ++w)
      memref::StoreOp::create(
          b, words[at++], tileA,
          ValueRange{parity, add(b, rowInPass, cst(b, 16 * pass)),
                     add(b, firstWord, cst(b, w))});
  Value n = arith::RemUIOp::create(b, tid, cst(b, kCols));
  Value firstPair =
      mul(b, arith::DivUIOp::create(b, tid, cst(b, kCols)), kPrefetchB);
  for (int64_t w = 0; w < numWeights; ++w)
    for (int64_t p = 0; p < kPrefetchB; ++p)
      memref::StoreOp::create(
          b, words[at++], tileB[w],
          ValueRange{parity, n, add(b, firstPair, cst(b, p))});
}

SmallVector<MmaKernel::MatrixLoad>
MmaKernel::matrixLoads(ImplicitLocOpBuilder &b, Value tid, int64_t step) {
  // ldmatrix.x4 gives lane 4 g + q word (g, q) of each of four 8 x 8 b16
  // matrices (8 rows of 4 words); lane l gives the start of row l % 8 of
  // matrix l / 8. A's fragment registers (row g | g + 8, word q | q + 4 of
  // the k16 step) are matrices (rows 0-7 | 8-15) x (words 0-3 | 4-7) of the
  // warp's 16 rows; B's (column g of an 8-column tile, word q | q + 4) for
  // two column tiles are their 8 rows of tileB x (words 0-3 | 4-7).
  Value warp = arith::DivUIOp::create(b, tid, cst(b, 32));
  Value lane = arith::RemUIOp::create(b, tid, cst(b, 32));
  Value matrix = arith::DivUIOp::create(b, lane, cst(b, 8));
  Value rowInMatrix = arith::RemUIOp::create(b, lane, cst(b, 8));
  Value low = arith::RemUIOp::create(b, matrix, cst(b, 2));
  Value high = arith::DivUIOp::create(b, matrix, cst(b, 2));
  Value stepWord = cst(b, step * 8);
  SmallVector<MatrixLoad> loads;
  loads.push_back({tileA,
                   add(b, add(b, mul(b, warp, 16), rowInMatrix), mul(b, low, 8)),
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
  for (const MatrixLoad &load : matrixLoads(b, tid, step)) {
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
        NVVM::LdStMatrixShapeAttr::get(ctx, 8, 8), NVVM::LdStMatrixEltType::B16);
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

SmallVector<Value> MmaKernel::emulateMma(ImplicitLocOpBuilder &b, Value tid,
                                         ValueRange acc) {
  // D = A B + C for every MMA of thread tid's warp, from the fragment
  // registers its 32 lanes hold (hostFrag): A[r][k] is half k % 2 of
  // register (r / 8) + 2 (k / 8) of lane 4 (r % 8) + (k % 8) / 2; B[k][n]
  // half k % 2 of register k / 8 of lane 4 n + (k % 8) / 2. Lane 4 g + q
  // holds D[g | g + 8][2 q | 2 q + 1].
  SmallVector<Value> next(acc.begin(), acc.end());
  Value warpBase = mul(b, arith::DivUIOp::create(b, tid, cst(b, 32)), 32);
  Value lane = arith::RemUIOp::create(b, tid, cst(b, 32));
  Value g = arith::DivUIOp::create(b, lane, cst(b, 4));
  Value q = arith::RemUIOp::create(b, lane, cst(b, 4));
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
  Value warp = arith::DivUIOp::create(b, tid, cst(b, 32));
  Value lane = arith::RemUIOp::create(b, tid, cst(b, 32));
  Value g = arith::DivUIOp::create(b, lane, cst(b, 4));
  Value q = arith::RemUIOp::create(b, lane, cst(b, 4));
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
    SmallVector<Value> acc;
    for (int64_t i = 0; i < accCount(); ++i)
      acc.push_back(
          memref::LoadOp::create(tb, hostAcc, ValueRange{t, cst(tb, i)}));
    return acc;
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
              for (auto [i, word] :
                   llvm::enumerate(loadStage(tb, t, next, col0)))
                memref::StoreOp::create(tb, word, hostPrefetch,
                                        ValueRange{t, cst(tb, i)});
            });
            // ldmatrix: every lane gives its rows (hostRows), then every
            // lane takes its words of the rows its warp gave.
            forThreads(kb, [&](ImplicitLocOpBuilder &tb, Value t) {
              int64_t at = 0;
              for (int64_t step = 0; step < kDepth / 16; ++step)
                for (const MatrixLoad &load : matrixLoads(tb, t, step))
                  for (Value v : {load.row, load.word})
                    memref::StoreOp::create(tb, v, hostRows,
                                            ValueRange{t, cst(tb, at++)});
            });
            forThreads(kb, [&](ImplicitLocOpBuilder &tb, Value t) {
              Value warpBase =
                  mul(tb, arith::DivUIOp::create(tb, t, cst(tb, 32)), 32);
              Value lane = arith::RemUIOp::create(tb, t, cst(tb, 32));
              Value g = arith::DivUIOp::create(tb, lane, cst(tb, 4));
              Value q = arith::RemUIOp::create(tb, lane, cst(tb, 4));
              for (int64_t step = 0; step < kDepth / 16; ++step) {
                SmallVector<MatrixLoad> loads = matrixLoads(tb, t, step);
                for (auto [c, load] : llvm::enumerate(loads))
                  for (int64_t m = 0; m < 4; ++m) {
                    Value from = add(tb, add(tb, warpBase, cst(tb, 8 * m)), g);
                    int64_t slot = (step * matrixLoadCount() + c) * 2;
                    Value row = memref::LoadOp::create(
                        tb, hostRows, ValueRange{from, cst(tb, slot)});
                    Value word = add(tb,
                                     memref::LoadOp::create(
                                         tb, hostRows,
                                         ValueRange{from, cst(tb, slot + 1)}),
                                     q);
                    Value value = memref::LoadOp::create(
                        tb, load.tile, ValueRange{parity, row, word});
                    memref::StoreOp::create(
                        tb, value, hostFrag,
                        ValueRange{t, cst(tb, step * fragWords() + 4 * c + m)});
                  }
              }
            });
            forThreads(kb, [&](ImplicitLocOpBuilder &tb, Value t) {
              SmallVector<Value> sums = emulateMma(tb, t, loadAcc(tb, t));
              for (auto [i, v] : llvm::enumerate(sums))
                memref::StoreOp::create(tb, v, hostAcc,
                                        ValueRange{t, cst(tb, i)});
            });
            forThreads(kb, [&](ImplicitLocOpBuilder &tb, Value t) {
              SmallVector<Value> words;
              for (int64_t i = 0; i < prefetchWords(); ++i)
                words.push_back(memref::LoadOp::create(
                    tb, hostPrefetch, ValueRange{t, cst(tb, i)}));
              storeStage(tb, t, words, other);
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
