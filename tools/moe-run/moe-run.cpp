//===- moe-run.cpp - Run one MoE layer on real weights and tokens --*- C++
//-*-===//
//
//   moe-run --spec S.json --weights W.safetensors --input X.npy
//           --output Y.npy [--stats ST.json]
//
// Flag parsing only; the work is in lib/Runner (moe::runLayer). The flags
// are parsed here rather than with llvm::cl because LLVM itself owns a
// `-stats` option, and `--stats` is part of moe-run's contract.
//
//===----------------------------------------------------------------------===//

#include "moe/Runner/RunLayer.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>

namespace {

const char *const usage =
    R"(moe-run: run one MoE layer on real weights and tokens

usage: moe-run --spec S.json --weights W.safetensors --input X.npy
               --output Y.npy [--stats ST.json] [options]

  --spec S.json            layer-spec JSON (or --module)
  --module M.mlir          run this MLIR module instead of a spec
  --artifact A.json        run a CUDA artifact written by moe-translate
                           --moe-to-cuda-artifact (GPU code, no compiling)
  --func NAME              layer function of --module (default: moe_layer)
  --weights W.safetensors  weights, our names or Hugging Face names
  --weight-prefix P        prefix of the layer's weights in a whole-model
                           file (default: found automatically)
  --input X.npy            tokens, float32 [T, d_model]
  --output Y.npy           output, float32 [T, d_model]
  --stats ST.json          statistics (capacity, tokens_per_expert, dropped,
                           load_balance_loss, router_z_loss)
  --backend cpu|cuda       backend (default: cpu, cuda for --artifact);
                           cuda compiles with
                           moe-gpu-pipeline and runs the kernels through
                           the CUDA driver (needs an NVIDIA GPU and driver)
  --gpu-chip SM            chip of the cuda kernels (default: sm_90a)
  --act-dtype f32|bf16     element type of the activations with --spec
                           (default: f32); X and Y stay float32 files
  --shards N               expert-parallel ranks: start as
                           mpirun -np N moe-run --shards N ...; rank r takes
                           tokens [r*T/N, (r+1)*T/N) and experts
                           [r*E/N, (r+1)*E/N); rank 0 writes Y and the
                           statistics (with a "communication" section);
                           with --backend cuda each rank takes a GPU of its
                           node and exchanges go through NCCL (or MPI:
                           MOE_GPU_COLLECTIVES=mpi)
  -O0 .. -O3               LLVM optimisation level (default: -O3)
  --bench N                after the run, time N (1 to 10^6) more runs and
                           print a BENCH line
  -v                       print stage timings to stderr
  --help                   this text
)";

int badUsage(const std::string &message) {
  std::fprintf(stderr, "moe-run: error: %s (see --help)\n", message.c_str());
  return 2;
}

/// Parses a count in [1, 10^6].
bool parseCount(const std::string &text, int64_t &value) {
  char *end = nullptr;
  errno = 0;
  long long parsed = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || parsed < 1 ||
      parsed > 1000000)
    return false;
  value = parsed;
  return true;
}

} // namespace

int main(int argc, char **argv) {
  moe::RunOptions options;
  std::string bench, shards;
  bool benchGiven = false;
  std::map<std::string, std::string *> valued{
      {"--spec", &options.specPath},
      {"--module", &options.modulePath},
      {"--artifact", &options.artifactPath},
      {"--func", &options.funcName},
      {"--weights", &options.weightsPath},
      {"--weight-prefix", &options.weightPrefix},
      {"--input", &options.inputPath},
      {"--output", &options.outputPath},
      {"--stats", &options.statsPath},
      {"--backend", &options.backend},
      {"--gpu-chip", &options.gpuChip},
      {"--act-dtype", &options.activationType},
      {"--bench", &bench},
      {"--shards", &shards}};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(usage, stdout);
      return 0;
    }
    if (arg == "-v") {
      options.verbose = true;
      continue;
    }
    if (arg.size() == 3 && arg.compare(0, 2, "-O") == 0 && arg[2] >= '0' &&
        arg[2] <= '3') {
      options.optLevel = unsigned(arg[2] - '0');
      continue;
    }
    std::string key = arg, value;
    bool inlineValue = false;
    if (size_t eq = arg.find('='); eq != std::string::npos && arg[0] == '-') {
      key = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      inlineValue = true;
    }
    auto it = valued.find(key);
    if (it == valued.end())
      return badUsage("unknown argument '" + arg + "'");
    if (!inlineValue) {
      if (i + 1 >= argc)
        return badUsage(key + " needs a value");
      value = argv[++i];
    }
    if (key == "--bench")
      benchGiven = true;
    else if (value.empty())
      return badUsage(key + " needs a value");
    *it->second = value;
  }
  if (benchGiven && !parseCount(bench, options.benchIterations))
    return badUsage("--bench needs a positive count, got '" + bench + "'");
  if (!shards.empty() && !parseCount(shards, options.shards))
    return badUsage("--shards needs a positive count, got '" + shards + "'");
  return moe::runLayer(options);
}
