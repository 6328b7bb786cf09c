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
#include "LayerImpl.h"
#include "moe/Runner/Layer.h"
#include "moe/Runtime/Collectives.h"
#include "moe/Runtime/CudaDriver.h"
#include "moe/Runtime/EntryPoints.h"
#include "moe/Runtime/Error.h"
#include "moe/Runtime/FileIO.h"
#include "moe/Runtime/LayerCall.h"
#include "moe/Runtime/Npy.h"
#include "moe/Runtime/Stats.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

namespace rt = ::moe::runtime;
namespace spec = ::moe::spec;

namespace {

using ::moe::detail::Clock;
using ::moe::detail::secondsSince;

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
  compile.tool = "moe-run";
  compile.gpuChip = options.gpuChip;
  compile.activationType = options.activationType;
  compile.funcName = options.funcName;
  compile.optLevel = options.optLevel;
  compile.fusion = options.fusion;
  compile.runtimeChecks = options.runtimeChecks;
  compile.cudaGraph = options.cudaGraph;
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
    throw rt::Error(std::string("moe-run: error: --backend cuda: ") + e.what());
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

/// The ranks of a run: its MPI collectives (none with one rank), the
/// expert-parallel group of this rank when replicas split the ranks, and the
/// GPU's engine. World = N expert-parallel ranks times R data-parallel
/// replicas; rank r is in replica r / N and holds expert block r mod N.
struct Ranks {
  std::unique_ptr<rt::Collectives> comm, group, gpuComm;
  int64_t rank = 0, world = 1;

  /// The engine the compiled code's exchanges run on.
  rt::Collectives *engine() const {
    return gpuComm ? gpuComm.get() : comm.get();
  }
};

Ranks openRanks(const ::moe::RunOptions &options) {
  Ranks ranks;
  ranks.world = options.shards * options.replicas;
  std::string shardFlags = "--shards " + std::to_string(options.shards);
  if (options.replicas > 1)
    shardFlags += " --replicas " + std::to_string(options.replicas);
  ranks.comm = openCollectives(ranks.world, shardFlags);
  ranks.rank = ranks.comm ? ranks.comm->rank() : 0;
  if (ranks.comm && options.replicas > 1)
    ranks.group =
        ranks.comm->split(static_cast<int>(ranks.rank / options.shards));
  return ranks;
}

/// The whole batch's tokens of --input, checked.
rt::HostTensor readTokens(const ::moe::RunOptions &options, int64_t world) {
  rt::HostTensor x = rt::readNpyAs(options.inputPath, rt::DType::F32, 2);
  if (!options.allowNonFinite)
    rt::requireFiniteTokens(x, options.inputPath, kAllowNonFinite);
  if (x.dim(0) < 1)
    throw rt::Error(options.inputPath, "the input holds no tokens");
  if (x.dim(0) % world != 0)
    throw rt::Error(options.inputPath,
                    std::to_string(x.dim(0)) +
                        " tokens cannot be split evenly over " +
                        std::to_string(world) + " ranks");
  return x;
}

/// The layer of --spec, --module or --artifact, for `globalTokens` tokens.
::moe::CompiledLayer compileLayer(const ::moe::RunOptions &options,
                                  ::moe::CompileOptions compile,
                                  int64_t globalTokens) {
  if (!options.artifactPath.empty())
    return ::moe::CompiledLayer::fromArtifact(options.artifactPath, compile);
  if (options.specPath.empty())
    return ::moe::CompiledLayer::fromModule(options.modulePath, compile);
  compile.weightType =
      ::moe::weightTypeOf(options.weightsPath, options.weightPrefix);
  return ::moe::CompiledLayer::fromSpec(options.specPath, globalTokens,
                                        compile);
}

/// A directory of its own under $TMPDIR, removed with everything in it when
/// this goes.
class PrivateDirectory {
public:
  PrivateDirectory() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "moe-compile-XXXXXX")
            .string();
    if (!::mkdtemp(pattern.data()))
      throw rt::Error("moe-run: error: cannot create a directory under " +
                      std::filesystem::temp_directory_path().string() + ": " +
                      std::strerror(errno));
    path = pattern;
  }
  ~PrivateDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  PrivateDirectory(const PrivateDirectory &) = delete;
  PrivateDirectory &operator=(const PrivateDirectory &) = delete;
  std::string path;
};

/// Gives every rank the files of rank 0's `dir` (names and contents), each
/// writing them into its own `dir`.
void shareFiles(rt::Collectives &comm, const std::string &dir) {
  std::string blob;
  if (comm.rank() == 0)
    for (const auto &entry : std::filesystem::directory_iterator(dir)) {
      std::ifstream in(entry.path(), std::ios::binary);
      std::string data((std::istreambuf_iterator<char>(in)), {});
      std::string name = entry.path().filename().string();
      uint64_t sizes[2] = {name.size(), data.size()};
      blob.append(reinterpret_cast<const char *>(sizes), sizeof(sizes));
      blob += name + data;
    }
  std::vector<uint64_t> sizes(comm.size());
  uint64_t mine = blob.size();
  comm.allGather(&mine, sizes.data(), sizeof(mine));
  blob.resize(sizes[0]);
  std::string all(sizes[0] * comm.size(), '\0');
  comm.allGather(blob.data(), all.data(), sizes[0]);
  if (comm.rank() == 0)
    return;
  for (size_t at = 0; at + 16 <= sizes[0];) {
    uint64_t lengths[2];
    std::memcpy(lengths, all.data() + at, sizeof(lengths));
    at += sizeof(lengths);
    std::string name = all.substr(at, lengths[0]);
    rt::writeFileAtomically((std::filesystem::path(dir) / name).string(),
                            {{all.data() + at + lengths[0], lengths[1]}});
    at += lengths[0] + lengths[1];
  }
}

/// The layer, compiled once per job in a sharded CPU (or gpu-loops) run:
/// every rank's program is the same, so rank 0 compiles it and the others
/// load its object code from the compiled-code cache: the user's
/// (MOE_CACHE_DIR), after rank 0 is done, or else a private one per rank
/// into which rank 0's entry is copied over the collectives. A rank whose
/// CPU differs from rank 0's (another key) compiles for itself.
::moe::CompiledLayer compileOnce(const ::moe::RunOptions &options,
                                 ::moe::CompileOptions compile,
                                 int64_t globalTokens, const Ranks &ranks) {
  if (!ranks.comm || compile.backend == "cuda")
    return compileLayer(options, compile, globalTokens);
  std::optional<PrivateDirectory> own;
  if (compile.cacheDir.empty() && !std::getenv("MOE_CACHE_DIR")) {
    own.emplace();
    compile.cacheDir = own->path;
  }
  std::optional<::moe::CompiledLayer> layer;
  std::exception_ptr failure;
  if (ranks.rank == 0) {
    try {
      layer = compileLayer(options, compile, globalTokens);
    } catch (...) {
      // The others compile, and meet the same error themselves.
      failure = std::current_exception();
    }
  }
  if (own)
    shareFiles(*ranks.comm, own->path);
  else
    ranks.comm->barrier();
  if (failure)
    std::rethrow_exception(failure);
  if (layer)
    return *layer;
  layer = compileLayer(options, compile, globalTokens);
  if (options.verbose)
    std::fprintf(stderr, "moe-run: rank %lld: %s in %.2f s\n",
                 static_cast<long long>(ranks.rank),
                 layer->fromCache() ? "loaded the code rank 0 compiled"
                                    : "compiled the layer itself (rank 0's "
                                      "code is not for this CPU)",
                 layer->compileSeconds());
  return *layer;
}

/// The rank's rows of the whole batch's tokens `x`, checked against the
/// layer and in its activation type.
rt::HostTensor rankTokens(rt::HostTensor x, const ::moe::RunOptions &options,
                          const ::moe::LayerDescription &info,
                          const Ranks &ranks) {
  int64_t tokens = x.dim(0) / ranks.world;
  if (ranks.world > 1)
    x = x.rows(ranks.rank * tokens, tokens);
  return ::moe::detail::layerTokens(std::move(x), options.inputPath, info,
                                    options.artifactPath.empty()
                                        ? "the module's @" + options.funcName
                                        : std::string("the artifact"));
}

/// Binds --weights and makes the rank's engine the one of the compiled
/// code's exchanges.
::moe::BoundLayer bindWeights(const ::moe::RunOptions &options,
                              const ::moe::CompiledLayer &layer, Ranks &ranks,
                              bool onGpu) {
  auto start = Clock::now();
  ::moe::BoundLayer bound = layer.bind(
      options.weightsPath, options.weightPrefix, options.allowNonFinite);
  // (Binding loaded an artifact's host code, which started the driver.)
  if (onGpu && !ranks.comm)
    ranks.gpuComm = openGpu(nullptr, ranks.rank, options.verbose);
  rt::setActiveCollectives(ranks.engine(), ranks.group.get());
  if (options.verbose && ranks.rank == 0) {
    std::fprintf(stderr, "moe-run: bound the weights in %.3f s\n",
                 secondsSince(start));
    if (size_t packed = layer.packedWeightCount())
      std::fprintf(stderr,
                   "moe-run: packed %zu weights into kernel panels in "
                   "binding them\n",
                   packed);
  }
  return bound;
}

/// The counters of the engine of the compiled code's exchanges: they run in
/// the expert-parallel group (statistics sums, on all ranks, are not
/// counted). Null with one rank.
const rt::CommCounters *exchangeCounters(const Ranks &ranks) {
  if (!ranks.comm)
    return nullptr;
  return &(ranks.group ? ranks.group.get() : ranks.engine())->counters();
}

/// What the call since `before` (the counters then) moved between ranks, as
/// measured on every rank: sent and received bytes of rank r at 2r and
/// 2r + 1 (all zero with one rank).
std::vector<uint64_t> measuredTraffic(const Ranks &ranks,
                                      const rt::CommCounters &before) {
  std::vector<uint64_t> traffic(2 * static_cast<size_t>(ranks.world), 0);
  const rt::CommCounters *now = exchangeCounters(ranks);
  if (!now)
    return traffic;
  uint64_t mine[2] = {now->bytesSent - before.bytesSent,
                      now->bytesReceived - before.bytesReceived};
  ranks.comm->allGather(mine, traffic.data(), sizeof(mine));
  return traffic;
}

/// Writes --output (float32, the whole batch's, from rank 0) and --stats
/// (with a sharded run's communication report).
void writeOutputs(const ::moe::RunOptions &options, const Ranks &ranks,
                  rt::HostTensor out, const rt::LayerStats &stats,
                  const ::moe::CompiledLayer &layer,
                  const std::vector<uint64_t> &traffic) {
  rt::HostTensor y = out.dtype() == rt::DType::F32 ? std::move(out)
                                                   : out.castTo(rt::DType::F32);
  std::string statsText = rt::statsToJSON(stats);
  if (ranks.comm) {
    rt::HostTensor full = rt::HostTensor::zeros(
        rt::DType::F32, {y.dim(0) * ranks.world, y.dim(1)});
    ranks.comm->allGather(y.data(), full.data(), y.byteSize());
    y = std::move(full);
    if (ranks.rank != 0)
      return;
    nlohmann::ordered_json report = nlohmann::ordered_json::parse(statsText);
    report["communication"] =
        communicationReport(traffic, options, layer.exchangeTraffic());
    statsText = report.dump(2) + "\n";
  }
  rt::writeLayerOutputs(options.outputPath, y, options.statsPath, statsText);
}

int run(const ::moe::RunOptions &options) {
  std::string backend = options.backend.empty()
                            ? (options.artifactPath.empty() ? "cpu" : "cuda")
                            : options.backend;
  bool onGpu = backend == "cuda";
  ::moe::CompileOptions compile = compileOptions(options, backend);
  checkFlags(options, compile);
  Ranks ranks = openRanks(options);
  rt::HostTensor x = readTokens(options, ranks.world);
  int64_t globalTokens = x.dim(0);

  // A sharded GPU run picks the rank's device before compiling (the kernels
  // load onto it); a single-rank one lets compiling (or reading the
  // artifact) report bad input first.
  if (onGpu && ranks.comm)
    ranks.gpuComm = openGpu(ranks.comm.get(), ranks.rank, options.verbose);
  compile.rank = ranks.rank;
  compile.progress = ranks.rank == 0;
  ::moe::CompiledLayer layer =
      compileOnce(options, compile, globalTokens, ranks);
  const ::moe::LayerDescription &info = layer.description();
  x = rankTokens(std::move(x), options, info, ranks);
  ::moe::BoundLayer bound = bindWeights(options, layer, ranks, onGpu);

  rt::HostTensor out =
      rt::HostTensor::zeros(info.activationType, {info.tokens, x.dim(1)});
  // (Compiling once per job exchanged the code over the same engine.)
  rt::CommCounters before;
  if (const rt::CommCounters *counters = exchangeCounters(ranks))
    before = *counters;
  auto runStart = Clock::now();
  rt::LayerStats stats = bound(x, out, /*allowNonFinite=*/true);
  double firstSeconds = secondsSince(runStart);
  std::vector<uint64_t> traffic = measuredTraffic(ranks, before);
  if (options.verbose && ranks.rank == 0)
    llvm::errs() << llvm::format(
        "moe-run: compiled in %.2f s%s, ran in %.3f s\n",
        layer.compileSeconds(), layer.fromCache() ? " (from the cache)" : "",
        firstSeconds);

  if (options.benchIterations > 0) {
    std::vector<double> times =
        bound.timeCalls(x, out, options.benchIterations);
    double flops = rt::keptExpertFlops(stats, info.spec.dModel, info.spec.dFF,
                                       spec::isGated(info.spec.activation));
    if (ranks.rank == 0)
      llvm::outs() << rt::benchLine(backend, globalTokens, ranks.world, times,
                                    layer.compileSeconds(), flops)
                   << "\n";
  }
  writeOutputs(options, ranks, std::move(out), stats, layer, traffic);
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
