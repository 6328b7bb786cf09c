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

/// Who chooses (spec §8): each token its k experts, or each expert its C
/// tokens.
enum class Routing { TokensChoose, ExpertsChoose };

/// How router logits become scores (spec §8).
enum class ScoreFunction { Softmax, Sigmoid };

/// A group's score when experts are chosen inside their best groups (§8).
enum class GroupScore { Max, Top2Sum };

/// The spelling used in the layer-spec JSON (`relu`, `gelu_tanh`, ...).
std::string_view toString(Activation a);
std::string_view toString(Priority p);
std::string_view toString(Routing r);
std::string_view toString(ScoreFunction f);
std::string_view toString(GroupScore g);
/// Parses the JSON spelling; std::nullopt for an unknown name.
std::optional<Activation> parseActivation(std::string_view name);
std::optional<Priority> parsePriority(std::string_view name);
std::optional<Routing> parseRouting(std::string_view name);
std::optional<ScoreFunction> parseScoreFunction(std::string_view name);
std::optional<GroupScore> parseGroupScore(std::string_view name);
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

  // Spec §8. With `ExpertsChoose`, `topK` is 1, `normalizeGates` false and
  // `priority` Position (the fields do not apply and are not written).
  Routing routing = Routing::TokensChoose;
  ScoreFunction scoreFunction = ScoreFunction::Softmax;
  /// A `score_bias` [E] weight is added to the scores for the choice only.
  bool scoreBias = false;
  /// G contiguous expert groups (dividing E); 1 = no group limit.
  int64_t numGroups = 1;
  /// Groups a token may choose from; resolved to `numGroups` by default.
  int64_t topkGroups = 1;
  GroupScore groupScore = GroupScore::Max;
  /// Every gate is multiplied by it (`routed_scaling_factor`).
  double gateScale = 1.0;
  /// Width of the shared expert; 0 = none.
  int64_t sharedDFF = 0;
  /// Scale the shared expert's output by σ(x · shared_gate).
  bool sharedGate = false;

  bool expertsChoose() const { return routing == Routing::ExpertsChoose; }

  /// Capacity C of one group of `groupTokens` tokens (spec §3.3; for
  /// experts choose §8: no k factor, at most S), or std::nullopt when the
  /// layer is dropless.
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

/// Reads a Hugging Face `config.json` of the `switch_transformers`,
/// `mixtral`, `deepseek_v2`, `deepseek_v3`, `qwen2_moe`, `qwen3_moe` or
/// `olmoe` family (spec §7, §8). Fields that do not concern the MoE layer are ignored;
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
