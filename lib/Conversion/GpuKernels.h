//===- GpuKernels.h - Pieces shared by our GPU kernel builders --*- C++ -*-===//
//
// The block-structured kernels of moe-grouped-matmul-to-gpu,
// moe-contraction-to-gpu and moe-place-rows-to-gpu are built in two forms:
// one gpu.launch with dynamic shared memory, or (host-loops) the same blocks,
// phases and threads as host loops, each thread's registers a row of a host
// buffer. These are the pieces both forms of every builder use.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_GPUKERNELS_H
#define MOE_LIB_CONVERSION_GPUKERNELS_H

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace mlir::moe::kernels {

/// One gpu.launch of gridX x gridY blocks of `threads` threads; with
/// `sharedBytes` > 0, dynamic shared memory of that size, which `body` gets
/// as an i8 memref (null without); with `minBlocksPerSM` > 0 the memory op
/// carries the moe.min_blocks_per_sm mark for moe-launch-bounds. `body`
/// builds the kernel at the start of the launch's region (the terminator is
/// added after it).
void launch(ImplicitLocOpBuilder &b, int64_t gridX, int64_t gridY,
            int64_t threads, int64_t sharedBytes, int64_t minBlocksPerSM,
            llvm::function_ref<void(ImplicitLocOpBuilder &, gpu::LaunchOp,
                                    Value shared)>
                body);

/// The host form of a gridX x gridY launch: `block(b, bx, by)` in loops
/// over the block rows, then the block columns.
void forEachBlock(
    ImplicitLocOpBuilder &b, int64_t gridX, int64_t gridY,
    llvm::function_ref<void(ImplicitLocOpBuilder &, Value bx, Value by)> block);

/// Row `thread` of a host buffer [threads, n] (a thread's registers on the
/// host): its first `count` values, or `values` stored at its start.
SmallVector<Value> loadRow(ImplicitLocOpBuilder &b, Value buffer, Value thread,
                           int64_t count);
void storeRow(ImplicitLocOpBuilder &b, Value buffer, Value thread,
              ValueRange values);

} // namespace mlir::moe::kernels

#endif // MOE_LIB_CONVERSION_GPUKERNELS_H
