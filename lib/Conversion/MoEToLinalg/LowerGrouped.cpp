//===- LowerGrouped.cpp - The fused expert ops on linalg and scf ---------===//
//
// The target-independent lowering of moe.sort_by_expert (a scan of the
// counts and one walk over the assignments) and moe.grouped_matmul (the
// owner expert of every row, then one linalg.generic per weight whose body
// reads the operand row through the gather index and the weight of the
// row's expert, an elementwise epilogue, and the scatter-add as a loop over
// rows). The GPU pipeline maps these to kernels; the CPU pipeline lowers
// grouped matmuls to vector kernels first (moe-grouped-matmul-to-vector).
//
//===----------------------------------------------------------------------===//

#include "Emitter.h"
#include "moe/IR/MoEOps.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::lowering;

Value mlir::moe::lowering::exclusiveScan(Emitter &e, Value counts,
                                        int64_t experts, int64_t block) {
  Value init = e.filled({experts + 1}, e.i64(0));
  return e.loop(experts, {init, e.i64(0)},
                [&](ImplicitLocOpBuilder &ib, Value ex, ValueRange acc) {
                  Emitter s(ib.getLoc(), ib);
                  Value count = s.extract(counts, {ex});
                  if (block > 1) {
                    Value blk = s.i64(block);
                    count = arith::MulIOp::create(
                        ib, arith::CeilDivUIOp::create(ib, count, blk), blk);
                  }
                  Value next = arith::AddIOp::create(ib, acc[1], count);
                  Value at = arith::AddIOp::create(ib, ex, s.index(1));
                  return SmallVector<Value>{s.insert(next, acc[0], {at}),
                                            next};
                })[0];
}

Value mlir::moe::lowering::readOnlyBuffer(ImplicitLocOpBuilder &b,
                                          Value tensor) {
  if (!tensor)
    return Value();
  auto type = cast<RankedTensorType>(tensor.getType());
  SmallVector<int64_t> strides(type.getRank(), ShapedType::kDynamic);
  strides.back() = 1;
  auto layout = StridedLayoutAttr::get(type.getContext(), ShapedType::kDynamic,
                                       strides);
  return bufferization::ToBufferOp::create(
      b, MemRefType::get(type.getShape(), type.getElementType(), layout),
      tensor, /*read_only=*/true);
}

scf::ForOp mlir::moe::lowering::forEach(
    ImplicitLocOpBuilder &b, Value lo, Value hi,
    llvm::function_ref<void(ImplicitLocOpBuilder &, Value)> body) {
  Value one = arith::ConstantIndexOp::create(b, 1);
  return scf::ForOp::create(
      b, b.getLoc(), lo, hi, one, ValueRange{},
      [&](OpBuilder &nested, Location loc, Value i, ValueRange) {
        ImplicitLocOpBuilder ib(loc, nested);
        body(ib, i);
        scf::YieldOp::create(ib);
      });
}

namespace {

using utils::IteratorType;

struct LowerSortByExpert : CheckedPattern<SortByExpertOp> {
  using CheckedPattern::CheckedPattern;

  LogicalResult
  matchAndRewrite(SortByExpertOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Emitter e(op.getLoc(), rewriter);
    int64_t experts = op.getCounts().getType().getDimSize(0);
    auto shape = op.getExperts().getType().getShape();
    int64_t rows = op.getRowToken().getType().getDimSize(0);
    std::string expertCheck = checkMessage(
        checks, op, "read an expert id outside [0, " + Twine(experts) + ")");
    std::string rowCheck = checkMessage(
        checks, op,
        "placed an assignment outside rows [0, " + Twine(rows) + ")");
    // The packed layout's starts, and the aligned ones of the result (the
    // same without block padding).
    Value packed = exclusiveScan(e, adaptor.getCounts(), experts, 1);
    Value offsets =
        op.getBlock() == 1
            ? packed
            : exclusiveScan(e, adaptor.getCounts(), experts, op.getBlock());
    Value tokens = e.filled({rows}, e.i32(-1));
    Value gates = e.filled({rows}, e.f32(0));
    SmallVector<Value> out = e.loop(
        shape[0], {tokens, gates},
        [&](ImplicitLocOpBuilder &ib, Value t, ValueRange acc) {
          Emitter s(ib.getLoc(), ib);
          return s.loop(
              shape[1], acc,
              [&](ImplicitLocOpBuilder &ib, Value j, ValueRange acc) {
                Emitter s(ib.getLoc(), ib);
                Value kept = s.extract(adaptor.getKeep(), {t, j});
                auto ifOp = scf::IfOp::create(
                    ib, kept,
                    [&](OpBuilder &nested, Location loc) {
                      ImplicitLocOpBuilder nb(loc, nested);
                      Emitter s(loc, nb);
                      Value ex = s.extractIndex(adaptor.getExperts(), {t, j});
                      assertInRange(nb, ex, 0, experts, expertCheck);
                      // row = offsets[e] + (slot - packed start of e)
                      Value slot = arith::ExtSIOp::create(
                          nb, nb.getI64Type(),
                          s.extract(adaptor.getSlots(), {t, j}));
                      Value row = arith::AddIOp::create(
                          nb, s.extract(offsets, {ex}),
                          arith::SubIOp::create(nb, slot,
                                                s.extract(packed, {ex})));
                      Value at = arith::IndexCastOp::create(
                          nb, nb.getIndexType(), row);
                      assertInRange(nb, at, 0, rows, rowCheck);
                      Value token = arith::IndexCastOp::create(
                          nb, nb.getI32Type(), t);
                      Value gate = s.extract(adaptor.getGates(), {t, j});
                      scf::YieldOp::create(
                          nb, ValueRange{s.insert(token, acc[0], {at}),
                                         s.insert(gate, acc[1], {at})});
                    },
                    [&](OpBuilder &nested, Location loc) {
                      scf::YieldOp::create(nested, loc, acc);
                    });
                return SmallVector<Value>(ifOp.getResults());
              });
        });
    rewriter.replaceOp(op, {offsets, out[0], out[1]});
    return success();
  }
};

struct LowerGroupedMatmul : OpConversionPattern<GroupedMatmulOp> {
  LowerGroupedMatmul(MLIRContext *context, bool atomicScatter)
      : OpConversionPattern(context), atomicScatter(atomicScatter) {}
  /// The scatter-add as one parallel loop of atomic adds over buffers
  /// rather than a walk over the rows.
  bool atomicScatter;

  LogicalResult
  matchAndRewrite(GroupedMatmulOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Emitter e(op.getLoc(), rewriter);
    ImplicitLocOpBuilder &b = e.builder();
    MLIRContext *ctx = b.getContext();
    auto weightType = op.getWeight().getType();
    int64_t experts = weightType.getDimSize(0),
            cols = weightType.getDimSize(2);
    int64_t rows = op.getNumRows();
    Value starts = adaptor.getOffsets()
                       ? adaptor.getOffsets()
                       : exclusiveScan(e, adaptor.getCounts(), experts, 1);

    // owner[r] = 1 + the expert that owns row r, 0 for none (the ranges
    // are disjoint, so at most one term is non-zero).
    AffineExpr r = getAffineDimExpr(0, ctx), n = getAffineDimExpr(1, ctx);
    // (counts is an input so that the loop over experts has a bound.)
    Value owner = e.generic(
        {adaptor.getCounts()}, e.filled({rows}, e.i32(0)),
        {AffineMap::get(2, 0, {n}, ctx), AffineMap::get(2, 0, {r}, ctx)},
        {IteratorType::parallel, IteratorType::reduction},
        [&](ImplicitLocOpBuilder &ib, ValueRange args) -> Value {
          Emitter s(ib.getLoc(), ib);
          Value row = arith::IndexCastOp::create(ib, ib.getI64Type(),
                                                 linalg::IndexOp::create(ib, 0));
          Value ex = linalg::IndexOp::create(ib, 1);
          Value start = s.extract(starts, {ex});
          Value end = arith::AddIOp::create(ib, start, args[0]);
          Value inside = arith::AndIOp::create(
              ib,
              arith::CmpIOp::create(ib, arith::CmpIPredicate::sle, start, row),
              arith::CmpIOp::create(ib, arith::CmpIPredicate::slt, row, end));
          Value id = arith::AddIOp::create(
              ib, arith::IndexCastOp::create(ib, ib.getI32Type(), ex),
              s.i32(1));
          return arith::AddIOp::create(
              ib, args[1], arith::SelectOp::create(ib, inside, id, s.i32(0)));
        });

    // acc[r, n] = Σ_k input[src(r), k] · w[owner(r), k, n] for owned rows.
    // Expert 0's weight is an input only to give the loops over n and k
    // their bounds; the body reads the weight of the row's expert.
    auto sliceType = RankedTensorType::get(
        {weightType.getDimSize(1), cols}, weightType.getElementType());
    Value firstExpert = tensor::ExtractSliceOp::create(
        b, sliceType, adaptor.getWeight(),
        ArrayRef<OpFoldResult>{b.getIndexAttr(0), b.getIndexAttr(0),
                               b.getIndexAttr(0)},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1),
                               b.getIndexAttr(weightType.getDimSize(1)),
                               b.getIndexAttr(cols)},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1),
                               b.getIndexAttr(1)});
    AffineExpr k = getAffineDimExpr(2, ctx);
    SmallVector<Value> ins{firstExpert, owner};
    if (adaptor.getGather())
      ins.push_back(adaptor.getGather());
    AffineMap perRow = AffineMap::get(3, 0, {r}, ctx);
    AffineMap perOut = AffineMap::get(3, 0, {r, n}, ctx);
    SmallVector<AffineMap> maps(ins.size(), perRow);
    maps[0] = AffineMap::get(3, 0, {k, n}, ctx);
    maps.push_back(perOut);
    auto product = [&](Value weight) {
      return e.generic(
          ins, e.filled({rows, cols}, e.f32(0)), maps,
          {IteratorType::parallel, IteratorType::parallel,
           IteratorType::reduction},
          [&](ImplicitLocOpBuilder &ib, ValueRange args) -> Value {
            Emitter s(ib.getLoc(), ib);
            Value owned = arith::CmpIOp::create(ib, arith::CmpIPredicate::ne,
                                                args[1], s.i32(0));
            Value ex = arith::SelectOp::create(
                ib, owned, arith::SubIOp::create(ib, args[1], s.i32(1)),
                s.i32(0));
            Value src = adaptor.getGather()
                            ? arith::SelectOp::create(ib, owned, args[2],
                                                      s.i32(0))
                                  .getResult()
                            : arith::IndexCastOp::create(
                                  ib, ib.getI32Type(),
                                  linalg::IndexOp::create(ib, 0))
                                  .getResult();
            auto asIndex = [&](Value v) -> Value {
              return arith::IndexCastOp::create(ib, ib.getIndexType(), v);
            };
            Value col = linalg::IndexOp::create(ib, 1);
            Value kk = linalg::IndexOp::create(ib, 2);
            Value a = s.castFloat(
                s.extract(adaptor.getInput(), {asIndex(src), kk}),
                ib.getF32Type());
            Value w = s.castFloat(s.extract(weight, {asIndex(ex), kk, col}),
                                  ib.getF32Type());
            Value term = arith::SelectOp::create(
                ib, owned, arith::MulFOp::create(ib, a, w), s.f32(0));
            return arith::AddFOp::create(ib, args.back(), term);
          });
    };
    Value acc = product(adaptor.getWeight());
    if (std::optional<Activation> activation = op.getActivation()) {
      Value gate = adaptor.getGateWeight() ? product(adaptor.getGateWeight())
                                           : Value();
      SmallVector<Value> operands{acc};
      if (gate)
        operands.push_back(gate);
      acc = e.map(operands, b.getF32Type(),
                  [&](ImplicitLocOpBuilder &ib, ValueRange args) {
                    return activate(ib, *activation, args[0],
                                    gate ? args[1] : Value());
                  });
    }
    if (!adaptor.getScatter()) {
      rewriter.replaceOp(op, acc);
      return success();
    }

    auto resultType = op.getResult().getType();
    if (atomicScatter) {
      // Every element of every owned row at once, added atomically (rows of
      // one token lie in other experts' parts).
      Value accBuffer = readOnlyBuffer(b, acc);
      Value ownerBuffer = readOnlyBuffer(b, owner);
      Value tokens = readOnlyBuffer(b, adaptor.getScatter());
      Value scales = readOnlyBuffer(b, adaptor.getScales());
      Value y = memref::AllocOp::create(
          b, MemRefType::get(resultType.getShape(), b.getF32Type()));
      linalg::FillOp::create(b, ValueRange{e.f32(0)}, ValueRange{y});
      parallelFor(b, rows * cols, [&](ImplicitLocOpBuilder &ib, Value i) {
        Emitter s(ib.getLoc(), ib);
        Value row = arith::DivUIOp::create(ib, i, s.index(cols));
        Value col = arith::RemUIOp::create(ib, i, s.index(cols));
        Value owned = arith::CmpIOp::create(
            ib, arith::CmpIPredicate::ne,
            memref::LoadOp::create(ib, ownerBuffer, ValueRange{row}),
            s.i32(0));
        scf::IfOp::create(ib, owned, [&](OpBuilder &nested, Location loc) {
          ImplicitLocOpBuilder nb(loc, nested);
          Value token = arith::IndexCastOp::create(
              nb, nb.getIndexType(),
              memref::LoadOp::create(nb, tokens, ValueRange{row}));
          Value v = arith::MulFOp::create(
              nb, memref::LoadOp::create(nb, scales, ValueRange{row}),
              memref::LoadOp::create(nb, accBuffer, ValueRange{row, col}));
          memref::AtomicRMWOp::create(nb, arith::AtomicRMWKind::addf, v, y,
                                      ValueRange{token, col});
          scf::YieldOp::create(nb);
        });
      });
      rewriter.replaceOp(op, bufferization::ToTensorOp::create(
                                 b, resultType, y, /*restrict=*/true,
                                 /*writable=*/true));
      return success();
    }

    // Scatter-add: y[indices[r]] += scales[r] · acc[r] for owned rows, one
    // row at a time (rows of one token may follow each other).
    Value y = e.filled(resultType.getShape(), e.f32(0));
    SmallVector<OpFoldResult> unit(2, b.getIndexAttr(1));
    SmallVector<OpFoldResult> rowSizes{b.getIndexAttr(1),
                                       b.getIndexAttr(cols)};
    auto rowType = RankedTensorType::get({1, cols}, b.getF32Type());
    y = e.loop(rows, {y}, [&](ImplicitLocOpBuilder &ib, Value row,
                              ValueRange carried) {
      Emitter s(ib.getLoc(), ib);
      Value owned = arith::CmpIOp::create(ib, arith::CmpIPredicate::ne,
                                          s.extract(owner, {row}), s.i32(0));
      auto ifOp = scf::IfOp::create(
          ib, owned,
          [&](OpBuilder &nested, Location loc) {
            ImplicitLocOpBuilder nb(loc, nested);
            Emitter s(loc, nb);
            Value token = s.extractIndex(adaptor.getScatter(), {row});
            Value scale = s.extract(adaptor.getScales(), {row});
            SmallVector<OpFoldResult> from{row, nb.getIndexAttr(0)};
            SmallVector<OpFoldResult> to{token, nb.getIndexAttr(0)};
            Value src = tensor::ExtractSliceOp::create(nb, rowType, acc, from,
                                                       rowSizes, unit);
            Value dst = tensor::ExtractSliceOp::create(nb, rowType, carried[0],
                                                       to, rowSizes, unit);
            Value sum = s.map({src, dst}, nb.getF32Type(),
                              [&](ImplicitLocOpBuilder &mb, ValueRange args) {
                                return arith::AddFOp::create(
                                    mb, args[1],
                                    arith::MulFOp::create(mb, scale, args[0]));
                              });
            scf::YieldOp::create(nb, ValueRange{tensor::InsertSliceOp::create(
                                         nb, sum, carried[0], to, rowSizes,
                                         unit)});
          },
          [&](OpBuilder &nested, Location loc) {
            scf::YieldOp::create(nested, loc, carried);
          });
      return SmallVector<Value>(ifOp.getResults());
    })[0];
    rewriter.replaceOp(op, y);
    return success();
  }
};

} // namespace

void mlir::moe::lowering::populateLowerGroupedPatterns(
    RewritePatternSet &patterns, bool cpuKernels, bool checks,
    bool atomicScatter) {
  patterns.add<LowerSortByExpert>(patterns.getContext(), checks);
  if (!cpuKernels)
    patterns.add<LowerGroupedMatmul>(patterns.getContext(), atomicScatter);
}
