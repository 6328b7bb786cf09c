//===- Decompose.cpp - moe.layer into its decomposed ops ------------*- C++ -*-===//
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

namespace {

struct DecomposeLayer : OpRewritePattern<LayerOp> {
  DecomposeLayer(MLIRContext *context, bool packedCapacity)
      : OpRewritePattern(context), packedCapacity(packedCapacity) {}

  /// Whether capacity-bounded layers use the packed buffer layout.
  bool packedCapacity;

  LogicalResult matchAndRewrite(LayerOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    int64_t tokens = op.getNumTokens(), experts = op.getNumExperts();
    int64_t model = op.getModelDim(), topK = op.getTopK();
    int64_t groupTokens = op.getGroupTokens();
    int64_t groups = tokens / groupTokens;
    Type elt = op.getInput().getType().getElementType();
    bool byProbability = op.getPriority() == Priority::BatchPrioritized;

    auto route =
        RouteOp::create(rewriter, loc, op.getInput(), op.getRouter());
    auto topk = TopKOp::create(rewriter, loc, route.getProbs(), topK,
                               op.getNormalizeGates());

    // An expert receives at most S assignments of one group, so slots past S
    // could never be filled: the padded buffer holds min(C, S) per group.
    std::optional<int64_t> capacity = op.getCapacity();
    IntegerAttr capacityAttr;
    RankedTensorType bufferType;
    bool packed = !capacity || packedCapacity;
    if (capacity)
      capacityAttr =
          rewriter.getI64IntegerAttr(std::min(*capacity, groupTokens));
    if (packed)
      bufferType = RankedTensorType::get({tokens * topK, model}, elt);
    else
      bufferType = RankedTensorType::get(
          {experts, groups * capacityAttr.getInt(), model}, elt);
    auto assign = AssignSlotsOp::create(
        rewriter, loc, topk.getExperts(),
        byProbability ? route.getProbs() : Value(),
        rewriter.getI64IntegerAttr(experts),
        rewriter.getI64IntegerAttr(groupTokens), capacityAttr,
        PriorityAttr::get(getContext(), op.getPriority()),
        capacity && packed ? rewriter.getUnitAttr() : UnitAttr());

    auto dispatch = DispatchOp::create(rewriter, loc, bufferType, op.getInput(),
                                       topk.getExperts(), assign.getSlots(),
                                       assign.getKeep());
    auto ffn = ExpertFFNOp::create(
        rewriter, loc, dispatch.getBuffer(), op.getWIn(), op.getWGate(),
        op.getWOut(), packed ? assign.getCounts() : Value(),
        op.getActivationAttr());
    auto combine = CombineOp::create(rewriter, loc, ffn.getResult(),
                                     topk.getExperts(), assign.getSlots(),
                                     assign.getKeep(), topk.getGates());

    auto balance = LoadBalanceLossOp::create(rewriter, loc, route.getProbs(),
                                             topk.getExperts(), groupTokens);
    auto zLoss = RouterZLossOp::create(rewriter, loc, route.getLse());
    auto dropped = CountDroppedOp::create(rewriter, loc, assign.getKeep());

    rewriter.replaceOp(op, {combine.getOutput(), assign.getCounts(),
                            dropped.getCount(), balance.getLoss(),
                            zLoss.getLoss()});
    return success();
  }
};

struct MoEDecomposePass
    : mlir::moe::impl::MoEDecomposeBase<MoEDecomposePass> {
  using MoEDecomposeBase::MoEDecomposeBase;

  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateDecomposeLayerPatterns(patterns, packedCapacity);
    // Only the layer pattern: folding the new ops is canonicalize's job.
    GreedyRewriteConfig config;
    config.enableFolding(false);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns),
                                     config)))
      signalPassFailure();
  }
};

} // namespace

void mlir::moe::populateDecomposeLayerPatterns(RewritePatternSet &patterns,
                                               bool packedCapacity) {
  patterns.add<DecomposeLayer>(patterns.getContext(), packedCapacity);
}
