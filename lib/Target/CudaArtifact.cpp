//===- CudaArtifact.cpp - GPU code and the artifact that runs it --*- C++ -*-===//
//
// compileGpuProgram runs the two halves of moe-gpu-pipeline, reading the
// kernel launches between them and the gpu.binary objects after; the
// translations print the PTX or write the JSON artifact.
//
//===----------------------------------------------------------------------===//

#include "moe/Target/CudaArtifact.h"
#include "moe/IR/MoEDialect.h"
#include "moe/IR/MoEOps.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVM/NVVM/Target.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "mlir/Tools/mlir-translate/Translation.h"
#include "llvm/IR/Constants.h"
#include "llvm/IR/GlobalVariable.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

#include <nlohmann/json.hpp>

#include <map>

using namespace mlir;
using namespace mlir::moe;

namespace {

std::string dtypeName(Type type) {
  if (type.isF32())
    return "f32";
  if (type.isBF16())
    return "bf16";
  if (type.isF16())
    return "f16";
  if (type.isInteger(64))
    return "i64";
  return "";
}

/// The module's layer function: its only public function with a body.
func::FuncOp findLayerFunction(ModuleOp module) {
  func::FuncOp found;
  for (auto func : module.getOps<func::FuncOp>()) {
    if (func.isPrivate() || func.isDeclaration())
      continue;
    if (found) {
      func.emitError("the GPU artifact holds one layer function, but @")
          << found.getName() << " and @" << func.getName()
          << " are both public";
      return {};
    }
    found = func;
  }
  if (!found)
    module.emitError("no public function with a body to compile for the GPU");
  return found;
}

/// The names of a layer function's inputs: from the `moe.layer` it wraps
/// when each argument is one of its operands (spec §8 inputs included), else
/// the plain layer's (input, router, w_in, [w_gate,] w_out).
static SmallVector<std::string> inputNames(func::FuncOp func) {
  unsigned numInputs = func.getNumArguments();
  LayerOp layer;
  func.walk([&](LayerOp op) { layer = op; });
  if (layer) {
    std::pair<Value, const char *> roles[] = {
        {layer.getInput(), "input"},         {layer.getRouter(), "router"},
        {layer.getScoreBias(), "score_bias"}, {layer.getWIn(), "w_in"},
        {layer.getWGate(), "w_gate"},        {layer.getWOut(), "w_out"},
        {layer.getSharedWIn(), "shared_w_in"},
        {layer.getSharedWGate(), "shared_w_gate"},
        {layer.getSharedWOut(), "shared_w_out"},
        {layer.getSharedGate(), "shared_gate"}};
    SmallVector<std::string> names;
    for (auto [value, name] : roles)
      if (value)
        names.push_back(name);
    bool inOrder = names.size() == numInputs;
    unsigned i = 0;
    for (auto [value, name] : roles)
      if (value && inOrder)
        inOrder = value == func.getArgument(i++);
    if (inOrder)
      return names;
  }
  if (numInputs == 4)
    return {"input", "router", "w_in", "w_out"};
  if (numInputs == 5)
    return {"input", "router", "w_in", "w_gate", "w_out"};
  return {};
}

/// Reads the buffers and sizes of a layer function (inputs as `inputNames`
/// says; results y, tokens_per_expert, dropped, two losses).
LogicalResult describeLayer(func::FuncOp func, GpuProgram &program) {
  FunctionType type = func.getFunctionType();
  static const char *const results[] = {"output", "tokens_per_expert",
                                        "dropped", "load_balance_loss",
                                        "router_z_loss"};
  SmallVector<std::string> names = inputNames(func);
  unsigned numInputs = type.getNumInputs();
  if (names.empty() || type.getNumResults() != 5)
    return func.emitError("a GPU layer function takes (input, router, "
                          "[score_bias,] w_in, [w_gate,] w_out, "
                          "[shared_w_in, [shared_w_gate,] shared_w_out, "
                          "[shared_gate]]) in the operand order of its "
                          "moe.layer and returns (output, "
                          "tokens_per_expert, dropped, load_balance_loss, "
                          "router_z_loss)");
  auto add = [&](Type t, StringRef name, const char *role) -> bool {
    auto tensor = dyn_cast<RankedTensorType>(t);
    if (!tensor || !tensor.hasStaticShape() ||
        dtypeName(tensor.getElementType()).empty())
      return false;
    ArrayRef<int64_t> shape = tensor.getShape();
    program.buffers.push_back({name.str(), role,
                               dtypeName(tensor.getElementType()),
                               std::vector<int64_t>(shape.begin(),
                                                    shape.end())});
    return true;
  };
  for (unsigned i = 0; i < numInputs; ++i)
    if (!add(type.getInput(i), names[i], "input"))
      return func.emitError("input #")
             << i << " must be a static tensor of f32, bf16 or f16";
  for (unsigned i = 0; i < 5; ++i)
    if (!add(type.getResult(i), results[i], "result"))
      return func.emitError("result #")
             << i << " must be a static tensor of f32, bf16, f16 or i64";
  auto named = [&](StringRef name) -> const ArtifactBuffer * {
    for (const ArtifactBuffer &b : program.buffers)
      if (b.name == name)
        return &b;
    return nullptr;
  };
  program.gated = named("w_gate") != nullptr;
  program.scoreBias = named("score_bias") != nullptr;
  program.sharedGate = named("shared_gate") != nullptr;
  if (const ArtifactBuffer *shared = named("shared_w_in"))
    program.sharedDFF = shared->shape.back();
  program.funcName = func.getName().str();
  program.dModel = program.buffers[0].shape.back();
  program.numExperts = program.buffers[1].shape.front();
  program.dFF = named("w_in")->shape.back();
  func.walk([&](Operation *op) {
    if (auto layer = dyn_cast<LayerOp>(op))
      program.capacity = layer.getCapacity();
    else if (auto assign = dyn_cast<AssignSlotsOp>(op))
      program.capacity = assign.getCapacity();
  });
  return success();
}

int64_t constantOr(Value v) {
  std::optional<int64_t> c = getConstantIntValue(v);
  return c ? *c : -1;
}

std::string formatName(gpu::CompilationTarget format) {
  switch (format) {
  case gpu::CompilationTarget::Binary:
    return "cubin";
  case gpu::CompilationTarget::Assembly:
    return "ptx";
  case gpu::CompilationTarget::Fatbin:
    return "fatbin";
  default:
    return "offload";
  }
}

LogicalResult runPipeline(ModuleOp module, const std::string &text) {
  PassManager pm(module.getContext());
  std::string error;
  llvm::raw_string_ostream os(error);
  if (failed(parsePassPipeline(text, pm, os)))
    return module.emitError("moe-gpu-pipeline: ") << error;
  return pm.run(module);
}

} // namespace

FailureOr<GpuProgram>
mlir::moe::compileGpuProgram(ModuleOp module, const GpuPipelineOptions &options,
                             bool withHostIR) {
  static bool registered = [] {
    registerAllPasses();
    registerMoEPasses();
    registerMoEConversionPasses();
    return true;
  }();
  (void)registered;
  MLIRContext *context = module.getContext();
  DialectRegistry registry;
  NVVM::registerNVVMTargetInterfaceExternalModels(registry);
  registerAllToLLVMIRTranslations(registry);
  context->appendDialectRegistry(registry);

  // The tensor-core kernels' shape flags: one located error naming the
  // flag and its choices.
  struct ShapeFlag {
    bool valid;
    const char *what, *flag, *choices;
    int64_t value;
  };
  for (const ShapeFlag &f :
       {ShapeFlag{isTileRowsChoice(options.tileRows), "tile rows",
                  "--gpu-tile-rows", "0, 64 or 128", options.tileRows},
        ShapeFlag{isStepDepthChoice(options.maxStepDepth), "reduction step",
                  "--gpu-max-step-depth", "32 or 64", options.maxStepDepth},
        ShapeFlag{isTileColsChoice(options.maxTileCols), "column tile",
                  "--gpu-max-tile-cols", "64 or 128", options.maxTileCols}})
    if (!f.valid)
      return emitError(module.getLoc(), "the tensor-core kernels' ")
                 << f.what << " (" << f.flag << ") must be " << f.choices
                 << ", not " << f.value,
             failure();
  GpuProgram program;
  program.options = options;
  func::FuncOp func = findLayerFunction(module);
  if (!func || failed(describeLayer(func, program)))
    return failure();

  if (failed(runPipeline(module, gpuKernelPipelineText(options))))
    return failure();
  module.walk([&](gpu::LaunchFuncOp launch) {
    KernelLaunch k;
    k.module = launch.getKernelModuleName().str();
    k.kernel = launch.getKernelName().str();
    gpu::KernelDim3 grid = launch.getGridSizeOperandValues();
    gpu::KernelDim3 block = launch.getBlockSizeOperandValues();
    k.grid = {constantOr(grid.x), constantOr(grid.y), constantOr(grid.z)};
    k.block = {constantOr(block.x), constantOr(block.y), constantOr(block.z)};
    if (auto kernel = SymbolTable::lookupNearestSymbolFrom<gpu::GPUFuncOp>(
            launch, launch.getKernel()))
      k.cost = kernelCost(kernel, launch);
    program.launches.push_back(k);
  });
  // ptxas -v's figures need PTX: for cubins, the kernel modules of a copy
  // are serialized to PTX as well.
  std::map<std::string, std::string> ptx;
  bool ptxas = llvm::sys::fs::can_execute(options.toolkit + "/bin/ptxas");
  if (ptxas && resolvedKernelFormat(options) != "isa") {
    OwningOpRef<ModuleOp> copy(cast<ModuleOp>(module->clone()));
    GpuPipelineOptions asPtx = options;
    asPtx.format = "isa";
    if (failed(runPipeline(*copy, gpuLoweringPipelineText(asPtx))))
      return failure();
    for (auto binary : copy->getOps<gpu::BinaryOp>())
      for (Attribute attr : binary.getObjects())
        if (auto object = dyn_cast<gpu::ObjectAttr>(attr))
          ptx[binary.getName().str()] = object.getObject().getValue().str();
  }
  if (failed(runPipeline(module, gpuLoweringPipelineText(options))))
    return failure();
  program.hostAccess = hostTouchesBuffers(module);
  for (auto binary : module.getOps<gpu::BinaryOp>())
    for (Attribute attr : binary.getObjects())
      if (auto object = dyn_cast<gpu::ObjectAttr>(attr)) {
        KernelBinary kernel{binary.getName().str(),
                            formatName(object.getFormat()),
                            object.getObject().getValue().str(),
                            {}};
        if (ptxas) {
          auto it = ptx.find(kernel.module);
          kernel.ptxas = runPtxas(
              options.toolkit, options.chip,
              kernel.format == "ptx" ? kernel.data
                                     : (it != ptx.end() ? it->second : ""));
        }
        program.binaries.push_back(std::move(kernel));
      }

  if (withHostIR) {
    llvm::LLVMContext llvmContext;
    std::unique_ptr<llvm::Module> host =
        translateModuleToLLVMIR(module, llvmContext, "moe_gpu_host");
    if (!host)
      return module.emitError("the host code cannot be translated to LLVM IR"),
             failure();
    llvm::Constant *text =
        llvm::ConstantDataArray::getString(llvmContext, program.signature());
    new llvm::GlobalVariable(*host, text->getType(), /*isConstant=*/true,
                             llvm::GlobalValue::ExternalLinkage, text,
                             "moe_artifact_signature");
    llvm::raw_string_ostream os(program.hostLLVMIR);
    host->print(os, nullptr);
  }
  return program;
}

const KernelBinary *GpuProgram::binaryFor(llvm::StringRef module) const {
  for (const KernelBinary &binary : binaries)
    if (binary.module == module)
      return &binary;
  return nullptr;
}

std::string GpuProgram::signature() const {
  std::string text = funcName + "(";
  bool results = false;
  for (size_t i = 0; i < buffers.size(); ++i) {
    const ArtifactBuffer &b = buffers[i];
    if (b.role == "result" && !results) {
      text += ")->(";
      results = true;
    } else if (i) {
      text += ",";
    }
    text += b.dtype + "[";
    for (size_t d = 0; d < b.shape.size(); ++d)
      text += (d ? "x" : "") + std::to_string(b.shape[d]);
    text += "]";
  }
  return text + ")";
}

std::string mlir::moe::cudaArtifactJSON(const GpuProgram &program) {
  nlohmann::ordered_json doc;
  doc["format"] = "moe-cuda-artifact";
  doc["version"] = kCudaArtifactVersion;
  doc["function"] = program.funcName;
  doc["entry"] = "_mlir_ciface_" + program.funcName;
  doc["signature"] = program.signature();
  doc["target"] = {{"chip", program.options.chip},
                   {"features", program.options.features},
                   {"kernel_format", program.binaries.empty()
                                         ? std::string("none")
                                         : program.binaries.front().format}};
  doc["layer"] = {{"d_model", program.dModel},
                  {"d_ff", program.dFF},
                  {"num_experts", program.numExperts},
                  {"gated", program.gated},
                  {"capacity", program.capacity
                                   ? nlohmann::ordered_json(*program.capacity)
                                   : nlohmann::ordered_json(nullptr)}};
  // Spec §8 inputs, written only when present (so that plain layers keep
  // the fields every reader of version 1 knows).
  if (program.scoreBias)
    doc["layer"]["score_bias"] = true;
  if (program.sharedDFF > 0)
    doc["layer"]["shared_d_ff"] = program.sharedDFF;
  if (program.sharedGate)
    doc["layer"]["shared_gate"] = true;
  nlohmann::ordered_json buffers = nlohmann::ordered_json::array();
  for (const ArtifactBuffer &b : program.buffers)
    buffers.push_back({{"name", b.name},
                       {"role", b.role},
                       {"dtype", b.dtype},
                       {"shape", b.shape}});
  doc["buffers"] = buffers;
  nlohmann::ordered_json kernels = nlohmann::ordered_json::array();
  for (const KernelLaunch &k : program.launches) {
    const KernelBinary *binary = program.binaryFor(k.module);
    size_t bytes = binary ? binary->data.size() : 0;
    const KernelCost &c = k.cost;
    // ptxas -v's figures; null without the toolkit.
    PtxasFigures figures = binary ? binary->ptxas : PtxasFigures();
    auto figure = [](int64_t v) {
      return v < 0 ? nlohmann::ordered_json() : nlohmann::ordered_json(v);
    };
    kernels.push_back({{"module", k.module},
                       {"kernel", k.kernel},
                       {"grid", k.grid},
                       {"block", k.block},
                       {"binary_bytes", bytes},
                       {"cost",
                        {{"tensor_flops", c.tensorFlops},
                         {"other_flops", c.otherFlops},
                         {"requested_bytes", c.requestedBytes},
                         {"compulsory_bytes", c.argumentBytes},
                         {"shared_bytes", c.sharedBytes},
                         {"dynamic_loops", c.dynamicLoops},
                         {"registers", figure(figures.registers)},
                         {"spill_store_bytes", figure(figures.spillStores)},
                         {"spill_load_bytes", figure(figures.spillLoads)}}}});
  }
  doc["kernels"] = kernels;
  doc["memory"] =
      program.hostAccess
          ? "managed: the host code reads or writes buffers itself; tokens, "
            "results and its allocations (_mlir_memref_to_llvm_alloc) live "
            "in CUDA managed memory"
          : "device: the host code only allocates, launches and frees; "
            "every buffer lives in device memory";
  doc["host_abi"] = {"mgpuModuleLoad", "mgpuModuleLoadJIT", "mgpuModuleUnload",
                     "mgpuModuleGetFunction", "mgpuLaunchKernel",
                     "mgpuStreamCreate", "mgpuStreamSynchronize",
                     "mgpuStreamDestroy", "_mlir_memref_to_llvm_alloc",
                     "_mlir_memref_to_llvm_free"};
  doc["host_llvm_ir"] = program.hostLLVMIR;
  return doc.dump(2) + "\n";
}

namespace {
llvm::cl::OptionCategory gpuCategory("moe GPU code options");
llvm::cl::opt<std::string> chipOpt("gpu-chip",
                                   llvm::cl::desc("NVIDIA chip (sm_90a)"),
                                   llvm::cl::init("sm_90a"),
                                   llvm::cl::cat(gpuCategory));
llvm::cl::opt<std::string> featuresOpt("gpu-features",
                                       llvm::cl::desc("PTX features (+ptx80)"),
                                       llvm::cl::init("+ptx80"),
                                       llvm::cl::cat(gpuCategory));
llvm::cl::opt<TensorCoreMma> mmaOpt(
    "gpu-mma",
    llvm::cl::desc("tensor-core MMA of the grouped matmul kernels"),
    llvm::cl::init(TensorCoreMma::Auto),
    llvm::cl::values(clEnumValN(TensorCoreMma::Auto, "auto",
                                "warpgroup on sm_90a, warp elsewhere"),
                     clEnumValN(TensorCoreMma::Warp, "warp",
                                "mma.sync (sm_80 and later)"),
                     clEnumValN(TensorCoreMma::Warpgroup, "warpgroup",
                                "wgmma.mma_async (sm_90a)")),
    llvm::cl::cat(gpuCategory));
llvm::cl::opt<int64_t> tileRowsOpt(
    "gpu-tile-rows",
    llvm::cl::desc("rows of the tensor-core kernels' block tiles: 64, 128, "
                   "or 0 (the default: 128 where the experts average at least "
                   "256 rows, else 64)"),
    llvm::cl::init(0), llvm::cl::cat(gpuCategory));
llvm::cl::opt<int64_t> maxStepDepthOpt(
    "gpu-max-step-depth",
    llvm::cl::desc("the k of the tensor-core kernels' reduction steps: 64 (the "
                   "default; 32 where K is no multiple of 64) or 32"),
    llvm::cl::init(64), llvm::cl::cat(gpuCategory));
llvm::cl::opt<int64_t> maxTileColsOpt(
    "gpu-max-tile-cols",
    llvm::cl::desc("the columns of the tensor-core kernels' block tiles with "
                   "one weight: 128 (the default; 64 where N is no multiple of "
                   "128) or 64"),
    llvm::cl::init(128), llvm::cl::cat(gpuCategory));
llvm::cl::opt<std::string> kernelFormatOpt(
    "kernel-format",
    llvm::cl::desc("--moe-to-cuda-artifact: bin (cubin through ptxas), isa "
                   "(PTX, compiled by the driver on load), or auto (the "
                   "default: bin where the toolkit's ptxas is, else isa)"),
    llvm::cl::init("auto"), llvm::cl::cat(gpuCategory));

void allDialects(DialectRegistry &registry) {
  registerAllDialects(registry);
  registerAllExtensions(registry);
  registry.insert<MoEDialect>();
}

/// The layer module `op` compiled with the --gpu-* flags into kernels of
/// `format`; errors are emitted as diagnostics.
FailureOr<GpuProgram> compileWithFlags(Operation *op, const std::string &format,
                                       bool withHostIR) {
  auto module = dyn_cast<ModuleOp>(op);
  if (!module)
    return op->emitError("expected a builtin.module"), failure();
  GpuPipelineOptions options;
  options.chip = chipOpt;
  options.features = featuresOpt;
  options.mma = mmaOpt;
  options.tileRows = tileRowsOpt;
  options.maxStepDepth = maxStepDepthOpt;
  options.maxTileCols = maxTileColsOpt;
  options.format = format;
  return compileGpuProgram(module, options, withHostIR);
}
} // namespace

void mlir::moe::registerGpuTranslations() {
  static TranslateFromMLIRRegistration toPTX(
      "moe-to-ptx",
      "Compile a moe layer module with moe-gpu-pipeline and print the PTX of "
      "every kernel module",
      [](Operation *op, llvm::raw_ostream &os) -> LogicalResult {
        FailureOr<GpuProgram> program =
            compileWithFlags(op, "isa", /*withHostIR=*/false);
        if (failed(program))
          return failure();
        for (const KernelBinary &binary : program->binaries)
          os << "// gpu.module @" << binary.module << " ("
             << program->options.chip << ")\n"
             << binary.data << "\n";
        return success();
      },
      allDialects);
  static TranslateFromMLIRRegistration toArtifact(
      "moe-to-cuda-artifact",
      "Compile a moe layer module with moe-gpu-pipeline into the JSON "
      "artifact that moe-run --artifact loads (kernels embedded in the host "
      "LLVM IR, buffers, launches)",
      [](Operation *op, llvm::raw_ostream &os) -> LogicalResult {
        if (kernelFormatOpt != "bin" && kernelFormatOpt != "isa" &&
            kernelFormatOpt != "auto")
          return op->emitError(
                     "--kernel-format must be bin, isa or auto, got '")
                 << kernelFormatOpt << "'";
        FailureOr<GpuProgram> program =
            compileWithFlags(op, kernelFormatOpt, /*withHostIR=*/true);
        if (failed(program))
          return failure();
        os << cudaArtifactJSON(*program);
        return success();
      },
      allDialects);
  static TranslateFromMLIRRegistration costReport(
      "moe-cost-report",
      "Compile a moe layer module with moe-gpu-pipeline and print the static "
      "cost of every kernel launch and the time bound on H100/H200",
      [](Operation *op, llvm::raw_ostream &os) -> LogicalResult {
        FailureOr<GpuProgram> program =
            compileWithFlags(op, "isa", /*withHostIR=*/false);
        if (failed(program))
          return failure();
        printCostReport(*program, os);
        return success();
      },
      allDialects);
}
