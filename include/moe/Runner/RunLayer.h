//===- RunLayer.h - moe-run: one layer on real weights and tokens -*- C++
//-*-===//
//
// The library behind the moe-run tool: reads a layer spec (or a module),
// tokens (.npy) and weights (.safetensors), compiles the layer for the chosen
// backend, runs it, and writes the output (.npy) and statistics (JSON).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNNER_RUNLAYER_H
#define MOE_RUNNER_RUNLAYER_H

#include <cstdint>
#include <string>

namespace moe {

/// Everything moe-run's command line says.
struct RunOptions {
  std::string specPath;   ///< --spec: layer-spec JSON
  std::string modulePath; ///< --module: MLIR module instead of a spec
  std::string funcName = "moe_layer"; ///< --func: the layer function
  std::string weightsPath;            ///< --weights: .safetensors
  std::string weightPrefix;           ///< --weight-prefix
  std::string inputPath;              ///< --input: float32 [T, d_model]
  std::string outputPath;             ///< --output: float32 [T, d_model]
  std::string statsPath;              ///< --stats: statistics JSON
  std::string artifactPath; ///< --artifact: CUDA artifact JSON
  /// --backend: cpu or cuda; empty: cuda for an artifact, else cpu.
  std::string backend;
  std::string gpuChip = "sm_90a";     ///< --gpu-chip (cuda backend)
  std::string activationType = "f32"; ///< --act-dtype: f32 or bf16
  unsigned optLevel = 3;              ///< --O
  int64_t benchIterations = 0;        ///< --bench: timed repetitions
  int64_t shards = 1;                 ///< --shards: expert-parallel ranks
  int64_t replicas = 1;               ///< --replicas: data-parallel replicas
  bool verbose = false;               ///< -v: stage timings on stderr
  bool fusion = true;                 ///< --fusion on|off
  /// --allow-non-finite: skip the spec §3.7 check that tokens and weights
  /// hold no NaN or ±infinity.
  bool allowNonFinite = false;
  /// --runtime-checks: index and memory-access checks in the compiled code.
  bool runtimeChecks = false;
  /// --cuda-graph: the cuda backend replays the first call as a CUDA graph.
  bool cudaGraph = false;
};

/// Runs one layer as `options` says. Every failure prints one line naming
/// the file or flag at fault to stderr and returns a non-zero exit code;
/// output files are written atomically, and only on success.
int runLayer(const RunOptions &options);

} // namespace moe

#endif // MOE_RUNNER_RUNLAYER_H
