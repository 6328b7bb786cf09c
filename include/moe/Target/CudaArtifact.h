//===- CudaArtifact.h - GPU code and the artifact that runs it ----*- C++ -*-===//
//
// Compiles a module holding a moe layer function with moe-gpu-pipeline and
// collects what a runtime needs: the kernels (cubin or PTX, per gpu.module),
// their launch geometry, the function's buffers, and the host code as LLVM
// IR (which launches the kernels through the `mgpu*` ABI). moe-translate
// writes it as PTX (`--moe-to-ptx`) or as a versioned JSON artifact
// (`--moe-to-cuda-artifact`) that `moe-run --artifact` loads.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TARGET_CUDAARTIFACT_H
#define MOE_TARGET_CUDAARTIFACT_H

#include "moe/Conversion/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LLVM.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mlir::moe {

/// The artifact format this build writes (and the runtime reads).
inline constexpr int kCudaArtifactVersion = 1;

/// One buffer of the layer function's C interface, in call order.
struct ArtifactBuffer {
  std::string name;  ///< input, router, w_in, w_gate, w_out, output, ...
  std::string role;  ///< "input" or "result"
  std::string dtype; ///< f32, bf16, f16, i64
  std::vector<int64_t> shape;
};

/// What a kernel does, counted statically on its IR (moe-translate
/// --moe-cost-report): every thread of every block runs its body once, with
/// each scf.for counted by its constant trip count and both sides of every
/// branch taken, so the FLOPs and requested bytes are upper bounds (blocks
/// that find no tile and padding rows are counted as working).
struct KernelCost {
  /// Tensor-core FLOPs (2 m n k per warp MMA) and other floating-point
  /// operations (an FMA counts 2).
  double tensorFlops = 0, otherFlops = 0;
  /// Global-memory bytes the loads, stores and atomics request (caches may
  /// serve repeated ones), and the bytes of the buffers the kernel takes
  /// (each read or written at least once: the compulsory traffic).
  double requestedBytes = 0, argumentBytes = 0;
  /// Dynamic shared memory per block.
  int64_t sharedBytes = 0;
  /// Some loop has a trip count that is not a constant (counted once).
  bool dynamicLoops = false;
};

/// One kernel launch of the host code; -1 where a size is not a constant.
struct KernelLaunch {
  std::string module;
  std::string kernel;
  std::array<int64_t, 3> grid{};
  std::array<int64_t, 3> block{};
  KernelCost cost;
};

/// What `ptxas -v` reports for one kernel module, the largest over its
/// kernels: registers per thread, spill stores and loads in bytes (-1
/// without the toolkit's ptxas).
struct PtxasFigures {
  int64_t registers = -1, spillStores = -1, spillLoads = -1;
};

/// The binary of one gpu.module.
struct KernelBinary {
  std::string module;
  std::string format; ///< "cubin", "ptx" or "fatbin"
  std::string data;
  PtxasFigures ptxas;
};

/// Runs `ptxas -v` of `toolkit` for `chip` on `ptx`; empty figures when
/// ptxas is not there or fails.
PtxasFigures runPtxas(const std::string &toolkit, const std::string &chip,
                      const std::string &ptx);

struct GpuProgram {
  GpuPipelineOptions options;
  std::string funcName;
  std::vector<ArtifactBuffer> buffers;
  /// Sizes of the layer (from the signature) and its capacity per group
  /// (absent for a dropless layer).
  int64_t dModel = 0, dFF = 0, numExperts = 0;
  bool gated = false;
  /// Spec §8 inputs of the layer: the score bias, the shared expert's width
  /// (0 = none) and its sigmoid gate.
  bool scoreBias = false, sharedGate = false;
  int64_t sharedDFF = 0;
  std::optional<int64_t> capacity;
  std::vector<KernelLaunch> launches;
  std::vector<KernelBinary> binaries;
  /// Whether the lowered host code reads or writes buffers itself
  /// (hostTouchesBuffers).
  bool hostAccess = true;
  /// The host code as LLVM IR text (filled when asked for).
  std::string hostLLVMIR;

  /// The binary of gpu.module `module`, or null.
  const KernelBinary *binaryFor(llvm::StringRef module) const;

  /// The layer's call signature, e.g. `moe_layer(f32[8x16],...)->(...)`:
  /// kept in the artifact and, as the string `moe_artifact_signature`, in
  /// the host code, so that a runner can tell host code of another layer.
  std::string signature() const;
};

/// Lowers `module` (in place) with moe-gpu-pipeline and fills a GpuProgram
/// for its public layer function. Errors are emitted as diagnostics.
FailureOr<GpuProgram> compileGpuProgram(ModuleOp module,
                                        const GpuPipelineOptions &options,
                                        bool withHostIR);

/// The JSON artifact (format "moe-cuda-artifact", version
/// kCudaArtifactVersion) of a compiled program.
std::string cudaArtifactJSON(const GpuProgram &program);

/// The static cost of kernel `kernel` launched by `launch` (see KernelCost).
KernelCost kernelCost(gpu::GPUFuncOp kernel, gpu::LaunchFuncOp launch);

/// Prints `--moe-cost-report`'s table for a program compiled to PTX: the
/// static cost of every launch, ptxas' registers and spills, the H100/H200
/// bounds.
void printCostReport(const GpuProgram &program, llvm::raw_ostream &os);

/// Registers `--moe-to-ptx`, `--moe-to-cuda-artifact` and
/// `--moe-cost-report` with moe-translate.
void registerGpuTranslations();

} // namespace mlir::moe

#endif // MOE_TARGET_CUDAARTIFACT_H
