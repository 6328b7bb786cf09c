//===- Weights.h - The weights of one MoE layer -----------------*- C++ -*-===//
//
// Loads the weights of one layer (spec §2, §8) from a safetensors file in our
// layout or in a Hugging Face layout (Switch Transformers, Mixtral, and the
// gate_proj / up_proj / down_proj experts of DeepSeek, Qwen and OLMoE), checks
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
#include <functional>
#include <map>
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
  /// Spec §8, each null unless the spec asks for it: [E], F32.
  HostTensor scoreBias;
  /// The shared expert: [D, Fs], [D, Fs] (gated), [Fs, D], and the [D]
  /// gate vector.
  HostTensor sharedWIn, sharedWGate, sharedWOut, sharedGate;

  /// The inputs of a layer function in call order (the operand order of
  /// moe.layer): `input`, the router, [score_bias,] w_in, [w_gate,] w_out,
  /// [shared_w_in, [shared_w_gate,] shared_w_out, [shared_gate]].
  std::vector<HostTensor *> callInputs(HostTensor &input) {
    std::vector<HostTensor *> inputs{&input, &router};
    for (HostTensor *w : {&scoreBias, &wIn, &wGate, &wOut, &sharedWIn,
                          &sharedWGate, &sharedWOut, &sharedGate})
      if (*w)
        inputs.push_back(w);
    return inputs;
  }

  /// Every weight with its name in our layout (null ones included).
  std::vector<std::pair<const char *, const HostTensor *>> named() const {
    return {{"router", &router},          {"score_bias", &scoreBias},
            {"w_in", &wIn},               {"w_gate", &wGate},
            {"w_out", &wOut},             {"shared_w_in", &sharedWIn},
            {"shared_w_gate", &sharedWGate}, {"shared_w_out", &sharedWOut},
            {"shared_gate", &sharedGate}};
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
  /// Hugging Face DeepSeek-V2/V3, Qwen2/Qwen3-MoE, OLMoE: `gate.weight`,
  /// `gate.e_score_correction_bias`,
  /// `experts.{i}.gate_proj/up_proj/down_proj.weight`, and the shared expert
  /// under `shared_experts.` or `shared_expert.` (+ `shared_expert_gate`).
  Projections,
};

/// Where one layer's weights live in a file.
struct WeightLocation {
  WeightLayout layout = WeightLayout::Ours;
  /// Prepended to every weight name, e.g. `model.layers.0.block_sparse_moe.`.
  std::string prefix;
};

/// A short name of the layout for messages: `ours`, `switch`, `mixtral`,
/// `projections`.
std::string_view toString(WeightLayout layout);

/// Finds the layer's weights in `file`. With a non-empty `prefix`, the
/// router is looked up under that prefix, our names first, then Switch,
/// then `gate.weight` (Mixtral's `w1` experts or the `gate_proj` ones,
/// whichever the file holds). With an empty `prefix`, every tensor name ending in a
/// router name (`router`, `router.classifier.weight`, `gate.weight`, at a
/// `.` or `/` boundary) proposes a prefix; candidates without their first
/// expert weight are dropped when others remain. Throws `Error` naming the
/// file when no router is found, or when several prefixes fit (listing up to
/// three and asking for an explicit prefix).
WeightLocation locateLayerWeights(const SafeTensorsFile &file,
                                  const std::string &prefix = "");

/// The element type the layer's expert weights are stored in (that of the
/// layout's first expert weight, as `locateLayerWeights` finds the layer):
/// BF16 or F16 when stored so, F32 otherwise (also when it cannot tell;
/// loading then reports what is missing). Throws `Error` as
/// `locateLayerWeights` does.
DType storedExpertType(const SafeTensorsFile &file,
                       const std::string &prefix = "");

/// Loads and checks the weights of the layer `spec` describes, the expert
/// weights converted to `target` (F32, BF16 or F16) and the router to F32,
/// transposed from Hugging Face layouts into
/// ours. `prefix` is as for `locateLayerWeights`. Throws `Error` naming the
/// file for a missing weight, a shape that contradicts the spec (saying
/// which spec dimensions it expected), a gate weight that contradicts the
/// activation, or a non-floating-point weight. Unrelated tensors are
/// ignored.
/// `progress`, when set, is called after each tensor read with the count
/// of tensors and bytes read so far.
using LoadProgress = std::function<void(int64_t tensors, uint64_t bytes)>;
LayerWeights loadLayerWeights(const SafeTensorsFile &file,
                              const moe::spec::LayerSpec &spec, DType target,
                              const std::string &prefix = "",
                              const LoadProgress &progress = {});

/// The weights of the layer `spec` describes from tensors given by our
/// names (`router`, `score_bias`, `w_in`, `w_gate`, `w_out`, `shared_w_in`,
/// `shared_w_gate`, `shared_w_out`, `shared_gate`) in our layouts: the
/// expert and shared-expert weights converted to `target`, the router and
/// score bias to F32 (tensors already of that type are taken as they are).
/// Throws `Error` naming `source` and the weight for a weight the spec needs
/// but `named` lacks, a name the spec does not use, a shape that
/// contradicts the spec, or a non-floating-point tensor.
LayerWeights layerWeightsFromNamed(std::map<std::string, HostTensor> named,
                                   const moe::spec::LayerSpec &spec,
                                   DType target, const std::string &source);

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
