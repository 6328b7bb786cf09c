//===- CudaArtifact.h - Reading the CUDA artifact moe-translate writes -*- C++ -*-===//
//
// The JSON artifact of `moe-translate --moe-to-cuda-artifact` (format
// "moe-cuda-artifact"), read and validated without MLIR: every field is
// checked for presence, type and consistency with the others before anything
// runs, and a problem is one line naming the field.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_SPEC_CUDAARTIFACT_H
#define MOE_SPEC_CUDAARTIFACT_H

#include "moe/Spec/LayerSpec.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moe::spec {

/// The artifact version this build reads.
inline constexpr int64_t kCudaArtifactReadVersion = 1;

struct CudaArtifact {
  struct Buffer {
    std::string name;  ///< input, router, [score_bias,] w_in, [w_gate,] w_out,
                       ///< [shared_*,] output, ...
    bool isResult = false;
    std::string dtype; ///< f32, bf16, f16 or i64
    std::vector<int64_t> shape;
  };
  int64_t version = 0;
  std::string function;
  std::string entry; ///< the C-interface symbol to call
  /// The layer's call signature; the host code holds the same string as
  /// `moe_artifact_signature`.
  std::string signature;
  std::string chip;
  std::string kernelFormat; ///< cubin or ptx
  /// `memory` says "device": the host code touches no buffer, so every
  /// buffer of a call may live in device memory (else managed memory).
  bool deviceMemory = false;
  int64_t dModel = 0, dFF = 0, numExperts = 0, tokens = 0;
  bool gated = false;
  std::optional<int64_t> capacity;
  /// Spec §8 inputs: the score bias [E], the shared expert of width
  /// `sharedDFF` (0 = none) and its gate [D].
  bool scoreBias = false, sharedGate = false;
  int64_t sharedDFF = 0;
  std::vector<Buffer> buffers; ///< in call order: inputs, then results
  /// What loading the layer's weights needs of its spec: the sizes, gating
  /// (as swiglu or relu) and the §8 inputs.
  LayerSpec weightSpec() const {
    LayerSpec spec;
    spec.dModel = dModel;
    spec.dFF = dFF;
    spec.numExperts = numExperts;
    spec.activation = gated ? Activation::Swiglu : Activation::Relu;
    spec.scoreBias = scoreBias;
    spec.sharedDFF = sharedDFF;
    spec.sharedGate = sharedGate;
    return spec;
  }
  /// The buffer called `name` (every valid artifact has `input`, `router`,
  /// `w_in`, `w_out` and the results); null when absent.
  const Buffer *buffer(std::string_view name) const {
    for (const Buffer &b : buffers)
      if (b.name == name)
        return &b;
    return nullptr;
  }
  int64_t kernels = 0;
  std::string hostLLVMIR;
};

struct CudaArtifactResult {
  std::optional<CudaArtifact> artifact;
  std::string error; ///< `<source>[:line:col]: error: ...` when invalid
  explicit operator bool() const { return artifact.has_value(); }
};

/// Reads and validates an artifact; `source` names it in messages.
CudaArtifactResult parseCudaArtifact(std::string_view text,
                                     std::string_view source);

} // namespace moe::spec

#endif // MOE_SPEC_CUDAARTIFACT_H
