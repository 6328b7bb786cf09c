//===- Decompose.cpp - moe.layer into its decomposed ops ------------*- C++
//-*-===//
//
// The moe-decompose pass: rewrites each whole-layer op into the sequence of
// route, top-k, slot assignment, dispatch, expert FFN, combine and
// statistics ops that the layer contract describes.
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoEOps.h"
#include "moe/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEDECOMPOSE
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

LogicalResult mlir::moe::applyPatternsOnly(Operation *root,
                                           RewritePatternSet &&patterns) {
  GreedyRewriteConfig config;
  config.enableFolding(false);
  return applyPatternsGreedily(root, std::move(patterns), config);
}

Value mlir::moe::meanOverRanks(OpBuilder &b, Location loc, Value v,
                              int64_t ranks) {
  auto type = cast<RankedTensorType>(v.getType());
  Value share = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(type, 1.0f / float(ranks)));
  return AllReduceOp::create(b, loc, arith::MulFOp::create(b, loc, v, share),
                             ranks);
}

void mlir::moe::makeStatisticsGlobal(OpBuilder &b, Location loc, Value &counts,
                                     Value &dropped, Value &balance,
                                     Value &zLoss, int64_t worldRanks,
                                     int64_t replicated) {
  auto sum = [&](Value v) -> Value {
    Value total = AllReduceOp::create(b, loc, v, worldRanks);
    if (replicated == 1)
      return total;
    auto type = cast<RankedTensorType>(v.getType());
    Value n = arith::ConstantOp::create(
        b, loc,
        DenseElementsAttr::get(type, llvm::APInt(64, uint64_t(replicated))));
    return arith::DivSIOp::create(b, loc, total, n);
  };
  balance = meanOverRanks(b, loc, balance, worldRanks);
  zLoss = meanOverRanks(b, loc, zLoss, worldRanks);
  dropped = sum(dropped);
  counts = sum(counts);
}

LayerOperands LayerOperands::of(LayerOp layer) {
  return LayerOperands{layer.getInput(),      layer.getRouter(),
                       layer.getWIn(),        layer.getWGate(),
                       layer.getWOut(),       layer.getScoreBias(),
                       layer.getSharedWIn(),  layer.getSharedWGate(),
                       layer.getSharedWOut(), layer.getSharedGate()};
}

TokenChoice mlir::moe::emitTokenChoice(OpBuilder &b, LayerOp op, Value input,
                                       Value router, Value scoreBias) {
  Location loc = op.getLoc();
  auto route =
      RouteOp::create(b, loc, input, router, op.getScoreFunctionAttr());
  Value scores = route.getProbs(), choice = scores, gateScores;
  if (op.hasChoiceScores()) {
    choice = ChoiceScoresOp::create(
        b, loc, scores, scoreBias,
        b.getI64IntegerAttr(op.getNumGroups()),
        b.getI64IntegerAttr(op.getKeptGroups()), op.getGroupScoreAttr());
    gateScores = scores;
  }
  FloatAttr scale = op.getGateScaleAttrIfScaled();
  auto topk = TopKOp::create(
      b, loc, choice, b.getI64IntegerAttr(op.getTopK()),
      op.getNormalizeGates() ? b.getUnitAttr() : UnitAttr(), gateScores, scale);
  return {route.getLogits(), scores, route.getLse(), topk.getExperts(),
          topk.getGates()};
}

ExpertChoiceOp mlir::moe::emitExpertChoice(OpBuilder &b, LayerOp op,
                                           Value probs, int64_t groupSize,
                                           int64_t capacity) {
  return ExpertChoiceOp::create(b, op.getLoc(), probs,
                                b.getI64IntegerAttr(groupSize),
                                b.getI64IntegerAttr(capacity),
                                op.getGateScaleAttrIfScaled());
}

Value mlir::moe::emitBalanceLoss(OpBuilder &b, LayerOp op, Value scores,
                                 Value experts, int64_t groupSize) {
  bool normalize = op.getScoreFunction() == ScoreFunction::Sigmoid;
  return LoadBalanceLossOp::create(b, op.getLoc(), scores, experts,
                                   b.getI64IntegerAttr(groupSize),
                                   normalize ? b.getUnitAttr() : UnitAttr());
}

Value mlir::moe::emitNoBalanceLoss(OpBuilder &b, Location loc) {
  return arith::ConstantOp::create(
      b, loc,
      DenseElementsAttr::get(RankedTensorType::get({}, b.getF32Type()),
                             std::numeric_limits<float>::quiet_NaN()));
}

Value mlir::moe::emitSharedExpert(OpBuilder &b, LayerOp op,
                                  const LayerOperands &in, Value y) {
  if (!in.sharedWIn)
    return y;
  return SharedExpertOp::create(b, op.getLoc(), y.getType(), in.input, y,
                                in.sharedWIn, in.sharedWGate, in.sharedWOut,
                                in.sharedGate, op.getActivationAttr());
}

/// The expert-choice layer (spec §8) on `operands`, whose tokens hold whole
/// groups: every expert takes its C tokens of each group into the padded
/// [E, G·C, D] buffer.
static SmallVector<Value> emitExpertChoiceLayer(OpBuilder &b, LayerOp op,
                                                const LayerOperands &operands,
                                                const DecomposeOptions &options) {
  Location loc = op.getLoc();
  auto inputType = cast<RankedTensorType>(operands.input.getType());
  int64_t tokens = inputType.getDimSize(0), model = inputType.getDimSize(1);
  int64_t experts = op.getNumExperts();
  int64_t groupTokens = op.getGroupTokens();
  // At most S already (LayerOp::getCapacity).
  int64_t capacity = *op.getCapacity();
  auto route = RouteOp::create(b, loc, operands.input, operands.router,
                               op.getScoreFunctionAttr());
  auto choice =
      emitExpertChoice(b, op, route.getProbs(), groupTokens, capacity);
  auto bufferType =
      RankedTensorType::get({experts, (tokens / groupTokens) * capacity, model},
                            inputType.getElementType());
  Value buffer = DispatchOp::create(b, loc, bufferType, operands.input,
                                    choice.getExperts(), choice.getSlots(),
                                    choice.getKeep());
  int64_t ranks = options.ranks;
  if (ranks > 1)
    buffer = AllToAllOp::create(b, loc, buffer, ranks, 0, 1);
  Value out = ExpertFFNOp::create(b, loc, buffer, operands.wIn, operands.wGate,
                                  operands.wOut, Value(),
                                  op.getActivationAttr());
  if (ranks > 1)
    out = AllToAllOp::create(b, loc, out, ranks, 1, 0);
  Value y = CombineOp::create(b, loc, out, choice.getExperts(),
                              choice.getSlots(), choice.getKeep(),
                              choice.getGates());
  y = emitSharedExpert(b, op, operands, y);
  Value balance = emitNoBalanceLoss(b, loc);
  Value zLoss = RouterZLossOp::create(b, loc, route.getLse());
  Value dropped = CountDroppedOp::create(b, loc, choice.getKeep(),
                                         b.getUnitAttr());
  Value counts = choice.getCounts();
  int64_t world = options.worldRanks ? options.worldRanks : ranks;
  if (world > 1)
    makeStatisticsGlobal(b, loc, counts, dropped, balance, zLoss, world, 1);
  return {y, counts, dropped, balance, zLoss};
}

SmallVector<Value>
mlir::moe::emitDecomposedLayer(OpBuilder &b, LayerOp op,
                               const LayerOperands &operands,
                               const DecomposeOptions &options) {
  Location loc = op.getLoc();
  MLIRContext *context = b.getContext();
  auto inputType = cast<RankedTensorType>(operands.input.getType());
  int64_t tokens = inputType.getDimSize(0), model = inputType.getDimSize(1);
  int64_t experts = op.getNumExperts(), topK = op.getTopK();
  int64_t groupTokens = op.getGroupTokens();
  int64_t groups = tokens / groupTokens;
  int64_t ranks = options.ranks;
  Type elt = inputType.getElementType();
  bool byProbability = op.getPriority() == Priority::BatchPrioritized;
  if (op.isExpertsChoose())
    return emitExpertChoiceLayer(b, op, operands, options);

  TokenChoice choice = emitTokenChoice(b, op, operands.input, operands.router,
                                       operands.scoreBias);

  // An expert receives at most S assignments of one group, so slots past S
  // could never be filled: the padded buffer holds min(C, S) per group.
  std::optional<int64_t> capacity = op.getCapacity();
  IntegerAttr capacityAttr;
  RankedTensorType bufferType;
  bool packed = !capacity || options.packedCapacity;
  if (capacity)
    capacityAttr = b.getI64IntegerAttr(std::min(*capacity, groupTokens));
  if (packed)
    bufferType = RankedTensorType::get({tokens * topK, model}, elt);
  else
    bufferType = RankedTensorType::get(
        {experts, groups * capacityAttr.getInt(), model}, elt);
  auto assign = AssignSlotsOp::create(
      b, loc, choice.experts, byProbability ? choice.scores : Value(),
      b.getI64IntegerAttr(experts), b.getI64IntegerAttr(groupTokens),
      capacityAttr, PriorityAttr::get(context, op.getPriority()),
      capacity && packed ? b.getUnitAttr() : UnitAttr());

  Value buffer =
      DispatchOp::create(b, loc, bufferType, operands.input, choice.experts,
                         assign.getSlots(), assign.getKeep());
  // Expert parallelism: every rank sends each expert's slots to the rank
  // that holds the expert, and gets the results back the same way.
  auto exchange = [&](Value v, int64_t split, int64_t concat) -> Value {
    return AllToAllOp::create(b, loc, v, ranks, split, concat);
  };
  if (ranks > 1)
    buffer = exchange(buffer, 0, 1);
  Value out = ExpertFFNOp::create(
      b, loc, buffer, operands.wIn, operands.wGate, operands.wOut,
      packed ? assign.getCounts() : Value(), op.getActivationAttr());
  if (ranks > 1)
    out = exchange(out, 1, 0);
  Value y = CombineOp::create(b, loc, out, choice.experts, assign.getSlots(),
                              assign.getKeep(), choice.gates);
  y = emitSharedExpert(b, op, operands, y);

  Value balance =
      emitBalanceLoss(b, op, choice.scores, choice.experts, groupTokens);
  Value zLoss = RouterZLossOp::create(b, loc, choice.lse);
  Value dropped = CountDroppedOp::create(b, loc, assign.getKeep());
  Value counts = assign.getCounts();
  int64_t world = options.worldRanks ? options.worldRanks : ranks;
  if (world > 1)
    // Each rank holds whole groups of its T/(N·R) tokens: the global means
    // are the averages of the ranks' means; counts add up.
    makeStatisticsGlobal(b, loc, counts, dropped, balance, zLoss, world, 1);
  return {y, counts, dropped, balance, zLoss};
}

namespace {

struct DecomposeLayer : OpRewritePattern<LayerOp> {
  DecomposeLayer(MLIRContext *context, bool packedCapacity)
      : OpRewritePattern(context), packedCapacity(packedCapacity) {}

  /// Whether capacity-bounded layers use the packed buffer layout.
  bool packedCapacity;

  LogicalResult matchAndRewrite(LayerOp op,
                                PatternRewriter &rewriter) const override {
    DecomposeOptions options;
    options.packedCapacity = packedCapacity;
    LayerOperands operands = LayerOperands::of(op);
    rewriter.replaceOp(op,
                       emitDecomposedLayer(rewriter, op, operands, options));
    return success();
  }
};

struct MoEDecomposePass : mlir::moe::impl::MoEDecomposeBase<MoEDecomposePass> {
  using MoEDecomposeBase::MoEDecomposeBase;

  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateDecomposeLayerPatterns(patterns, packedCapacity);
    if (failed(applyPatternsOnly(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void mlir::moe::populateDecomposeLayerPatterns(RewritePatternSet &patterns,
                                               bool packedCapacity) {
  patterns.add<DecomposeLayer>(patterns.getContext(), packedCapacity);
}
