//===- Weights.cpp - The weights of one MoE layer -------------------------===//
//
// Locating a layer's weights (layout and prefix), loading them with shape
// checks against the spec, and the transposes from the Hugging Face
// layouts into ours.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/Weights.h"

#include "moe/Runtime/Error.h"

#include <algorithm>
#include <map>

using namespace moe::runtime;
using moe::spec::LayerSpec;

namespace {

/// How each layout names its router and its first expert weight.
struct LayoutNames {
  WeightLayout layout;
  std::string_view router;
  std::string_view firstExpert;
};

/// The layouts in their order of preference.
constexpr LayoutNames kLayouts[] = {
    {WeightLayout::Ours, "router", "w_in"},
    {WeightLayout::Switch, "router.classifier.weight",
     "experts.expert_0.wi.weight"},
    {WeightLayout::Mixtral, "gate.weight", "experts.0.w1.weight"},
    {WeightLayout::Projections, "gate.weight",
     "experts.0.gate_proj.weight"}};

/// How many candidate prefixes an ambiguity message lists.
constexpr std::size_t kListedCandidates = 3;

/// True when `prefix` can end a name prefix: empty, or ending in `.`, `/`.
bool atBoundary(std::string_view prefix) {
  return prefix.empty() || prefix.back() == '.' || prefix.back() == '/';
}

/// `(looked for 'Prouter', 'Prouter.classifier.weight', 'Pgate.weight')`
/// for an explicit prefix P; without one, the Hugging Face names are shown
/// as suffixes (`'…gate.weight'`).
std::string lookedFor(const std::string &prefix, bool explicitPrefix) {
  std::string text = "(looked for ";
  std::string_view previous;
  for (const LayoutNames &names : kLayouts) {
    if (names.router == previous)
      continue;
    previous = names.router;
    bool ours = names.layout == WeightLayout::Ours;
    if (!ours)
      text += ", ";
    std::string shown = explicitPrefix ? prefix : ours ? "" : "…";
    text += quoteName(shown + std::string(names.router));
  }
  return text + ")";
}

/// The layout under `prefix`: among those whose router exists, the first
/// whose first expert weight exists too, else the most preferred one.
std::optional<WeightLayout> layoutAt(const SafeTensorsFile &file,
                                     const std::string &prefix) {
  std::optional<WeightLayout> routerOnly;
  for (const LayoutNames &names : kLayouts) {
    if (!file.has(prefix + std::string(names.router)))
      continue;
    if (file.has(prefix + std::string(names.firstExpert)))
      return names.layout;
    if (!routerOnly)
      routerOnly = names.layout;
  }
  return routerOnly;
}

/// Copies the [rows, cols] matrix `src` transposed into `dst` ([cols, rows]),
/// in tiles so both sides stay in cache.
template <typename T>
void transposeInto(const T *src, int64_t rows, int64_t cols, T *dst) {
  constexpr int64_t kTile = 32;
  for (int64_t r0 = 0; r0 < rows; r0 += kTile)
    for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
      int64_t rEnd = std::min(rows, r0 + kTile);
      int64_t cEnd = std::min(cols, c0 + kTile);
      for (int64_t r = r0; r < rEnd; ++r)
        for (int64_t c = c0; c < cEnd; ++c)
          dst[c * rows + r] = src[r * cols + c];
    }
}

/// Loads the weights of one layer from one location.
class Loader {
public:
  Loader(const SafeTensorsFile &file, const LayerSpec &spec, DType target,
         std::string prefix)
      : file(file), spec(spec), target(target), prefix(std::move(prefix)) {}

  /// Loads weight `name` (without the prefix), which must have `shape`
  /// (`dims` spells it in spec terms for messages), converted to `dtype`.
  HostTensor load(const std::string &name, const std::vector<int64_t> &shape,
                  std::string_view dims, DType dtype) const {
    std::string fullName = prefix + name;
    if (!file.has(fullName))
      throw Error(file.path(), "missing weight " + quoteName(fullName));
    const TensorInfo &info = file.info(fullName);
    if (info.shape != shape)
      throw Error(file.path(), "weight " + quoteName(fullName) + " has shape " +
                                   formatShape(info.shape) + ", expected " +
                                   formatShape(shape) + " (" +
                                   std::string(dims) + " from the spec)");
    if (!info.dtype || !isFloatingPoint(*info.dtype))
      throw Error(file.path(), "weight " + quoteName(fullName) + " has dtype " +
                                   info.dtypeName +
                                   "; expected F32, BF16, F16 or F64");
    HostTensor tensor = file.get(fullName);
    ++tensorsRead;
    bytesRead += tensor.byteSize();
    if (progress)
      progress(tensorsRead, bytesRead);
    if (tensor.dtype() == dtype)
      return tensor;
    return tensor.castTo(dtype);
  }

  /// Loads the [rows, cols] weight `name` and stores its transpose as
  /// expert `expert` of `dest` ([E, cols, rows]).
  void loadTransposed(const std::string &name, int64_t rows, int64_t cols,
                      std::string_view dims, HostTensor &dest,
                      int64_t expert) const {
    HostTensor matrix = load(name, {rows, cols}, dims, target);
    int64_t offset = expert * rows * cols;
    if (elementSize(target) == 4)
      transposeInto(matrix.dataAs<uint32_t>(), rows, cols,
                    dest.dataAs<uint32_t>() + offset);
    else
      transposeInto(matrix.dataAs<uint16_t>(), rows, cols,
                    dest.dataAs<uint16_t>() + offset);
  }

  /// The name of this layer's activation, quoted, for messages.
  std::string activationName() const {
    return quoteName(moe::spec::toString(spec.activation));
  }

  /// The §8 weights a layout without them would need: an error naming the
  /// layout and the spec field.
  void requireNoRoutingFamily(std::string_view layout) const {
    auto missing = [&](std::string_view field) {
      throw Error(file.path(), "the " + std::string(layout) +
                                   " layout has no " + std::string(field) +
                                   " weights, but the spec asks for them");
    };
    if (spec.scoreBias)
      missing("score_bias");
    if (spec.sharedDFF > 0)
      missing("shared expert (shared_d_ff)");
  }

  /// Our layout's §8 weights into `weights`; a weight the spec does not ask
  /// for is an error when present (it would be silently ignored).
  void loadOurRoutingFamily(LayerWeights &weights) const {
    int64_t e = spec.numExperts, d = spec.dModel, fs = spec.sharedDFF;
    bool gated = moe::spec::isGated(spec.activation);
    auto unexpected = [&](const std::string &name, std::string_view why) {
      if (file.has(prefix + name))
        throw Error(file.path(), "weight " + quoteName(prefix + name) +
                                     " is present but " + std::string(why));
    };
    if (spec.scoreBias)
      weights.scoreBias = load("score_bias", {e}, "[E]", DType::F32);
    else
      unexpected("score_bias", "the spec has no score_bias");
    if (fs > 0) {
      weights.sharedWIn = load("shared_w_in", {d, fs}, "[D, shared_d_ff]",
                               target);
      if (gated)
        weights.sharedWGate = load("shared_w_gate", {d, fs},
                                   "[D, shared_d_ff]", target);
      weights.sharedWOut = load("shared_w_out", {fs, d}, "[shared_d_ff, D]",
                                target);
    } else {
      unexpected("shared_w_in", "the spec has no shared expert (shared_d_ff)");
    }
    if (spec.sharedGate)
      weights.sharedGate = load("shared_gate", {d}, "[D]", target);
    else
      unexpected("shared_gate", "the spec's shared_gate is false");
  }

  /// Loads a Hugging Face [rows, cols] weight transposed into a new
  /// [cols, rows] tensor.
  HostTensor loadMatrixTransposed(const std::string &name, int64_t rows,
                                  int64_t cols, std::string_view dims) const {
    HostTensor out = HostTensor::zeros(target, {1, cols, rows});
    loadTransposed(name, rows, cols, dims, out, 0);
    return std::move(out).reshaped({cols, rows});
  }

  /// DeepSeek / Qwen / OLMoE: router `gate.weight`, experts
  /// `experts.{i}.gate_proj|up_proj|down_proj.weight` ([F, D], [F, D],
  /// [D, F]), the choice bias `gate.e_score_correction_bias`, the shared
  /// expert under `shared_experts.` (DeepSeek) or `shared_expert.` (Qwen2)
  /// and its gate `shared_expert_gate.weight` [1, D].
  LayerWeights loadProjections() const {
    if (!moe::spec::isGated(spec.activation))
      throw Error(file.path(), "the gate_proj/up_proj/down_proj layout is "
                               "silu-gated but activation " +
                                   activationName() + " is not gated");
    int64_t e = spec.numExperts, d = spec.dModel, f = spec.dFF,
            fs = spec.sharedDFF;
    LayerWeights weights;
    weights.router = load("gate.weight", {e, d}, "[E, D]", DType::F32);
    if (spec.scoreBias)
      weights.scoreBias =
          load("gate.e_score_correction_bias", {e}, "[E]", DType::F32);
    weights.wIn = HostTensor::zeros(target, {e, d, f});
    weights.wGate = HostTensor::zeros(target, {e, d, f});
    weights.wOut = HostTensor::zeros(target, {e, f, d});
    for (int64_t i = 0; i < e; ++i) {
      std::string expert = "experts." + std::to_string(i) + ".";
      loadTransposed(expert + "gate_proj.weight", f, d, "[F, D]",
                     weights.wGate, i);
      loadTransposed(expert + "up_proj.weight", f, d, "[F, D]", weights.wIn,
                     i);
      loadTransposed(expert + "down_proj.weight", d, f, "[D, F]",
                     weights.wOut, i);
    }
    if (fs > 0) {
      std::string shared = file.has(prefix + "shared_experts.up_proj.weight")
                               ? "shared_experts."
                               : "shared_expert.";
      weights.sharedWGate = loadMatrixTransposed(
          shared + "gate_proj.weight", fs, d, "[shared_d_ff, D]");
      weights.sharedWIn = loadMatrixTransposed(shared + "up_proj.weight", fs,
                                               d, "[shared_d_ff, D]");
      weights.sharedWOut = loadMatrixTransposed(shared + "down_proj.weight", d,
                                                fs, "[D, shared_d_ff]");
    }
    if (spec.sharedGate)
      weights.sharedGate =
          load("shared_expert_gate.weight", {1, d}, "[1, D]", target)
              .reshaped({d});
    return weights;
  }

  LayerWeights loadOurs() const {
    int64_t e = spec.numExperts, d = spec.dModel, f = spec.dFF;
    LayerWeights weights;
    loadOurRoutingFamily(weights);
    weights.router = load("router", {e, d}, "[E, D]", DType::F32);
    weights.wIn = load("w_in", {e, d, f}, "[E, D, F]", target);
    if (moe::spec::isGated(spec.activation))
      weights.wGate = load("w_gate", {e, d, f}, "[E, D, F]", target);
    else if (file.has(prefix + "w_gate"))
      throw Error(file.path(), "weight " + quoteName(prefix + "w_gate") +
                                   " is present but activation " +
                                   activationName() + " is not gated");
    weights.wOut = load("w_out", {e, f, d}, "[E, F, D]", target);
    return weights;
  }

  LayerWeights loadSwitch() const {
    requireNoRoutingFamily("Switch");
    if (moe::spec::isGated(spec.activation))
      throw Error(file.path(), "activation " + activationName() +
                                   " needs a gate weight, which the Switch "
                                   "layout (wi, wo) does not have");
    int64_t e = spec.numExperts, d = spec.dModel, f = spec.dFF;
    LayerWeights weights;
    weights.router =
        load("router.classifier.weight", {e, d}, "[E, D]", DType::F32);
    weights.wIn = HostTensor::zeros(target, {e, d, f});
    weights.wOut = HostTensor::zeros(target, {e, f, d});
    for (int64_t i = 0; i < e; ++i) {
      std::string expert = "experts.expert_" + std::to_string(i) + ".";
      loadTransposed(expert + "wi.weight", f, d, "[F, D]", weights.wIn, i);
      loadTransposed(expert + "wo.weight", d, f, "[D, F]", weights.wOut, i);
    }
    return weights;
  }

  LayerWeights loadMixtral() const {
    requireNoRoutingFamily("Mixtral");
    if (!moe::spec::isGated(spec.activation))
      throw Error(file.path(), "the Mixtral layout has a gate projection "
                               "(w1) but activation " +
                                   activationName() +
                                   " is not gated (Mixtral's is 'swiglu')");
    int64_t e = spec.numExperts, d = spec.dModel, f = spec.dFF;
    LayerWeights weights;
    weights.router = load("gate.weight", {e, d}, "[E, D]", DType::F32);
    weights.wIn = HostTensor::zeros(target, {e, d, f});
    weights.wGate = HostTensor::zeros(target, {e, d, f});
    weights.wOut = HostTensor::zeros(target, {e, f, d});
    for (int64_t i = 0; i < e; ++i) {
      std::string expert = "experts." + std::to_string(i) + ".";
      loadTransposed(expert + "w1.weight", f, d, "[F, D]", weights.wGate, i);
      loadTransposed(expert + "w3.weight", f, d, "[F, D]", weights.wIn, i);
      loadTransposed(expert + "w2.weight", d, f, "[D, F]", weights.wOut, i);
    }
    return weights;
  }

private:
  const SafeTensorsFile &file;
  const LayerSpec &spec;
  DType target;
  std::string prefix;

public:
  LoadProgress progress;

private:
  /// What load() has read so far (for `progress`).
  mutable int64_t tensorsRead = 0;
  mutable uint64_t bytesRead = 0;
};

} // namespace

std::string_view moe::runtime::toString(WeightLayout layout) {
  switch (layout) {
  case WeightLayout::Ours:
    return "ours";
  case WeightLayout::Switch:
    return "switch";
  case WeightLayout::Mixtral:
    return "mixtral";
  case WeightLayout::Projections:
    return "projections";
  }
  return "?";
}

WeightLocation moe::runtime::locateLayerWeights(const SafeTensorsFile &file,
                                                const std::string &prefix) {
  if (!prefix.empty()) {
    if (std::optional<WeightLayout> layout = layoutAt(file, prefix))
      return {*layout, prefix};
    // Accept `model.layers.0.block_sparse_moe` for `...block_sparse_moe.`.
    if (!atBoundary(prefix))
      if (std::optional<WeightLayout> layout = layoutAt(file, prefix + "."))
        return {*layout, prefix + "."};
    throw Error(file.path(), "no MoE router weight found under prefix " +
                                 quoteName(prefix) + " " +
                                 lookedFor(prefix, true));
  }

  // Every name ending in a router name at a boundary proposes its prefix;
  // a prefix keeps its most preferred layout.
  std::map<std::string, WeightLayout> candidates;
  for (const std::string &name : file.names())
    for (const LayoutNames &names : kLayouts) {
      if (name.size() < names.router.size() ||
          name.compare(name.size() - names.router.size(), names.router.size(),
                       names.router) != 0)
        continue;
      std::string candidate = name.substr(0, name.size() - names.router.size());
      if (!atBoundary(candidate))
        continue;
      candidates.emplace(candidate, *layoutAt(file, candidate));
    }
  if (candidates.empty())
    throw Error(file.path(),
                "no MoE router weight found " + lookedFor("", false));

  // Prefer candidates that also hold their first expert weight.
  std::vector<WeightLocation> complete, all;
  for (const auto &[candidate, layout] : candidates) {
    all.push_back({layout, candidate});
    if (file.has(candidate +
                 std::string(kLayouts[static_cast<int>(layout)].firstExpert)))
      complete.push_back({layout, candidate});
  }
  const std::vector<WeightLocation> &fitting =
      complete.empty() ? all : complete;
  if (fitting.size() == 1)
    return fitting.front();

  std::string listed;
  for (std::size_t i = 0; i < fitting.size() && i < kListedCandidates; ++i)
    listed += (i ? ", " : "") + quoteName(fitting[i].prefix);
  if (fitting.size() > kListedCandidates)
    listed += ", ...";
  throw Error(file.path(), "found MoE weights under " +
                               std::to_string(fitting.size()) + " prefixes (" +
                               listed +
                               "); pass the prefix of the layer to load "
                               "(--weight-prefix)");
}

DType moe::runtime::storedExpertType(const SafeTensorsFile &file,
                                     const std::string &prefix) {
  WeightLocation where = locateLayerWeights(file, prefix);
  std::string name =
      where.prefix +
      std::string(kLayouts[static_cast<int>(where.layout)].firstExpert);
  if (!file.has(name) || !file.info(name).dtype)
    return DType::F32;
  DType stored = *file.info(name).dtype;
  return stored == DType::BF16 || stored == DType::F16 ? stored : DType::F32;
}

LayerWeights moe::runtime::loadLayerWeights(const SafeTensorsFile &file,
                                            const LayerSpec &spec, DType target,
                                            const std::string &prefix,
                                            const LoadProgress &progress) {
  if (target != DType::F32 && target != DType::BF16 && target != DType::F16)
    throw Error(file.path(), "cannot load weights as " +
                                 std::string(dtypeName(target)) +
                                 " (expected f32, bf16 or f16)");
  WeightLocation location = locateLayerWeights(file, prefix);
  Loader loader(file, spec, target, location.prefix);
  loader.progress = progress;
  switch (location.layout) {
  case WeightLayout::Ours:
    return loader.loadOurs();
  case WeightLayout::Switch:
    return loader.loadSwitch();
  case WeightLayout::Mixtral:
    return loader.loadMixtral();
  case WeightLayout::Projections:
    return loader.loadProjections();
  }
  return loader.loadOurs();
}

namespace {

std::string contractNote(const std::string &optOut) {
  return "; the layer contract takes finite values only (spec section 3.7); " +
         optOut + " runs it anyway";
}

} // namespace

void moe::runtime::requireFiniteTokens(const HostTensor &x,
                                       const std::string &source,
                                       const std::string &optOut) {
  std::optional<HostTensor::NonFinite> bad = x.firstNonFinite();
  if (!bad)
    return;
  std::string where = bad->index.size() == 2
                          ? "token " + std::to_string(bad->index[0]) +
                                " holds " + std::string(bad->kind) +
                                " (column " + std::to_string(bad->index[1]) +
                                ")"
                          : "element " + formatShape(bad->index) + " is " +
                                std::string(bad->kind);
  throw Error(source, where + contractNote(optOut));
}

void moe::runtime::requireFiniteWeights(const LayerWeights &weights,
                                        const std::string &source,
                                        const std::string &optOut) {
  for (const auto &[name, tensor] : weights.named()) {
    if (!*tensor)
      continue;
    if (std::optional<HostTensor::NonFinite> bad = tensor->firstNonFinite())
      throw Error(source, "weight " + std::string(name) + " holds " +
                              std::string(bad->kind) + " at " +
                              formatShape(bad->index) + contractNote(optOut));
  }
}

LayerWeights moe::runtime::layerWeightsFromNamed(
    std::map<std::string, HostTensor> named, const LayerSpec &spec,
    DType target, const std::string &source) {
  int64_t e = spec.numExperts, d = spec.dModel, f = spec.dFF,
          fs = spec.sharedDFF;
  bool gated = moe::spec::isGated(spec.activation);
  LayerWeights weights;
  struct Slot {
    const char *name;
    HostTensor *into;
    std::vector<int64_t> shape;
    const char *dims;
    DType dtype;
    bool needed;
  };
  Slot slots[] = {
      {"router", &weights.router, {e, d}, "[E, D]", DType::F32, true},
      {"score_bias", &weights.scoreBias, {e}, "[E]", DType::F32,
       spec.scoreBias},
      {"w_in", &weights.wIn, {e, d, f}, "[E, D, F]", target, true},
      {"w_gate", &weights.wGate, {e, d, f}, "[E, D, F]", target, gated},
      {"w_out", &weights.wOut, {e, f, d}, "[E, F, D]", target, true},
      {"shared_w_in", &weights.sharedWIn, {d, fs}, "[D, shared_d_ff]", target,
       fs > 0},
      {"shared_w_gate", &weights.sharedWGate, {d, fs}, "[D, shared_d_ff]",
       target, fs > 0 && gated},
      {"shared_w_out", &weights.sharedWOut, {fs, d}, "[shared_d_ff, D]",
       target, fs > 0},
      {"shared_gate", &weights.sharedGate, {d}, "[D]", target,
       spec.sharedGate},
  };
  for (Slot &slot : slots) {
    auto found = named.find(slot.name);
    if (found == named.end()) {
      if (slot.needed)
        throw Error(source, "missing weight " + quoteName(slot.name));
      continue;
    }
    HostTensor tensor = std::move(found->second);
    named.erase(found);
    if (!slot.needed)
      throw Error(source, "weight " + quoteName(slot.name) +
                              " is given but the layer does not use it");
    if (tensor.shape() != slot.shape)
      throw Error(source, "weight " + quoteName(slot.name) + " has shape " +
                              formatShape(tensor.shape()) + ", expected " +
                              formatShape(slot.shape) + " (" + slot.dims +
                              " from the spec)");
    if (!isFloatingPoint(tensor.dtype()))
      throw Error(source, "weight " + quoteName(slot.name) + " has dtype " +
                              std::string(dtypeName(tensor.dtype())) +
                              "; expected a floating-point type");
    *slot.into = tensor.dtype() == slot.dtype ? std::move(tensor)
                                              : tensor.castTo(slot.dtype);
  }
  if (!named.empty())
    throw Error(source, "unknown weight " + quoteName(named.begin()->first) +
                            " (our names: router, score_bias, w_in, w_gate, "
                            "w_out, shared_w_in, shared_w_gate, shared_w_out, "
                            "shared_gate)");
  return weights;
}
