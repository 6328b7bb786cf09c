//===- MoEDialect.h - The moe dialect and its attributes -------*- C++ -*-===//
//
// Declares the `moe` dialect, its enumerations and enum attributes.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_IR_MOEDIALECT_H
#define MOE_IR_MOEDIALECT_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Dialect.h"

#include "moe/IR/MoEEnums.h.inc"
#include "moe/IR/MoEOpsDialect.h.inc"

#define GET_ATTRDEF_CLASSES
#include "moe/IR/MoEAttrs.h.inc"

namespace mlir::moe {
/// True for the gated activations (`geglu`, `swiglu`), which need `w_gate`.
inline bool isGated(Activation activation) {
  return activation == Activation::Geglu || activation == Activation::Swiglu;
}
} // namespace mlir::moe

#endif // MOE_IR_MOEDIALECT_H
