//===- HFConfig.cpp - Layer specs from Hugging Face configs ---------------===//
//
// Maps the MoE fields of a Hugging Face `config.json` of the
// `switch_transformers` or `mixtral` family onto a LayerSpec (spec §1, §7).
// Fields that do not concern the MoE layer are ignored.
//
//===----------------------------------------------------------------------===//

#include "moe/Spec/LayerSpec.h"

#include "JSONFields.h"

using namespace moe::spec;
using namespace moe::spec::detail;

namespace {

/// The supported `model_type` values, as listed in messages.
constexpr std::string_view kModelTypes = "switch_transformers, mixtral";

/// The `dense_act_fn` values a Switch config may use, as listed in messages.
constexpr std::string_view kSwitchActivations =
    "relu, gelu, gelu_new, gelu_pytorch_tanh, silu, swish";

/// Maps a Switch `dense_act_fn` onto an activation.
Activation switchActivation(const std::string &name) {
  if (name == "relu")
    return Activation::Relu;
  if (name == "gelu")
    return Activation::Gelu;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh")
    return Activation::GeluTanh;
  if (name == "silu" || name == "swish")
    return Activation::Silu;
  failField("dense_act_fn", "unsupported activation " + singleQuoted(name) +
                                " (expected one of " +
                                std::string(kSwitchActivations) + ")");
}

/// `switch_transformers`: top-1 with raw gates, a fixed expert capacity, one
/// routing group per sequence. `router_jitter_noise` is a training option and
/// is ignored; `is_gated_act`, `dense_act_fn` and `router_bias` default as in
/// the Hugging Face config class (false, relu, false).
LayerSpec readSwitch(const Fields &fields, std::optional<int64_t> seqLen) {
  LayerSpec spec;
  spec.dModel = readDimension(fields.require("d_model"), "d_model");
  spec.dFF = readDimension(fields.require("d_ff"), "d_ff");
  spec.numExperts = readDimension(fields.require("num_experts"), "num_experts");
  spec.expertCapacity =
      readPositiveInt(fields.require("expert_capacity"), "expert_capacity");

  if (const JSON *bias = fields.find("router_bias"))
    if (readBool(*bias, "router_bias"))
      failField("router_bias", "a router bias is not part of the layer "
                               "contract");

  // Hugging Face's Switch experts are wi/wo MLPs whatever this flag says;
  // a checkpoint claiming gated experts has no weights we could load.
  if (const JSON *gated = fields.find("is_gated_act"))
    if (readBool(*gated, "is_gated_act"))
      failField("is_gated_act", "gated experts are not supported for "
                                "switch_transformers (its experts have only "
                                "wi and wo)");
  std::string activation = "relu";
  if (const JSON *name = fields.find("dense_act_fn"))
    activation =
        readString(*name, "dense_act_fn",
                   "a string (one of " + std::string(kSwitchActivations) + ")");
  spec.activation = switchActivation(activation);

  spec.topK = 1;
  spec.normalizeGates = false;
  spec.groupSize = seqLen;
  spec.priority = Priority::Position;
  return spec;
}

/// `mixtral`: top-k with normalized gates, silu-gated experts (`swiglu`),
/// dropless, all tokens of a call in one group. `hidden_act` defaults to
/// silu as in the Hugging Face config class.
LayerSpec readMixtral(const Fields &fields) {
  LayerSpec spec;
  spec.dModel = readDimension(fields.require("hidden_size"), "hidden_size");
  spec.dFF =
      readDimension(fields.require("intermediate_size"), "intermediate_size");
  spec.numExperts =
      readDimension(fields.require("num_local_experts"), "num_local_experts");
  spec.topK = readIntInRange(fields.require("num_experts_per_tok"),
                             "num_experts_per_tok", 1, spec.numExperts,
                             "an integer between 1 and num_local_experts (" +
                                 std::to_string(spec.numExperts) + ")");

  if (const JSON *act = fields.find("hidden_act"))
    if (!act->is_string() || (*act != "silu" && *act != "swish"))
      failField("hidden_act", "expected \"silu\" (the experts are silu-gated, "
                              "i.e. swiglu), got " +
                                  describe(*act));

  spec.activation = Activation::Swiglu;
  spec.normalizeGates = true;
  spec.priority = Priority::Position;
  return spec;
}

} // namespace

SpecResult moe::spec::parseHFConfig(std::string_view text,
                                    std::string_view source,
                                    std::optional<int64_t> seqLen) {
  return guarded(source, [&] {
    if (seqLen && *seqLen <= 0)
      fail("sequence length must be positive, got " + std::to_string(*seqLen));
    JSON document = parseObject(text);
    Fields fields(document);
    const JSON *modelType = fields.find("model_type");
    if (!modelType)
      fail("missing required field 'model_type' (expected one of " +
           std::string(kModelTypes) + ")");
    std::string type = readString(*modelType, "model_type",
                                  "one of " + std::string(kModelTypes));
    if (type == "switch_transformers")
      return readSwitch(fields, seqLen);
    if (type == "mixtral")
      return readMixtral(fields);
    failField("model_type", "unsupported model type " + singleQuoted(type) +
                                " (expected one of " +
                                std::string(kModelTypes) + ")");
  });
}
