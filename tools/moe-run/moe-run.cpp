//===- moe-run.cpp - Run one MoE layer on real weights and tokens --*- C++
//-*-===//
//
//   moe-run --spec S.json --weights W.safetensors --input X.npy
//           --output Y.npy [--stats ST.json]
//
// Flag parsing only (moe/Runtime/CommandLine.h); the work is in lib/Runner
// (moe::runLayer).
//
//===----------------------------------------------------------------------===//

#include "moe/Runner/RunLayer.h"
#include "moe/Runtime/CommandLine.h"

#include <cstdio>
#include <optional>
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
  --backend cpu|cuda|gpu-loops
                           backend (default: cpu, cuda for --artifact);
                           gpu-loops runs the GPU pipeline's program with
                           its kernels as host loops (GPU numerics without a
                           GPU);
                           cuda compiles with
                           moe-gpu-pipeline and runs the kernels through
                           the CUDA driver (needs an NVIDIA GPU and driver)
  --gpu-chip SM            chip of the cuda kernels, and whose kernels gpu-loops
                           emulates (default: sm_90a: warpgroup MMAs; sm_80: warp MMAs)
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
  --replicas R             data-parallel replicas of the N-rank group: start
                           mpirun -np N*R moe-run --shards N --replicas R;
                           rank r takes tokens r of N*R and experts r mod N
                           (CPU backend)
  --fusion on|off          fuse dispatch, expert MLPs and combine into grouped
                           matmuls that read the tokens through expert-sorted
                           row indices (moe-fuse-experts; CPU: vector
                           kernels). Default: on; off runs the unfused
                           program for comparison
  --allow-non-finite       run even when the tokens or weights hold NaN or
                           +-inf (by default an error naming the tensor and
                           the first such element, spec section 3.7); the
                           routing then ranks NaN scores last
  --cuda-graph             --backend cuda: record the first call as a CUDA
                           graph and replay it for every later call (one
                           graph launch per call instead of one launch per
                           kernel); needs one rank and code whose buffers all
                           live in device memory (not --fusion off)
  --runtime-checks         compile with run-time checks: every expert id,
                           slot and row index the routing computes and every
                           memory access (MLIR's runtime verification); a
                           failed check ends the run with one error line
                           naming the op and its location (slower; for
                           debugging and tests)
  -O0 .. -O3               LLVM optimisation level (default: -O3)
  --bench N                after the run, time N (1 to 10^6) more runs and
                           print a BENCH line (cuda: CUDA events, tokens and
                           output kept in device memory where possible)
  -v                       print stage timings to stderr
  --help                   this text

environment:
  MOE_CACHE_DIR=D          cache compiled code in directory D (cpu and
                           gpu-loops backends): a later run of the same layer
                           with the same options loads it instead of compiling
On a terminal, compiling and loading weights show a progress line on stderr.
)";

} // namespace

int main(int argc, char **argv) {
  moe::RunOptions options;
  std::string bench, shards, replicas, fusion;
  moe::runtime::FlagParser flags;
  flags.tool = "moe-run";
  flags.usage = usage;
  flags.valued = {{"--spec", &options.specPath},
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
                  {"--shards", &shards},
                  {"--replicas", &replicas},
                  {"--fusion", &fusion}};
  // An empty count is reported as a bad count below.
  flags.emptyAllowed = {"--bench"};
  flags.switches = {{"-v", &options.verbose},
                    {"--allow-non-finite", &options.allowNonFinite},
                    {"--runtime-checks", &options.runtimeChecks},
                    {"--cuda-graph", &options.cudaGraph}};
  flags.other = [&](const std::string &arg) {
    if (arg.size() != 3 || arg.compare(0, 2, "-O") != 0 || arg[2] < '0' ||
        arg[2] > '3')
      return false;
    options.optLevel = unsigned(arg[2] - '0');
    return true;
  };
  bool benchGiven = false;
  for (int i = 1; i < argc; ++i)
    benchGiven |= std::string(argv[i]).rfind("--bench", 0) == 0;
  if (std::optional<int> status = flags.parse(argc, argv))
    return *status;
  if (benchGiven &&
      !moe::runtime::parseCount(bench, options.benchIterations))
    return flags.bad("--bench needs a positive count, got '" + bench + "'");
  if (!shards.empty() && !moe::runtime::parseCount(shards, options.shards))
    return flags.bad("--shards needs a positive count, got '" + shards + "'");
  if (!replicas.empty() &&
      !moe::runtime::parseCount(replicas, options.replicas))
    return flags.bad("--replicas needs a positive count, got '" + replicas +
                     "'");
  if (!fusion.empty() && fusion != "on" && fusion != "off")
    return flags.bad("--fusion needs 'on' or 'off', got '" + fusion + "'");
  options.fusion = fusion != "off";
  return moe::runLayer(options);
}
