//===- MoEOps.h - Operations of the moe dialect ----------------*- C++ -*-===//
//
// Declares the operations of the `moe` dialect (generated from MoEOps.td).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_IR_MOEOPS_H
#define MOE_IR_MOEOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "moe/IR/MoEDialect.h"

#define GET_OP_CLASSES
#include "moe/IR/MoEOps.h.inc"

#endif // MOE_IR_MOEOPS_H
