//===- PipelineOptions.h - Options of the CPU and GPU pipelines -*- C++ -*-===//
//
// Plain structs (no MLIR headers), so that code which only passes them on
// (the JIT's interface, moe/Runner/HostJIT.h) need not include the dialects
// of moe/Conversion/Passes.h, which builds the pipelines from them.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_PIPELINEOPTIONS_H
#define MOE_CONVERSION_PIPELINEOPTIONS_H

#include <cstdint>
#include <string>

namespace mlir::moe {

/// What the CPU pipeline does beyond its fixed stages.
struct CpuPipelineOptions {
  /// Threads of the kernels (0: all hardware threads, 1: sequential code).
  int64_t threads = 0;
  /// Run moe-fuse-experts and the grouped-matmul vector kernels.
  bool fusion = true;
  /// Vector width in bits and vector registers of the kernels (0: the
  /// host's), for reproducible tests.
  int64_t vectorBits = 0, registers = 0;
  /// Check indices and memory accesses at run time: the routing's own
  /// checks (convert-moe-to-linalg{runtime-checks}), MLIR's
  /// generate-runtime-verification, failures reported through
  /// moe_rt_check_failed (moe-lower-runtime-checks).
  bool runtimeChecks = false;
};

/// What the GPU pipeline targets and how it maps loops to threads.
/// The tensor-core instructions of the grouped matmul kernels.
enum class TensorCoreMma {
  /// Warpgroup MMA on sm_90a, warp MMA elsewhere.
  Auto,
  /// mma.sync (sm_80 and later).
  Warp,
  /// wgmma.mma_async (sm_90a only).
  Warpgroup,
};

/// Whether `rows` is a choice of the tensor-core kernels' block tile rows:
/// 64, 128, or 0 (chosen per grouped matmul).
inline bool isTileRowsChoice(int64_t rows) {
  return rows == 0 || rows == 64 || rows == 128;
}

/// Whether `depth` is a choice of the tensor-core kernels' largest
/// reduction step: 32 or 64 (64 only where K is a multiple of 64).
inline bool isStepDepthChoice(int64_t depth) {
  return depth == 32 || depth == 64;
}

/// Whether `cols` is a choice of the tensor-core kernels' widest column
/// tile: 64 or 128 (128 only for one weight and N a multiple of 128).
inline bool isTileColsChoice(int64_t cols) { return cols == 64 || cols == 128; }

struct GpuPipelineOptions {
  std::string chip = "sm_90a";
  std::string features = "+ptx80";
  /// gpu-module-to-binary format: "bin" (cubin), "isa" (PTX), "fatbin", or
  /// "auto": cubin where the toolkit's ptxas is, else PTX (which the driver
  /// compiles on load).
  std::string format = "auto";
  std::string toolkit = "/usr/local/cuda";
  /// Tile sizes of the parallel loops, outermost first: the threads of one
  /// block. With the innermost dimension on thread x, a warp of a 2-D loop
  /// nest covers 32 contiguous columns (coalesced loads and stores).
  std::string tile = "8,32";
  /// gpu-map-parallel-loops policy: which loop goes to thread/block x.
  std::string mapping = "innermost-first";
  int optLevel = 3;
  /// Stop before the loops become kernels and run them on the host, one
  /// after the other: the GPU pipeline's program, for checking its numbers
  /// without a GPU (moe-run --backend gpu-loops).
  bool hostLoops = false;
  /// Run moe-fuse-experts (sorted rows and grouped matmuls).
  bool fusion = true;
  /// With fusion: grouped matmuls with bf16/f16 weights become tensor-core
  /// kernels (moe-grouped-matmul-to-gpu), host loops with `hostLoops`.
  bool tensorCores = true;
  /// Which tensor-core MMA the grouped matmul kernels use.
  TensorCoreMma mma = TensorCoreMma::Auto;
  /// Rows of their block tiles: 64, 128, or 0 (128 where the experts
  /// average at least 256 rows, else 64); see isTileRowsChoice.
  int64_t tileRows = 0;
  /// The k of their reduction steps: 64 where K is a multiple of 64, else
  /// 32; or 32 throughout. See isStepDepthChoice.
  int64_t maxStepDepth = 64;
  /// The columns of their block tiles with one weight: 128 where N is a
  /// multiple of 128, else 64; or 64 throughout. See isTileColsChoice.
  int64_t maxTileCols = 128;
  /// Whether they use the warpgroup MMA (the chip's choice for Auto).
  bool warpgroupMma() const {
    return mma == TensorCoreMma::Warpgroup ||
           (mma == TensorCoreMma::Auto && chip == "sm_90a");
  }
  /// As CpuPipelineOptions::runtimeChecks; in kernels on a GPU the asserts
  /// are the device's (__assertfail).
  bool runtimeChecks = false;
};

} // namespace mlir::moe

#endif // MOE_CONVERSION_PIPELINEOPTIONS_H
