//===- moe-gpu-run.cpp - Run a CUDA artifact without a compiler ----*- C++ -*-===//
//
//   moe-gpu-run --artifact A.json --host A.host.so --weights W.safetensors
//               --input X.npy --output Y.npy [--stats ST.json]
//
// Flag parsing only; the work is in moe/Runner/GpuRun.h, over the C++ API.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/CommandLine.h"
#include "moe/Runner/GpuRun.h"

#include <optional>
#include <string>

namespace {

const char *const usage =
    R"(moe-gpu-run: run a CUDA artifact on real weights and tokens

usage: moe-gpu-run --artifact A.json --host A.host.so --weights W.safetensors
                   --input X.npy --output Y.npy [--stats ST.json] [options]

The artifact comes from moe-translate --moe-to-cuda-artifact and its host code
from tools/gpu_package.sh (both in one step); this program needs neither MLIR,
LLVM nor MPI, only an NVIDIA GPU and its driver (libcuda.so.1).

  --artifact A.json        the CUDA artifact (buffers, kernels, layer sizes)
  --host A.host.so         its host code, compiled ahead of time
  --weights W.safetensors  weights, our names or Hugging Face names
  --weight-prefix P        prefix of the layer's weights in a whole-model file
  --input X.npy            tokens, float32 [T, d_model] (T of the artifact)
  --output Y.npy           output, float32 [T, d_model]
  --stats ST.json          statistics
  --device N               CUDA device (default: 0)
  --bench N                after the run, time N (1 to 10^6) more runs with
                           CUDA events, tokens and output kept in device
                           memory, and print a BENCH line
  --allow-non-finite       run even when the tokens or weights hold NaN or
                           +-inf (by default an error naming the tensor and
                           the first such element, spec section 3.7)
  --cuda-graph             record the first call as a CUDA graph and replay
                           it for every later call (one graph launch per
                           call instead of one launch per kernel)
  -v                       print the device to stderr
  --help                   this text
)";

} // namespace

int main(int argc, char **argv) {
  moe::GpuRunOptions options;
  std::string bench, device;
  moe::runtime::FlagParser flags;
  flags.tool = "moe-gpu-run";
  flags.usage = usage;
  flags.valued = {{"--artifact", &options.artifactPath},
                  {"--host", &options.hostPath},
                  {"--weights", &options.weightsPath},
                  {"--weight-prefix", &options.weightPrefix},
                  {"--input", &options.inputPath},
                  {"--output", &options.outputPath},
                  {"--stats", &options.statsPath},
                  {"--device", &device},
                  {"--bench", &bench}};
  flags.switches = {{"-v", &options.verbose},
                    {"--allow-non-finite", &options.allowNonFinite},
                    {"--cuda-graph", &options.cudaGraph}};
  if (std::optional<int> status = flags.parse(argc, argv))
    return *status;
  if (!bench.empty() &&
      !moe::runtime::parseCount(bench, options.benchIterations))
    return flags.bad("--bench needs a positive count, got '" + bench + "'");
  if (!device.empty()) {
    if (device == "0")
      options.device = 0;
    else if (!moe::runtime::parseCount(device, options.device))
      return flags.bad("--device needs a device number, got '" + device +
                       "'");
  }
  return moe::runGpuArtifact(options);
}
