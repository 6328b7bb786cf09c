//===- LLVMIRJIT.cpp - Run host code given as LLVM IR text ---------*- C++ -*-===//
//
// Loads the host code of a CUDA artifact with ORC's LLJIT: parse the IR,
// resolve the runtime's symbols, run the global constructors that load the
// embedded kernels, and call the layer's C-interface entry.
//
//===----------------------------------------------------------------------===//

#include "moe/Runner/HostJIT.h"

#include "moe/Runtime/LayerCall.h"
#include "llvm/ExecutionEngine/Orc/ExecutionUtils.h"
#include "llvm/ExecutionEngine/Orc/LLJIT.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IRReader/IRReader.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/TargetSelect.h"

using namespace mlir::moe;

struct LLVMIRExecutable::Impl {
  std::unique_ptr<llvm::orc::LLJIT> jit;
  void *entry = nullptr;
  size_t numArguments = 0;
};

LLVMIRExecutable::~LLVMIRExecutable() {
  // The destructors of the module (the kernel unloads) run with the JIT.
  if (impl && impl->jit)
    llvm::consumeError(impl->jit->deinitialize(impl->jit->getMainJITDylib()));
}

static llvm::Error loadError(llvm::StringRef source, const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 (source + ": error: " + what).str());
}

llvm::Expected<std::unique_ptr<LLVMIRExecutable>>
LLVMIRExecutable::load(llvm::StringRef ir, llvm::StringRef source,
                       llvm::StringRef entry, size_t numArguments,
                       llvm::ArrayRef<HostExecutable::Symbol> symbols) {
  if (numArguments < ::moe::runtime::kMinLayerArguments ||
      numArguments > ::moe::runtime::kMaxLayerArguments)
    return loadError(source, "a layer entry takes " +
                               llvm::Twine(::moe::runtime::kMinLayerArguments) +
                               " to " +
                               llvm::Twine(::moe::runtime::kMaxLayerArguments) +
                               " buffers, not " + llvm::Twine(numArguments));
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  auto context = std::make_unique<llvm::LLVMContext>();
  llvm::SMDiagnostic diagnostic;
  std::unique_ptr<llvm::Module> module = llvm::parseIR(
      llvm::MemoryBufferRef(ir, source), diagnostic, *context);
  if (!module)
    return loadError(source, "host_llvm_ir: line " +
                               llvm::Twine(diagnostic.getLineNo()) + ": " +
                               diagnostic.getMessage());
  auto jit = llvm::orc::LLJITBuilder().create();
  if (!jit)
    return jit.takeError();
  llvm::orc::JITDylib &main = (*jit)->getMainJITDylib();
  llvm::orc::SymbolMap map;
  llvm::orc::MangleAndInterner mangle((*jit)->getExecutionSession(),
                                      (*jit)->getDataLayout());
  for (const auto &[name, address] : symbols)
    map[mangle(name)] = {llvm::orc::ExecutorAddr::fromPtr(address),
                         llvm::JITSymbolFlags::Exported};
  if (llvm::Error err = main.define(llvm::orc::absoluteSymbols(map)))
    return err;
  char prefix = (*jit)->getDataLayout().getGlobalPrefix();
  auto utils = llvm::orc::DynamicLibrarySearchGenerator::Load(
      MOE_C_RUNNER_UTILS, prefix);
  if (!utils)
    return utils.takeError();
  main.addGenerator(std::move(*utils));
  auto process =
      llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(prefix);
  if (!process)
    return process.takeError();
  main.addGenerator(std::move(*process));
  if (llvm::Error err = (*jit)->addIRModule(llvm::orc::ThreadSafeModule(
          std::move(module), std::move(context))))
    return err;
  if (llvm::Error err = (*jit)->initialize(main))
    return err;
  auto address = (*jit)->lookup(entry);
  if (!address)
    return loadError(source, "the host code has no entry '" + entry + "': " +
                               llvm::toString(address.takeError()));
  std::unique_ptr<LLVMIRExecutable> exe(new LLVMIRExecutable());
  exe->impl = std::make_unique<Impl>();
  exe->impl->entry = address->toPtr<void *>();
  exe->impl->numArguments = numArguments;
  exe->impl->jit = std::move(*jit);
  return exe;
}

void LLVMIRExecutable::invoke(llvm::ArrayRef<void *> d) {
  // The count was checked against the entry when it was loaded.
  ::moe::runtime::callLayerEntry(impl->entry,
                               std::vector<void *>(d.begin(), d.end()));
}
