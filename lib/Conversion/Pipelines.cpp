//===- Pipelines.cpp - Named pass pipelines of the moe toolchain ----*- C++
//-*-===//
//
// `moe-cpu-pipeline`: from moe.layer to the LLVM dialect for the host CPU;
// `moe-gpu-pipeline`: from moe.layer to host LLVM code that launches NVVM
// kernels held in a gpu.binary. Each is one documented list of our passes
// and upstream ones.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/Support/FileSystem.h"

using namespace mlir;

/// The stages the CPU and GPU pipelines share: moe.layer to linalg on
/// tensors (with `fusion`, through the fused structure: sorted rows and
/// grouped matmuls; `kernels`, if given, lowers those and the router matmul
/// instead of convert-moe-to-linalg: the CPU vector kernels; `preLowering`
/// runs on the fused ops before convert-moe-to-linalg: the GPU tensor-core
/// kernels), then buffers with C-interface functions taking their results as
/// out-params.
static std::string frontPipelineText(bool fusion, bool checks,
                                     const std::string &kernels = "",
                                     const std::string &preLowering = "",
                                     bool parallelLoops = false) {
  std::string lowering = "convert-moe-to-linalg";
  if (!kernels.empty() || checks || parallelLoops)
    lowering += std::string("{") + (kernels.empty() ? "" : "cpu-kernels=1 ") +
                (parallelLoops ? "parallel-loops=1 " : "") +
                (checks ? "runtime-checks=1" : "") + "}";
  return std::string("canonicalize,"
                     "moe-decompose{packed-capacity=1},"
                     "canonicalize,") +
         (fusion ? "moe-fuse-experts," + preLowering : std::string()) +
         lowering + "," + kernels +
         "convert-elementwise-to-linalg,"
         "canonicalize,cse,";
}

/// With runtime checks, MLIR's checks of every memref access and cast once
/// the program is on buffers.
static std::string bufferizePipelineText(bool checks) {
  return std::string("func.func(llvm-request-c-wrappers),"
                     "one-shot-bufferize{bufferize-function-boundaries=1 "
                     "function-boundary-type-conversion=identity-layout-map},"
                     "buffer-results-to-out-params{modify-public-functions=1 "
                     "hoist-static-allocs=1},"
                     "buffer-deallocation-pipeline,") +
         (checks ? "generate-runtime-verification{verbose-level=0}," : "");
}

/// Failed checks call the runtime (before convert-cf-to-llvm lowers them).
static std::string reportChecksText(bool checks) {
  return checks ? "moe-lower-runtime-checks," : "";
}

std::string mlir::moe::cpuPipelineText(const CpuPipelineOptions &options) {
  // Each line is one stage; see the README for what each does.
  std::string threadCount = std::to_string(options.threads);
  bool checks = options.runtimeChecks;
  return frontPipelineText(
             options.fusion, checks,
             "moe-grouped-matmul-to-vector{threads=" + threadCount +
                 " vector-bits=" + std::to_string(options.vectorBits) +
                 " registers=" + std::to_string(options.registers) + "},") +
         "moe-vectorize-matmuls{threads=" + threadCount + "}," +
         "canonicalize," + bufferizePipelineText(checks) +
         "scf-forall-to-parallel,"
         "convert-scf-to-openmp" +
         (options.threads > 0 ? "{num-threads=" + threadCount + "},"
                              : std::string(",")) +
         "convert-vector-to-scf{full-unroll=1},"
         "convert-linalg-to-loops,"
         "canonicalize,"
         "convert-scf-to-cf,"
         "expand-strided-metadata,"
         "lower-affine,"
         "arith-expand{include-bf16=1},"
         // Math on vectors that has no LLVM intrinsic (erf) is unrolled to
         // libm calls through vector element ops: before the vector lowering.
         "convert-math-to-llvm,"
         "convert-math-to-libm,"
         "convert-vector-to-llvm,"
         "finalize-memref-to-llvm,"
         "convert-arith-to-llvm,"
         "convert-index-to-llvm," +
         reportChecksText(checks) +
         "convert-cf-to-llvm,"
         "convert-func-to-llvm,"
         "convert-openmp-to-llvm,"
         "convert-ub-to-llvm,"
         "reconcile-unrealized-casts";
}

std::string
mlir::moe::gpuKernelPipelineText(const GpuPipelineOptions &options) {
  // Tensor-core grouped matmuls: onto buffers before bufferization, the
  // kernels after the buffer passes.
  bool tensorCores = options.tensorCores && options.fusion;
  // The routing step as parallel loops: kernels of their own.
  return frontPipelineText(options.fusion, options.runtimeChecks, "",
                           tensorCores ? "moe-grouped-matmul-to-buffers," : "",
                           /*parallelLoops=*/true) +
         bufferizePipelineText(options.runtimeChecks) +
         "moe-place-rows-to-gpu{host-loops=" + (options.hostLoops ? "1" : "0") +
         "}," +
         (tensorCores
              ? std::string("moe-grouped-matmul-to-gpu{host-loops=") +
                    (options.hostLoops ? "1" : "0") +
                    " warpgroup=" + (options.warpgroupMma() ? "1" : "0") +
                    " tile-rows=" + std::to_string(options.tileRows) +
                    " max-step-depth=" + std::to_string(options.maxStepDepth) +
                    " max-tile-cols=" + std::to_string(options.maxTileCols) +
                    "},"
              : std::string()) +
         // Dense contractions (the router's logits): tiled kernels.
         "moe-contraction-to-gpu{host-loops=" +
         (options.hostLoops ? "1" : "0") + "}," +
         // Every linalg op becomes a parallel loop nest, tiled so that the
         // inner tile maps to the threads of a block and the tiles to blocks.
         "moe-copies-to-linalg,"
         // Reductions (the expert and router matmuls) accumulate in
         // registers; everything else becomes plain parallel loops.
         "func.func(linalg-generalize-named-ops),"
         "moe-reduction-loops,"
         "func.func(convert-linalg-to-parallel-loops,"
         "scf-parallel-loop-tiling{parallel-loop-tile-sizes=" +
         options.tile + " no-min-max-bounds=1}" +
         (options.hostLoops ? std::string(")")
                            : gpuMappingPipelineText(options));
}

std::string
mlir::moe::gpuMappingPipelineText(const GpuPipelineOptions &options) {
  std::string target = "chip=" + options.chip +
                       " features=" + options.features +
                       " O=" + std::to_string(options.optLevel);
  return ",gpu-map-parallel-loops{mapping-policy=" + options.mapping +
         "},"
         "convert-parallel-loops-to-gpu,"
         // What the host would still do with buffers: one-thread kernels.
         "moe-host-to-device),"
         "canonicalize,"
         // Constants and index math used in a launch move into its body, so
         // that kernels see their loop bounds and tile sizes as constants
         // (otherwise each becomes a kernel argument).
         "gpu-launch-sink-index-computations,"
         "gpu-kernel-outlining,"
         "nvvm-attach-target{" +
         target + "}";
}

std::string mlir::moe::resolvedKernelFormat(const GpuPipelineOptions &options) {
  if (options.format != "auto")
    return options.format;
  return llvm::sys::fs::exists(options.toolkit + "/bin/ptxas") ? "bin" : "isa";
}

/// The host's scalar code (loops, arith, math, memref, func) to the LLVM
/// dialect; `allocations` is the finalize-memref-to-llvm option text.
static std::string hostToLLVMText(const std::string &allocations, bool checks) {
  return "convert-scf-to-cf,"
         "expand-strided-metadata,"
         "lower-affine,"
         "arith-expand{include-bf16=1},"
         "convert-math-to-llvm,"
         "convert-math-to-libm,"
         "finalize-memref-to-llvm" +
         allocations +
         ","
         "convert-arith-to-llvm,"
         "convert-index-to-llvm," +
         reportChecksText(checks) +
         "convert-cf-to-llvm,"
         "convert-func-to-llvm,"
         "convert-ub-to-llvm,";
}

/// The kernel modules to NVVM (with checks, the kernels' loops become
/// blocks before their asserts do: the assert lowering splits blocks, which
/// an scf.for cannot hold).
static std::string kernelModulesText(const moe::GpuPipelineOptions &options) {
  return std::string("gpu.module(strip-debuginfo,moe-launch-bounds,") +
         (options.runtimeChecks ? "convert-scf-to-cf," : "") +
         "convert-gpu-to-nvvm,"
         // Ops without an LLVM intrinsic (wgmma) as inline PTX.
         "convert-nvvm-to-llvm,canonicalize,cse,"
         "reconcile-unrealized-casts)";
}

std::string
mlir::moe::gpuLoweringPipelineText(const GpuPipelineOptions &options) {
  if (options.hostLoops)
    // The tiled parallel loops run on the host, one after the other.
    return hostToLLVMText("", options.runtimeChecks) +
           "reconcile-unrealized-casts";
  // Kernels: to NVVM. Host: the buffers allocated first and freed last, so that
  // the launches form one asynchronous chain on one stream, waited for once at
  // the end.
  return "func.func(moe-hoist-buffers,gpu-async-region)," +
         kernelModulesText(options) + "," +
         // Host: loops to LLVM; allocations through the generic allocation
         // functions, which the CUDA runtime backs with managed memory that
         // both the host loops and the kernels can reach.
         hostToLLVMText("{use-generic-functions=1}", options.runtimeChecks) +
         "canonicalize,cse,"
         "gpu-to-llvm,"
         "gpu-module-to-binary{format=" +
         resolvedKernelFormat(options) + " toolkit=" + options.toolkit +
         "},"
         "reconcile-unrealized-casts";
}

std::string mlir::moe::gpuPipelineText(const GpuPipelineOptions &options) {
  return gpuKernelPipelineText(options) + "," +
         gpuLoweringPipelineText(options);
}

bool mlir::moe::hostTouchesBuffers(ModuleOp lowered) {
  bool touches = false;
  lowered.walk([&](Operation *op) {
    if (isa<gpu::GPUModuleOp>(op))
      return WalkResult::skip();
    // The C-interface wrapper loads the memref descriptors (structs) its
    // caller passes: host memory, not a buffer.
    if (auto load = dyn_cast<LLVM::LoadOp>(op))
      touches |= !isa<LLVM::LLVMStructType>(load.getType());
    else if (auto store = dyn_cast<LLVM::StoreOp>(op))
      touches |= !isa<LLVM::LLVMStructType>(store.getValue().getType());
    else if (isa<LLVM::AtomicRMWOp, LLVM::AtomicCmpXchgOp, LLVM::MemcpyOp,
                 LLVM::MemmoveOp, LLVM::MemsetOp>(op))
      touches = true;
    if (auto call = dyn_cast<LLVM::CallOp>(op)) {
      // Functions of the module itself are walked too.
      std::optional<StringRef> callee = call.getCallee();
      auto defined =
          callee ? lowered.lookupSymbol<LLVM::LLVMFuncOp>(*callee) : nullptr;
      if (!callee || !((defined && !defined.isExternal()) ||
                       callee->starts_with("_mlir_memref_to_llvm_") ||
                       callee->starts_with("mgpu")))
        touches = true;
    }
    return touches ? WalkResult::interrupt() : WalkResult::advance();
  });
  return touches;
}

LogicalResult mlir::moe::buildGpuPipeline(OpPassManager &pm,
                                          const GpuPipelineOptions &options) {
  return parsePassPipeline(gpuPipelineText(options), pm, llvm::errs());
}

LogicalResult mlir::moe::buildCpuPipeline(OpPassManager &pm,
                                          const CpuPipelineOptions &options) {
  return parsePassPipeline(cpuPipelineText(options), pm, llvm::errs());
}

namespace {
const char *const kRuntimeChecksHelp =
    "check expert ids, slots, rows and every memref access at run time; a "
    "failed check ends the program with one error line naming the op";

struct CpuPipelineCLOptions : public PassPipelineOptions<CpuPipelineCLOptions> {
  Option<int64_t> threads{
      *this, "threads",
      llvm::cl::desc("threads of the kernels (0: the OpenMP runtime's "
                     "default, 1: sequential code)"),
      llvm::cl::init(0)};
  Option<bool> fusion{
      *this, "fusion",
      llvm::cl::desc("fuse dispatch, expert MLPs and combine into grouped "
                     "matmuls (moe-fuse-experts) lowered to vector kernels"),
      llvm::cl::init(true)};
  Option<int64_t> vectorBits{
      *this, "vector-bits",
      llvm::cl::desc("vector width of the CPU kernels in bits (0: the "
                     "host's)"),
      llvm::cl::init(0)};
  Option<int64_t> registers{
      *this, "registers",
      llvm::cl::desc("vector registers of the CPU kernels (0: the host's)"),
      llvm::cl::init(0)};
  Option<bool> runtimeChecks{*this, "runtime-checks",
                             llvm::cl::desc(kRuntimeChecksHelp),
                             llvm::cl::init(false)};
};

struct GpuPipelineCLOptions : public PassPipelineOptions<GpuPipelineCLOptions> {
  Option<std::string> chip{*this, "chip",
                           llvm::cl::desc("NVIDIA chip of the kernels"),
                           llvm::cl::init("sm_90a")};
  Option<std::string> features{*this, "features",
                               llvm::cl::desc("PTX features"),
                               llvm::cl::init("+ptx80")};
  Option<std::string> format{
      *this, "format",
      llvm::cl::desc("kernel format: bin (cubin, through ptxas), isa (PTX "
                     "text, JIT-compiled by the driver), fatbin, or auto "
                     "(bin where the toolkit's ptxas is, else isa)"),
      llvm::cl::init("auto")};
  Option<std::string> toolkit{*this, "toolkit",
                              llvm::cl::desc("CUDA toolkit (ptxas, libdevice)"),
                              llvm::cl::init("/usr/local/cuda")};
  Option<std::string> tile{
      *this, "tile",
      llvm::cl::desc("tile sizes of the parallel loops, outermost first "
                     "(the threads of a block), comma separated"),
      llvm::cl::init("8,32")};
  Option<std::string> mapping{
      *this, "mapping",
      llvm::cl::desc("which loop goes to thread x: innermost-first (the "
                     "contiguous dimension, coalesced) or outermost-first"),
      llvm::cl::init("innermost-first")};
  Option<bool> hostLoops{
      *this, "host-loops",
      llvm::cl::desc("stop before the loops become kernels and lower them "
                     "for the host (checks the GPU program without a GPU)"),
      llvm::cl::init(false)};
  Option<bool> fusion{
      *this, "fusion",
      llvm::cl::desc("fuse dispatch, expert MLPs and combine into grouped "
                     "matmuls (moe-fuse-experts)"),
      llvm::cl::init(true)};
  Option<bool> tensorCores{
      *this, "tensor-cores",
      llvm::cl::desc("grouped matmuls with bf16/f16 weights as tensor-core "
                     "kernels (moe-grouped-matmul-to-gpu; needs fusion)"),
      llvm::cl::init(true)};
  Option<moe::TensorCoreMma> mma{
      *this, "mma",
      llvm::cl::desc("tensor-core MMA of the grouped matmul kernels"),
      llvm::cl::init(moe::TensorCoreMma::Auto),
      llvm::cl::values(
          clEnumValN(moe::TensorCoreMma::Auto, "auto",
                     "warpgroup on sm_90a, warp elsewhere"),
          clEnumValN(moe::TensorCoreMma::Warp, "warp", "mma.sync (sm_80+)"),
          clEnumValN(moe::TensorCoreMma::Warpgroup, "warpgroup",
                     "wgmma.mma_async (sm_90a)"))};
  Option<int64_t> tileRows{
      *this, "tile-rows",
      llvm::cl::desc("rows of the tensor-core kernels' block tiles: 64, 128, "
                     "or 0 (128 where the experts average at least 256 rows, "
                     "else 64)"),
      llvm::cl::init(0)};
  Option<int64_t> maxStepDepth{
      *this, "max-step-depth",
      llvm::cl::desc("the k of the tensor-core kernels' reduction steps: 64 "
                     "(where K is a multiple of 64, else 32) or 32"),
      llvm::cl::init(64)};
  Option<int64_t> maxTileCols{
      *this, "max-tile-cols",
      llvm::cl::desc("the columns of the tensor-core kernels' block tiles with "
                     "one weight: 128 (where N is a multiple of 128, else 64) "
                     "or 64"),
      llvm::cl::init(128)};
  Option<int> optLevel{*this, "opt-level",
                       llvm::cl::desc("kernel optimisation level"),
                       llvm::cl::init(3)};
  Option<bool> runtimeChecks{*this, "runtime-checks",
                             llvm::cl::desc(kRuntimeChecksHelp),
                             llvm::cl::init(false)};
};
} // namespace

void mlir::moe::registerMoEPipelines() {
  PassPipelineRegistration<GpuPipelineCLOptions>(
      "moe-gpu-pipeline",
      "Lower moe.layer (or the decomposed moe ops) to host LLVM code that "
      "launches NVVM kernels embedded as a gpu.binary (cubin or PTX); "
      "allocations go through _mlir_memref_to_llvm_alloc",
      [](OpPassManager &pm, const GpuPipelineCLOptions &cl) {
        GpuPipelineOptions options;
        options.chip = cl.chip;
        options.features = cl.features;
        options.format = cl.format;
        options.toolkit = cl.toolkit;
        options.tile = cl.tile;
        options.mapping = cl.mapping;
        options.hostLoops = cl.hostLoops;
        options.optLevel = cl.optLevel;
        options.fusion = cl.fusion;
        options.tensorCores = cl.tensorCores;
        options.mma = cl.mma;
        options.tileRows = cl.tileRows;
        options.maxStepDepth = cl.maxStepDepth;
        options.maxTileCols = cl.maxTileCols;
        options.runtimeChecks = cl.runtimeChecks;
        if (failed(buildGpuPipeline(pm, options)))
          llvm::report_fatal_error("moe-gpu-pipeline: invalid pipeline text");
      });
  PassPipelineRegistration<CpuPipelineCLOptions>(
      "moe-cpu-pipeline",
      "Lower moe.layer (or the decomposed moe ops) to the LLVM dialect for "
      "the host CPU, with C-interface functions taking results as out-params",
      [](OpPassManager &pm, const CpuPipelineCLOptions &cl) {
        CpuPipelineOptions options;
        options.threads = cl.threads;
        options.fusion = cl.fusion;
        options.vectorBits = cl.vectorBits;
        options.registers = cl.registers;
        options.runtimeChecks = cl.runtimeChecks;
        if (failed(buildCpuPipeline(pm, options)))
          llvm::report_fatal_error("moe-cpu-pipeline: invalid pipeline text");
      });
}
