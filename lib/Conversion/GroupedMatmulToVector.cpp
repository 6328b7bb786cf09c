//===- GroupedMatmulToVector.cpp - Grouped matmuls as CPU vector kernels -===//
//
// The moe-grouped-matmul-to-vector pass: every moe.grouped_matmul becomes a
// register-tiled kernel of vector FMAs on its operands' buffers, with the
// gather in the operand load and the activation or the gate scale and
// scatter-add in the epilogue. Tile shapes follow the host's vector width
// and register count.
//
//===----------------------------------------------------------------------===//

#include "MoEToLinalg/Emitter.h"
#include "moe/Conversion/Passes.h"
#include "moe/IR/MoEOps.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/TargetParser/Host.h"

#include <array>
#include <cstdlib>
#include <thread>
#include <unistd.h>

namespace mlir::moe {
#define GEN_PASS_DEF_MOEGROUPEDMATMULTOVECTOR
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// The register tile: `rows` (MR) rows × `vectors` (V) vectors of `width`
/// (W) f32 lanes per weight.
struct TileShape {
  int64_t width, vectors, rows;
};

/// Vector width in bits and vector register count of the host CPU, or of
/// MOE_CPU_VECTOR=<bits>x<registers> when set (to run another target's tile
/// shape here, or on a virtual machine that hides the host's features).
std::pair<int64_t, int64_t> hostVectorRegisters() {
  if (const char *forced = std::getenv("MOE_CPU_VECTOR")) {
    auto [bits, regs] = llvm::StringRef(forced).split('x');
    int64_t b = 0, r = 0;
    if (!bits.getAsInteger(10, b) && !regs.getAsInteger(10, r))
      return {b, r};
    return {0, 0}; // rejected by the pass with its values
  }
  llvm::StringMap<bool> features = llvm::sys::getHostCPUFeatures();
  auto has = [&](llvm::StringRef name) {
    auto it = features.find(name);
    return it != features.end() && it->second;
  };
  if (has("avx512f"))
    return {512, 32};
  if (has("avx"))
    return {256, 16};
  if (has("neon") || has("sve"))
    return {128, 32};
  return {128, 16};
}

TileShape chooseTile(int64_t cols, int64_t weights, int64_t bits,
                     int64_t registers) {
  TileShape tile;
  tile.width = std::max<int64_t>(1, bits / 32);
  // Weight vectors loaded per reduction step, over all weights.
  int64_t inFlight = registers >= 32 ? 4 : 2;
  tile.vectors = std::max<int64_t>(1, inFlight / weights);
  while (cols % (tile.vectors * tile.width) != 0) {
    if (tile.vectors > 1)
      tile.vectors /= 2;
    else
      tile.width /= 2;
  }
  int64_t perRow = tile.vectors * weights;
  tile.rows = std::clamp<int64_t>((registers - perRow - 1) / perRow, 1, 8);
  return tile;
}

/// Cache blocking of a kernel: `depth` (KC) reduction steps per block, so
/// that a block of a weight panel stays in L1 while every row tile of a chunk
/// streams it; `rowTiles` (R) row tiles per chunk, whose operand rows of one
/// block stay in L2 across the panels; `panels` (P) column panels per unit
/// block, whose partial sums stay in L2 between the reduction blocks.
struct Blocking {
  int64_t depth, rowTiles, panels;
};

/// L1 data and L2 cache sizes in bytes of the host CPU, or of
/// MOE_CPU_CACHE=<L1 KiB>x<L2 KiB> when set ({0, 0} when that is malformed).
std::pair<int64_t, int64_t> hostCacheBytes() {
  if (const char *forced = std::getenv("MOE_CPU_CACHE")) {
    auto [l1, l2] = llvm::StringRef(forced).split('x');
    int64_t a = 0, b = 0;
    if (!l1.getAsInteger(10, a) && !l2.getAsInteger(10, b))
      return {a * 1024, b * 1024};
    return {0, 0}; // rejected by the pass with its values
  }
  int64_t l1 = 0, l2 = 0;
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE)
  l1 = sysconf(_SC_LEVEL1_DCACHE_SIZE);
  l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
  // The smallest of current x86 and Arm server cores when unknown.
  return {l1 > 0 ? l1 : 32 * 1024, l2 > 0 ? l2 : 512 * 1024};
}

Blocking chooseBlocking(TileShape tile, int64_t weights, int64_t depth,
                        int64_t cols, int64_t l1, int64_t l2) {
  // Bytes of one reduction step of a panel (all weights), as f32.
  int64_t stepBytes = weights * tile.vectors * tile.width * 4;
  Blocking blocking;
  // Half of L1 for the weight block; the rest for the tile's operand rows.
  blocking.depth = std::max<int64_t>(8, l1 / 2 / stepBytes / 8 * 8);
  if (blocking.depth >= depth)
    blocking.depth = depth;
  // A quarter of L2 for the chunk's operand rows of one block.
  blocking.rowTiles = std::clamp<int64_t>(
      l2 / 4 / (tile.rows * blocking.depth * 4), 1, 32);
  // At most a quarter of L2 for the partial sums, and 96 KiB: a unit's
  // buffers stay below malloc's mmap threshold (128 KiB).
  int64_t chunkBytes = blocking.rowTiles * tile.rows * stepBytes;
  int64_t panels = cols / (tile.vectors * tile.width);
  blocking.panels = std::clamp<int64_t>(
      std::min<int64_t>(l2 / 4, 96 * 1024) / chunkBytes, 1, panels);
  return blocking;
}

/// A memref type for a tensor operand read in place: any offset and outer
/// strides, unit innermost stride.
MemRefType bufferTypeOf(RankedTensorType type) {
  SmallVector<int64_t> strides(type.getRank(), ShapedType::kDynamic);
  strides.back() = 1;
  auto layout = StridedLayoutAttr::get(type.getContext(), ShapedType::kDynamic,
                                       strides);
  return MemRefType::get(type.getShape(), type.getElementType(), layout);
}

class KernelBuilder {
public:
  /// `weightType` is the [E, K, N] type of the weights; `packed[w]` says
  /// that weight w (0: weight, 1: gate weight) is already a function
  /// argument in the panel layout [E, N / panel, K, panel].
  /// `threadHint`: the threads the units are spread over.
  KernelBuilder(GroupedMatmulOp op, TileShape tile, Blocking blocking,
                int64_t threadHint, RankedTensorType weightType,
                std::array<bool, 2> packed)
      : op(op), tile(tile), blocking(blocking), threadHint(threadHint),
        weightType(weightType), packed(packed) {}

  /// Emits the kernel before `op` and returns its result tensor.
  Value build(OpBuilder &builder);

private:
  Value toBuffer(ImplicitLocOpBuilder &b, Value tensor) {
    if (!tensor)
      return Value();
    auto type = cast<RankedTensorType>(tensor.getType());
    return bufferization::ToBufferOp::create(b, bufferTypeOf(type), tensor,
                                             /*read_only=*/true);
  }
  Value cst(ImplicitLocOpBuilder &b, int64_t v) {
    return arith::ConstantIndexOp::create(b, v);
  }
  Value loadIndex(ImplicitLocOpBuilder &b, Value memref, ValueRange at) {
    return arith::IndexCastOp::create(b, b.getIndexType(),
                                      memref::LoadOp::create(b, memref, at));
  }
  Value toF32(ImplicitLocOpBuilder &b, Value v) {
    Type f32 = b.getF32Type();
    Type elt = getElementTypeOrSelf(v.getType());
    if (elt == f32)
      return v;
    Type to = f32;
    if (auto vec = dyn_cast<VectorType>(v.getType()))
      to = vec.clone(f32);
    return arith::ExtFOp::create(b, to, v);
  }
  /// Fills rows [from, to) of the output with zeros.
  void zeroRows(ImplicitLocOpBuilder &b, Value from, Value to);
  /// A [reduction block, panel width] f32 buffer for one block of a weight
  /// panel packed per call (both weights side by side when gated).
  Value panelBuffer(ImplicitLocOpBuilder &b) {
    int64_t width = numWeights * tile.vectors * tile.width;
    return memref::AllocOp::create(
        b, MemRefType::get({blocking.depth, width}, b.getF32Type()));
  }
  /// The partial sums of one block: `panels` column panels of a row chunk.
  Value partialBuffer(ImplicitLocOpBuilder &b) {
    int64_t width = numWeights * tile.vectors * tile.width;
    return memref::AllocOp::create(
        b, MemRefType::get({blocking.panels * blocking.rowTiles * tile.rows,
                            width},
                           b.getF32Type()));
  }
  /// Copies rows [k0, k1) of expert `expert`'s weight columns
  /// [col, col + panel) into rows [0, k1 - k0) of `panel`, converted to f32.
  void packPanel(ImplicitLocOpBuilder &b, Value expert, Value col,
                 Value panel, Value k0, Value k1);
  /// Expert `expert` on `numPanels` column panels from `firstPanel`: per
  /// chunk of row tiles, every reduction block of every panel accumulates
  /// into `partial`, then the epilogue writes the chunk's rows. Weights not
  /// packed at bind time are packed block by block into `panelBuf`.
  void expertBlock(ImplicitLocOpBuilder &b, Value expert, Value firstPanel,
                   Value numPanels, Value partial, Value panelBuf);
  /// scf.for from `from` to `to` (step 1) with `body` and no results.
  void forLoop(ImplicitLocOpBuilder &b, Value from, Value to,
               llvm::function_ref<void(ImplicitLocOpBuilder &, Value)> body) {
    scf::ForOp::create(b, b.getLoc(), from, to, cst(b, 1), ValueRange{},
                       [&](OpBuilder &nested, Location loc, Value iv,
                           ValueRange) {
                         ImplicitLocOpBuilder nb(loc, nested);
                         body(nb, iv);
                         scf::YieldOp::create(nb);
                       });
  }

  /// Reduction steps per iteration of the unrolled reduction loop.
  static constexpr int64_t kUnroll = 4;

  GroupedMatmulOp op;
  TileShape tile;
  Blocking blocking;
  int64_t threadHint;
  RankedTensorType weightType;
  std::array<bool, 2> packed;
  Value input, gather, weights[2], starts, counts, scatter, scales, out;
  int64_t numWeights = 1, depth = 0, cols = 0, outRows = 0;
};

void KernelBuilder::zeroRows(ImplicitLocOpBuilder &b, Value from, Value to) {
  Value size = arith::SubIOp::create(b, to, from);
  auto sub = memref::SubViewOp::create(
      b, out, ArrayRef<OpFoldResult>{from, b.getIndexAttr(0)},
      ArrayRef<OpFoldResult>{size, b.getIndexAttr(cols)},
      ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
  Value zero = arith::ConstantOp::create(b, b.getF32FloatAttr(0));
  linalg::FillOp::create(b, ValueRange{zero}, ValueRange{sub});
}

void KernelBuilder::packPanel(ImplicitLocOpBuilder &b, Value expert,
                              Value col, Value panel, Value k0, Value k1) {
  Type weightElt = cast<MemRefType>(weights[0].getType()).getElementType();
  auto weightVecType = VectorType::get({tile.width}, weightElt);
  forLoop(b, k0, k1, [&](ImplicitLocOpBuilder &kb, Value k) {
    Value local = arith::SubIOp::create(kb, k, k0);
    for (int64_t w = 0; w < numWeights; ++w) {
      if (packed[w])
        continue;
      for (int64_t v = 0; v < tile.vectors; ++v) {
        Value c = arith::AddIOp::create(kb, col, cst(kb, v * tile.width));
        Value value = toF32(kb, vector::LoadOp::create(
                                    kb, weightVecType, weights[w],
                                    ValueRange{expert, k, c}));
        Value at = cst(kb, (w * tile.vectors + v) * tile.width);
        vector::StoreOp::create(kb, value, panel, ValueRange{local, at});
      }
    }
  });
}

void KernelBuilder::expertBlock(ImplicitLocOpBuilder &b, Value expert,
                                Value firstPanel, Value numPanels,
                                Value partial, Value panelBuf) {
  Type f32 = b.getF32Type();
  auto vecType = VectorType::get({tile.width}, f32);
  Value rows = loadIndex(b, counts, {expert});
  Value base = loadIndex(b, starts, {expert});
  Value step = cst(b, tile.rows);
  Value tiles = arith::CeilDivUIOp::create(b, rows, step);
  Value last = arith::SubIOp::create(b, rows, cst(b, 1));
  int64_t chunkRows = blocking.rowTiles * tile.rows;
  Value chunks = arith::CeilDivUIOp::create(b, tiles, cst(b, blocking.rowTiles));
  int64_t panelWidth = tile.vectors * tile.width;
  int64_t blocks = (depth + blocking.depth - 1) / blocking.depth;
  Type weightElt = weightType.getElementType();
  auto packedVecType = VectorType::get({tile.width}, weightElt);
  int64_t perRow = numWeights * tile.vectors;
  // Accumulator (i, w, v) of a row tile: row i, weight w, vector v; its
  // partial sums live at row `i` of the tile's rows in `partial`, column
  // (w * V + v) * W.
  auto accIndex = [&](int64_t i, int64_t w, int64_t v) {
    return i * perRow + w * tile.vectors + v;
  };
  auto partialRow = [&](ImplicitLocOpBuilder &pb, Value p, Value t,
                        int64_t i) {
    Value row = arith::MulIOp::create(pb, p, cst(pb, chunkRows));
    row = arith::AddIOp::create(pb, row,
                                arith::MulIOp::create(pb, t, step));
    return arith::AddIOp::create(pb, row, cst(pb, i)).getResult();
  };

  forLoop(b, cst(b, 0), chunks, [&](ImplicitLocOpBuilder &cb, Value chunk) {
    Value t0 = arith::MulIOp::create(cb, chunk, cst(cb, blocking.rowTiles));
    Value chunkTiles = arith::MinUIOp::create(
        cb, cst(cb, blocking.rowTiles), arith::SubIOp::create(cb, tiles, t0));
    // Reduction blocks: each weight panel block streams from L1 for every
    // row tile of the chunk; the chunk's operand rows of the block stay in
    // L2 across the panels.
    forLoop(cb, cst(cb, 0), cst(cb, blocks), [&](ImplicitLocOpBuilder &kbb,
                                                 Value kb) {
      Value k0 = arith::MulIOp::create(kbb, kb, cst(kbb, blocking.depth));
      Value k1 = arith::MinUIOp::create(
          kbb, arith::AddIOp::create(kbb, k0, cst(kbb, blocking.depth)),
          cst(kbb, depth));
      Value firstBlock = arith::CmpIOp::create(
          kbb, arith::CmpIPredicate::eq, kb, cst(kbb, 0));
      forLoop(kbb, cst(kbb, 0), numPanels, [&](ImplicitLocOpBuilder &pb,
                                               Value p) {
        Value panelIndex = arith::AddIOp::create(pb, firstPanel, p);
        Value col = arith::MulIOp::create(pb, panelIndex, cst(pb, panelWidth));
        if (panelBuf)
          packPanel(pb, expert, col, panelBuf, k0, k1);
        forLoop(pb, cst(pb, 0), chunkTiles, [&](ImplicitLocOpBuilder &ib,
                                                Value t) {
          Value r0 = arith::MulIOp::create(
              ib, arith::AddIOp::create(ib, t0, t), step);
          // The tile's operand rows (a tile past the expert's end repeats
          // its last row).
          SmallVector<Value> sources, prows;
          for (int64_t i = 0; i < tile.rows; ++i) {
            Value local = arith::MinUIOp::create(
                ib, arith::AddIOp::create(ib, r0, cst(ib, i)), last);
            Value row = arith::AddIOp::create(ib, base, local);
            sources.push_back(gather ? loadIndex(ib, gather, {row}) : row);
            prows.push_back(partialRow(ib, p, t, i));
          }
          auto loadPartials = [&](ImplicitLocOpBuilder &lb) {
            SmallVector<Value> values;
            for (int64_t i = 0; i < tile.rows; ++i)
              for (int64_t j = 0; j < perRow; ++j)
                values.push_back(vector::LoadOp::create(
                    lb, vecType, partial,
                    ValueRange{prows[i], cst(lb, j * tile.width)}));
            return values;
          };
          Value zeros = arith::ConstantOp::create(
              ib, DenseElementsAttr::get(vecType,
                                         ib.getF32FloatAttr(0).getValue()));
          SmallVector<Value> inits;
          if (blocks == 1) {
            inits.assign(tile.rows * perRow, zeros);
          } else {
            SmallVector<Type> types(tile.rows * perRow, vecType);
            auto init = scf::IfOp::create(ib, types, firstBlock,
                                          /*withElseRegion=*/true);
            {
              OpBuilder::InsertionGuard guard(ib);
              ib.setInsertionPointToStart(init.thenBlock());
              scf::YieldOp::create(ib, SmallVector<Value>(types.size(), zeros));
              ib.setInsertionPointToStart(init.elseBlock());
              scf::YieldOp::create(ib, loadPartials(ib));
            }
            inits.assign(init.getResults().begin(), init.getResults().end());
          }
          // One reduction step: V weight vectors per weight, times each
          // row's broadcast operand element read through the gather.
          auto fmaStep = [&](ImplicitLocOpBuilder &kb, Value k,
                             SmallVector<Value> acc) {
            SmallVector<Value> wv;
            for (int64_t w = 0; w < numWeights; ++w)
              for (int64_t v = 0; v < tile.vectors; ++v) {
                if (packed[w]) {
                  Value at = cst(kb, v * tile.width);
                  wv.push_back(toF32(
                      kb, vector::LoadOp::create(
                              kb, packedVecType, weights[w],
                              ValueRange{expert, panelIndex, k, at})));
                  continue;
                }
                Value at = cst(kb, (w * tile.vectors + v) * tile.width);
                Value local = arith::SubIOp::create(kb, k, k0);
                wv.push_back(vector::LoadOp::create(kb, vecType, panelBuf,
                                                    ValueRange{local, at}));
              }
            for (int64_t i = 0; i < tile.rows; ++i) {
              Value a = toF32(kb, memref::LoadOp::create(
                                      kb, input, ValueRange{sources[i], k}));
              Value splat = vector::BroadcastOp::create(kb, vecType, a);
              for (int64_t w = 0; w < numWeights; ++w)
                for (int64_t v = 0; v < tile.vectors; ++v) {
                  int64_t at = accIndex(i, w, v);
                  acc[at] = vector::FMAOp::create(
                      kb, splat, wv[w * tile.vectors + v], acc[at]);
                }
            }
            return acc;
          };
          // The reduction, unrolled by kUnroll, then the block's remainder
          // steps (only when a block length is not a multiple of it).
          Value len = arith::SubIOp::create(ib, k1, k0);
          Value mainEnd = arith::AddIOp::create(
              ib, k0,
              arith::MulIOp::create(
                  ib, arith::DivUIOp::create(ib, len, cst(ib, kUnroll)),
                  cst(ib, kUnroll)));
          auto reduce = [&](Value from, Value to, int64_t unroll,
                            ValueRange init) {
            return scf::ForOp::create(
                ib, ib.getLoc(), from, to, cst(ib, unroll), init,
                [&](OpBuilder &nested, Location loc, Value k,
                    ValueRange acc) {
                  ImplicitLocOpBuilder kb(loc, nested);
                  SmallVector<Value> next(acc.begin(), acc.end());
                  for (int64_t u = 0; u < unroll; ++u)
                    next = fmaStep(
                        kb, u ? arith::AddIOp::create(kb, k, cst(kb, u)) : k,
                        next);
                  scf::YieldOp::create(kb, next);
                });
          };
          auto loop = reduce(k0, mainEnd, kUnroll, inits);
          SmallVector<Value> results(loop.getResults());
          int64_t lastLen = depth - (blocks - 1) * blocking.depth;
          if (blocking.depth % kUnroll != 0 || lastLen % kUnroll != 0)
            results = SmallVector<Value>(
                reduce(mainEnd, k1, 1, results).getResults());
          for (int64_t i = 0; i < tile.rows; ++i)
            for (int64_t j = 0; j < perRow; ++j)
              vector::StoreOp::create(
                  ib, results[i * perRow + j], partial,
                  ValueRange{prows[i], cst(ib, j * tile.width)});
        });
      });
    });

    // Epilogue: each valid row's activation, then a store or a scaled add
    // into its token's row.
    forLoop(cb, cst(cb, 0), numPanels, [&](ImplicitLocOpBuilder &pb, Value p) {
      Value col = arith::MulIOp::create(
          pb, arith::AddIOp::create(pb, firstPanel, p), cst(pb, panelWidth));
      forLoop(pb, cst(pb, 0), chunkTiles, [&](ImplicitLocOpBuilder &ib,
                                              Value t) {
        Value r0 = arith::MulIOp::create(ib, arith::AddIOp::create(ib, t0, t),
                                         step);
        for (int64_t i = 0; i < tile.rows; ++i) {
          Value local = arith::AddIOp::create(ib, r0, cst(ib, i));
          Value valid = arith::CmpIOp::create(ib, arith::CmpIPredicate::ult,
                                              local, rows);
          scf::IfOp::create(ib, valid, [&](OpBuilder &nested, Location loc) {
            ImplicitLocOpBuilder eb(loc, nested);
            Value row = arith::AddIOp::create(eb, base, local);
            Value prow = partialRow(eb, p, t, i);
            Value target = row, scale;
            if (scatter) {
              target = loadIndex(eb, scatter, {row});
              scale = vector::BroadcastOp::create(
                  eb, vecType, memref::LoadOp::create(eb, scales, ValueRange{row}));
            }
            auto partialAt = [&](int64_t w, int64_t v) {
              return vector::LoadOp::create(
                  eb, vecType, partial,
                  ValueRange{prow,
                             cst(eb, (w * tile.vectors + v) * tile.width)});
            };
            for (int64_t v = 0; v < tile.vectors; ++v) {
              Value value = partialAt(0, v);
              if (std::optional<Activation> act = op.getActivation())
                value = lowering::activate(
                    eb, *act, value, numWeights == 2 ? partialAt(1, v) : Value());
              Value c = arith::AddIOp::create(eb, col, cst(eb, v * tile.width));
              if (scatter) {
                Value old = vector::LoadOp::create(eb, vecType, out,
                                                   ValueRange{target, c});
                value = vector::FMAOp::create(eb, scale, value, old);
              }
              vector::StoreOp::create(eb, value, out, ValueRange{target, c});
            }
            scf::YieldOp::create(eb);
          });
        }
      });
    });
  });
}

Value KernelBuilder::build(OpBuilder &builder) {
  ImplicitLocOpBuilder b(op.getLoc(), builder);
  int64_t experts = weightType.getDimSize(0);
  depth = weightType.getDimSize(1);
  cols = weightType.getDimSize(2);
  auto resultType = op.getResult().getType();
  outRows = resultType.getDimSize(0);

  input = toBuffer(b, op.getInput());
  gather = toBuffer(b, op.getGather());
  weights[0] = toBuffer(b, op.getWeight());
  if (op.getGateWeight()) {
    weights[1] = toBuffer(b, op.getGateWeight());
    numWeights = 2;
  }
  counts = toBuffer(b, op.getCounts());
  scatter = toBuffer(b, op.getScatter());
  scales = toBuffer(b, op.getScales());
  out = memref::AllocOp::create(
      b, MemRefType::get(resultType.getShape(), b.getF32Type()));

  // Each expert's first row: the offsets, or the running sum of the counts.
  if (op.getOffsets()) {
    starts = toBuffer(b, op.getOffsets());
  } else {
    starts = memref::AllocaOp::create(
        b, MemRefType::get({experts + 1}, b.getI64Type()));
    Value zero = arith::ConstantIntOp::create(b, 0, 64);
    memref::StoreOp::create(b, zero, starts, ValueRange{cst(b, 0)});
    scf::ForOp::create(
        b, b.getLoc(), cst(b, 0), cst(b, experts), cst(b, 1), ValueRange{zero},
        [&](OpBuilder &nested, Location loc, Value e, ValueRange acc) {
          ImplicitLocOpBuilder ib(loc, nested);
          Value next = arith::AddIOp::create(
              ib, acc[0], memref::LoadOp::create(ib, counts, ValueRange{e}));
          Value at = arith::AddIOp::create(ib, e, cst(ib, 1));
          memref::StoreOp::create(ib, next, starts, ValueRange{at});
          scf::YieldOp::create(ib, next);
        });
  }

  // Output rows nothing is written to are zero: all of them for a scatter;
  // otherwise the rows after each expert's own up to the next expert's
  // first (block padding) or the end.
  if (scatter) {
    zeroRows(b, cst(b, 0), cst(b, outRows));
  } else {
    scf::ForOp::create(
        b, b.getLoc(), cst(b, 0), cst(b, experts), cst(b, 1), ValueRange{},
        [&](OpBuilder &nested, Location loc, Value e, ValueRange) {
          ImplicitLocOpBuilder ib(loc, nested);
          Value from = arith::AddIOp::create(ib, loadIndex(ib, starts, {e}),
                                             loadIndex(ib, counts, {e}));
          Value next = arith::AddIOp::create(ib, e, cst(ib, 1));
          Value isLast = arith::CmpIOp::create(ib, arith::CmpIPredicate::eq,
                                               next, cst(ib, experts));
          Value nextStart = loadIndex(
              ib, starts,
              {arith::SelectOp::create(ib, isLast, e, next).getResult()});
          Value to = arith::SelectOp::create(ib, isLast, cst(ib, outRows),
                                             nextStart);
          zeroRows(ib, from, arith::MaxUIOp::create(ib, from, to));
          scf::YieldOp::create(ib);
        });
  }

  // Units: (block of column panels, expert) pairs; for a scatter, groups
  // of whole column panels (one per thread), over every expert: no two
  // units add into the same output elements, and each expert's rows are
  // read once per group rather than once per panel.
  int64_t panel = tile.vectors * tile.width;
  int64_t panels = cols / panel;
  int64_t groups = std::clamp<int64_t>(threadHint, 1, panels);
  int64_t perGroup = (panels + groups - 1) / groups;
  groups = (panels + perGroup - 1) / perGroup;
  int64_t blocksPerExpert = (panels + blocking.panels - 1) / blocking.panels;
  int64_t units = scatter ? groups : blocksPerExpert * experts;
  auto body = [&](ImplicitLocOpBuilder &ub, Value unit) {
    // The unit's partial sums and, unless every weight was packed at bind
    // time, its per-call weight panel block (both freed by the deallocation
    // pipeline at the unit's end; small enough for malloc's arenas).
    Value partial = partialBuffer(ub);
    Value buffer;
    if (!packed[0] || (numWeights == 2 && !packed[1]))
      buffer = panelBuffer(ub);
    auto blockAt = [&](ImplicitLocOpBuilder &bb, Value e, Value first,
                       Value end) {
      Value count = arith::MinUIOp::create(
          bb, cst(bb, blocking.panels), arith::SubIOp::create(bb, end, first));
      expertBlock(bb, e, first, count, partial, buffer);
    };
    if (scatter) {
      Value first = arith::MulIOp::create(ub, unit, cst(ub, perGroup));
      Value end = arith::MinUIOp::create(
          ub, arith::AddIOp::create(ub, first, cst(ub, perGroup)),
          cst(ub, panels));
      forLoop(ub, cst(ub, 0), cst(ub, experts),
              [&](ImplicitLocOpBuilder &eb, Value e) {
                scf::ForOp::create(
                    eb, eb.getLoc(), first, end, cst(eb, blocking.panels),
                    ValueRange{},
                    [&](OpBuilder &nested, Location loc, Value p, ValueRange) {
                      ImplicitLocOpBuilder pb(loc, nested);
                      blockAt(pb, e, p, end);
                      scf::YieldOp::create(pb);
                    });
              });
      return;
    }
    // Block-major: the threads' contiguous ranges of units (OpenMP's static
    // schedule) each cover every expert, whatever the routing's imbalance.
    Value e = arith::RemUIOp::create(ub, unit, cst(ub, experts));
    Value first = arith::MulIOp::create(
        ub, arith::DivUIOp::create(ub, unit, cst(ub, experts)),
        cst(ub, blocking.panels));
    blockAt(ub, e, first, cst(ub, panels));
  };
  Operation *loop;
  if (threadHint == 1) {
    loop = scf::ForOp::create(b, b.getLoc(), cst(b, 0), cst(b, units),
                              cst(b, 1), ValueRange{},
                              [&](OpBuilder &nested, Location loc, Value u,
                                  ValueRange) {
                                ImplicitLocOpBuilder ub(loc, nested);
                                body(ub, u);
                                scf::YieldOp::create(ub);
                              });
  } else {
    loop = scf::ParallelOp::create(
        b, b.getLoc(), ValueRange{cst(b, 0)}, ValueRange{cst(b, units)},
        ValueRange{cst(b, 1)},
        [&](OpBuilder &nested, Location loc, ValueRange ivs) {
          ImplicitLocOpBuilder ub(loc, nested);
          body(ub, ivs[0]);
        });
  }
  // The epilogue's exp, tanh and erf on vectors as polynomials (a libm
  // call per lane otherwise).
  RewritePatternSet approximations(b.getContext());
  populateMathPolynomialApproximationPatterns(
      approximations, [](StringRef name) {
        return name.ends_with("exp") || name.ends_with("tanh") ||
               name.ends_with("erf");
      });
  (void)applyPatternsGreedily(loop, std::move(approximations));
  return bufferization::ToTensorOp::create(b, resultType, out,
                                           /*restrict=*/true,
                                           /*writable=*/true);
}

struct GroupedMatmulToVectorPass
    : mlir::moe::impl::MoEGroupedMatmulToVectorBase<
          GroupedMatmulToVectorPass> {
  using MoEGroupedMatmulToVectorBase::MoEGroupedMatmulToVectorBase;

  void runOnOperation() override {
    auto [hostBits, hostRegisters] = hostVectorRegisters();
    int64_t bits = vectorBits > 0 ? int64_t(vectorBits) : hostBits;
    int64_t regs = registers > 0 ? int64_t(registers) : hostRegisters;
    if (bits % 32 != 0 || regs < 4) {
      const char *forced = std::getenv("MOE_CPU_VECTOR");
      getOperation()->emitError("moe-grouped-matmul-to-vector: needs "
                                "'vector-bits' a multiple of 32 and at least "
                                "4 'registers', got ")
          << bits << " and " << regs
          << (forced && vectorBits == 0 && registers == 0
                  ? " (from MOE_CPU_VECTOR='" + std::string(forced) +
                        "', expected <bits>x<registers> such as 512x32)"
                  : std::string());
      return signalPassFailure();
    }
    SmallVector<GroupedMatmulOp> ops;
    getOperation()->walk([&](GroupedMatmulOp op) { ops.push_back(op); });
    auto [hostL1, hostL2] = hostCacheBytes();
    int64_t l1 = l1CacheKiB > 0 ? int64_t(l1CacheKiB) * 1024 : hostL1;
    int64_t l2 = l2CacheKiB > 0 ? int64_t(l2CacheKiB) * 1024 : hostL2;
    if (l1 < 1024 || l2 < l1) {
      const char *forced = std::getenv("MOE_CPU_CACHE");
      getOperation()->emitError("moe-grouped-matmul-to-vector: needs an L1 "
                                "cache of at least 1 KiB and an L2 cache no "
                                "smaller, got ")
          << l1 / 1024 << " KiB and " << l2 / 1024 << " KiB"
          << (forced && l1CacheKiB == 0 && l2CacheKiB == 0
                  ? " (from MOE_CPU_CACHE='" + std::string(forced) +
                        "', expected <L1 KiB>x<L2 KiB> such as 32x512)"
                  : std::string());
      return signalPassFailure();
    }
    SmallVector<TileShape> tiles;
    SmallVector<Blocking> blockings;
    SmallVector<RankedTensorType> weightTypes;
    for (GroupedMatmulOp op : ops) {
      RankedTensorType type = op.getWeight().getType();
      int64_t weights = op.getGateWeight() ? 2 : 1;
      weightTypes.push_back(type);
      tiles.push_back(chooseTile(type.getDimSize(2), weights, bits, regs));
      blockings.push_back(chooseBlocking(tiles.back(), weights,
                                         type.getDimSize(1), type.getDimSize(2),
                                         l1, l2));
    }
    DenseSet<Value> packedArgs;
    if (packWeights)
      packedArgs = packArguments(ops, tiles);
    int64_t threadHint =
        threads > 0 ? int64_t(threads)
                    : std::max<int64_t>(1, std::thread::hardware_concurrency());
    for (auto [op, tile, blocking, weightType] :
         llvm::zip(ops, tiles, blockings, weightTypes)) {
      std::array<bool, 2> packed{
          packedArgs.contains(op.getWeight()),
          op.getGateWeight() && packedArgs.contains(op.getGateWeight())};
      OpBuilder builder(op);
      Value result =
          KernelBuilder(op, tile, blocking, threadHint, weightType, packed)
              .build(builder);
      op.getResult().replaceAllUsesWith(result);
      op.erase();
    }
  }

  /// The weights that are arguments of a public function and read only by
  /// grouped matmuls with one panel width take the panel layout
  /// [E, N / panel, K, panel] in the function's signature; the function's
  /// `moe.packed_weights` attribute lists (argument, panel) pairs for the
  /// caller, which packs them once (HostTensor::packPanels).
  DenseSet<Value> packArguments(ArrayRef<GroupedMatmulOp> ops,
                                ArrayRef<TileShape> tiles) {
    llvm::MapVector<BlockArgument, int64_t> panelOf;
    DenseSet<Value> rejected;
    for (auto [constOp, tile] : llvm::zip(ops, tiles)) {
      GroupedMatmulOp op = constOp;
      for (Value weight : {Value(op.getWeight()), Value(op.getGateWeight())}) {
        auto arg = dyn_cast_or_null<BlockArgument>(weight);
        auto func = arg ? dyn_cast<func::FuncOp>(arg.getOwner()->getParentOp())
                        : func::FuncOp();
        if (!func || !func.isPublic() || !arg.getOwner()->isEntryBlock())
          continue;
        int64_t panel = tile.vectors * tile.width;
        auto [it, inserted] = panelOf.try_emplace(arg, panel);
        if (!inserted && it->second != panel)
          rejected.insert(arg);
      }
    }
    DenseSet<Value> packed;
    for (auto [arg, panel] : panelOf) {
      bool onlyWeights = llvm::all_of(arg.getUses(), [](OpOperand &use) {
        auto user = dyn_cast<GroupedMatmulOp>(use.getOwner());
        return user && (use.get() == user.getWeight() ||
                        use.get() == user.getGateWeight());
      });
      if (!onlyWeights || rejected.contains(arg))
        continue;
      auto type = cast<RankedTensorType>(arg.getType());
      int64_t experts = type.getDimSize(0), depth = type.getDimSize(1),
              cols = type.getDimSize(2);
      arg.setType(RankedTensorType::get({experts, cols / panel, depth, panel},
                                        type.getElementType()));
      auto func = cast<func::FuncOp>(arg.getOwner()->getParentOp());
      SmallVector<int64_t> entries;
      if (auto old = func->getAttrOfType<DenseI64ArrayAttr>(kPackedWeightsAttrName))
        entries.append(old.asArrayRef().begin(), old.asArrayRef().end());
      entries.append({int64_t(arg.getArgNumber()), panel});
      func->setAttr(kPackedWeightsAttrName,
                    DenseI64ArrayAttr::get(func.getContext(), entries));
      func.setType(FunctionType::get(func.getContext(),
                                     arg.getOwner()->getArgumentTypes(),
                                     func.getResultTypes()));
      packed.insert(arg);
    }
    return packed;
  }
};

} // namespace
