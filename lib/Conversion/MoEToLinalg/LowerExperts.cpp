//===- LowerExperts.cpp - Dispatch, expert MLPs and combine ---------*- C++
//-*-===//
//
// Lowers moe.dispatch (a scatter of token rows into the expert buffers),
// moe.expert_ffn (batched linalg matmuls with f32 accumulation and the
// activation as a linalg.generic) and moe.combine (a linalg.generic that
// gathers each token's expert rows and sums them with their gates).
//
//===----------------------------------------------------------------------===//

#include "Emitter.h"
#include "moe/IR/MoEOps.h"

#include <algorithm>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::lowering;

namespace {

using utils::IteratorType;

struct LowerDispatch : CheckedPattern<DispatchOp> {
  using CheckedPattern::CheckedPattern;

  LogicalResult
  matchAndRewrite(DispatchOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Emitter e(op.getLoc(), rewriter);
    auto bufferType = op.getBuffer().getType();
    auto inputType = op.getInput().getType();
    int64_t tokens = inputType.getDimSize(0), model = inputType.getDimSize(1);
    int64_t k = op.getExperts().getType().getDimSize(1);
    bool packed = bufferType.getRank() == 2;
    Value input = adaptor.getInput();
    int64_t bufferRows = bufferType.getDimSize(bufferType.getRank() - 2);
    std::string rowCheck = checkMessage(
        checks, op, "read a slot outside [0, " + Twine(bufferRows) + ")");
    std::string expertCheck =
        packed ? ""
               : checkMessage(checks, op,
                              "read an expert id outside [0, " +
                                  Twine(bufferType.getDimSize(0)) + ")");

    Value buffer =
        e.filled(bufferType.getShape(), e.zero(bufferType.getElementType()));
    Value result = e.loop(
        tokens, {buffer},
        [&](ImplicitLocOpBuilder &b, Value t, ValueRange acc) {
          Emitter s(b.getLoc(), b);
          auto rowType =
              RankedTensorType::get({model}, inputType.getElementType());
          SmallVector<OpFoldResult> rowOffsets{t, b.getIndexAttr(0)};
          SmallVector<OpFoldResult> rowSizes{b.getIndexAttr(1),
                                             b.getIndexAttr(model)};
          SmallVector<OpFoldResult> unit{b.getIndexAttr(1), b.getIndexAttr(1)};
          Value row = tensor::ExtractSliceOp::create(
              b, rowType, input, rowOffsets, rowSizes, unit);
          return s.loop(
              k, acc, [&](ImplicitLocOpBuilder &b, Value j, ValueRange acc) {
                Emitter s(b.getLoc(), b);
                Value kept = s.extract(adaptor.getKeep(), {t, j});
                auto ifOp = scf::IfOp::create(
                    b, kept,
                    [&](OpBuilder &nested, Location loc) {
                      ImplicitLocOpBuilder ib(loc, nested);
                      Emitter s(loc, ib);
                      Value slot = s.extractIndex(adaptor.getSlots(), {t, j});
                      assertInRange(ib, slot, 0, bufferRows, rowCheck);
                      SmallVector<OpFoldResult> offsets, sizes, strides;
                      if (!packed) {
                        Value ex = s.extractIndex(adaptor.getExperts(), {t, j});
                        assertInRange(ib, ex, 0, bufferType.getDimSize(0),
                                      expertCheck);
                        offsets.push_back(ex);
                        sizes.push_back(ib.getIndexAttr(1));
                        strides.push_back(ib.getIndexAttr(1));
                      }
                      offsets.append({slot, ib.getIndexAttr(0)});
                      sizes.append(
                          {ib.getIndexAttr(1), ib.getIndexAttr(model)});
                      strides.append({ib.getIndexAttr(1), ib.getIndexAttr(1)});
                      Value updated = tensor::InsertSliceOp::create(
                          ib, row, acc[0], offsets, sizes, strides);
                      scf::YieldOp::create(ib, updated);
                    },
                    [&](OpBuilder &nested, Location loc) {
                      scf::YieldOp::create(nested, loc, acc[0]);
                    });
                return SmallVector<Value>{ifOp.getResult(0)};
              });
        })[0];
    rewriter.replaceOp(op, result);
    return success();
  }
};

/// One expert MLP on `rows` ([N, D] or [E, N, D]) with weights of the same
/// batch structure; returns f32 [.., N, D].
template <typename MatmulOp>
static Value expertMLP(Emitter &e, Activation activation, Value rows, Value wIn,
                       Value wGate, Value wOut,
                       llvm::function_ref<Value(int64_t cols)> zeros) {
  ImplicitLocOpBuilder &b = e.builder();
  auto matmul = [&](Value lhs, Value rhs, int64_t cols) -> Value {
    return MatmulOp::create(b, ValueRange{lhs, rhs}, ValueRange{zeros(cols)})
        .getResult(0);
  };
  int64_t hidden = cast<RankedTensorType>(wIn.getType()).getShape().back();
  int64_t model = cast<RankedTensorType>(wOut.getType()).getShape().back();
  Value h = matmul(rows, wIn, hidden);
  Value a;
  if (wGate) {
    Value g = matmul(rows, wGate, hidden);
    a = e.map({h, g}, b.getF32Type(),
              [&](ImplicitLocOpBuilder &ib, ValueRange args) {
                return activate(ib, activation, args[0], args[1]);
              });
  } else {
    a = e.map(h, b.getF32Type(),
              [&](ImplicitLocOpBuilder &ib, ValueRange args) {
                return activate(ib, activation, args[0], Value());
              });
  }
  return matmul(a, wOut, model);
}

struct LowerExpertFFN : OpConversionPattern<ExpertFFNOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(ExpertFFNOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Emitter e(op.getLoc(), rewriter);
    ImplicitLocOpBuilder &b = e.builder();
    auto bufferType = op.getBuffer().getType();
    Type elt = bufferType.getElementType();
    Activation activation = op.getActivation();
    Value wIn = adaptor.getWIn(), wGate = adaptor.getWGate(),
          wOut = adaptor.getWOut();

    if (!op.isPacked()) {
      int64_t experts = bufferType.getDimSize(0),
              rows = bufferType.getDimSize(1);
      Value out = expertMLP<linalg::BatchMatmulOp>(
          e, activation, adaptor.getBuffer(), wIn, wGate, wOut,
          [&](int64_t cols) {
            return e.filled({experts, rows, cols}, e.f32(0));
          });
      rewriter.replaceOp(op, e.castTensor(out, elt));
      return success();
    }

    // Packed: expert e owns counts[e] consecutive rows. They are processed
    // in chunks of static row counts so that every matmul has a static
    // shape: as many chunks of the largest size as fit, then at most one
    // chunk of each smaller power-of-two size down to 8 rows, the last one
    // rounded up. The buffer is padded by one large chunk so that the last
    // chunk stays in bounds, and only each chunk's valid rows are kept.
    int64_t model = bufferType.getDimSize(1);
    int64_t rows = bufferType.getDimSize(0);
    int64_t experts = op.getWIn().getType().getDimSize(0);
    int64_t largest = 8;
    while (largest < 128 && largest < rows / experts)
      largest *= 2;
    auto weightSlice = [&](ImplicitLocOpBuilder &ib, Value w, Value ex) {
      auto type = cast<RankedTensorType>(w.getType());
      auto sliceType = RankedTensorType::get(type.getShape().drop_front(),
                                             type.getElementType());
      SmallVector<OpFoldResult> offsets{ex, ib.getIndexAttr(0),
                                        ib.getIndexAttr(0)};
      SmallVector<OpFoldResult> sizes{ib.getIndexAttr(1),
                                      ib.getIndexAttr(type.getDimSize(1)),
                                      ib.getIndexAttr(type.getDimSize(2))};
      SmallVector<OpFoldResult> strides(3, ib.getIndexAttr(1));
      return tensor::ExtractSliceOp::create(ib, sliceType, w, offsets, sizes,
                                            strides)
          .getResult();
    };
    SmallVector<OpFoldResult> unit(2, b.getIndexAttr(1));
    SmallVector<OpFoldResult> origin(2, b.getIndexAttr(0));
    Value padded = tensor::InsertSliceOp::create(
        b, adaptor.getBuffer(), e.filled({rows + largest, model}, e.zero(elt)),
        origin,
        ArrayRef<OpFoldResult>{b.getIndexAttr(rows), b.getIndexAttr(model)},
        unit);
    Value result = e.filled({rows + largest, model}, e.zero(elt));
    Value out = e.loop(
        experts, {result, e.index(0)},
        [&](ImplicitLocOpBuilder &ib, Value ex, ValueRange acc) {
          Emitter s(ib.getLoc(), ib);
          Value n = s.extractIndex(adaptor.getCounts(), {ex});
          Value wInE = weightSlice(ib, wIn, ex);
          Value wGateE = wGate ? weightSlice(ib, wGate, ex) : Value();
          Value wOutE = weightSlice(ib, wOut, ex);
          // (output, first row of the expert not yet processed)
          Value current = acc[0], done = s.index(0);
          for (int64_t size = largest; size >= 8; size /= 2) {
            Value sizeValue = s.index(size);
            Value left = arith::SubIOp::create(ib, n, done);
            Value chunks =
                size == 8
                    ? arith::CeilDivUIOp::create(ib, left, sizeValue)
                          .getResult()
                    : arith::DivUIOp::create(ib, left, sizeValue).getResult();
            SmallVector<Value> next = s.loop(
                chunks, {current, done},
                [&](ImplicitLocOpBuilder &ib, Value, ValueRange acc2) {
                  Emitter s(ib.getLoc(), ib);
                  Value start = arith::AddIOp::create(ib, acc[1], acc2[1]);
                  SmallVector<OpFoldResult> at{start, ib.getIndexAttr(0)};
                  auto chunkType = RankedTensorType::get({size, model}, elt);
                  Value block = tensor::ExtractSliceOp::create(
                      ib, chunkType, padded, at,
                      ArrayRef<OpFoldResult>{ib.getIndexAttr(size),
                                             ib.getIndexAttr(model)},
                      unit);
                  Value y = expertMLP<linalg::MatmulOp>(
                      s, activation, block, wInE, wGateE, wOutE,
                      [&](int64_t cols) {
                        return s.filled({size, cols}, s.f32(0));
                      });
                  y = s.castTensor(y, elt);
                  Value valid = arith::MinUIOp::create(
                      ib, sizeValue, arith::SubIOp::create(ib, n, acc2[1]));
                  SmallVector<OpFoldResult> validSizes{valid,
                                                       ib.getIndexAttr(model)};
                  auto validType =
                      RankedTensorType::get({ShapedType::kDynamic, model}, elt);
                  Value kept = tensor::ExtractSliceOp::create(
                      ib, validType, y, origin, validSizes, unit);
                  return SmallVector<Value>{
                      tensor::InsertSliceOp::create(ib, kept, acc2[0], at,
                                                    validSizes, unit),
                      arith::AddIOp::create(ib, acc2[1], valid)};
                });
            current = next[0];
            done = next[1];
          }
          return SmallVector<Value>{current,
                                    arith::AddIOp::create(ib, acc[1], n)};
        })[0];
    out = tensor::ExtractSliceOp::create(
        b, bufferType, out, origin,
        ArrayRef<OpFoldResult>{b.getIndexAttr(rows), b.getIndexAttr(model)},
        unit);
    rewriter.replaceOp(op, out);
    return success();
  }
};

struct LowerCombine : OpConversionPattern<CombineOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(CombineOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Emitter e(op.getLoc(), rewriter);
    ImplicitLocOpBuilder &b = e.builder();
    MLIRContext *ctx = b.getContext();
    auto outType = op.getOutput().getType();
    int64_t tokens = outType.getDimSize(0), model = outType.getDimSize(1);
    bool packed = op.getBuffer().getType().getRank() == 2;
    Value buffer = adaptor.getBuffer();

    // y[t, d] = Σ_j keep · gate · buffer[expert, slot, d], accumulated in f32.
    AffineExpr t = getAffineDimExpr(0, ctx), d = getAffineDimExpr(1, ctx),
               j = getAffineDimExpr(2, ctx);
    AffineMap perChoice = AffineMap::get(3, 0, {t, j}, ctx);
    AffineMap perOutput = AffineMap::get(3, 0, {t, d}, ctx);
    Value init = e.filled({tokens, model}, e.f32(0));
    Value sum = e.generic(
        ValueRange{adaptor.getExperts(), adaptor.getSlots(), adaptor.getKeep(),
                   adaptor.getGates()},
        init, {perChoice, perChoice, perChoice, perChoice, perOutput},
        {IteratorType::parallel, IteratorType::parallel,
         IteratorType::reduction},
        [&](ImplicitLocOpBuilder &ib, ValueRange args) -> Value {
          Emitter s(ib.getLoc(), ib);
          Value kept = args[2];
          // A dropped assignment reads row 0 and contributes zero.
          auto safeIndex = [&](Value v) -> Value {
            Value idx = arith::IndexCastOp::create(ib, ib.getIndexType(), v);
            return arith::SelectOp::create(ib, kept, idx, s.index(0));
          };
          Value col = linalg::IndexOp::create(ib, 1);
          SmallVector<Value> at;
          if (!packed)
            at.push_back(safeIndex(args[0]));
          at.append({safeIndex(args[1]), col});
          Value v = s.castFloat(s.extract(buffer, at), ib.getF32Type());
          Value term = arith::SelectOp::create(
              ib, kept, arith::MulFOp::create(ib, args[3], v), s.f32(0));
          return arith::AddFOp::create(ib, args[4], term);
        });
    rewriter.replaceOp(op, e.castTensor(sum, outType.getElementType()));
    return success();
  }
};

/// The shared expert as two one-expert `moe.grouped_matmul`s over all
/// tokens (the up projection with the activation epilogue, the down
/// projection scaled per row by σ(x · gate) through the scatter epilogue),
/// then the sum with the routed output, rounded once.
struct LowerSharedExpert : OpConversionPattern<SharedExpertOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(SharedExpertOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Emitter e(op.getLoc(), rewriter);
    ImplicitLocOpBuilder &b = e.builder();
    Type f32 = b.getF32Type();
    auto inputType = op.getInput().getType();
    int64_t tokens = inputType.getDimSize(0), model = inputType.getDimSize(1);
    int64_t hidden = op.getWIn().getType().getDimSize(1);
    // [K, N] weights as the one expert of [1, K, N].
    auto oneExpert = [&](Value w) -> Value {
      if (!w)
        return Value();
      auto type = cast<RankedTensorType>(w.getType());
      auto expanded = RankedTensorType::get(
          {1, type.getDimSize(0), type.getDimSize(1)}, type.getElementType());
      return tensor::ExpandShapeOp::create(
          b, expanded, w, ArrayRef<ReassociationIndices>{{0, 1}, {2}});
    };
    auto countType = RankedTensorType::get({1}, b.getI64Type());
    Value counts = arith::ConstantOp::create(
        b, DenseElementsAttr::get(countType, APInt(64, tokens)));
    Value h = GroupedMatmulOp::create(
        b, RankedTensorType::get({tokens, hidden}, f32), adaptor.getInput(),
        Value(), oneExpert(adaptor.getWIn()), oneExpert(adaptor.getWGate()),
        Value(), counts, Value(), Value(), op.getActivationAttr());

    Value rows, scales;
    if (Value gate = adaptor.getGate()) {
      // σ(x[t] · gate) per token, accumulated in f32.
      Value dot = linalg::MatvecOp::create(
                      b, ValueRange{adaptor.getInput(), gate},
                      ValueRange{e.filled({tokens}, e.f32(0))})
                      .getResult(0);
      scales = e.map(dot, f32, [](ImplicitLocOpBuilder &ib, ValueRange args) {
        return sigmoid(ib, args[0]);
      });
      rows = e.map(scales, b.getI32Type(),
                   [](ImplicitLocOpBuilder &ib, ValueRange) -> Value {
                     return arith::IndexCastOp::create(
                         ib, ib.getI32Type(), linalg::IndexOp::create(ib, 0));
                   });
    }
    Value shared = GroupedMatmulOp::create(
        b, RankedTensorType::get({tokens, model}, f32), h, Value(),
        oneExpert(adaptor.getWOut()), Value(), Value(), counts, rows, scales,
        ActivationAttr());

    Type elt = inputType.getElementType();
    Value sum = e.map({adaptor.getRouted(), shared}, elt,
                      [&](ImplicitLocOpBuilder &ib, ValueRange args) {
                        Emitter s(ib.getLoc(), ib);
                        Value routed = s.castFloat(args[0], ib.getF32Type());
                        return s.castFloat(
                            arith::AddFOp::create(ib, routed, args[1]), elt);
                      });
    rewriter.replaceOp(op, sum);
    return success();
  }
};

} // namespace

void mlir::moe::lowering::populateLowerExpertPatterns(
    RewritePatternSet &patterns, bool checks) {
  patterns.add<LowerDispatch>(patterns.getContext(), checks);
  patterns.add<LowerExpertFFN, LowerCombine, LowerSharedExpert>(
      patterns.getContext());
}
