//===- SafeTensorsFuzzer.cpp - libFuzzer target: safetensors + weights ---===//
//
// Any byte string as a .safetensors file: open it, read every tensor, and
// load a layer's weights from it under our names or the Hugging Face ones
// (the layout is found from the names, the prefix searched automatically),
// for a small dense and a small gated layer. Everything either works or
// throws the runtime's Error.
//
//===----------------------------------------------------------------------===//

#include "FuzzUtil.h"

#include "moe/Runtime/Error.h"
#include "moe/Runtime/SafeTensors.h"
#include "moe/Runtime/Weights.h"

using namespace moe::runtime;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string &path = moe::fuzz::writeInput(data, size, ".safetensors");
  try {
    SafeTensorsFile file = SafeTensorsFile::open(path);
    for (const std::string &name : file.names()) {
      try {
        HostTensor t = file.get(name);
        if (t.shape() != file.info(name).shape)
          __builtin_trap();
      } catch (const Error &) {
      }
    }
    for (auto activation :
         {moe::spec::Activation::Relu, moe::spec::Activation::Swiglu}) {
      moe::spec::LayerSpec spec;
      spec.numExperts = 2;
      spec.dModel = 4;
      spec.dFF = 8;
      spec.activation = activation;
      try {
        LayerWeights weights = loadLayerWeights(file, spec, DType::F32);
        requireFiniteWeights(weights, path, "--allow-non-finite");
      } catch (const Error &) {
      }
    }
  } catch (const Error &) {
  }
  return 0;
}
