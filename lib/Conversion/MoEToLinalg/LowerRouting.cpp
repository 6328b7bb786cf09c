//===- LowerRouting.cpp - Router, choice, slots and statistics -----*- C++
//-*-===//
//
// Lowers moe.route, moe.top_k, moe.assign_slots and the statistics ops to
// linalg, tensor, arith, math and scf, following §3-§4 of the layer contract.
// Reductions over the expert axis are linalg.generic ops; the inherently
// sequential parts (top-k selection, the priority walk of slot assignment)
// are scf.for loops over tensors that bufferize in place.
//
//===----------------------------------------------------------------------===//

#include "Emitter.h"
#include "moe/IR/MoEOps.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::lowering;

/// The selection key of a probability: NaN ranks as -inf, below every
/// number (spec §3.7), so that every choice is a valid index.
Value mlir::moe::lowering::rankKey(ImplicitLocOpBuilder &b, Value p) {
  Emitter s(b.getLoc(), b);
  Value isNaN = arith::CmpFOp::create(b, arith::CmpFPredicate::UNO, p, p);
  return arith::SelectOp::create(
      b, isNaN, s.f32(-std::numeric_limits<float>::infinity()), p);
}

/// One step of an ordered selection (key descending, then index ascending;
/// a key is the candidate's score with NaN as -inf): the first of `count`
/// candidates after (`prevKey`, `prevIndex`) in that order. Candidate c is
/// `at(c)` = (its index, its score). Returns (key, index, score) of the
/// choice, index -1 when none is left. Keys are never NaN, so the order is
/// total: k <= count steps from (+inf, -1) always find one each.
SmallVector<Value> mlir::moe::lowering::nextInOrder(
    ImplicitLocOpBuilder &b, int64_t count, Value prevKey, Value prevIndex,
    llvm::function_ref<std::pair<Value, Value>(ImplicitLocOpBuilder &, Value)>
        at) {
  Emitter s(b.getLoc(), b);
  Value none = s.index(-1);
  return s.loop(
      count, {s.f32(0), none, s.f32(0)},
      [&](ImplicitLocOpBuilder &b, Value c, ValueRange m) {
        auto [index, score] = at(b, c);
        Value key = rankKey(b, score);
        Value below =
            arith::CmpFOp::create(b, arith::CmpFPredicate::OLT, key, prevKey);
        Value tieAfter = arith::AndIOp::create(
            b,
            arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, key, prevKey),
            arith::CmpIOp::create(b, arith::CmpIPredicate::sgt, index,
                                  prevIndex));
        Value after = arith::OrIOp::create(b, below, tieAfter);
        Value better = arith::OrIOp::create(
            b, arith::CmpIOp::create(b, arith::CmpIPredicate::eq, m[1], none),
            arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, key, m[0]));
        Value take = arith::AndIOp::create(b, after, better);
        return SmallVector<Value>{
            arith::SelectOp::create(b, take, key, m[0]),
            arith::SelectOp::create(b, take, index, m[1]),
            arith::SelectOp::create(b, take, score, m[2])};
      });
}

namespace {

using utils::IteratorType;

/// Reduces a [T, E] f32 tensor over E with `combine`, starting from `init`.
static Value reduceRows(
    Emitter &e, Value matrix, Value init,
    llvm::function_ref<Value(ImplicitLocOpBuilder &, Value, Value)> combine) {
  ImplicitLocOpBuilder &b = e.builder();
  auto type = cast<RankedTensorType>(matrix.getType());
  Value acc = e.filled({type.getDimSize(0)}, init);
  MLIRContext *ctx = b.getContext();
  AffineMap in = AffineMap::getMultiDimIdentityMap(2, ctx);
  AffineMap out = AffineMap::get(2, 0, {getAffineDimExpr(0, ctx)}, ctx);
  return e.generic(matrix, acc, {in, out},
                   {IteratorType::parallel, IteratorType::reduction},
                   [&](ImplicitLocOpBuilder &ib, ValueRange args) {
                     return combine(ib, args[0], args[1]);
                   });
}

/// Broadcasts row vector `v` [T] against `matrix` [T, E] elementwise.
static Value
mapWithRow(Emitter &e, Value matrix, Value row,
           llvm::function_ref<Value(ImplicitLocOpBuilder &, Value, Value)> fn) {
  ImplicitLocOpBuilder &b = e.builder();
  auto type = cast<RankedTensorType>(matrix.getType());
  Value init = tensor::EmptyOp::create(b, type.getShape(), b.getF32Type());
  MLIRContext *ctx = b.getContext();
  AffineMap id = AffineMap::getMultiDimIdentityMap(2, ctx);
  AffineMap rowMap = AffineMap::get(2, 0, {getAffineDimExpr(0, ctx)}, ctx);
  return e.generic({matrix, row}, init, {id, rowMap, id},
                   {IteratorType::parallel, IteratorType::parallel},
                   [&](ImplicitLocOpBuilder &ib, ValueRange args) {
                     return fn(ib, args[0], args[1]);
                   });
}

struct LowerRoute : OpConversionPattern<RouteOp> {
  LowerRoute(MLIRContext *context, bool cpuKernels)
      : OpConversionPattern(context), cpuKernels(cpuKernels) {}
  bool cpuKernels;

  LogicalResult
  matchAndRewrite(RouteOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Emitter e(op.getLoc(), rewriter);
    ImplicitLocOpBuilder &b = e.builder();
    Type f32 = b.getF32Type();
    int64_t tokens = op.getInput().getType().getDimSize(0);
    int64_t experts = op.getRouter().getType().getDimSize(0);

    // logits[t, e] = Σ_d x[t, d] · router[e, d], in f32: a linalg.matmul
    // with the router transposed ([E, D] → [D, E], a small copy), so that
    // the CPU pipeline's register-tiled matmul kernels take it.
    int64_t model = op.getInput().getType().getDimSize(1);
    Type routerElt = op.getRouter().getType().getElementType();
    Value routerT = linalg::TransposeOp::create(
                        b, adaptor.getRouter(),
                        tensor::EmptyOp::create(b, ArrayRef<int64_t>{model,
                                                                     experts},
                                                routerElt),
                        ArrayRef<int64_t>{1, 0})
                        .getResult()[0];
    Value logits;
    if (cpuKernels) {
      // One expert that owns every token row: the CPU vector kernel.
      auto weightType = RankedTensorType::get({1, model, experts}, routerElt);
      Value weight = tensor::ExpandShapeOp::create(
          b, weightType, routerT, ArrayRef<ReassociationIndices>{{0, 1}, {2}});
      auto countType = RankedTensorType::get({1}, b.getI64Type());
      Value counts = arith::ConstantOp::create(
          b, DenseElementsAttr::get(countType, APInt(64, tokens)));
      logits = GroupedMatmulOp::create(
          b, RankedTensorType::get({tokens, experts}, f32),
          adaptor.getInput(), Value(), weight, Value(), Value(), counts,
          Value(), Value(), ActivationAttr());
    } else {
      Value zeros = e.filled({tokens, experts}, e.f32(0));
      logits = linalg::MatmulOp::create(
                   b, ValueRange{adaptor.getInput(), routerT},
                   ValueRange{zeros})
                   .getResult(0);
    }

    // Numerically stable softmax and log-sum-exp.
    Value max =
        reduceRows(e, logits, e.f32(-std::numeric_limits<float>::infinity()),
                   [](ImplicitLocOpBuilder &ib, Value x, Value acc) -> Value {
                     return arith::MaximumFOp::create(ib, x, acc);
                   });
    Value exps = mapWithRow(
        e, logits, max,
        [](ImplicitLocOpBuilder &ib, Value l, Value m) -> Value {
          return math::ExpOp::create(ib, arith::SubFOp::create(ib, l, m));
        });
    Value sum =
        reduceRows(e, exps, e.f32(0),
                   [](ImplicitLocOpBuilder &ib, Value x, Value acc) -> Value {
                     return arith::AddFOp::create(ib, x, acc);
                   });
    Value probs;
    if (op.getScoreFunction() == ScoreFunction::Sigmoid)
      probs = e.map(logits, f32,
                    [](ImplicitLocOpBuilder &ib, ValueRange args) -> Value {
                      return sigmoid(ib, args[0]);
                    });
    else
      probs = mapWithRow(
          e, exps, sum, [](ImplicitLocOpBuilder &ib, Value x, Value s) -> Value {
            return arith::DivFOp::create(ib, x, s);
          });
    Value lse = e.map({max, sum}, f32,
                      [](ImplicitLocOpBuilder &ib, ValueRange args) -> Value {
                        return arith::AddFOp::create(
                            ib, args[0], math::LogOp::create(ib, args[1]));
                      });
    rewriter.replaceOp(op, {logits, probs, lse});
    return success();
  }
};

/// How the gates of a top-k choice are formed: read from `source` [T, E]
/// (the probabilities chosen by, when null), divided by their sum when
/// `normalize`, then multiplied by `scale`.
struct GateRule {
  Value source;
  bool normalize = false;
  double scale = 1.0;
};

/// The k most probable experts of token `t` (probability descending, expert
/// ascending, NaN as -inf: choice j is the first expert in that order after
/// choice j-1) written into row t of `experts` [T, k] i32 and `gates`
/// [T, k] f32, formed by `rule`. Returns the two tensors. A non-empty
/// `check` asserts every choice is in [0, E).
static SmallVector<Value> chooseTopK(ImplicitLocOpBuilder &b, Value probs,
                                     Value t, int64_t k, const GateRule &rule,
                                     Value experts, Value gates,
                                     const std::string &check) {
  Emitter s(b.getLoc(), b);
  int64_t numExperts = cast<RankedTensorType>(probs.getType()).getDimSize(1);
  Value inf = s.f32(std::numeric_limits<float>::infinity());
  Value none = s.index(-1);
  SmallVector<Value> chosen = s.loop(
      k, {experts, gates, inf, none, s.f32(0)},
      [&](ImplicitLocOpBuilder &b, Value j, ValueRange c) {
        Emitter s(b.getLoc(), b);
        // The best expert after the previous choice, with its probability.
        SmallVector<Value> best = nextInOrder(
            b, numExperts, c[2], c[3],
            [&](ImplicitLocOpBuilder &b, Value ex) -> std::pair<Value, Value> {
              Emitter s(b.getLoc(), b);
              return {ex, s.extract(probs, {t, ex})};
            });
        // The gate reads the gate scores of the chosen expert when they
        // differ from the probabilities chosen by.
        if (rule.source) {
          Value safe = arith::MaxSIOp::create(b, best[1], s.index(0));
          best[2] = s.extract(rule.source, {t, safe});
        }
        assertInRange(b, best[1], 0, numExperts, check);
        Value id = arith::IndexCastOp::create(b, b.getI32Type(), best[1]);
        return SmallVector<Value>{
            s.insert(id, c[0], {t, j}), s.insert(best[2], c[1], {t, j}),
            best[0], best[1], arith::AddFOp::create(b, c[4], best[2])};
      });
  Value chosenGates = chosen[1];
  if (rule.normalize || rule.scale != 1.0)
    chosenGates =
        s.loop(k, {chosenGates},
               [&](ImplicitLocOpBuilder &b, Value j, ValueRange g) {
                 Emitter s(b.getLoc(), b);
                 Value v = s.extract(g[0], {t, j});
                 if (rule.normalize)
                   v = arith::DivFOp::create(b, v, chosen[4]);
                 if (rule.scale != 1.0)
                   v = arith::MulFOp::create(b, v, s.f32(float(rule.scale)));
                 return SmallVector<Value>{s.insert(v, g[0], {t, j})};
               })[0];
  return {chosen[0], chosenGates};
}

struct LowerTopK : CheckedPattern<TopKOp> {
  using CheckedPattern::CheckedPattern;

  LogicalResult
  matchAndRewrite(TopKOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Emitter e(op.getLoc(), rewriter);
    int64_t tokens = op.getProbs().getType().getDimSize(0);
    int64_t k = op.getK();
    GateRule rule{adaptor.getGateScores(), op.getNormalize(),
                  op.getGateScale().convertToDouble()};
    std::string check = checkMessage(
        checks, op,
        "chose an expert outside [0, " +
            Twine(op.getProbs().getType().getDimSize(1)) + ")");
    SmallVector<Value> out = e.loop(
        tokens, {e.filled({tokens, k}, e.i32(0)), e.filled({tokens, k}, e.f32(0))},
        [&](ImplicitLocOpBuilder &b, Value t, ValueRange acc) {
          return chooseTopK(b, adaptor.getProbs(), t, k, rule, acc[0], acc[1],
                            check);
        });
    rewriter.replaceOp(op, out);
    return success();
  }
};

/// order[g·S + r] = the token of group g ranked r-th by descending top-1
/// probability (NaN as -inf), ties in group order.
static Value priorityOrder(Emitter &e, Value experts, Value probs,
                           int64_t tokens, int64_t groupSize) {
  Value score =
      e.loop(tokens, {e.filled({tokens}, e.f32(0))},
             [&](ImplicitLocOpBuilder &b, Value t, ValueRange acc) {
               Emitter s(b.getLoc(), b);
               Value first = s.extractIndex(experts, {t, s.index(0)});
               Value p = rankKey(b, s.extract(probs, {t, first}));
               return SmallVector<Value>{s.insert(p, acc[0], {t})};
             })[0];
  Value size = e.index(groupSize);
  return e.loop(
      tokens, {e.filled({tokens}, e.index(0))},
      [&](ImplicitLocOpBuilder &b, Value t, ValueRange acc) {
        Emitter s(b.getLoc(), b);
        Value base = arith::MulIOp::create(
            b, arith::DivUIOp::create(b, t, size), size);
        Value mine = s.extract(score, {t});
        Value rank = s.loop(
            groupSize, {s.index(0)},
            [&](ImplicitLocOpBuilder &b, Value i, ValueRange r) {
              Emitter s(b.getLoc(), b);
              Value u = arith::AddIOp::create(b, base, i);
              Value other = s.extract(score, {u});
              Value ahead = arith::OrIOp::create(
                  b,
                  arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, other,
                                        mine),
                  arith::AndIOp::create(
                      b,
                      arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ,
                                            other, mine),
                      arith::CmpIOp::create(b, arith::CmpIPredicate::ult, u,
                                            t)));
              Value inc =
                  arith::SelectOp::create(b, ahead, s.index(1), s.index(0));
              return SmallVector<Value>{arith::AddIOp::create(b, r[0], inc)};
            })[0];
        Value at = arith::AddIOp::create(b, base, rank);
        return SmallVector<Value>{s.insert(t, acc[0], {at})};
      })[0];
}

struct LowerAssignSlots : CheckedPattern<AssignSlotsOp> {
  using CheckedPattern::CheckedPattern;

  LogicalResult
  matchAndRewrite(AssignSlotsOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Emitter e(op.getLoc(), rewriter);
    Value experts = adaptor.getExperts();
    int64_t tokens = op.getExperts().getType().getDimSize(0);
    int64_t k = op.getExperts().getType().getDimSize(1);
    int64_t numExperts = op.getNumExperts();
    int64_t groupSize = op.getGroupSize();
    int64_t groups = tokens / groupSize;
    std::optional<int64_t> capacity = op.getCapacity();

    Value order;
    if (op.getPriority() == Priority::BatchPrioritized)
      order = priorityOrder(e, experts, adaptor.getProbs(), tokens, groupSize);

    bool packed = op.isPackedLayout();
    std::string expertCheck = checkMessage(
        checks, op,
        "read an expert id outside [0, " + Twine(numExperts) + ")");
    int64_t bufferRows =
        packed ? tokens * k : groups * capacity.value_or(0);
    std::string rowCheck = checkMessage(
        checks, op,
        "gave an assignment a row outside [0, " + Twine(bufferRows) + ")");
    Value slots = e.filled({tokens, k}, e.i32(-1));
    Value keep = e.filled({tokens, k}, e.boolean(false));
    Value totals = e.filled({numExperts}, e.i64(0));
    // Per group, walk the ranking: every first choice, then every second...
    SmallVector<Value> walked = e.loop(
        groups, {slots, keep, totals},
        [&](ImplicitLocOpBuilder &b, Value g, ValueRange acc) {
          Emitter s(b.getLoc(), b);
          Value base = arith::MulIOp::create(b, g, s.index(groupSize));
          // Bounded: the capacity counts restart per group. Dropless: the
          // running count over all groups is the row within the expert's
          // packed block, and it is also the total.
          Value groupCounts =
              capacity ? s.filled({numExperts}, s.i64(0)) : acc[2];
          SmallVector<Value> ranked = s.loop(
              k, {acc[0], acc[1], groupCounts, acc[2]},
              [&](ImplicitLocOpBuilder &b, Value j, ValueRange acc) {
                Emitter s(b.getLoc(), b);
                return s.loop(
                    groupSize, acc,
                    [&](ImplicitLocOpBuilder &b, Value i, ValueRange acc) {
                      Emitter s(b.getLoc(), b);
                      Value pos = arith::AddIOp::create(b, base, i);
                      Value t = order ? s.extract(order, {pos}) : pos;
                      Value ex = s.extractIndex(experts, {t, j});
                      assertInRange(b, ex, 0, numExperts, expertCheck);
                      Value taken = s.extract(acc[2], {ex});
                      Value kept = s.boolean(true);
                      Value row = taken;
                      if (capacity) {
                        kept =
                            arith::CmpIOp::create(b, arith::CmpIPredicate::slt,
                                                  taken, s.i64(*capacity));
                        row = packed ? s.extract(acc[3], {ex})
                                     : arith::AddIOp::create(
                                           b,
                                           arith::MulIOp::create(
                                               b,
                                               arith::IndexCastOp::create(
                                                   b, b.getI64Type(), g),
                                               s.i64(*capacity)),
                                           taken)
                                           .getResult();
                      }
                      Value slot =
                          arith::SelectOp::create(b, kept, row, s.i64(-1));
                      if (!packed)
                        assertInRange(
                            b,
                            arith::SelectOp::create(b, kept, row, s.i64(0)),
                            0, bufferRows, rowCheck);
                      Value one =
                          arith::ExtUIOp::create(b, b.getI64Type(), kept);
                      Value newCounts = s.insert(
                          arith::AddIOp::create(b, taken, one), acc[2], {ex});
                      Value newTotals = acc[3];
                      if (capacity)
                        newTotals =
                            s.insert(arith::AddIOp::create(
                                         b, s.extract(acc[3], {ex}), one),
                                     acc[3], {ex});
                      Value slot32 =
                          arith::TruncIOp::create(b, b.getI32Type(), slot);
                      return SmallVector<Value>{
                          s.insert(slot32, acc[0], {t, j}),
                          s.insert(kept, acc[1], {t, j}), newCounts, newTotals};
                    });
              });
          return SmallVector<Value>{ranked[0], ranked[1],
                                    capacity ? ranked[3] : ranked[2]};
        });
    slots = walked[0];
    keep = walked[1];
    totals = walked[2];

    if (packed) {
      // Packed rows: expert e's block starts after those of experts < e;
      // dropped assignments keep their -1.
      Value offsets = e.loop(
          numExperts, {e.filled({numExperts}, e.i64(0)), e.i64(0)},
          [&](ImplicitLocOpBuilder &b, Value ex, ValueRange acc) {
            Emitter s(b.getLoc(), b);
            Value next =
                arith::AddIOp::create(b, acc[1], s.extract(totals, {ex}));
            return SmallVector<Value>{s.insert(acc[1], acc[0], {ex}), next};
          })[0];
      slots = e.loop(
          tokens, {slots},
          [&](ImplicitLocOpBuilder &b, Value t, ValueRange acc) {
            Emitter s(b.getLoc(), b);
            return s.loop(
                k, acc, [&](ImplicitLocOpBuilder &b, Value j, ValueRange acc) {
                  Emitter s(b.getLoc(), b);
                  Value ex = s.extractIndex(experts, {t, j});
                  Value off = arith::TruncIOp::create(b, b.getI32Type(),
                                                      s.extract(offsets, {ex}));
                  Value old = s.extract(acc[0], {t, j});
                  Value row = arith::SelectOp::create(
                      b, s.extract(keep, {t, j}),
                      arith::AddIOp::create(b, old, off), old);
                  assertInRange(
                      b,
                      arith::SelectOp::create(b, s.extract(keep, {t, j}), row,
                                              s.i32(0)),
                      0, bufferRows, rowCheck);
                  return SmallVector<Value>{s.insert(row, acc[0], {t, j})};
                });
          })[0];
    }
    rewriter.replaceOp(op, {slots, keep, totals});
    return success();
  }
};

struct LowerRouteRows : CheckedPattern<RouteRowsOp> {
  using CheckedPattern::CheckedPattern;

  LogicalResult
  matchAndRewrite(RouteRowsOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Emitter e(op.getLoc(), rewriter);
    Value probs = adaptor.getProbs();
    int64_t tokens = op.getProbs().getType().getDimSize(0);
    int64_t numExperts = op.getProbs().getType().getDimSize(1);
    int64_t k = op.getK(), groupSize = op.getGroupSize();
    int64_t groups = tokens / groupSize;
    int64_t rows = op.getRowToken().getType().getDimSize(0);
    std::optional<int64_t> capacity = op.getCapacity();
    bool byProbability = op.getPriority() == Priority::BatchPrioritized;
    GateRule rule{adaptor.getGateScores(), op.getNormalize(),
                  op.getGateScale().convertToDouble()};
    // The batch-prioritized ranking reads the unbiased scores (spec §8).
    Value rankScores = rule.source ? rule.source : probs;
    std::string expertCheck = checkMessage(
        checks, op, "chose an expert outside [0, " + Twine(numExperts) + ")");
    std::string rowCheck = checkMessage(
        checks, op,
        "placed an assignment outside rows [0, " + Twine(rows) + ")");

    Value experts = e.filled({tokens, k}, e.i32(0));
    Value gates = e.filled({tokens, k}, e.f32(0));
    // Batch-prioritized ranking needs every top-1 probability of the group
    // before the walk: the choice is then a pass of its own.
    Value order;
    if (byProbability) {
      SmallVector<Value> chosen = e.loop(
          tokens, {experts, gates},
          [&](ImplicitLocOpBuilder &b, Value t, ValueRange acc) {
            return chooseTopK(b, probs, t, k, rule, acc[0], acc[1],
                              expertCheck);
          });
      experts = chosen[0];
      gates = chosen[1];
      order = priorityOrder(e, experts, rankScores, tokens, groupSize);
    }

    // rank[t, j]: the assignments to the same expert with the same choice
    // rank that come before (t, j) in the group's walk. within[t, j]: the
    // assignment's row inside its expert's part, for the kept ones.
    Value rank = e.filled({tokens, k}, e.i64(0));
    Value within = e.filled({tokens, k}, e.i64(0));
    Value keep = e.filled({tokens, k}, e.boolean(false));
    Value totals = e.filled({numExperts}, e.i64(0));
    SmallVector<Value> walked = e.loop(
        groups, {experts, gates, rank, within, keep, totals},
        [&](ImplicitLocOpBuilder &b, Value g, ValueRange acc) {
          Emitter s(b.getLoc(), b);
          Value base = arith::MulIOp::create(b, g, s.index(groupSize));
          // One pass over the group's tokens: the choice (position
          // priority) and the counts per (choice rank, expert).
          SmallVector<Value> counted = s.loop(
              groupSize,
              {acc[0], acc[1], acc[2], s.filled({k, numExperts}, s.i64(0))},
              [&](ImplicitLocOpBuilder &b, Value i, ValueRange acc) {
                Emitter s(b.getLoc(), b);
                Value pos = arith::AddIOp::create(b, base, i);
                Value t = order ? s.extract(order, {pos}) : pos;
                SmallVector<Value> chosen{acc[0], acc[1]};
                if (!order)
                  chosen = chooseTopK(b, probs, t, k, rule, acc[0],
                                      acc[1], expertCheck);
                SmallVector<Value> ranked = s.loop(
                    k, {acc[2], acc[3]},
                    [&](ImplicitLocOpBuilder &b, Value j, ValueRange acc) {
                      Emitter s(b.getLoc(), b);
                      Value ex = s.extractIndex(chosen[0], {t, j});
                      Value before = s.extract(acc[1], {j, ex});
                      Value next = arith::AddIOp::create(b, before, s.i64(1));
                      return SmallVector<Value>{
                          s.insert(before, acc[0], {t, j}),
                          s.insert(next, acc[1], {j, ex})};
                    });
                return SmallVector<Value>{chosen[0], chosen[1], ranked[0],
                                          ranked[1]};
              });
          Value counts = counted[3];
          // Per expert: where each choice rank starts in the group's ranking
          // of that expert, and the rows earlier groups kept.
          SmallVector<Value> scanned = s.loop(
              numExperts,
              {s.filled({k, numExperts}, s.i64(0)),
               s.filled({numExperts}, s.i64(0)), acc[5]},
              [&](ImplicitLocOpBuilder &b, Value ex, ValueRange acc) {
                Emitter s(b.getLoc(), b);
                SmallVector<Value> run = s.loop(
                    k, {acc[0], s.i64(0)},
                    [&](ImplicitLocOpBuilder &b, Value j, ValueRange acc) {
                      Emitter s(b.getLoc(), b);
                      Value next = arith::AddIOp::create(
                          b, acc[1], s.extract(counts, {j, ex}));
                      return SmallVector<Value>{
                          s.insert(acc[1], acc[0], {j, ex}), next};
                    });
                Value kept = run[1];
                if (capacity)
                  kept = arith::MinSIOp::create(b, kept, s.i64(*capacity));
                Value earlier = s.extract(acc[2], {ex});
                return SmallVector<Value>{
                    run[0], s.insert(earlier, acc[1], {ex}),
                    s.insert(arith::AddIOp::create(b, earlier, kept), acc[2],
                             {ex})};
              });
          Value starts = scanned[0], earlier = scanned[1];
          // Each assignment's slot in the group, whether it is kept, and its
          // row inside the expert's part.
          SmallVector<Value> placed = s.loop(
              groupSize, {acc[3], acc[4]},
              [&](ImplicitLocOpBuilder &b, Value i, ValueRange acc) {
                Emitter s(b.getLoc(), b);
                Value t = arith::AddIOp::create(b, base, i);
                return s.loop(
                    k, acc,
                    [&](ImplicitLocOpBuilder &b, Value j, ValueRange acc) {
                      Emitter s(b.getLoc(), b);
                      Value ex = s.extractIndex(counted[0], {t, j});
                      Value slot = arith::AddIOp::create(
                          b, s.extract(starts, {j, ex}),
                          s.extract(counted[2], {t, j}));
                      Value kept =
                          capacity ? arith::CmpIOp::create(
                                         b, arith::CmpIPredicate::slt, slot,
                                         s.i64(*capacity))
                                         .getResult()
                                   : s.boolean(true);
                      Value row = arith::AddIOp::create(
                          b, s.extract(earlier, {ex}), slot);
                      return SmallVector<Value>{
                          s.insert(row, acc[0], {t, j}),
                          s.insert(kept, acc[1], {t, j})};
                    });
              });
          return SmallVector<Value>{counted[0], counted[1], counted[2],
                                    placed[0],  placed[1],  scanned[2]};
        });
    experts = walked[0];
    gates = walked[1];
    within = walked[3];
    keep = walked[4];
    totals = walked[5];

    // The rows: each expert's part starts at its (block-aligned) offset.
    Value offsets = exclusiveScan(e, totals, numExperts, op.getBlock());
    SmallVector<Value> sorted = e.loop(
        tokens, {e.filled({rows}, e.i32(-1)), e.filled({rows}, e.f32(0))},
        [&](ImplicitLocOpBuilder &b, Value t, ValueRange acc) {
          Emitter s(b.getLoc(), b);
          return s.loop(
              k, acc, [&](ImplicitLocOpBuilder &b, Value j, ValueRange acc) {
                Emitter s(b.getLoc(), b);
                auto ifOp = scf::IfOp::create(
                    b, s.extract(keep, {t, j}),
                    [&](OpBuilder &nested, Location loc) {
                      ImplicitLocOpBuilder nb(loc, nested);
                      Emitter s(loc, nb);
                      Value ex = s.extractIndex(experts, {t, j});
                      Value row = arith::AddIOp::create(
                          nb, s.extract(offsets, {ex}),
                          s.extract(within, {t, j}));
                      Value at = arith::IndexCastOp::create(
                          nb, nb.getIndexType(), row);
                      assertInRange(nb, at, 0, rows, rowCheck);
                      Value token =
                          arith::IndexCastOp::create(nb, nb.getI32Type(), t);
                      scf::YieldOp::create(
                          nb, ValueRange{s.insert(token, acc[0], {at}),
                                         s.insert(s.extract(gates, {t, j}),
                                                  acc[1], {at})});
                    },
                    [&](OpBuilder &nested, Location loc) {
                      scf::YieldOp::create(nested, loc, acc);
                    });
                return SmallVector<Value>(ifOp.getResults());
              });
        });
    rewriter.replaceOp(op, {experts, gates, keep, totals, offsets, sorted[0],
                            sorted[1]});
    return success();
  }
};

/// c = scores + bias, then every expert outside the token's `keep` best
/// groups set to -inf (spec §8). Per token: the group scores from keys
/// where NaN is -inf, then `keep` rounds of "best remaining group" (score
/// descending, group ascending) mark the kept groups.
struct LowerChoiceScores : OpConversionPattern<ChoiceScoresOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(ChoiceScoresOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Emitter e(op.getLoc(), rewriter);
    ImplicitLocOpBuilder &b = e.builder();
    Type f32 = b.getF32Type();
    Value scores = adaptor.getScores();
    auto type = op.getScores().getType();
    int64_t tokens = type.getDimSize(0), experts = type.getDimSize(1);
    Value c = scores;
    if (Value bias = adaptor.getBias()) {
      MLIRContext *ctx = b.getContext();
      AffineMap id = AffineMap::getMultiDimIdentityMap(2, ctx);
      AffineMap col = AffineMap::get(2, 0, {getAffineDimExpr(1, ctx)}, ctx);
      c = e.generic({scores, bias}, tensor::EmptyOp::create(b, type.getShape(), f32),
                    {id, col, id},
                    {IteratorType::parallel, IteratorType::parallel},
                    [](ImplicitLocOpBuilder &ib, ValueRange args) -> Value {
                      return arith::AddFOp::create(ib, args[0], args[1]);
                    });
    }
    int64_t groups = op.getNumGroups(), keep = op.getKeep();
    if (keep >= groups) {
      rewriter.replaceOp(op, c);
      return success();
    }
    int64_t perGroup = experts / groups;
    bool top2 = op.getGroupScore() == GroupScore::Top2Sum;
    Value negInf = e.f32(-std::numeric_limits<float>::infinity());
    Value masked = e.loop(
        tokens, {c}, [&](ImplicitLocOpBuilder &b, Value t, ValueRange acc) {
          Emitter s(b.getLoc(), b);
          // Group scores: the largest key, or the two largest summed.
          Value groupScores = s.filled({groups}, s.f32(0));
          groupScores = s.loop(
              groups, {groupScores},
              [&](ImplicitLocOpBuilder &b, Value g, ValueRange gs) {
                Emitter s(b.getLoc(), b);
                Value base = arith::MulIOp::create(b, g, s.index(perGroup));
                SmallVector<Value> best = s.loop(
                    perGroup, {negInf, negInf},
                    [&](ImplicitLocOpBuilder &b, Value i, ValueRange m) {
                      Emitter s(b.getLoc(), b);
                      Value ex = arith::AddIOp::create(b, base, i);
                      Value key = rankKey(b, s.extract(acc[0], {t, ex}));
                      Value first = arith::CmpFOp::create(
                          b, arith::CmpFPredicate::OGT, key, m[0]);
                      Value second = arith::CmpFOp::create(
                          b, arith::CmpFPredicate::OGT, key, m[1]);
                      // A new best pushes the old best to second place.
                      Value newSecond = arith::SelectOp::create(
                          b, first, m[0],
                          arith::SelectOp::create(b, second, key, m[1]));
                      Value newFirst =
                          arith::SelectOp::create(b, first, key, m[0]);
                      return SmallVector<Value>{newFirst, newSecond};
                    });
                // +inf + -inf is NaN: rank it as -inf like a NaN score.
                Value score =
                    top2 ? rankKey(b, arith::AddFOp::create(b, best[0], best[1]))
                         : best[0];
                return SmallVector<Value>{s.insert(score, gs[0], {g})};
              })[0];
          // The `keep` best groups, one after the other in the order of
          // nextInOrder (score descending, ties to the lower group).
          Value kept = s.filled({groups}, s.boolean(false));
          kept = s.loop(
              keep,
              {kept, s.f32(std::numeric_limits<float>::infinity()),
               s.index(-1)},
              [&](ImplicitLocOpBuilder &b, Value, ValueRange k) {
                Emitter s(b.getLoc(), b);
                SmallVector<Value> best = nextInOrder(
                    b, groups, k[1], k[2],
                    [&](ImplicitLocOpBuilder &b,
                        Value g) -> std::pair<Value, Value> {
                      Emitter s(b.getLoc(), b);
                      return {g, s.extract(groupScores, {g})};
                    });
                // Some group is always left (keep <= G); the clamp keeps
                // the store in bounds whatever happens.
                Value group = arith::MaxSIOp::create(b, best[1], s.index(0));
                return SmallVector<Value>{
                    s.insert(s.boolean(true), k[0], {group}), best[0],
                    best[1]};
              })[0];
          // Experts of the other groups can never be chosen.
          return s.loop(
              experts, {acc[0]},
              [&](ImplicitLocOpBuilder &b, Value ex, ValueRange m) {
                Emitter s(b.getLoc(), b);
                Value g = arith::DivUIOp::create(b, ex, s.index(perGroup));
                Value in = s.extract(kept, {g});
                Value v = arith::SelectOp::create(
                    b, in, s.extract(m[0], {t, ex}), negInf);
                return SmallVector<Value>{s.insert(v, m[0], {t, ex})};
              });
        })[0];
    rewriter.replaceOp(op, masked);
    return success();
  }
};

/// Expert choice (spec §8): per group and expert, `capacity` rounds pick the
/// best token not yet taken (key descending, token ascending; NaN as -inf),
/// writing the token-major results as the rounds go: the r-th pick of
/// expert e in group g takes slot g·C + r.
struct LowerExpertChoice : CheckedPattern<ExpertChoiceOp> {
  using CheckedPattern::CheckedPattern;

  LogicalResult
  matchAndRewrite(ExpertChoiceOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Emitter e(op.getLoc(), rewriter);
    Value probs = adaptor.getProbs();
    auto type = op.getProbs().getType();
    int64_t tokens = type.getDimSize(0), experts = type.getDimSize(1);
    int64_t groupSize = op.getGroupSize(), capacity = op.getCapacity();
    int64_t groups = tokens / groupSize;
    float scale = float(op.getGateScale().convertToDouble());
    std::string check = checkMessage(
        checks, op, "took a token outside [0, " + Twine(tokens) + ")");

    // experts[t, e] = e; the rest starts as "not taken".
    Value ids = e.filled({tokens, experts}, e.i32(0));
    ids = e.loop(tokens, {ids},
                 [&](ImplicitLocOpBuilder &b, Value t, ValueRange acc) {
                   Emitter s(b.getLoc(), b);
                   return s.loop(
                       experts, {acc[0]},
                       [&](ImplicitLocOpBuilder &b, Value ex, ValueRange m) {
                         Emitter s(b.getLoc(), b);
                         Value id = arith::IndexCastOp::create(
                             b, b.getI32Type(), ex);
                         return SmallVector<Value>{s.insert(id, m[0], {t, ex})};
                       });
                 })[0];
    Value slots = e.filled({tokens, experts}, e.i32(-1));
    Value keep = e.filled({tokens, experts}, e.boolean(false));
    Value gates = e.filled({tokens, experts}, e.f32(0));
    Value inf = e.f32(std::numeric_limits<float>::infinity());
    Value none = e.index(-1);
    SmallVector<Value> picked = e.loop(
        groups, {slots, keep, gates},
        [&](ImplicitLocOpBuilder &b, Value g, ValueRange acc) {
          Emitter s(b.getLoc(), b);
          Value start = arith::MulIOp::create(b, g, s.index(groupSize));
          return s.loop(
              experts, {acc[0], acc[1], acc[2]},
              [&](ImplicitLocOpBuilder &b, Value ex, ValueRange byExpert) {
                Emitter s(b.getLoc(), b);
                // Round r: the best token after the previous pick in the
                // order (key descending, token ascending).
                SmallVector<Value> rounds = s.loop(
                    capacity,
                    {byExpert[0], byExpert[1], byExpert[2], inf, none},
                    [&](ImplicitLocOpBuilder &b, Value r, ValueRange c) {
                      Emitter s(b.getLoc(), b);
                      SmallVector<Value> best = nextInOrder(
                          b, groupSize, c[3], c[4],
                          [&](ImplicitLocOpBuilder &b,
                              Value i) -> std::pair<Value, Value> {
                            Emitter s(b.getLoc(), b);
                            Value t = arith::AddIOp::create(b, start, i);
                            return {t, s.extract(probs, {t, ex})};
                          });
                      Value t = best[1];
                      assertInRange(b, t, 0, tokens, check);
                      Value slot = arith::AddIOp::create(
                          b, arith::MulIOp::create(b, g, s.index(capacity)), r);
                      Value slot32 =
                          arith::IndexCastOp::create(b, b.getI32Type(), slot);
                      Value gate = best[2];
                      if (scale != 1.0f)
                        gate = arith::MulFOp::create(b, gate, s.f32(scale));
                      return SmallVector<Value>{
                          s.insert(slot32, c[0], {t, ex}),
                          s.insert(s.boolean(true), c[1], {t, ex}),
                          s.insert(gate, c[2], {t, ex}), best[0], t};
                    });
                return SmallVector<Value>{rounds[0], rounds[1], rounds[2]};
              });
        });
    Value counts = e.filled({experts}, e.i64(groups * capacity));
    rewriter.replaceOp(op, {ids, picked[0], picked[1], picked[2], counts});
    return success();
  }
};

/// Sums `fn(element)` over a whole tensor into a 0-d f64 or i64 tensor.
static Value
reduceAll(Emitter &e, Value tensor, Type accType,
          llvm::function_ref<Value(ImplicitLocOpBuilder &, Value)> fn) {
  ImplicitLocOpBuilder &b = e.builder();
  auto type = cast<RankedTensorType>(tensor.getType());
  int64_t rank = type.getRank();
  Value init = e.filled({}, e.zero(accType));
  SmallVector<AffineMap> maps{b.getMultiDimIdentityMap(rank),
                              AffineMap::get(rank, 0, {}, b.getContext())};
  SmallVector<IteratorType> iters(rank, IteratorType::reduction);
  return e.generic(tensor, init, maps, iters,
                   [&](ImplicitLocOpBuilder &ib, ValueRange args) -> Value {
                     Value v = fn(ib, args[0]);
                     if (isa<FloatType>(accType))
                       return arith::AddFOp::create(ib, v, args[1]);
                     return arith::AddIOp::create(ib, v, args[1]);
                   });
}

/// A 0-d f64 tensor scaled by `factor` and rounded to a 0-d f32 tensor.
static Value scaleToF32(Emitter &e, Value sum, double factor) {
  Value scale = e.f64(factor);
  return e.map(sum, e.builder().getF32Type(),
               [&](ImplicitLocOpBuilder &ib, ValueRange args) -> Value {
                 return arith::TruncFOp::create(
                     ib, ib.getF32Type(),
                     arith::MulFOp::create(ib, args[0], scale));
               });
}

struct LowerRouterZLoss : OpConversionPattern<RouterZLossOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(RouterZLossOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Emitter e(op.getLoc(), rewriter);
    Type f64 = rewriter.getF64Type();
    Value sum = reduceAll(e, adaptor.getLse(), f64,
                          [&](ImplicitLocOpBuilder &ib, Value v) -> Value {
                            Value w = arith::ExtFOp::create(ib, f64, v);
                            return arith::MulFOp::create(ib, w, w);
                          });
    int64_t tokens = op.getLse().getType().getDimSize(0);
    rewriter.replaceOp(op, scaleToF32(e, sum, 1.0 / double(tokens)));
    return success();
  }
};

struct LowerCountDropped : OpConversionPattern<CountDroppedOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(CountDroppedOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Emitter e(op.getLoc(), rewriter);
    Type i64 = rewriter.getI64Type();
    if (op.getTokens()) {
      // Tokens with no kept entry: per row, "any kept", then the rows
      // without one.
      auto type = op.getKeep().getType();
      MLIRContext *ctx = rewriter.getContext();
      AffineMap in = AffineMap::getMultiDimIdentityMap(2, ctx);
      AffineMap out = AffineMap::get(2, 0, {getAffineDimExpr(0, ctx)}, ctx);
      Value any = e.generic(
          adaptor.getKeep(), e.filled({type.getDimSize(0)}, e.boolean(false)),
          {in, out}, {IteratorType::parallel, IteratorType::reduction},
          [](ImplicitLocOpBuilder &ib, ValueRange args) -> Value {
            return arith::OrIOp::create(ib, args[0], args[1]);
          });
      rewriter.replaceOp(
          op, reduceAll(e, any, i64,
                        [&](ImplicitLocOpBuilder &ib, Value taken) -> Value {
                          Value one = arith::ConstantIntOp::create(ib, 1, 1);
                          return arith::ExtUIOp::create(
                              ib, ib.getI64Type(),
                              arith::XOrIOp::create(ib, taken, one));
                        }));
      return success();
    }
    Value count =
        reduceAll(e, adaptor.getKeep(), i64,
                  [&](ImplicitLocOpBuilder &ib, Value kept) -> Value {
                    Value one = arith::ConstantIntOp::create(ib, 1, 1);
                    Value dropped = arith::XOrIOp::create(ib, kept, one);
                    return arith::ExtUIOp::create(ib, ib.getI64Type(), dropped);
                  });
    rewriter.replaceOp(op, count);
    return success();
  }
};

struct LowerLoadBalanceLoss : OpConversionPattern<LoadBalanceLossOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(LoadBalanceLossOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Emitter e(op.getLoc(), rewriter);
    Type f64 = rewriter.getF64Type();
    Value probs = adaptor.getProbs(), experts = adaptor.getExperts();
    int64_t tokens = op.getProbs().getType().getDimSize(0);
    int64_t numExperts = op.getProbs().getType().getDimSize(1);
    int64_t groupSize = op.getGroupSize();
    int64_t groups = tokens / groupSize;

    // Per group g and expert e: top-1 counts and probability sums.
    Value counts = e.filled({groups, numExperts}, e.f64(0));
    Value mass = e.filled({groups, numExperts}, e.f64(0));
    Value size = e.index(groupSize);
    SmallVector<Value> sums = e.loop(
        tokens, {counts, mass},
        [&](ImplicitLocOpBuilder &b, Value t, ValueRange acc) {
          Emitter s(b.getLoc(), b);
          Value g = arith::DivUIOp::create(b, t, size);
          Value first = s.extractIndex(experts, {t, s.index(0)});
          Value c =
              arith::AddFOp::create(b, s.extract(acc[0], {g, first}), s.f64(1));
          Value newCounts = s.insert(c, acc[0], {g, first});
          // With `normalize`, the token's scores over their sum (§8).
          Value total = s.f64(1);
          if (op.getNormalize())
            total = s.loop(numExperts, {s.f64(0)},
                           [&](ImplicitLocOpBuilder &b, Value ex, ValueRange m) {
                             Emitter s(b.getLoc(), b);
                             Value p = arith::ExtFOp::create(
                                 b, f64, s.extract(probs, {t, ex}));
                             return SmallVector<Value>{
                                 arith::AddFOp::create(b, m[0], p)};
                           })[0];
          Value newMass = s.loop(
              numExperts, {acc[1]},
              [&](ImplicitLocOpBuilder &b, Value ex, ValueRange m) {
                Emitter s(b.getLoc(), b);
                Value p =
                    arith::ExtFOp::create(b, f64, s.extract(probs, {t, ex}));
                if (op.getNormalize())
                  p = arith::DivFOp::create(b, p, total);
                Value v = arith::AddFOp::create(b, s.extract(m[0], {g, ex}), p);
                return SmallVector<Value>{s.insert(v, m[0], {g, ex})};
              })[0];
          return SmallVector<Value>{newCounts, newMass};
        });
    // Σ_g Σ_e (count/S)·(mass/S), times E, averaged over the G groups.
    Value product =
        e.map({sums[0], sums[1]}, f64,
              [](ImplicitLocOpBuilder &ib, ValueRange args) -> Value {
                return arith::MulFOp::create(ib, args[0], args[1]);
              });
    Value total = reduceAll(e, product, f64,
                            [](ImplicitLocOpBuilder &, Value v) { return v; });
    double scale = double(numExperts) /
                   (double(groupSize) * double(groupSize) * double(groups));
    rewriter.replaceOp(op, scaleToF32(e, total, scale));
    return success();
  }
};

} // namespace

void mlir::moe::lowering::populateLowerRoutingPatterns(
    RewritePatternSet &patterns, bool cpuKernels, bool checks,
    bool parallelLoops) {
  patterns.add<LowerRoute>(patterns.getContext(), cpuKernels);
  patterns.add<LowerTopK, LowerAssignSlots>(patterns.getContext(), checks);
  patterns.add<LowerChoiceScores>(patterns.getContext());
  if (parallelLoops) {
    populateParallelRoutingPatterns(patterns, checks);
    return;
  }
  patterns.add<LowerRouteRows, LowerExpertChoice>(patterns.getContext(),
                                                  checks);
  patterns.add<LowerRouterZLoss, LowerCountDropped, LowerLoadBalanceLoss>(
      patterns.getContext());
}
