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

namespace {

/// An LLJIT whose main library resolves `symbols`, then `libraries`, then
/// the process.
llvm::Expected<std::unique_ptr<llvm::orc::LLJIT>>
makeJIT(llvm::ArrayRef<HostExecutable::Symbol> symbols,
        llvm::ArrayRef<const char *> libraries) {
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
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
  for (const char *library : libraries) {
    auto generator =
        llvm::orc::DynamicLibrarySearchGenerator::Load(library, prefix);
    if (!generator)
      return generator.takeError();
    main.addGenerator(std::move(*generator));
  }
  auto process =
      llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(prefix);
  if (!process)
    return process.takeError();
  main.addGenerator(std::move(*process));
  return jit;
}

llvm::Error checkArguments(llvm::StringRef source, size_t numArguments) {
  if (numArguments < ::moe::runtime::kMinLayerArguments ||
      numArguments > ::moe::runtime::kMaxLayerArguments)
    return loadError(source, "a layer entry takes " +
                               llvm::Twine(::moe::runtime::kMinLayerArguments) +
                               " to " +
                               llvm::Twine(::moe::runtime::kMaxLayerArguments) +
                               " buffers, not " + llvm::Twine(numArguments));
  return llvm::Error::success();
}

} // namespace

llvm::Expected<std::unique_ptr<LLVMIRExecutable>>
LLVMIRExecutable::finish(std::unique_ptr<llvm::orc::LLJIT> jit,
                         llvm::StringRef source, llvm::StringRef entry,
                         size_t numArguments) {
  if (llvm::Error err = jit->initialize(jit->getMainJITDylib()))
    return err;
  auto address = jit->lookup(entry);
  if (!address)
    return loadError(source, "the host code has no entry '" + entry + "': " +
                               llvm::toString(address.takeError()));
  std::unique_ptr<LLVMIRExecutable> exe(new LLVMIRExecutable());
  exe->impl = std::make_unique<Impl>();
  exe->impl->entry = address->toPtr<void *>();
  exe->impl->numArguments = numArguments;
  exe->impl->jit = std::move(jit);
  return exe;
}

llvm::Expected<std::unique_ptr<LLVMIRExecutable>>
LLVMIRExecutable::load(llvm::StringRef ir, llvm::StringRef source,
                       llvm::StringRef entry, size_t numArguments,
                       llvm::ArrayRef<HostExecutable::Symbol> symbols) {
  if (llvm::Error err = checkArguments(source, numArguments))
    return err;
  auto jit = makeJIT(symbols, {MOE_C_RUNNER_UTILS});
  if (!jit)
    return jit.takeError();
  auto context = std::make_unique<llvm::LLVMContext>();
  llvm::SMDiagnostic diagnostic;
  std::unique_ptr<llvm::Module> module = llvm::parseIR(
      llvm::MemoryBufferRef(ir, source), diagnostic, *context);
  if (!module)
    return loadError(source, "host_llvm_ir: line " +
                               llvm::Twine(diagnostic.getLineNo()) + ": " +
                               diagnostic.getMessage());
  if (llvm::Error err = (*jit)->addIRModule(llvm::orc::ThreadSafeModule(
          std::move(module), std::move(context))))
    return err;
  return finish(std::move(*jit), source, entry, numArguments);
}

llvm::Expected<std::unique_ptr<LLVMIRExecutable>>
LLVMIRExecutable::loadObject(std::unique_ptr<llvm::MemoryBuffer> object,
                             llvm::StringRef source, llvm::StringRef entry,
                             size_t numArguments,
                             llvm::ArrayRef<HostExecutable::Symbol> symbols) {
  if (llvm::Error err = checkArguments(source, numArguments))
    return err;
  auto jit = makeJIT(symbols, {MOE_C_RUNNER_UTILS, MOE_OPENMP_RUNTIME});
  if (!jit)
    return jit.takeError();
  if (llvm::Error err = (*jit)->addObjectFile(std::move(object)))
    return err;
  return finish(std::move(*jit), source, entry, numArguments);
}

void LLVMIRExecutable::invoke(llvm::ArrayRef<void *> d) {
  // The count was checked against the entry when it was loaded.
  ::moe::runtime::callLayerEntry(impl->entry,
                               std::vector<void *>(d.begin(), d.end()));
}
