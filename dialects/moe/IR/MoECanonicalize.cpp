//===- MoECanonicalize.cpp - Folders and canonical forms of moe ops -*- C++
//-*-===//
//
// Canonical forms drop attributes that cannot change a result (a capacity
// that never binds, a group as large as the call, gate normalisation over all
// experts); folders remove identities and compute statistics that are known
// at compile time.
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoEOps.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace mlir::moe;

namespace {

/// Removes the layer attributes that cannot change what it computes.
struct SimplifyLayerAttrs : OpRewritePattern<LayerOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(LayerOp op,
                                PatternRewriter &rewriter) const override {
    // A group spanning the whole call is the default.
    bool dropGroup = op.getGroupSize() == op.getNumTokens();
    // An expert receives at most one assignment per token of its group, so a
    // capacity of at least S never drops anything: the layer is dropless.
    // (Not for expert choice, where C is how many tokens an expert takes.)
    std::optional<int64_t> capacity = op.getCapacity();
    bool dropCapacity = !op.isExpertsChoose() && capacity &&
                        *capacity >= op.getGroupTokens();
    // Over all E experts the chosen softmax probabilities sum to one.
    bool dropNormalize = op.getNormalizeGates() &&
                         op.getTopK() == op.getNumExperts() &&
                         op.getScoreFunction() == ScoreFunction::Softmax;
    // Keeping every expert group limits nothing (spec §8: one group).
    bool dropExpertGroups =
        op.getKeptGroups() == op.getNumGroups() &&
        (op.getNumGroups() != 1 || op.getTopkGroups() ||
         op.getGroupScore() != GroupScore::Max);
    if (!dropGroup && !dropCapacity && !dropNormalize && !dropExpertGroups)
      return failure();
    rewriter.modifyOpInPlace(op, [&] {
      if (dropGroup)
        op.removeGroupSizeAttr();
      if (dropCapacity) {
        op.removeCapacityFactorAttr();
        op.removeExpertCapacityAttr();
        op.setMinCapacity(1);
      }
      if (dropNormalize)
        op.setNormalizeGates(false);
      if (dropExpertGroups) {
        op.setNumGroups(1);
        op.removeTopkGroupsAttr();
        op.setGroupScore(GroupScore::Max);
      }
    });
    return success();
  }
};

/// `normalize` over all experts divides softmax probabilities by a sum of
/// one (not sigmoid scores, nor gates read from other scores).
struct DropFullNormalize : OpRewritePattern<TopKOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(TopKOp op,
                                PatternRewriter &rewriter) const override {
    auto route = op.getProbs().getDefiningOp<RouteOp>();
    if (!op.getNormalize() || op.getGateScores() || !route ||
        route.getScoreFunction() != ScoreFunction::Softmax ||
        op.getK() != op.getProbs().getType().getDimSize(1))
      return failure();
    rewriter.modifyOpInPlace(op, [&] { op.setNormalize(false); });
    return success();
  }
};

} // namespace

void LayerOp::getCanonicalizationPatterns(RewritePatternSet &patterns,
                                          MLIRContext *context) {
  patterns.add<SimplifyLayerAttrs>(context);
}

void TopKOp::getCanonicalizationPatterns(RewritePatternSet &patterns,
                                         MLIRContext *context) {
  patterns.add<DropFullNormalize>(context);
}

OpFoldResult AllToAllOp::fold(FoldAdaptor) {
  if (getRanks() == 1 && getInput().getType() == getType())
    return getInput();
  return {};
}

OpFoldResult AllGatherOp::fold(FoldAdaptor) {
  if (getRanks() == 1 && getInput().getType() == getType())
    return getInput();
  return {};
}

OpFoldResult AllReduceOp::fold(FoldAdaptor) {
  if (getRanks() == 1)
    return getInput();
  return {};
}

OpFoldResult CountDroppedOp::fold(FoldAdaptor) {
  auto assign = getKeep().getDefiningOp<AssignSlotsOp>();
  if (!assign || !assign.isDropless())
    return {};
  return DenseElementsAttr::get(getType(), static_cast<int64_t>(0));
}
