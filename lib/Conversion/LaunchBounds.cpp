//===- LaunchBounds.cpp - Occupancy hints of outlined kernels -------------===//
//
// The moe-launch-bounds pass: the `moe.min_blocks_per_sm` mark a kernel
// builder left inside a gpu.launch body becomes `nvvm.minctasm` on the
// outlined gpu.func (PTX `.minnctapersm`), the blocks per SM whose threads
// ptxas must fit in the registers.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"

#include "mlir/Dialect/LLVMIR/NVVMDialect.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOELAUNCHBOUNDS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

struct LaunchBoundsPass
    : mlir::moe::impl::MoELaunchBoundsBase<LaunchBoundsPass> {
  void runOnOperation() override {
    for (auto func : getOperation().getOps<gpu::GPUFuncOp>()) {
      int64_t blocks = 0;
      func.walk([&](Operation *op) {
        if (auto mark =
                op->getAttrOfType<IntegerAttr>(moe::kMinBlocksPerSMAttrName)) {
          blocks = std::max(blocks, mark.getInt());
          op->removeAttr(moe::kMinBlocksPerSMAttrName);
        }
      });
      if (blocks > 0)
        func->setAttr(
            NVVM::NVVMDialect::getMinctasmAttrName(),
            IntegerAttr::get(IntegerType::get(&getContext(), 32), blocks));
    }
  }
};

} // namespace
