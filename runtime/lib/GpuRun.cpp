//===- GpuRun.cpp - Run a CUDA artifact with host code built ahead of time ===//
//
// See moe/Runtime/GpuRun.h. The host code's shared object resolves the
// `mgpu*` ABI and the allocation functions against this program (which
// exports them), and its global constructors load the kernels when it is
// opened; closing it runs the destructors that unload them.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/GpuRun.h"
#include "moe/Runtime/CudaDriver.h"
#include "moe/Runtime/Error.h"
#include "moe/Runtime/LayerCall.h"
#include "moe/Runtime/Npy.h"
#include "moe/Runtime/SafeTensors.h"
#include "moe/Runtime/Weights.h"
#include "moe/Spec/CudaArtifact.h"

#include <dlfcn.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

using namespace moe::runtime;
namespace spec = ::moe::spec;

namespace {

[[noreturn]] void fail(const std::string &source, const std::string &what) {
  throw Error(source + ": error: " + what);
}

std::string readText(const std::string &path) {
  std::ifstream in(path);
  if (!in)
    fail(path, std::string("cannot open the artifact: ") +
                   std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

DType dtypeNamed(const std::string &name) {
  return name == "bf16"  ? DType::BF16
         : name == "f16" ? DType::F16
                         : DType::F32;
}

/// The host code, opened; closed (unloading the kernels) when it goes.
class HostCode {
public:
  HostCode(const std::string &path, const std::string &entry,
           const std::string &signature) {
    // A bare file name would be searched on the library path.
    std::string where = path.find('/') == std::string::npos ? "./" + path : path;
    handle = dlopen(where.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle)
      fail(path, std::string("cannot load the host code: ") + dlerror());
    // Closed at once when it is not this artifact's: its destructors must
    // run while the driver backend is alive.
    const char *theirs =
        static_cast<const char *>(dlsym(handle, "moe_artifact_signature"));
    std::string problem;
    if (!theirs)
      problem = "not the host code of a CUDA artifact (no "
                "moe_artifact_signature)";
    else if (signature != theirs)
      problem = "the host code is for " + std::string(theirs) +
                ", the artifact for " + signature;
    else if (!(function = dlsym(handle, entry.c_str())))
      problem = "the host code has no entry '" + entry + "'";
    if (!problem.empty()) {
      dlclose(handle);
      handle = nullptr;
      fail(path, problem);
    }
  }
  ~HostCode() {
    if (handle)
      dlclose(handle);
  }
  HostCode(const HostCode &) = delete;
  HostCode &operator=(const HostCode &) = delete;

  /// Calls the entry with one descriptor pointer per argument.
  void call(const std::vector<void *> &d) const {
    if (!callLayerEntry(function, d))
      throw Error("moe-gpu-run: error: a layer entry takes " +
                  std::to_string(kMinLayerArguments) + " to " +
                  std::to_string(kMaxLayerArguments) + " buffers, not " +
                  std::to_string(d.size()));
  }

private:
  void *handle = nullptr;
  void *function = nullptr;
};

int run(const GpuRunOptions &o) {
  for (auto [flag, value] : {std::pair<const char *, const std::string *>{
                                 "--artifact", &o.artifactPath},
                             {"--host", &o.hostPath},
                             {"--weights", &o.weightsPath},
                             {"--input", &o.inputPath},
                             {"--output", &o.outputPath}})
    if (value->empty())
      throw Error(std::string("moe-gpu-run: error: ") + flag + " is required");

  spec::CudaArtifactResult parsed =
      spec::parseCudaArtifact(readText(o.artifactPath), o.artifactPath);
  if (!parsed)
    throw Error(parsed.error);
  const spec::CudaArtifact &artifact = *parsed.artifact;

  HostTensor x = readNpyAs(o.inputPath, DType::F32, 2);
  if (!o.allowNonFinite)
    requireFiniteTokens(x, o.inputPath, "--allow-non-finite");
  if (x.dim(1) != artifact.dModel)
    fail(o.inputPath, "input has width " + std::to_string(x.dim(1)) +
                          ", expected d_model = " +
                          std::to_string(artifact.dModel) + " (from " +
                          o.artifactPath + ")");
  if (x.dim(0) != artifact.tokens)
    fail(o.inputPath, "input has " + std::to_string(x.dim(0)) +
                          " tokens, the artifact takes " +
                          std::to_string(artifact.tokens));

  spec::LayerSpec layer = artifact.weightSpec();
  SafeTensorsFile file = SafeTensorsFile::open(o.weightsPath);
  LayerWeights weights =
      loadLayerWeights(file, layer, dtypeNamed(artifact.buffer("w_in")->dtype),
                       o.weightPrefix);
  if (!o.allowNonFinite)
    requireFiniteWeights(weights, o.weightsPath, "--allow-non-finite");
  DType routerType = dtypeNamed(artifact.buffers[1].dtype);
  if (weights.router.dtype() != routerType)
    weights.router = weights.router.castTo(routerType);
  DType activation = dtypeNamed(artifact.buffers[0].dtype);
  if (x.dtype() != activation)
    x = x.castTo(activation);

  try {
    cuda::initialize(static_cast<int>(o.device));
  } catch (const Error &e) {
    throw Error(std::string("moe-gpu-run: error: ") + e.what());
  }
  if (o.verbose)
    std::fprintf(stderr, "moe-gpu-run: cuda device %lld: %s\n",
                 static_cast<long long>(o.device),
                 cuda::deviceDescription().c_str());
  auto start = std::chrono::steady_clock::now();
  HostCode host(o.hostPath, artifact.entry, artifact.signature);
  double loadSeconds = std::chrono::duration<double>(
                           std::chrono::steady_clock::now() - start)
                           .count();

  LayerResults results = LayerResults::zeros(
      activation, artifact.tokens, artifact.dModel, artifact.numExperts);
  CallArguments call(weights.callInputs(x), results,
                     artifact.deviceMemory ? Placement::Device
                                           : Placement::Managed);
  if (call.get().size() != artifact.buffers.size())
    fail(o.weightsPath, "the weights make " +
                            std::to_string(call.get().size()) +
                            " buffers, the artifact takes " +
                            std::to_string(artifact.buffers.size()));
  auto runOnce = [&] {
    host.call(call.get());
    call.fetchResults();
  };
  runOnce();
  LayerStats stats = results.stats(artifact.capacity);
  if (o.benchIterations > 0) {
    std::vector<double> times = timeCalls(o.benchIterations, runOnce, true);
    std::printf("%s\n",
                benchLine("cuda", artifact.tokens, 1, times, loadSeconds,
                          keptExpertFlops(stats, artifact.dModel,
                                          artifact.dFF, artifact.gated))
                    .c_str());
  }
  HostTensor y = results.output.dtype() == DType::F32
                     ? std::move(results.output)
                     : results.output.castTo(DType::F32);
  writeLayerOutputs(o.outputPath, y, o.statsPath, statsToJSON(stats));
  return 0;
}

} // namespace

int moe::runtime::runGpuArtifact(const GpuRunOptions &options) {
  try {
    return run(options);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
