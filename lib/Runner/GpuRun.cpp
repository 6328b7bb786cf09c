//===- GpuRun.cpp - Run a CUDA artifact with host code built ahead of time ===//
//
// See moe/Runner/GpuRun.h: moe-gpu-run's work as calls of the C++ API
// (CompiledLayer::fromArtifact with the host library, bind, call), plus its
// files: the tokens (checked against the artifact), the output and the
// statistics, and the BENCH line.
//
//===----------------------------------------------------------------------===//

#include "moe/Runner/GpuRun.h"
#include "LayerImpl.h"
#include "moe/Runner/Layer.h"
#include "moe/Runtime/CudaDriver.h"
#include "moe/Runtime/Error.h"
#include "moe/Runtime/LayerCall.h"
#include "moe/Runtime/Npy.h"

#include <cstdio>

namespace rt = ::moe::runtime;

namespace {

const char *const kTool = "moe-gpu-run";

/// The tokens of --input, checked against the layer and converted to its
/// activation type.
rt::HostTensor readTokens(const moe::GpuRunOptions &o,
                          const moe::LayerDescription &d) {
  rt::HostTensor x = rt::readNpyAs(o.inputPath, rt::DType::F32, 2);
  if (!o.allowNonFinite)
    rt::requireFiniteTokens(x, o.inputPath, "--allow-non-finite");
  return moe::detail::layerTokens(std::move(x), o.inputPath, d, "the artifact");
}

int run(const moe::GpuRunOptions &o) {
  for (auto [flag, value] : {std::pair<const char *, const std::string *>{
                                 "--artifact", &o.artifactPath},
                             {"--host", &o.hostPath},
                             {"--weights", &o.weightsPath},
                             {"--input", &o.inputPath},
                             {"--output", &o.outputPath}})
    if (value->empty())
      throw rt::Error(std::string(kTool) + ": error: " + flag + " is required");

  moe::CompileOptions options;
  options.backend = "cuda";
  options.gpuDevice = o.device;
  options.cudaGraph = o.cudaGraph;
  options.tool = kTool;
  moe::CompiledLayer layer =
      moe::CompiledLayer::fromArtifact(o.artifactPath, o.hostPath, options);
  const moe::LayerDescription &d = layer.description();
  rt::HostTensor x = readTokens(o, d);
  moe::BoundLayer bound =
      layer.bind(o.weightsPath, o.weightPrefix, o.allowNonFinite);
  if (o.verbose)
    std::fprintf(stderr, "%s: cuda device %lld: %s\n", kTool,
                 static_cast<long long>(o.device),
                 rt::cuda::deviceDescription().c_str());

  rt::HostTensor y =
      rt::HostTensor::zeros(d.activationType, {d.tokens, d.spec.dModel});
  rt::LayerStats stats = bound(x, y, true);
  if (o.benchIterations > 0) {
    std::vector<double> times = bound.timeCalls(x, y, o.benchIterations);
    std::printf("%s\n",
                rt::benchLine(
                    "cuda", d.tokens, 1, times, layer.compileSeconds(),
                    rt::keptExpertFlops(stats, d.spec.dModel, d.spec.dFF,
                                        moe::spec::isGated(d.spec.activation)))
                    .c_str());
  }
  if (y.dtype() != rt::DType::F32)
    y = y.castTo(rt::DType::F32);
  rt::writeLayerOutputs(o.outputPath, y, o.statsPath, rt::statsToJSON(stats));
  return 0;
}

} // namespace

int moe::runGpuArtifact(const GpuRunOptions &options) {
  try {
    return run(options);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
