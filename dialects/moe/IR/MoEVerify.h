//===- MoEVerify.h - Verifier helpers shared by the op files ----*- C++ -*-===//
//
// Checks every moe op verifier uses; private to the dialect's IR library.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_IR_MOEVERIFY_H
#define MOE_IR_MOEVERIFY_H

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Operation.h"

#include <string>

namespace mlir::moe::detail {

/// "[2, ?, 4]".
std::string shapeStr(ArrayRef<int64_t> shape);

/// Every tensor operand and result of a moe op has a static shape: buffer
/// sizes and capacities are decided at compile time.
LogicalResult verifyStaticShapes(Operation *op);

/// Checks that `type` has exactly `expected` as shape; the error names the
/// operand `name` and the meaning of its dimensions, `dims`.
LogicalResult expectShape(Operation *op, StringRef name, Type type,
                          ArrayRef<int64_t> expected, StringRef dims);

/// The type as a ranked tensor of the given rank, or null.
RankedTensorType rankedOf(Type type, int64_t rank);

/// `group_size` is positive and divides the `tokens`.
LogicalResult verifyGroupSize(Operation *op, int64_t groupSize,
                              int64_t tokens);

/// `gate_scale` is a positive finite number.
LogicalResult verifyGateScale(Operation *op, const APFloat &scale);

} // namespace mlir::moe::detail

#endif // MOE_IR_MOEVERIFY_H
