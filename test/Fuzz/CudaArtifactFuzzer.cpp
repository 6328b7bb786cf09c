//===- CudaArtifactFuzzer.cpp - libFuzzer target: CUDA artifacts ---------===//
//
// Any text as a CUDA artifact JSON: parseCudaArtifact validates it (format,
// version, every field's type, the buffers' shapes against the layer's
// sizes) or returns a one-line error naming the source.
//
//===----------------------------------------------------------------------===//

#include "moe/Spec/CudaArtifact.h"

#include <string_view>

using namespace moe::spec;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view text(reinterpret_cast<const char *>(data), size);
  CudaArtifactResult result = parseCudaArtifact(text, "a.cuda.json");
  if (!result && result.error.find('\n') != std::string::npos)
    __builtin_trap();
  return 0;
}
