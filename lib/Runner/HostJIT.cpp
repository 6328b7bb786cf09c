//===- HostJIT.cpp - Compile a moe module for the host and call it -*- C++
//-*-===//
//
// The host side of both back ends: moe-cpu-pipeline (or moe-gpu-pipeline,
// whose host code launches the embedded kernels) to the LLVM dialect, LLVM
// IR translation, and MLIR's ExecutionEngine at the requested optimisation
// level.
//
//===----------------------------------------------------------------------===//

#include "moe/Runner/HostJIT.h"
#include "moe/Conversion/Passes.h"
#include "moe/Transforms/Passes.h"

#include "mlir/InitAllPasses.h"

#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVM/NVVM/Target.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/OpenMP/OpenMPToLLVMIRTranslation.h"
#include "llvm/ExecutionEngine/Orc/Mangling.h"
#include "moe/Runtime/Error.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/TargetSelect.h"

using namespace mlir;
using namespace mlir::moe;

HostExecutable::~HostExecutable() = default;

std::string mlir::moe::formatDiagnostic(Diagnostic &diag) {
  std::string text;
  llvm::raw_string_ostream os(text);
  if (auto file = dyn_cast<FileLineColLoc>(diag.getLocation()))
    os << file.getFilename().getValue() << ":" << file.getLine() << ":"
       << file.getColumn() << ": ";
  os << "error: " << diag.str();
  return text;
}

/// Collects the diagnostics of a failing stage into one line.
static llvm::Error stageError(llvm::StringRef pipeline, llvm::StringRef stage,
                              llvm::StringRef detail) {
  std::string message = (pipeline + ": " + stage + " failed").str();
  if (!detail.empty())
    message += ": " + detail.str();
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

llvm::Expected<std::unique_ptr<HostExecutable>>
HostExecutable::compile(ModuleOp module, llvm::StringRef funcName,
                        unsigned optLevel, llvm::ArrayRef<Symbol> symbols,
                        const CpuPipelineOptions &cpu,
                        const GpuPipelineOptions *gpu, bool keepObject) {
  // The pipeline is parsed from text: its passes must be registered.
  static bool ready = [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    registerAllPasses();
    registerMoEPasses();
    registerMoEConversionPasses();
    return true;
  }();
  (void)ready;

  MLIRContext *context = module.getContext();
  llvm::StringRef pipeline = gpu ? "moe-gpu-pipeline" : "moe-cpu-pipeline";
  if (gpu) {
    // gpu-module-to-binary serializes through the NVVM target and the LLVM
    // IR translation of the kernel dialects.
    DialectRegistry registry;
    NVVM::registerNVVMTargetInterfaceExternalModels(registry);
    registerAllToLLVMIRTranslations(registry);
    context->appendDialectRegistry(registry);
  }
  // Every diagnostic of lowering and translation becomes part of one line.
  std::string diagnostics;
  ScopedDiagnosticHandler capture(context, [&](Diagnostic &diag) {
    if (diag.getSeverity() != DiagnosticSeverity::Error)
      return success();
    if (!diagnostics.empty())
      diagnostics += "; ";
    diagnostics += formatDiagnostic(diag);
    return success();
  });
  PassManager pm(context);
  std::string pipelineError;
  llvm::raw_string_ostream pipelineStream(pipelineError);
  std::string text = gpu ? gpuPipelineText(*gpu) : cpuPipelineText(cpu);
  if (failed(parsePassPipeline(text, pm, pipelineStream)))
    return stageError(pipeline, "pipeline construction", pipelineError);
  if (failed(pm.run(module)))
    return stageError(pipeline, "lowering", diagnostics);
  // Kernels only touch the buffers when the host code does not.
  bool hostAccess = !gpu || gpu->hostLoops || hostTouchesBuffers(module);
  // Which arguments take packed weights, read (and dropped) before the
  // translation to LLVM IR.
  std::vector<std::pair<unsigned, int64_t>> packed;
  module.walk([&](Operation *op) {
    auto attr = op->getAttrOfType<DenseI64ArrayAttr>(kPackedWeightsAttrName);
    if (!attr)
      return;
    auto name = op->getAttrOfType<StringAttr>(SymbolTable::getSymbolAttrName());
    ArrayRef<int64_t> pairs = attr.asArrayRef();
    if (name && name.getValue() == funcName)
      for (size_t i = 0; i + 1 < pairs.size(); i += 2)
        packed.emplace_back(unsigned(pairs[i]), pairs[i + 1]);
    op->removeAttr(kPackedWeightsAttrName);
  });

  registerBuiltinDialectTranslation(*context);
  registerLLVMDialectTranslation(*context);
  registerOpenMPDialectTranslation(*context);
  auto transformer = makeOptimizingTransformer(optLevel, /*sizeLevel=*/0,
                                               /*targetMachine=*/nullptr);
  ExecutionEngineOptions options;
  options.transformer = transformer;
  llvm::StringRef libraries[] = {MOE_C_RUNNER_UTILS, MOE_OPENMP_RUNTIME};
  options.sharedLibPaths = libraries;
  options.jitCodeGenOptLevel = static_cast<llvm::CodeGenOptLevel>(optLevel);
  options.enableObjectDump = keepObject;
  auto engine = ExecutionEngine::create(module, options);
  if (!engine) {
    std::string detail = llvm::toString(engine.takeError());
    if (!diagnostics.empty())
      detail = diagnostics + "; " + detail;
    return stageError(pipeline, "JIT compilation", detail);
  }

  if (!symbols.empty())
    (*engine)->registerSymbols([&](llvm::orc::MangleAndInterner interner) {
      llvm::orc::SymbolMap map;
      for (const auto &[name, address] : symbols)
        map[interner(name)] = {llvm::orc::ExecutorAddr::fromPtr(address),
                               llvm::JITSymbolFlags::Exported};
      return map;
    });
  // Global constructors (the kernel modules' loads) run now, with every
  // symbol resolvable.
  (*engine)->initialize();
  std::unique_ptr<HostExecutable> exe(new HostExecutable());
  exe->engine = std::move(*engine);
  exe->entry = ("_mlir_ciface_" + funcName).str();
  exe->packed = std::move(packed);
  exe->hostAccess = hostAccess;
  if (auto found = exe->engine->lookupPacked(exe->entry); !found)
    return stageError(pipeline, "symbol lookup",
                      llvm::toString(found.takeError()));
  return exe;
}

void HostExecutable::dumpObject(const std::string &path) {
  engine->dumpToObjectFile(path);
  if (!llvm::sys::fs::exists(path))
    throw ::moe::runtime::Error(path, "no object code to write");
}

llvm::Error HostExecutable::invoke(llvm::ArrayRef<void *> descriptors) {
  // The packed wrapper takes the address of each argument; each argument is
  // itself a pointer to a descriptor.
  llvm::SmallVector<void *> pointers(descriptors.begin(), descriptors.end());
  llvm::SmallVector<void *> packed;
  for (void *&p : pointers)
    packed.push_back(&p);
  return engine->invokePacked(entry, packed);
}
