//===- HostJIT.h - Compile a moe module for the host and call it -*- C++
//-*-===//
//
// Lowers a module holding a moe layer function through `moe-cpu-pipeline`
// (or `moe-gpu-pipeline`) and JIT-compiles its host code with MLIR's ExecutionEngine. The compiled function is
// called with memref descriptors built by the runtime (moe/Runtime), which
// itself knows nothing of MLIR.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNNER_HOSTJIT_H
#define MOE_RUNNER_HOSTJIT_H

#include "moe/Conversion/PipelineOptions.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace llvm {
class MemoryBuffer;
namespace orc {
class LLJIT;
} // namespace orc
} // namespace llvm

namespace mlir {
class Diagnostic;
class ExecutionEngine;
namespace moe {

/// One diagnostic as a single `file:line:col: error: message` line (the
/// location part only when the diagnostic has a file location).
std::string formatDiagnostic(Diagnostic &diag);

/// A layer function compiled to native code for this machine.
class HostExecutable {
public:
  ~HostExecutable();

  /// A symbol the compiled code may call, with its address in this process.
  using Symbol = std::pair<std::string, void *>;

  /// Runs the CPU pipeline on `module` (in place) and JIT-compiles the
  /// function `funcName`. `optLevel` is LLVM's 0-3; `symbols` are resolved
  /// before the process's own (the runtime's collective entry points);
  /// `cpu` says how the CPU pipeline runs (threads, fusion, runtime checks).
  /// With `gpu`, the GPU pipeline replaces the CPU one: `symbols` must then
  /// provide the `mgpu*` ABI and the `_mlir_memref_to_llvm_*` allocation
  /// functions, and the kernel modules are loaded before this returns.
  static llvm::Expected<std::unique_ptr<HostExecutable>>
  compile(ModuleOp module, llvm::StringRef funcName, unsigned optLevel = 3,
          llvm::ArrayRef<Symbol> symbols = {},
          const CpuPipelineOptions &cpu = {},
          const GpuPipelineOptions *gpu = nullptr, bool keepObject = false);

  /// Writes the object code to `path` (compiled with `keepObject`); throws
  /// runtime::Error when there is none.
  void dumpObject(const std::string &path);

  /// The C-interface entry: `_mlir_ciface_<function>`.
  const std::string &entryName() const { return entry; }

  /// Calls the function. `descriptors[i]` points at the memref descriptor of
  /// argument i: inputs first, then the out-params for the results, in the
  /// function's order.
  llvm::Error invoke(llvm::ArrayRef<void *> descriptors);

  /// The arguments the compiled function takes in the panel layout of
  /// `moe-grouped-matmul-to-vector` (its `moe.packed_weights` attribute):
  /// (argument index, panel width) pairs; the caller packs those weights
  /// once with runtime::HostTensor::packPanels.
  const std::vector<std::pair<unsigned, int64_t>> &packedWeights() const {
    return packed;
  }

  /// Whether the host code reads or writes buffers itself (always on the
  /// CPU; on the GPU, see mlir::moe::hostTouchesBuffers): when it does not,
  /// a GPU call keeps every buffer in device memory.
  bool touchesBuffersOnHost() const { return hostAccess; }

private:
  HostExecutable() = default;
  std::unique_ptr<ExecutionEngine> engine;
  bool hostAccess = true;
  std::string entry;
  std::vector<std::pair<unsigned, int64_t>> packed;
};

/// Host code given as LLVM IR text (the `host_llvm_ir` of a CUDA artifact),
/// JIT-compiled with LLVM's ORC LLJIT; no MLIR is involved.
class LLVMIRExecutable {
public:
  ~LLVMIRExecutable();

  /// Compiles `ir`, resolving `symbols` first, then MLIR's C runner utils
  /// and the process; runs the module's global constructors (the kernel
  /// loads); finds `entry`, a C-interface function of `numArguments`
  /// pointer arguments.
  static llvm::Expected<std::unique_ptr<LLVMIRExecutable>>
  load(llvm::StringRef ir, llvm::StringRef source, llvm::StringRef entry,
       size_t numArguments, llvm::ArrayRef<HostExecutable::Symbol> symbols);

  /// Object code the JIT produced (a compiled-code cache entry): linked
  /// against `symbols`, MLIR's C runner utils, the OpenMP runtime and the
  /// process; `entry` as for load().
  static llvm::Expected<std::unique_ptr<LLVMIRExecutable>>
  loadObject(std::unique_ptr<llvm::MemoryBuffer> object, llvm::StringRef source,
             llvm::StringRef entry, size_t numArguments,
             llvm::ArrayRef<HostExecutable::Symbol> symbols);

  /// Calls the entry with one memref descriptor pointer per argument.
  void invoke(llvm::ArrayRef<void *> descriptors);

private:
  LLVMIRExecutable() = default;
  /// Runs the global constructors and finds the entry.
  static llvm::Expected<std::unique_ptr<LLVMIRExecutable>>
  finish(std::unique_ptr<llvm::orc::LLJIT> jit, llvm::StringRef source,
         llvm::StringRef entry, size_t numArguments);
  struct Impl;
  std::unique_ptr<Impl> impl;
};

} // namespace moe
} // namespace mlir

#endif // MOE_RUNNER_HOSTJIT_H
