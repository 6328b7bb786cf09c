//===- FakeCuda.cpp - A stand-in libcuda.so.1 for testing the host side ---===//
//
// A test double of the CUDA driver, loaded instead of the real one through
// LD_LIBRARY_PATH, so that the runtime's CUDA backend (module loads, launches,
// streams, events, the memory pool, error reporting) and the host code of the
// GPU pipeline run on machines without a GPU. It runs no kernel: what a
// test may check is how the driver was called, never the numbers.
//
// It validates what a real driver would reject (images that are neither an
// ELF cubin nor PTX text, launches of unknown functions, empty grids, blocks
// over 1024 threads, missing parameters, frees of unknown pointers, more than
// 48 KiB of dynamic shared memory for a kernel whose limit was not raised by
// cuFuncSetAttribute, or more than 227 KiB) and, at
// exit, writes its counters as JSON to $FAKE_CUDA_LOG. $FAKE_CUDA_FAIL=<entry
// point> makes that entry point fail with CUDA_ERROR_LAUNCH_FAILED;
// $FAKE_CUDA_DEVICES sets the device count (default 1) and
// $FAKE_CUDA_FREE_BYTES the free device memory (default 1 GiB).
//
// Stream capture follows the driver's rules: launches on a capturing stream
// are recorded (counted as "captured_launches"), a graph launch counts the
// launches its graph holds ("graph_kernel_launches"), and a synchronisation
// of the capturing stream or the context, or a synchronous copy, while a
// capture is open fails with CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED.
//
// Device memory (cuMemAlloc) is mapped without access rights, as a GPU's
// memory is out of the host's reach: host code that reads or writes it
// (rather than through cuMemcpy*) dies of a segmentation fault. Managed
// memory is ordinary host memory.
//
//===----------------------------------------------------------------------===//

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>

#include <sys/mman.h>

namespace {

constexpr int kSuccess = 0, kInvalidValue = 1, kInvalidImage = 200,
              kNotFound = 500, kLaunchFailed = 719, kCaptureUnsupported = 900;

struct Counters {
  std::map<std::string, long> count;
  std::set<void *> live, functions, modules, launched;
  /// Device allocations (no access rights) and their sizes.
  std::map<void *, size_t> device;
  std::set<std::string> kernelNames;
  long maxThreads = 0, maxSharedBytes = 0;
  /// Dynamic shared memory limits raised by cuFuncSetAttribute.
  std::map<void *, long> sharedLimits;
  /// Streams being captured, and the launches each has recorded; graphs
  /// and their instances, with the launches they hold.
  std::map<void *, long> capturing;
  std::map<void *, long> graphs, instances;

  ~Counters() {
    const char *path = std::getenv("FAKE_CUDA_LOG");
    if (!path)
      return;
    FILE *f = std::fopen(path, "w");
    if (!f)
      return;
    std::fprintf(f, "{");
    for (const auto &[name, n] : count)
      std::fprintf(f, "\"%s\": %ld, ", name.c_str(), n);
    std::fprintf(f, "\"live_allocations\": %zu, \"loaded_modules\": %zu, ",
                 live.size(), modules.size());
    std::fprintf(f, "\"launched_functions\": %zu, ", launched.size());
    std::fprintf(f, "\"live_graphs\": %zu, \"open_captures\": %zu, ",
                 graphs.size() + instances.size(), capturing.size());
    std::fprintf(f,
                 "\"max_threads_per_block\": %ld, "
                 "\"max_dynamic_shared_bytes\": %ld, \"kernels\": [",
                 maxThreads, maxSharedBytes);
    bool first = true;
    for (const std::string &k : kernelNames) {
      std::fprintf(f, "%s\"%s\"", first ? "" : ", ", k.c_str());
      first = false;
    }
    std::fprintf(f, "]}\n");
    std::fclose(f);
  }
};

Counters &counters() {
  static Counters c;
  return c;
}

/// Counts a call of `name`; true when the test asked it to fail.
bool call(const char *name) {
  ++counters().count[name];
  const char *fail = std::getenv("FAKE_CUDA_FAIL");
  return fail && std::strcmp(fail, name) == 0;
}

struct Handle {
  std::string name;
};

} // namespace

extern "C" {

int cuInit(unsigned) { return call("cuInit") ? kLaunchFailed : kSuccess; }

int cuDeviceGetCount(int *count) {
  call("cuDeviceGetCount");
  const char *n = std::getenv("FAKE_CUDA_DEVICES");
  *count = n ? std::atoi(n) : 1;
  return kSuccess;
}

int cuDeviceGet(int *device, int ordinal) {
  call("cuDeviceGet");
  *device = ordinal;
  return kSuccess;
}

int cuDeviceGetName(char *name, int length, int) {
  call("cuDeviceGetName");
  std::snprintf(name, size_t(length), "fake CUDA device");
  return kSuccess;
}

int cuDeviceGetAttribute(int *value, int attribute, int) {
  call("cuDeviceGetAttribute");
  // 75/76: compute capability major/minor; 16: multiprocessors.
  *value = attribute == 75 ? 9 : attribute == 76 ? 0 : 132;
  return kSuccess;
}

int cuDevicePrimaryCtxRetain(void **context, int) {
  call("cuDevicePrimaryCtxRetain");
  static int token;
  *context = &token;
  return kSuccess;
}

int cuCtxSetCurrent(void *) {
  return call("cuCtxSetCurrent") ? kLaunchFailed : kSuccess;
}

/// Whether a stream capture is open (synchronous work is then refused).
static bool captureOpen() { return !counters().capturing.empty(); }

int cuCtxSynchronize() {
  if (call("cuCtxSynchronize"))
    return kLaunchFailed;
  return captureOpen() ? kCaptureUnsupported : kSuccess;
}

int cuGetErrorName(int error, const char **name) {
  *name = error == kCaptureUnsupported ? "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED"
          : error == kLaunchFailed     ? "CUDA_ERROR_LAUNCH_FAILED"
          : error == kInvalidImage     ? "CUDA_ERROR_INVALID_IMAGE"
          : error == kNotFound         ? "CUDA_ERROR_NOT_FOUND"
                                       : "CUDA_ERROR_INVALID_VALUE";
  return kSuccess;
}

int cuGetErrorString(int error, const char **text) {
  *text = error == kCaptureUnsupported
              ? "operation not permitted when stream is capturing"
          : error == kLaunchFailed ? "unspecified launch failure"
          : error == kInvalidImage ? "device kernel image is invalid"
                                   : "invalid argument";
  return kSuccess;
}

int cuMemAllocManaged(unsigned long long *pointer, size_t bytes, unsigned) {
  if (call("cuMemAllocManaged"))
    return kLaunchFailed;
  void *p = std::calloc(1, bytes);
  counters().live.insert(p);
  counters().count["bytes_allocated"] += long(bytes);
  *pointer = reinterpret_cast<unsigned long long>(p);
  return kSuccess;
}

int cuMemAlloc_v2(unsigned long long *pointer, size_t bytes) {
  if (call("cuMemAlloc_v2"))
    return kLaunchFailed;
  void *p = mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return kInvalidValue;
  counters().device[p] = bytes;
  counters().live.insert(p);
  counters().count["bytes_allocated"] += long(bytes);
  *pointer = reinterpret_cast<unsigned long long>(p);
  return kSuccess;
}

/// Opens a device allocation to the host for one copy (`open`), or closes
/// it again; other pointers are left as they are.
static void hostAccess(const void *pointer, bool open) {
  auto it = counters().device.find(const_cast<void *>(pointer));
  if (it != counters().device.end())
    mprotect(it->first, it->second, open ? PROT_READ | PROT_WRITE : PROT_NONE);
}

/// A copy between host memory and the live allocation `device` (the source
/// or the destination), opened to the host for the copy only.
static int copyWithDevice(void *device, void *to, const void *from,
                          size_t bytes) {
  if (!counters().live.count(device))
    return kInvalidValue;
  hostAccess(device, true);
  std::memcpy(to, from, bytes);
  hostAccess(device, false);
  return kSuccess;
}

int cuMemcpyHtoD_v2(unsigned long long dst, const void *src, size_t bytes) {
  call("cuMemcpyHtoD_v2");
  if (captureOpen())
    return kCaptureUnsupported;
  void *to = reinterpret_cast<void *>(dst);
  return copyWithDevice(to, to, src, bytes);
}

int cuMemcpyDtoH_v2(void *dst, unsigned long long src, size_t bytes) {
  call("cuMemcpyDtoH_v2");
  if (captureOpen())
    return kCaptureUnsupported;
  void *from = reinterpret_cast<void *>(src);
  return copyWithDevice(from, dst, from, bytes);
}

int cuMemGetInfo_v2(size_t *free, size_t *total) {
  call("cuMemGetInfo_v2");
  // 1 GiB, or $FAKE_CUDA_FREE_BYTES.
  const char *limit = std::getenv("FAKE_CUDA_FREE_BYTES");
  *total = size_t(1) << 30;
  *free = limit ? size_t(std::atoll(limit)) : *total;
  return kSuccess;
}

int cuMemFree_v2(unsigned long long pointer) {
  call("cuMemFree_v2");
  void *p = reinterpret_cast<void *>(pointer);
  if (!counters().live.erase(p))
    return kInvalidValue;
  if (auto it = counters().device.find(p); it != counters().device.end()) {
    munmap(p, it->second);
    counters().device.erase(it);
  } else {
    std::free(p);
  }
  return kSuccess;
}

int cuMemcpy(unsigned long long dst, unsigned long long src, size_t bytes) {
  call("cuMemcpy");
  if (captureOpen())
    return kCaptureUnsupported;
  void *to = reinterpret_cast<void *>(dst),
       *from = reinterpret_cast<void *>(src);
  hostAccess(to, true);
  hostAccess(from, true);
  std::memmove(to, from, bytes);
  hostAccess(to, false);
  hostAccess(from, false);
  return kSuccess;
}

static int loadImage(void **module, const void *image, const char *entry) {
  if (call(entry))
    return kLaunchFailed;
  const char *bytes = static_cast<const char *>(image);
  if (std::memcmp(bytes,
                  "\x7f"
                  "ELF",
                  4) == 0)
    ++counters().count["cubin_images"];
  else if (std::strstr(bytes, ".version") && std::strstr(bytes, ".target"))
    ++counters().count["ptx_images"];
  else
    return kInvalidImage;
  *module = new Handle{"module"};
  counters().modules.insert(*module);
  return kSuccess;
}

int cuModuleLoadData(void **module, const void *image) {
  return loadImage(module, image, "cuModuleLoadData");
}

int cuModuleLoadDataEx(void **module, const void *image, unsigned, int *,
                       void **) {
  return loadImage(module, image, "cuModuleLoadDataEx");
}

int cuModuleUnload(void *module) {
  call("cuModuleUnload");
  if (!counters().modules.erase(module))
    return kInvalidValue;
  delete static_cast<Handle *>(module);
  return kSuccess;
}

int cuModuleGetFunction(void **function, void *module, const char *name) {
  call("cuModuleGetFunction");
  if (!counters().modules.count(module))
    return kInvalidValue;
  *function = new Handle{name};
  counters().functions.insert(*function);
  counters().kernelNames.insert(name);
  return kSuccess;
}

// The driver's limits on a block's dynamic shared memory: 48 KiB unless the
// kernel's CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES (8) was raised, at
// most 227 KiB (Hopper's opt-in maximum).
constexpr long kDefaultShared = 48 * 1024, kMaxShared = 227 * 1024;
constexpr int kMaxDynamicSharedAttribute = 8;

int cuFuncSetAttribute(void *function, int attribute, int value) {
  if (call("cuFuncSetAttribute"))
    return kLaunchFailed;
  if (!counters().functions.count(function) ||
      attribute != kMaxDynamicSharedAttribute || value < 0 ||
      value > kMaxShared)
    return kInvalidValue;
  counters().sharedLimits[function] = value;
  return kSuccess;
}

int cuLaunchKernel(void *function, unsigned gx, unsigned gy, unsigned gz,
                   unsigned bx, unsigned by, unsigned bz, unsigned shared,
                   void *stream, void **params, void **) {
  if (call("cuLaunchKernel"))
    return kLaunchFailed;
  long threads = long(bx) * by * bz;
  if (!counters().functions.count(function) || !gx || !gy || !gz ||
      threads < 1 || threads > 1024 || !params)
    return kInvalidValue;
  if (long(shared) > kDefaultShared) {
    auto limit = counters().sharedLimits.find(function);
    if (limit == counters().sharedLimits.end() || limit->second < long(shared))
      return kInvalidValue;
  }
  if (threads > counters().maxThreads)
    counters().maxThreads = threads;
  if (long(shared) > counters().maxSharedBytes)
    counters().maxSharedBytes = shared;
  counters().launched.insert(function);
  if (auto it = counters().capturing.find(stream);
      it != counters().capturing.end()) {
    ++it->second;
    ++counters().count["captured_launches"];
  }
  return kSuccess;
}

int cuStreamCreate(void **stream, unsigned) {
  call("cuStreamCreate");
  *stream = new Handle{"stream"};
  return kSuccess;
}

int cuStreamSynchronize(void *stream) {
  if (call("cuStreamSynchronize"))
    return kLaunchFailed;
  return counters().capturing.count(stream) ? kCaptureUnsupported : kSuccess;
}

int cuStreamBeginCapture_v2(void *stream, int) {
  if (call("cuStreamBeginCapture_v2"))
    return kLaunchFailed;
  if (!counters().capturing.emplace(stream, 0).second)
    return kInvalidValue;
  return kSuccess;
}

int cuStreamEndCapture(void *stream, void **graph) {
  call("cuStreamEndCapture");
  auto it = counters().capturing.find(stream);
  if (it == counters().capturing.end())
    return kInvalidValue;
  *graph = new Handle{"graph"};
  counters().graphs[*graph] = it->second;
  counters().capturing.erase(it);
  return kSuccess;
}

int cuGraphInstantiateWithFlags(void **exec, void *graph, unsigned long long) {
  if (call("cuGraphInstantiateWithFlags"))
    return kLaunchFailed;
  auto it = counters().graphs.find(graph);
  if (it == counters().graphs.end())
    return kInvalidValue;
  *exec = new Handle{"graph instance"};
  counters().instances[*exec] = it->second;
  return kSuccess;
}

int cuGraphLaunch(void *exec, void *) {
  if (call("cuGraphLaunch"))
    return kLaunchFailed;
  auto it = counters().instances.find(exec);
  if (it == counters().instances.end())
    return kInvalidValue;
  counters().count["graph_kernel_launches"] += it->second;
  return kSuccess;
}

/// Destroys `handle`, one of `table`'s (a graph or an instance).
static int destroy(const char *entry, std::map<void *, long> &table,
                   void *handle) {
  call(entry);
  if (!table.erase(handle))
    return kInvalidValue;
  delete static_cast<Handle *>(handle);
  return kSuccess;
}

int cuGraphExecDestroy(void *exec) {
  return destroy("cuGraphExecDestroy", counters().instances, exec);
}

int cuGraphDestroy(void *graph) {
  return destroy("cuGraphDestroy", counters().graphs, graph);
}

int cuStreamDestroy_v2(void *stream) {
  call("cuStreamDestroy_v2");
  delete static_cast<Handle *>(stream);
  return kSuccess;
}

int cuEventCreate(void **event, unsigned) {
  call("cuEventCreate");
  *event = new Handle{"event"};
  return kSuccess;
}

int cuEventRecord(void *, void *) {
  return call("cuEventRecord") ? kLaunchFailed : kSuccess;
}

int cuEventSynchronize(void *) {
  return call("cuEventSynchronize") ? kLaunchFailed : kSuccess;
}

int cuEventElapsedTime_v2(float *ms, void *, void *) {
  call("cuEventElapsedTime_v2");
  *ms = 1.0f;
  return kSuccess;
}

int cuEventDestroy_v2(void *event) {
  call("cuEventDestroy_v2");
  delete static_cast<Handle *>(event);
  return kSuccess;
}
}
