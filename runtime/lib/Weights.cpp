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
    {WeightLayout::Mixtral, "gate.weight", "experts.0.w1.weight"}};

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
  for (const LayoutNames &names : kLayouts) {
    bool ours = names.layout == WeightLayout::Ours;
    if (!ours)
      text += ", ";
    std::string shown = explicitPrefix ? prefix : ours ? "" : "…";
    text += quoteName(shown + std::string(names.router));
  }
  return text + ")";
}

/// The most preferred layout whose router exists under `prefix`.
std::optional<WeightLayout> layoutAt(const SafeTensorsFile &file,
                                     const std::string &prefix) {
  for (const LayoutNames &names : kLayouts)
    if (file.has(prefix + std::string(names.router)))
      return names.layout;
  return std::nullopt;
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

  LayerWeights loadOurs() const {
    int64_t e = spec.numExperts, d = spec.dModel, f = spec.dFF;
    LayerWeights weights;
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
      auto [it, inserted] = candidates.emplace(candidate, names.layout);
      if (!inserted && names.layout < it->second)
        it->second = names.layout;
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

LayerWeights moe::runtime::loadLayerWeights(const SafeTensorsFile &file,
                                            const LayerSpec &spec, DType target,
                                            const std::string &prefix) {
  if (target != DType::F32 && target != DType::BF16 && target != DType::F16)
    throw Error(file.path(), "cannot load weights as " +
                                 std::string(dtypeName(target)) +
                                 " (expected f32, bf16 or f16)");
  WeightLocation location = locateLayerWeights(file, prefix);
  Loader loader(file, spec, target, location.prefix);
  switch (location.layout) {
  case WeightLayout::Ours:
    return loader.loadOurs();
  case WeightLayout::Switch:
    return loader.loadSwitch();
  case WeightLayout::Mixtral:
    return loader.loadMixtral();
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
  for (const auto &[name, tensor] :
       {std::pair<const char *, const HostTensor *>{"router", &weights.router},
        {"w_in", &weights.wIn},
        {"w_gate", &weights.wGate},
        {"w_out", &weights.wOut}}) {
    if (!*tensor)
      continue;
    if (std::optional<HostTensor::NonFinite> bad = tensor->firstNonFinite())
      throw Error(source, "weight " + std::string(name) + " holds " +
                              std::string(bad->kind) + " at " +
                              formatShape(bad->index) + contractNote(optOut));
  }
}
