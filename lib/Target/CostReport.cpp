//===- CostReport.cpp - Static cost of the GPU kernels --------------------===//
//
// kernelCost counts, on an outlined kernel's IR, the floating-point
// operations (tensor-core MMAs apart) and the global-memory bytes of one
// launch; printCostReport (`moe-translate --moe-cost-report`) prints them
// per kernel with the
// shared memory, ptxas' register and spill figures, and the time each kernel
// cannot beat on an H100 SXM and an H200 SXM (their published dense peak
// rates and memory bandwidths).
//
//===----------------------------------------------------------------------===//

#include "moe/Target/CudaArtifact.h"

#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/Regex.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace mlir::moe;

namespace {

/// Lanes of a scalar or vector value type.
double lanes(Type type) {
  if (auto vec = dyn_cast<VectorType>(type))
    return vec.getNumElements();
  return 1;
}

double bytesOf(Type type) {
  Type elt = getElementTypeOrSelf(type);
  int64_t bits = elt.isIndex() ? 64 : elt.getIntOrFloatBitWidth();
  return lanes(type) * double((bits + 7) / 8);
}

bool isGlobal(Value memref) {
  auto type = cast<MemRefType>(memref.getType());
  auto space = dyn_cast_or_null<gpu::AddressSpaceAttr>(type.getMemorySpace());
  return !space || space.getValue() == gpu::AddressSpace::Global;
}

/// Adds one execution of `op` (not its regions), `weight` times.
void countOp(Operation &op, double weight, KernelCost &cost) {
  if (isa<NVVM::MmaOp>(op)) {
    // A warp-wide m16n8k16 MMA: 2 m n k FLOPs over the 32 lanes.
    cost.tensorFlops += weight * 2 * 16 * 8 * 16 / 32.0;
    return;
  }
  if (auto mma = dyn_cast<NVVM::WgmmaMmaAsyncOp>(op)) {
    // A warpgroup-wide m64nNk16 MMA: 2 m n k FLOPs over the 128 threads.
    NVVM::MMAShapeAttr shape = mma.getShape();
    cost.tensorFlops +=
        weight * 2.0 * shape.getM() * shape.getN() * shape.getK() / 128.0;
    return;
  }
  if (isa<arith::AddFOp, arith::SubFOp, arith::MulFOp, arith::DivFOp,
          arith::MaximumFOp, arith::MinimumFOp, arith::MaxNumFOp,
          arith::MinNumFOp>(op) ||
      (isa<math::MathDialect>(op.getDialect()) && !isa<math::FmaOp>(op))) {
    if (op.getNumResults() == 1 &&
        isa<FloatType>(getElementTypeOrSelf(op.getResult(0).getType())))
      cost.otherFlops += weight * lanes(op.getResult(0).getType());
    return;
  }
  if (isa<math::FmaOp, vector::FMAOp>(op)) {
    cost.otherFlops += 2 * weight * lanes(op.getResult(0).getType());
    return;
  }
  if (auto copy = dyn_cast<NVVM::CpAsyncOp>(op)) {
    // A global-to-shared copy of `size` bytes (a zero-filling one counted
    // as a full one).
    cost.requestedBytes += weight * copy.getSize();
  } else if (auto load = dyn_cast<memref::LoadOp>(op)) {
    if (isGlobal(load.getMemRef()))
      cost.requestedBytes += weight * bytesOf(load.getType());
  } else if (auto store = dyn_cast<memref::StoreOp>(op)) {
    if (isGlobal(store.getMemRef()))
      cost.requestedBytes += weight * bytesOf(store.getValue().getType());
  } else if (auto atomic = dyn_cast<memref::AtomicRMWOp>(op)) {
    // Read, then write.
    if (isGlobal(atomic.getMemref()))
      cost.requestedBytes += 2 * weight * bytesOf(atomic.getValue().getType());
  } else if (auto load = dyn_cast<vector::LoadOp>(op)) {
    if (isGlobal(load.getBase()))
      cost.requestedBytes += weight * bytesOf(load.getType());
  } else if (auto store = dyn_cast<vector::StoreOp>(op)) {
    if (isGlobal(store.getBase()))
      cost.requestedBytes +=
          weight * bytesOf(store.getValueToStore().getType());
  }
}

/// Trip count of one loop dimension, or nullopt when not a constant.
std::optional<int64_t> trips(Value lo, Value hi, Value step) {
  auto l = getConstantIntValue(lo), h = getConstantIntValue(hi),
       s = getConstantIntValue(step);
  if (!l || !h || !s || *s <= 0)
    return std::nullopt;
  return std::max<int64_t>(0, (*h - *l + *s - 1) / *s);
}

void countRegion(Region &region, double weight, KernelCost &cost) {
  for (Block &block : region)
    for (Operation &op : block) {
      countOp(op, weight, cost);
      double inner = weight;
      auto scale = [&](Value lo, Value hi, Value step) {
        if (std::optional<int64_t> n = trips(lo, hi, step))
          inner *= double(*n);
        else
          cost.dynamicLoops = true;
      };
      if (auto loop = dyn_cast<scf::ForOp>(op))
        scale(loop.getLowerBound(), loop.getUpperBound(), loop.getStep());
      else if (auto loop = dyn_cast<scf::ParallelOp>(op))
        for (auto [lo, hi, step] : llvm::zip(
                 loop.getLowerBound(), loop.getUpperBound(), loop.getStep()))
          scale(lo, hi, step);
      for (Region &nested : op.getRegions())
        countRegion(nested, inner, cost);
    }
}

} // namespace

KernelCost mlir::moe::kernelCost(gpu::GPUFuncOp kernel,
                                 gpu::LaunchFuncOp launch) {
  KernelCost cost;
  countRegion(kernel.getBody(), 1, cost);
  double threads = 1;
  gpu::KernelDim3 grid = launch.getGridSizeOperandValues();
  gpu::KernelDim3 block = launch.getBlockSizeOperandValues();
  for (Value size : {grid.x, grid.y, grid.z, block.x, block.y, block.z}) {
    if (std::optional<int64_t> n = getConstantIntValue(size))
      threads *= double(*n);
    else
      cost.dynamicLoops = true;
  }
  cost.tensorFlops *= threads;
  cost.otherFlops *= threads;
  cost.requestedBytes *= threads;
  for (BlockArgument arg : kernel.getArguments())
    if (auto type = dyn_cast<MemRefType>(arg.getType());
        type && type.hasStaticShape())
      cost.argumentBytes +=
          double(type.getNumElements()) * bytesOf(type.getElementType());
  if (Value shared = launch.getDynamicSharedMemorySize())
    cost.sharedBytes = getConstantIntValue(shared).value_or(0);
  return cost;
}

namespace {

/// Published dense peak rates: H100 SXM5 and H200 SXM (same SMs and clocks;
/// HBM3 3.35 TB/s, HBM3e 4.8 TB/s).
struct Machine {
  const char *name;
  double tensorFlops, otherFlops, bytesPerSecond;
};
constexpr Machine kMachines[] = {{"H100", 989.4e12, 66.9e12, 3.35e12},
                                 {"H200", 989.4e12, 66.9e12, 4.8e12}};

/// The bound of one kernel on `m`, in seconds: its FLOPs at the peak rates
/// or its compulsory bytes at the memory bandwidth, whichever is longer.
double boundSeconds(const KernelCost &c, const Machine &m) {
  return std::max(c.tensorFlops / m.tensorFlops + c.otherFlops / m.otherFlops,
                  c.argumentBytes / m.bytesPerSecond);
}

std::string dims(const std::array<int64_t, 3> &d) {
  auto one = [](int64_t v) {
    return v < 0 ? std::string("?") : std::to_string(v);
  };
  return one(d[0]) + "x" + one(d[1]) + "x" + one(d[2]);
}

} // namespace

PtxasFigures mlir::moe::runPtxas(const std::string &toolkit,
                                 const std::string &chip,
                                 const std::string &ptx) {
  PtxasFigures figures;
  std::string ptxas = toolkit + "/bin/ptxas";
  if (ptx.empty() || !llvm::sys::fs::can_execute(ptxas))
    return figures;
  llvm::SmallString<128> source, cubin, log;
  if (llvm::sys::fs::createTemporaryFile("moe-ptxas", "ptx", source) ||
      llvm::sys::fs::createTemporaryFile("moe-ptxas", "cubin", cubin) ||
      llvm::sys::fs::createTemporaryFile("moe-ptxas", "log", log))
    return figures;
  llvm::FileRemover removeSource(source), removeCubin(cubin), removeLog(log);
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(source, ec);
    if (ec)
      return figures;
    os << ptx;
  }
  std::string arch = "-arch=" + chip;
  llvm::StringRef args[] = {ptxas, "-v", arch, source, "-o", cubin};
  std::optional<llvm::StringRef> redirects[] = {std::nullopt, log, log};
  if (llvm::sys::ExecuteAndWait(ptxas, args, std::nullopt, redirects) != 0)
    return figures;
  auto text = llvm::MemoryBuffer::getFile(log);
  if (!text)
    return figures;
  // The largest figures over the module's kernels.
  auto most = [&](const char *pattern) {
    int64_t best = -1;
    llvm::StringRef rest = (*text)->getBuffer();
    llvm::SmallVector<llvm::StringRef> match;
    llvm::Regex regex(pattern);
    while (regex.match(rest, &match)) {
      int64_t v = 0;
      if (!match[1].getAsInteger(10, v))
        best = std::max(best, v);
      rest = rest.substr(match[0].data() - rest.data() + match[0].size());
    }
    return best;
  };
  figures.registers = most("Used ([0-9]+) registers");
  figures.spillStores = most("([0-9]+) bytes spill stores");
  figures.spillLoads = most("([0-9]+) bytes spill loads");
  return figures;
}

void mlir::moe::printCostReport(const GpuProgram &program,
                                llvm::raw_ostream &os) {
  const GpuPipelineOptions &options = program.options;
  os << "# moe-cost-report: " << program.funcName << " on " << options.chip
     << ", " << program.launches.size() << " kernel launches\n"
     << "# per launch: tensor-core FLOPs, other FLOPs (every block and "
        "branch counted: upper bounds), requested and compulsory global "
        "bytes, dynamic shared memory per block, ptxas registers and spill "
        "bytes (stores/loads), and the time the launch cannot beat: "
        "max(FLOPs at peak, compulsory bytes at the memory bandwidth)\n"
     << "# peaks: H100 SXM / H200 SXM dense bf16 tensor 989.4 TFLOP/s, f32 "
        "66.9 TFLOP/s, HBM 3.35 / 4.8 TB/s\n";
  os << llvm::format("%-22s %-12s %-9s %11s %11s %11s %11s %6s %5s %7s "
                     "%10s %10s\n",
                     "kernel", "grid", "block", "tensor-FLOP", "other-FLOP",
                     "req-bytes", "min-bytes", "smem", "regs", "spills",
                     "H100-us", "H200-us");
  double total[2] = {0, 0};
  double tensor = 0, other = 0, bytes = 0;
  for (const KernelLaunch &launch : program.launches) {
    const KernelBinary *binary = program.binaryFor(launch.module);
    PtxasFigures figures = binary ? binary->ptxas : PtxasFigures();
    auto figure = [](int64_t v) {
      return v < 0 ? std::string("-") : std::to_string(v);
    };
    std::string registers = figure(figures.registers);
    std::string spills =
        figures.spillStores >= 0 && figures.spillLoads >= 0
            ? figure(figures.spillStores) + "/" + figure(figures.spillLoads)
            : std::string("-");
    const KernelCost &c = launch.cost;
    double us[2];
    for (int m = 0; m < 2; ++m) {
      us[m] = boundSeconds(c, kMachines[m]) * 1e6;
      total[m] += us[m];
    }
    tensor += c.tensorFlops;
    other += c.otherFlops;
    bytes += c.argumentBytes;
    os << llvm::format("%-22s %-12s %-9s %11.3g %11.3g %11.3g %11.3g %6lld "
                       "%5s %7s %10.2f %10.2f%s\n",
                       launch.module.c_str(), dims(launch.grid).c_str(),
                       dims(launch.block).c_str(), c.tensorFlops, c.otherFlops,
                       c.requestedBytes, c.argumentBytes,
                       (long long)c.sharedBytes, registers.c_str(),
                       spills.c_str(), us[0], us[1],
                       c.dynamicLoops ? "  (a loop with a dynamic trip count "
                                        "is counted once)"
                                      : "");
  }
  os << llvm::format("total: tensor-FLOP %.4g, other-FLOP %.4g, compulsory "
                     "bytes %.4g; kernels' bound %.1f us on H100, %.1f us on "
                     "H200 (launch latency not included)\n",
                     tensor, other, bytes, total[0], total[1]);
}
