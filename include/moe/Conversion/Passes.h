//===- Passes.h - Conversions out of the moe dialect -----------*- C++ -*-===//
//
// Pass declarations of the moe lowerings and the named pipelines that chain
// them with upstream passes.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_PASSES_H
#define MOE_CONVERSION_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
// (Not the LLVM and NVVM dialects, the heaviest headers: the two passes
// that depend on them include them.)
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"
#include "moe/Conversion/PipelineOptions.h"

namespace mlir::moe {

#define GEN_PASS_DECL
#include "moe/Conversion/Passes.h.inc"

/// The attribute moe-grouped-matmul-to-vector puts on a function whose
/// weight arguments it takes in the kernels' panel layout: an
/// `array<i64: argument, panel width, ...>`. The caller packs those
/// arguments (runtime HostTensor::packPanels).
inline constexpr llvm::StringLiteral kPackedWeightsAttrName =
    "moe.packed_weights";

/// An i32 attribute our kernel builders put on an op of a kernel's body (it
/// survives gpu-kernel-outlining, which keeps no attribute of gpu.launch):
/// the blocks per SM its registers must allow. moe-launch-bounds moves it to
/// the outlined kernel as `nvvm.minctasm` (PTX `.minnctapersm`).
inline constexpr llvm::StringLiteral kMinBlocksPerSMAttrName =
    "moe.min_blocks_per_sm";

/// The textual pass pipeline that takes a module holding `moe.layer` (or the
/// decomposed ops) to the LLVM dialect for the host CPU. Functions get a C
/// interface (`_mlir_ciface_<name>`) and take their results as out-params.
std::string cpuPipelineText(const CpuPipelineOptions &options = {});

/// Appends the CPU pipeline to `pm`; fails (with a diagnostic) only if the
/// pipeline text cannot be parsed.
LogicalResult buildCpuPipeline(OpPassManager &pm,
                               const CpuPipelineOptions &options = {});

/// The textual pass pipeline that takes a module holding `moe.layer` to host
/// LLVM-dialect code launching NVVM kernels held in `gpu.binary` ops; the
/// host functions call the `mgpu*` runtime ABI and allocate through
/// `_mlir_memref_to_llvm_alloc` (C interface, results as out-params).
std::string gpuPipelineText(const GpuPipelineOptions &options = {});

/// The GPU pipeline in its two halves: up to outlined `gpu.launch_func`s of
/// kernels in `gpu.module`s with their NVVM target, and from there to LLVM
/// with `gpu.binary`s.
std::string gpuKernelPipelineText(const GpuPipelineOptions &options = {});
/// The part of the first half that maps the loops to GPU kernels.
std::string gpuMappingPipelineText(const GpuPipelineOptions &options = {});
std::string gpuLoweringPipelineText(const GpuPipelineOptions &options = {});

/// The kernel format the pipeline uses: `options.format`, with "auto"
/// resolved to "bin" where `<toolkit>/bin/ptxas` exists and "isa" elsewhere.
std::string resolvedKernelFormat(const GpuPipelineOptions &options);

/// Whether the host code of a module lowered by moe-gpu-pipeline may read
/// or write a buffer itself: a load, store, atomic or memory intrinsic in a
/// host function, or a call of anything but the allocation functions and
/// the `mgpu*` ABI (a collective, a runtime check). When it may not, the
/// runtime can keep every buffer of a call in plain device memory.
bool hostTouchesBuffers(ModuleOp lowered);

/// Appends the GPU pipeline to `pm`.
LogicalResult buildGpuPipeline(OpPassManager &pm,
                               const GpuPipelineOptions &options = {});

/// Registers the named pipelines (`moe-cpu-pipeline`, `moe-gpu-pipeline`).
void registerMoEPipelines();

#define GEN_PASS_REGISTRATION
#include "moe/Conversion/Passes.h.inc"

} // namespace mlir::moe

#endif // MOE_CONVERSION_PASSES_H
