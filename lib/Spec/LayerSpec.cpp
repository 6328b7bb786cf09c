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

/// Reads a parsed layer-spec object, resolving every default.
LayerSpec readLayerSpec(const JSON &document) {
  Fields fields(document);
  fields.rejectUnknown({"d_model", "d_ff", "num_experts", "top_k", "activation",
                        "normalize_gates", "capacity_factor", "expert_capacity",
                        "min_capacity", "group_size", "priority"});

  LayerSpec spec;
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
  return spec;
}

} // namespace

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

std::optional<Activation> moe::spec::parseActivation(std::string_view name) {
  for (Activation a : kActivations)
    if (toString(a) == name)
      return a;
  return std::nullopt;
}

std::optional<Priority> moe::spec::parsePriority(std::string_view name) {
  for (Priority p : kPriorities)
    if (toString(p) == name)
      return p;
  return std::nullopt;
}

bool moe::spec::isGated(Activation a) {
  return a == Activation::Geglu || a == Activation::Swiglu;
}

std::optional<int64_t> LayerSpec::capacityFor(int64_t groupTokens) const {
  if (expertCapacity)
    return *expertCapacity;
  if (!capacityFactor)
    return std::nullopt;
  // Spec §3.3, evaluated in double in exactly the order cf * k * S / E.
  double slots = std::ceil(*capacityFactor * static_cast<double>(topK) *
                           static_cast<double>(groupTokens) /
                           static_cast<double>(numExperts));
  // 2^63 is exact in double; values at or beyond it (or a NaN from a spec
  // that was never validated) saturate instead of overflowing the cast.
  constexpr double kLimit = 9223372036854775808.0;
  int64_t capacity = std::numeric_limits<int64_t>::max();
  if (slots < kLimit)
    capacity = slots > -kLimit ? static_cast<int64_t>(slots)
                               : std::numeric_limits<int64_t>::min();
  return std::max(minCapacity, capacity);
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
  out["top_k"] = spec.topK;
  out["activation"] = std::string(toString(spec.activation));
  out["normalize_gates"] = spec.normalizeGates;
  out["capacity_factor"] =
      spec.capacityFactor ? JSON(*spec.capacityFactor) : JSON(nullptr);
  if (spec.expertCapacity)
    out["expert_capacity"] = *spec.expertCapacity;
  out["min_capacity"] = spec.minCapacity;
  out["group_size"] = spec.groupSize ? JSON(*spec.groupSize) : JSON(nullptr);
  out["priority"] = std::string(toString(spec.priority));
  return out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}
