//===- NpyFuzzer.cpp - libFuzzer target: the .npy reader -----------------===//
//
// Any byte string as a .npy file: readNpy and readNpyAs either return a
// tensor whose size matches its header or throw the runtime's Error; any
// other outcome (a crash, a sanitizer report, another exception) is a bug.
//
//===----------------------------------------------------------------------===//

#include "FuzzUtil.h"

#include "moe/Runtime/Error.h"
#include "moe/Runtime/Npy.h"

using namespace moe::runtime;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string &path = moe::fuzz::writeInput(data, size, ".npy");
  try {
    HostTensor tensor = readNpy(path);
    if (tensor.byteSize() !=
        static_cast<size_t>(tensor.numElements()) * elementSize(tensor.dtype()))
      __builtin_trap();
    // The tools' own use: float32 tokens of rank 2, converted if needed.
    HostTensor tokens = readNpyAs(path, DType::F32, 2);
    (void)tokens.firstNonFinite();
  } catch (const Error &) {
  }
  return 0;
}
