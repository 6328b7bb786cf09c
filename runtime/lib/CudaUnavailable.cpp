//===- CudaUnavailable.cpp - The CUDA backend where it is not built -*- C++ -*-===//
//
// Stands in for CudaDriver.cpp in builds without the CUDA toolkit: every use
// of the backend throws an Error that says so.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/CudaDriver.h"
#include "moe/Runtime/Error.h"

namespace moe::runtime::cuda {
namespace {
[[noreturn]] void unavailable() {
  throw Error("cuda: this build has no CUDA backend (the CUDA toolkit's "
              "cuda.h was not found when it was configured)");
}
} // namespace

bool built() { return false; }
int deviceCount() { unavailable(); }
void initialize(int) { unavailable(); }
std::string deviceDescription() { unavailable(); }
void *allocate(size_t, Memory) { unavailable(); }
void copyToDevice(void *, const void *, size_t) { unavailable(); }
void copyToHost(void *, const void *, size_t) { unavailable(); }
void setScratchMemory(Memory) {}
void release(void *) { unavailable(); }
void synchronize() { unavailable(); }
PoolStats poolStats() { return {}; }
EventTimer::EventTimer() { unavailable(); }
EventTimer::~EventTimer() = default;
void EventTimer::start() { unavailable(); }
double EventTimer::stop() { unavailable(); }
void copyOnDevice(void *, const void *, size_t) { unavailable(); }
CallGraph::~CallGraph() = default;
void CallGraph::capture(const std::function<void()> &) { unavailable(); }
void CallGraph::launch() { unavailable(); }
std::vector<std::pair<std::string, void *>> entryPoints() { return {}; }

} // namespace moe::runtime::cuda
