//===- GpuRun.h - Run a CUDA artifact with host code built ahead of time -*- C++ -*-===//
//
// What moe-gpu-run does, as a shell over the C++ API (moe/Runner/Layer.h,
// CompiledLayer::fromArtifact with a host library): the layer of a CUDA
// artifact (moe-translate --moe-to-cuda-artifact) whose host code was
// compiled ahead of time into a shared object (tools/gpu_package.sh), bound
// to real weights and run on real tokens with the CUDA driver backend. No
// compiler, MLIR, LLVM or MPI is involved, so the program starts on any
// machine with an NVIDIA driver.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNNER_GPURUN_H
#define MOE_RUNNER_GPURUN_H

#include <cstdint>
#include <string>

namespace moe {

struct GpuRunOptions {
  std::string artifactPath; ///< --artifact: the CUDA artifact JSON
  std::string hostPath;     ///< --host: its host code as a shared object
  std::string weightsPath;  ///< --weights
  std::string weightPrefix; ///< --weight-prefix
  std::string inputPath;    ///< --input: float32 [T, d_model]
  std::string outputPath;   ///< --output: float32 [T, d_model]
  std::string statsPath;    ///< --stats
  int64_t device = 0;       ///< --device: CUDA device ordinal
  /// --bench: calls timed after the first, with tokens and output resident
  /// in device memory (BoundLayer::callOnDevice) where the code allows.
  int64_t benchIterations = 0;
  bool verbose = false;
  /// --allow-non-finite: skip the spec §3.7 finiteness checks.
  bool allowNonFinite = false;
  /// --cuda-graph: replay the first call as a CUDA graph.
  bool cudaGraph = false;
};

/// Runs the artifact as `options` says; every failure prints one line
/// naming the file or call at fault and returns a non-zero exit status, and
/// outputs are written atomically, only on success.
int runGpuArtifact(const GpuRunOptions &options);

} // namespace moe

#endif // MOE_RUNNER_GPURUN_H
