//===- HFConfig.cpp - Layer specs from Hugging Face configs ---------------===//
//
// Maps the MoE fields of a Hugging Face `config.json` of the
// `switch_transformers`, `mixtral`, `deepseek_v2`, `deepseek_v3`,
// `qwen2_moe`, `qwen3_moe` or `olmoe` family onto a LayerSpec (spec §1, §7,
// §8). Fields that do not concern the MoE layer are ignored; a routing the
// contract cannot express is an error naming the field.
//
//===----------------------------------------------------------------------===//

#include "moe/Spec/LayerSpec.h"

#include "JSONFields.h"

using namespace moe::spec;
using namespace moe::spec::detail;

namespace {

/// The supported `model_type` values, as listed in messages.
constexpr std::string_view kModelTypes =
    "switch_transformers, mixtral, deepseek_v2, deepseek_v3, qwen2_moe, "
    "qwen3_moe, olmoe";

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

/// The silu-gated experts of the families whose configs say `hidden_act`
/// (default silu in every Hugging Face config class of them).
void requireSilu(const Fields &fields) {
  if (const JSON *act = fields.find("hidden_act"))
    if (!act->is_string() || (*act != "silu" && *act != "swish"))
      failField("hidden_act", "expected \"silu\" (the experts are silu-gated, "
                              "i.e. swiglu), got " +
                                  describe(*act));
}

/// Reads a boolean field that defaults to `otherwise` when absent.
bool readBoolOr(const Fields &fields, std::string_view field, bool otherwise) {
  const JSON *value = fields.find(field);
  return value ? readBool(*value, field) : otherwise;
}

/// Reads an integer in [lo, hi] (null reads as `otherwise`) that defaults to
/// `otherwise` when absent.
int64_t readIntOr(const Fields &fields, std::string_view field, int64_t lo,
                  int64_t hi, int64_t otherwise) {
  const JSON *value = fields.find(field);
  if (!value || value->is_null())
    return otherwise;
  return readIntInRange(*value, field, lo, hi,
                        "an integer between " + std::to_string(lo) + " and " +
                            std::to_string(hi));
}

/// The common part of the `*SparseMoeBlock` families and DeepSeek: top-k
/// over `expertsField` silu-gated experts of width `widthField`, dropless,
/// one routing group per call, gates normalised as `norm_topk_prob` says
/// (default `normalizeByDefault`).
LayerSpec readTopKBlock(const Fields &fields, std::string_view expertsField,
                        std::string_view widthField, bool normalizeByDefault) {
  LayerSpec spec;
  spec.dModel = readDimension(fields.require("hidden_size"), "hidden_size");
  spec.dFF = readDimension(fields.require(widthField), widthField);
  spec.numExperts = readDimension(fields.require(expertsField), expertsField);
  spec.topK = readIntInRange(fields.require("num_experts_per_tok"),
                             "num_experts_per_tok", 1, spec.numExperts,
                             "an integer between 1 and " +
                                 std::string(expertsField) + " (" +
                                 std::to_string(spec.numExperts) + ")");
  requireSilu(fields);
  spec.activation = Activation::Swiglu;
  spec.normalizeGates =
      readBoolOr(fields, "norm_topk_prob", normalizeByDefault);
  spec.priority = Priority::Position;
  return spec;
}

/// `qwen2_moe` (a sigmoid-gated shared expert of width
/// `shared_expert_intermediate_size`, none when 0), `qwen3_moe` and `olmoe`
/// (no shared expert): softmax top-k, `norm_topk_prob` default false.
LayerSpec readQwenLike(const Fields &fields, std::string_view type) {
  std::string_view width =
      type == "olmoe" ? "intermediate_size" : "moe_intermediate_size";
  LayerSpec spec = readTopKBlock(fields, "num_experts", width,
                                 /*normalizeByDefault=*/false);
  if (type == "qwen2_moe") {
    spec.sharedDFF = readIntOr(fields, "shared_expert_intermediate_size", 0,
                               kMaxDimension, 0);
    spec.sharedGate = spec.sharedDFF > 0;
  }
  return spec;
}

/// `deepseek_v2` and `deepseek_v3`: `scoring_func`, `topk_method` (greedy,
/// group_limited_greedy, noaux_tc; V3 knows only noaux_tc with sigmoid),
/// `n_group` / `topk_group`, `routed_scaling_factor`, `n_shared_experts`
/// shared experts of width `moe_intermediate_size` (one shared expert of
/// the summed width). Absent fields take the Hugging Face config classes'
/// defaults.
LayerSpec readDeepSeek(const Fields &fields, bool v3) {
  LayerSpec spec = readTopKBlock(fields, "n_routed_experts",
                                 "moe_intermediate_size",
                                 /*normalizeByDefault=*/v3);
  std::string method = v3 ? "noaux_tc" : "greedy";
  if (const JSON *value = fields.find("topk_method"))
    method = readString(*value, "topk_method",
                        "a string (greedy, group_limited_greedy, noaux_tc)");
  if (method != "noaux_tc" &&
      (v3 || (method != "greedy" && method != "group_limited_greedy")))
    failField("topk_method",
              "unsupported top-k method " + singleQuoted(method) +
                  (v3 ? " (deepseek_v3 routes with 'noaux_tc')"
                      : " (expected one of greedy, group_limited_greedy, "
                        "noaux_tc)"));

  std::string scoring = v3 ? "sigmoid" : "softmax";
  if (const JSON *value = fields.find("scoring_func"))
    scoring = readString(*value, "scoring_func", "a string (softmax, sigmoid)");
  std::optional<ScoreFunction> function = parseScoreFunction(scoring);
  if (!function || (v3 && *function != ScoreFunction::Sigmoid))
    failField("scoring_func",
              "unsupported scoring function " + singleQuoted(scoring) +
                  (v3 ? " (deepseek_v3 scores with 'sigmoid')"
                      : " (expected softmax or sigmoid)"));
  spec.scoreFunction = *function;

  if (method != "greedy") {
    spec.numGroups = readIntOr(fields, "n_group", 1, spec.numExperts,
                               v3 ? 8 : 1);
    if (spec.numExperts % spec.numGroups != 0)
      failField("n_group", std::to_string(spec.numGroups) +
                               " does not divide n_routed_experts (" +
                               std::to_string(spec.numExperts) + ")");
    spec.topkGroups = readIntOr(fields, "topk_group", 1, spec.numGroups,
                                v3 ? std::min<int64_t>(4, spec.numGroups)
                                   : spec.numGroups);
    if (method == "noaux_tc") {
      spec.scoreBias = true;
      spec.groupScore = GroupScore::Top2Sum;
      if (spec.numExperts / spec.numGroups < 2)
        failField("n_group", "'noaux_tc' ranks groups by their two best "
                             "experts: each group needs at least two");
    }
    int64_t choosable = spec.topkGroups * (spec.numExperts / spec.numGroups);
    if (spec.topK > choosable)
      failField("num_experts_per_tok",
                std::to_string(spec.topK) +
                    " exceeds the experts of the topk_group best groups (" +
                    std::to_string(choosable) + ")");
  }

  if (const JSON *scale = fields.find("routed_scaling_factor")) {
    spec.gateScale = *readPositiveNumberOrNull(*scale, "routed_scaling_factor",
                                               /*allowNull=*/false);
  } else if (v3) {
    spec.gateScale = 2.5;
  }
  int64_t shared = readIntOr(fields, "n_shared_experts", 0, kMaxDimension,
                             v3 ? 1 : 0);
  if (shared > 0) {
    if (spec.dFF > kMaxDimension / shared)
      failField("n_shared_experts", "the shared experts' width (" +
                                        std::to_string(shared) + " x " +
                                        std::to_string(spec.dFF) +
                                        ") is too large");
    spec.sharedDFF = shared * spec.dFF;
  }
  return spec;
}

/// `mixtral`: top-k with normalized gates (always: its block has no
/// `norm_topk_prob`), silu-gated experts, dropless, all tokens of a call in
/// one group.
LayerSpec readMixtral(const Fields &fields) {
  LayerSpec spec = readTopKBlock(fields, "num_local_experts",
                                 "intermediate_size",
                                 /*normalizeByDefault=*/true);
  spec.normalizeGates = true;
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
    LayerSpec spec;
    if (type == "mixtral")
      return readMixtral(fields);
    if (type == "deepseek_v2" || type == "deepseek_v3")
      spec = readDeepSeek(fields, type == "deepseek_v3");
    else if (type == "qwen2_moe" || type == "qwen3_moe" || type == "olmoe")
      spec = readQwenLike(fields, type);
    else
      failField("model_type", "unsupported model type " + singleQuoted(type) +
                                  " (expected one of " +
                                  std::string(kModelTypes) + ")");
    checkRoutingFamily(spec);
    return spec;
  });
}
