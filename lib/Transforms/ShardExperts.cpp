//===- ShardExperts.cpp - The per-rank program of expert parallelism -*- C++
//-*-===//
//
// The moe-shard-experts pass: rewrites a layer's function into what each of
// N expert-parallel ranks runs (its tokens, its experts, two exchanges
// around the experts: padded all-to-all for capacity-bounded layers,
// variable-size row exchange for dropless ones; all-reduced statistics), or
// explains why a layer cannot be sharded that way.
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoEOps.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOESHARDEXPERTS
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// Replaces the type of function argument `arg` by the same tensor with
/// dimension 0 divided by `ranks`.
void shrinkLeadingDim(BlockArgument arg, int64_t ranks) {
  auto type = cast<RankedTensorType>(arg.getType());
  SmallVector<int64_t> shape(type.getShape());
  shape[0] /= ranks;
  arg.setType(type.clone(shape));
}

/// Sums tensor `v` over dimension `dim` (floats or integers).
Value sumOver(OpBuilder &b, Location loc, Value v, int64_t dim) {
  auto type = cast<RankedTensorType>(v.getType());
  SmallVector<int64_t> shape(type.getShape());
  shape.erase(shape.begin() + dim);
  Type elt = type.getElementType();
  Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(elt));
  Value init =
      linalg::FillOp::create(
          b, loc, zero, ValueRange{tensor::EmptyOp::create(b, loc, shape, elt)})
          .getResult(0);
  auto reduce = linalg::ReduceOp::create(
      b, loc, ValueRange{v}, ValueRange{init}, ArrayRef<int64_t>{dim},
      [&](OpBuilder &nested, Location l, ValueRange args) {
        Value sum =
            isa<FloatType>(elt)
                ? arith::AddFOp::create(nested, l, args[0], args[1]).getResult()
                : arith::AddIOp::create(nested, l, args[0], args[1])
                      .getResult();
        linalg::YieldOp::create(nested, l, ValueRange{sum});
      });
  return reduce.getResult(0);
}

/// Sums the `ranks` equal chunks of dimension 1 of a [E/N, N·M, D] tensor
/// into [E/N, M, D].
Value sumChunks(OpBuilder &b, Location loc, Value v, int64_t ranks) {
  auto type = cast<RankedTensorType>(v.getType());
  int64_t experts = type.getDimSize(0), rows = type.getDimSize(1) / ranks,
          model = type.getDimSize(2);
  auto split = RankedTensorType::get({experts, ranks, rows, model},
                                     type.getElementType());
  Value chunks = tensor::ExpandShapeOp::create(
      b, loc, split, v, ArrayRef<ReassociationIndices>{{0}, {1, 2}, {3}});
  return sumOver(b, loc, chunks, 1);
}

/// The per-rank program of a dropless layer: every rank routes its own
/// tokens (nothing is dropped, so groups only matter for the statistics),
/// packs its assignments expert-major, and the variable-size exchange sends
/// each owner exactly the rows of its experts and returns their outputs.
SmallVector<Value> emitDroplessExchange(OpBuilder &b, LayerOp op,
                                        const LayerOperands &in,
                                        int64_t ranks, int64_t world,
                                        int64_t group) {
  Location loc = op.getLoc();
  auto inputType = cast<RankedTensorType>(in.input.getType());
  int64_t local = inputType.getDimSize(0), model = inputType.getDimSize(1);
  int64_t experts = op.getNumExperts(), topK = op.getTopK();
  int64_t localExperts = experts / ranks;
  Type elt = inputType.getElementType();

  TokenChoice topk =
      emitTokenChoice(b, op, in.input, in.router, in.scoreBias);
  auto assign = AssignSlotsOp::create(
      b, loc, topk.experts, Value(), b.getI64IntegerAttr(experts),
      b.getI64IntegerAttr(local), IntegerAttr(),
      PriorityAttr::get(b.getContext(), Priority::Position), UnitAttr());
  auto rowsType = RankedTensorType::get({local * topK, model}, elt);
  Value rows = DispatchOp::create(b, loc, rowsType, in.input, topk.experts,
                                  assign.getSlots(), assign.getKeep());
  // A token sends at most min(k, E/N) rows to one rank.
  auto receivedType = RankedTensorType::get(
      {ranks * local * std::min(topK, localExperts), model}, elt);
  auto countsType =
      RankedTensorType::get({ranks, localExperts}, b.getI64Type());
  auto exchange =
      ExchangeRowsOp::create(b, loc, TypeRange{receivedType, countsType}, rows,
                             assign.getCounts(), ranks);
  Value out = ExpertFFNOp::create(
      b, loc, exchange.getReceived(), in.wIn, in.wGate, in.wOut,
      sumOver(b, loc, exchange.getReceivedCounts(), 0),
      op.getActivationAttr());
  Value back = ReturnRowsOp::create(b, loc, rowsType, out,
                                    exchange.getReceivedCounts(),
                                    assign.getCounts(), ranks);
  Value y = CombineOp::create(b, loc, back, topk.experts, assign.getSlots(),
                              assign.getKeep(), topk.gates);
  y = emitSharedExpert(b, op, in, y);

  // Groups inside the rank: this rank's mean; groups spanning ranks: over
  // the decisions gathered in the group (the same on each of its ranks).
  // Either way the global value is the mean over all ranks.
  Value balance =
      local % group == 0
          ? emitBalanceLoss(b, op, topk.scores, topk.experts, group)
          : emitBalanceLoss(b, op,
                            AllGatherOp::create(b, loc, topk.scores, ranks),
                            AllGatherOp::create(b, loc, topk.experts, ranks),
                            group);
  Value zLoss = RouterZLossOp::create(b, loc, topk.lse);
  Value dropped = CountDroppedOp::create(b, loc, assign.getKeep());
  Value counts = assign.getCounts();
  makeStatisticsGlobal(b, loc, counts, dropped, balance, zLoss, world, 1);
  return {y, counts, dropped, balance, zLoss};
}

/// The per-rank program when routing groups span ranks (§6 of the layer
/// contract): the ranks gather everyone's routing decisions and assign slots
/// over the global token order, so that priorities and capacities are those
/// of the unsharded layer. Expert buffers are indexed by global slots: the
/// owner of an expert sums the (disjoint) rows it receives from every rank,
/// and every rank gathers the expert outputs back.
SmallVector<Value> emitGloballyRouted(OpBuilder &b, LayerOp op,
                                      const LayerOperands &in, int64_t ranks,
                                      int64_t world, int64_t group,
                                      int64_t capacity) {
  Location loc = op.getLoc();
  auto inputType = cast<RankedTensorType>(in.input.getType());
  int64_t local = inputType.getDimSize(0), model = inputType.getDimSize(1);
  int64_t tokens = local * ranks, experts = op.getNumExperts();
  capacity = std::min(capacity, group);
  Type elt = inputType.getElementType();
  bool byProbability = op.getPriority() == Priority::BatchPrioritized;

  // This rank's rows of a global [T, ·] decision.
  Value rank = RankOp::create(b, loc, ranks);
  Value first = arith::MulIOp::create(
      b, loc, rank, arith::ConstantIndexOp::create(b, loc, local));
  auto mine = [&](Value v) -> Value {
    auto type = cast<RankedTensorType>(v.getType());
    SmallVector<OpFoldResult> offsets{first, b.getIndexAttr(0)};
    SmallVector<OpFoldResult> sizes{b.getIndexAttr(local),
                                    b.getIndexAttr(type.getDimSize(1))};
    SmallVector<OpFoldResult> strides(2, b.getIndexAttr(1));
    return tensor::ExtractSliceOp::create(
        b, loc, type.clone({local, type.getDimSize(1)}), v, offsets, sizes,
        strides);
  };

  // The global decisions, and this rank's rows of them: (experts, slots,
  // keep, gates) per token; the statistics over the gathered decisions are
  // those of the whole group of ranks already.
  Value choiceExperts, slots, keep, gates, counts, dropped, balance, lse;
  if (op.isExpertsChoose()) {
    // Every expert takes its C best tokens of the group's gathered scores.
    auto route = RouteOp::create(b, loc, in.input, in.router,
                                 op.getScoreFunctionAttr());
    lse = route.getLse();
    Value allProbs = AllGatherOp::create(b, loc, route.getProbs(), ranks);
    auto choice = emitExpertChoice(b, op, allProbs, group, capacity);
    choiceExperts = mine(choice.getExperts());
    slots = mine(choice.getSlots());
    keep = mine(choice.getKeep());
    gates = mine(choice.getGates());
    counts = choice.getCounts();
    dropped = CountDroppedOp::create(b, loc, choice.getKeep(),
                                     b.getUnitAttr());
    balance = emitNoBalanceLoss(b, loc);
  } else {
    TokenChoice topk =
        emitTokenChoice(b, op, in.input, in.router, in.scoreBias);
    lse = topk.lse;
    Value allExperts = AllGatherOp::create(b, loc, topk.experts, ranks);
    Value allScores = AllGatherOp::create(b, loc, topk.scores, ranks);
    auto assign = AssignSlotsOp::create(
        b, loc, allExperts, byProbability ? allScores : Value(),
        b.getI64IntegerAttr(experts), b.getI64IntegerAttr(group),
        b.getI64IntegerAttr(capacity),
        PriorityAttr::get(b.getContext(), op.getPriority()), UnitAttr());
    choiceExperts = topk.experts;
    gates = topk.gates;
    slots = mine(assign.getSlots());
    keep = mine(assign.getKeep());
    counts = assign.getCounts();
    dropped = CountDroppedOp::create(b, loc, assign.getKeep());
    balance = emitBalanceLoss(b, op, allScores, allExperts, group);
  }

  auto bufferType =
      RankedTensorType::get({experts, (tokens / group) * capacity, model}, elt);
  Value buffer = DispatchOp::create(b, loc, bufferType, in.input,
                                    choiceExperts, slots, keep);
  Value received = AllToAllOp::create(b, loc, buffer, ranks, 0, 1);
  Value out =
      ExpertFFNOp::create(b, loc, sumChunks(b, loc, received, ranks), in.wIn,
                          in.wGate, in.wOut, Value(), op.getActivationAttr());
  Value all = AllGatherOp::create(b, loc, out, ranks);
  Value y = CombineOp::create(b, loc, all, choiceExperts, slots, keep, gates);
  y = emitSharedExpert(b, op, in, y);

  // The z-loss is the average of the ranks' means.
  Value zLoss = RouterZLossOp::create(b, loc, lse);
  if (world == ranks) {
    zLoss = meanOverRanks(b, loc, zLoss, ranks);
    return {y, counts, dropped, balance, zLoss};
  }
  // Replicas: average and sum over them too; every rank of a group holds
  // its group's counts.
  makeStatisticsGlobal(b, loc, counts, dropped, balance, zLoss, world, ranks);
  return {y, counts, dropped, balance, zLoss};
}

LogicalResult shardLayer(LayerOp op, int64_t ranks, int64_t replicas) {
  int64_t tokens = op.getNumTokens(), experts = op.getNumExperts();
  int64_t world = ranks * replicas;
  if (experts % ranks != 0)
    return op.emitOpError()
           << "cannot be sharded over " << ranks << " ranks: its " << experts
           << " experts are not divisible by " << ranks;
  if (tokens % world != 0)
    return op.emitOpError()
           << "cannot be sharded over " << world << " ranks: its " << tokens
           << " tokens are not divisible by " << world;
  // Read before the operands shrink to the rank's share.
  std::optional<int64_t> capacity = op.getCapacity();
  int64_t perRank = tokens / world, group = op.getGroupTokens();
  if (replicas > 1 && (tokens / replicas) % group != 0)
    return op.emitOpError()
           << "cannot be split into " << replicas
           << " data-parallel replicas: its routing groups of " << group
           << " tokens would span replicas of " << tokens / replicas
           << " tokens";
  // Whole groups on every rank can be routed locally; otherwise the ranks
  // route over the global token order. Dropless layers exchange exactly
  // their rows.
  bool local = capacity && perRank % group == 0;

  auto func = op->getParentOfType<func::FuncOp>();
  SmallVector<Value> sharded{op.getInput(), op.getWIn(), op.getWOut()};
  if (op.getWGate())
    sharded.push_back(op.getWGate());
  SmallVector<Value> all(sharded);
  all.push_back(op.getRouter());
  for (Value v : all) {
    auto arg = dyn_cast<BlockArgument>(v);
    if (!func || !arg || arg.getOwner() != &func.getBody().front() ||
        !arg.hasOneUse())
      return op.emitOpError("can only be sharded when its operands are "
                            "arguments of its function used by it alone");
  }
  // The rank's outputs change shape: only the function may return them.
  for (Operation *user : op->getUsers())
    if (!isa<func::ReturnOp>(user))
      return op.emitOpError("can only be sharded when its results are only "
                            "returned by its function");

  // The rank's tokens are 1/(N·R) of the call's; its experts 1/N.
  shrinkLeadingDim(cast<BlockArgument>(op.getInput()), world);
  for (Value v : ArrayRef<Value>(sharded).drop_front())
    shrinkLeadingDim(cast<BlockArgument>(v), ranks);
  OpBuilder b(op);
  DecomposeOptions options;
  options.ranks = ranks;
  options.worldRanks = world;
  LayerOperands operands = LayerOperands::of(op);
  SmallVector<Value> results =
      !capacity && ranks > 1
          ? emitDroplessExchange(b, op, operands, ranks, world, group)
      : local || ranks == 1
          ? emitDecomposedLayer(b, op, operands, options)
          : emitGloballyRouted(b, op, operands, ranks, world, group, *capacity);
  op->replaceAllUsesWith(results);
  op->erase();

  // The function now takes and returns the rank's share.
  auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
  func.setType(FunctionType::get(func.getContext(),
                                 func.getBody().front().getArgumentTypes(),
                                 ret.getOperandTypes()));
  func->setAttr("moe.expert_parallel_ranks", b.getI64IntegerAttr(ranks));
  if (replicas > 1)
    func->setAttr("moe.data_parallel_replicas", b.getI64IntegerAttr(replicas));
  return success();
}

struct ShardExpertsPass
    : mlir::moe::impl::MoEShardExpertsBase<ShardExpertsPass> {
  using MoEShardExpertsBase::MoEShardExpertsBase;

  void runOnOperation() override {
    if (ranks < 1) {
      getOperation().emitError("moe-shard-experts: 'ranks' must be at least "
                               "1, got ")
          << static_cast<int64_t>(ranks);
      return signalPassFailure();
    }
    if (replicas < 1) {
      getOperation().emitError("moe-shard-experts: 'replicas' must be at "
                               "least 1, got ")
          << static_cast<int64_t>(replicas);
      return signalPassFailure();
    }
    if (ranks == 1 && replicas == 1)
      return;
    SmallVector<LayerOp> layers;
    getOperation().walk([&](LayerOp op) { layers.push_back(op); });
    for (LayerOp op : layers)
      if (failed(shardLayer(op, ranks, replicas)))
        return signalPassFailure();
  }
};

} // namespace
