//===- RunLayer.cpp - moe-run: one layer on real weights and tokens -*- C++
//-*-===//
//
// The moe-run shell over the C++ API (moe/Runner/Layer.h): flags, the
// ranks of a sharded run, the tokens file, compile, bind, call (and time
// calls), the output and statistics files. Errors of every stage end up as one
// `<file>: error: <what>` or `moe-run: error: <what>` line.
//
//===----------------------------------------------------------------------===//

#include "moe/Runner/RunLayer.h"
#include "moe/Runner/Layer.h"
#include "moe/Runtime/Collectives.h"
#include "moe/Runtime/CudaDriver.h"
#include "moe/Runtime/EntryPoints.h"
#include "moe/Runtime/Error.h"
#include "moe/Runtime/LayerCall.h"
#include "moe/Runtime/Npy.h"
#include "moe/Runtime/Stats.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

namespace rt = ::moe::runtime;
namespace spec = ::moe::spec;

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/// The flag that skips the finiteness checks of spec §3.7.
const std::string kAllowNonFinite = "--allow-non-finite";

/// The rank whose errors are printed (0 unless a sharded run says so).
int reportingRank = 0;

/// The world size an MPI launcher announced, or 0.
int64_t launcherWorldSize() {
  for (const char *var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
    if (const char *value = std::getenv(var))
      return std::atoll(value);
  return 0;
}

/// The collectives of a sharded run, or null for a single-rank one.
/// `ranks` = --shards times --replicas.
std::unique_ptr<rt::Collectives> openCollectives(int64_t ranks,
                                                 const std::string &flags) {
  int64_t world = launcherWorldSize();
  if (ranks == 1) {
    if (world > 1)
      throw rt::Error("moe-run: error: started by an MPI launcher with " +
                      std::to_string(world) + " ranks: pass --shards " +
                      std::to_string(world));
    return nullptr;
  }
  if (!rt::launchedByMPI())
    throw rt::Error("moe-run: error: " + flags +
                    " runs one process per rank: start it as mpirun -np " +
                    std::to_string(ranks) + " moe-run " + flags + " ...");
  auto comm = rt::makeMPICollectives(static_cast<int>(ranks));
  reportingRank = comm->rank();
  return comm;
}

/// The options of the layer moe-run compiles, from its flags.
::moe::CompileOptions compileOptions(const ::moe::RunOptions &options,
                                     const std::string &backend) {
  ::moe::CompileOptions compile;
  compile.backend = backend;
  compile.gpuChip = options.gpuChip;
  compile.activationType = options.activationType;
  compile.funcName = options.funcName;
  compile.optLevel = options.optLevel;
  compile.fusion = options.fusion;
  compile.runtimeChecks = options.runtimeChecks;
  compile.shards = options.shards;
  compile.replicas = options.replicas;
  // Ranks sharing a machine share its cores.
  if (const char *local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE"))
    compile.threads = std::max<int64_t>(
        1, int64_t(std::thread::hardware_concurrency()) / std::atoll(local));
  return compile;
}

/// The checks of moe-run's own flags, before anything is read.
void checkFlags(const ::moe::RunOptions &options,
                const ::moe::CompileOptions &compile) {
  ::moe::checkCompileOptions(compile);
  bool fromArtifact = !options.artifactPath.empty();
  if (fromArtifact && compile.backend != "cuda")
    throw rt::Error("moe-run: error: --artifact holds GPU code: run it with "
                    "--backend cuda");
  if (fromArtifact && options.runtimeChecks)
    throw rt::Error("moe-run: error: --runtime-checks is compiled into the "
                    "code: an artifact is already compiled (build it with "
                    "moe-gpu-pipeline{runtime-checks=1})");
  if (options.specPath.empty() && options.activationType != "f32")
    throw rt::Error("moe-run: error: --act-dtype applies to --spec; the "
                    "input type of a --module or --artifact gives its "
                    "activations");
  if (int(!options.specPath.empty()) + int(!options.modulePath.empty()) +
          int(fromArtifact) !=
      1)
    throw rt::Error(
        "moe-run: error: give exactly one of --spec, --module and --artifact");
  for (auto [flag, value] : {std::pair<const char *, const std::string *>{
                                 "--weights", &options.weightsPath},
                             {"--input", &options.inputPath},
                             {"--output", &options.outputPath}})
    if (value->empty())
      throw rt::Error(std::string("moe-run: error: ") + flag + " is required");
}

/// On the GPU every rank takes a device of its node in turn, and the
/// exchanges of the compiled code go through NCCL (or MPI over managed
/// memory, MOE_GPU_COLLECTIVES=mpi); host-side gathers stay on MPI. Returns
/// the NCCL collectives, if any.
std::unique_ptr<rt::Collectives> openGpu(rt::Collectives *comm, int64_t rank,
                                         bool verbose) {
  int device = 0;
  try {
    if (comm) {
      const char *local = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
      device = (local ? std::atoi(local) : int(rank)) %
               std::max(1, rt::cuda::deviceCount());
    }
    rt::cuda::initialize(device);
  } catch (const rt::Error &e) {
    throw rt::Error(std::string("moe-run: error: --backend cuda: ") +
                    e.what());
  }
  std::unique_ptr<rt::Collectives> gpuComm;
  if (comm) {
    const char *choice = std::getenv("MOE_GPU_COLLECTIVES");
    std::string engine = choice ? choice : rt::haveNCCL() ? "nccl" : "mpi";
    if (engine == "nccl") {
      try {
        gpuComm = rt::makeNCCLCollectives(*comm, device);
      } catch (const rt::Error &e) {
        throw rt::Error(std::string("moe-run: error: --backend cuda: ") +
                        e.what());
      }
      rt::setDeviceStaging(
          [](size_t bytes) { return rt::cuda::allocate(bytes); },
          &rt::cuda::release);
    } else if (engine != "mpi") {
      throw rt::Error("moe-run: error: MOE_GPU_COLLECTIVES must be nccl or "
                      "mpi, got '" +
                      engine + "'");
    }
  }
  if (verbose) {
    // One write per line: ranks share the terminal.
    std::string line = "moe-run: rank " + std::to_string(rank) +
                       ": cuda device " + std::to_string(device) + ": " +
                       rt::cuda::deviceDescription();
    if (comm)
      line += ", collectives " + (gpuComm ? gpuComm.get() : comm)->name();
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  return gpuComm;
}

/// The "communication" section of a sharded run's statistics.
nlohmann::ordered_json
communicationReport(const std::vector<uint64_t> &traffic,
                    const ::moe::RunOptions &options,
                    const ::moe::ExchangeTraffic &exchange) {
  int64_t world = options.shards * options.replicas;
  std::vector<uint64_t> sent, received;
  for (int64_t r = 0; r < world; ++r) {
    sent.push_back(traffic[2 * r]);
    received.push_back(traffic[2 * r + 1]);
  }
  return {{"ranks", world},
          {"expert_parallel_ranks", options.shards},
          {"replicas", options.replicas},
          {"formula",
           "per rank and call, sent and again received: (N-1)/N of the bytes "
           "of each all_to_all buffer, plus (N-1) times those of each "
           "all_gather block, plus (N-1) times E/N 8-byte counts per "
           "exchange_rows (statistics sums not counted); with "
           "data_dependent_rows, also D x element-size bytes per row that "
           "exchange_rows sends to, and return_rows gets back from, another "
           "rank, and per row received from another rank and returned to it"},
          {"static_bytes_per_rank", exchange.staticBytes},
          {"data_dependent_rows", exchange.dataDependent},
          {"measured_bytes_sent", sent},
          {"measured_bytes_received", received}};
}

int run(const ::moe::RunOptions &options) {
  bool fromArtifact = !options.artifactPath.empty();
  std::string backend = options.backend.empty()
                            ? (fromArtifact ? "cuda" : "cpu")
                            : options.backend;
  bool onGpu = backend == "cuda";
  ::moe::CompileOptions compile = compileOptions(options, backend);
  checkFlags(options, compile);

  // World = N expert-parallel ranks times R data-parallel replicas; rank r
  // is in replica r / N and holds expert block r mod N.
  int64_t shards = options.shards, replicas = options.replicas;
  int64_t world = shards * replicas;
  std::string shardFlags = "--shards " + std::to_string(shards);
  if (replicas > 1)
    shardFlags += " --replicas " + std::to_string(replicas);
  std::unique_ptr<rt::Collectives> comm = openCollectives(world, shardFlags);
  int64_t rank = comm ? comm->rank() : 0;
  // The expert-parallel group of this rank, when replicas split the ranks.
  std::unique_ptr<rt::Collectives> group;
  if (comm && replicas > 1)
    group = comm->split(static_cast<int>(rank / shards));

  rt::HostTensor x = rt::readNpyAs(options.inputPath, rt::DType::F32, 2);
  if (!options.allowNonFinite)
    rt::requireFiniteTokens(x, options.inputPath, kAllowNonFinite);
  int64_t globalTokens = x.dim(0), width = x.dim(1);
  if (globalTokens < 1)
    throw rt::Error(options.inputPath, "the input holds no tokens");
  if (globalTokens % world != 0)
    throw rt::Error(options.inputPath,
                    std::to_string(globalTokens) +
                        " tokens cannot be split evenly over " +
                        std::to_string(world) + " ranks");

  // A sharded GPU run picks the rank's device before compiling (the kernels
  // load onto it); a single-rank one lets compiling (or reading the
  // artifact) report bad input first.
  std::unique_ptr<rt::Collectives> gpuComm;
  if (onGpu && comm)
    gpuComm = openGpu(comm.get(), rank, options.verbose);
  compile.rank = rank;
  compile.progress = rank == 0;
  std::optional<::moe::CompiledLayer> layer;
  if (fromArtifact) {
    layer = ::moe::CompiledLayer::fromArtifact(options.artifactPath, compile);
  } else if (!options.specPath.empty()) {
    compile.weightType =
        ::moe::weightTypeOf(options.weightsPath, options.weightPrefix);
    layer =
        ::moe::CompiledLayer::fromSpec(options.specPath, globalTokens, compile);
  } else {
    layer = ::moe::CompiledLayer::fromModule(options.modulePath, compile);
  }
  const ::moe::LayerDescription &info = layer->description();
  // From here on, the rank's own tokens.
  int64_t tokens = globalTokens / world;
  if (world > 1)
    x = x.rows(rank * tokens, tokens);
  if (width != info.spec.dModel)
    throw rt::Error(options.inputPath,
                    "input has width " + std::to_string(width) +
                        ", expected d_model = " +
                        std::to_string(info.spec.dModel) + " (from " +
                        info.source + ")");
  if (info.tokens != tokens)
    throw rt::Error(options.inputPath,
                    "input has " + std::to_string(tokens) + " tokens, " +
                        (fromArtifact ? "the artifact takes "
                                      : "the module's @" + options.funcName +
                                            " takes ") +
                        std::to_string(info.tokens));
  auto bindStart = Clock::now();
  ::moe::BoundLayer bound = layer->bind(
      options.weightsPath, options.weightPrefix, options.allowNonFinite);
  // (Binding loaded an artifact's host code, which started the driver.)
  if (onGpu && !comm)
    gpuComm = openGpu(nullptr, rank, options.verbose);
  rt::Collectives *engine = gpuComm ? gpuComm.get() : comm.get();
  rt::setActiveCollectives(engine, group.get());
  if (options.verbose && rank == 0) {
    std::fprintf(stderr, "moe-run: bound the weights in %.3f s\n",
                 secondsSince(bindStart));
    if (size_t packed = layer->packedWeightCount())
      std::fprintf(stderr,
                   "moe-run: packed %zu weights into kernel panels in "
                   "binding them\n",
                   packed);
  }

  if (x.dtype() != info.activationType)
    x = x.castTo(info.activationType);
  rt::HostTensor out =
      rt::HostTensor::zeros(info.activationType, {tokens, width});
  rt::LayerStats stats;
  auto runOnce = [&] { stats = bound(x, out, /*allowNonFinite=*/true); };
  auto runStart = Clock::now();
  runOnce();
  double firstSeconds = secondsSince(runStart);

  // What the first call moved between ranks, as measured on every rank.
  std::vector<uint64_t> traffic(2 * static_cast<size_t>(world), 0);
  if (comm) {
    // The exchanges run in the expert-parallel group (statistics sums, on
    // all ranks, are not counted).
    rt::Collectives *exchanges = group ? group.get() : engine;
    uint64_t mine[2] = {exchanges->counters().bytesSent,
                        exchanges->counters().bytesReceived};
    comm->allGather(mine, traffic.data(), sizeof(mine));
  }
  if (options.verbose && rank == 0)
    llvm::errs() << llvm::format(
        "moe-run: compiled in %.2f s%s, ran in %.3f s\n",
        layer->compileSeconds(), layer->fromCache() ? " (from the cache)" : "",
        firstSeconds);

  if (options.benchIterations > 0) {
    rt::LayerStats first = stats;
    std::vector<double> times =
        rt::timeCalls(options.benchIterations, runOnce, onGpu);
    stats = first;
    double flops = rt::keptExpertFlops(stats, info.spec.dModel, info.spec.dFF,
                                       spec::isGated(info.spec.activation));
    if (rank == 0)
      llvm::outs() << rt::benchLine(backend, globalTokens, world, times,
                                    layer->compileSeconds(), flops)
                   << "\n";
  }

  // Y is written as float32 whatever the activations were.
  rt::HostTensor y = out.dtype() == rt::DType::F32
                         ? std::move(out)
                         : out.castTo(rt::DType::F32);
  std::string statsText = rt::statsToJSON(stats);
  if (comm) {
    // Rank 0 writes the whole output and the global statistics.
    rt::HostTensor full =
        rt::HostTensor::zeros(rt::DType::F32, {globalTokens, width});
    comm->allGather(y.data(), full.data(), y.byteSize());
    y = std::move(full);
    if (rank != 0)
      return 0;
    nlohmann::ordered_json report = nlohmann::ordered_json::parse(statsText);
    report["communication"] =
        communicationReport(traffic, options, layer->exchangeTraffic());
    statsText = report.dump(2) + "\n";
  }

  rt::writeLayerOutputs(options.outputPath, y, options.statsPath, statsText);
  return 0;
}

} // namespace

/// Reports a failure and returns the exit status. In a sharded run every
/// rank usually meets the same error, and rank 0 prints it at once. Another
/// rank waits a second first: when rank 0 failed too, mpirun ends the job
/// within that second and the line is printed once; when this rank failed
/// alone (a file only it cannot read), it prints its own line, prefixed
/// with its rank, and its exit ends the job.
static int reportFailure(const std::string &line) {
  if (reportingRank == 0) {
    llvm::errs() << line << "\n";
    return 1;
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
  llvm::errs() << "moe-run: rank " << reportingRank << ": " << line << "\n";
  llvm::errs().flush();
  return 1;
}

int ::moe::runLayer(const RunOptions &options) {
  try {
    return run(options);
  } catch (const rt::Error &error) {
    return reportFailure(error.what());
  } catch (const std::exception &error) {
    return reportFailure(std::string("moe-run: error: ") + error.what());
  }
}
