//===- LayerSpecFuzzer.cpp - libFuzzer target: layer-spec JSON -----------===//
//
// Any text as a layer spec: parseLayerSpec returns a spec or a one-line
// error naming the source; a returned spec satisfies the rules the parser
// promises (positive sizes, 1 <= k <= E, a capacity for every group size).
//
//===----------------------------------------------------------------------===//

#include "moe/Spec/LayerSpec.h"

#include <string_view>

using namespace moe::spec;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view text(reinterpret_cast<const char *>(data), size);
  SpecResult result = parseLayerSpec(text, "fuzz.json");
  if (!result) {
    if (result.error.find('\n') != std::string::npos ||
        result.error.rfind("fuzz.json", 0) != 0)
      __builtin_trap();
    return 0;
  }
  const LayerSpec &spec = *result.spec;
  if (spec.dModel < 1 || spec.dFF < 1 || spec.numExperts < 1 ||
      spec.topK < 1 || spec.topK > spec.numExperts)
    __builtin_trap();
  for (int64_t tokens : {1, 7, 64}) {
    if (!checkTokens(spec, tokens, "fuzz.json").empty())
      continue;
    std::optional<int64_t> capacity =
        spec.capacityFor(spec.groupSize.value_or(tokens));
    if (capacity && *capacity < 1)
      __builtin_trap();
  }
  return 0;
}
