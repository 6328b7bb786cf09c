//===- ImportLayer.cpp - A layer spec as a function around moe.layer -*- C++
//-*-===//
//
// Turns the plain C++ layer spec into IR: one function taking the tokens and
// the weights, returning the output and the statistics of a `moe.layer`.
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoEOps.h"
#include "moe/Import/Import.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

using namespace mlir;
using namespace mlir::moe;
namespace spec = ::moe::spec;

static Type elementType(Builder &b, ElementKind kind) {
  switch (kind) {
  case ElementKind::F32:
    return b.getF32Type();
  case ElementKind::BF16:
    return b.getBF16Type();
  case ElementKind::F16:
    return b.getF16Type();
  }
  llvm_unreachable("unknown element kind");
}

static Activation toIR(spec::Activation a) {
  switch (a) {
  case spec::Activation::Relu:
    return Activation::Relu;
  case spec::Activation::Gelu:
    return Activation::Gelu;
  case spec::Activation::GeluTanh:
    return Activation::GeluTanh;
  case spec::Activation::Silu:
    return Activation::Silu;
  case spec::Activation::Geglu:
    return Activation::Geglu;
  case spec::Activation::Swiglu:
    return Activation::Swiglu;
  }
  llvm_unreachable("unknown activation");
}

OwningOpRef<ModuleOp> mlir::moe::buildLayerModule(MLIRContext *context,
                                                  const spec::LayerSpec &spec,
                                                  const ImportOptions &options,
                                                  Location loc) {
  context->loadDialect<MoEDialect, func::FuncDialect>();
  OpBuilder b(context);
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  b.setInsertionPointToEnd(module->getBody());

  Type act = elementType(b, options.activationType);
  Type weight = elementType(b, options.weightType);
  Type routerElt =
      elementType(b, options.routerType.value_or(options.weightType));
  int64_t t = options.tokens, d = spec.dModel, f = spec.dFF,
          e = spec.numExperts;
  bool gated = spec::isGated(spec.activation);

  int64_t fs = spec.sharedDFF;
  bool shared = fs > 0;
  // Arguments in the operand order of moe.layer; each optional one's index,
  // or -1 when the spec has none.
  SmallVector<Type> inputs;
  auto add = [&](Type type) {
    inputs.push_back(type);
    return int(inputs.size()) - 1;
  };
  int input = add(RankedTensorType::get({t, d}, act));
  int router = add(RankedTensorType::get({e, d}, routerElt));
  int scoreBias =
      spec.scoreBias ? add(RankedTensorType::get({e}, b.getF32Type())) : -1;
  int wIn = add(RankedTensorType::get({e, d, f}, weight));
  int wGate = gated ? add(RankedTensorType::get({e, d, f}, weight)) : -1;
  int wOut = add(RankedTensorType::get({e, f, d}, weight));
  int sharedIn = shared ? add(RankedTensorType::get({d, fs}, weight)) : -1;
  int sharedGateW =
      shared && gated ? add(RankedTensorType::get({d, fs}, weight)) : -1;
  int sharedOut = shared ? add(RankedTensorType::get({fs, d}, weight)) : -1;
  int sharedGate =
      spec.sharedGate ? add(RankedTensorType::get({d}, weight)) : -1;
  SmallVector<Type> outputs{RankedTensorType::get({t, d}, act),
                            RankedTensorType::get({e}, b.getI64Type()),
                            RankedTensorType::get({}, b.getI64Type()),
                            RankedTensorType::get({}, b.getF32Type()),
                            RankedTensorType::get({}, b.getF32Type())};

  auto func = func::FuncOp::create(b, loc, options.funcName,
                                   b.getFunctionType(inputs, outputs));
  Block *entry = func.addEntryBlock();
  b.setInsertionPointToStart(entry);
  auto arg = [&](int index) -> Value {
    return index < 0 ? Value() : entry->getArgument(index);
  };

  auto optionalInt = [&](std::optional<int64_t> v) -> IntegerAttr {
    return v ? b.getI64IntegerAttr(*v) : IntegerAttr();
  };
  FloatAttr factor =
      spec.capacityFactor ? b.getF64FloatAttr(*spec.capacityFactor) : nullptr;
  // min_capacity only matters, and is only kept, with a capacity factor.
  int64_t minCapacity = spec.capacityFactor ? spec.minCapacity : 1;
  bool experts = spec.expertsChoose();
  auto layer = LayerOp::create(
      b, loc, arg(input), arg(router), arg(scoreBias), arg(wIn), arg(wGate),
      arg(wOut), arg(sharedIn), arg(sharedGateW), arg(sharedOut),
      arg(sharedGate), b.getI64IntegerAttr(experts ? 1 : spec.topK),
      ActivationAttr::get(context, toIR(spec.activation)),
      spec.normalizeGates && !experts ? b.getUnitAttr() : nullptr, factor,
      optionalInt(spec.expertCapacity), b.getI64IntegerAttr(minCapacity),
      optionalInt(spec.groupSize),
      PriorityAttr::get(context, spec.priority == spec::Priority::Position
                                     ? Priority::Position
                                     : Priority::BatchPrioritized),
      experts ? RoutingAttr::get(context, Routing::ExpertsChoose)
              : RoutingAttr(),
      spec.scoreFunction == spec::ScoreFunction::Sigmoid
          ? ScoreFunctionAttr::get(context, ScoreFunction::Sigmoid)
          : ScoreFunctionAttr(),
      spec.numGroups != 1 ? b.getI64IntegerAttr(spec.numGroups) : IntegerAttr(),
      spec.topkGroups != spec.numGroups ? b.getI64IntegerAttr(spec.topkGroups)
                                        : IntegerAttr(),
      spec.groupScore == spec::GroupScore::Top2Sum
          ? GroupScoreAttr::get(context, GroupScore::Top2Sum)
          : GroupScoreAttr(),
      spec.gateScale != 1.0 ? b.getF64FloatAttr(spec.gateScale) : FloatAttr());
  func::ReturnOp::create(b, loc, layer.getResults());
  return module;
}
