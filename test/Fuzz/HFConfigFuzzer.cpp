//===- HFConfigFuzzer.cpp - libFuzzer target: Hugging Face configs -------===//
//
// Any text as a Hugging Face config.json, with and without a sequence
// length: parseHFConfig returns a spec that obeys the layer rules or a
// one-line error naming the source.
//
//===----------------------------------------------------------------------===//

#include "moe/Spec/LayerSpec.h"

#include <string_view>

using namespace moe::spec;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view text(reinterpret_cast<const char *>(data), size);
  for (std::optional<int64_t> seqLen : {std::optional<int64_t>(),
                                        std::optional<int64_t>(128)}) {
    SpecResult result = parseHFConfig(text, "config.json", seqLen);
    if (!result) {
      if (result.error.find('\n') != std::string::npos)
        __builtin_trap();
      continue;
    }
    const LayerSpec &spec = *result.spec;
    if (spec.dModel < 1 || spec.dFF < 1 || spec.numExperts < 1 ||
        spec.topK < 1 || spec.topK > spec.numExperts)
      __builtin_trap();
  }
  return 0;
}
