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

class KernelBuilder {
public:
  /// `weightType` is the [E, K, N] type of the weights; `packed[w]` says
  /// that weight w (0: weight, 1: gate weight) is already a function
  /// argument in the panel layout [E, N / panel, K, panel].
  /// `threadHint`: the threads the units are spread over.
  KernelBuilder(GroupedMatmulOp op, TileShape tile, int64_t threadHint,
                RankedTensorType weightType, std::array<bool, 2> packed)
      : op(op), tile(tile), threadHint(threadHint), weightType(weightType),
        packed(packed) {}

  /// Emits the kernel before `op` and returns its result tensor.
  Value build(OpBuilder &builder);

private:
  Value toBuffer(ImplicitLocOpBuilder &b, Value tensor) {
    return lowering::readOnlyBuffer(b, tensor);
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
  /// A [K, panel width] f32 buffer for one packed weight panel (both
  /// weights side by side when gated).
  Value panelBuffer(ImplicitLocOpBuilder &b) {
    int64_t width = numWeights * tile.vectors * tile.width;
    return memref::AllocOp::create(
        b, MemRefType::get({depth, width}, b.getF32Type()));
  }
  /// Copies expert `expert`'s weight columns [col, col + panel) into
  /// `panel`, row k contiguous, converted to f32.
  void packPanel(ImplicitLocOpBuilder &b, Value expert, Value col,
                 Value panel);
  /// All row tiles of expert `expert` on the column panel starting at `col`;
  /// weights not packed at bind time are packed into `panel` first.
  void expertPanel(ImplicitLocOpBuilder &b, Value expert, Value col,
                   Value panel);

  GroupedMatmulOp op;
  TileShape tile;
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
                              Value col, Value panel) {
  Type weightElt = cast<MemRefType>(weights[0].getType()).getElementType();
  auto weightVecType = VectorType::get({tile.width}, weightElt);
  scf::ForOp::create(
      b, b.getLoc(), cst(b, 0), cst(b, depth), cst(b, 1), ValueRange{},
      [&](OpBuilder &nested, Location loc, Value k, ValueRange) {
        ImplicitLocOpBuilder kb(loc, nested);
        for (int64_t w = 0; w < numWeights; ++w) {
          if (packed[w])
            continue;
          for (int64_t v = 0; v < tile.vectors; ++v) {
            Value c = arith::AddIOp::create(kb, col, cst(kb, v * tile.width));
            Value value = toF32(kb, vector::LoadOp::create(
                                        kb, weightVecType, weights[w],
                                        ValueRange{expert, k, c}));
            Value at = cst(kb, (w * tile.vectors + v) * tile.width);
            vector::StoreOp::create(kb, value, panel, ValueRange{k, at});
          }
        }
        scf::YieldOp::create(kb);
      });
}

void KernelBuilder::expertPanel(ImplicitLocOpBuilder &b, Value expert,
                                Value col, Value panel) {
  Type f32 = b.getF32Type();
  auto vecType = VectorType::get({tile.width}, f32);
  Value rows = loadIndex(b, counts, {expert});
  Value base = loadIndex(b, starts, {expert});
  Value step = cst(b, tile.rows);
  Value tiles = arith::CeilDivUIOp::create(b, rows, step);
  Value last = arith::SubIOp::create(b, rows, cst(b, 1));
  // The panel is packed only for an expert that has rows; every row tile
  // then streams it contiguously.
  Value any = arith::CmpIOp::create(b, arith::CmpIPredicate::ugt, rows,
                                    cst(b, 0));
  if (panel)
    scf::IfOp::create(b, any, [&](OpBuilder &nested, Location loc) {
      ImplicitLocOpBuilder pb(loc, nested);
      packPanel(pb, expert, col, panel);
      scf::YieldOp::create(pb);
    });
  // The panel's index in a weight packed at bind time.
  int64_t panelWidth = tile.vectors * tile.width;
  Value panelIndex = arith::DivUIOp::create(b, col, cst(b, panelWidth));
  Type weightElt = weightType.getElementType();
  auto packedVecType = VectorType::get({tile.width}, weightElt);

  scf::ForOp::create(
      b, b.getLoc(), cst(b, 0), tiles, cst(b, 1), ValueRange{},
      [&](OpBuilder &nested, Location loc, Value rt, ValueRange) {
        ImplicitLocOpBuilder ib(loc, nested);
        Value r0 = arith::MulIOp::create(ib, rt, step);
        // The tile's rows (a tile past the expert's end repeats its last
        // row) and the operand rows they read.
        SmallVector<Value> rowIds, sources;
        for (int64_t i = 0; i < tile.rows; ++i) {
          Value local = arith::MinUIOp::create(
              ib, arith::AddIOp::create(ib, r0, cst(ib, i)), last);
          Value row = arith::AddIOp::create(ib, base, local);
          rowIds.push_back(row);
          sources.push_back(gather ? loadIndex(ib, gather, {row}) : row);
        }
        Value zeros = arith::ConstantOp::create(
            ib, DenseElementsAttr::get(vecType, ib.getF32FloatAttr(0).getValue()));
        int64_t perRow = numWeights * tile.vectors;
        SmallVector<Value> inits(tile.rows * perRow, zeros);
        auto accIndex = [&](int64_t i, int64_t w, int64_t v) {
          return i * perRow + w * tile.vectors + v;
        };
        auto loop = scf::ForOp::create(
            ib, loc, cst(ib, 0), cst(ib, depth), cst(ib, 1), inits,
            [&](OpBuilder &nested, Location loc, Value k, ValueRange acc) {
              ImplicitLocOpBuilder kb(loc, nested);
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
                  wv.push_back(vector::LoadOp::create(kb, vecType, panel,
                                                      ValueRange{k, at}));
                }
              SmallVector<Value> next(acc.begin(), acc.end());
              for (int64_t i = 0; i < tile.rows; ++i) {
                Value a = toF32(kb, memref::LoadOp::create(
                                        kb, input, ValueRange{sources[i], k}));
                Value splat = vector::BroadcastOp::create(kb, vecType, a);
                for (int64_t w = 0; w < numWeights; ++w)
                  for (int64_t v = 0; v < tile.vectors; ++v) {
                    int64_t at = accIndex(i, w, v);
                    next[at] = vector::FMAOp::create(
                        kb, splat, wv[w * tile.vectors + v], next[at]);
                  }
              }
              scf::YieldOp::create(kb, next);
            });

        // Epilogue: each valid row's activation, then a store or a scaled
        // add into its token's row.
        for (int64_t i = 0; i < tile.rows; ++i) {
          Value valid = arith::CmpIOp::create(
              ib, arith::CmpIPredicate::ult,
              arith::AddIOp::create(ib, r0, cst(ib, i)), rows);
          scf::IfOp::create(
              ib, valid, [&](OpBuilder &nested, Location loc) {
                ImplicitLocOpBuilder eb(loc, nested);
                Value target = rowIds[i], scale;
                if (scatter) {
                  target = loadIndex(eb, scatter, {rowIds[i]});
                  scale = vector::BroadcastOp::create(
                      eb, vecType,
                      memref::LoadOp::create(eb, scales, ValueRange{rowIds[i]}));
                }
                for (int64_t v = 0; v < tile.vectors; ++v) {
                  Value value = loop.getResult(accIndex(i, 0, v));
                  if (std::optional<Activation> act = op.getActivation())
                    value = lowering::activate(
                        eb, *act, value,
                        numWeights == 2 ? loop.getResult(accIndex(i, 1, v))
                                        : Value());
                  Value c =
                      arith::AddIOp::create(eb, col, cst(eb, v * tile.width));
                  if (scatter) {
                    Value old = vector::LoadOp::create(eb, vecType, out,
                                                       ValueRange{target, c});
                    value = vector::FMAOp::create(eb, scale, value, old);
                  }
                  vector::StoreOp::create(eb, value, out,
                                          ValueRange{target, c});
                }
                scf::YieldOp::create(eb);
              });
        }
        scf::YieldOp::create(ib);
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

  // Units: (expert, column panel) pairs; for a scatter, groups of whole
  // column panels (one per thread), over every expert: no two units add
  // into the same output elements, and each expert's rows are read once
  // per group rather than once per panel.
  int64_t panel = tile.vectors * tile.width;
  int64_t panels = cols / panel;
  int64_t groups = std::clamp<int64_t>(threadHint, 1, panels);
  int64_t perGroup = (panels + groups - 1) / groups;
  groups = (panels + perGroup - 1) / perGroup;
  int64_t units = scatter ? groups : panels * experts;
  auto body = [&](ImplicitLocOpBuilder &ub, Value unit) {
    // The unit's packed weight panel (freed by the deallocation pipeline),
    // unless every weight was packed at bind time.
    Value buffer;
    if (!packed[0] || (numWeights == 2 && !packed[1]))
      buffer = panelBuffer(ub);
    if (scatter) {
      Value first = arith::MulIOp::create(ub, unit, cst(ub, perGroup));
      Value end = arith::MinUIOp::create(
          ub, arith::AddIOp::create(ub, first, cst(ub, perGroup)),
          cst(ub, panels));
      scf::ForOp::create(
          ub, ub.getLoc(), cst(ub, 0), cst(ub, experts), cst(ub, 1),
          ValueRange{},
          [&](OpBuilder &nested, Location loc, Value e, ValueRange) {
            ImplicitLocOpBuilder eb(loc, nested);
            scf::ForOp::create(
                eb, loc, first, end, cst(eb, 1), ValueRange{},
                [&](OpBuilder &nested, Location loc, Value p, ValueRange) {
                  ImplicitLocOpBuilder pb(loc, nested);
                  expertPanel(pb, e,
                              arith::MulIOp::create(pb, p, cst(pb, panel)),
                              buffer);
                  scf::YieldOp::create(pb);
                });
            scf::YieldOp::create(eb);
          });
      return;
    }
    // Expert-major: one thread takes consecutive panels of an expert, so
    // the weight lines two neighbouring panels share are read once.
    Value e = arith::DivUIOp::create(ub, unit, cst(ub, panels));
    Value p = arith::RemUIOp::create(ub, unit, cst(ub, panels));
    expertPanel(ub, e, arith::MulIOp::create(ub, p, cst(ub, panel)), buffer);
  };
  Operation *loop;
  if (threadHint == 1) {
    loop = lowering::forEach(b, cst(b, 0), cst(b, units), body);
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
    SmallVector<TileShape> tiles;
    SmallVector<RankedTensorType> weightTypes;
    for (GroupedMatmulOp op : ops) {
      weightTypes.push_back(op.getWeight().getType());
      tiles.push_back(chooseTile(op.getWeight().getType().getDimSize(2),
                                 op.getGateWeight() ? 2 : 1, bits, regs));
    }
    DenseSet<Value> packedArgs;
    if (packWeights)
      packedArgs = packArguments(ops, tiles);
    int64_t threadHint =
        threads > 0 ? int64_t(threads)
                    : std::max<int64_t>(1, std::thread::hardware_concurrency());
    for (auto [op, tile, weightType] : llvm::zip(ops, tiles, weightTypes)) {
      std::array<bool, 2> packed{
          packedArgs.contains(op.getWeight()),
          op.getGateWeight() && packedArgs.contains(op.getGateWeight())};
      OpBuilder builder(op);
      Value result = KernelBuilder(op, tile, threadHint, weightType, packed)
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
