//===- RunLayer.cpp - moe-run: one layer on real weights and tokens -*- C++ -*-===//
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
#include "moe/Runtime/Error.h"
#include "moe/Runtime/MemRef.h"
#include "moe/Runtime/Npy.h"
#include "moe/Runtime/SafeTensors.h"
#include "moe/Runtime/Stats.h"
#include "moe/Runtime/Weights.h"
#include "moe/Spec/LayerSpec.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

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

/// What moe-run needs to know of the layer, whichever way it was given.
struct LayerInfo {
  spec::LayerSpec spec; ///< sizes and activation (gating) at least
  std::optional<int64_t> capacity;
  rt::DType weightType = rt::DType::F32;
  rt::DType routerType = rt::DType::F32;
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
  if (input.getElementType() != Float32Type::get(module.getContext()))
    fail(source, "moe-run feeds float32 tokens; @" + options.funcName +
                     " takes another input element type");

  LayerInfo info;
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

int run(const ::moe::RunOptions &options) {
  if (options.backend != "cpu")
    throw rt::Error("moe-run: error: backend '" + options.backend +
                    "' is not available (this build has: cpu)");
  if (options.specPath.empty() == options.modulePath.empty())
    throw rt::Error("moe-run: error: give exactly one of --spec and --module");
  for (auto [flag, value] :
       {std::pair<const char *, const std::string *>{"--weights",
                                                     &options.weightsPath},
        {"--input", &options.inputPath},
        {"--output", &options.outputPath}})
    if (value->empty())
      throw rt::Error(std::string("moe-run: error: ") + flag + " is required");

  rt::HostTensor x = rt::readNpyAs(options.inputPath, rt::DType::F32, 2);
  int64_t tokens = x.dim(0), width = x.dim(1);
  if (tokens < 1)
    fail(options.inputPath, "the input holds no tokens");

  DialectRegistry registry;
  registerAllDialects(registry);
  registerAllExtensions(registry);
  registry.insert<mlir::moe::MoEDialect>();
  MLIRContext context(registry);
  context.loadAllAvailableDialects();

  rt::SafeTensorsFile weightsFile = rt::SafeTensorsFile::open(options.weightsPath);
  LayerInfo info;
  OwningOpRef<ModuleOp> module;
  const std::string &layerSource =
      options.specPath.empty() ? options.modulePath : options.specPath;
  if (!options.specPath.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(options.specPath, ec))
      fail(options.specPath, std::filesystem::exists(options.specPath, ec)
                                 ? "not a regular file"
                                 : "cannot open the layer spec: No such file "
                                   "or directory");
    std::ifstream in(options.specPath);
    if (!in)
      fail(options.specPath, std::string("cannot open the layer spec: ") +
                                 std::strerror(errno));
    std::stringstream text;
    text << in.rdbuf();
    spec::SpecResult parsed =
        spec::parseLayerSpec(text.str(), options.specPath);
    if (!parsed)
      throw rt::Error(parsed.error);
    info.spec = *parsed.spec;
    if (width == info.spec.dModel) {
      std::string bad = spec::checkTokens(info.spec, tokens, options.specPath);
      if (!bad.empty())
        throw rt::Error(bad);
    }
    info.capacity = info.spec.capacityFor(
        info.spec.groupSize.value_or(tokens));
    info.weightType = storedExpertType(weightsFile, options.weightPrefix);
  } else {
    module = parseModule(context, options.modulePath);
    info = inspectModule(*module, options);
  }
  if (width != info.spec.dModel)
    fail(options.inputPath, "input has width " + std::to_string(width) +
                                ", expected d_model = " +
                                std::to_string(info.spec.dModel) + " (from " +
                                layerSource + ")");
  if (module) {
    auto expected = cast<RankedTensorType>(
        module->lookupSymbol<func::FuncOp>(options.funcName)
            .getFunctionType()
            .getInput(0));
    if (expected.getDimSize(0) != tokens)
      fail(options.inputPath,
           "input has " + std::to_string(tokens) + " tokens, the module's @" +
               options.funcName + " takes " +
               std::to_string(expected.getDimSize(0)));
  }

  rt::LayerWeights weights = rt::loadLayerWeights(
      weightsFile, info.spec, info.weightType, options.weightPrefix);
  if (info.routerType != weights.router.dtype())
    weights.router = weights.router.castTo(info.routerType);

  if (!module) {
    mlir::moe::ImportOptions importOptions;
    importOptions.tokens = tokens;
    importOptions.weightType = toElementKind(info.weightType);
    importOptions.routerType = toElementKind(info.routerType);
    importOptions.funcName = options.funcName;
    module = mlir::moe::buildLayerModule(&context, info.spec, importOptions,
                                   FileLineColLoc::get(&context, options.specPath, 1, 1));
  }

  auto compileStart = Clock::now();
  auto executable =
      mlir::moe::HostExecutable::compile(*module, options.funcName, options.optLevel);
  if (!executable)
    throw rt::Error("moe-run: error: " + layerSource + ": " +
                    llvm::toString(executable.takeError()));
  double compileSeconds = secondsSince(compileStart);

  int64_t experts = info.spec.numExperts;
  rt::HostTensor y = rt::HostTensor::zeros(rt::DType::F32, {tokens, width});
  rt::HostTensor perExpert = rt::HostTensor::zeros(rt::DType::I64, {experts});
  rt::HostTensor dropped = rt::HostTensor::zeros(rt::DType::I64, {});
  rt::HostTensor balance = rt::HostTensor::zeros(rt::DType::F32, {});
  rt::HostTensor zLoss = rt::HostTensor::zeros(rt::DType::F32, {});

  std::vector<rt::HostTensor *> arguments{&x, &weights.router, &weights.wIn};
  if (weights.wGate)
    arguments.push_back(&weights.wGate);
  arguments.insert(arguments.end(),
                   {&weights.wOut, &y, &perExpert, &dropped, &balance, &zLoss});
  std::vector<rt::MemRefDescriptor> descriptors;
  descriptors.reserve(arguments.size());
  std::vector<void *> pointers;
  for (rt::HostTensor *tensor : arguments)
    pointers.push_back(descriptors.emplace_back(*tensor).get());

  auto runOnce = [&] {
    if (llvm::Error err = (*executable)->invoke(pointers))
      throw rt::Error("moe-run: error: running the layer failed: " +
                      llvm::toString(std::move(err)));
  };
  auto runStart = Clock::now();
  runOnce();
  double firstSeconds = secondsSince(runStart);

  rt::LayerStats stats;
  stats.capacity = info.capacity;
  const int64_t *counts = perExpert.dataAs<int64_t>();
  stats.tokensPerExpert.assign(counts, counts + experts);
  stats.dropped = *dropped.dataAs<int64_t>();
  stats.loadBalanceLoss = *balance.dataAs<float>();
  stats.routerZLoss = *zLoss.dataAs<float>();

  if (options.verbose)
    llvm::errs() << llvm::format("moe-run: compiled in %.2f s, ran in %.3f s\n",
                                 compileSeconds, firstSeconds);

  if (options.benchIterations > 0) {
    std::vector<double> times;
    for (int64_t i = 0; i < options.benchIterations; ++i) {
      auto start = Clock::now();
      runOnce();
      times.push_back(secondsSince(start));
    }
    std::sort(times.begin(), times.end());
    double median = times[times.size() / 2];
    int64_t kept = 0;
    for (int64_t c : stats.tokensPerExpert)
      kept += c;
    double matrices = spec::isGated(info.spec.activation) ? 3 : 2;
    double flops = double(kept) * 2.0 * double(info.spec.dModel) *
                   double(info.spec.dFF) * matrices;
    llvm::outs() << llvm::format(
        "BENCH {\"tokens\": %lld, \"runs\": %zu, \"compile_s\": %.4f, "
        "\"median_s\": %.6f, \"min_s\": %.6f, \"tokens_per_s\": %.1f, "
        "\"expert_gflop\": %.4f, \"expert_gflops\": %.2f}\n",
        (long long)tokens, times.size(), compileSeconds, median, times.front(),
        double(tokens) / median, flops * 1e-9, flops * 1e-9 / median);
  }

  // Statistics first: if either write fails, no output is left behind.
  if (!options.statsPath.empty())
    rt::writeTextFileAtomically(options.statsPath, rt::statsToJSON(stats));
  try {
    rt::writeNpy(options.outputPath, y);
  } catch (...) {
    if (!options.statsPath.empty())
      std::remove(options.statsPath.c_str());
    throw;
  }
  return 0;
}

} // namespace

int ::moe::runLayer(const RunOptions &options) {
  try {
    return run(options);
  } catch (const rt::Error &error) {
    llvm::errs() << error.what() << "\n";
    return 1;
  } catch (const std::exception &error) {
    llvm::errs() << "moe-run: error: " << error.what() << "\n";
    return 1;
  }
}
