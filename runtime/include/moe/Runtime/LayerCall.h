//===- LayerCall.h - Calling a compiled layer function ------------*- C++ -*-===//
//
// What every runner of a compiled layer function shares (moe-run, which
// compiles it, and moe-gpu-run, which loads ahead-of-time host code): the
// result tensors, the call's buffers (the host tensors themselves, or copies
// in the CUDA backend's managed memory), the statistics they hold after a
// call, timing repeated calls, and writing the outputs.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_LAYERCALL_H
#define MOE_RUNTIME_LAYERCALL_H

#include "moe/Runtime/MemRef.h"
#include "moe/Runtime/Stats.h"
#include "moe/Runtime/Tensor.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace moe::runtime {

/// The five results of a layer function, in call order.
struct LayerResults {
  HostTensor output, tokensPerExpert, dropped, loadBalanceLoss, routerZLoss;

  /// Zeroed results of a layer of `tokens` x `width` activations of
  /// `activation` type and `experts` experts.
  static LayerResults zeros(DType activation, int64_t tokens, int64_t width,
                            int64_t experts);
  /// Results whose output is `output` itself (caller memory, e.g. a view)
  /// and whose statistics are zeroed, for a layer of `experts` experts.
  static LayerResults into(HostTensor output, int64_t experts);

  /// The statistics the results hold (`capacity` from the layer).
  LayerStats stats(std::optional<int64_t> capacity) const;
  /// The four statistics tensors, in the order the layer function returns
  /// them after the output.
  std::vector<HostTensor *> statistics() {
    return {&tokensPerExpert, &dropped, &loadBalanceLoss, &routerZLoss};
  }
};

/// Where the buffers of a layer call live.
enum class Placement {
  /// The host tensors themselves (the CPU backends).
  Host,
  /// CUDA: weights in device memory; tokens, results and the compiled
  /// code's temporaries in managed memory, for host code that touches them.
  Managed,
  /// CUDA: every buffer in device memory, the tokens copied in and the
  /// results copied out once per call (host code that touches no buffer).
  Device,
};

/// The weights of a bound layer (the call inputs after the tokens) in the
/// CUDA backend's plain device memory, copied there once; calls read them
/// through CallArguments instead of copying them again.
class DeviceWeights {
public:
  explicit DeviceWeights(const std::vector<HostTensor *> &weights);
  ~DeviceWeights();
  DeviceWeights(const DeviceWeights &) = delete;
  DeviceWeights &operator=(const DeviceWeights &) = delete;

  /// The device copy of weight `index` (call input index + 1).
  void *at(size_t index) const { return copies.at(index); }
  size_t size() const { return copies.size(); }

private:
  std::vector<void *> copies;
};

/// The buffers a layer function is called with: `inputs` then `results`.
/// On the GPU (`placement` Managed or Device) each lives in a copy in the
/// CUDA backend's memory: the weights (inputs after the first), which only
/// kernels read, always in plain device memory; the tokens and the results
/// in managed or device memory as `placement` says, and the compiled code's
/// temporaries too (cuda::setScratchMemory). fetchResults() copies the
/// results back after a call.
class CallArguments {
public:
  /// With `resident`, the weights' device copies are those (on the GPU;
  /// unused on the host) and only the tokens and results are copied. With
  /// `ioOnDevice` (Placement::Device only) the tokens and the output tensor
  /// hold device memory already: they are passed as they are, neither
  /// copied in nor fetched (the statistics still are). With `statistics`
  /// (Placement::Device only) the four statistics results are those device
  /// buffers, neither allocated nor fetched (a CUDA graph's own).
  CallArguments(const std::vector<HostTensor *> &inputs, LayerResults &results,
                Placement placement, const DeviceWeights *resident = nullptr,
                bool ioOnDevice = false,
                const DeviceWeights *statistics = nullptr);
  ~CallArguments();
  CallArguments(const CallArguments &) = delete;
  CallArguments &operator=(const CallArguments &) = delete;

  /// One memref descriptor pointer per argument, in call order.
  const std::vector<void *> &get() const { return pointers; }

  /// After a call: the results, back into their host tensors.
  void fetchResults();

private:
  std::vector<HostTensor *> tensors;
  size_t firstResult;
  Placement placement;
  bool ioOnDevice;
  bool statisticsOnDevice;
  /// The device (or managed) memory of each argument on the GPU, and
  /// whether this call allocated it.
  std::vector<void *> deviceData;
  std::vector<bool> owned;
  std::vector<MemRefDescriptor> descriptors;
  std::vector<void *> pointers;
};

/// The most and fewest memref descriptors a layer entry takes: 4 inputs
/// (tokens, router, w_in, w_out) to 10 (with w_gate and spec §8's score
/// bias and shared expert), then the 5 results.
inline constexpr std::size_t kMinLayerArguments = 9;
inline constexpr std::size_t kMaxLayerArguments = 15;

namespace detail {
template <std::size_t... I>
void callWith(void *entry, void *const *d, std::index_sequence<I...>) {
  using Pointer = void *;
  using Entry = void (*)(decltype((void)I, Pointer())...);
  reinterpret_cast<Entry>(entry)(d[I]...);
}
template <std::size_t N>
bool callIfArity(void *entry, const std::vector<void *> &d) {
  if (d.size() != N)
    return false;
  callWith(entry, d.data(), std::make_index_sequence<N>{});
  return true;
}
template <std::size_t... N>
bool callAnyArity(void *entry, const std::vector<void *> &d,
                  std::index_sequence<N...>) {
  return (callIfArity<kMinLayerArguments + N>(entry, d) || ...);
}
} // namespace detail

/// Calls a C-interface layer entry `void entry(void *...)` with one memref
/// descriptor pointer per argument. Returns false (and calls nothing) unless
/// there are kMinLayerArguments to kMaxLayerArguments of them.
inline bool callLayerEntry(void *entry, const std::vector<void *> &d) {
  return detail::callAnyArity(
      entry, d,
      std::make_index_sequence<kMaxLayerArguments - kMinLayerArguments + 1>{});
}

/// FLOPs of the expert matmuls of the kept assignments: 2·D·F per matrix
/// (three when gated) per kept row.
double keptExpertFlops(const LayerStats &stats, int64_t dModel, int64_t dFF,
                       bool gated);

/// Seconds of each of `runs` calls of `call` (CUDA events when `onGpu`).
std::vector<double> timeCalls(int64_t runs, const std::function<void()> &call,
                              bool onGpu);

/// The `BENCH {...}` line of a timed layer: tokens/s and the expert
/// GFLOP/s of the kept assignments.
std::string benchLine(const std::string &backend, int64_t tokens, int64_t ranks,
                      std::vector<double> times, double compileSeconds,
                      double expertFlops);

/// Writes the statistics (when `statsPath` is set) and then Y, each
/// atomically; if Y cannot be written the statistics are removed again, so
/// a failure leaves no output behind.
void writeLayerOutputs(const std::string &outputPath, const HostTensor &y,
                       const std::string &statsPath,
                       const std::string &statsText);

} // namespace moe::runtime

#endif // MOE_RUNTIME_LAYERCALL_H
