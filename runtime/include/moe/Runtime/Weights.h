//===- Weights.h - The weights of one MoE layer -----------------*- C++ -*-===//
//
// Loads the weights of one layer (spec §2) from a safetensors file in our
// layout or in a Hugging Face layout (Switch Transformers, Mixtral), checks
// them against the layer spec, and converts them to the layout and element
// type the backends use.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_WEIGHTS_H
#define MOE_RUNTIME_WEIGHTS_H

#include "moe/Runtime/SafeTensors.h"
#include "moe/Runtime/Tensor.h"
#include "moe/Spec/LayerSpec.h"

#include <string>
#include <string_view>
#include <vector>

namespace moe::runtime {

/// The weights of one layer in our layout (spec §2). The expert weights
/// have the dtype they were loaded as; the router is always F32, since the
/// router runs in float32 whatever the activation dtype (spec §3.1, §5).
struct LayerWeights {
  /// [E, D], F32.
  HostTensor router;
  /// [E, D, F]
  HostTensor wIn;
  /// [E, D, F]; null unless the activation is gated.
  HostTensor wGate;
  /// [E, F, D]
  HostTensor wOut;

  /// The inputs of a layer function in call order: `input`, the router,
  /// w_in, [w_gate,] w_out.
  std::vector<HostTensor *> callInputs(HostTensor &input) {
    std::vector<HostTensor *> inputs{&input, &router, &wIn};
    if (wGate)
      inputs.push_back(&wGate);
    inputs.push_back(&wOut);
    return inputs;
  }
};

/// The naming scheme a layer's weights were found in.
enum class WeightLayout {
  /// `router`, `w_in`, `w_gate`, `w_out` in our layout.
  Ours,
  /// Hugging Face Switch Transformers: `router.classifier.weight`,
  /// `experts.expert_{i}.wi.weight`, `experts.expert_{i}.wo.weight`.
  Switch,
  /// Hugging Face Mixtral: `gate.weight`, `experts.{i}.w1/w2/w3.weight`.
  Mixtral,
};

/// Where one layer's weights live in a file.
struct WeightLocation {
  WeightLayout layout = WeightLayout::Ours;
  /// Prepended to every weight name, e.g. `model.layers.0.block_sparse_moe.`.
  std::string prefix;
};

/// A short name of the layout for messages: `ours`, `switch`, `mixtral`.
std::string_view toString(WeightLayout layout);

/// Finds the layer's weights in `file`. With a non-empty `prefix`, the
/// router is looked up under that prefix, our names first, then Switch,
/// then Mixtral. With an empty `prefix`, every tensor name ending in a
/// router name (`router`, `router.classifier.weight`, `gate.weight`, at a
/// `.` or `/` boundary) proposes a prefix; candidates without their first
/// expert weight are dropped when others remain. Throws `Error` naming the
/// file when no router is found, or when several prefixes fit (listing up to
/// three and asking for an explicit prefix).
WeightLocation locateLayerWeights(const SafeTensorsFile &file,
                                  const std::string &prefix = "");

/// Loads and checks the weights of the layer `spec` describes, the expert
/// weights converted to `target` (F32, BF16 or F16) and the router to F32,
/// transposed from Hugging Face layouts into
/// ours. `prefix` is as for `locateLayerWeights`. Throws `Error` naming the
/// file for a missing weight, a shape that contradicts the spec (saying
/// which spec dimensions it expected), a gate weight that contradicts the
/// activation, or a non-floating-point weight. Unrelated tensors are
/// ignored.
LayerWeights loadLayerWeights(const SafeTensorsFile &file,
                              const moe::spec::LayerSpec &spec, DType target,
                              const std::string &prefix = "");

/// Spec §3.7: throws `Error` naming `source`, the tensor and the first
/// element that is NaN or ±infinity among the tokens `x` [T, D] ("token t
/// holds NaN (column c)") or the weights ("weight w_in holds +inf at
/// [e, k, n]"); the message ends with `optOut`, the flag that skips the
/// check.
void requireFiniteTokens(const HostTensor &x, const std::string &source,
                         const std::string &optOut);
void requireFiniteWeights(const LayerWeights &weights,
                          const std::string &source, const std::string &optOut);

} // namespace moe::runtime

#endif // MOE_RUNTIME_WEIGHTS_H
