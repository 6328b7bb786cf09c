//===- CudaDriver.h - The CUDA driver backend of the runtime ------*- C++ -*-===//
//
// Runs code produced by moe-gpu-pipeline: the host functions call the `mgpu*`
// ABI (module load, kernel launch, streams) that upstream's gpu-to-llvm
// lowering emits, and allocate through `_mlir_memref_to_llvm_alloc`. This
// backend implements both on the CUDA driver API, loaded at run time from
// libcuda.so.1 so that the tools start (and explain) on machines without a
// driver. The program's allocations are CUDA managed memory, reachable from
// the host loops and the kernels alike; the weights, which only kernels read,
// go to plain device memory. Both come from a pool that keeps freed blocks
// by kind and size, and neither may exceed the device's free memory.
// Every driver call is checked; a failure throws moe::runtime::Error
// (`cuda: cuModuleLoadData failed: CUDA_ERROR_...: <description>`), or, inside
// compiled code, prints that line and exits with status 1.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_CUDADRIVER_H
#define MOE_RUNTIME_CUDADRIVER_H

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace moe::runtime::cuda {

/// True when this build has the CUDA backend (the toolkit's cuda.h was
/// found at configure time).
bool built();

/// Loads the driver and returns how many devices it sees. Throws Error when
/// the backend cannot run (not built, no libcuda.so.1, cuInit fails).
int deviceCount();

/// Loads the driver, selects device `device` and makes its primary context
/// current. Throws Error saying why the backend cannot run (not built, no
/// libcuda.so.1, no device, a failing call). Idempotent.
void initialize(int device = 0);

/// "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)" of the initialised device.
std::string deviceDescription();

/// Where an allocation lives: CUDA managed memory (host code and kernels
/// both reach it) or plain device memory (kernels only).
enum class Memory { Managed, Device };

/// `bytes` of `kind` memory from the pool; release() gives it back.
void *allocate(size_t bytes, Memory kind = Memory::Managed);
void release(void *pointer);

/// Copies `bytes` from host memory to device (or managed) memory.
void copyToDevice(void *device, const void *host, size_t bytes);

/// Copies `bytes` from device (or managed) memory to host memory.
void copyToHost(void *host, const void *device, size_t bytes);

/// The memory the compiled code's own allocations (its temporaries,
/// through _mlir_memref_to_llvm_alloc) come from: managed memory (the
/// default) where its host code may touch them, device memory where it
/// does not (mlir::moe::hostTouchesBuffers).
void setScratchMemory(Memory kind);

/// Waits for all work on the device.
void synchronize();

/// What the pool did: driver allocations made and requests served from it.
struct PoolStats {
  uint64_t driverAllocations = 0;
  uint64_t reused = 0;
  uint64_t bytesHeld = 0;
};
PoolStats poolStats();

/// Device time between start() and stop(), from CUDA events.
class EventTimer {
public:
  EventTimer();
  ~EventTimer();
  EventTimer(const EventTimer &) = delete;
  EventTimer &operator=(const EventTimer &) = delete;
  void start();
  /// Records the end, waits for it, returns the elapsed seconds.
  double stop();

private:
  void *begin = nullptr;
  void *end = nullptr;
};

/// Copies `bytes` between two device (or managed) allocations.
void copyOnDevice(void *to, const void *from, size_t bytes);

/// One layer call recorded as a CUDA graph and replayed. capture(call) runs
/// `call` (the compiled host code of one call, whose buffers all live in
/// device memory) with the stream it creates capturing in relaxed mode: its
/// launches are recorded, not run; its wait at the end is skipped; the
/// scratch blocks it frees stay with the graph (their addresses are in the
/// recorded launches). Host code that copies memory or creates a second
/// stream cannot be captured (an Error says so). launch() runs the graph
/// and waits for it. The kernels read the addresses the captured call was
/// given, so every replay must pass its data through the same buffers.
class CallGraph {
public:
  CallGraph() = default;
  ~CallGraph();
  CallGraph(const CallGraph &) = delete;
  CallGraph &operator=(const CallGraph &) = delete;
  void capture(const std::function<void()> &call);
  bool captured() const { return exec != nullptr; }
  void launch();

private:
  friend struct CaptureAccess;
  void *stream = nullptr, *graph = nullptr, *exec = nullptr;
  std::vector<void *> kept;
};

/// The `mgpu*` and `_mlir_memref_to_llvm_*` symbols by name and address, for
/// a JIT to resolve.
std::vector<std::pair<std::string, void *>> entryPoints();

} // namespace moe::runtime::cuda

#endif // MOE_RUNTIME_CUDADRIVER_H
