//===- LayerSpec.h - The MoE layer spec and its JSON forms -------*- C++
//-*-===//
//
// The plain C++ model of one MoE layer spec (../shared/spec/moe-layer.md §1),
// read from our layer-spec JSON or from a Hugging Face `config.json`. This
// library depends on nlohmann/json and the C++ standard library only, so the
// runtime can share it without pulling in MLIR.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_SPEC_LAYERSPEC_H
#define MOE_SPEC_LAYERSPEC_H

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace moe::spec {

/// Expert nonlinearity. `Geglu` and `Swiglu` are the gated forms of
/// `GeluTanh` and `Silu`; they need the `w_gate` weight.
enum class Activation { Relu, Gelu, GeluTanh, Silu, Geglu, Swiglu };

/// Which assignment keeps a slot when an expert overflows.
enum class Priority { Position, BatchPrioritized };

/// The spelling used in the layer-spec JSON (`relu`, `gelu_tanh`, ...).
std::string_view toString(Activation a);
std::string_view toString(Priority p);
/// Parses the JSON spelling; std::nullopt for an unknown name.
std::optional<Activation> parseActivation(std::string_view name);
std::optional<Priority> parsePriority(std::string_view name);
/// True for the gated activations (`geglu`, `swiglu`).
bool isGated(Activation a);

/// One layer, with every default of the spec already resolved.
struct LayerSpec {
  int64_t dModel = 0;
  int64_t dFF = 0;
  int64_t numExperts = 0;
  int64_t topK = 1;
  Activation activation = Activation::Relu;
  /// Resolved: the spec's default is `true` when top_k > 1.
  bool normalizeGates = false;
  /// Absent together with `expertCapacity` means dropless.
  std::optional<double> capacityFactor;
  /// Fixed capacity per group; overrides `capacityFactor`.
  std::optional<int64_t> expertCapacity;
  int64_t minCapacity = 1;
  /// Tokens per routing group; absent means one group per call.
  std::optional<int64_t> groupSize;
  Priority priority = Priority::Position;

  /// Capacity C of one group of `groupTokens` tokens (spec §3.3), or
  /// std::nullopt when the layer is dropless.
  std::optional<int64_t> capacityFor(int64_t groupTokens) const;
};

/// The outcome of reading a spec: either a spec or a one-line error of the
/// form `<source>: error: <what>` (with `:<line>:<col>` after the source for
/// JSON syntax errors) that names the offending field.
struct SpecResult {
  std::optional<LayerSpec> spec;
  std::string error;
  explicit operator bool() const { return spec.has_value(); }
};

/// Reads our layer-spec JSON (spec §1). Unknown fields, wrong types and
/// impossible values are errors. `source` names the input in messages.
SpecResult parseLayerSpec(std::string_view text, std::string_view source);

/// Reads a Hugging Face `config.json` of the `switch_transformers` or
/// `mixtral` family. Fields that do not concern the MoE layer are ignored;
/// MoE fields with a wrong type or an unsupported value are errors.
/// A Switch layer routes each sequence as one group: `seqLen`, when given,
/// becomes the group size.
SpecResult parseHFConfig(std::string_view text, std::string_view source,
                         std::optional<int64_t> seqLen = std::nullopt);

/// Checks the spec against a call of `tokens` tokens (group_size must divide
/// it). Returns an empty string when valid, else a one-line error naming the
/// field, prefixed by `source`.
std::string checkTokens(const LayerSpec &spec, int64_t tokens,
                        std::string_view source);

/// Writes the spec as layer-spec JSON (every field explicit), two-space
/// indented.
std::string toJSON(const LayerSpec &spec);

} // namespace moe::spec

#endif // MOE_SPEC_LAYERSPEC_H
