//===- Layer.h - A compiled MoE layer as a library ------------*- C++ -*-===//
//
// The C++ API of the toolchain: compile a layer once, bind its weights once,
// call it many times.
//
//   moe::CompileOptions options;                 // cpu backend, f32
//   moe::CompiledLayer layer =
//       moe::CompiledLayer::fromSpec("switch-base-8.json", /*tokens=*/1024,
//                                    options);
//   moe::BoundLayer bound = layer.bind("switch-base-8.safetensors");
//   std::vector<float> x(1024 * 768), y(1024 * 768);
//   moe::runtime::LayerStats stats = bound(x.data(), y.data());
//
// A CompiledLayer holds the native code (JIT-compiled from a layer spec or
// an MLIR module, or the host code of a CUDA artifact); a BoundLayer adds
// the weights in the layout the kernels read (packed once, at bind time;
// on the GPU copied to device memory once). Calls take caller-owned token
// and output memory and copy neither on the CPU. A BoundLayer may be called
// from several threads at once: every call has its own workspace (the
// compiled code's temporaries and the statistics); on the CUDA backend
// calls are serialised.
//
// Compiled code can be cached on disk (CompileOptions::cacheDir or the
// MOE_CACHE_DIR environment variable): a second process that compiles the
// same layer with the same options loads the object code instead.
//
// Every failure throws moe::runtime::Error with one line naming the file or
// option at fault.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNNER_LAYER_H
#define MOE_RUNNER_LAYER_H

#include "moe/Runtime/Error.h"
#include "moe/Runtime/Stats.h"
#include "moe/Runtime/Tensor.h"
#include "moe/Runtime/Weights.h"
#include "moe/Spec/LayerSpec.h"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace moe {

/// How a layer is compiled.
struct CompileOptions {
  /// cpu, gpu-loops (the GPU program with its kernels as host loops) or
  /// cuda (kernels on an NVIDIA GPU through the CUDA driver).
  std::string backend = "cpu";
  /// The chip of the cuda kernels, and whose kernels gpu-loops emulates.
  std::string gpuChip = "sm_90a";
  /// Element type of the tokens and the output with a spec: f32 or bf16.
  std::string activationType = "f32";
  /// Element type of the expert weights with a spec: f32, bf16 or f16
  /// (weightTypeOf() reads the one a safetensors file stores).
  std::string weightType = "f32";
  /// The layer function of a module.
  std::string funcName = "moe_layer";
  /// LLVM optimisation level, 0 to 3.
  unsigned optLevel = 3;
  /// moe-fuse-experts (grouped matmuls over expert-sorted rows).
  bool fusion = true;
  /// Index and memory-access checks compiled into the code.
  bool runtimeChecks = false;
  /// Threads of the CPU kernels; 0: every core.
  int64_t threads = 0;
  /// Expert parallelism: this process is rank `rank` of `shards` x
  /// `replicas` ranks (the collectives must be set up by the caller, as
  /// moe-run does); tokens are the whole batch's.
  int64_t shards = 1, replicas = 1, rank = 0;
  /// Directory of the compiled-code cache; empty: $MOE_CACHE_DIR, and no
  /// cache when that is unset too. Only the cpu and gpu-loops backends are
  /// cached.
  std::string cacheDir;
  /// Progress lines on stderr while compiling and loading, when stderr is a
  /// terminal (nothing otherwise).
  bool progress = true;
  /// The CUDA device of the cuda backend (a process uses one device: the
  /// first layer to start the driver picks it).
  int64_t gpuDevice = 0;
  /// The program named at the start of error lines ("<tool>: error: ...").
  std::string tool = "moe";
  /// cuda backend: record a bound layer's first call as a CUDA graph and
  /// replay it for every call (one graph launch instead of the call's
  /// kernel launches). Needs code whose buffers all live in device memory
  /// and one rank; tokens, output and statistics pass through device
  /// buffers of the bound layer (the graph holds their addresses).
  bool cudaGraph = false;
};

/// Throws runtime::Error with one line naming the option at fault unless
/// `options` are valid (every CompiledLayer entry point checks them first).
void checkCompileOptions(const CompileOptions &options);

/// What a compiled layer computes and takes.
struct LayerDescription {
  /// The sizes and routing (from a module or artifact: sizes and gating).
  spec::LayerSpec spec;
  /// Capacity per group; absent when dropless.
  std::optional<int64_t> capacity;
  runtime::DType activationType = runtime::DType::F32;
  runtime::DType weightType = runtime::DType::F32;
  runtime::DType routerType = runtime::DType::F32;
  /// Tokens of one call on this rank, and of the whole batch.
  int64_t tokens = 0, globalTokens = 0;
  /// The file (or "<spec>") the layer came from, for messages.
  std::string source;
  /// The backend it was compiled for.
  std::string backend;
};

/// Per call and rank: bytes the exchanges of a sharded layer move as far as
/// the program fixes them (see moe-run's statistics "communication").
struct ExchangeTraffic {
  uint64_t staticBytes = 0;
  bool dataDependent = false;
};

class BoundLayer;

/// A layer compiled to native code. Cheap to copy (shared).
class CompiledLayer {
public:
  /// From a layer-spec JSON file, for calls of `tokens` tokens (the whole
  /// batch's, with shards).
  static CompiledLayer fromSpec(const std::string &path, int64_t tokens,
                                const CompileOptions &options);
  /// From layer-spec JSON text; `source` names it in messages.
  static CompiledLayer fromSpecText(const std::string &json, int64_t tokens,
                                    const CompileOptions &options,
                                    const std::string &source = "<spec>");
  /// From an MLIR module file holding the layer function
  /// (options.funcName); its signature gives the sizes.
  static CompiledLayer fromModule(const std::string &path,
                                  const CompileOptions &options);
  /// From a CUDA artifact (moe-translate --moe-to-cuda-artifact): nothing
  /// is compiled; its host code is loaded (and the CUDA driver started)
  /// when weights are first bound. The backend must be cuda.
  static CompiledLayer fromArtifact(const std::string &path,
                                    const CompileOptions &options);
  /// The same with the artifact's host code compiled ahead of time into a
  /// shared object (tools/gpu_package.sh), opened at the first bind: no
  /// MLIR or LLVM is involved (libMoELayer.a holds this path alone, which
  /// is how moe-gpu-run starts on machines with only a GPU driver). The
  /// program must export the runtime's `mgpu*` functions to it
  /// (ENABLE_EXPORTS / -rdynamic).
  static CompiledLayer fromArtifact(const std::string &path,
                                    const std::string &hostLibrary,
                                    const CompileOptions &options);

  const LayerDescription &description() const;
  /// Seconds spent compiling (or loading from the cache).
  double compileSeconds() const;
  /// Whether the code came from the compiled-code cache.
  bool fromCache() const;
  ExchangeTraffic exchangeTraffic() const;
  /// How many weights bind() packs into the kernels' panel layout.
  size_t packedWeightCount() const;

  /// Binds the weights of a safetensors file (our names or Hugging Face
  /// names; `prefix` as moe-run's --weight-prefix). Unless
  /// `allowNonFinite`, a NaN or infinite weight is an error (spec §3.7).
  BoundLayer bind(const std::string &safetensorsPath,
                  const std::string &prefix = "",
                  bool allowNonFinite = false) const;
  /// Binds weights given by our names (`router`, `w_in`, `w_gate`, `w_out`,
  /// `score_bias`, `shared_w_in`, `shared_w_gate`, `shared_w_out`,
  /// `shared_gate`), in our layouts, of any floating-point type (views of
  /// caller memory are fine: what the kernels read is converted or packed
  /// into memory of the bound layer). A missing, misshapen or unexpected
  /// weight is an error naming it.
  BoundLayer bind(std::map<std::string, runtime::HostTensor> weights,
                  bool allowNonFinite = false) const;

  struct Impl;

private:
  explicit CompiledLayer(std::shared_ptr<Impl> impl) : impl(std::move(impl)) {}
  BoundLayer bindLoaded(runtime::LayerWeights weights,
                        const std::string &source, bool allowNonFinite) const;
  std::shared_ptr<Impl> impl;
};

/// A compiled layer with its weights: call it on tokens.
class BoundLayer {
public:
  /// One call: `x` [tokens, d_model] and `y` [tokens, d_model] in the
  /// activation type, caller-owned (not copied on the CPU). Unless
  /// `allowNonFinite`, NaN or infinite tokens are an error (spec §3.7).
  runtime::LayerStats operator()(const void *x, void *y,
                                 bool allowNonFinite = false) const;
  /// The same on tensors, whose type and shape are checked.
  runtime::LayerStats operator()(const runtime::HostTensor &x,
                                 runtime::HostTensor &y,
                                 bool allowNonFinite = false) const;

  /// One call on device memory (cuda backend): `x` and `y` are CUDA
  /// device pointers of [tokens, d_model] in the activation type; nothing
  /// is copied but the statistics, and the call returns when the layer is
  /// done. Only for code whose host part touches no buffer
  /// (callsOnDevice()); the tokens' finiteness is not checked.
  runtime::LayerStats callOnDevice(const void *x, void *y) const;

  /// Seconds of each of `runs` calls on `x` into `y` (tensors as for a
  /// call; finiteness not checked), made in a C++ loop. On the GPU, CUDA
  /// events time each call's device work, with the tokens and the output
  /// kept in device memory (copied there once) when callsOnDevice().
  std::vector<double> timeCalls(const runtime::HostTensor &x,
                                runtime::HostTensor &y, int64_t runs) const;

  const LayerDescription &description() const;
  /// Whether this is a GPU call (the results are on the host after it).
  bool onGpu() const;
  /// Whether callOnDevice() is possible: cuda code whose buffers all live
  /// in device memory.
  bool callsOnDevice() const;

  struct Impl;

private:
  friend class CompiledLayer;
  explicit BoundLayer(std::shared_ptr<Impl> impl) : impl(std::move(impl)) {}
  std::shared_ptr<Impl> impl;
};

/// The version of the library (MAJOR.MINOR.PATCH), as find_package(MoE)
/// checks it.
const char *version();

/// The element type of the expert weights a safetensors file stores (f32,
/// bf16 or f16; f32 when it cannot tell), for CompileOptions::weightType.
std::string weightTypeOf(const std::string &safetensorsPath,
                         const std::string &prefix = "");

} // namespace moe

#endif // MOE_RUNNER_LAYER_H
