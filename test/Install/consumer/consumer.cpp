// The C++ API as an installed library: compile a layer spec, bind a
// safetensors file, call the layer on tokens from an .npy file from two
// threads at once, write the output.
//
//   moe-consumer SPEC.json WEIGHTS.safetensors X.npy Y.npy
//
// Prints the statistics of the call and whether both threads' outputs are
// identical; a failure prints the library's one-line error and exits 1.

#include "moe/Runner/Layer.h"
#include "moe/Runtime/Npy.h"

#include <cstdio>
#include <cstring>
#include <thread>

int main(int argc, char **argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: moe-consumer SPEC WEIGHTS X.npy Y.npy\n");
    return 2;
  }
  try {
    namespace rt = moe::runtime;
    rt::HostTensor x = rt::readNpyAs(argv[3], rt::DType::F32, 2);
    moe::CompileOptions options;
    options.threads = 1;
    moe::CompiledLayer layer =
        moe::CompiledLayer::fromSpec(argv[1], x.dim(0), options);
    moe::BoundLayer bound = layer.bind(argv[2]);
    rt::HostTensor y = rt::HostTensor::zeros(rt::DType::F32, x.shape());
    rt::HostTensor y2 = rt::HostTensor::zeros(rt::DType::F32, x.shape());
    rt::LayerStats stats, stats2;
    std::thread other([&] { stats2 = bound(x.data(), y2.data()); });
    stats = bound(x.data(), y.data());
    other.join();
    rt::writeNpy(argv[4], y);
    std::printf("%s", rt::statsToJSON(stats).c_str());
    std::printf("threads agree: %s\n",
                std::memcmp(y.data(), y2.data(), y.byteSize()) == 0 &&
                        stats.tokensPerExpert == stats2.tokensPerExpert
                    ? "yes"
                    : "no");
    return 0;
  } catch (const moe::runtime::Error &e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
