//===- LowerRoutingParallel.cpp - moe.route_rows as parallel loops --*- C++
//-*-===//
//
// The routing step of the GPU pipeline: moe.route_rows as scf.parallel
// loops over buffers, each of which the GPU mapping turns into one kernel
// (or, with host loops, into host loops of the same structure), and the
// counting half as moe.place_rows_buffers, which moe-place-rows-to-gpu
// lowers after the buffer passes (PlaceRowsToGpu.cpp):
//
//   choose   [T]   top-k of every token and its gates; for batch-prioritized
//                    routing also its ranking key
//   rank     [T]   batch-prioritized only: each token's position in its
//                    group's ranking (the tokens ahead of it), scattered to
//                    order[]
//
// No loop carries state from one element to the next. The statistics are
// chunked sums: partial sums in parallel, then one element. The results
// equal the sequential lowering's (LowerRouting.cpp) element for element.
//
//===----------------------------------------------------------------------===//

#include "Emitter.h"
#include "moe/IR/MoEOps.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::lowering;
using namespace mlir::moe::lowering::ix;

namespace {

/// The inner dimension of every loop (a warp on the GPU).
constexpr int64_t kLanes = 32;
/// Ranking positions per counting chunk: `count` and `place` walk at most
/// this many positions per element.
constexpr int64_t kChunk = 128;

/// Builds memref code: buffers, loads and stores, and the loops.
class BufferCode {
public:
  explicit BufferCode(ImplicitLocOpBuilder &b) : b(b) {}

  Value index(int64_t v) { return arith::ConstantIndexOp::create(b, v); }
  Value i64(int64_t v) { return arith::ConstantIntOp::create(b, v, 64); }

  Value alloc(ArrayRef<int64_t> shape, Type elt) {
    return memref::AllocOp::create(b, MemRefType::get(shape, elt));
  }

  void parallel(int64_t n,
                llvm::function_ref<void(ImplicitLocOpBuilder &, Value)> body) {
    parallelFor(b, n, body);
  }

private:
  ImplicitLocOpBuilder &b;
};

/// Σ_{i in [lo, hi)} term(i), accumulated in `accType` (f64 or i64, the
/// type term returns) in index order.
Value sumRange(ImplicitLocOpBuilder &b, Value lo, Value hi, Type accType,
               llvm::function_ref<Value(ImplicitLocOpBuilder &, Value)> term) {
  bool isFloat = isa<FloatType>(accType);
  Value zero = isFloat
                   ? arith::ConstantFloatOp::create(b, cast<FloatType>(accType),
                                                    APFloat(0.0))
                         .getResult()
                   : arith::ConstantIntOp::create(b, accType, 0).getResult();
  auto loop = scf::ForOp::create(
      b, lo, hi, arith::ConstantIndexOp::create(b, 1), ValueRange{zero},
      [&](OpBuilder &nested, Location loc, Value i, ValueRange acc) {
        ImplicitLocOpBuilder ib(loc, nested);
        Value v = term(ib, i);
        Value next = isFloat ? arith::AddFOp::create(ib, acc[0], v).getResult()
                             : arith::AddIOp::create(ib, acc[0], v).getResult();
        scf::YieldOp::create(ib, next);
      });
  return loop.getResult(0);
}

/// Whether (key, index) comes before (otherKey, otherIndex) in the order
/// key descending, then index ascending (keys are never NaN).
Value comesBefore(ImplicitLocOpBuilder &b, Value key, Value index,
                  Value otherKey, Value otherIndex) {
  return arith::OrIOp::create(
      b, arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, key, otherKey),
      arith::AndIOp::create(
          b, arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, key, otherKey),
          arith::CmpIOp::create(b, arith::CmpIPredicate::ult, index,
                                otherIndex)));
}

/// The results of `op` as restrict tensors of `buffers` (one per result).
SmallVector<Value> asTensors(ImplicitLocOpBuilder &b, Operation *op,
                             ArrayRef<Value> buffers) {
  SmallVector<Value> results;
  for (auto [buffer, result] : llvm::zip(buffers, op->getResults()))
    results.push_back(bufferization::ToTensorOp::create(
        b, result.getType(), buffer, /*restrict=*/true, /*writable=*/true));
  return results;
}

/// 1 (i64) when `cond` holds, else 0.
Value one(ImplicitLocOpBuilder &b, Value cond) {
  return arith::ExtUIOp::create(b, b.getI64Type(), cond);
}
Value eq(ImplicitLocOpBuilder &b, Value x, Value y) {
  return arith::CmpIOp::create(b, arith::CmpIPredicate::eq, x, y);
}

/// What a token's element of the choice loop does before choosing (the
/// scores of its row, when the choice reads the router's probabilities
/// fused into its kernel), or null.
using RowPrologue = llvm::function_ref<void(ImplicitLocOpBuilder &, Value)>;

/// moe.route_rows over buffers: `probs` and `gateScores` (or null) are the
/// buffers it reads, `prologue` (or null) runs first in the choice loop's
/// element of each token. Returns the op's results as tensors.
SmallVector<Value> lowerRouteRows(ImplicitLocOpBuilder &b, RouteRowsOp op,
                                  Value probs, Value gateScores, bool checks,
                                  RowPrologue prologue) {
  BufferCode code(b);
  int64_t tokens = op.getProbs().getType().getDimSize(0);
  int64_t numExperts = op.getProbs().getType().getDimSize(1);
  int64_t k = op.getK(), groupSize = op.getGroupSize();
  int64_t rows = op.getRowToken().getType().getDimSize(0);
  int64_t block = op.getBlock();
  std::optional<int64_t> capacity = op.getCapacity();
  bool byProbability = op.getPriority() == Priority::BatchPrioritized;
  bool normalize = op.getNormalize();
  double gateScale = op.getGateScale().convertToDouble();
  std::string expertCheck = checkMessage(
      checks, op, "chose an expert outside [0, " + Twine(numExperts) + ")");
  std::string rowCheck = checkMessage(
      checks, op, "placed an assignment outside rows [0, " + Twine(rows) + ")");

  Type i32 = b.getI32Type(), i64 = b.getI64Type(), f32 = b.getF32Type();
  Value experts = code.alloc({tokens, k}, i32);
  Value gates = code.alloc({tokens, k}, f32);
  Value keep = code.alloc({tokens, k}, b.getI1Type());
  Value counts = code.alloc({numExperts}, i64);
  Value offsets = code.alloc({numExperts + 1}, i64);
  Value rowToken = code.alloc({rows}, i32);
  Value rowGate = code.alloc({rows}, f32);

  // choose: the token's k choices in order, then its gates (and, for
  // batch-prioritized routing, its ranking key: the unbiased score of its
  // first choice).
  Value keys = byProbability ? code.alloc({tokens}, f32) : Value();
  Value rankScores = gateScores ? gateScores : probs;
  code.parallel(tokens, [&](ImplicitLocOpBuilder &b, Value t) {
    if (prologue)
      prologue(b, t);
    Emitter s(b.getLoc(), b);
    SmallVector<Value> chosen = s.loop(
        k,
        {s.f32(std::numeric_limits<float>::infinity()), s.index(-1), s.f32(0)},
        [&](ImplicitLocOpBuilder &b, Value j, ValueRange c) {
          Emitter s(b.getLoc(), b);
          SmallVector<Value> best =
              nextInOrder(b, numExperts, c[0], c[1],
                          [&](ImplicitLocOpBuilder &b, Value ex) {
                            return std::make_pair(ex, load(b, probs, {t, ex}));
                          });
          if (gateScores)
            best[2] = load(b, gateScores,
                           {t, arith::MaxSIOp::create(b, best[1], s.index(0))});
          assertInRange(b, best[1], 0, numExperts, expertCheck);
          store(b, arith::IndexCastOp::create(b, b.getI32Type(), best[1]),
                experts, {t, j});
          store(b, best[2], gates, {t, j});
          return SmallVector<Value>{best[0], best[1],
                                    arith::AddFOp::create(b, c[2], best[2])};
        });
    if (keys) {
      Value first = toIndex(b, load(b, experts, {t, cst(b, 0)}));
      store(b, rankKey(b, load(b, rankScores, {t, first})), keys, {t});
    }
    if (!normalize && gateScale == 1.0)
      return;
    forEach(b, s.index(0), s.index(k), [&](ImplicitLocOpBuilder &b, Value j) {
      Emitter s(b.getLoc(), b);
      Value v = load(b, gates, {t, j});
      if (normalize)
        v = arith::DivFOp::create(b, v, chosen[2]);
      if (gateScale != 1.0)
        v = arith::MulFOp::create(b, v, s.f32(float(gateScale)));
      store(b, v, gates, {t, j});
    });
  });

  // The token at ranking position p: its group's tokens by descending
  // unbiased top-1 score for batch-prioritized routing (each token's
  // position is the number of tokens ahead of it), else p itself.
  Value order;
  if (byProbability) {
    order = code.alloc({tokens}, i32);
    code.parallel(tokens, [&](ImplicitLocOpBuilder &b, Value t) {
      Value base = mul(b, div(b, t, groupSize), groupSize);
      Value mine = load(b, keys, {t});
      Value ahead = sumRange(
          b, base, add(b, base, cst(b, groupSize)), b.getI64Type(),
          [&](ImplicitLocOpBuilder &b, Value u) {
            return one(b, comesBefore(b, load(b, keys, {u}), u, mine, t));
          });
      store(b, arith::IndexCastOp::create(b, b.getI32Type(), t), order,
            {add(b, base, toIndex(b, ahead))});
    });
  }

  // Counting, prefix sums and placement: kernels that share memory
  // within a block, built after the buffer passes.
  PlaceRowsBuffersOp::create(
      b, experts, gates, order, keep, counts, offsets, rowToken, rowGate,
      groupSize, capacity ? b.getI64IntegerAttr(*capacity) : IntegerAttr(),
      block, rowCheck.empty() ? StringAttr() : b.getStringAttr(rowCheck));

  return asTensors(b, op,
                   {experts, gates, keep, counts, offsets, rowToken, rowGate});
}

struct LowerRouteRowsParallel : CheckedPattern<RouteRowsOp> {
  using CheckedPattern::CheckedPattern;

  LogicalResult
  matchAndRewrite(RouteRowsOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    Value probs = readOnlyBuffer(b, adaptor.getProbs());
    Value gateScores = readOnlyBuffer(b, adaptor.getGateScores());
    rewriter.replaceOp(op, lowerRouteRows(b, op, probs, gateScores, checks,
                                          /*prologue=*/nullptr));
    return success();
  }
};

/// Σ_{i in [0, n)} term(i) in `accType` (f64 or i64) as two loops: partial
/// sums of chunks of kChunk elements in parallel, then one element that
/// adds the partial sums and stores finish(total) into a new 0-d buffer of
/// `resultType`'s element type, which it returns.
Value chunkedSum(
    ImplicitLocOpBuilder &b, int64_t n, Type accType,
    llvm::function_ref<Value(ImplicitLocOpBuilder &, Value)> term,
    Type resultType,
    llvm::function_ref<Value(ImplicitLocOpBuilder &, Value)> finish) {
  BufferCode code(b);
  int64_t chunks = std::max<int64_t>(1, (n + kChunk - 1) / kChunk);
  Value partial = code.alloc({chunks}, accType);
  code.parallel(chunks, [&](ImplicitLocOpBuilder &b, Value c) {
    Value lo = mul(b, c, kChunk);
    Value hi = arith::MinUIOp::create(b, add(b, lo, cst(b, kChunk)), cst(b, n));
    store(b, sumRange(b, lo, hi, accType, term), partial, {c});
  });
  Value result = memref::AllocOp::create(b, MemRefType::get({}, resultType));
  code.parallel(1, [&](ImplicitLocOpBuilder &b, Value) {
    Value total = sumRange(b, cst(b, 0), cst(b, chunks), accType,
                           [&](ImplicitLocOpBuilder &b, Value c) {
                             return load(b, partial, {c});
                           });
    store(b, finish(b, total), result, {});
  });
  return result;
}

/// The 0-d tensor of `type` holding `buffer`.
Value asTensor(ImplicitLocOpBuilder &b, Type type, Value buffer) {
  return bufferization::ToTensorOp::create(b, type, buffer, /*restrict=*/true,
                                           /*writable=*/true);
}

/// f64 `total` · factor, rounded to f32.
Value scaled(ImplicitLocOpBuilder &b, Value total, double factor) {
  Value f = arith::ConstantFloatOp::create(b, b.getF64Type(), APFloat(factor));
  return arith::TruncFOp::create(b, b.getF32Type(),
                                 arith::MulFOp::create(b, total, f));
}

/// The router logits, logits[t, e] = Σ_d x[t, d] · router[e, d] in f32, as
/// one contraction that reads the router as it is ([E, D]: no transposed
/// copy).
Value routerLogits(Emitter &e, RouteOp op, Value input, Value router) {
  ImplicitLocOpBuilder &b = e.builder();
  Type f32 = b.getF32Type();
  int64_t tokens = op.getInput().getType().getDimSize(0);
  int64_t experts = op.getRouter().getType().getDimSize(0);
  MLIRContext *context = b.getContext();
  // Dims (t, e, d).
  auto map = [&](unsigned i, unsigned j) {
    return AffineMap::get(
        3, 0, {getAffineDimExpr(i, context), getAffineDimExpr(j, context)},
        context);
  };
  return e.generic(
      {input, router}, e.filled({tokens, experts}, e.f32(0)),
      {map(0, 2), map(1, 2), map(0, 1)},
      {utils::IteratorType::parallel, utils::IteratorType::parallel,
       utils::IteratorType::reduction},
      [&](ImplicitLocOpBuilder &ib, ValueRange args) -> Value {
        Emitter s(ib.getLoc(), ib);
        Value x = s.castFloat(args[0], f32);
        Value w = s.castFloat(args[1], f32);
        return arith::AddFOp::create(ib, args[2],
                                     arith::MulFOp::create(ib, x, w));
      });
}

/// The scores of token t from its row of `logits` [T, E]: its max, Σ exp,
/// probabilities (softmax, or the sigmoid scores) into `probs` and
/// log-sum-exp into `lse`. The same operations in the same order as the
/// linalg form of moe.route (max, then the sum of exp(l - max) over the
/// experts in order), so the same numbers.
void scoreRow(ImplicitLocOpBuilder &b, Value t, Value logits, Value probs,
              Value lse, int64_t experts, bool sigmoidScores) {
  Emitter s(b.getLoc(), b);
  auto logit = [&](ImplicitLocOpBuilder &b, Value ex) {
    return load(b, logits, {t, ex});
  };
  Value max = s.loop(experts, {s.f32(-std::numeric_limits<float>::infinity())},
                     [&](ImplicitLocOpBuilder &b, Value ex, ValueRange acc) {
                       return SmallVector<Value>{
                           arith::MaximumFOp::create(b, logit(b, ex), acc[0])};
                     })[0];
  auto expOf = [&](ImplicitLocOpBuilder &b, Value ex) -> Value {
    return math::ExpOp::create(b, arith::SubFOp::create(b, logit(b, ex), max));
  };
  Value sum = s.loop(experts, {s.f32(0)},
                     [&](ImplicitLocOpBuilder &b, Value ex, ValueRange acc) {
                       return SmallVector<Value>{
                           arith::AddFOp::create(b, expOf(b, ex), acc[0])};
                     })[0];
  forEach(
      b, s.index(0), s.index(experts), [&](ImplicitLocOpBuilder &b, Value ex) {
        Value p = sigmoidScores
                      ? sigmoid(b, logit(b, ex))
                      : arith::DivFOp::create(b, expOf(b, ex), sum).getResult();
        store(b, p, probs, {t, ex});
      });
  store(b, arith::AddFOp::create(b, max, math::LogOp::create(b, sum)), lse,
        {t});
}

/// The logits, then the probability and log-sum-exp buffers of moe.route,
/// whose rows `scoreRows` fills (one loop element per token).
struct RouterBuffers {
  Value logits, logitsBuffer, probs, lse;

  RouterBuffers(Emitter &e, RouteOp op, Value input, Value router) {
    ImplicitLocOpBuilder &b = e.builder();
    int64_t tokens = op.getInput().getType().getDimSize(0);
    int64_t experts = op.getRouter().getType().getDimSize(0);
    logits = routerLogits(e, op, input, router);
    logitsBuffer = readOnlyBuffer(b, logits);
    BufferCode code(b);
    probs = code.alloc({tokens, experts}, b.getF32Type());
    lse = code.alloc({tokens}, b.getF32Type());
    sigmoidScores = op.getScoreFunction() == ScoreFunction::Sigmoid;
    numExperts = experts;
  }
  void scoreRows(ImplicitLocOpBuilder &b, Value t) const {
    scoreRow(b, t, logitsBuffer, probs, lse, numExperts, sigmoidScores);
  }
  /// moe.route's results.
  SmallVector<Value> results(ImplicitLocOpBuilder &b, RouteOp op) const {
    return {logits,
            bufferization::ToTensorOp::create(b, op.getProbs().getType(), probs,
                                              /*restrict=*/true,
                                              /*writable=*/true),
            bufferization::ToTensorOp::create(b, op.getLse().getType(), lse,
                                              /*restrict=*/true,
                                              /*writable=*/true)};
  }

private:
  bool sigmoidScores;
  int64_t numExperts;
};

/// moe.route: the logits' contraction, then one element per token for its
/// scores (one kernel where the linalg form takes two fills, two reductions
/// and three maps).
struct LowerRouteParallel : OpConversionPattern<RouteOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(RouteOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Emitter e(op.getLoc(), rewriter);
    ImplicitLocOpBuilder &b = e.builder();
    RouterBuffers router(e, op, adaptor.getInput(), adaptor.getRouter());
    parallelFor(
        b, op.getInput().getType().getDimSize(0),
        [&](ImplicitLocOpBuilder &b, Value t) { router.scoreRows(b, t); });
    rewriter.replaceOp(op, router.results(b, op));
    return success();
  }
};

void choiceRow(ImplicitLocOpBuilder &b, Value t, ChoiceScoresOp op,
               Value scores, Value bias, Value out);

/// moe.route and the moe.route_rows that chooses from its probabilities,
/// directly (no gate_scores) or through one moe.choice_scores (bias,
/// expert groups) with the probabilities as gate_scores: all at once, each
/// token's scores (and choice scores) computed in its element of the choice
/// loop, so that scores and top-k are one kernel. The probabilities,
/// log-sum-exp and choice scores are still stored for the statistics.
struct LowerRouteWithChoiceParallel : CheckedPattern<RouteOp> {
  using CheckedPattern::CheckedPattern;

  struct Chain {
    RouteRowsOp rows;
    ChoiceScoresOp choiceScores; // or null
  };

  /// Whether `v` is available where `op` is (a block argument of an
  /// enclosing block, or defined before it in its block).
  static bool availableAt(Value v, Operation *op) {
    if (auto arg = dyn_cast<BlockArgument>(v))
      return arg.getOwner()->getParentOp()->isProperAncestor(op);
    Operation *def = v.getDefiningOp();
    return def->getBlock() == op->getBlock() && def->isBeforeInBlock(op);
  }

  static std::optional<Chain> chainOf(RouteOp op) {
    Value probs = op.getProbs();
    std::optional<Chain> found;
    auto take = [&](Chain c) {
      if (found)
        return false; // two choices: leave both to their own patterns
      found = c;
      return true;
    };
    for (Operation *user : probs.getUsers()) {
      if (auto rows = dyn_cast<RouteRowsOp>(user);
          rows && rows.getProbs() == probs && !rows.getGateScores()) {
        if (!take({rows, ChoiceScoresOp()}))
          return std::nullopt;
      } else if (auto scores = dyn_cast<ChoiceScoresOp>(user);
                 scores && scores.getScores() == probs && scores->hasOneUse() &&
                 (!scores.getBias() || availableAt(scores.getBias(), op))) {
        auto rows = dyn_cast<RouteRowsOp>(*scores->user_begin());
        if (rows && rows.getProbs() == scores.getResult() &&
            rows.getGateScores() == probs && !take({rows, scores}))
          return std::nullopt;
      }
    }
    return found;
  }

  LogicalResult
  matchAndRewrite(RouteOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    std::optional<Chain> chain = chainOf(op);
    if (!chain)
      return rewriter.notifyMatchFailure(
          op, "no single moe.route_rows chooses from its probabilities");
    Emitter e(op.getLoc(), rewriter);
    ImplicitLocOpBuilder &b = e.builder();
    RouterBuffers router(e, op, adaptor.getInput(), adaptor.getRouter());
    ChoiceScoresOp scores = chain->choiceScores;
    Value choice, bias;
    if (scores) {
      BufferCode code(b);
      choice = code.alloc(scores.getType().getShape(), b.getF32Type());
      if (scores.getBias())
        bias = readOnlyBuffer(b, rewriter.getRemappedValue(scores.getBias()));
    }
    ImplicitLocOpBuilder cb(chain->rows.getLoc(), rewriter);
    SmallVector<Value> rows =
        lowerRouteRows(cb, chain->rows, scores ? choice : router.probs,
                       scores ? router.probs : Value(), checks,
                       [&](ImplicitLocOpBuilder &b, Value t) {
                         router.scoreRows(b, t);
                         if (scores)
                           choiceRow(b, t, scores, router.probs, bias, choice);
                       });
    rewriter.replaceOp(op, router.results(b, op));
    if (scores)
      rewriter.replaceOp(scores, bufferization::ToTensorOp::create(
                                     b, scores.getType(), choice,
                                     /*restrict=*/true, /*writable=*/true));
    rewriter.replaceOp(chain->rows, rows);
    return success();
  }
};

struct LowerRouterZLossParallel : OpConversionPattern<RouterZLossOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(RouterZLossOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    Value lse = readOnlyBuffer(b, adaptor.getLse());
    int64_t tokens = op.getLse().getType().getDimSize(0);
    Type f64 = b.getF64Type();
    Value sum = chunkedSum(
        b, tokens, f64,
        [&](ImplicitLocOpBuilder &b, Value t) -> Value {
          Value w = arith::ExtFOp::create(b, f64, load(b, lse, {t}));
          return arith::MulFOp::create(b, w, w);
        },
        b.getF32Type(),
        [&](ImplicitLocOpBuilder &b, Value total) {
          return scaled(b, total, 1.0 / double(tokens));
        });
    rewriter.replaceOp(op, asTensor(b, op.getType(), sum));
    return success();
  }
};

struct LowerCountDroppedParallel : OpConversionPattern<CountDroppedOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(CountDroppedOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    Value keep = readOnlyBuffer(b, adaptor.getKeep());
    auto shape = op.getKeep().getType().getShape();
    int64_t k = shape[1];
    bool perToken = bool(op.getTokens());
    Type i64 = b.getI64Type();
    // Dropped assignments, or (per token) tokens with no kept assignment.
    Value sum = chunkedSum(
        b, perToken ? shape[0] : shape[0] * k, i64,
        [&](ImplicitLocOpBuilder &b, Value i) -> Value {
          Value kept;
          if (perToken) {
            Value none = arith::ConstantIntOp::create(b, 0, 1);
            auto loop = scf::ForOp::create(
                b, cst(b, 0), cst(b, k), cst(b, 1), ValueRange{none},
                [&](OpBuilder &nested, Location loc, Value j, ValueRange acc) {
                  ImplicitLocOpBuilder ib(loc, nested);
                  scf::YieldOp::create(
                      ib, ValueRange{arith::OrIOp::create(
                              ib, acc[0], load(ib, keep, {i, j}))});
                });
            kept = loop.getResult(0);
          } else {
            kept = load(b, keep, {div(b, i, k), rem(b, i, k)});
          }
          Value yes = arith::ConstantIntOp::create(b, 1, 1);
          return one(b, arith::XOrIOp::create(b, kept, yes));
        },
        i64, [](ImplicitLocOpBuilder &, Value total) { return total; });
    rewriter.replaceOp(op, asTensor(b, op.getType(), sum));
    return success();
  }
};

/// Per group g and expert e, the top-1 count and the probability mass, as
/// chunk partial sums in parallel; then E · Σ_g Σ_e (count/S)(mass/S) / G.
struct LowerLoadBalanceLossParallel : OpConversionPattern<LoadBalanceLossOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(LoadBalanceLossOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    BufferCode code(b);
    Value probs = readOnlyBuffer(b, adaptor.getProbs());
    Value experts = readOnlyBuffer(b, adaptor.getExperts());
    int64_t tokens = op.getProbs().getType().getDimSize(0);
    int64_t numExperts = op.getProbs().getType().getDimSize(1);
    int64_t groupSize = op.getGroupSize();
    int64_t groups = tokens / groupSize;
    Type f64 = b.getF64Type();
    auto prob = [&](ImplicitLocOpBuilder &b, Value t, Value ex) -> Value {
      return arith::ExtFOp::create(b, f64, load(b, probs, {t, ex}));
    };
    // With `normalize`, each token's scores over their sum (spec §8).
    Value totals;
    if (op.getNormalize()) {
      totals = code.alloc({tokens}, f64);
      code.parallel(tokens, [&](ImplicitLocOpBuilder &b, Value t) {
        store(b,
              sumRange(b, cst(b, 0), cst(b, numExperts), f64,
                       [&](ImplicitLocOpBuilder &b, Value ex) {
                         return prob(b, t, ex);
                       }),
              totals, {t});
      });
    }
    int64_t chunk = std::min(kChunk, groupSize);
    int64_t chunksPerGroup = (groupSize + chunk - 1) / chunk;
    int64_t cells = groups * chunksPerGroup * numExperts;
    Value countPart = code.alloc({cells}, f64);
    Value massPart = code.alloc({cells}, f64);
    code.parallel(cells, [&](ImplicitLocOpBuilder &b, Value cell) {
      Value ex = rem(b, cell, numExperts);
      Value c = div(b, cell, numExperts);
      Value g = div(b, c, chunksPerGroup);
      Value lo = add(b, mul(b, g, groupSize),
                     mul(b, rem(b, c, chunksPerGroup), chunk));
      Value hi = arith::MinUIOp::create(
          b, add(b, lo, cst(b, chunk)),
          add(b, mul(b, g, groupSize), cst(b, groupSize)));
      Value one64 =
          arith::ConstantFloatOp::create(b, b.getF64Type(), APFloat(1.0));
      store(
          b,
          sumRange(b, lo, hi, f64,
                   [&](ImplicitLocOpBuilder &b, Value t) -> Value {
                     Value first = toIndex(b, load(b, experts, {t, cst(b, 0)}));
                     return arith::SelectOp::create(
                         b, eq(b, first, ex), one64,
                         arith::ConstantFloatOp::create(b, b.getF64Type(),
                                                        APFloat(0.0)));
                   }),
          countPart, {cell});
      store(b,
            sumRange(b, lo, hi, f64,
                     [&](ImplicitLocOpBuilder &b, Value t) -> Value {
                       Value p = prob(b, t, ex);
                       if (totals)
                         p = arith::DivFOp::create(b, p, load(b, totals, {t}));
                       return p;
                     }),
            massPart, {cell});
    });
    Value product = code.alloc({groups * numExperts}, f64);
    code.parallel(groups * numExperts, [&](ImplicitLocOpBuilder &b, Value i) {
      Value ex = rem(b, i, numExperts);
      Value first = mul(b, div(b, i, numExperts), chunksPerGroup);
      auto over = [&](Value part) {
        return sumRange(
            b, cst(b, 0), cst(b, chunksPerGroup), f64,
            [&](ImplicitLocOpBuilder &b, Value c) {
              return load(b, part,
                          {add(b, mul(b, add(b, first, c), numExperts), ex)});
            });
      };
      store(b, arith::MulFOp::create(b, over(countPart), over(massPart)),
            product, {i});
    });
    double scale = double(numExperts) /
                   (double(groupSize) * double(groupSize) * double(groups));
    Value loss = chunkedSum(
        b, groups * numExperts, f64,
        [&](ImplicitLocOpBuilder &b, Value i) { return load(b, product, {i}); },
        b.getF32Type(),
        [&](ImplicitLocOpBuilder &b, Value total) {
          return scaled(b, total, scale);
        });
    rewriter.replaceOp(op, asTensor(b, op.getType(), loss));
    return success();
  }
};

/// The choice scores of token t (spec §8) into its row of `out`: c = scores
/// + bias (`bias` may be null); with expert groups (`keep` < `groups`) a
/// group is kept when fewer than `keep` groups come before it in the order
/// (group score descending, group ascending) that the sequential lowering's
/// rounds of nextInOrder follow, and the other groups' experts get -inf.
/// Group scores are recomputed rather than held in an array (a kernel
/// thread has no buffers of its own): G · E work per token.
void choiceRow(ImplicitLocOpBuilder &b, Value t, ChoiceScoresOp op,
               Value scores, Value bias, Value out) {
  int64_t experts = op.getScores().getType().getDimSize(1);
  int64_t groups = op.getNumGroups(), keep = op.getKeep();
  int64_t perGroup = experts / groups;
  bool top2 = op.getGroupScore() == GroupScore::Top2Sum;
  Value negInf = arith::ConstantFloatOp::create(
      b, b.getF32Type(), APFloat(-std::numeric_limits<float>::infinity()));
  auto choiceScore = [&](ImplicitLocOpBuilder &b, Value ex) -> Value {
    Value c = load(b, scores, {t, ex});
    if (bias)
      c = arith::AddFOp::create(b, c, load(b, bias, {ex}));
    return c;
  };
  if (keep >= groups) {
    forEach(b, cst(b, 0), cst(b, experts),
            [&](ImplicitLocOpBuilder &b, Value ex) {
              store(b, choiceScore(b, ex), out, {t, ex});
            });
    return;
  }
  // The group's score: its largest key, or its two largest summed.
  auto groupScore = [&](ImplicitLocOpBuilder &b, Value g) -> Value {
    Emitter s(b.getLoc(), b);
    Value base = mul(b, g, perGroup);
    SmallVector<Value> best = s.loop(
        perGroup, {negInf, negInf},
        [&](ImplicitLocOpBuilder &b, Value i, ValueRange m) {
          Value key = rankKey(b, choiceScore(b, add(b, base, i)));
          Value first =
              arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, key, m[0]);
          Value second =
              arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, key, m[1]);
          Value newSecond = arith::SelectOp::create(
              b, first, m[0], arith::SelectOp::create(b, second, key, m[1]));
          return SmallVector<Value>{
              arith::SelectOp::create(b, first, key, m[0]), newSecond};
        });
    return rankKey(b,
                   top2 ? arith::AddFOp::create(b, best[0], best[1]).getResult()
                        : best[0]);
  };
  forEach(b, cst(b, 0), cst(b, groups), [&](ImplicitLocOpBuilder &b, Value g) {
    Value mine = groupScore(b, g);
    Value ahead = sumRange(
        b, cst(b, 0), cst(b, groups), b.getI64Type(),
        [&](ImplicitLocOpBuilder &b, Value other) {
          return one(b, comesBefore(b, groupScore(b, other), other, mine, g));
        });
    Value kept =
        arith::CmpIOp::create(b, arith::CmpIPredicate::slt, ahead,
                              arith::ConstantIntOp::create(b, keep, 64));
    Value base = mul(b, g, perGroup);
    forEach(
        b, cst(b, 0), cst(b, perGroup), [&](ImplicitLocOpBuilder &b, Value i) {
          Value ex = add(b, base, i);
          store(b, arith::SelectOp::create(b, kept, choiceScore(b, ex), negInf),
                out, {t, ex});
        });
  });
}

/// Group-limited choice scores, one token per element (choiceRow).
struct LowerChoiceScoresParallel : OpConversionPattern<ChoiceScoresOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(ChoiceScoresOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    if (op.getKeep() >= op.getNumGroups())
      return failure(); // no mask: the elementwise lowering serves
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    BufferCode code(b);
    auto type = op.getScores().getType();
    Value scores = readOnlyBuffer(b, adaptor.getScores());
    Value bias = readOnlyBuffer(b, adaptor.getBias());
    Value out = code.alloc(type.getShape(), b.getF32Type());
    code.parallel(type.getDimSize(0), [&](ImplicitLocOpBuilder &b, Value t) {
      choiceRow(b, t, op, scores, bias, out);
    });
    rewriter.replaceOp(op, bufferization::ToTensorOp::create(
                               b, op.getType(), out, /*restrict=*/true,
                               /*writable=*/true));
    return success();
  }
};

/// Expert choice (spec §8), one (group, expert) per element: its `capacity`
/// rounds pick the best token of the group not yet taken (key descending,
/// token ascending), the r-th into slot g·C + r; each element writes its
/// own column of its group's rows.
struct LowerExpertChoiceParallel : CheckedPattern<ExpertChoiceOp> {
  using CheckedPattern::CheckedPattern;

  LogicalResult
  matchAndRewrite(ExpertChoiceOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    BufferCode code(b);
    auto type = op.getProbs().getType();
    int64_t tokens = type.getDimSize(0), experts = type.getDimSize(1);
    int64_t groupSize = op.getGroupSize(), capacity = op.getCapacity();
    int64_t groups = tokens / groupSize;
    float scale = float(op.getGateScale().convertToDouble());
    std::string check = checkMessage(
        checks, op, "took a token outside [0, " + Twine(tokens) + ")");
    Value probs = readOnlyBuffer(b, adaptor.getProbs());
    Value ids = code.alloc({tokens, experts}, b.getI32Type());
    Value slots = code.alloc({tokens, experts}, b.getI32Type());
    Value keep = code.alloc({tokens, experts}, b.getI1Type());
    Value gates = code.alloc({tokens, experts}, b.getF32Type());
    Value counts = code.alloc({experts}, b.getI64Type());
    // experts[t, e] = e; the rest starts as "not taken".
    code.parallel(tokens * experts, [&](ImplicitLocOpBuilder &b, Value i) {
      Emitter s(b.getLoc(), b);
      Value t = div(b, i, experts), ex = rem(b, i, experts);
      store(b, arith::IndexCastOp::create(b, b.getI32Type(), ex), ids, {t, ex});
      store(b, s.i32(-1), slots, {t, ex});
      store(b, s.boolean(false), keep, {t, ex});
      store(b, s.f32(0), gates, {t, ex});
    });
    code.parallel(experts, [&](ImplicitLocOpBuilder &b, Value ex) {
      store(b, code.i64(groups * capacity), counts, {ex});
    });
    code.parallel(groups * experts, [&](ImplicitLocOpBuilder &b, Value i) {
      Emitter s(b.getLoc(), b);
      Value g = div(b, i, experts), ex = rem(b, i, experts);
      Value start = mul(b, g, groupSize);
      s.loop(capacity,
             {s.f32(std::numeric_limits<float>::infinity()), s.index(-1)},
             [&](ImplicitLocOpBuilder &b, Value r, ValueRange c) {
               Emitter s(b.getLoc(), b);
               SmallVector<Value> best = nextInOrder(
                   b, groupSize, c[0], c[1],
                   [&](ImplicitLocOpBuilder &b, Value at) {
                     Value t = add(b, start, at);
                     return std::make_pair(t, load(b, probs, {t, ex}));
                   });
               Value t = best[1];
               assertInRange(b, t, 0, tokens, check);
               Value slot = add(b, mul(b, g, capacity), r);
               Value gate = best[2];
               if (scale != 1.0f)
                 gate = arith::MulFOp::create(b, gate, s.f32(scale));
               store(b, arith::IndexCastOp::create(b, b.getI32Type(), slot),
                     slots, {t, ex});
               store(b, s.boolean(true), keep, {t, ex});
               store(b, gate, gates, {t, ex});
               return SmallVector<Value>{best[0], t};
             });
    });
    rewriter.replaceOp(op, asTensors(b, op, {ids, slots, keep, gates, counts}));
    return success();
  }
};

/// moe.dispatch, one element of one kept row per loop element: the
/// token's element stored into its slot (of its expert's buffer when the
/// buffer is [E, C, D]); rows nobody takes stay zero.
struct LowerDispatchParallel : CheckedPattern<DispatchOp> {
  using CheckedPattern::CheckedPattern;

  LogicalResult
  matchAndRewrite(DispatchOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    auto bufferType = op.getBuffer().getType();
    auto inputType = op.getInput().getType();
    int64_t tokens = inputType.getDimSize(0), model = inputType.getDimSize(1);
    int64_t k = op.getExperts().getType().getDimSize(1);
    bool packed = bufferType.getRank() == 2;
    int64_t bufferRows = bufferType.getDimSize(bufferType.getRank() - 2);
    std::string rowCheck = checkMessage(
        checks, op, "read a slot outside [0, " + Twine(bufferRows) + ")");
    std::string expertCheck =
        packed ? ""
               : checkMessage(checks, op,
                              "read an expert id outside [0, " +
                                  Twine(bufferType.getDimSize(0)) + ")");
    Value input = readOnlyBuffer(b, adaptor.getInput());
    Value experts = readOnlyBuffer(b, adaptor.getExperts());
    Value slots = readOnlyBuffer(b, adaptor.getSlots());
    Value keep = readOnlyBuffer(b, adaptor.getKeep());
    Type elt = bufferType.getElementType();
    Value buffer =
        memref::AllocOp::create(b, MemRefType::get(bufferType.getShape(), elt));
    Emitter e(b.getLoc(), b);
    linalg::FillOp::create(b, ValueRange{e.zero(elt)}, ValueRange{buffer});
    parallelFor(b, tokens * k * model, [&](ImplicitLocOpBuilder &b, Value i) {
      Value d = rem(b, i, model);
      Value j = rem(b, div(b, i, model), k);
      Value t = div(b, i, model * k);
      scf::IfOp::create(
          b, load(b, keep, {t, j}), [&](OpBuilder &then, Location loc) {
            ImplicitLocOpBuilder tb(loc, then);
            Emitter s(loc, tb);
            Value slot = toIndex(tb, load(tb, slots, {t, j}));
            assertInRange(tb, slot, 0, bufferRows, rowCheck);
            SmallVector<Value> at{slot, d};
            if (!packed) {
              Value ex = toIndex(tb, load(tb, experts, {t, j}));
              assertInRange(tb, ex, 0, bufferType.getDimSize(0), expertCheck);
              at.insert(at.begin(), ex);
            }
            store(tb, s.castFloat(load(tb, input, {t, d}), elt), buffer, at);
            scf::YieldOp::create(tb);
          });
    });
    rewriter.replaceOp(op, bufferization::ToTensorOp::create(
                               b, op.getType(), buffer, /*restrict=*/true,
                               /*writable=*/true));
    return success();
  }
};

} // namespace

void mlir::moe::lowering::parallelFor(
    ImplicitLocOpBuilder &b, int64_t n,
    llvm::function_ref<void(ImplicitLocOpBuilder &, Value)> body) {
  int64_t blocks = (n + kLanes - 1) / kLanes;
  scf::ParallelOp::create(
      b, ValueRange{cst(b, 0), cst(b, 0)},
      ValueRange{cst(b, blocks), cst(b, kLanes)},
      ValueRange{cst(b, 1), cst(b, 1)},
      [&](OpBuilder &nested, Location loc, ValueRange ivs) {
        ImplicitLocOpBuilder ib(loc, nested);
        Value i = arith::AddIOp::create(
            ib,
            arith::MulIOp::create(ib, ivs[0],
                                  arith::ConstantIndexOp::create(ib, kLanes)),
            ivs[1]);
        Value inside =
            arith::CmpIOp::create(ib, arith::CmpIPredicate::ult, i,
                                  arith::ConstantIndexOp::create(ib, n));
        scf::IfOp::create(ib, inside, [&](OpBuilder &then, Location loc) {
          ImplicitLocOpBuilder tb(loc, then);
          body(tb, i);
          scf::YieldOp::create(tb);
        });
      });
}

void mlir::moe::lowering::populateParallelRoutingPatterns(
    RewritePatternSet &patterns, bool checks) {
  patterns.add<LowerRouteRowsParallel, LowerExpertChoiceParallel>(
      patterns.getContext(), checks);
  // Ahead of LowerRouteParallel where it applies.
  patterns.add<LowerRouteWithChoiceParallel>(patterns.getContext(), checks,
                                             /*benefit=*/3);
  // Ahead of the elementwise lowering, which takes the unmasked form, and
  // of the linalg form of moe.route.
  patterns.add<LowerChoiceScoresParallel, LowerRouteParallel>(
      patterns.getContext(), /*benefit=*/2);
  // Ahead of the sequential dispatch of LowerExperts.cpp.
  patterns.add<LowerDispatchParallel>(patterns.getContext(), checks,
                                      /*benefit=*/2);
  patterns.add<LowerRouterZLossParallel, LowerCountDroppedParallel,
               LowerLoadBalanceLossParallel>(patterns.getContext());
}
