//===- WeightsTest.cpp - Tests of loading a layer's weights ---------------===//
//
// Our layout, the Hugging Face Switch, Mixtral and gate_proj/up_proj/
// down_proj layouts (transposes checked element by element), the spec §8
// weights, prefix discovery, shape and gate errors, and dtype conversion on
// load.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "moe/Runtime/Weights.h"

#include <limits>
#include <map>

using namespace moe::runtime;
using namespace moe::runtime::test;
using moe::spec::Activation;
using moe::spec::LayerSpec;

namespace {

constexpr int64_t kE = 3, kD = 4, kF = 5;

LayerSpec makeSpec(Activation activation = Activation::Relu) {
  LayerSpec spec;
  spec.numExperts = kE;
  spec.dModel = kD;
  spec.dFF = kF;
  spec.activation = activation;
  return spec;
}

/// An F32 tensor whose element at (i, j, ...) is `base + 100 i + 10 j + k`
/// (for rank 2, `base + 10 i + j`): every element tells where it came from.
HostTensor indexed(std::vector<int64_t> shape, float base) {
  HostTensor tensor = HostTensor::zeros(DType::F32, shape);
  float *data = tensor.dataAs<float>();
  for (int64_t flat = 0; flat < tensor.numElements(); ++flat) {
    float value = base, scale = 1;
    int64_t rest = flat;
    for (std::size_t d = shape.size(); d-- > 0;) {
      value += scale * static_cast<float>(rest % shape[d]);
      rest /= shape[d];
      scale *= 10;
    }
    data[flat] = value;
  }
  return tensor;
}

/// Writes `tensors` to `<dir>/<name>` and opens the file.
SafeTensorsFile writeFile(const ScratchDir &dir, const std::string &name,
                          const std::map<std::string, HostTensor> &tensors) {
  std::vector<std::pair<std::string, const HostTensor *>> named;
  for (const auto &[tensorName, tensor] : tensors)
    named.emplace_back(tensorName, &tensor);
  writeSafeTensors(dir.file(name), named);
  return SafeTensorsFile::open(dir.file(name));
}

/// Our-layout tensors under `prefix`, optionally with a gate.
void addOurs(std::map<std::string, HostTensor> &tensors,
             const std::string &prefix, bool gated) {
  tensors[prefix + "router"] = indexed({kE, kD}, 0);
  tensors[prefix + "w_in"] = indexed({kE, kD, kF}, 1000);
  if (gated)
    tensors[prefix + "w_gate"] = indexed({kE, kD, kF}, 2000);
  tensors[prefix + "w_out"] = indexed({kE, kF, kD}, 3000);
}

/// Hugging Face Switch tensors: expert e's wi holds `1000 * (e + 1)` plus
/// its index, its wo `-1000 * (e + 1)` plus its index.
void addSwitch(std::map<std::string, HostTensor> &tensors,
               const std::string &prefix) {
  tensors[prefix + "router.classifier.weight"] = indexed({kE, kD}, 0);
  for (int64_t e = 0; e < kE; ++e) {
    std::string expert = prefix + "experts.expert_" + std::to_string(e) + ".";
    tensors[expert + "wi.weight"] = indexed({kF, kD}, 1000.0f * (e + 1));
    tensors[expert + "wo.weight"] = indexed({kD, kF}, -1000.0f * (e + 1));
  }
}

/// Hugging Face Mixtral tensors; w1, w2, w3 of expert e are told apart by
/// their bases 10000 e + 1000, 2000, 3000.
void addMixtral(std::map<std::string, HostTensor> &tensors,
                const std::string &prefix) {
  tensors[prefix + "gate.weight"] = indexed({kE, kD}, 0);
  for (int64_t e = 0; e < kE; ++e) {
    std::string expert = prefix + "experts." + std::to_string(e) + ".";
    tensors[expert + "w1.weight"] = indexed({kF, kD}, 10000.0f * e + 1000);
    tensors[expert + "w2.weight"] = indexed({kD, kF}, 10000.0f * e + 2000);
    tensors[expert + "w3.weight"] = indexed({kF, kD}, 10000.0f * e + 3000);
  }
}

/// Element (e, i, j) of an [E, I, J] F32 tensor.
float at(const HostTensor &tensor, int64_t e, int64_t i, int64_t j) {
  return tensor.dataAs<float>()[(e * tensor.dim(1) + i) * tensor.dim(2) + j];
}

/// The experts of `addMixtral` / `addProjections` in our layout: the gate
/// projection (base 1000) as w_gate, the up one (3000) as w_in, the down one
/// (2000) as w_out, each transposed.
void expectGatedExperts(const LayerWeights &weights) {
  for (int64_t e = 0; e < kE; ++e)
    for (int64_t d = 0; d < kD; ++d)
      for (int64_t f = 0; f < kF; ++f) {
        float index = 10.0f * f + d;
        ASSERT_EQ(at(weights.wGate, e, d, f), 10000.0f * e + 1000 + index);
        ASSERT_EQ(at(weights.wIn, e, d, f), 10000.0f * e + 3000 + index);
        ASSERT_EQ(at(weights.wOut, e, f, d), 10000.0f * e + 2000 + 10 * d + f);
      }
}

TEST(Weights, LoadsOurLayout) {
  ScratchDir dir;
  std::map<std::string, HostTensor> tensors;
  addOurs(tensors, "", /*gated=*/false);
  tensors["unrelated.bias"] = HostTensor::zeros(DType::I64, {3});
  SafeTensorsFile file = writeFile(dir, "w.safetensors", tensors);
  EXPECT_EQ(locateLayerWeights(file).layout, WeightLayout::Ours);
  LayerWeights weights = loadLayerWeights(file, makeSpec(), DType::F32);
  EXPECT_EQ(weights.router.shape(), (std::vector<int64_t>{kE, kD}));
  EXPECT_EQ(weights.wIn.shape(), (std::vector<int64_t>{kE, kD, kF}));
  EXPECT_EQ(weights.wOut.shape(), (std::vector<int64_t>{kE, kF, kD}));
  EXPECT_TRUE(weights.wGate.isNull());
  EXPECT_EQ(at(weights.wIn, 2, 3, 4), 1234.0f);
  EXPECT_EQ(at(weights.wOut, 1, 4, 2), 3142.0f);
  EXPECT_EQ(weights.router.dataAs<float>()[kD + 3], 13.0f);
}

TEST(Weights, LoadsOurGatedLayoutUnderAPrefix) {
  ScratchDir dir;
  std::map<std::string, HostTensor> tensors;
  addOurs(tensors, "layers.2.moe.", /*gated=*/true);
  SafeTensorsFile file = writeFile(dir, "w.safetensors", tensors);
  for (const char *prefix : {"", "layers.2.moe.", "layers.2.moe"}) {
    LayerWeights weights = loadLayerWeights(file, makeSpec(Activation::Swiglu),
                                            DType::F32, prefix);
    EXPECT_EQ(at(weights.wGate, 1, 2, 3), 2123.0f) << prefix;
  }
  EXPECT_TRUE(throwsExactly(
      [&] { loadLayerWeights(file, makeSpec(), DType::F32); },
      file.path() + ": error: weight 'layers.2.moe.w_gate' is present but "
                    "activation 'relu' is not gated"));
}

TEST(Weights, TransposesSwitchExperts) {
  ScratchDir dir;
  std::map<std::string, HostTensor> tensors;
  addSwitch(tensors, "");
  SafeTensorsFile file = writeFile(dir, "switch.safetensors", tensors);
  LayerWeights weights = loadLayerWeights(file, makeSpec(), DType::F32);
  EXPECT_TRUE(weights.wGate.isNull());
  for (int64_t e = 0; e < kE; ++e) {
    const HostTensor &wi =
        tensors["experts.expert_" + std::to_string(e) + ".wi.weight"];
    const HostTensor &wo =
        tensors["experts.expert_" + std::to_string(e) + ".wo.weight"];
    for (int64_t d = 0; d < kD; ++d)
      for (int64_t f = 0; f < kF; ++f) {
        ASSERT_EQ(at(weights.wIn, e, d, f), wi.dataAs<float>()[f * kD + d]);
        ASSERT_EQ(at(weights.wOut, e, f, d), wo.dataAs<float>()[d * kF + f]);
      }
  }
  // Spot values: w_in[1][2][3] = wi_1[3][2], w_out[2][4][1] = wo_2[1][4].
  EXPECT_EQ(at(weights.wIn, 1, 2, 3), 2032.0f);
  EXPECT_EQ(at(weights.wOut, 2, 4, 1), -3000.0f + 14.0f);
  EXPECT_TRUE(throwsError(
      [&] { loadLayerWeights(file, makeSpec(Activation::Geglu), DType::F32); },
      {"activation 'geglu' needs a gate weight"}));
}

TEST(Weights, MapsMixtralProjections) {
  ScratchDir dir;
  std::map<std::string, HostTensor> tensors;
  addMixtral(tensors, "");
  SafeTensorsFile file = writeFile(dir, "mixtral.safetensors", tensors);
  // w1 is the gate projection, w3 the up projection, w2 the down one.
  expectGatedExperts(
      loadLayerWeights(file, makeSpec(Activation::Swiglu), DType::F32));
  EXPECT_TRUE(throwsError(
      [&] { loadLayerWeights(file, makeSpec(Activation::Silu), DType::F32); },
      {"gate projection (w1)", "activation 'silu' is not gated"}));
}

/// DeepSeek / Qwen tensors: gate_proj, up_proj, down_proj of expert e told
/// apart by their bases 10000 e + 1000, 3000, 2000 (as Mixtral's w1, w3,
/// w2), the choice bias, and a shared expert under `shared` (bases 500,
/// 700, 600) with, when `gate`, its [1, D] sigmoid gate.
void addProjections(std::map<std::string, HostTensor> &tensors,
                    const std::string &prefix, const std::string &shared,
                    bool gate) {
  tensors[prefix + "gate.weight"] = indexed({kE, kD}, 0);
  tensors[prefix + "gate.e_score_correction_bias"] = indexed({kE}, 90);
  for (int64_t e = 0; e < kE; ++e) {
    std::string expert = prefix + "experts." + std::to_string(e) + ".";
    tensors[expert + "gate_proj.weight"] = indexed({kF, kD}, 10000.0f * e + 1000);
    tensors[expert + "down_proj.weight"] = indexed({kD, kF}, 10000.0f * e + 2000);
    tensors[expert + "up_proj.weight"] = indexed({kF, kD}, 10000.0f * e + 3000);
  }
  tensors[prefix + shared + "gate_proj.weight"] = indexed({2 * kF, kD}, 500);
  tensors[prefix + shared + "down_proj.weight"] = indexed({kD, 2 * kF}, 600);
  tensors[prefix + shared + "up_proj.weight"] = indexed({2 * kF, kD}, 700);
  if (gate)
    tensors[prefix + "shared_expert_gate.weight"] = indexed({1, kD}, 800);
}

/// A swiglu spec with §8's score bias and a shared expert of width 2F.
LayerSpec routingFamilySpec(bool sharedGate) {
  LayerSpec spec = makeSpec(Activation::Swiglu);
  spec.scoreBias = true;
  spec.sharedDFF = 2 * kF;
  spec.sharedGate = sharedGate;
  return spec;
}

TEST(Weights, MapsDeepSeekAndQwenProjections) {
  for (bool qwen : {false, true}) {
    ScratchDir dir;
    std::map<std::string, HostTensor> tensors;
    // DeepSeek's shared expert is `shared_experts.`, Qwen2's
    // `shared_expert.` with a gate.
    addProjections(tensors, "model.layers.3.mlp.",
                   qwen ? "shared_expert." : "shared_experts.", qwen);
    SafeTensorsFile file = writeFile(dir, "p.safetensors", tensors);
    EXPECT_EQ(locateLayerWeights(file).layout, WeightLayout::Projections);
    LayerWeights weights =
        loadLayerWeights(file, routingFamilySpec(qwen), DType::F32);
    expectGatedExperts(weights);
    EXPECT_EQ(weights.scoreBias.shape(), (std::vector<int64_t>{kE}));
    EXPECT_EQ(weights.scoreBias.dataAs<float>()[2], 92.0f);
    // Shared [D, Fs] and [Fs, D] from [Fs, D] and [D, Fs]: element (d, f)
    // of shared_w_in is up_proj[f][d].
    EXPECT_EQ(weights.sharedWIn.shape(), (std::vector<int64_t>{kD, 2 * kF}));
    EXPECT_EQ(weights.sharedWIn.dataAs<float>()[3 * 2 * kF + 7], 773.0f);
    EXPECT_EQ(weights.sharedWGate.dataAs<float>()[1 * 2 * kF + 9], 591.0f);
    EXPECT_EQ(weights.sharedWOut.shape(), (std::vector<int64_t>{2 * kF, kD}));
    EXPECT_EQ(weights.sharedWOut.dataAs<float>()[8 * kD + 2], 628.0f);
    if (qwen) {
      EXPECT_EQ(weights.sharedGate.shape(), (std::vector<int64_t>{kD}));
      EXPECT_EQ(weights.sharedGate.dataAs<float>()[3], 803.0f);
    } else {
      EXPECT_TRUE(weights.sharedGate.isNull());
    }
    // In call order: input, router, bias, w_in, w_gate, w_out, shared.
    HostTensor x = HostTensor::zeros(DType::F32, {2, kD});
    std::vector<HostTensor *> inputs = weights.callInputs(x);
    ASSERT_EQ(inputs.size(), qwen ? 10u : 9u);
    EXPECT_EQ(inputs[2], &weights.scoreBias);
    EXPECT_EQ(inputs[3], &weights.wIn);
    EXPECT_EQ(inputs[6], &weights.sharedWIn);
  }
}

TEST(Weights, LoadsOurRoutingFamilyWeightsAndRejectsStrayOnes) {
  ScratchDir dir;
  std::map<std::string, HostTensor> tensors;
  addOurs(tensors, "", /*gated=*/true);
  tensors["score_bias"] = indexed({kE}, 90);
  tensors["shared_w_in"] = indexed({kD, 2 * kF}, 700);
  tensors["shared_w_gate"] = indexed({kD, 2 * kF}, 500);
  tensors["shared_w_out"] = indexed({2 * kF, kD}, 600);
  tensors["shared_gate"] = indexed({kD}, 800);
  SafeTensorsFile file = writeFile(dir, "w.safetensors", tensors);
  LayerWeights weights =
      loadLayerWeights(file, routingFamilySpec(true), DType::F32);
  EXPECT_EQ(weights.sharedWIn.dataAs<float>()[2 * 2 * kF + 3], 723.0f);
  EXPECT_EQ(weights.sharedGate.dataAs<float>()[1], 801.0f);
  // The same file for a spec without a shared gate: the stray weight is an
  // error, not silently ignored.
  EXPECT_TRUE(throwsExactly(
      [&] { loadLayerWeights(file, routingFamilySpec(false), DType::F32); },
      file.path() + ": error: weight 'shared_gate' is present but the "
                    "spec's shared_gate is false"));
  // A Mixtral file cannot hold §8 weights.
  std::map<std::string, HostTensor> mixtral;
  addMixtral(mixtral, "");
  SafeTensorsFile other = writeFile(dir, "m.safetensors", mixtral);
  EXPECT_TRUE(throwsExactly(
      [&] { loadLayerWeights(other, routingFamilySpec(false), DType::F32); },
      other.path() + ": error: the Mixtral layout has no score_bias weights, "
                     "but the spec asks for them"));
}

TEST(Weights, FindsTheOnlyLayerOfAWholeModel) {
  ScratchDir dir;
  std::map<std::string, HostTensor> tensors;
  addSwitch(tensors, "encoder.block.1.layer.1.mlp.");
  tensors["shared.weight"] = HostTensor::zeros(DType::F32, {7, kD});
  tensors["encoder.block.0.layer.1.DenseReluDense.wi.weight"] =
      HostTensor::zeros(DType::F32, {kF, kD});
  // A shared-expert gate must not pass for a Mixtral router.
  tensors["encoder.block.1.layer.1.mlp.shared_expert_gate.weight"] =
      HostTensor::zeros(DType::F32, {1, kD});
  SafeTensorsFile file = writeFile(dir, "model.safetensors", tensors);
  WeightLocation location = locateLayerWeights(file);
  EXPECT_EQ(location.layout, WeightLayout::Switch);
  EXPECT_EQ(location.prefix, "encoder.block.1.layer.1.mlp.");
  LayerWeights weights = loadLayerWeights(file, makeSpec(), DType::F32);
  EXPECT_EQ(at(weights.wIn, 0, 1, 2), 1021.0f);
}

TEST(Weights, AsksForAPrefixWhenSeveralLayersFit) {
  ScratchDir dir;
  std::map<std::string, HostTensor> tensors;
  addMixtral(tensors, "model.layers.0.block_sparse_moe.");
  addMixtral(tensors, "model.layers.1.block_sparse_moe.");
  SafeTensorsFile file = writeFile(dir, "two.safetensors", tensors);
  EXPECT_TRUE(throwsExactly(
      [&] { loadLayerWeights(file, makeSpec(Activation::Swiglu), DType::F32); },
      file.path() + ": error: found MoE weights under 2 prefixes "
                    "('model.layers.0.block_sparse_moe.', "
                    "'model.layers.1.block_sparse_moe.'); pass the prefix of "
                    "the layer to load (--weight-prefix)"));
  LayerWeights weights =
      loadLayerWeights(file, makeSpec(Activation::Swiglu), DType::F32,
                       "model.layers.1.block_sparse_moe.");
  EXPECT_EQ(at(weights.wIn, 2, 0, 0), 23000.0f);
  EXPECT_TRUE(throwsError(
      [&] {
        loadLayerWeights(file, makeSpec(Activation::Swiglu), DType::F32,
                         "model.layers.7.");
      },
      {"no MoE router weight found under prefix 'model.layers.7.'",
       "'model.layers.7.gate.weight'"}));
}

TEST(Weights, ReportsAMissingRouter) {
  ScratchDir dir;
  std::map<std::string, HostTensor> tensors;
  tensors["w_in"] = indexed({kE, kD, kF}, 0);
  SafeTensorsFile file = writeFile(dir, "W.safetensors", tensors);
  EXPECT_TRUE(throwsExactly(
      [&] { loadLayerWeights(file, makeSpec(), DType::F32); },
      file.path() + ": error: no MoE router weight found (looked for "
                    "'router', '…router.classifier.weight', '…gate.weight')"));
}

TEST(Weights, ReportsMissingAndMisshapenWeights) {
  ScratchDir dir;
  std::map<std::string, HostTensor> mixtral;
  addMixtral(mixtral, "");
  mixtral.erase("experts.2.w2.weight");
  SafeTensorsFile file = writeFile(dir, "m.safetensors", mixtral);
  EXPECT_TRUE(throwsExactly(
      [&] { loadLayerWeights(file, makeSpec(Activation::Swiglu), DType::F32); },
      file.path() + ": error: missing weight 'experts.2.w2.weight'"));

  std::map<std::string, HostTensor> ours;
  addOurs(ours, "", /*gated=*/false);
  ours["w_in"] = indexed({kE, kD, kF - 1}, 0);
  SafeTensorsFile bad = writeFile(dir, "o.safetensors", ours);
  EXPECT_TRUE(throwsExactly(
      [&] { loadLayerWeights(bad, makeSpec(), DType::F32); },
      bad.path() + ": error: weight 'w_in' has shape [3, 4, 4], expected "
                   "[3, 4, 5] ([E, D, F] from the spec)"));

  std::map<std::string, HostTensor> switchLayer;
  addSwitch(switchLayer, "");
  switchLayer["experts.expert_1.wo.weight"] = indexed({kF, kD}, 0);
  SafeTensorsFile swapped = writeFile(dir, "s.safetensors", switchLayer);
  EXPECT_TRUE(throwsError(
      [&] { loadLayerWeights(swapped, makeSpec(), DType::F32); },
      {"weight 'experts.expert_1.wo.weight' has shape [5, 4], expected "
       "[4, 5] ([D, F] from the spec)"}));

  std::map<std::string, HostTensor> ints;
  addOurs(ints, "", /*gated=*/false);
  ints["w_out"] = HostTensor::zeros(DType::I64, {kE, kF, kD});
  SafeTensorsFile intFile = writeFile(dir, "i.safetensors", ints);
  EXPECT_TRUE(throwsError(
      [&] { loadLayerWeights(intFile, makeSpec(), DType::F32); },
      {"weight 'w_out' has dtype I64; expected F32, BF16, F16 or F64"}));
  EXPECT_TRUE(
      throwsError([&] { loadLayerWeights(intFile, makeSpec(), DType::I64); },
                  {"cannot load weights as i64"}));
}

TEST(Weights, ConvertsOnLoad) {
  ScratchDir dir;
  // A bfloat16 Switch checkpoint loads exactly into float32.
  std::map<std::string, HostTensor> bf16;
  addSwitch(bf16, "");
  for (auto &[name, tensor] : bf16)
    tensor = tensor.castTo(DType::BF16);
  SafeTensorsFile file = writeFile(dir, "bf16.safetensors", bf16);
  LayerWeights weights = loadLayerWeights(file, makeSpec(), DType::F32);
  EXPECT_EQ(weights.wIn.dtype(), DType::F32);
  EXPECT_EQ(weights.router.dtype(), DType::F32);
  const HostTensor &wi = bf16["experts.expert_1.wi.weight"];
  EXPECT_EQ(at(weights.wIn, 1, 3, 2),
            bf16ToF32(wi.dataAs<uint16_t>()[2 * kD + 3]));
  EXPECT_EQ(at(weights.wIn, 0, 0, 0), 1000.0f);

  // A float32 file loads into bfloat16 with rounding; the router stays f32.
  std::map<std::string, HostTensor> f32;
  addOurs(f32, "", /*gated=*/false);
  f32["router"].dataAs<float>()[0] = 1.0f + 0x1p-8f;
  f32["w_in"].dataAs<float>()[0] = 1.0f + 0x1p-8f;
  SafeTensorsFile f32File = writeFile(dir, "f32.safetensors", f32);
  LayerWeights rounded = loadLayerWeights(f32File, makeSpec(), DType::BF16);
  EXPECT_EQ(rounded.wIn.dtype(), DType::BF16);
  EXPECT_EQ(rounded.wOut.dtype(), DType::BF16);
  EXPECT_EQ(rounded.wIn.dataAs<uint16_t>()[0], 0x3f80);
  EXPECT_EQ(rounded.wOut.dataAs<uint16_t>()[1], f32ToBF16(3001.0f));
  EXPECT_EQ(rounded.router.dtype(), DType::F32);
  EXPECT_EQ(rounded.router.dataAs<float>()[0], 1.0f + 0x1p-8f);

  // Transposes work on 16-bit elements too: w_out[2][4][1] = wo_2[1][4].
  LayerWeights halves = loadLayerWeights(file, makeSpec(), DType::F16);
  const HostTensor &wo = bf16["experts.expert_2.wo.weight"];
  EXPECT_EQ(f16ToF32(halves.wOut.dataAs<uint16_t>()[(2 * kF + 4) * kD + 1]),
            bf16ToF32(wo.dataAs<uint16_t>()[1 * kF + 4]));
}

// Spec §3.7: the first non-finite element of the tokens or of a weight is
// an error naming the file, the tensor, the element and the opt-out flag.
TEST(Weights, RejectsNonFiniteValues) {
  LayerWeights weights;
  weights.router = indexed({kE, kD}, 0);
  weights.wIn = indexed({kE, kD, kF}, 0);
  weights.wOut = indexed({kE, kF, kD}, 0);
  requireFiniteWeights(weights, "w.safetensors", "--allow-non-finite");
  weights.wOut.dataAs<float>()[(1 * kF + 2) * kD + 3] =
      std::numeric_limits<float>::infinity();
  EXPECT_TRUE(throwsError(
      [&] {
        requireFiniteWeights(weights, "w.safetensors", "--allow-non-finite");
      },
      {"w.safetensors: error: weight w_out holds +inf at [1, 2, 3]",
       "--allow-non-finite"}));
  HostTensor x = indexed({6, kD}, 0);
  requireFiniteTokens(x, "x.npy", "--allow-non-finite");
  x.dataAs<float>()[4 * kD + 1] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(throwsError(
      [&] { requireFiniteTokens(x, "x.npy", "--flag"); },
      {"x.npy: error: token 4 holds NaN (column 1)", "--flag"}));
}

} // namespace
