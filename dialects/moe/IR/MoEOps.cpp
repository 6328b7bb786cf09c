//===- MoEOps.cpp - Verifiers and type inference of the moe ops -*- C++ -*-===//
//
// The verifiers carry the layer contract: every shape relation, element type
// and attribute range that ../shared/spec/moe-layer.md implies is checked
// here with a message naming the operand or attribute and what was expected.
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoEOps.h"
#include "MoEVerify.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

//===----------------------------------------------------------------------===//
// Custom assembly: enum attributes as bare keywords
//===----------------------------------------------------------------------===//

static ParseResult parseActivationKeyword(OpAsmParser &parser,
                                          ActivationAttr &attr) {
  SMLoc loc = parser.getCurrentLocation();
  StringRef keyword;
  if (parser.parseKeyword(&keyword))
    return failure();
  std::optional<Activation> value = symbolizeActivation(keyword);
  if (!value)
    return parser.emitError(loc, "unknown activation '")
           << keyword << "' (expected relu, gelu, gelu_tanh, silu, geglu or "
           << "swiglu)";
  attr = ActivationAttr::get(parser.getContext(), *value);
  return success();
}

static void printActivationKeyword(OpAsmPrinter &printer, Operation *,
                                   ActivationAttr attr) {
  printer << stringifyActivation(attr.getValue());
}

static ParseResult parsePriorityKeyword(OpAsmParser &parser,
                                        PriorityAttr &attr) {
  SMLoc loc = parser.getCurrentLocation();
  StringRef keyword;
  if (parser.parseKeyword(&keyword))
    return failure();
  std::optional<Priority> value = symbolizePriority(keyword);
  if (!value)
    return parser.emitError(loc, "unknown priority '")
           << keyword << "' (expected position or batch_prioritized)";
  attr = PriorityAttr::get(parser.getContext(), *value);
  return success();
}

static void printPriorityKeyword(OpAsmPrinter &printer, Operation *,
                                 PriorityAttr attr) {
  printer << stringifyPriority(attr.getValue());
}

/// `activation <keyword>` when the attribute is present, nothing otherwise.
static ParseResult parseOptionalActivation(OpAsmParser &parser,
                                           ActivationAttr &attr) {
  if (failed(parser.parseOptionalKeyword("activation")))
    return success();
  return parseActivationKeyword(parser, attr);
}

static void printOptionalActivation(OpAsmPrinter &printer, Operation *op,
                                    ActivationAttr attr) {
  if (!attr)
    return;
  printer << "activation ";
  printActivationKeyword(printer, op, attr);
}

static ParseResult parseGroupScoreKeyword(OpAsmParser &parser,
                                          GroupScoreAttr &attr) {
  SMLoc loc = parser.getCurrentLocation();
  StringRef keyword;
  if (parser.parseKeyword(&keyword))
    return failure();
  std::optional<GroupScore> value = symbolizeGroupScore(keyword);
  if (!value)
    return parser.emitError(loc, "unknown group score '")
           << keyword << "' (expected max or top2_sum)";
  attr = GroupScoreAttr::get(parser.getContext(), *value);
  return success();
}

static void printGroupScoreKeyword(OpAsmPrinter &printer, Operation *,
                                   GroupScoreAttr attr) {
  printer << stringifyGroupScore(attr.getValue());
}

/// `score_function <keyword>` when present; softmax (the default) otherwise.
static ParseResult parseOptionalScoreFunction(OpAsmParser &parser,
                                              ScoreFunctionAttr &attr) {
  if (failed(parser.parseOptionalKeyword("score_function")))
    return success();
  SMLoc loc = parser.getCurrentLocation();
  StringRef keyword;
  if (parser.parseKeyword(&keyword))
    return failure();
  std::optional<ScoreFunction> value = symbolizeScoreFunction(keyword);
  if (!value)
    return parser.emitError(loc, "unknown score function '")
           << keyword << "' (expected softmax or sigmoid)";
  attr = ScoreFunctionAttr::get(parser.getContext(), *value);
  return success();
}

static void printOptionalScoreFunction(OpAsmPrinter &printer, Operation *,
                                       ScoreFunctionAttr attr) {
  if (attr && attr.getValue() != ScoreFunction::Softmax)
    printer << " score_function " << stringifyScoreFunction(attr.getValue());
}

/// The spec §8 attributes of `moe.layer`, each an optional keyword in this
/// order: `routing experts_choose`, `score_function sigmoid`, `num_groups G`,
/// `topk_groups K`, `group_score top2_sum`, `gate_scale X`. Defaults are not
/// printed.
static ParseResult parseRoutingFamily(OpAsmParser &parser, RoutingAttr &routing,
                                      ScoreFunctionAttr &function,
                                      IntegerAttr &groups, IntegerAttr &kept,
                                      GroupScoreAttr &groupScore,
                                      FloatAttr &gateScale) {
  MLIRContext *context = parser.getContext();
  if (succeeded(parser.parseOptionalKeyword("routing"))) {
    SMLoc loc = parser.getCurrentLocation();
    StringRef keyword;
    if (parser.parseKeyword(&keyword))
      return failure();
    std::optional<Routing> value = symbolizeRouting(keyword);
    if (!value)
      return parser.emitError(loc, "unknown routing '")
             << keyword << "' (expected tokens_choose or experts_choose)";
    routing = RoutingAttr::get(context, *value);
  }
  if (parseOptionalScoreFunction(parser, function))
    return failure();
  Type i64 = IntegerType::get(context, 64);
  auto parseInt = [&](StringRef keyword, IntegerAttr &attr) -> ParseResult {
    if (failed(parser.parseOptionalKeyword(keyword)))
      return success();
    int64_t value = 0;
    if (parser.parseInteger(value))
      return failure();
    attr = IntegerAttr::get(i64, value);
    return success();
  };
  if (parseInt("num_groups", groups) || parseInt("topk_groups", kept))
    return failure();
  if (succeeded(parser.parseOptionalKeyword("group_score")) &&
      parseGroupScoreKeyword(parser, groupScore))
    return failure();
  if (succeeded(parser.parseOptionalKeyword("gate_scale"))) {
    double value;
    if (parser.parseFloat(value))
      return failure();
    gateScale = FloatAttr::get(Float64Type::get(context), value);
  }
  return success();
}

static void printRoutingFamily(OpAsmPrinter &printer, Operation *,
                               RoutingAttr routing, ScoreFunctionAttr function,
                               IntegerAttr groups, IntegerAttr kept,
                               GroupScoreAttr groupScore, FloatAttr gateScale) {
  if (routing && routing.getValue() != Routing::TokensChoose)
    printer << " routing " << stringifyRouting(routing.getValue());
  printOptionalScoreFunction(printer, nullptr, function);
  if (groups && groups.getInt() != 1)
    printer << " num_groups " << groups.getInt();
  if (kept)
    printer << " topk_groups " << kept.getInt();
  if (groupScore && groupScore.getValue() != GroupScore::Max)
    printer << " group_score " << stringifyGroupScore(groupScore.getValue());
  if (gateScale && gateScale.getValueAsDouble() != 1.0) {
    printer << " gate_scale ";
    printer.printFloat(gateScale.getValue());
  }
}

#define GET_OP_CLASSES
#include "moe/IR/MoEOps.cpp.inc"

//===----------------------------------------------------------------------===//
// Shared helpers
//===----------------------------------------------------------------------===//

RankedTensorType mlir::moe::detail::rankedOf(Type type, int64_t rank) {
  auto ranked = dyn_cast_or_null<RankedTensorType>(type);
  if (!ranked || ranked.getRank() != rank)
    return nullptr;
  return ranked;
}

std::string mlir::moe::detail::shapeStr(ArrayRef<int64_t> shape) {
  std::string s = "[";
  for (auto [i, d] : llvm::enumerate(shape)) {
    if (i)
      s += ", ";
    s += ShapedType::isDynamic(d) ? std::string("?") : std::to_string(d);
  }
  return s + "]";
}

/// Every tensor operand and result of a moe op has a static shape: buffer
/// sizes and capacities are decided at compile time.
LogicalResult mlir::moe::detail::verifyStaticShapes(Operation *op) {
  for (OpOperand &operand : op->getOpOperands())
    if (auto t = dyn_cast<RankedTensorType>(operand.get().getType());
        t && !t.hasStaticShape())
      return op->emitOpError("operand #")
             << operand.getOperandNumber() << " must have a static shape, got "
             << t;
  for (OpResult result : op->getResults())
    if (auto t = dyn_cast<RankedTensorType>(result.getType());
        t && !t.hasStaticShape())
      return op->emitOpError("result #")
             << result.getResultNumber() << " must have a static shape, got "
             << t;
  return success();
}

/// Checks that `type` has exactly `expected` as shape.
LogicalResult mlir::moe::detail::expectShape(Operation *op, StringRef name,
                                             Type type,
                                             ArrayRef<int64_t> expected,
                                             StringRef dims) {
  auto shape = cast<ShapedType>(type).getShape();
  if (shape == expected)
    return success();
  return op->emitOpError() << "'" << name << "' must have shape "
                           << shapeStr(expected) << " (" << dims << "), got "
                           << shapeStr(shape);
}

/// Checks the expert weights of a layer or expert_ffn: w_in [E, D, F],
/// optional w_gate [E, D, F], w_out [E, F, D], one element type, and w_gate
/// present exactly for gated activations.
static LogicalResult verifyExpertWeights(Operation *op, int64_t numExperts,
                                         int64_t modelDim, Value wIn,
                                         Value wGate, Value wOut,
                                         Activation activation) {
  auto wInType = cast<RankedTensorType>(wIn.getType());
  int64_t hidden = wInType.getDimSize(2);
  if (failed(expectShape(op, "w_in", wInType, {numExperts, modelDim, hidden},
                         "E, D, F")))
    return failure();
  if (failed(expectShape(op, "w_out", wOut.getType(),
                         {numExperts, hidden, modelDim}, "E, F, D")))
    return failure();
  bool gated = isGated(activation);
  if (gated && !wGate)
    return op->emitOpError()
           << "activation '" << stringifyActivation(activation)
           << "' is gated and needs a 'w_gate' operand";
  if (!gated && wGate)
    return op->emitOpError()
           << "'w_gate' is only valid with a gated activation (geglu, "
              "swiglu), not '"
           << stringifyActivation(activation) << "'";
  if (wGate && failed(expectShape(op, "w_gate", wGate.getType(),
                                  {numExperts, modelDim, hidden}, "E, D, F")))
    return failure();
  Type elt = wInType.getElementType();
  for (auto [name, value] : {std::pair<StringRef, Value>{"w_out", wOut},
                             std::pair<StringRef, Value>{"w_gate", wGate}}) {
    if (!value)
      continue;
    Type other = cast<ShapedType>(value.getType()).getElementType();
    if (other != elt)
      return op->emitOpError()
             << "'" << name << "' element type " << other
             << " differs from the 'w_in' element type " << elt;
  }
  return success();
}

/// Checks that [T, k] operands agree: `first` sets the shape.
static LogicalResult
verifySameAssignments(Operation *op,
                      ArrayRef<std::pair<StringRef, Value>> operands) {
  ArrayRef<int64_t> shape =
      cast<ShapedType>(operands.front().second.getType()).getShape();
  for (auto [name, value] : operands.drop_front()) {
    auto other = cast<ShapedType>(value.getType()).getShape();
    if (other != shape)
      return op->emitOpError()
             << "'" << name << "' must have the shape of '"
             << operands.front().first << "' " << shapeStr(shape) << ", got "
             << shapeStr(other);
  }
  return success();
}

LogicalResult mlir::moe::detail::verifyGroupSize(Operation *op,
                                                int64_t groupSize,
                                                int64_t tokens) {
  if (groupSize < 1)
    return op->emitOpError("'group_size' must be positive, got ") << groupSize;
  if (tokens % groupSize != 0)
    return op->emitOpError()
           << "'group_size' (" << groupSize
           << ") must divide the number of tokens (" << tokens << ")";
  return success();
}

LogicalResult mlir::moe::detail::verifyGateScale(Operation *op,
                                                const APFloat &scale) {
  double value = scale.convertToDouble();
  if (value > 0 && std::isfinite(value))
    return success();
  return op->emitOpError("'gate_scale' must be a positive finite number, got ")
         << value;
}

static RankedTensorType scalarTensor(Type elt) {
  return RankedTensorType::get({}, elt);
}

//===----------------------------------------------------------------------===//
// LayerOp
//===----------------------------------------------------------------------===//

LogicalResult LayerOp::inferReturnTypes(MLIRContext *context,
                                        std::optional<Location> location,
                                        Adaptor adaptor,
                                        SmallVectorImpl<Type> &types) {
  auto input = rankedOf(adaptor.getInput().getType(), 2);
  auto router = rankedOf(adaptor.getRouter().getType(), 2);
  if (!input || !router)
    return emitOptionalError(location,
                             "'moe.layer' needs a rank-2 input and router");
  Builder b(context);
  types.push_back(input);
  types.push_back(
      RankedTensorType::get({router.getDimSize(0)}, b.getI64Type()));
  types.push_back(scalarTensor(b.getI64Type()));
  types.push_back(scalarTensor(b.getF32Type()));
  types.push_back(scalarTensor(b.getF32Type()));
  return success();
}

int64_t LayerOp::getNumTokens() { return getInput().getType().getDimSize(0); }
int64_t LayerOp::getModelDim() { return getInput().getType().getDimSize(1); }
int64_t LayerOp::getNumExperts() { return getRouter().getType().getDimSize(0); }
int64_t LayerOp::getHiddenDim() { return getWIn().getType().getDimSize(2); }
int64_t LayerOp::getGroupTokens() {
  return getGroupSize().value_or(getNumTokens());
}

std::optional<int64_t> LayerOp::getCapacity() {
  // Expert choice (§8): no k factor, and an expert takes at most S tokens.
  bool experts = isExpertsChoose();
  auto atMostGroup = [&](int64_t c) {
    return experts ? std::min(c, getGroupTokens()) : c;
  };
  if (auto fixed = getExpertCapacity())
    return atMostGroup(*fixed);
  auto factor = getCapacityFactor();
  if (!factor)
    return std::nullopt;
  double perExpert = experts ? 1.0 : static_cast<double>(getTopK());
  double slots = factor->convertToDouble() * perExpert *
                 static_cast<double>(getGroupTokens()) /
                 static_cast<double>(getNumExperts());
  double rounded = std::ceil(slots);
  // Beyond the group size a capacity cannot bind; clamping keeps the
  // conversion defined for absurd factors without changing any result.
  if (!(rounded < static_cast<double>(std::numeric_limits<int64_t>::max())))
    return atMostGroup(std::numeric_limits<int64_t>::max());
  return atMostGroup(
      std::max<int64_t>(getMinCapacity(), static_cast<int64_t>(rounded)));
}

/// The spec §8 rules of a layer: score bias, expert groups, gate scale,
/// expert choice and the shared expert.
static LogicalResult verifyRoutingFamily(LayerOp op) {
  int64_t experts = op.getNumExperts(), model = op.getModelDim();
  if (Value bias = op.getScoreBias())
    if (failed(expectShape(op, "score_bias", bias.getType(), {experts}, "E")))
      return failure();
  int64_t groups = op.getNumGroups();
  if (groups < 1 || experts % groups != 0)
    return op.emitOpError() << "'num_groups' must be positive and divide the "
                               "number of experts ("
                            << experts << "), got " << groups;
  int64_t kept = op.getKeptGroups();
  if (kept < 1 || kept > groups)
    return op.emitOpError() << "'topk_groups' must be between 1 and "
                               "'num_groups' ("
                            << groups << "), got " << kept;
  if (op.getGroupScore() == GroupScore::Top2Sum && experts / groups < 2)
    return op.emitOpError() << "'group_score top2_sum' needs at least two "
                               "experts per group, got "
                            << experts / groups;
  if (failed(verifyGateScale(op, op.getGateScale())))
    return failure();
  if (op.isExpertsChoose()) {
    if (op.getTopK() != 1)
      return op.emitOpError("'routing experts_choose' needs 'top_k' 1 (each "
                            "expert chooses its tokens), got ")
             << op.getTopK();
    for (auto [present, what] :
         {std::pair<bool, StringRef>{op.getNormalizeGates(), "'normalize_gates'"},
          {op.getPriority() != Priority::Position, "'priority'"},
          {bool(op.getScoreBias()), "'score_bias'"},
          {groups != 1 || op.getTopkGroups().has_value(), "expert groups"},
          {op.getScoreFunction() != ScoreFunction::Softmax,
           "'score_function sigmoid'"}})
      if (present)
        return op.emitOpError()
               << what << " does not apply to 'routing experts_choose'";
    if (!op.getCapacity())
      return op.emitOpError("'routing experts_choose' needs a capacity "
                            "('capacity_factor' or 'expert_capacity')");
  } else if (op.getTopK() > kept * (experts / groups)) {
    return op.emitOpError() << "'top_k' (" << op.getTopK()
                            << ") exceeds the experts of the 'topk_groups' "
                               "best groups ("
                            << kept * (experts / groups) << ")";
  }

  Value sharedIn = op.getSharedWIn(), sharedGateW = op.getSharedWGate(),
        sharedOut = op.getSharedWOut(), sharedGate = op.getSharedGate();
  if (!sharedIn) {
    if (sharedGateW || sharedOut || sharedGate)
      return op.emitOpError("the shared expert needs 'shared_w_in' and "
                            "'shared_w_out'");
    return success();
  }
  if (!sharedOut)
    return op.emitOpError("the shared expert needs 'shared_w_out'");
  int64_t hidden = cast<RankedTensorType>(sharedIn.getType()).getDimSize(1);
  if (failed(expectShape(op, "shared_w_in", sharedIn.getType(),
                         {model, hidden}, "D, Fs")) ||
      failed(expectShape(op, "shared_w_out", sharedOut.getType(),
                         {hidden, model}, "Fs, D")))
    return failure();
  bool gated = isGated(op.getActivation());
  if (gated != bool(sharedGateW))
    return op.emitOpError(gated ? "the gated activation needs 'shared_w_gate'"
                                : "'shared_w_gate' needs a gated activation");
  if (sharedGateW && failed(expectShape(op, "shared_w_gate",
                                        sharedGateW.getType(), {model, hidden},
                                        "D, Fs")))
    return failure();
  if (sharedGate &&
      failed(expectShape(op, "shared_gate", sharedGate.getType(), {model}, "D")))
    return failure();
  return success();
}

LogicalResult LayerOp::verify() {
  if (failed(verifyStaticShapes(*this)))
    return failure();
  int64_t tokens = getNumTokens(), model = getModelDim();
  int64_t experts = getNumExperts();
  if (tokens < 1 || model < 1 || experts < 1)
    return emitOpError("needs at least one token, one feature and one expert, "
                       "got input ")
           << getInput().getType() << " and router " << getRouter().getType();
  if (failed(expectShape(*this, "router", getRouter().getType(),
                         {experts, model}, "E, D")))
    return failure();
  if (failed(verifyExpertWeights(*this, experts, model, getWIn(), getWGate(),
                                 getWOut(), getActivation())))
    return failure();
  if (getHiddenDim() < 1)
    return emitOpError("'w_in' must have a positive hidden size F, got ")
           << getWIn().getType();
  if (getTopK() < 1 || getTopK() > experts)
    return emitOpError() << "'top_k' must be between 1 and the number of "
                            "experts ("
                         << experts << "), got " << getTopK();
  if (auto factor = getCapacityFactor()) {
    double cf = factor->convertToDouble();
    if (!(cf > 0) || !std::isfinite(cf))
      return emitOpError("'capacity_factor' must be a positive finite number, "
                         "got ")
             << cf;
    if (getExpertCapacity())
      return emitOpError("'capacity_factor' and 'expert_capacity' are "
                         "exclusive: 'expert_capacity' fixes the capacity");
  }
  if (auto fixed = getExpertCapacity(); fixed && *fixed < 1)
    return emitOpError("'expert_capacity' must be positive, got ") << *fixed;
  if (getMinCapacity() < 1)
    return emitOpError("'min_capacity' must be at least 1, got ")
           << getMinCapacity();
  if (getMinCapacity() != 1 && !getCapacityFactor())
    return emitOpError("'min_capacity' only applies with 'capacity_factor'");
  if (auto group = getGroupSize())
    if (failed(verifyGroupSize(*this, *group, tokens)))
      return failure();
  return verifyRoutingFamily(*this);
}

//===----------------------------------------------------------------------===//
// RouteOp
//===----------------------------------------------------------------------===//

LogicalResult RouteOp::inferReturnTypes(MLIRContext *context,
                                        std::optional<Location> location,
                                        Adaptor adaptor,
                                        SmallVectorImpl<Type> &types) {
  auto input = rankedOf(adaptor.getInput().getType(), 2);
  auto router = rankedOf(adaptor.getRouter().getType(), 2);
  if (!input || !router)
    return emitOptionalError(location,
                             "'moe.route' needs a rank-2 input and router");
  Type f32 = Float32Type::get(context);
  int64_t tokens = input.getDimSize(0), experts = router.getDimSize(0);
  auto matrix = RankedTensorType::get({tokens, experts}, f32);
  types.append({matrix, matrix, RankedTensorType::get({tokens}, f32)});
  return success();
}

LogicalResult RouteOp::verify() {
  if (failed(verifyStaticShapes(*this)))
    return failure();
  int64_t model = getInput().getType().getDimSize(1);
  return expectShape(*this, "router", getRouter().getType(),
                     {getRouter().getType().getDimSize(0), model}, "E, D");
}

//===----------------------------------------------------------------------===//
// TopKOp
//===----------------------------------------------------------------------===//

LogicalResult TopKOp::inferReturnTypes(MLIRContext *context,
                                       std::optional<Location> location,
                                       Adaptor adaptor,
                                       SmallVectorImpl<Type> &types) {
  auto probs = rankedOf(adaptor.getProbs().getType(), 2);
  IntegerAttr k = adaptor.getKAttr();
  if (!probs || !k)
    return emitOptionalError(location,
                             "'moe.top_k' needs rank-2 probabilities and 'k'");
  // A negative k has no result shape (and INT64_MIN would read as a dynamic
  // dimension); k = 0 still infers and is rejected by the verifier.
  if (k.getInt() < 0)
    return emitOptionalError(location,
                             "'moe.top_k' 'k' must be between 1 and "
                             "the number of experts (",
                             probs.getDimSize(1), "), got ", k.getInt());
  SmallVector<int64_t, 2> shape{probs.getDimSize(0), k.getInt()};
  types.push_back(RankedTensorType::get(shape, IntegerType::get(context, 32)));
  types.push_back(RankedTensorType::get(shape, Float32Type::get(context)));
  return success();
}

LogicalResult TopKOp::verify() {
  if (failed(verifyStaticShapes(*this)))
    return failure();
  int64_t experts = getProbs().getType().getDimSize(1);
  if (getK() < 1 || getK() > experts)
    return emitOpError() << "'k' must be between 1 and the number of experts ("
                         << experts << "), got " << getK();
  if (Value scores = getGateScores())
    if (failed(expectShape(*this, "gate_scores", scores.getType(),
                           getProbs().getType().getShape(), "T, E")))
      return failure();
  return verifyGateScale(*this, getGateScale());
}

//===----------------------------------------------------------------------===//
// ChoiceScoresOp
//===----------------------------------------------------------------------===//

LogicalResult ChoiceScoresOp::inferReturnTypes(MLIRContext *,
                                               std::optional<Location>,
                                               Adaptor adaptor,
                                               SmallVectorImpl<Type> &types) {
  types.push_back(adaptor.getScores().getType());
  return success();
}

LogicalResult ChoiceScoresOp::verify() {
  if (failed(verifyStaticShapes(*this)))
    return failure();
  int64_t experts = getScores().getType().getDimSize(1);
  if (Value bias = getBias())
    if (failed(expectShape(*this, "bias", bias.getType(), {experts}, "E")))
      return failure();
  int64_t groups = getNumGroups();
  if (groups < 1 || experts % groups != 0)
    return emitOpError() << "'num_groups' must be positive and divide the "
                            "number of experts ("
                         << experts << "), got " << groups;
  if (getKeep() < 1 || getKeep() > groups)
    return emitOpError() << "'keep' must be between 1 and 'num_groups' ("
                         << groups << "), got " << getKeep();
  if (getGroupScore() == GroupScore::Top2Sum && experts / groups < 2)
    return emitOpError() << "'group_score top2_sum' needs at least two "
                            "experts per group, got "
                         << experts / groups;
  return success();
}

//===----------------------------------------------------------------------===//
// ExpertChoiceOp
//===----------------------------------------------------------------------===//

LogicalResult ExpertChoiceOp::inferReturnTypes(MLIRContext *context,
                                               std::optional<Location> location,
                                               Adaptor adaptor,
                                               SmallVectorImpl<Type> &types) {
  auto probs = rankedOf(adaptor.getProbs().getType(), 2);
  if (!probs)
    return emitOptionalError(location,
                             "'moe.expert_choice' needs rank-2 probabilities");
  Builder b(context);
  ArrayRef<int64_t> shape = probs.getShape();
  types.push_back(RankedTensorType::get(shape, b.getI32Type()));
  types.push_back(RankedTensorType::get(shape, b.getI32Type()));
  types.push_back(RankedTensorType::get(shape, b.getI1Type()));
  types.push_back(RankedTensorType::get(shape, b.getF32Type()));
  types.push_back(RankedTensorType::get({shape[1]}, b.getI64Type()));
  return success();
}

LogicalResult ExpertChoiceOp::verify() {
  if (failed(verifyStaticShapes(*this)))
    return failure();
  int64_t tokens = getProbs().getType().getDimSize(0);
  if (failed(verifyGroupSize(*this, getGroupSize(), tokens)))
    return failure();
  if (getCapacity() < 1 || getCapacity() > getGroupSize())
    return emitOpError() << "'capacity' must be between 1 and 'group_size' ("
                         << getGroupSize() << "), got " << getCapacity();
  return verifyGateScale(*this, getGateScale());
}

//===----------------------------------------------------------------------===//
// SharedExpertOp
//===----------------------------------------------------------------------===//

LogicalResult SharedExpertOp::inferReturnTypes(MLIRContext *,
                                               std::optional<Location>,
                                               Adaptor adaptor,
                                               SmallVectorImpl<Type> &types) {
  types.push_back(adaptor.getRouted().getType());
  return success();
}

LogicalResult SharedExpertOp::verify() {
  if (failed(verifyStaticShapes(*this)))
    return failure();
  auto input = getInput().getType();
  int64_t model = input.getDimSize(1);
  if (failed(expectShape(*this, "routed", getRouted().getType(),
                         input.getShape(), "T, D")))
    return failure();
  int64_t hidden = getWIn().getType().getDimSize(1);
  if (failed(expectShape(*this, "w_in", getWIn().getType(), {model, hidden},
                         "D, Fs")) ||
      failed(expectShape(*this, "w_out", getWOut().getType(), {hidden, model},
                         "Fs, D")))
    return failure();
  bool gated = isGated(getActivation());
  if (gated != bool(getWGate()))
    return emitOpError(gated ? "the gated activation needs 'w_gate'"
                             : "'w_gate' needs a gated activation");
  if (getWGate() && failed(expectShape(*this, "w_gate", getWGate().getType(),
                                       {model, hidden}, "D, Fs")))
    return failure();
  if (getGate() &&
      failed(expectShape(*this, "gate", getGate().getType(), {model}, "D")))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// AssignSlotsOp
//===----------------------------------------------------------------------===//

LogicalResult AssignSlotsOp::inferReturnTypes(MLIRContext *context,
                                              std::optional<Location> location,
                                              Adaptor adaptor,
                                              SmallVectorImpl<Type> &types) {
  auto experts = rankedOf(adaptor.getExperts().getType(), 2);
  IntegerAttr numExperts = adaptor.getNumExpertsAttr();
  if (!experts || !numExperts)
    return emitOptionalError(
        location, "'moe.assign_slots' needs rank-2 experts and 'num_experts'");
  // A negative expert count has no [E] result shape; 0 is left to the
  // verifier.
  if (numExperts.getInt() < 0)
    return emitOptionalError(location,
                             "'moe.assign_slots' 'num_experts' must be "
                             "positive, got ",
                             numExperts.getInt());
  Builder b(context);
  types.push_back(experts.clone(b.getI32Type()));
  types.push_back(experts.clone(b.getI1Type()));
  types.push_back(RankedTensorType::get({numExperts.getInt()}, b.getI64Type()));
  return success();
}

LogicalResult AssignSlotsOp::verify() {
  if (failed(verifyStaticShapes(*this)))
    return failure();
  int64_t tokens = getExperts().getType().getDimSize(0);
  int64_t choices = getExperts().getType().getDimSize(1);
  if (getNumExperts() < 1)
    return emitOpError("'num_experts' must be positive, got ")
           << getNumExperts();
  if (choices < 1 || choices > getNumExperts())
    return emitOpError() << "'experts' must have between 1 and num_experts ("
                         << getNumExperts() << ") choices per token, got "
                         << choices;
  if (failed(verifyGroupSize(*this, getGroupSize(), tokens)))
    return failure();
  if (auto capacity = getCapacity(); capacity && *capacity < 1)
    return emitOpError("'capacity' must be positive, got ") << *capacity;
  if (getPacked() && isDropless())
    return emitOpError("'packed' is implied without a capacity; drop it");
  bool byProbability = getPriority() == Priority::BatchPrioritized;
  if (byProbability && !getProbs())
    return emitOpError("priority 'batch_prioritized' needs the router "
                       "probabilities as an operand");
  if (!byProbability && getProbs())
    return emitOpError("router probabilities are only read with priority "
                       "'batch_prioritized'");
  if (Value probs = getProbs())
    return expectShape(*this, "probs", probs.getType(),
                       {tokens, getNumExperts()}, "T, E");
  return success();
}

//===----------------------------------------------------------------------===//
// DispatchOp
//===----------------------------------------------------------------------===//

LogicalResult DispatchOp::verify() {
  if (failed(verifyStaticShapes(*this)))
    return failure();
  if (failed(verifySameAssignments(*this, {{"experts", getExperts()},
                                           {"slots", getSlots()},
                                           {"keep", getKeep()}})))
    return failure();
  auto input = getInput().getType();
  auto assignments = getExperts().getType();
  if (assignments.getDimSize(0) != input.getDimSize(0))
    return emitOpError() << "'experts' must have one row per token ("
                         << input.getDimSize(0) << "), got "
                         << assignments.getDimSize(0);
  auto buffer = getBuffer().getType();
  if (buffer.getElementType() != input.getElementType())
    return emitOpError() << "buffer element type " << buffer.getElementType()
                         << " differs from the input element type "
                         << input.getElementType();
  int64_t model = input.getDimSize(1);
  if (buffer.getShape().back() != model)
    return emitOpError() << "buffer rows must have the input's width (" << model
                         << "), got " << buffer;
  int64_t rows = assignments.getNumElements();
  if (buffer.getRank() == 2 && buffer.getDimSize(0) != rows)
    return emitOpError() << "a packed buffer must have T·k = " << rows
                         << " rows, got " << buffer.getDimSize(0);
  if (buffer.getRank() == 3 && buffer.getDimSize(0) < 1)
    return emitOpError("a padded buffer needs at least one expert");
  return success();
}

//===----------------------------------------------------------------------===//
// ExpertFFNOp
//===----------------------------------------------------------------------===//

LogicalResult ExpertFFNOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location>,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &types) {
  types.push_back(adaptor.getBuffer().getType());
  return success();
}

LogicalResult ExpertFFNOp::verify() {
  if (failed(verifyStaticShapes(*this)))
    return failure();
  auto buffer = getBuffer().getType();
  int64_t experts = getWIn().getType().getDimSize(0);
  int64_t model = buffer.getShape().back();
  if (failed(verifyExpertWeights(*this, experts, model, getWIn(), getWGate(),
                                 getWOut(), getActivation())))
    return failure();
  if (isPacked()) {
    if (!getCounts())
      return emitOpError("a packed [R, D] buffer needs the per-expert row "
                         "'counts' operand");
    return expectShape(*this, "counts", getCounts().getType(), {experts}, "E");
  }
  if (getCounts())
    return emitOpError("'counts' only applies to a packed [R, D] buffer");
  if (buffer.getDimSize(0) != experts)
    return emitOpError() << "a padded buffer must have one part per expert ("
                         << experts << "), got " << buffer.getDimSize(0);
  return success();
}

//===----------------------------------------------------------------------===//
// CombineOp
//===----------------------------------------------------------------------===//

LogicalResult CombineOp::inferReturnTypes(MLIRContext *,
                                          std::optional<Location> location,
                                          Adaptor adaptor,
                                          SmallVectorImpl<Type> &types) {
  auto buffer = dyn_cast<RankedTensorType>(adaptor.getBuffer().getType());
  auto experts = rankedOf(adaptor.getExperts().getType(), 2);
  if (!buffer || buffer.getRank() < 1 || !experts)
    return emitOptionalError(
        location, "'moe.combine' needs a ranked buffer and rank-2 experts");
  types.push_back(
      RankedTensorType::get({experts.getDimSize(0), buffer.getShape().back()},
                            buffer.getElementType()));
  return success();
}

LogicalResult CombineOp::verify() {
  if (failed(verifyStaticShapes(*this)))
    return failure();
  if (failed(verifySameAssignments(*this, {{"experts", getExperts()},
                                           {"slots", getSlots()},
                                           {"keep", getKeep()},
                                           {"gates", getGates()}})))
    return failure();
  auto buffer = getBuffer().getType();
  int64_t rows = getExperts().getType().getNumElements();
  if (buffer.getRank() == 2 && buffer.getDimSize(0) != rows)
    return emitOpError() << "a packed buffer must have T·k = " << rows
                         << " rows, got " << buffer.getDimSize(0);
  return success();
}

//===----------------------------------------------------------------------===//
// AllToAllOp
//===----------------------------------------------------------------------===//

LogicalResult AllToAllOp::inferReturnTypes(MLIRContext *,
                                           std::optional<Location> location,
                                           Adaptor adaptor,
                                           SmallVectorImpl<Type> &types) {
  auto input = dyn_cast<RankedTensorType>(adaptor.getInput().getType());
  IntegerAttr ranks = adaptor.getRanksAttr();
  IntegerAttr split = adaptor.getSplitDimAttr();
  IntegerAttr concat = adaptor.getConcatDimAttr();
  if (!input || !ranks || !split || !concat)
    return emitOptionalError(location,
                             "'moe.all_to_all' needs a ranked input "
                             "and 'ranks', 'split_dim', 'concat_dim'");
  int64_t n = ranks.getInt(), s = split.getInt(), c = concat.getInt();
  int64_t rank = input.getRank();
  if (n < 1)
    return emitOptionalError(
        location, "'moe.all_to_all' 'ranks' must be at least 1, got ", n);
  if (s < 0 || s >= rank)
    return emitOptionalError(location,
                             "'moe.all_to_all' 'split_dim' must be "
                             "in [0, ",
                             rank, ") for a rank-", rank, " input, got ", s);
  if (c < 0 || c >= rank)
    return emitOptionalError(location,
                             "'moe.all_to_all' 'concat_dim' must "
                             "be in [0, ",
                             rank, ") for a rank-", rank, " input, got ", c);
  SmallVector<int64_t> shape(input.getShape());
  if (ShapedType::isStatic(shape[s])) {
    if (shape[s] % n != 0)
      return emitOptionalError(location, "'moe.all_to_all' split dimension ", s,
                               " (", shape[s], ") must be divisible by ranks (",
                               n, ")");
    shape[s] /= n;
  }
  if (ShapedType::isStatic(shape[c])) {
    int64_t concatenated;
    if (llvm::MulOverflow(shape[c], n, concatenated))
      return emitOptionalError(location, "'moe.all_to_all' concat dimension ",
                               c, " (", shape[c], ") times ranks (", n,
                               ") overflows a 64-bit dimension size");
    shape[c] = concatenated;
  }
  types.push_back(input.clone(shape));
  return success();
}

LogicalResult AllToAllOp::verify() { return verifyStaticShapes(*this); }

//===----------------------------------------------------------------------===//
// AllGatherOp, RankOp
//===----------------------------------------------------------------------===//

LogicalResult AllGatherOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> location,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &types) {
  auto input = dyn_cast<RankedTensorType>(adaptor.getInput().getType());
  IntegerAttr ranks = adaptor.getRanksAttr();
  if (!input || input.getRank() < 1 || !ranks || ranks.getInt() < 1)
    return emitOptionalError(location, "'moe.all_gather' needs a ranked "
                                       "input of rank >= 1 and 'ranks' >= 1");
  SmallVector<int64_t> shape(input.getShape());
  if (ShapedType::isStatic(shape[0]) &&
      llvm::MulOverflow(shape[0], ranks.getInt(), shape[0]))
    return emitOptionalError(location, "'moe.all_gather' result overflows");
  types.push_back(input.clone(shape));
  return success();
}

LogicalResult AllGatherOp::verify() { return verifyStaticShapes(*this); }

LogicalResult RankOp::verify() {
  if (getRanks() < 1)
    return emitOpError("'ranks' must be at least 1, got ") << getRanks();
  return success();
}

//===----------------------------------------------------------------------===//
// ExchangeRowsOp, ReturnRowsOp
//===----------------------------------------------------------------------===//

/// The rules both variable-size exchanges share: static shapes, at least two
/// ranks, E = counts' length divisible by the ranks, a [ranks, E/ranks]
/// matrix of received counts, and the same row width and element type on
/// both sides.
static LogicalResult verifyRowExchange(Operation *op, int64_t ranks,
                                       RankedTensorType counts,
                                       RankedTensorType receivedCounts,
                                       RankedTensorType rows,
                                       RankedTensorType otherRows) {
  if (failed(verifyStaticShapes(op)))
    return failure();
  if (ranks < 2)
    return op->emitOpError("needs at least 2 ranks, got ")
           << ranks << " (one rank exchanges nothing)";
  int64_t experts = counts.getDimSize(0);
  if (experts % ranks != 0)
    return op->emitOpError("'counts' has ")
           << experts << " experts, which do not divide over " << ranks
           << " ranks";
  if (receivedCounts.getDimSize(0) != ranks ||
      receivedCounts.getDimSize(1) != experts / ranks)
    return op->emitOpError("the received counts must be [ranks, E/ranks] = [")
           << ranks << ", " << experts / ranks << "], got "
           << receivedCounts;
  if (rows.getElementType() != otherRows.getElementType() ||
      rows.getDimSize(1) != otherRows.getDimSize(1))
    return op->emitOpError("sends rows of ")
           << rows.getDimSize(1) << " x " << rows.getElementType()
           << " but the result has rows of " << otherRows.getDimSize(1)
           << " x " << otherRows.getElementType();
  return success();
}

LogicalResult ExchangeRowsOp::verify() {
  return verifyRowExchange(*this, getRanks(), getCounts().getType(),
                           getReceivedCounts().getType(), getRows().getType(),
                           getReceived().getType());
}

LogicalResult ReturnRowsOp::verify() {
  return verifyRowExchange(*this, getRanks(), getCounts().getType(),
                           getReceivedCounts().getType(), getRows().getType(),
                           getResult().getType());
}

//===----------------------------------------------------------------------===//
// AllReduceOp
//===----------------------------------------------------------------------===//

LogicalResult AllReduceOp::verify() {
  if (failed(verifyStaticShapes(*this)))
    return failure();
  if (getRanks() < 1)
    return emitOpError("'ranks' must be at least 1, got ") << getRanks();
  Type elt = getInput().getType().getElementType();
  if (!elt.isF32() && !elt.isF64() && !elt.isInteger(64) && !elt.isInteger(32))
    return emitOpError("sums f32, f64, i32 or i64 elements, got ") << elt;
  return success();
}

//===----------------------------------------------------------------------===//
// Statistics
//===----------------------------------------------------------------------===//

LogicalResult
LoadBalanceLossOp::inferReturnTypes(MLIRContext *context,
                                    std::optional<Location>, Adaptor,
                                    SmallVectorImpl<Type> &types) {
  types.push_back(scalarTensor(Float32Type::get(context)));
  return success();
}

LogicalResult LoadBalanceLossOp::verify() {
  if (failed(verifyStaticShapes(*this)))
    return failure();
  int64_t tokens = getProbs().getType().getDimSize(0);
  if (getExperts().getType().getDimSize(0) != tokens)
    return emitOpError() << "'experts' must have one row per token of "
                            "'probs' ("
                         << tokens << "), got "
                         << getExperts().getType().getDimSize(0);
  if (getExperts().getType().getDimSize(1) < 1)
    return emitOpError("'experts' must hold at least one choice per token");
  return verifyGroupSize(*this, getGroupSize(), tokens);
}

LogicalResult RouterZLossOp::inferReturnTypes(MLIRContext *context,
                                              std::optional<Location>, Adaptor,
                                              SmallVectorImpl<Type> &types) {
  types.push_back(scalarTensor(Float32Type::get(context)));
  return success();
}

LogicalResult RouterZLossOp::verify() { return verifyStaticShapes(*this); }

LogicalResult CountDroppedOp::inferReturnTypes(MLIRContext *context,
                                               std::optional<Location>, Adaptor,
                                               SmallVectorImpl<Type> &types) {
  types.push_back(scalarTensor(IntegerType::get(context, 64)));
  return success();
}

LogicalResult CountDroppedOp::verify() { return verifyStaticShapes(*this); }
