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

/// Adds the pattern that rewrites `moe.layer` into the decomposed ops;
/// `packedCapacity` selects the packed buffer layout for capacity-bounded
/// layers too.
void populateDecomposeLayerPatterns(RewritePatternSet &patterns,
                                    bool packedCapacity = false);

#define GEN_PASS_REGISTRATION
#include "moe/Transforms/Passes.h.inc"

} // namespace moe
} // namespace mlir

#endif // MOE_TRANSFORMS_PASSES_H
