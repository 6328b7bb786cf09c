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

  auto route = RouteOp::create(b, loc, operands.input, operands.router);
  auto topk =
      TopKOp::create(b, loc, route.getProbs(), topK, op.getNormalizeGates());

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
      b, loc, topk.getExperts(), byProbability ? route.getProbs() : Value(),
      b.getI64IntegerAttr(experts), b.getI64IntegerAttr(groupTokens),
      capacityAttr, PriorityAttr::get(context, op.getPriority()),
      capacity && packed ? b.getUnitAttr() : UnitAttr());

  Value buffer =
      DispatchOp::create(b, loc, bufferType, operands.input, topk.getExperts(),
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
  auto combine =
      CombineOp::create(b, loc, out, topk.getExperts(), assign.getSlots(),
                        assign.getKeep(), topk.getGates());

  Value balance = LoadBalanceLossOp::create(b, loc, route.getProbs(),
                                            topk.getExperts(), groupTokens);
  Value zLoss = RouterZLossOp::create(b, loc, route.getLse());
  Value dropped = CountDroppedOp::create(b, loc, assign.getKeep());
  Value counts = assign.getCounts();
  int64_t world = options.worldRanks ? options.worldRanks : ranks;
  if (world > 1)
    // Each rank holds whole groups of its T/(N·R) tokens: the global means
    // are the averages of the ranks' means; counts add up.
    makeStatisticsGlobal(b, loc, counts, dropped, balance, zLoss, world, 1);
  return {combine.getOutput(), counts, dropped, balance, zLoss};
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
    LayerOperands operands{op.getInput(), op.getRouter(), op.getWIn(),
                           op.getWGate(), op.getWOut()};
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
