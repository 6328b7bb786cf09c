//===- GpuKernels.cpp - Pieces shared by our GPU kernel builders ----------===//

#include "GpuKernels.h"
#include "MoEToLinalg/Emitter.h"
#include "moe/Conversion/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;

using namespace mlir::moe::lowering;
using namespace mlir::moe::lowering::ix;

void moe::kernels::launch(
    ImplicitLocOpBuilder &b, int64_t gridX, int64_t gridY, int64_t threads,
    int64_t sharedBytes, int64_t minBlocksPerSM,
    llvm::function_ref<void(ImplicitLocOpBuilder &, gpu::LaunchOp, Value)>
        body) {
  Value one = cst(b, 1);
  Value bytes = sharedBytes > 0
                    ? arith::ConstantIntOp::create(b, sharedBytes, 32)
                    : Value();
  auto op = gpu::LaunchOp::create(b, cst(b, gridX), cst(b, gridY), one,
                                  cst(b, threads), one, one, bytes);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(&op.getBody().front());
  Value shared;
  if (sharedBytes > 0) {
    auto space = gpu::AddressSpaceAttr::get(b.getContext(),
                                            gpu::AddressSpace::Workgroup);
    shared = gpu::DynamicSharedMemoryOp::create(
        b, MemRefType::get({ShapedType::kDynamic}, b.getI8Type(),
                           MemRefLayoutAttrInterface(), space));
    if (minBlocksPerSM > 0)
      shared.getDefiningOp()->setAttr(kMinBlocksPerSMAttrName,
                                      b.getI32IntegerAttr(minBlocksPerSM));
  }
  body(b, op, shared);
  gpu::TerminatorOp::create(b);
}

void moe::kernels::forEachBlock(
    ImplicitLocOpBuilder &b, int64_t gridX, int64_t gridY,
    llvm::function_ref<void(ImplicitLocOpBuilder &, Value, Value)> block) {
  forEach(b, cst(b, 0), cst(b, gridY), [&](ImplicitLocOpBuilder &yb, Value by) {
    forEach(yb, cst(yb, 0), cst(yb, gridX),
            [&](ImplicitLocOpBuilder &xb, Value bx) { block(xb, bx, by); });
  });
}

SmallVector<Value> moe::kernels::loadRow(ImplicitLocOpBuilder &b, Value buffer,
                                         Value thread, int64_t count) {
  SmallVector<Value> values;
  for (int64_t i = 0; i < count; ++i)
    values.push_back(
        memref::LoadOp::create(b, buffer, ValueRange{thread, cst(b, i)}));
  return values;
}

void moe::kernels::storeRow(ImplicitLocOpBuilder &b, Value buffer, Value thread,
                            ValueRange values) {
  for (auto [i, v] : llvm::enumerate(values))
    memref::StoreOp::create(b, v, buffer, ValueRange{thread, cst(b, i)});
}
