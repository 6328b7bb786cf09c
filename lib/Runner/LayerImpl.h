//===- LayerImpl.h - What a compiled layer holds (private) -----*- C++ -*-===//
//
// The state behind moe::CompiledLayer, shared by the two halves of the API:
// Layer.cpp (describing artifacts, binding weights, calling; no MLIR, so
// that moe-gpu-run links it on machines without LLVM) and Compile.cpp
// (compiling specs and modules with MLIR, the compiled-code cache, JIT
// linking of an artifact's host code).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_RUNNER_LAYERIMPL_H
#define MOE_LIB_RUNNER_LAYERIMPL_H

#include "moe/Runner/Layer.h"
#include "moe/Spec/CudaArtifact.h"

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace moe::detail {

using Clock = std::chrono::steady_clock;

inline double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/// The native code of a layer: its C-interface entry, called with one
/// memref descriptor pointer per argument.
class LayerCode {
public:
  virtual ~LayerCode() = default;
  virtual void invoke(const std::vector<void *> &descriptors) const = 0;
};

/// Progress lines on a terminal: the current stage and the seconds it has
/// taken so far, redrawn in place by a ticker thread; done() clears the
/// line. Nothing at all when stderr is not a terminal or `wanted` is false.
class Progress {
public:
  explicit Progress(bool wanted);
  ~Progress() { done(); }
  Progress(const Progress &) = delete;
  Progress &operator=(const Progress &) = delete;

  void say(const std::string &what);
  void done();

private:
  void draw();
  void tick();

  bool on;
  std::mutex mutex;
  std::condition_variable wake;
  std::thread ticker;
  std::string stage;
  Clock::time_point start;
  bool stopping = false;
};

/// f32, bf16 or f16; an error naming `option` otherwise.
runtime::DType dtypeNamed(const std::string &name, const std::string &option);

/// The whole text of `path`, a regular file; `what` names it in errors.
std::string readTextFile(const std::string &path, const std::string &what);

/// A module or artifact fixes its activation type itself: an error unless
/// `options` leave it at its default.
void requireOwnActivationType(const CompileOptions &options);

/// Tokens `x` of a runner's input file `path` checked against the layer
/// (width d_model, d.tokens rows; `taker` says what takes them in the
/// message, e.g. "the artifact") and converted to its activation type.
runtime::HostTensor layerTokens(runtime::HostTensor x, const std::string &path,
                                const LayerDescription &d,
                                const std::string &taker);

/// The functions of this process that compiled code calls: the collective
/// entry points and, on the cuda backend, the driver's (starting it).
std::vector<std::pair<std::string, void *>>
runtimeSymbols(const CompileOptions &options);

} // namespace moe::detail

namespace moe {

struct CompiledLayer::Impl {
  LayerDescription description;
  CompileOptions options;
  ExchangeTraffic traffic;
  /// The code; for an artifact made by `loadCode` at the first bind.
  std::unique_ptr<detail::LayerCode> code;
  std::function<std::unique_ptr<detail::LayerCode>()> loadCode;
  std::optional<spec::CudaArtifact> artifact;
  /// (argument, panel width) of the weights the kernels read packed.
  std::vector<std::pair<unsigned, int64_t>> packed;
  /// Whether the host code reads or writes buffers itself.
  bool hostAccess = true;
  double seconds = 0;
  bool cached = false;
  std::mutex loading;

  bool onGpu() const { return description.backend == "cuda"; }
  int64_t world() const { return options.shards * options.replicas; }
  /// "<tool>: error: ", the start of an error line without a file.
  std::string errorPrefix() const { return options.tool + ": error: "; }

  /// Makes the code if it is not there yet (binds may come from several
  /// threads).
  void ensureCode();
  void invoke(const std::vector<void *> &descriptors) const {
    code->invoke(descriptors);
  }

  /// The description of a CUDA artifact's layer (its code still to be
  /// made): options checked, the artifact parsed.
  static std::shared_ptr<Impl> describeArtifact(const std::string &path,
                                                const CompileOptions &options);
};

} // namespace moe

#endif // MOE_LIB_RUNNER_LAYERIMPL_H
