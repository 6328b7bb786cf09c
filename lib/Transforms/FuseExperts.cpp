//===- FuseExperts.cpp - Dispatch, expert MLPs and combine fused ---------===//
//
// The moe-fuse-experts pass: dispatch → expert_ffn → combine on a packed
// buffer becomes sort_by_expert + two grouped matmuls (gather in the first
// one's operand load, activation in its epilogue, gate scale and scatter-add
// in the second one's), and the routing that feeds it (top_k, assign_slots,
// sort_by_expert) one route_rows; a packed expert_ffn fed by anything else
// becomes two grouped matmuls.
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoEOps.h"
#include "moe/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEFUSEEXPERTS
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// Rounds an f32 tensor to `elt` when that is narrower.
Value castResult(PatternRewriter &rewriter, Location loc, Value value,
                 Type elt) {
  auto type = cast<RankedTensorType>(value.getType());
  if (type.getElementType() == elt)
    return value;
  return arith::TruncFOp::create(rewriter, loc, type.clone(elt), value);
}

/// The up projection (with activation) and the down projection of one
/// expert MLP as grouped matmuls; `gather`/`scatter` fuse the dispatch and
/// the combine when given.
Value groupedMLP(PatternRewriter &rewriter, Location loc, ExpertFFNOp ffn,
                 Value input, Value offsets, Value gather, Value scatter,
                 Value scales, RankedTensorType resultType) {
  auto wIn = ffn.getWIn().getType();
  int64_t rows = gather ? cast<RankedTensorType>(gather.getType()).getDimSize(0)
                        : cast<RankedTensorType>(input.getType()).getDimSize(0);
  auto hiddenType =
      RankedTensorType::get({rows, wIn.getDimSize(2)}, rewriter.getF32Type());
  auto activation =
      ActivationAttr::get(rewriter.getContext(), ffn.getActivation());
  Value hidden = GroupedMatmulOp::create(
      rewriter, loc, hiddenType, input, gather, ffn.getWIn(), ffn.getWGate(),
      offsets, ffn.getCounts(), Value(), Value(), activation);
  return GroupedMatmulOp::create(rewriter, loc, resultType, hidden, Value(),
                                 ffn.getWOut(), Value(), offsets,
                                 ffn.getCounts(), scatter, scales,
                                 ActivationAttr());
}

/// combine(expert_ffn(dispatch(x))) on a packed buffer → sort_by_expert and
/// two grouped matmuls that read x through the sorted rows.
struct FuseDispatchToCombine : OpRewritePattern<CombineOp> {
  FuseDispatchToCombine(MLIRContext *context, int64_t block)
      : OpRewritePattern(context), block(block) {}

  LogicalResult matchAndRewrite(CombineOp combine,
                                PatternRewriter &rewriter) const override {
    auto ffn = combine.getBuffer().getDefiningOp<ExpertFFNOp>();
    if (!ffn || !ffn.isPacked() || !ffn->hasOneUse())
      return rewriter.notifyMatchFailure(combine,
                                         "not fed by a packed expert_ffn");
    auto dispatch = ffn.getBuffer().getDefiningOp<DispatchOp>();
    if (!dispatch || !dispatch->hasOneUse())
      return rewriter.notifyMatchFailure(combine, "experts not fed by dispatch");
    if (dispatch.getExperts() != combine.getExperts() ||
        dispatch.getSlots() != combine.getSlots() ||
        dispatch.getKeep() != combine.getKeep())
      return rewriter.notifyMatchFailure(
          combine, "dispatch and combine route differently");

    Location loc = combine.getLoc();
    auto experts = combine.getExperts().getType();
    int64_t numExperts = ffn.getWIn().getType().getDimSize(0);
    int64_t rows = experts.getNumElements() + numExperts * (block - 1);
    Type i64 = rewriter.getI64Type();
    auto sorted = SortByExpertOp::create(
        rewriter, loc,
        TypeRange{RankedTensorType::get({numExperts + 1}, i64),
                  RankedTensorType::get({rows}, rewriter.getI32Type()),
                  RankedTensorType::get({rows}, rewriter.getF32Type())},
        combine.getExperts(), combine.getSlots(), combine.getKeep(),
        combine.getGates(), ffn.getCounts(), block);
    auto outType = combine.getOutput().getType();
    Value y = groupedMLP(rewriter, loc, ffn, dispatch.getInput(),
                         sorted.getOffsets(), sorted.getRowToken(),
                         sorted.getRowToken(), sorted.getRowGate(),
                         outType.clone(rewriter.getF32Type()));
    rewriter.replaceOp(combine,
                       castResult(rewriter, loc, y, outType.getElementType()));
    rewriter.eraseOp(ffn);
    rewriter.eraseOp(dispatch);
    return success();
  }

  int64_t block;
};

/// A packed expert_ffn (rows from anywhere) → two grouped matmuls.
struct GroupPackedExperts : OpRewritePattern<ExpertFFNOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(ExpertFFNOp ffn,
                                PatternRewriter &rewriter) const override {
    if (!ffn.isPacked())
      return rewriter.notifyMatchFailure(ffn, "padded expert buffer");
    auto type = ffn.getBuffer().getType();
    Value out = groupedMLP(rewriter, ffn.getLoc(), ffn, ffn.getBuffer(),
                           Value(), Value(), Value(), Value(),
                           type.clone(rewriter.getF32Type()));
    rewriter.replaceOp(ffn, castResult(rewriter, ffn.getLoc(), out,
                                       type.getElementType()));
    return success();
  }
};

/// top_k → assign_slots (packed) → sort_by_expert → route_rows: the choice,
/// the capacity walk and the row layout in one routing step.
struct FuseRouting : OpRewritePattern<SortByExpertOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(SortByExpertOp sort,
                                PatternRewriter &rewriter) const override {
    auto assign = sort.getSlots().getDefiningOp<AssignSlotsOp>();
    if (!assign || !assign.isPackedLayout() ||
        sort.getKeep() != assign.getKeep() ||
        sort.getCounts() != assign.getCounts() ||
        !assign.getSlots().hasOneUse())
      return rewriter.notifyMatchFailure(sort,
                                         "rows not from one packed slot walk");
    auto topK = sort.getExperts().getDefiningOp<TopKOp>();
    if (!topK || assign.getExperts() != topK.getExperts() ||
        sort.getGates() != topK.getGates())
      return rewriter.notifyMatchFailure(sort, "experts not from one top_k");
    // route_rows ranks batch-prioritized groups by the gate scores.
    if (Value probs = assign.getProbs();
        probs && probs != topK.getGateSource())
      return rewriter.notifyMatchFailure(
          sort, "priority ranks by other scores than the gates");

    auto routed = RouteRowsOp::create(
        rewriter, sort.getLoc(), topK.getProbs(), topK.getKAttr(),
        topK.getNormalizeAttr(), assign.getGroupSizeAttr(),
        assign.getCapacityAttr() ? assign.getCapacityAttr() : IntegerAttr(),
        assign.getPriorityAttr(), sort.getBlockAttr(), topK.getGateScores(),
        topK.getGateScaleAttr());
    rewriter.replaceOp(sort, {routed.getOffsets(), routed.getRowToken(),
                              routed.getRowGate()});
    rewriter.replaceAllUsesWith(assign.getKeep(), routed.getKeep());
    rewriter.replaceAllUsesWith(assign.getCounts(), routed.getCounts());
    rewriter.eraseOp(assign);
    rewriter.replaceOp(topK, {routed.getExperts(), routed.getGates()});
    return success();
  }
};

struct FuseExpertsPass : mlir::moe::impl::MoEFuseExpertsBase<FuseExpertsPass> {
  using MoEFuseExpertsBase::MoEFuseExpertsBase;

  void runOnOperation() override {
    if (block < 1) {
      getOperation()->emitError("moe-fuse-experts: 'block' must be at least "
                                "1, got ")
          << block.getValue();
      return signalPassFailure();
    }
    // The whole chains first, so that their expert_ffn is not taken alone.
    RewritePatternSet chains(&getContext());
    chains.add<FuseDispatchToCombine>(&getContext(), block);
    if (failed(applyPatternsOnly(getOperation(), std::move(chains))))
      return signalPassFailure();
    RewritePatternSet rest(&getContext());
    rest.add<GroupPackedExperts, FuseRouting>(&getContext());
    if (failed(applyPatternsOnly(getOperation(), std::move(rest))))
      return signalPassFailure();
  }
};

} // namespace
