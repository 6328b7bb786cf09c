//===- MoEFusedOps.cpp - Verifiers of the fused expert operations --------===//
//
// moe.sort_by_expert and moe.grouped_matmul: every shape and operand rule of
// their ODS descriptions.
//
//===----------------------------------------------------------------------===//

#include "MoEVerify.h"
#include "moe/IR/MoEOps.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

//===----------------------------------------------------------------------===//
// SortByExpertOp
//===----------------------------------------------------------------------===//

LogicalResult SortByExpertOp::verify() {
  if (failed(verifyStaticShapes(*this)))
    return failure();
  auto experts = getExperts().getType();
  for (auto [name, value] : {std::pair<StringRef, Value>{"slots", getSlots()},
                             std::pair<StringRef, Value>{"keep", getKeep()},
                             std::pair<StringRef, Value>{"gates", getGates()}})
    if (failed(expectShape(*this, name, value.getType(), experts.getShape(),
                           "T, k, as 'experts'")))
      return failure();
  if (getBlock() < 1)
    return emitOpError("'block' must be positive, got ") << getBlock();
  int64_t numExperts = getCounts().getType().getDimSize(0);
  if (numExperts < 1)
    return emitOpError("'counts' needs at least one expert");
  if (failed(expectShape(*this, "offsets", getOffsets().getType(),
                         {numExperts + 1}, "E + 1")))
    return failure();
  int64_t rows = experts.getNumElements() + numExperts * (getBlock() - 1);
  for (auto [name, value] :
       {std::pair<StringRef, Value>{"row_token", getRowToken()},
        std::pair<StringRef, Value>{"row_gate", getRowGate()}})
    if (failed(expectShape(*this, name, value.getType(), {rows},
                           "T·k + E·(block - 1)")))
      return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// RouteRowsOp
//===----------------------------------------------------------------------===//

LogicalResult RouteRowsOp::inferReturnTypes(MLIRContext *context,
                                            std::optional<Location> location,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &types) {
  auto probs = rankedOf(adaptor.getProbs().getType(), 2);
  IntegerAttr k = adaptor.getKAttr();
  if (!probs || !k)
    return emitOptionalError(location,
                             "'moe.route_rows' needs rank-2 probabilities "
                             "and 'k'");
  int64_t tokens = probs.getDimSize(0), experts = probs.getDimSize(1);
  int64_t block = adaptor.getBlockAttr() ? adaptor.getBlock() : 1;
  // Shapes that cannot be built are errors here; the rest is the
  // verifier's.
  if (k.getInt() < 1 || k.getInt() > experts)
    return emitOptionalError(location,
                             "'moe.route_rows' 'k' must be between 1 and the "
                             "number of experts (",
                             experts, "), got ", k.getInt());
  if (block < 1)
    return emitOptionalError(
        location, "'moe.route_rows' 'block' must be positive, got ", block);
  if (ShapedType::isDynamic(tokens) || ShapedType::isDynamic(experts))
    return emitOptionalError(location,
                             "'moe.route_rows' needs static "
                             "probabilities, got ",
                             shapeStr(probs.getShape()));
  Builder b(context);
  SmallVector<int64_t, 2> choice{tokens, k.getInt()};
  int64_t rows = tokens * k.getInt() + experts * (block - 1);
  types.push_back(RankedTensorType::get(choice, b.getI32Type()));
  types.push_back(RankedTensorType::get(choice, b.getF32Type()));
  types.push_back(RankedTensorType::get(choice, b.getI1Type()));
  types.push_back(RankedTensorType::get({experts}, b.getI64Type()));
  types.push_back(RankedTensorType::get({experts + 1}, b.getI64Type()));
  types.push_back(RankedTensorType::get({rows}, b.getI32Type()));
  types.push_back(RankedTensorType::get({rows}, b.getF32Type()));
  return success();
}

LogicalResult RouteRowsOp::verify() {
  if (failed(verifyStaticShapes(*this)))
    return failure();
  int64_t tokens = getProbs().getType().getDimSize(0);
  if (failed(verifyGroupSize(*this, getGroupSize(), tokens)))
    return failure();
  if (auto capacity = getCapacity(); capacity && *capacity < 1)
    return emitOpError("'capacity' must be positive, got ") << *capacity;
  if (Value scores = getGateScores())
    if (failed(expectShape(*this, "gate_scores", scores.getType(),
                           getProbs().getType().getShape(), "T, E")))
      return failure();
  return verifyGateScale(*this, getGateScale());
}

//===----------------------------------------------------------------------===//
// GroupedMatmulOp
//===----------------------------------------------------------------------===//

/// The checks of moe.grouped_matmul and its buffer form, on the shapes of
/// the operands and of the result (or output buffer) `result`.
template <typename OpT>
static LogicalResult verifyGroupedMatmul(OpT op, ShapedType result) {
  auto weight = cast<ShapedType>(op.getWeight().getType());
  int64_t numExperts = weight.getDimSize(0), depth = weight.getDimSize(1),
          cols = weight.getDimSize(2);
  auto input = cast<ShapedType>(op.getInput().getType());
  if (input.getDimSize(1) != depth)
    return op.emitOpError()
           << "'input' rows must have the weight's depth K = " << depth
           << ", got " << input.getDimSize(1);
  if (Value gateWeight = op.getGateWeight()) {
    if (failed(expectShape(op, "gate_weight", gateWeight.getType(),
                           weight.getShape(), "E, K, N, as 'weight'")))
      return failure();
    Type elt = cast<ShapedType>(gateWeight.getType()).getElementType();
    if (elt != weight.getElementType())
      return op.emitOpError() << "'gate_weight' element type " << elt
                              << " differs from the 'weight' element type "
                              << weight.getElementType();
  }
  std::optional<Activation> activation = op.getActivation();
  bool gated = activation && isGated(*activation);
  if (gated && !op.getGateWeight())
    return op.emitOpError()
           << "activation '" << stringifyActivation(*activation)
           << "' is gated and needs a 'gate_weight' operand";
  if (!gated && op.getGateWeight())
    return op.emitOpError("'gate_weight' needs a gated activation (geglu, "
                          "swiglu)");
  if (failed(expectShape(op, "counts", op.getCounts().getType(), {numExperts},
                         "E")))
    return failure();
  if (Value offsets = op.getOffsets())
    if (failed(expectShape(op, "offsets", offsets.getType(), {numExperts + 1},
                           "E + 1")))
      return failure();
  int64_t rows = op.getNumRows();
  if (rows < 1)
    return op.emitOpError("needs at least one row");
  if (!op.getScatter() != !op.getScales())
    return op.emitOpError(
        "'scatter' needs both the row indices and the scales");
  if (Value scatter = op.getScatter()) {
    if (failed(expectShape(op, "scatter indices", scatter.getType(), {rows},
                           "the rows R")) ||
        failed(expectShape(op, "scales", op.getScales().getType(), {rows},
                           "the rows R")))
      return failure();
    if (result.getDimSize(1) != cols)
      return op.emitOpError()
             << "result rows must have the weight's N = " << cols
             << " columns, got " << result.getDimSize(1);
    return success();
  }
  return expectShape(op, "result", result, {rows, cols}, "R, N");
}

LogicalResult GroupedMatmulOp::verify() {
  if (failed(verifyStaticShapes(*this)))
    return failure();
  return verifyGroupedMatmul(*this, getResult().getType());
}

//===----------------------------------------------------------------------===//
// GroupedMatmulBuffersOp
//===----------------------------------------------------------------------===//

LogicalResult GroupedMatmulBuffersOp::verify() {
  for (Value operand : getOperands())
    if (!cast<MemRefType>(operand.getType()).hasStaticShape())
      return emitOpError() << "needs static shapes, got " << operand.getType();
  if (getUniqueTargets() && !getScatter())
    return emitOpError() << "'unique_targets' needs a scatter";
  Type out = getOut().getType().getElementType();
  bool adds = getScatter() && !getUniqueTargets();
  if (!out.isF32() && (adds || out != getWeight().getType().getElementType()))
    return emitOpError() << "output must be f32"
                         << (adds ? " (the scatter adds into it)"
                                  : " or the weights' type")
                         << ", got " << out;
  return verifyGroupedMatmul(*this, getOut().getType());
}

//===----------------------------------------------------------------------===//
// PlaceRowsBuffersOp
//===----------------------------------------------------------------------===//

LogicalResult PlaceRowsBuffersOp::verify() {
  for (Value operand : getOperands())
    if (!cast<MemRefType>(operand.getType()).hasStaticShape())
      return emitOpError() << "needs static shapes, got " << operand.getType();
  ArrayRef<int64_t> choices = getExperts().getType().getShape();
  if (failed(verifyGroupSize(*this, getGroupSize(), choices[0])))
    return failure();
  if (auto capacity = getCapacity(); capacity && *capacity < 1)
    return emitOpError("'capacity' must be positive, got ") << *capacity;
  if (getBlock() < 1)
    return emitOpError("'block' must be positive, got ") << getBlock();
  int64_t numExperts = getCounts().getType().getDimSize(0);
  int64_t rows = getRowToken().getType().getDimSize(0);
  if (failed(expectShape(*this, "gates", getGates().getType(), choices,
                         "T, k, as 'experts'")) ||
      failed(expectShape(*this, "keep", getKeep().getType(), choices,
                         "T, k, as 'experts'")) ||
      (getOrder() && failed(expectShape(*this, "order", getOrder().getType(),
                                        {choices[0]}, "T"))) ||
      failed(expectShape(*this, "offsets", getOffsets().getType(),
                         {numExperts + 1}, "E + 1")) ||
      failed(expectShape(*this, "row_gate", getRowGate().getType(), {rows},
                         "R, as 'row_token'")))
    return failure();
  return success();
}
