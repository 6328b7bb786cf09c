//===- Compile.cpp - Compiling a layer with MLIR --------------------------===//
//
// The half of moe/Runner/Layer.h that needs MLIR and LLVM: a layer from a
// spec or a module, built, sharded and compiled (or loaded from the
// compiled-code cache); a CUDA artifact whose host code is linked by the
// JIT. Layer.cpp holds the rest (binding and calling), without MLIR.
//
//===----------------------------------------------------------------------===//

#include "CompileCache.h"
#include "LayerImpl.h"
#include "moe/Conversion/Passes.h"
#include "moe/IR/MoEOps.h"
#include "moe/Import/Import.h"
#include "moe/Runner/HostJIT.h"
#include "moe/Runtime/Error.h"
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

using namespace mlir;
namespace rt = ::moe::runtime;
namespace spec = ::moe::spec;
using ::moe::CompiledLayer;
using ::moe::CompileOptions;
using ::moe::LayerDescription;
using ::moe::detail::Clock;
using ::moe::detail::dtypeNamed;
using ::moe::detail::readTextFile;
using ::moe::detail::secondsSince;

namespace {

[[noreturn]] void fail(const std::string &source, const std::string &what) {
  throw rt::Error(source, what);
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
void shardModule(ModuleOp module, const CompiledLayer::Impl &impl,
                 const std::string &source) {
  std::string error;
  ScopedDiagnosticHandler capture(module.getContext(), [&](Diagnostic &diag) {
    if (error.empty())
      error = mlir::moe::formatDiagnostic(diag);
    return success();
  });
  PassManager pm(module.getContext());
  mlir::moe::MoEShardExpertsOptions shardOptions;
  shardOptions.ranks = impl.options.shards;
  shardOptions.replicas = impl.options.replicas;
  pm.addPass(mlir::moe::createMoEShardExperts(shardOptions));
  if (failed(pm.run(module)))
    throw rt::Error(impl.errorPrefix() + source + ": " +
                    (error.empty() ? "sharding failed" : error));
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
/// Code compiled by the JIT (or an artifact's host code linked by it), or
/// object code from the cache.
class JitCode : public ::moe::detail::LayerCode {
public:
  JitCode(std::unique_ptr<MLIRContext> context,
          std::unique_ptr<mlir::moe::HostExecutable> compiled,
          std::unique_ptr<mlir::moe::LLVMIRExecutable> loaded)
      : context(std::move(context)), compiled(std::move(compiled)),
        loaded(std::move(loaded)) {}

  void invoke(const std::vector<void *> &descriptors) const override {
    if (loaded) {
      loaded->invoke(descriptors);
      return;
    }
    if (llvm::Error err = compiled->invoke(descriptors))
      throw rt::Error("moe: error: running the layer failed: " +
                      llvm::toString(std::move(err)));
  }

private:
  std::unique_ptr<MLIRContext> context;
  std::unique_ptr<mlir::moe::HostExecutable> compiled;
  std::unique_ptr<mlir::moe::LLVMIRExecutable> loaded;
};

/// Compiles `module` (sharded already) into `impl`, or loads it from the
/// cache; `context` is the module's, moved into the code on success (on
/// failure the caller's module still needs it).
void compileModule(CompiledLayer::Impl &impl, ModuleOp module,
                   std::unique_ptr<MLIRContext> &context) {
  auto start = Clock::now();
  const CompileOptions &o = impl.options;
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
  impl.traffic = staticTraffic(func);
  // Before lowering: the descriptors the entry takes, for the cache.
  size_t numArguments =
      func ? func.getNumArguments() + func.getNumResults() : 0;
  std::vector<mlir::moe::HostExecutable::Symbol> resolved =
      ::moe::detail::runtimeSymbols(o);

  ::moe::detail::Progress progress(o.progress);
  std::string what = impl.description.source + " for " + o.backend;
  // The cache: the cpu and gpu-loops programs (no kernel images).
  std::optional<mlir::moe::CompileCache> cache;
  if (!impl.onGpu())
    cache = mlir::moe::CompileCache::open(o.cacheDir);
  std::string key;
  if (cache) {
    std::string text;
    llvm::raw_string_ostream os(text);
    module.print(os);
    os << "\n"
       << o.funcName << " O" << o.optLevel << " "
       << (gpuPipeline ? mlir::moe::gpuPipelineText(gpu)
                       : mlir::moe::cpuPipelineText(cpu));
    key = cache->keyOf(text);
    progress.say("loading " + what + " from the cache");
    if (auto hit = cache->load(key, resolved)) {
      impl.code = std::make_unique<JitCode>(std::move(context), nullptr,
                                            std::move(hit->executable));
      impl.packed = std::move(hit->packed);
      impl.hostAccess = hit->hostAccess;
      impl.cached = true;
      impl.seconds = secondsSince(start);
      return;
    }
  }
  progress.say("compiling " + what + " (lowering and JIT)");
  auto exe = mlir::moe::HostExecutable::compile(
      module, o.funcName, o.optLevel, resolved, cpu,
      gpuPipeline ? &gpu : nullptr, /*keepObject=*/cache.has_value());
  if (!exe)
    throw rt::Error(impl.errorPrefix() + impl.description.source + ": " +
                    llvm::toString(exe.takeError()));
  std::unique_ptr<mlir::moe::HostExecutable> compiled = std::move(*exe);
  impl.packed = compiled->packedWeights();
  impl.hostAccess = compiled->touchesBuffersOnHost();
  if (cache)
    cache->store(key, *compiled, numArguments);
  impl.code = std::make_unique<JitCode>(std::move(context), std::move(compiled),
                                        nullptr);
  impl.seconds = secondsSince(start);
}

/// Describes the layer of a spec (already checked) compiled for `tokens`
/// tokens (the whole batch's).
void describeSpec(CompiledLayer::Impl &impl, const spec::LayerSpec &layer,
                  int64_t tokens) {
  LayerDescription &d = impl.description;
  d.spec = layer;
  d.globalTokens = tokens;
  d.tokens = tokens / impl.world();
  d.capacity = layer.capacityFor(layer.groupSize.value_or(tokens));
  d.activationType = dtypeNamed(impl.options.activationType, "activation type");
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
    fail(source, std::to_string(tokens) +
                     " tokens cannot be split evenly "
                     "over " +
                     std::to_string(impl->world()) + " ranks");
  describeSpec(*impl, *parsed.spec, tokens);
  std::unique_ptr<MLIRContext> context = makeContext();
  mlir::moe::ImportOptions importOptions;
  importOptions.tokens = tokens;
  importOptions.activationType =
      toElementKind(impl->description.activationType);
  importOptions.weightType = toElementKind(impl->description.weightType);
  importOptions.routerType = toElementKind(impl->description.routerType);
  importOptions.funcName = options.funcName;
  OwningOpRef<ModuleOp> module = mlir::moe::buildLayerModule(
      context.get(), impl->description.spec, importOptions,
      FileLineColLoc::get(context.get(), source, 1, 1));
  if (impl->world() > 1)
    shardModule(*module, *impl, source);
  compileModule(*impl, *module, context);
  return CompiledLayer(std::move(impl));
}

CompiledLayer CompiledLayer::fromModule(const std::string &path,
                                        const CompileOptions &options) {
  ::moe::checkCompileOptions(options);
  ::moe::detail::requireOwnActivationType(options);
  auto impl = std::make_shared<Impl>();
  impl->options = options;
  std::unique_ptr<MLIRContext> context = makeContext();
  OwningOpRef<ModuleOp> module = parseModule(*context, path);
  // Before sharding: the capacity is the layer's, not the padded one a
  // sharded dropless layer exchanges with.
  impl->description = inspectModule(*module, path, options.funcName);
  impl->description.source = path;
  impl->description.backend = options.backend;
  impl->description.globalTokens = impl->description.tokens;
  if (impl->world() > 1) {
    shardModule(*module, *impl, path);
    impl->description.tokens =
        cast<RankedTensorType>(
            module->lookupSymbol<func::FuncOp>(options.funcName)
                .getFunctionType()
                .getInput(0))
            .getDimSize(0);
  }
  compileModule(*impl, *module, context);
  return CompiledLayer(std::move(impl));
}

CompiledLayer CompiledLayer::fromArtifact(const std::string &path,
                                          const CompileOptions &options) {
  std::shared_ptr<Impl> impl = Impl::describeArtifact(path, options);
  // The host code in LLVM IR, linked by the JIT at the first bind.
  Impl *layer = impl.get();
  impl->loadCode = [layer]() -> std::unique_ptr<::moe::detail::LayerCode> {
    const spec::CudaArtifact &artifact = *layer->artifact;
    auto exe = mlir::moe::LLVMIRExecutable::load(
        artifact.hostLLVMIR, layer->description.source, artifact.entry,
        artifact.buffers.size(), ::moe::detail::runtimeSymbols(layer->options));
    if (!exe)
      throw rt::Error(layer->errorPrefix() + llvm::toString(exe.takeError()));
    return std::make_unique<JitCode>(nullptr, nullptr, std::move(*exe));
  };
  return CompiledLayer(std::move(impl));
}
