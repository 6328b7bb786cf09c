//===- ShardExperts.cpp - The per-rank program of expert parallelism -*- C++
//-*-===//
//
// The moe-shard-experts pass: rewrites a layer's function into what each of
// N expert-parallel ranks runs (its tokens, its experts, two all-to-all
// exchanges around the experts, all-reduced statistics), or explains why a
// layer cannot be sharded that way.
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoEOps.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
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

LogicalResult shardLayer(LayerOp op, int64_t ranks) {
  int64_t tokens = op.getNumTokens(), experts = op.getNumExperts();
  if (experts % ranks != 0)
    return op.emitOpError()
           << "cannot be sharded over " << ranks << " ranks: its " << experts
           << " experts are not divisible by " << ranks;
  if (tokens % ranks != 0)
    return op.emitOpError()
           << "cannot be sharded over " << ranks << " ranks: its " << tokens
           << " tokens are not divisible by " << ranks;
  if (!op.getCapacity())
    return op.emitOpError()
           << "is dropless: sharding it needs a variable-size exchange "
              "between ranks, which moe-shard-experts does not build yet";
  int64_t perRank = tokens / ranks, group = op.getGroupTokens();
  if (perRank % group != 0)
    return op.emitOpError()
           << "has routing groups of " << group << " tokens that span ranks ("
           << perRank << " tokens per rank); set a group_size that divides "
           << perRank;

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

  for (Value v : sharded)
    shrinkLeadingDim(cast<BlockArgument>(v), ranks);
  OpBuilder b(op);
  DecomposeOptions options;
  options.ranks = ranks;
  LayerOperands operands{op.getInput(), op.getRouter(), op.getWIn(),
                         op.getWGate(), op.getWOut()};
  SmallVector<Value> results = emitDecomposedLayer(b, op, operands, options);
  op->replaceAllUsesWith(results);
  op->erase();

  // The function now takes and returns the rank's share.
  auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
  func.setType(FunctionType::get(func.getContext(),
                                 func.getBody().front().getArgumentTypes(),
                                 ret.getOperandTypes()));
  func->setAttr("moe.expert_parallel_ranks", b.getI64IntegerAttr(ranks));
  return success();
}

struct ShardExpertsPass
    : mlir::moe::impl::MoEShardExpertsBase<ShardExpertsPass> {
  using MoEShardExpertsBase::MoEShardExpertsBase;

  void runOnOperation() override {
    if (ranks < 1) {
      getOperation().emitError("moe-shard-experts: 'ranks' must be at least "
                               "1, got ")
          << ranks;
      return signalPassFailure();
    }
    if (ranks == 1)
      return;
    SmallVector<LayerOp> layers;
    getOperation().walk([&](LayerOp op) { layers.push_back(op); });
    for (LayerOp op : layers)
      if (failed(shardLayer(op, ranks)))
        return signalPassFailure();
  }
};

} // namespace
