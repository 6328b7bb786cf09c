//===- RunLayer.cpp - moe-run: one layer on real weights and tokens -*- C++
//-*-===//
//
// Reads the inputs, builds (or parses) the layer module, compiles it for the
// host, runs it and writes the results. Errors of every stage end up as one
// `<file>: error: <what>` or `moe-run: error: <what>` line.
//
//===----------------------------------------------------------------------===//

#include "moe/Runner/RunLayer.h"
#include "moe/IR/MoEOps.h"
#include "moe/Import/Import.h"
#include "moe/Runner/HostJIT.h"
#include "moe/Runtime/Collectives.h"
#include "moe/Runtime/CudaDriver.h"
#include "moe/Runtime/EntryPoints.h"
#include "moe/Runtime/Error.h"
#include "moe/Runtime/LayerCall.h"
#include "moe/Runtime/MemRef.h"
#include "moe/Runtime/Npy.h"
#include "moe/Runtime/SafeTensors.h"
#include "moe/Runtime/Stats.h"
#include "moe/Runtime/Weights.h"
#include "moe/Spec/CudaArtifact.h"
#include "moe/Spec/LayerSpec.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

using namespace mlir;
namespace rt = ::moe::runtime;
namespace spec = ::moe::spec;

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

[[noreturn]] void fail(const std::string &source, const std::string &what) {
  throw rt::Error(source, what);
}

/// The flag that skips the finiteness checks of spec §3.7.
const std::string kAllowNonFinite = "--allow-non-finite";

/// What moe-run needs to know of the layer, whichever way it was given.
struct LayerInfo {
  spec::LayerSpec spec; ///< sizes and activation (gating) at least
  std::optional<int64_t> capacity;
  rt::DType weightType = rt::DType::F32;
  rt::DType routerType = rt::DType::F32;
  rt::DType activationType = rt::DType::F32; ///< tokens in and out
};

mlir::moe::ElementKind toElementKind(rt::DType type) {
  switch (type) {
  case rt::DType::BF16:
    return mlir::moe::ElementKind::BF16;
  case rt::DType::F16:
    return mlir::moe::ElementKind::F16;
  default:
    return mlir::moe::ElementKind::F32;
  }
}

/// The element type of the expert weights stored in the file (F32 when it
/// cannot tell; loading then reports what is missing).
rt::DType storedExpertType(const rt::SafeTensorsFile &file,
                           const std::string &prefix) {
  rt::WeightLocation where = rt::locateLayerWeights(file, prefix);
  std::string name = where.prefix;
  switch (where.layout) {
  case rt::WeightLayout::Ours:
    name += "w_in";
    break;
  case rt::WeightLayout::Switch:
    name += "experts.expert_0.wi.weight";
    break;
  case rt::WeightLayout::Mixtral:
    name += "experts.0.w3.weight";
    break;
  case rt::WeightLayout::Projections:
    name += "experts.0.up_proj.weight";
    break;
  }
  if (!file.has(name) || !file.info(name).dtype)
    return rt::DType::F32;
  rt::DType stored = *file.info(name).dtype;
  return stored == rt::DType::BF16 || stored == rt::DType::F16 ? stored
                                                               : rt::DType::F32;
}

rt::DType fromMLIR(Type type, const std::string &source) {
  if (type.isF32())
    return rt::DType::F32;
  if (type.isBF16())
    return rt::DType::BF16;
  if (type.isF16())
    return rt::DType::F16;
  std::string text;
  llvm::raw_string_ostream os(text);
  os << type;
  fail(source, "unsupported element type " + text);
}

/// Reads the layer from a module: the function's signature gives the sizes,
/// a moe.layer or moe.assign_slots inside gives the capacity.
LayerInfo inspectModule(ModuleOp module, const ::moe::RunOptions &options) {
  const std::string &source = options.modulePath;
  auto func = module.lookupSymbol<func::FuncOp>(options.funcName);
  if (!func)
    fail(source, "no function @" + options.funcName + " (set --func)");
  FunctionType type = func.getFunctionType();
  auto tensorAt = [&](TypeRange types, unsigned i) {
    return dyn_cast<RankedTensorType>(types[i]);
  };
  unsigned numInputs = type.getNumInputs();
  bool shapeOk = (numInputs == 4 || numInputs == 5) &&
                 type.getNumResults() == 5 &&
                 llvm::all_of(type.getInputs(), [](Type t) {
                   auto ranked = dyn_cast<RankedTensorType>(t);
                   return ranked && ranked.hasStaticShape();
                 });
  if (shapeOk) {
    auto input = tensorAt(type.getInputs(), 0);
    auto router = tensorAt(type.getInputs(), 1);
    auto wIn = tensorAt(type.getInputs(), 2);
    auto output = tensorAt(type.getResults(), 0);
    shapeOk = input.getRank() == 2 && router.getRank() == 2 &&
              wIn.getRank() == 3 && output && output == input;
  }
  if (!shapeOk)
    fail(source, "function @" + options.funcName +
                     " must take static tensors (input, router, w_in, "
                     "[w_gate,] w_out) and return (output, tokens_per_expert, "
                     "dropped, load_balance_loss, router_z_loss)");
  auto input = tensorAt(type.getInputs(), 0);
  auto router = tensorAt(type.getInputs(), 1);
  auto wIn = tensorAt(type.getInputs(), 2);
  LayerInfo info;
  info.activationType = fromMLIR(input.getElementType(), source);
  info.spec.dModel = input.getDimSize(1);
  info.spec.numExperts = router.getDimSize(0);
  info.spec.dFF = wIn.getDimSize(2);
  // Only gating matters for loading weights.
  info.spec.activation =
      numInputs == 5 ? spec::Activation::Swiglu : spec::Activation::Relu;
  info.weightType = fromMLIR(wIn.getElementType(), source);
  info.routerType = fromMLIR(router.getElementType(), source);
  func.walk([&](Operation *op) {
    if (auto layer = dyn_cast<mlir::moe::LayerOp>(op))
      info.capacity = layer.getCapacity();
    else if (auto assign = dyn_cast<mlir::moe::AssignSlotsOp>(op))
      info.capacity = assign.getCapacity();
  });
  return info;
}

/// Turns MLIR diagnostics into one error line while parsing a module.
OwningOpRef<ModuleOp> parseModule(MLIRContext &context,
                                  const std::string &path) {
  std::string error;
  ScopedDiagnosticHandler capture(&context, [&](Diagnostic &diag) {
    if (error.empty())
      error = mlir::moe::formatDiagnostic(diag);
    return success();
  });
  llvm::SourceMgr sourceMgr;
  std::string includeError;
  if (sourceMgr.AddIncludeFile(path, llvm::SMLoc(), includeError) == 0)
    fail(path, "cannot open the module");
  auto module = parseSourceFile<ModuleOp>(sourceMgr, &context);
  if (!module)
    throw rt::Error(error.empty() ? path + ": error: invalid module" : error);
  return module;
}

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

/// Rows [first, first + count) of a row-major tensor, along dimension 0.
rt::HostTensor rowSlice(const rt::HostTensor &t, int64_t first, int64_t count) {
  std::vector<int64_t> shape = t.shape();
  size_t rowBytes = t.byteSize() / static_cast<size_t>(shape[0]);
  shape[0] = count;
  rt::HostTensor slice = rt::HostTensor::zeros(t.dtype(), shape);
  std::memcpy(slice.data(),
              static_cast<const char *>(t.data()) +
                  static_cast<size_t>(first) * rowBytes,
              static_cast<size_t>(count) * rowBytes);
  return slice;
}

/// Rewrites the layer into rank's program with moe-shard-experts; its
/// diagnostics become one error line.
void shardModule(ModuleOp module, int64_t ranks, int64_t replicas,
                 const std::string &source) {
  std::string error;
  ScopedDiagnosticHandler capture(module.getContext(), [&](Diagnostic &diag) {
    if (error.empty())
      error = mlir::moe::formatDiagnostic(diag);
    return success();
  });
  PassManager pm(module.getContext());
  mlir::moe::MoEShardExpertsOptions shardOptions;
  shardOptions.ranks = ranks;
  shardOptions.replicas = replicas;
  pm.addPass(mlir::moe::createMoEShardExperts(shardOptions));
  if (failed(pm.run(module)))
    throw rt::Error("moe-run: error: " + source + ": " +
                    (error.empty() ? "sharding failed" : error));
}

/// What one rank sends (and receives) per layer call through the exchanges
/// of `func`, as far as the program fixes it.
struct StaticTraffic {
  /// Each moe.all_to_all keeps 1/N of its buffer and sends the rest; each
  /// moe.all_gather sends its block to the N-1 others; each
  /// moe.exchange_rows sends every other rank the counts of its E/N experts.
  uint64_t bytes = 0;
  /// The program has variable-size row exchanges, whose rows come on top.
  bool dataDependent = false;
};

StaticTraffic staticTraffic(func::FuncOp func) {
  StaticTraffic traffic;
  auto sizeOf = [](RankedTensorType type) {
    return static_cast<uint64_t>(type.getNumElements()) *
           (type.getElementTypeBitWidth() / 8);
  };
  func.walk([&](Operation *op) {
    if (auto exchange = dyn_cast<mlir::moe::AllToAllOp>(op)) {
      auto ranks = static_cast<uint64_t>(exchange.getRanks());
      traffic.bytes +=
          sizeOf(exchange.getInput().getType()) / ranks * (ranks - 1);
    } else if (auto gather = dyn_cast<mlir::moe::AllGatherOp>(op)) {
      auto ranks = static_cast<uint64_t>(gather.getRanks());
      traffic.bytes += sizeOf(gather.getInput().getType()) * (ranks - 1);
    } else if (auto rows = dyn_cast<mlir::moe::ExchangeRowsOp>(op)) {
      auto ranks = static_cast<uint64_t>(rows.getRanks());
      traffic.bytes += sizeOf(rows.getCounts().getType()) / ranks * (ranks - 1);
      traffic.dataDependent = true;
    }
  });
  return traffic;
}

rt::DType dtypeNamed(const std::string &name) {
  return name == "bf16"  ? rt::DType::BF16
         : name == "f16" ? rt::DType::F16
                         : rt::DType::F32;
}

/// The whole text of `path`, a regular file; `what` names it in errors
/// ("the layer spec").
std::string readTextFile(const std::string &path, const std::string &what) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    fail(path, std::filesystem::exists(path, ec)
                   ? "not a regular file"
                   : "cannot open " + what + ": No such file or directory");
  std::ifstream in(path);
  if (!in)
    fail(path, "cannot open " + what + ": " + std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

/// Reads and validates a CUDA artifact (moe-translate --moe-to-cuda-artifact).
spec::CudaArtifact readArtifact(const std::string &path) {
  spec::CudaArtifactResult parsed =
      spec::parseCudaArtifact(readTextFile(path, "the artifact"), path);
  if (!parsed)
    throw rt::Error(parsed.error);
  return *parsed.artifact;
}

int run(const ::moe::RunOptions &options) {
  bool fromArtifact = !options.artifactPath.empty();
  std::string backend = options.backend.empty()
                            ? (fromArtifact ? "cuda" : "cpu")
                            : options.backend;
  bool onGpu = backend == "cuda";
  // The GPU pipeline's program with its kernels as host loops.
  bool gpuLoops = backend == "gpu-loops";
  if (backend != "cpu" && !onGpu && !gpuLoops)
    throw rt::Error("moe-run: error: --backend: unknown backend '" + backend +
                    "' (choose cpu, cuda or gpu-loops)");
  if (fromArtifact && !onGpu)
    throw rt::Error("moe-run: error: --artifact holds GPU code: run it with "
                    "--backend cuda");
  if (fromArtifact && options.runtimeChecks)
    throw rt::Error("moe-run: error: --runtime-checks is compiled into the "
                    "code: an artifact is already compiled (build it with "
                    "moe-gpu-pipeline{runtime-checks=1})");
  if (onGpu && !rt::cuda::built())
    throw rt::Error("moe-run: error: --backend cuda: this build has no CUDA "
                    "backend (the CUDA toolkit was not found when it was "
                    "configured)");
  if (options.activationType != "f32" && options.activationType != "bf16")
    throw rt::Error("moe-run: error: --act-dtype: unknown type '" +
                    options.activationType + "' (choose f32 or bf16)");
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

  // World = N expert-parallel ranks times R data-parallel replicas; rank r
  // is in replica r / N and holds expert block r mod N.
  int64_t shards = options.shards, replicas = options.replicas;
  int64_t world = shards * replicas;
  if (replicas > 1 && onGpu)
    throw rt::Error("moe-run: error: --replicas runs on the CPU backend only");
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
  int64_t tokens = x.dim(0), width = x.dim(1);
  if (tokens < 1)
    fail(options.inputPath, "the input holds no tokens");
  int64_t globalTokens = tokens;
  if (tokens % world != 0)
    fail(options.inputPath, std::to_string(tokens) +
                                " tokens cannot be split evenly over " +
                                std::to_string(world) + " ranks");

  DialectRegistry registry;
  registerAllDialects(registry);
  registerAllExtensions(registry);
  registry.insert<mlir::moe::MoEDialect>();
  MLIRContext context(registry);
  context.loadAllAvailableDialects();

  rt::SafeTensorsFile weightsFile =
      rt::SafeTensorsFile::open(options.weightsPath);
  LayerInfo info;
  OwningOpRef<ModuleOp> module;
  const std::string &layerSource = fromArtifact ? options.artifactPath
                                   : options.specPath.empty()
                                       ? options.modulePath
                                       : options.specPath;
  std::optional<spec::CudaArtifact> artifact;
  if (fromArtifact) {
    artifact = readArtifact(options.artifactPath);
    info.spec = artifact->weightSpec();
    info.capacity = artifact->capacity;
    info.activationType = dtypeNamed(artifact->buffer("input")->dtype);
    info.routerType = dtypeNamed(artifact->buffer("router")->dtype);
    info.weightType = dtypeNamed(artifact->buffer("w_in")->dtype);
  } else if (!options.specPath.empty()) {
    spec::SpecResult parsed = spec::parseLayerSpec(
        readTextFile(options.specPath, "the layer spec"), options.specPath);
    if (!parsed)
      throw rt::Error(parsed.error);
    info.spec = *parsed.spec;
    if (width == info.spec.dModel) {
      std::string bad = spec::checkTokens(info.spec, tokens, options.specPath);
      if (!bad.empty())
        throw rt::Error(bad);
    }
    info.capacity = info.spec.capacityFor(info.spec.groupSize.value_or(tokens));
    info.weightType = storedExpertType(weightsFile, options.weightPrefix);
    if (options.activationType == "bf16")
      info.activationType = rt::DType::BF16;
    if (width == info.spec.dModel) {
      mlir::moe::ImportOptions importOptions;
      importOptions.tokens = tokens;
      importOptions.activationType = toElementKind(info.activationType);
      importOptions.weightType = toElementKind(info.weightType);
      importOptions.routerType = toElementKind(info.routerType);
      importOptions.funcName = options.funcName;
      module = mlir::moe::buildLayerModule(
          &context, info.spec, importOptions,
          FileLineColLoc::get(&context, options.specPath, 1, 1));
      if (world > 1)
        shardModule(*module, shards, replicas, options.specPath);
    }
  } else {
    module = parseModule(context, options.modulePath);
    // Before sharding: the capacity is the layer's, not the padded one a
    // sharded dropless layer exchanges with.
    info = inspectModule(*module, options);
    if (world > 1)
      shardModule(*module, shards, replicas, options.modulePath);
  }
  // From here on, the rank's own tokens.
  if (world > 1) {
    tokens = globalTokens / world;
    x = rowSlice(x, rank * tokens, tokens);
  }
  if (width != info.spec.dModel)
    fail(options.inputPath,
         "input has width " + std::to_string(width) + ", expected d_model = " +
             std::to_string(info.spec.dModel) + " (from " + layerSource + ")");
  if (artifact && artifact->tokens != tokens)
    fail(options.inputPath, "input has " + std::to_string(tokens) +
                                " tokens, the artifact takes " +
                                std::to_string(artifact->tokens));
  if (module) {
    auto expected = cast<RankedTensorType>(
        module->lookupSymbol<func::FuncOp>(options.funcName)
            .getFunctionType()
            .getInput(0));
    if (expected.getDimSize(0) != tokens)
      fail(options.inputPath, "input has " + std::to_string(tokens) +
                                  " tokens, the module's @" + options.funcName +
                                  " takes " +
                                  std::to_string(expected.getDimSize(0)));
  }

  rt::LayerWeights weights = rt::loadLayerWeights(
      weightsFile, info.spec, info.weightType, options.weightPrefix);
  if (!options.allowNonFinite)
    rt::requireFiniteWeights(weights, options.weightsPath, kAllowNonFinite);
  if (info.routerType != weights.router.dtype())
    weights.router = weights.router.castTo(info.routerType);

  if (shards > 1) {
    // Rank r holds the experts [(r mod N)·E/N, (r mod N + 1)·E/N).
    int64_t local = info.spec.numExperts / shards;
    for (rt::HostTensor *w : {&weights.wIn, &weights.wGate, &weights.wOut})
      if (*w)
        *w = rowSlice(*w, (rank % shards) * local, local);
  }
  StaticTraffic exchange;
  if (module)
    exchange =
        staticTraffic(module->lookupSymbol<func::FuncOp>(options.funcName));

  // On the GPU every rank takes a device of its node in turn, and the
  // exchanges of the compiled code go through NCCL (or MPI over managed
  // memory, MOE_GPU_COLLECTIVES=mpi); host-side gathers stay on MPI.
  std::unique_ptr<rt::Collectives> gpuComm;
  if (onGpu) {
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
    if (options.verbose) {
      // One write per line: ranks share the terminal.
      std::string line = "moe-run: rank " + std::to_string(rank) +
                         ": cuda device " + std::to_string(device) + ": " +
                         rt::cuda::deviceDescription();
      if (comm)
        line += ", collectives " + (gpuComm ? gpuComm : comm)->name();
      std::fprintf(stderr, "%s\n", line.c_str());
    }
  }
  rt::Collectives *engine = gpuComm ? gpuComm.get() : comm.get();
  auto compileStart = Clock::now();
  rt::setActiveCollectives(engine, group.get());
  // Ranks sharing a machine share its cores.
  int64_t threads = 0;
  if (const char *local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE"))
    threads = std::max<int64_t>(
        1, int64_t(std::thread::hardware_concurrency()) / std::atoll(local));
  std::vector<std::pair<std::string, void *>> symbols =
      rt::collectiveEntryPoints();
  mlir::moe::GpuPipelineOptions gpu;
  gpu.hostLoops = gpuLoops;
  gpu.fusion = options.fusion;
  gpu.runtimeChecks = options.runtimeChecks;
  // gpu-loops emulates the kernels of this chip (its tensor-core MMA).
  gpu.chip = options.gpuChip;
  if (onGpu) {
    auto driver = rt::cuda::entryPoints();
    symbols.insert(symbols.end(), driver.begin(), driver.end());
  }
  // The layer as a call on descriptors: JIT-compiled from the module, or
  // the artifact's host code loaded as it is.
  std::function<void(const std::vector<void *> &)> invokeLayer;
  std::unique_ptr<mlir::moe::HostExecutable> compiled;
  std::unique_ptr<mlir::moe::LLVMIRExecutable> loaded;
  if (artifact) {
    auto exe = mlir::moe::LLVMIRExecutable::load(
        artifact->hostLLVMIR, options.artifactPath, artifact->entry,
        artifact->buffers.size(), symbols);
    if (!exe)
      throw rt::Error("moe-run: error: " + llvm::toString(exe.takeError()));
    loaded = std::move(*exe);
    invokeLayer = [&](const std::vector<void *> &d) { loaded->invoke(d); };
  } else {
    mlir::moe::CpuPipelineOptions cpu;
    cpu.threads = threads;
    cpu.fusion = options.fusion;
    cpu.runtimeChecks = options.runtimeChecks;
    auto exe = mlir::moe::HostExecutable::compile(
        *module, options.funcName, options.optLevel, symbols, cpu,
        onGpu || gpuLoops ? &gpu : nullptr);
    if (!exe)
      throw rt::Error("moe-run: error: " + layerSource + ": " +
                      llvm::toString(exe.takeError()));
    compiled = std::move(*exe);
    invokeLayer = [&](const std::vector<void *> &d) {
      if (llvm::Error err = compiled->invoke(d))
        throw rt::Error("moe-run: error: running the layer failed: " +
                        llvm::toString(std::move(err)));
    };
  }
  double compileSeconds = secondsSince(compileStart);

  if (x.dtype() != info.activationType)
    x = x.castTo(info.activationType);
  rt::LayerResults results = rt::LayerResults::zeros(
      info.activationType, tokens, width, info.spec.numExperts);
  std::vector<rt::HostTensor *> inputs = weights.callInputs(x);
  if (compiled) {
    // Weights the kernels read in the panel layout are packed once, here,
    // in place of the loaded ones.
    auto packStart = Clock::now();
    for (const auto &[argument, panel] : compiled->packedWeights()) {
      if (argument >= inputs.size())
        throw rt::Error("moe-run: error: the compiled layer packs argument " +
                        std::to_string(argument) + " of " +
                        std::to_string(inputs.size()));
      *inputs[argument] = inputs[argument]->packPanels(panel);
    }
    if (options.verbose && !compiled->packedWeights().empty())
      std::fprintf(stderr,
                   "moe-run: packed %zu weights into kernel panels in "
                   "%.3f s\n",
                   compiled->packedWeights().size(), secondsSince(packStart));
  }
  // On the GPU, device memory for every buffer unless the host code
  // touches some itself (then tokens, results and temporaries in managed
  // memory).
  rt::Placement placement = rt::Placement::Host;
  if (onGpu)
    placement =
        (compiled ? !compiled->touchesBuffersOnHost() : artifact->deviceMemory)
            ? rt::Placement::Device
            : rt::Placement::Managed;
  rt::CallArguments call(inputs, results, placement);

  auto runOnce = [&] {
    invokeLayer(call.get());
    call.fetchResults();
  };
  auto runStart = Clock::now();
  runOnce();
  double firstSeconds = secondsSince(runStart);

  rt::LayerStats stats = results.stats(info.capacity);

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
    llvm::errs() << llvm::format("moe-run: compiled in %.2f s, ran in %.3f s\n",
                                 compileSeconds, firstSeconds);

  if (options.benchIterations > 0) {
    std::vector<double> times =
        rt::timeCalls(options.benchIterations, runOnce, onGpu);
    double flops = rt::keptExpertFlops(stats, info.spec.dModel, info.spec.dFF,
                                       spec::isGated(info.spec.activation));
    if (rank == 0)
      llvm::outs() << rt::benchLine(backend, globalTokens, world, times,
                                    compileSeconds, flops)
                   << "\n";
  }

  // Y is written as float32 whatever the activations were.
  rt::HostTensor y = results.output.dtype() == rt::DType::F32
                         ? std::move(results.output)
                         : results.output.castTo(rt::DType::F32);
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
    std::vector<uint64_t> sent, received;
    for (int64_t r = 0; r < world; ++r) {
      sent.push_back(traffic[2 * r]);
      received.push_back(traffic[2 * r + 1]);
    }
    report["communication"] = {
        {"ranks", world},
        {"expert_parallel_ranks", shards},
        {"replicas", replicas},
        {"formula",
         "per rank and call, sent and again received: (N-1)/N of the bytes "
         "of each all_to_all buffer, plus (N-1) times those of each "
         "all_gather block, plus (N-1) times E/N 8-byte counts per "
         "exchange_rows (statistics sums not counted); with "
         "data_dependent_rows, also D x element-size bytes per row that "
         "exchange_rows sends to, and return_rows gets back from, another "
         "rank, and per row received from another rank and returned to it"},
        {"static_bytes_per_rank", exchange.bytes},
        {"data_dependent_rows", exchange.dataDependent},
        {"measured_bytes_sent", sent},
        {"measured_bytes_received", received}};
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
