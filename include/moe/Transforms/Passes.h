//===- Passes.h - Passes of the moe toolchain ------------------*- C++ -*-===//
//
// Pass constructors and registration for the moe transforms.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TRANSFORMS_PASSES_H
#define MOE_TRANSFORMS_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Transform/IR/TransformDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Pass/Pass.h"
#include "moe/IR/MoEDialect.h"

namespace mlir {
class RewritePatternSet;
namespace moe {

#define GEN_PASS_DECL
#include "moe/Transforms/Passes.h.inc"

class LayerOp;
class ExpertChoiceOp;

/// The tensors a decomposed layer computes on (those of the moe.layer, or
/// their per-rank counterparts when sharded).
struct LayerOperands {
  Value input, router, wIn, wGate, wOut;
  /// Spec §8 (null when the layer has none): the choice bias and the
  /// shared expert's weights, which no rank shards.
  Value scoreBias, sharedWIn, sharedWGate, sharedWOut, sharedGate;

  /// The operands of `layer` itself.
  static LayerOperands of(LayerOp layer);
};

/// The token-choice routing of a layer (spec §3.1-3.2, §8) on `input`:
/// `moe.route`, `moe.choice_scores` when the layer has a score bias or an
/// expert-group limit, and `moe.top_k` with the gates from the unbiased
/// scores.
struct TokenChoice {
  Value logits, scores, lse, experts, gates;
};
TokenChoice emitTokenChoice(OpBuilder &b, LayerOp layer, Value input,
                            Value router, Value scoreBias);

/// The expert choice of a layer (spec §8) over `probs`, in groups of
/// `groupSize` tokens with C = `capacity`, gates scaled as the layer says.
ExpertChoiceOp emitExpertChoice(OpBuilder &b, LayerOp layer, Value probs,
                                int64_t groupSize, int64_t capacity);

/// `moe.load_balance_loss` of the layer's scores (normalised per token for
/// sigmoid scores, spec §8).
Value emitBalanceLoss(OpBuilder &b, LayerOp layer, Value scores,
                      Value experts, int64_t groupSize);

/// The balance loss of an expert-choice layer: none (balanced by
/// construction, spec §8), a NaN the statistics write as null.
Value emitNoBalanceLoss(OpBuilder &b, Location loc);

/// `y` plus the layer's shared expert on `operands.input` (spec §8), or
/// `y` when the layer has none.
Value emitSharedExpert(OpBuilder &b, LayerOp layer,
                       const LayerOperands &operands, Value y);

/// How to decompose a layer.
struct DecomposeOptions {
  /// Packed buffer layout for capacity-bounded layers too.
  bool packedCapacity = false;
  /// Expert-parallel ranks: > 1 exchanges the expert buffers with
  /// moe.all_to_all around the experts and sums the statistics with
  /// moe.all_reduce (operands are then the rank's tokens and experts).
  int64_t ranks = 1;
  /// All ranks: `ranks` times the data-parallel replicas. The statistics
  /// are summed over all of them (0: `ranks`).
  int64_t worldRanks = 0;
};

/// The statistics of a layer that one rank holds, made global: `counts` and
/// `dropped` are summed and the two losses averaged over `worldRanks` ranks;
/// `replicated` ranks (the expert-parallel group) hold each count already
/// summed over their group, which the sum divides back out.
void makeStatisticsGlobal(OpBuilder &b, Location loc, Value &counts,
                          Value &dropped, Value &balance, Value &zLoss,
                          int64_t worldRanks, int64_t replicated);

/// Emits the decomposed ops of `layer` on `operands` at the builder's
/// insertion point and returns the five results of the layer.
SmallVector<Value> emitDecomposedLayer(OpBuilder &b, LayerOp layer,
                                       const LayerOperands &operands,
                                       const DecomposeOptions &options);

/// The mean over `ranks` ranks of a 0-d f32 tensor `v` that each rank holds:
/// every rank's value scaled by 1/N, then summed with moe.all_reduce.
Value meanOverRanks(OpBuilder &b, Location loc, Value v, int64_t ranks);

/// Adds the pattern that rewrites `moe.layer` into the decomposed ops;
/// `packedCapacity` selects the packed buffer layout for capacity-bounded
/// layers too.
/// Applies `patterns` to `root` greedily without folding: a pass's own
/// rewrites and nothing else (folding the new ops is canonicalize's job).
LogicalResult applyPatternsOnly(Operation *root, RewritePatternSet &&patterns);

void populateDecomposeLayerPatterns(RewritePatternSet &patterns,
                                    bool packedCapacity = false);

#define GEN_PASS_REGISTRATION
#include "moe/Transforms/Passes.h.inc"

} // namespace moe
} // namespace mlir

#endif // MOE_TRANSFORMS_PASSES_H
