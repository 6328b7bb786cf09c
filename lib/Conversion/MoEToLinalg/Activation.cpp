//===- Activation.cpp - The expert nonlinearities as arith/math ops ------===//
//
// act(x) and the gated act'(gate) · x of spec §3.5 on f32 scalars or
// vectors of f32, built from arith and math ops.
//
//===----------------------------------------------------------------------===//

#include "Emitter.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;

Value mlir::moe::lowering::sigmoid(ImplicitLocOpBuilder &b, Value x) {
  Value one = arith::ConstantOp::create(b, b.getF32FloatAttr(1.0f));
  Value ex = math::ExpOp::create(b, arith::NegFOp::create(b, x));
  return arith::DivFOp::create(b, one, arith::AddFOp::create(b, one, ex));
}

Value mlir::moe::lowering::activate(ImplicitLocOpBuilder &b,
                                    Activation activation, Value x,
                                    Value gate) {
  Type type = x.getType();
  // A constant of x's type: an f32 scalar or a splat vector.
  auto c = [&](double v) -> Value {
    auto value = b.getF32FloatAttr(float(v));
    if (auto vector = dyn_cast<VectorType>(type))
      return arith::ConstantOp::create(
          b, DenseElementsAttr::get(vector, value.getValue()));
    return arith::ConstantOp::create(b, value);
  };
  auto silu = [&](Value v) -> Value {
    Value denom = arith::AddFOp::create(
        b, c(1), math::ExpOp::create(b, arith::NegFOp::create(b, v)));
    return arith::DivFOp::create(b, v, denom);
  };
  auto geluTanh = [&](Value v) -> Value {
    Value cube = arith::MulFOp::create(b, v, arith::MulFOp::create(b, v, v));
    Value inner = arith::MulFOp::create(
        b, c(std::sqrt(2.0 / M_PI)),
        arith::AddFOp::create(b, v, arith::MulFOp::create(b, c(0.044715), cube)));
    Value th = math::TanhOp::create(b, inner);
    return arith::MulFOp::create(b, arith::MulFOp::create(b, c(0.5), v),
                                 arith::AddFOp::create(b, c(1), th));
  };
  switch (activation) {
  case Activation::Relu:
    return arith::MaximumFOp::create(b, x, c(0));
  case Activation::Gelu: {
    Value scaled = arith::MulFOp::create(b, x, c(M_SQRT1_2));
    Value erf = math::ErfOp::create(b, scaled);
    return arith::MulFOp::create(b, arith::MulFOp::create(b, c(0.5), x),
                                 arith::AddFOp::create(b, c(1), erf));
  }
  case Activation::GeluTanh:
    return geluTanh(x);
  case Activation::Silu:
    return silu(x);
  case Activation::Geglu:
    return arith::MulFOp::create(b, geluTanh(gate), x);
  case Activation::Swiglu:
    return arith::MulFOp::create(b, silu(gate), x);
  }
  llvm_unreachable("unknown activation");
}
