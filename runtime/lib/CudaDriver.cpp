//===- CudaDriver.cpp - The CUDA driver backend of the runtime ----*- C++ -*-===//
//
// The driver API is reached through dlopen("libcuda.so.1"): cuda.h gives the
// types and signatures, the entry points are looked up by their ABI names.
// See CudaDriver.h for what the backend provides.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/CudaDriver.h"
#include "moe/Runtime/Error.h"

#include <cuda.h>
#include <dlfcn.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>

namespace moe::runtime::cuda {
namespace {

/// The driver entry points the backend uses.
struct Driver {
  decltype(&::cuInit) init = nullptr;
  decltype(&::cuDeviceGetCount) deviceGetCount = nullptr;
  decltype(&::cuDeviceGet) deviceGet = nullptr;
  decltype(&::cuDeviceGetName) deviceGetName = nullptr;
  decltype(&::cuDeviceGetAttribute) deviceGetAttribute = nullptr;
  decltype(&::cuDevicePrimaryCtxRetain) primaryCtxRetain = nullptr;
  decltype(&::cuCtxSetCurrent) ctxSetCurrent = nullptr;
  decltype(&::cuCtxSynchronize) ctxSynchronize = nullptr;
  decltype(&::cuGetErrorName) getErrorName = nullptr;
  decltype(&::cuGetErrorString) getErrorString = nullptr;
  decltype(&::cuMemAllocManaged) memAllocManaged = nullptr;
  decltype(&::cuMemAlloc) memAlloc = nullptr;
  decltype(&::cuMemcpyHtoD) memcpyHtoD = nullptr;
  decltype(&::cuMemcpyDtoH) memcpyDtoH = nullptr;
  decltype(&::cuMemGetInfo) memGetInfo = nullptr;
  decltype(&::cuMemFree) memFree = nullptr;
  decltype(&::cuMemcpy) memcpy = nullptr;
  decltype(&::cuModuleLoadData) moduleLoadData = nullptr;
  decltype(&::cuModuleLoadDataEx) moduleLoadDataEx = nullptr;
  decltype(&::cuModuleUnload) moduleUnload = nullptr;
  decltype(&::cuModuleGetFunction) moduleGetFunction = nullptr;
  decltype(&::cuLaunchKernel) launchKernel = nullptr;
  decltype(&::cuFuncSetAttribute) funcSetAttribute = nullptr;
  decltype(&::cuStreamCreate) streamCreate = nullptr;
  decltype(&::cuStreamSynchronize) streamSynchronize = nullptr;
  decltype(&::cuStreamDestroy) streamDestroy = nullptr;
  decltype(&::cuEventCreate) eventCreate = nullptr;
  decltype(&::cuEventRecord) eventRecord = nullptr;
  decltype(&::cuEventSynchronize) eventSynchronize = nullptr;
  decltype(&::cuEventElapsedTime) eventElapsedTime = nullptr;
  decltype(&::cuEventDestroy) eventDestroy = nullptr;
  decltype(&::cuStreamBeginCapture) streamBeginCapture = nullptr;
  decltype(&::cuStreamEndCapture) streamEndCapture = nullptr;
  decltype(&::cuGraphInstantiate) graphInstantiate = nullptr;
  decltype(&::cuGraphLaunch) graphLaunch = nullptr;
  decltype(&::cuGraphExecDestroy) graphExecDestroy = nullptr;
  decltype(&::cuGraphDestroy) graphDestroy = nullptr;
};

struct State {
  Driver cu;
  bool ready = false;
  CUdevice device = 0;
  CUcontext context = nullptr;
  std::string description;
  std::mutex lock;
  /// Freed blocks by kind and size, and the kind and size of every live one.
  std::multimap<std::pair<Memory, size_t>, void *> freeBlocks;
  std::map<void *, std::pair<Memory, size_t>> liveBlocks;
  /// Streams handed back by mgpuStreamDestroy, for the next launch.
  std::vector<CUstream> idleStreams;
  /// Kernels already looked up (the host code asks before every launch).
  std::map<std::pair<CUmodule, std::string>, CUfunction> functions;
  /// Kernels whose dynamic shared memory limit was raised past the default
  /// 48 KiB, and to how many bytes.
  std::map<CUfunction, int32_t> sharedLimits;
  PoolStats stats;
  /// The call graph being captured, if any (its stream is the capturing
  /// one).
  CallGraph *capturing = nullptr;
};

State &state() {
  static State s;
  return s;
}

/// Throws the one-line message of a failed driver call.
void check(CUresult result, const char *call) {
  if (result == CUDA_SUCCESS)
    return;
  const Driver &cu = state().cu;
  const char *name = nullptr, *text = nullptr;
  if (cu.getErrorName)
    cu.getErrorName(result, &name);
  if (cu.getErrorString)
    cu.getErrorString(result, &text);
  throw Error(std::string("cuda: ") + call + " failed: " +
              (name ? name : "error " + std::to_string(int(result))) +
              (text ? std::string(": ") + text : std::string()));
}

/// Runs `body` from compiled code: an Error becomes one line on stderr and
/// exit status 1, since no exception may unwind through JIT-compiled frames.
template <typename Fn> auto guarded(Fn body) -> decltype(body()) {
  try {
    return body();
  } catch (const std::exception &e) {
    // A driver failure inside the compiled host code ends the process: no
    // static destructors (the host code's would unload modules through a
    // runtime already torn down, and crash), just the message and status 1.
    std::fprintf(stderr, "%s\n", e.what());
    std::fflush(nullptr);
    std::_Exit(1);
  }
}

void loadDriver(Driver &cu) {
  void *library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!library)
    throw Error(std::string("cuda: no CUDA driver on this machine (") +
                dlerror() + ")");
  auto find = [&](auto &slot, const char *name) {
    void *symbol = dlsym(library, name);
    if (!symbol)
      throw Error(std::string("cuda: the driver lacks ") + name +
                  " (a driver for CUDA 12 or later is needed)");
    slot = reinterpret_cast<std::remove_reference_t<decltype(slot)>>(symbol);
  };
  find(cu.init, "cuInit");
  find(cu.deviceGetCount, "cuDeviceGetCount");
  find(cu.deviceGet, "cuDeviceGet");
  find(cu.deviceGetName, "cuDeviceGetName");
  find(cu.deviceGetAttribute, "cuDeviceGetAttribute");
  find(cu.primaryCtxRetain, "cuDevicePrimaryCtxRetain");
  find(cu.ctxSetCurrent, "cuCtxSetCurrent");
  find(cu.ctxSynchronize, "cuCtxSynchronize");
  find(cu.getErrorName, "cuGetErrorName");
  find(cu.getErrorString, "cuGetErrorString");
  find(cu.memAllocManaged, "cuMemAllocManaged");
  find(cu.memAlloc, "cuMemAlloc_v2");
  find(cu.memcpyHtoD, "cuMemcpyHtoD_v2");
  find(cu.memcpyDtoH, "cuMemcpyDtoH_v2");
  find(cu.memGetInfo, "cuMemGetInfo_v2");
  find(cu.memFree, "cuMemFree_v2");
  find(cu.memcpy, "cuMemcpy");
  find(cu.moduleLoadData, "cuModuleLoadData");
  find(cu.moduleLoadDataEx, "cuModuleLoadDataEx");
  find(cu.moduleUnload, "cuModuleUnload");
  find(cu.moduleGetFunction, "cuModuleGetFunction");
  find(cu.launchKernel, "cuLaunchKernel");
  find(cu.funcSetAttribute, "cuFuncSetAttribute");
  find(cu.streamCreate, "cuStreamCreate");
  find(cu.streamSynchronize, "cuStreamSynchronize");
  find(cu.streamDestroy, "cuStreamDestroy_v2");
  find(cu.eventCreate, "cuEventCreate");
  find(cu.eventRecord, "cuEventRecord");
  find(cu.eventSynchronize, "cuEventSynchronize");
  find(cu.eventElapsedTime, "cuEventElapsedTime_v2");
  find(cu.eventDestroy, "cuEventDestroy_v2");
  find(cu.streamBeginCapture, "cuStreamBeginCapture_v2");
  find(cu.streamEndCapture, "cuStreamEndCapture");
  find(cu.graphInstantiate, "cuGraphInstantiateWithFlags");
  find(cu.graphLaunch, "cuGraphLaunch");
  find(cu.graphExecDestroy, "cuGraphExecDestroy");
  find(cu.graphDestroy, "cuGraphDestroy");
}

State &ready() {
  State &s = state();
  if (!s.ready)
    throw Error("cuda: the CUDA backend was used before initialisation");
  return s;
}

} // namespace

bool built() { return true; }

int deviceCount() {
  State &s = state();
  if (!s.cu.init) {
    Driver cu;
    loadDriver(cu);
    s.cu = cu;
  }
  check(s.cu.init(0), "cuInit");
  int count = 0;
  check(s.cu.deviceGetCount(&count), "cuDeviceGetCount");
  return count;
}

void initialize(int device) {
  State &s = state();
  if (s.ready)
    return;
  int count = deviceCount();
  if (device < 0 || device >= count)
    throw Error("cuda: device " + std::to_string(device) +
                " does not exist (this machine has " + std::to_string(count) +
                ")");
  check(s.cu.deviceGet(&s.device, device), "cuDeviceGet");
  check(s.cu.primaryCtxRetain(&s.context, s.device),
        "cuDevicePrimaryCtxRetain");
  check(s.cu.ctxSetCurrent(s.context), "cuCtxSetCurrent");
  char name[256] = {0};
  check(s.cu.deviceGetName(name, sizeof(name) - 1, s.device),
        "cuDeviceGetName");
  int major = 0, minor = 0, sms = 0;
  check(s.cu.deviceGetAttribute(
            &major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, s.device),
        "cuDeviceGetAttribute");
  check(s.cu.deviceGetAttribute(
            &minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, s.device),
        "cuDeviceGetAttribute");
  check(s.cu.deviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
                                s.device),
        "cuDeviceGetAttribute");
  s.description = std::string(name) + " (sm_" + std::to_string(major) +
                  std::to_string(minor) + ", " + std::to_string(sms) + " SMs)";
  s.ready = true;
}

std::string deviceDescription() { return ready().description; }

void *allocate(size_t bytes, Memory kind) {
  State &s = ready();
  std::lock_guard<std::mutex> guard(s.lock);
  bytes = bytes ? bytes : 1;
  if (auto it = s.freeBlocks.find({kind, bytes}); it != s.freeBlocks.end()) {
    void *block = it->second;
    s.freeBlocks.erase(it);
    s.liveBlocks[block] = {kind, bytes};
    ++s.stats.reused;
    return block;
  }
  // Managed memory beyond what the device has free would be paged in and
  // out for ever (and can hang the GPU): refuse it.
  size_t free = 0, total = 0;
  check(s.cu.memGetInfo(&free, &total), "cuMemGetInfo");
  if (bytes > free)
    throw Error("cuda: cannot allocate " + std::to_string(bytes) +
                " bytes: the device has " + std::to_string(free) + " of " +
                std::to_string(total) + " bytes free");
  CUdeviceptr pointer = 0;
  if (kind == Memory::Managed)
    check(s.cu.memAllocManaged(&pointer, bytes, CU_MEM_ATTACH_GLOBAL),
          "cuMemAllocManaged");
  else
    check(s.cu.memAlloc(&pointer, bytes), "cuMemAlloc");
  void *block = reinterpret_cast<void *>(pointer);
  s.liveBlocks[block] = {kind, bytes};
  ++s.stats.driverAllocations;
  s.stats.bytesHeld += bytes;
  return block;
}

void release(void *pointer) {
  if (!pointer)
    return;
  State &s = ready();
  std::lock_guard<std::mutex> guard(s.lock);
  auto it = s.liveBlocks.find(pointer);
  if (it == s.liveBlocks.end())
    throw Error("cuda: release of a pointer the pool did not allocate");
  s.freeBlocks.emplace(it->second, pointer);
  s.liveBlocks.erase(it);
}

void copyToDevice(void *device, const void *host, size_t bytes) {
  check(
      ready().cu.memcpyHtoD(reinterpret_cast<CUdeviceptr>(device), host, bytes),
      "cuMemcpyHtoD");
}

void copyToHost(void *host, const void *device, size_t bytes) {
  check(
      ready().cu.memcpyDtoH(host, reinterpret_cast<CUdeviceptr>(device), bytes),
      "cuMemcpyDtoH");
}

void copyOnDevice(void *to, const void *from, size_t bytes) {
  check(ready().cu.memcpy(reinterpret_cast<CUdeviceptr>(to),
                          reinterpret_cast<CUdeviceptr>(from), bytes),
        "cuMemcpy");
}

/// What the mgpu* entry points do differently while a call is captured.
struct CaptureAccess {
  /// The stream a captured call creates: begins the capture on it.
  static CUstream begin(State &s) {
    CallGraph &g = *s.capturing;
    if (g.stream)
      throw Error("cuda: the layer's host code creates a second stream, "
                  "which one CUDA graph cannot capture");
    CUstream stream = nullptr;
    check(s.cu.streamCreate(&stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
    g.stream = stream;
    check(s.cu.streamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_RELAXED),
          "cuStreamBeginCapture");
    return stream;
  }
  static void keep(State &s, void *block) {
    s.capturing->kept.push_back(block);
  }
};

CallGraph::~CallGraph() {
  State &s = state();
  if (!s.ready)
    return;
  if (exec)
    s.cu.graphExecDestroy(static_cast<CUgraphExec>(exec));
  if (graph)
    s.cu.graphDestroy(static_cast<CUgraph>(graph));
  if (stream)
    s.cu.streamDestroy(static_cast<CUstream>(stream));
  for (void *block : kept)
    release(block);
}

void CallGraph::capture(const std::function<void()> &call) {
  State &s = ready();
  if (captured() || s.capturing)
    throw Error("cuda: a call graph is captured once");
  s.capturing = this;
  try {
    call();
  } catch (...) {
    s.capturing = nullptr;
    CUgraph discarded = nullptr;
    if (stream &&
        s.cu.streamEndCapture(static_cast<CUstream>(stream), &discarded) ==
            CUDA_SUCCESS &&
        discarded)
      s.cu.graphDestroy(discarded);
    throw;
  }
  s.capturing = nullptr;
  if (!stream)
    throw Error("cuda: the captured call launched nothing on a stream");
  CUgraph recordedGraph = nullptr;
  check(s.cu.streamEndCapture(static_cast<CUstream>(stream), &recordedGraph),
        "cuStreamEndCapture");
  graph = recordedGraph;
  CUgraphExec instance = nullptr;
  check(s.cu.graphInstantiate(&instance, recordedGraph, 0),
        "cuGraphInstantiate");
  exec = instance;
}

void CallGraph::launch() {
  State &s = ready();
  if (!captured())
    throw Error("cuda: launch of a call graph that was not captured");
  check(s.cu.graphLaunch(static_cast<CUgraphExec>(exec),
                         static_cast<CUstream>(stream)),
        "cuGraphLaunch");
  check(s.cu.streamSynchronize(static_cast<CUstream>(stream)),
        "cuStreamSynchronize");
}

namespace {
std::atomic<Memory> scratchMemory{Memory::Managed};
} // namespace

void setScratchMemory(Memory kind) { scratchMemory = kind; }

void synchronize() { check(ready().cu.ctxSynchronize(), "cuCtxSynchronize"); }

PoolStats poolStats() { return state().stats; }

EventTimer::EventTimer() {
  State &s = ready();
  CUevent a = nullptr, b = nullptr;
  check(s.cu.eventCreate(&a, CU_EVENT_DEFAULT), "cuEventCreate");
  check(s.cu.eventCreate(&b, CU_EVENT_DEFAULT), "cuEventCreate");
  begin = a;
  end = b;
}

EventTimer::~EventTimer() {
  State &s = state();
  if (s.ready) {
    s.cu.eventDestroy(static_cast<CUevent>(begin));
    s.cu.eventDestroy(static_cast<CUevent>(end));
  }
}

void EventTimer::start() {
  check(ready().cu.eventRecord(static_cast<CUevent>(begin), nullptr),
        "cuEventRecord");
}

double EventTimer::stop() {
  State &s = ready();
  check(s.cu.eventRecord(static_cast<CUevent>(end), nullptr), "cuEventRecord");
  check(s.cu.eventSynchronize(static_cast<CUevent>(end)), "cuEventSynchronize");
  float ms = 0;
  check(s.cu.eventElapsedTime(&ms, static_cast<CUevent>(begin),
                              static_cast<CUevent>(end)),
        "cuEventElapsedTime");
  return double(ms) * 1e-3;
}

} // namespace moe::runtime::cuda

using namespace moe::runtime;

//===----------------------------------------------------------------------===//
// The ABI that upstream's gpu-to-llvm lowering calls.
//===----------------------------------------------------------------------===//

extern "C" {

void *mgpuModuleLoad(void *data, size_t /*size*/) {
  return cuda::guarded([&] {
    CUmodule module = nullptr;
    cuda::check(cuda::ready().cu.moduleLoadData(&module, data),
                "cuModuleLoadData");
    return static_cast<void *>(module);
  });
}

void *mgpuModuleLoadJIT(void *data, int optLevel) {
  return cuda::guarded([&] {
    CUmodule module = nullptr;
    CUjit_option options[] = {CU_JIT_OPTIMIZATION_LEVEL};
    void *values[] = {reinterpret_cast<void *>(intptr_t(optLevel))};
    cuda::check(
        cuda::ready().cu.moduleLoadDataEx(&module, data, 1, options, values),
        "cuModuleLoadDataEx (PTX JIT)");
    return static_cast<void *>(module);
  });
}

void mgpuModuleUnload(void *module) {
  cuda::guarded([&] {
    cuda::State &s = cuda::ready();
    std::lock_guard<std::mutex> guard(s.lock);
    for (auto it = s.functions.begin(); it != s.functions.end();)
      it = it->first.first == module ? s.functions.erase(it) : std::next(it);
    cuda::check(s.cu.moduleUnload(static_cast<CUmodule>(module)),
                "cuModuleUnload");
  });
}

void *mgpuModuleGetFunction(void *module, const char *name) {
  return cuda::guarded([&] {
    cuda::State &s = cuda::ready();
    std::lock_guard<std::mutex> guard(s.lock);
    CUfunction &function =
        s.functions[{static_cast<CUmodule>(module), std::string(name)}];
    if (!function)
      cuda::check(s.cu.moduleGetFunction(&function,
                                         static_cast<CUmodule>(module), name),
                  "cuModuleGetFunction");
    return static_cast<void *>(function);
  });
}

void mgpuLaunchKernel(void *function, intptr_t gridX, intptr_t gridY,
                      intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                      intptr_t blockZ, int32_t sharedBytes, void *stream,
                      void **params, void **extra, size_t /*paramsCount*/) {
  cuda::guarded([&] {
    cuda::State &s = cuda::ready();
    // A block may use more than 48 KiB of dynamic shared memory only once
    // its kernel's limit is raised (the tensor-core kernels' gated tiles).
    constexpr int32_t kDefaultSharedLimit = 48 * 1024;
    if (sharedBytes > kDefaultSharedLimit) {
      auto f = static_cast<CUfunction>(function);
      std::lock_guard<std::mutex> guard(s.lock);
      int32_t &limit = s.sharedLimits[f];
      if (limit < sharedBytes) {
        cuda::check(s.cu.funcSetAttribute(
                        f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                        sharedBytes),
                    "cuFuncSetAttribute");
        limit = sharedBytes;
      }
    }
    cuda::check(s.cu.launchKernel(
                    static_cast<CUfunction>(function), unsigned(gridX),
                    unsigned(gridY), unsigned(gridZ), unsigned(blockX),
                    unsigned(blockY), unsigned(blockZ), unsigned(sharedBytes),
                    static_cast<CUstream>(stream), params, extra),
                "cuLaunchKernel");
  });
}

void *mgpuStreamCreate() {
  return cuda::guarded([&] {
    cuda::State &s = cuda::ready();
    if (s.capturing)
      return static_cast<void *>(cuda::CaptureAccess::begin(s));
    {
      std::lock_guard<std::mutex> guard(s.lock);
      if (!s.idleStreams.empty()) {
        CUstream stream = s.idleStreams.back();
        s.idleStreams.pop_back();
        return static_cast<void *>(stream);
      }
    }
    CUstream stream = nullptr;
    cuda::check(s.cu.streamCreate(&stream, CU_STREAM_NON_BLOCKING),
                "cuStreamCreate");
    return static_cast<void *>(stream);
  });
}

void mgpuStreamDestroy(void *stream) {
  cuda::guarded([&] {
    cuda::State &s = cuda::ready();
    if (s.capturing)
      return; // the call graph keeps its stream
    std::lock_guard<std::mutex> guard(s.lock);
    s.idleStreams.push_back(static_cast<CUstream>(stream));
  });
}

void mgpuStreamSynchronize(void *stream) {
  cuda::guarded([&] {
    if (cuda::state().capturing)
      return; // captured: the graph's launch waits instead
    cuda::check(
        cuda::ready().cu.streamSynchronize(static_cast<CUstream>(stream)),
        "cuStreamSynchronize");
  });
}

void *mgpuMemAlloc(uint64_t bytes, void * /*stream*/, bool /*hostShared*/) {
  return cuda::guarded([&] { return cuda::allocate(bytes); });
}

void mgpuMemFree(void *pointer, void * /*stream*/) {
  cuda::guarded([&] {
    if (cuda::State &s = cuda::state(); s.capturing)
      return cuda::CaptureAccess::keep(s, pointer);
    cuda::synchronize();
    cuda::release(pointer);
  });
}

void mgpuMemcpy(void *dst, void *src, size_t bytes, void * /*stream*/) {
  cuda::guarded([&] {
    if (cuda::state().capturing)
      throw Error("cuda: the layer's host code copies memory "
                  "(cuMemcpy), which a CUDA graph cannot capture");
    cuda::check(cuda::ready().cu.memcpy(reinterpret_cast<CUdeviceptr>(dst),
                                        reinterpret_cast<CUdeviceptr>(src),
                                        bytes),
                "cuMemcpy");
  });
}

/// memref.alloc / dealloc of the host code (finalize-memref-to-llvm with
/// use-generic-functions): the scratch memory setScratchMemory chose
/// (managed, so that host code and kernels both reach it, or device).
void *_mlir_memref_to_llvm_alloc(size_t bytes) {
  return cuda::guarded(
      [&] { return cuda::allocate(bytes, cuda::scratchMemory.load()); });
}

void *_mlir_memref_to_llvm_aligned_alloc(size_t /*alignment*/, size_t bytes) {
  // Driver allocations are aligned to at least 256 bytes.
  return cuda::guarded(
      [&] { return cuda::allocate(bytes, cuda::scratchMemory.load()); });
}

void _mlir_memref_to_llvm_free(void *pointer) {
  cuda::guarded([&] {
    if (cuda::State &s = cuda::state(); s.capturing)
      return cuda::CaptureAccess::keep(s, pointer);
    // A kernel still running may read the block: wait before reusing it.
    // Not needed for device scratch memory: only host code that touches no
    // buffer gets it, and its frees all follow the wait at the end of its
    // single stream (moe-hoist-buffers, gpu-async-region).
    if (cuda::scratchMemory.load() != cuda::Memory::Device)
      cuda::synchronize();
    cuda::release(pointer);
  });
}
}

std::vector<std::pair<std::string, void *>> cuda::entryPoints() {
  return {
      {"mgpuModuleLoad", reinterpret_cast<void *>(&mgpuModuleLoad)},
      {"mgpuModuleLoadJIT", reinterpret_cast<void *>(&mgpuModuleLoadJIT)},
      {"mgpuModuleUnload", reinterpret_cast<void *>(&mgpuModuleUnload)},
      {"mgpuModuleGetFunction",
       reinterpret_cast<void *>(&mgpuModuleGetFunction)},
      {"mgpuLaunchKernel", reinterpret_cast<void *>(&mgpuLaunchKernel)},
      {"mgpuStreamCreate", reinterpret_cast<void *>(&mgpuStreamCreate)},
      {"mgpuStreamDestroy", reinterpret_cast<void *>(&mgpuStreamDestroy)},
      {"mgpuStreamSynchronize",
       reinterpret_cast<void *>(&mgpuStreamSynchronize)},
      {"mgpuMemAlloc", reinterpret_cast<void *>(&mgpuMemAlloc)},
      {"mgpuMemFree", reinterpret_cast<void *>(&mgpuMemFree)},
      {"mgpuMemcpy", reinterpret_cast<void *>(&mgpuMemcpy)},
      {"_mlir_memref_to_llvm_alloc",
       reinterpret_cast<void *>(&_mlir_memref_to_llvm_alloc)},
      {"_mlir_memref_to_llvm_aligned_alloc",
       reinterpret_cast<void *>(&_mlir_memref_to_llvm_aligned_alloc)},
      {"_mlir_memref_to_llvm_free",
       reinterpret_cast<void *>(&_mlir_memref_to_llvm_free)},
  };
}
