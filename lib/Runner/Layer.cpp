//===- Layer.cpp - A compiled MoE layer as a library -----------------------===//
//
// See moe/Runner/Layer.h. The stages: describe the layer (spec, module or
// artifact), build and shard its module, compile it (or load it from the
// cache), bind weights (load, check, slice to the rank's experts, pack),
// call.
//
//===----------------------------------------------------------------------===//

#include "moe/Runner/Layer.h"
#include "CompileCache.h"
#include "moe/IR/MoEOps.h"
#include "moe/Import/Import.h"
#include "moe/Runner/HostJIT.h"
#include "moe/Runtime/Collectives.h"
#include "moe/Runtime/CudaDriver.h"
#include "moe/Runtime/EntryPoints.h"
#include "moe/Runtime/Error.h"
#include "moe/Runtime/LayerCall.h"
#include "moe/Runtime/SafeTensors.h"
#include "moe/Spec/CudaArtifact.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <condition_variable>
#include <thread>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <unistd.h>

using namespace mlir;
namespace rt = ::moe::runtime;
namespace spec = ::moe::spec;
using ::moe::BoundLayer;
using ::moe::CompiledLayer;
using ::moe::CompileOptions;
using ::moe::LayerDescription;

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

[[noreturn]] void fail(const std::string &source, const std::string &what) {
  throw rt::Error(source, what);
}

/// Progress lines on a terminal: the current stage and the seconds it has
/// taken so far, redrawn in place by a ticker thread; done() clears the
/// line. Nothing at all when stderr is not a terminal.
class Progress {
public:
  explicit Progress(bool wanted) : on(wanted && ::isatty(2)) {}
  ~Progress() { done(); }
  Progress(const Progress &) = delete;
  Progress &operator=(const Progress &) = delete;

  void say(const std::string &what) {
    if (!on)
      return;
    std::lock_guard<std::mutex> lock(mutex);
    stage = what;
    start = Clock::now();
    draw();
    if (!ticker.joinable())
      ticker = std::thread([this] { tick(); });
  }

  void done() {
    if (!on)
      return;
    {
      std::lock_guard<std::mutex> lock(mutex);
      stopping = true;
    }
    wake.notify_all();
    if (ticker.joinable())
      ticker.join();
    if (!stage.empty())
      std::fprintf(stderr, "\r\033[K");
    stage.clear();
    stopping = false;
  }

private:
  void draw() {
    std::fprintf(stderr, "\r\033[Kmoe: %s ... %.1f s", stage.c_str(),
                 secondsSince(start));
    std::fflush(stderr);
  }
  void tick() {
    std::unique_lock<std::mutex> lock(mutex);
    while (!wake.wait_for(lock, std::chrono::milliseconds(250),
                          [this] { return stopping; }))
      draw();
  }

  bool on;
  std::mutex mutex;
  std::condition_variable wake;
  std::thread ticker;
  std::string stage;
  Clock::time_point start;
  bool stopping = false;
};

rt::DType dtypeNamed(const std::string &name, const std::string &option) {
  if (name == "f32")
    return rt::DType::F32;
  if (name == "bf16")
    return rt::DType::BF16;
  if (name == "f16")
    return rt::DType::F16;
  throw rt::Error("moe: error: " + option + ": unknown element type '" + name +
                  "' (choose f32, bf16 or f16)");
}

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

/// The whole text of `path`, a regular file; `what` names it in errors.
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

std::unique_ptr<MLIRContext> makeContext() {
  DialectRegistry registry;
  registerAllDialects(registry);
  registerAllExtensions(registry);
  registry.insert<mlir::moe::MoEDialect>();
  auto context = std::make_unique<MLIRContext>(registry);
  context->loadAllAvailableDialects();
  return context;
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

/// Reads the layer from a module: the function's signature gives the sizes,
/// a moe.layer or moe.assign_slots inside gives the capacity.
LayerDescription inspectModule(ModuleOp module, const std::string &source,
                               const std::string &funcName) {
  auto func = module.lookupSymbol<func::FuncOp>(funcName);
  if (!func)
    fail(source, "no function @" + funcName + " (set --func)");
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
    fail(source, "function @" + funcName +
                     " must take static tensors (input, router, w_in, "
                     "[w_gate,] w_out) and return (output, tokens_per_expert, "
                     "dropped, load_balance_loss, router_z_loss)");
  auto input = tensorAt(type.getInputs(), 0);
  auto router = tensorAt(type.getInputs(), 1);
  auto wIn = tensorAt(type.getInputs(), 2);
  LayerDescription info;
  info.activationType = fromMLIR(input.getElementType(), source);
  info.spec.dModel = input.getDimSize(1);
  info.spec.numExperts = router.getDimSize(0);
  info.spec.dFF = wIn.getDimSize(2);
  // Only gating matters for loading weights.
  info.spec.activation =
      numInputs == 5 ? spec::Activation::Swiglu : spec::Activation::Relu;
  info.weightType = fromMLIR(wIn.getElementType(), source);
  info.routerType = fromMLIR(router.getElementType(), source);
  info.tokens = input.getDimSize(0);
  func.walk([&](Operation *op) {
    if (auto layer = dyn_cast<mlir::moe::LayerOp>(op))
      info.capacity = layer.getCapacity();
    else if (auto assign = dyn_cast<mlir::moe::AssignSlotsOp>(op))
      info.capacity = assign.getCapacity();
  });
  return info;
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

/// A module or artifact fixes its activation type itself.
void requireOwnActivationType(const CompileOptions &options) {
  if (options.activationType != "f32")
    throw rt::Error("moe-run: error: --act-dtype applies to --spec; the "
                    "input type of a --module or --artifact gives its "
                    "activations");
}

::moe::ExchangeTraffic staticTraffic(func::FuncOp func) {
  ::moe::ExchangeTraffic traffic;
  auto sizeOf = [](RankedTensorType type) {
    return static_cast<uint64_t>(type.getNumElements()) *
           (type.getElementTypeBitWidth() / 8);
  };
  func.walk([&](Operation *op) {
    if (auto exchange = dyn_cast<mlir::moe::AllToAllOp>(op)) {
      auto ranks = static_cast<uint64_t>(exchange.getRanks());
      traffic.staticBytes +=
          sizeOf(exchange.getInput().getType()) / ranks * (ranks - 1);
    } else if (auto gather = dyn_cast<mlir::moe::AllGatherOp>(op)) {
      auto ranks = static_cast<uint64_t>(gather.getRanks());
      traffic.staticBytes += sizeOf(gather.getInput().getType()) * (ranks - 1);
    } else if (auto rows = dyn_cast<mlir::moe::ExchangeRowsOp>(op)) {
      auto ranks = static_cast<uint64_t>(rows.getRanks());
      traffic.staticBytes +=
          sizeOf(rows.getCounts().getType()) / ranks * (ranks - 1);
      traffic.dataDependent = true;
    }
  });
  return traffic;
}

} // namespace

namespace moe {
void checkCompileOptions(const CompileOptions &options) {
  const std::string &backend = options.backend;
  if (backend != "cpu" && backend != "cuda" && backend != "gpu-loops")
    throw rt::Error("moe-run: error: --backend: unknown backend '" + backend +
                    "' (choose cpu, cuda or gpu-loops)");
  if (backend == "cuda" && !rt::cuda::built())
    throw rt::Error("moe-run: error: --backend cuda: this build has no CUDA "
                    "backend (the CUDA toolkit was not found when it was "
                    "configured)");
  if (options.activationType != "f32" && options.activationType != "bf16")
    throw rt::Error("moe-run: error: --act-dtype: unknown type '" +
                    options.activationType + "' (choose f32 or bf16)");
  if (options.optLevel > 3)
    throw rt::Error("moe: error: optimisation level " +
                    std::to_string(options.optLevel) + " (choose 0 to 3)");
  if (options.shards < 1 || options.replicas < 1 || options.rank < 0 ||
      options.rank >= options.shards * options.replicas)
    throw rt::Error("moe: error: rank " + std::to_string(options.rank) +
                    " of " + std::to_string(options.shards) + " shards x " +
                    std::to_string(options.replicas) + " replicas");
  if (options.replicas > 1 && backend == "cuda")
    throw rt::Error("moe-run: error: --replicas runs on the CPU backend only");
}
} // namespace moe

//===----------------------------------------------------------------------===//
// CompiledLayer
//===----------------------------------------------------------------------===//

struct CompiledLayer::Impl {
  LayerDescription description;
  CompileOptions options;
  ::moe::ExchangeTraffic traffic;
  std::unique_ptr<MLIRContext> context;
  std::unique_ptr<mlir::moe::HostExecutable> compiled;
  std::unique_ptr<mlir::moe::LLVMIRExecutable> loaded;
  std::optional<spec::CudaArtifact> artifact;
  /// (argument, panel width) of the weights the kernels read packed.
  std::vector<std::pair<unsigned, int64_t>> packed;
  /// Whether the host code reads or writes buffers itself.
  bool hostAccess = true;
  double seconds = 0;
  bool cached = false;
  std::mutex loading;

  bool onGpu() const { return description.backend == "cuda"; }
  int64_t world() const { return options.shards * options.replicas; }

  void invoke(const std::vector<void *> &descriptors) const {
    if (loaded) {
      loaded->invoke(descriptors);
      return;
    }
    if (llvm::Error err = compiled->invoke(descriptors))
      throw rt::Error("moe-run: error: running the layer failed: " +
                      llvm::toString(std::move(err)));
  }

  /// The symbols the compiled code calls into this process for.
  std::vector<mlir::moe::HostExecutable::Symbol> symbols() const {
    std::vector<mlir::moe::HostExecutable::Symbol> all =
        rt::collectiveEntryPoints();
    if (onGpu()) {
      try {
        rt::cuda::initialize();
      } catch (const rt::Error &e) {
        throw rt::Error(std::string("moe-run: error: --backend cuda: ") +
                        e.what());
      }
      auto driver = rt::cuda::entryPoints();
      all.insert(all.end(), driver.begin(), driver.end());
    }
    return all;
  }

  /// Loads an artifact's host code once (the first bind; binds may come
  /// from several threads).
  void loadArtifact() {
    std::lock_guard<std::mutex> lock(loading);
    if (loaded)
      return;
    auto start = Clock::now();
    auto exe = mlir::moe::LLVMIRExecutable::load(
        artifact->hostLLVMIR, description.source, artifact->entry,
        artifact->buffers.size(), symbols());
    if (!exe)
      throw rt::Error("moe-run: error: " + llvm::toString(exe.takeError()));
    loaded = std::move(*exe);
    seconds += secondsSince(start);
  }

  /// Compiles `module` (sharded already), or loads it from the cache.
  void compile(ModuleOp module) {
    auto start = Clock::now();
    const CompileOptions &o = options;
    mlir::moe::GpuPipelineOptions gpu;
    gpu.hostLoops = o.backend == "gpu-loops";
    gpu.fusion = o.fusion;
    gpu.runtimeChecks = o.runtimeChecks;
    gpu.chip = o.gpuChip;
    mlir::moe::CpuPipelineOptions cpu;
    cpu.threads = o.threads;
    cpu.fusion = o.fusion;
    cpu.runtimeChecks = o.runtimeChecks;
    bool gpuPipeline = o.backend != "cpu";
    auto func = module.lookupSymbol<func::FuncOp>(o.funcName);
    traffic = staticTraffic(func);
    // Before lowering: the descriptors the entry takes, for the cache.
    size_t numArguments =
        func ? func.getNumArguments() + func.getNumResults() : 0;
    std::vector<mlir::moe::HostExecutable::Symbol> resolved = symbols();

    Progress progress(o.progress);
    std::string what = description.source + " for " + o.backend;
    // The cache: the cpu and gpu-loops programs (no kernel images).
    std::optional<mlir::moe::CompileCache> cache;
    if (!onGpu())
      cache = mlir::moe::CompileCache::open(o.cacheDir);
    std::string key;
    if (cache) {
      std::string text;
      llvm::raw_string_ostream os(text);
      module.print(os);
      os << "\n" << o.funcName << " O" << o.optLevel << " "
         << (gpuPipeline ? mlir::moe::gpuPipelineText(gpu)
                         : mlir::moe::cpuPipelineText(cpu));
      key = cache->keyOf(text);
      progress.say("loading " + what + " from the cache");
      if (auto hit = cache->load(key, resolved)) {
        loaded = std::move(hit->executable);
        packed = std::move(hit->packed);
        hostAccess = hit->hostAccess;
        cached = true;
        seconds = secondsSince(start);
        return;
      }
    }
    progress.say("compiling " + what + " (lowering and JIT)");
    auto exe = mlir::moe::HostExecutable::compile(
        module, o.funcName, o.optLevel, resolved, cpu,
        gpuPipeline ? &gpu : nullptr, /*keepObject=*/cache.has_value());
    if (!exe)
      throw rt::Error("moe-run: error: " + description.source + ": " +
                      llvm::toString(exe.takeError()));
    compiled = std::move(*exe);
    packed = compiled->packedWeights();
    hostAccess = compiled->touchesBuffersOnHost();
    if (cache)
      cache->store(key, *compiled, numArguments);
    seconds = secondsSince(start);
  }
};

namespace {

/// Describes the layer of a spec (already checked) compiled for `tokens`
/// tokens (the whole batch's).
void describeSpec(CompiledLayer::Impl &impl, const spec::LayerSpec &layer,
                  int64_t tokens) {
  LayerDescription &d = impl.description;
  d.spec = layer;
  d.globalTokens = tokens;
  d.tokens = tokens / impl.world();
  d.capacity = layer.capacityFor(layer.groupSize.value_or(tokens));
  d.activationType =
      dtypeNamed(impl.options.activationType, "activation type");
  d.weightType = dtypeNamed(impl.options.weightType, "weight type");
}

} // namespace

CompiledLayer CompiledLayer::fromSpec(const std::string &path, int64_t tokens,
                                      const CompileOptions &options) {
  ::moe::checkCompileOptions(options);
  return fromSpecText(readTextFile(path, "the layer spec"), tokens, options,
                      path);
}

CompiledLayer CompiledLayer::fromSpecText(const std::string &json,
                                          int64_t tokens,
                                          const CompileOptions &options,
                                          const std::string &source) {
  ::moe::checkCompileOptions(options);
  spec::SpecResult parsed = spec::parseLayerSpec(json, source);
  if (!parsed)
    throw rt::Error(parsed.error);
  std::string bad = spec::checkTokens(*parsed.spec, tokens, source);
  if (!bad.empty())
    throw rt::Error(bad);
  auto impl = std::make_shared<Impl>();
  impl->options = options;
  impl->description.source = source;
  impl->description.backend = options.backend;
  if (tokens % impl->world() != 0)
    fail(source, std::to_string(tokens) + " tokens cannot be split evenly "
                                          "over " +
                     std::to_string(impl->world()) + " ranks");
  describeSpec(*impl, *parsed.spec, tokens);
  impl->context = makeContext();
  mlir::moe::ImportOptions importOptions;
  importOptions.tokens = tokens;
  importOptions.activationType = toElementKind(impl->description.activationType);
  importOptions.weightType = toElementKind(impl->description.weightType);
  importOptions.routerType = toElementKind(impl->description.routerType);
  importOptions.funcName = options.funcName;
  OwningOpRef<ModuleOp> module = mlir::moe::buildLayerModule(
      impl->context.get(), impl->description.spec, importOptions,
      FileLineColLoc::get(impl->context.get(), source, 1, 1));
  if (impl->world() > 1)
    shardModule(*module, options.shards, options.replicas, source);
  impl->compile(*module);
  return CompiledLayer(std::move(impl));
}

CompiledLayer CompiledLayer::fromModule(const std::string &path,
                                        const CompileOptions &options) {
  ::moe::checkCompileOptions(options);
  requireOwnActivationType(options);
  auto impl = std::make_shared<Impl>();
  impl->options = options;
  impl->context = makeContext();
  OwningOpRef<ModuleOp> module = parseModule(*impl->context, path);
  // Before sharding: the capacity is the layer's, not the padded one a
  // sharded dropless layer exchanges with.
  impl->description = inspectModule(*module, path, options.funcName);
  impl->description.source = path;
  impl->description.backend = options.backend;
  impl->description.globalTokens = impl->description.tokens;
  if (impl->world() > 1) {
    shardModule(*module, options.shards, options.replicas, path);
    impl->description.tokens =
        cast<RankedTensorType>(module->lookupSymbol<func::FuncOp>(
                                         options.funcName)
                                   .getFunctionType()
                                   .getInput(0))
            .getDimSize(0);
  }
  impl->compile(*module);
  return CompiledLayer(std::move(impl));
}

CompiledLayer CompiledLayer::fromArtifact(const std::string &path,
                                          const CompileOptions &options) {
  ::moe::checkCompileOptions(options);
  if (options.backend != "cuda")
    throw rt::Error("moe-run: error: --artifact holds GPU code: run it with "
                    "--backend cuda");
  if (options.runtimeChecks)
    throw rt::Error("moe-run: error: --runtime-checks is compiled into the "
                    "code: an artifact is already compiled (build it with "
                    "moe-gpu-pipeline{runtime-checks=1})");
  requireOwnActivationType(options);
  auto start = Clock::now();
  spec::CudaArtifactResult parsed =
      spec::parseCudaArtifact(readTextFile(path, "the artifact"), path);
  if (!parsed)
    throw rt::Error(parsed.error);
  auto impl = std::make_shared<Impl>();
  impl->options = options;
  impl->artifact = *parsed.artifact;
  const spec::CudaArtifact &artifact = *impl->artifact;
  LayerDescription &d = impl->description;
  d.source = path;
  d.backend = "cuda";
  d.spec = artifact.weightSpec();
  d.capacity = artifact.capacity;
  d.activationType = dtypeNamed(artifact.buffer("input")->dtype, "input");
  d.routerType = dtypeNamed(artifact.buffer("router")->dtype, "router");
  d.weightType = dtypeNamed(artifact.buffer("w_in")->dtype, "w_in");
  d.tokens = artifact.tokens;
  d.globalTokens = artifact.tokens * impl->world();
  impl->hostAccess = !artifact.deviceMemory;
  impl->seconds = secondsSince(start);
  return CompiledLayer(std::move(impl));
}

const LayerDescription &CompiledLayer::description() const {
  return impl->description;
}
double CompiledLayer::compileSeconds() const { return impl->seconds; }
bool CompiledLayer::fromCache() const { return impl->cached; }
size_t CompiledLayer::packedWeightCount() const { return impl->packed.size(); }
::moe::ExchangeTraffic CompiledLayer::exchangeTraffic() const {
  return impl->traffic;
}

//===----------------------------------------------------------------------===//
// BoundLayer
//===----------------------------------------------------------------------===//

struct BoundLayer::Impl {
  std::shared_ptr<CompiledLayer::Impl> layer;
  /// The weights as the kernels read them (the rank's experts, packed).
  rt::LayerWeights weights;
  /// Their device copies on the GPU.
  std::unique_ptr<rt::DeviceWeights> device;
  rt::Placement placement = rt::Placement::Host;
  /// GPU calls share the driver's state (scratch memory, the stream).
  std::mutex gpuCall;
};

BoundLayer CompiledLayer::bind(const std::string &safetensorsPath,
                               const std::string &prefix,
                               bool allowNonFinite) const {
  Progress progress(impl->options.progress);
  rt::SafeTensorsFile file = rt::SafeTensorsFile::open(safetensorsPath);
  std::string what = "loading the weights of " + safetensorsPath;
  progress.say(what);
  rt::LayerWeights weights = rt::loadLayerWeights(
      file, impl->description.spec, impl->description.weightType, prefix,
      [&](int64_t tensors, uint64_t bytes) {
        char line[64];
        std::snprintf(line, sizeof(line), ": %lld tensors, %.2f GB",
                      static_cast<long long>(tensors), double(bytes) * 1e-9);
        progress.say(what + line);
      });
  progress.done();
  return bindLoaded(std::move(weights), safetensorsPath, allowNonFinite);
}

BoundLayer
CompiledLayer::bind(std::map<std::string, rt::HostTensor> named,
                    bool allowNonFinite) const {
  const std::string source = "<weights>";
  rt::LayerWeights weights = rt::layerWeightsFromNamed(
      std::move(named), impl->description.spec, impl->description.weightType,
      source);
  return bindLoaded(std::move(weights), source, allowNonFinite);
}

BoundLayer CompiledLayer::bindLoaded(rt::LayerWeights weights,
                                     const std::string &source,
                                     bool allowNonFinite) const {
  const LayerDescription &d = impl->description;
  const CompileOptions &o = impl->options;
  if (impl->artifact)
    impl->loadArtifact();
  if (!allowNonFinite)
    rt::requireFiniteWeights(weights, source, "--allow-non-finite");
  if (d.routerType != weights.router.dtype())
    weights.router = weights.router.castTo(d.routerType);
  if (o.shards > 1) {
    // Rank r holds the experts [(r mod N)·E/N, (r mod N + 1)·E/N).
    int64_t local = d.spec.numExperts / o.shards;
    for (rt::HostTensor *w : {&weights.wIn, &weights.wGate, &weights.wOut})
      if (*w)
        *w = w->rows((o.rank % o.shards) * local, local);
  }
  auto bound = std::make_shared<BoundLayer::Impl>();
  bound->layer = impl;
  bound->weights = std::move(weights);
  rt::HostTensor noTokens;
  std::vector<rt::HostTensor *> inputs = bound->weights.callInputs(noTokens);
  for (const auto &[argument, panel] : impl->packed) {
    if (argument == 0 || argument >= inputs.size())
      throw rt::Error("moe-run: error: the compiled layer packs argument " +
                      std::to_string(argument) + " of " +
                      std::to_string(inputs.size()));
    *inputs[argument] = inputs[argument]->packPanels(panel);
  }
  // Views of caller memory that are still views (not packed, sliced or
  // converted) become the bound layer's own: calls may come long after
  // the caller's arrays are gone.
  for (rt::HostTensor *weight : inputs)
    if (weight->isView())
      *weight = weight->clone();
  if (impl->onGpu()) {
    bound->placement = impl->hostAccess ? rt::Placement::Managed
                                        : rt::Placement::Device;
    bound->device = std::make_unique<rt::DeviceWeights>(
        std::vector<rt::HostTensor *>(inputs.begin() + 1, inputs.end()));
  }
  return BoundLayer(std::move(bound));
}

rt::LayerStats BoundLayer::operator()(const void *x, void *y,
                                      bool allowNonFinite) const {
  const LayerDescription &d = impl->layer->description;
  rt::HostTensor in = rt::HostTensor::view(
      d.activationType, {d.tokens, d.spec.dModel}, const_cast<void *>(x));
  rt::HostTensor out =
      rt::HostTensor::view(d.activationType, {d.tokens, d.spec.dModel}, y);
  return (*this)(in, out, allowNonFinite);
}

rt::LayerStats BoundLayer::operator()(const rt::HostTensor &x,
                                      rt::HostTensor &y,
                                      bool allowNonFinite) const {
  const LayerDescription &d = impl->layer->description;
  std::vector<int64_t> shape{d.tokens, d.spec.dModel};
  for (const auto &[tensor, name] :
       {std::pair<const rt::HostTensor *, const char *>{&x, "input"},
        {&y, "output"}})
    if (tensor->dtype() != d.activationType || tensor->shape() != shape)
      throw rt::Error("moe: error: the " + std::string(name) + " is " +
                      std::string(rt::dtypeName(tensor->dtype())) +
                      rt::formatShape(tensor->shape()) + ", the layer takes " +
                      std::string(rt::dtypeName(d.activationType)) +
                      rt::formatShape(shape));
  if (!allowNonFinite)
    rt::requireFiniteTokens(x, "<input>", "allow_non_finite");
  rt::LayerResults results = rt::LayerResults::zeros(
      d.activationType, d.tokens, d.spec.dModel, d.spec.numExperts);
  // The output is the caller's memory itself.
  results.output = rt::HostTensor::view(d.activationType, shape, y.data());
  rt::HostTensor input = rt::HostTensor::view(d.activationType, shape,
                                              const_cast<void *>(x.data()));
  std::vector<rt::HostTensor *> inputs = impl->weights.callInputs(input);
  std::unique_lock<std::mutex> lock(impl->gpuCall, std::defer_lock);
  if (impl->placement != rt::Placement::Host)
    lock.lock();
  rt::CallArguments call(inputs, results, impl->placement,
                         impl->device.get());
  impl->layer->invoke(call.get());
  call.fetchResults();
  return results.stats(d.capacity);
}

const LayerDescription &BoundLayer::description() const {
  return impl->layer->description;
}

bool BoundLayer::onGpu() const { return impl->layer->onGpu(); }

std::string(::moe::weightTypeOf)(const std::string &safetensorsPath,
                                 const std::string &prefix) {
  return std::string(rt::dtypeName(rt::storedExpertType(
      rt::SafeTensorsFile::open(safetensorsPath), prefix)));
}
