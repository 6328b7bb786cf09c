//===- LayerSpec.cpp - The MoE layer spec and its JSON forms --------------===//
//
// Enum spellings, capacity arithmetic (spec §3.3), the strict reader of the
// layer-spec JSON (spec §1) and its writer.
//
//===----------------------------------------------------------------------===//

#include "moe/Spec/LayerSpec.h"

#include "JSONFields.h"

#include <algorithm>
#include <cmath>
#include <limits>

using namespace moe::spec;
using namespace moe::spec::detail;

namespace {

/// Every activation, in the order messages list them.
constexpr Activation kActivations[] = {
    Activation::Relu, Activation::Gelu,  Activation::GeluTanh,
    Activation::Silu, Activation::Geglu, Activation::Swiglu};

/// Every priority, in the order messages list them.
constexpr Priority kPriorities[] = {Priority::Position,
                                    Priority::BatchPrioritized};
constexpr Routing kRoutings[] = {Routing::TokensChoose, Routing::ExpertsChoose};
constexpr ScoreFunction kScoreFunctions[] = {ScoreFunction::Softmax,
                                             ScoreFunction::Sigmoid};
constexpr GroupScore kGroupScores[] = {GroupScore::Max, GroupScore::Top2Sum};

/// The enum whose JSON spelling is `name`, among `values`.
template <typename Enum, std::size_t N>
std::optional<Enum> parseAmong(const Enum (&values)[N], std::string_view name) {
  for (Enum value : values)
    if (toString(value) == name)
      return value;
  return std::nullopt;
}

/// The JSON spellings of `values`, separated by `, `.
template <typename Enum, std::size_t N>
std::string spellings(const Enum (&values)[N]) {
  std::string joined;
  for (Enum value : values) {
    if (!joined.empty())
      joined += ", ";
    joined += toString(value);
  }
  return joined;
}

/// Reads a string naming one of `values`; `noun` is what the enum is called
/// in messages ("activation", "priority").
template <typename Enum, std::size_t N, typename ParseFn>
Enum readEnum(const JSON &value, std::string_view field, std::string_view noun,
              const Enum (&values)[N], ParseFn parse) {
  std::string names = spellings(values);
  std::string name =
      readString(value, field, "a string (one of " + names + ")");
  if (std::optional<Enum> parsed = parse(name))
    return *parsed;
  failField(field, "unknown " + std::string(noun) + " " + singleQuoted(name) +
                       " (expected one of " + names + ")");
}

/// Reads the §8 fields other than `routing` into `spec` (whose sizes, top_k
/// and capacity are read already) and checks the rules between them.
void readRoutingFamily(const Fields &fields, LayerSpec &spec) {
  if (const JSON *function = fields.find("score_function"))
    spec.scoreFunction = readEnum(*function, "score_function", "score function",
                                  kScoreFunctions, parseScoreFunction);
  if (const JSON *bias = fields.find("score_bias"))
    spec.scoreBias = readBool(*bias, "score_bias");
  if (const JSON *groups = fields.find("num_groups"))
    spec.numGroups = readPositiveInt(*groups, "num_groups", spec.numExperts);
  if (spec.numExperts % spec.numGroups != 0)
    failField("num_groups", std::to_string(spec.numGroups) +
                                " does not divide num_experts (" +
                                std::to_string(spec.numExperts) + ")");
  spec.topkGroups = spec.numGroups;
  if (const JSON *kept = fields.find("topk_groups"))
    spec.topkGroups = readIntInRange(*kept, "topk_groups", 1, spec.numGroups,
                                     "an integer between 1 and num_groups (" +
                                         std::to_string(spec.numGroups) + ")");
  if (const JSON *score = fields.find("group_score"))
    spec.groupScore = readEnum(*score, "group_score", "group score",
                               kGroupScores, parseGroupScore);
  if (const JSON *scale = fields.find("gate_scale"))
    spec.gateScale =
        *readPositiveNumberOrNull(*scale, "gate_scale", /*allowNull=*/false);
  if (const JSON *shared = fields.find("shared_d_ff"))
    spec.sharedDFF = readIntInRange(*shared, "shared_d_ff", 0, kMaxDimension,
                                    "an integer between 0 and " +
                                        std::to_string(kMaxDimension));
  if (const JSON *gate = fields.find("shared_gate"))
    spec.sharedGate = readBool(*gate, "shared_gate");
  checkRoutingFamily(spec);
}

/// Reads a parsed layer-spec object, resolving every default.
LayerSpec readLayerSpec(const JSON &document) {
  Fields fields(document);
  fields.rejectUnknown({"d_model", "d_ff", "num_experts", "top_k", "activation",
                        "normalize_gates", "capacity_factor", "expert_capacity",
                        "min_capacity", "group_size", "priority", "routing",
                        "score_function", "score_bias", "num_groups",
                        "topk_groups", "group_score", "gate_scale",
                        "shared_d_ff", "shared_gate"});

  LayerSpec spec;
  if (const JSON *routing = fields.find("routing"))
    spec.routing =
        readEnum(*routing, "routing", "routing", kRoutings, parseRouting);
  if (spec.expertsChoose())
    // Spec §8: these fields are token-choice concepts.
    for (std::string_view field : {"top_k", "normalize_gates", "priority"})
      if (fields.find(field))
        failField(field, "does not apply to routing 'experts_choose' (each "
                         "expert chooses its C tokens)");

  spec.dModel = readDimension(fields.require("d_model"), "d_model");
  spec.dFF = readDimension(fields.require("d_ff"), "d_ff");
  spec.numExperts = readDimension(fields.require("num_experts"), "num_experts");

  if (const JSON *topK = fields.find("top_k"))
    spec.topK = readIntInRange(*topK, "top_k", 1, spec.numExperts,
                               "an integer between 1 and num_experts (" +
                                   std::to_string(spec.numExperts) + ")");

  if (const JSON *activation = fields.find("activation"))
    spec.activation = readEnum(*activation, "activation", "activation",
                               kActivations, parseActivation);

  spec.normalizeGates = spec.topK > 1;
  if (const JSON *normalize = fields.find("normalize_gates"))
    spec.normalizeGates = readBool(*normalize, "normalize_gates");

  if (const JSON *factor = fields.find("capacity_factor"))
    spec.capacityFactor = readPositiveNumberOrNull(*factor, "capacity_factor");

  if (const JSON *capacity = fields.find("expert_capacity")) {
    spec.expertCapacity = readPositiveInt(*capacity, "expert_capacity");
    // A fixed capacity overrides the factor; keep only what is used.
    spec.capacityFactor.reset();
  }

  if (const JSON *minCapacity = fields.find("min_capacity"))
    spec.minCapacity = readPositiveInt(*minCapacity, "min_capacity");

  if (const JSON *groupSize = fields.find("group_size"))
    spec.groupSize = readPositive(*groupSize, "group_size",
                                  std::numeric_limits<int64_t>::max(),
                                  /*allowNull=*/true);

  if (const JSON *priority = fields.find("priority"))
    spec.priority =
        readEnum(*priority, "priority", "priority", kPriorities, parsePriority);
  readRoutingFamily(fields, spec);
  return spec;
}

} // namespace

void moe::spec::detail::checkRoutingFamily(const LayerSpec &spec) {
  int64_t perGroup = spec.numExperts / spec.numGroups;
  if (spec.groupScore == GroupScore::Top2Sum && perGroup < 2)
    failField("group_score", "'top2_sum' needs at least two experts per group "
                             "(num_experts / num_groups = " +
                                 std::to_string(perGroup) + ")");
  if (spec.sharedGate && spec.sharedDFF == 0)
    failField("shared_gate", "needs a shared expert (shared_d_ff > 0)");
  if (spec.expertsChoose()) {
    if (spec.scoreFunction != ScoreFunction::Softmax)
      failField("score_function", "routing 'experts_choose' scores with "
                                  "'softmax' (spec section 8)");
    if (spec.scoreBias)
      failField("score_bias", "does not apply to routing 'experts_choose'");
    if (spec.numGroups > 1)
      failField("num_groups", "expert groups do not apply to routing "
                              "'experts_choose'");
    if (!spec.expertCapacity && !spec.capacityFactor)
      failField("capacity_factor", "routing 'experts_choose' needs a capacity "
                                   "(capacity_factor or expert_capacity), not "
                                   "null");
    return;
  }
  int64_t choosable = spec.topkGroups * perGroup;
  if (spec.topK > choosable)
    failField("top_k", std::to_string(spec.topK) +
                           " exceeds the experts of the topk_groups best "
                           "groups (" +
                           std::to_string(spec.topkGroups) + " x " +
                           std::to_string(perGroup) + ")");
}


std::string_view moe::spec::toString(Activation a) {
  switch (a) {
  case Activation::Relu:
    return "relu";
  case Activation::Gelu:
    return "gelu";
  case Activation::GeluTanh:
    return "gelu_tanh";
  case Activation::Silu:
    return "silu";
  case Activation::Geglu:
    return "geglu";
  case Activation::Swiglu:
    return "swiglu";
  }
  return "relu";
}

std::string_view moe::spec::toString(Priority p) {
  switch (p) {
  case Priority::Position:
    return "position";
  case Priority::BatchPrioritized:
    return "batch_prioritized";
  }
  return "position";
}

std::string_view moe::spec::toString(Routing r) {
  return r == Routing::ExpertsChoose ? "experts_choose" : "tokens_choose";
}

std::string_view moe::spec::toString(ScoreFunction f) {
  return f == ScoreFunction::Sigmoid ? "sigmoid" : "softmax";
}

std::string_view moe::spec::toString(GroupScore g) {
  return g == GroupScore::Top2Sum ? "top2_sum" : "max";
}

std::optional<Routing> moe::spec::parseRouting(std::string_view name) {
  return parseAmong(kRoutings, name);
}

std::optional<ScoreFunction>
moe::spec::parseScoreFunction(std::string_view name) {
  return parseAmong(kScoreFunctions, name);
}

std::optional<GroupScore> moe::spec::parseGroupScore(std::string_view name) {
  return parseAmong(kGroupScores, name);
}

std::optional<Activation> moe::spec::parseActivation(std::string_view name) {
  return parseAmong(kActivations, name);
}

std::optional<Priority> moe::spec::parsePriority(std::string_view name) {
  return parseAmong(kPriorities, name);
}

bool moe::spec::isGated(Activation a) {
  return a == Activation::Geglu || a == Activation::Swiglu;
}

std::optional<int64_t> LayerSpec::capacityFor(int64_t groupTokens) const {
  if (expertCapacity)
    return expertsChoose() ? std::min(*expertCapacity, groupTokens)
                           : *expertCapacity;
  if (!capacityFactor)
    return std::nullopt;
  // Spec §3.3, evaluated in double in exactly the order cf * k * S / E;
  // experts choose (§8) has no k factor and takes at most S tokens.
  double perExpert = expertsChoose() ? 1.0 : static_cast<double>(topK);
  double slots = std::ceil(*capacityFactor * perExpert *
                           static_cast<double>(groupTokens) /
                           static_cast<double>(numExperts));
  // 2^63 is exact in double; values at or beyond it (or a NaN from a spec
  // that was never validated) saturate instead of overflowing the cast.
  constexpr double kLimit = 9223372036854775808.0;
  int64_t capacity = std::numeric_limits<int64_t>::max();
  if (slots < kLimit)
    capacity = slots > -kLimit ? static_cast<int64_t>(slots)
                               : std::numeric_limits<int64_t>::min();
  capacity = std::max(minCapacity, capacity);
  return expertsChoose() ? std::min(capacity, groupTokens) : capacity;
}

SpecResult moe::spec::parseLayerSpec(std::string_view text,
                                     std::string_view source) {
  return guarded(source, [&] { return readLayerSpec(parseObject(text)); });
}

std::string moe::spec::checkTokens(const LayerSpec &spec, int64_t tokens,
                                   std::string_view source) {
  std::string prefix = std::string(source) + ": error: ";
  if (tokens <= 0)
    return prefix + "token count must be positive, got " +
           std::to_string(tokens);
  if (spec.groupSize && (*spec.groupSize <= 0 || tokens % *spec.groupSize != 0))
    return prefix + "field 'group_size': " + std::to_string(*spec.groupSize) +
           " does not divide the token count " + std::to_string(tokens);
  return std::string();
}

std::string moe::spec::toJSON(const LayerSpec &spec) {
  JSON out = JSON::object();
  out["d_model"] = spec.dModel;
  out["d_ff"] = spec.dFF;
  out["num_experts"] = spec.numExperts;
  if (spec.expertsChoose())
    out["routing"] = std::string(toString(spec.routing));
  else
    out["top_k"] = spec.topK;
  out["activation"] = std::string(toString(spec.activation));
  if (!spec.expertsChoose())
    out["normalize_gates"] = spec.normalizeGates;
  out["capacity_factor"] =
      spec.capacityFactor ? JSON(*spec.capacityFactor) : JSON(nullptr);
  if (spec.expertCapacity)
    out["expert_capacity"] = *spec.expertCapacity;
  out["min_capacity"] = spec.minCapacity;
  out["group_size"] = spec.groupSize ? JSON(*spec.groupSize) : JSON(nullptr);
  if (!spec.expertsChoose()) {
    out["priority"] = std::string(toString(spec.priority));
    out["score_function"] = std::string(toString(spec.scoreFunction));
    out["score_bias"] = spec.scoreBias;
    out["num_groups"] = spec.numGroups;
    out["topk_groups"] = spec.topkGroups;
    out["group_score"] = std::string(toString(spec.groupScore));
  }
  out["gate_scale"] = spec.gateScale;
  out["shared_d_ff"] = spec.sharedDFF;
  out["shared_gate"] = spec.sharedGate;
  return out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}
