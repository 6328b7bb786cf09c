//===- Layer.cpp - A compiled MoE layer as a library ----------------------===//
//
// See moe/Runner/Layer.h. This half needs no MLIR or LLVM (moe-gpu-run links
// it on machines that have neither): options, progress lines, CUDA
// artifacts with host code built ahead of time, binding weights (load,
// check, slice to the rank's experts, pack) and calls. Compile.cpp compiles
// specs and modules.
//
//===----------------------------------------------------------------------===//

#include "LayerImpl.h"
#include "moe/Runtime/CudaDriver.h"
#include "moe/Runtime/EntryPoints.h"
#include "moe/Runtime/Error.h"
#include "moe/Runtime/LayerCall.h"
#include "moe/Runtime/SafeTensors.h"
#include "moe/Spec/CudaArtifact.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace rt = ::moe::runtime;
namespace spec = ::moe::spec;
using ::moe::BoundLayer;
using ::moe::CompiledLayer;
using ::moe::CompileOptions;
using ::moe::LayerDescription;
using namespace ::moe::detail;

//===----------------------------------------------------------------------===//
// Shared pieces
//===----------------------------------------------------------------------===//

Progress::Progress(bool wanted) : on(wanted && ::isatty(2)) {}

void Progress::say(const std::string &what) {
  if (!on)
    return;
  std::lock_guard<std::mutex> lock(mutex);
  stage = what;
  start = Clock::now();
  draw();
  if (!ticker.joinable())
    ticker = std::thread([this] { tick(); });
}

void Progress::done() {
  if (!on)
    return;
  {
    std::lock_guard<std::mutex> lock(mutex);
    stopping = true;
  }
  wake.notify_all();
  if (ticker.joinable())
    ticker.join();
  if (!stage.empty())
    std::fprintf(stderr, "\r\033[K");
  stage.clear();
  stopping = false;
}

void Progress::draw() {
  std::fprintf(stderr, "\r\033[Kmoe: %s ... %.1f s", stage.c_str(),
               secondsSince(start));
  std::fflush(stderr);
}

void Progress::tick() {
  std::unique_lock<std::mutex> lock(mutex);
  while (!wake.wait_for(lock, std::chrono::milliseconds(250),
                        [this] { return stopping; }))
    draw();
}

rt::DType moe::detail::dtypeNamed(const std::string &name,
                                  const std::string &option) {
  if (name == "f32")
    return rt::DType::F32;
  if (name == "bf16")
    return rt::DType::BF16;
  if (name == "f16")
    return rt::DType::F16;
  throw rt::Error("moe: error: " + option + ": unknown element type '" + name +
                  "' (choose f32, bf16 or f16)");
}

std::string moe::detail::readTextFile(const std::string &path,
                                      const std::string &what) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw rt::Error(path, std::filesystem::exists(path, ec)
                              ? "not a regular file"
                              : "cannot open " + what +
                                    ": No such file or directory");
  std::ifstream in(path);
  if (!in)
    throw rt::Error(path, "cannot open " + what + ": " + std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void moe::detail::requireOwnActivationType(const CompileOptions &options) {
  if (options.activationType != "f32")
    throw rt::Error(options.tool +
                    ": error: --act-dtype applies to --spec; the "
                    "input type of a --module or --artifact gives its "
                    "activations");
}

rt::HostTensor moe::detail::layerTokens(rt::HostTensor x,
                                        const std::string &path,
                                        const LayerDescription &d,
                                        const std::string &taker) {
  if (x.dim(1) != d.spec.dModel)
    throw rt::Error(
        path, "input has width " + std::to_string(x.dim(1)) +
                  ", expected d_model = " + std::to_string(d.spec.dModel) +
                  " (from " + d.source + ")");
  if (x.dim(0) != d.tokens)
    throw rt::Error(path, "input has " + std::to_string(x.dim(0)) +
                              " tokens, " + taker + " takes " +
                              std::to_string(d.tokens));
  return x.dtype() == d.activationType ? std::move(x)
                                       : x.castTo(d.activationType);
}

std::vector<std::pair<std::string, void *>>
moe::detail::runtimeSymbols(const CompileOptions &options) {
  std::vector<std::pair<std::string, void *>> all = rt::collectiveEntryPoints();
  if (options.backend == "cuda") {
    try {
      rt::cuda::initialize(static_cast<int>(options.gpuDevice));
    } catch (const rt::Error &e) {
      throw rt::Error(options.tool + ": error: --backend cuda: " + e.what());
    }
    auto driver = rt::cuda::entryPoints();
    all.insert(all.end(), driver.begin(), driver.end());
  }
  return all;
}

namespace moe {
void checkCompileOptions(const CompileOptions &options) {
  const std::string &backend = options.backend;
  const std::string error = options.tool + ": error: ";
  if (backend != "cpu" && backend != "cuda" && backend != "gpu-loops")
    throw rt::Error(error + "--backend: unknown backend '" + backend +
                    "' (choose cpu, cuda or gpu-loops)");
  if (backend == "cuda" && !rt::cuda::built())
    throw rt::Error(error +
                    "--backend cuda: this build has no CUDA "
                    "backend (the CUDA toolkit was not found when it was "
                    "configured)");
  if (options.activationType != "f32" && options.activationType != "bf16")
    throw rt::Error(error + "--act-dtype: unknown type '" +
                    options.activationType + "' (choose f32 or bf16)");
  if (options.optLevel > 3)
    throw rt::Error(error + "optimisation level " +
                    std::to_string(options.optLevel) + " (choose 0 to 3)");
  if (options.shards < 1 || options.replicas < 1 || options.rank < 0 ||
      options.rank >= options.shards * options.replicas)
    throw rt::Error(error + "rank " + std::to_string(options.rank) + " of " +
                    std::to_string(options.shards) + " shards x " +
                    std::to_string(options.replicas) + " replicas");
  if (options.replicas > 1 && backend == "cuda")
    throw rt::Error(error + "--replicas runs on the CPU backend only");
  if (options.gpuDevice < 0)
    throw rt::Error(error + "--device " + std::to_string(options.gpuDevice) +
                    " (device numbers start at 0)");
  if (options.cudaGraph && backend != "cuda")
    throw rt::Error(error + "--cuda-graph with --backend " + backend +
                    " (CUDA graphs are for --backend cuda)");
  if (options.cudaGraph && options.shards * options.replicas != 1)
    throw rt::Error(error + "--cuda-graph with " +
                    std::to_string(options.shards) +
                    " shards (a graph records one rank's calls; the "
                    "collectives between ranks are not captured)");
}
} // namespace moe

//===----------------------------------------------------------------------===//
// CompiledLayer
//===----------------------------------------------------------------------===//

namespace {

/// The host code of a CUDA artifact compiled ahead of time into a shared
/// object (tools/gpu_package.sh). It resolves the `mgpu*` ABI and the
/// allocation functions against this process (which must export them), and
/// its global constructors load the kernels when it is opened; closing it
/// runs the destructors that unload them.
class HostObjectCode : public LayerCode {
public:
  HostObjectCode(const std::string &path, const std::string &entry,
                 const std::string &signature) {
    // A bare file name would be searched on the library path.
    std::string where =
        path.find('/') == std::string::npos ? "./" + path : path;
    handle = dlopen(where.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle)
      throw rt::Error(path,
                      std::string("cannot load the host code: ") + dlerror());
    // Closed at once when it is not this artifact's: its destructors must
    // run while the driver backend is alive.
    const char *theirs =
        static_cast<const char *>(dlsym(handle, "moe_artifact_signature"));
    std::string problem;
    if (!theirs)
      problem = "not the host code of a CUDA artifact (no "
                "moe_artifact_signature)";
    else if (signature != theirs)
      problem = "the host code is for " + std::string(theirs) +
                ", the artifact for " + signature;
    else if (!(function = dlsym(handle, entry.c_str())))
      problem = "the host code has no entry '" + entry + "'";
    if (!problem.empty()) {
      dlclose(handle);
      throw rt::Error(path, problem);
    }
  }
  ~HostObjectCode() override { dlclose(handle); }
  HostObjectCode(const HostObjectCode &) = delete;
  HostObjectCode &operator=(const HostObjectCode &) = delete;

  void invoke(const std::vector<void *> &d) const override {
    if (!rt::callLayerEntry(function, d))
      throw rt::Error("moe: error: a layer entry takes " +
                      std::to_string(rt::kMinLayerArguments) + " to " +
                      std::to_string(rt::kMaxLayerArguments) +
                      " buffers, not " + std::to_string(d.size()));
  }

private:
  void *handle = nullptr;
  void *function = nullptr;
};

} // namespace

void CompiledLayer::Impl::ensureCode() {
  std::lock_guard<std::mutex> lock(loading);
  if (code)
    return;
  auto start = Clock::now();
  code = loadCode();
  seconds += secondsSince(start);
}

std::shared_ptr<CompiledLayer::Impl>
CompiledLayer::Impl::describeArtifact(const std::string &path,
                                      const CompileOptions &options) {
  ::moe::checkCompileOptions(options);
  if (options.backend != "cuda")
    throw rt::Error(options.tool + ": error: --artifact holds GPU code: run "
                                   "it with --backend cuda");
  if (options.runtimeChecks)
    throw rt::Error(options.tool +
                    ": error: --runtime-checks is compiled into the "
                    "code: an artifact is already compiled (build it with "
                    "moe-gpu-pipeline{runtime-checks=1})");
  requireOwnActivationType(options);
  auto start = Clock::now();
  spec::CudaArtifactResult parsed =
      spec::parseCudaArtifact(readTextFile(path, "the artifact"), path);
  if (!parsed)
    throw rt::Error(parsed.error);
  auto impl = std::make_shared<Impl>();
  impl->options = options;
  impl->artifact = *parsed.artifact;
  const spec::CudaArtifact &artifact = *impl->artifact;
  LayerDescription &d = impl->description;
  d.source = path;
  d.backend = "cuda";
  d.spec = artifact.weightSpec();
  d.capacity = artifact.capacity;
  d.activationType = dtypeNamed(artifact.buffer("input")->dtype, "input");
  d.routerType = dtypeNamed(artifact.buffer("router")->dtype, "router");
  d.weightType = dtypeNamed(artifact.buffer("w_in")->dtype, "w_in");
  d.tokens = artifact.tokens;
  d.globalTokens = artifact.tokens * impl->world();
  impl->hostAccess = !artifact.deviceMemory;
  impl->seconds = secondsSince(start);
  return impl;
}

CompiledLayer CompiledLayer::fromArtifact(const std::string &path,
                                          const std::string &hostLibrary,
                                          const CompileOptions &options) {
  std::shared_ptr<Impl> impl = Impl::describeArtifact(path, options);
  Impl *layer = impl.get();
  impl->loadCode = [layer, hostLibrary]() -> std::unique_ptr<LayerCode> {
    // The driver first: the host code's constructors load the kernels.
    runtimeSymbols(layer->options);
    return std::make_unique<HostObjectCode>(hostLibrary, layer->artifact->entry,
                                            layer->artifact->signature);
  };
  return CompiledLayer(std::move(impl));
}

const LayerDescription &CompiledLayer::description() const {
  return impl->description;
}
double CompiledLayer::compileSeconds() const { return impl->seconds; }
bool CompiledLayer::fromCache() const { return impl->cached; }
size_t CompiledLayer::packedWeightCount() const { return impl->packed.size(); }
::moe::ExchangeTraffic CompiledLayer::exchangeTraffic() const {
  return impl->traffic;
}

//===----------------------------------------------------------------------===//
// BoundLayer
//===----------------------------------------------------------------------===//

struct BoundLayer::Impl {
  std::shared_ptr<CompiledLayer::Impl> layer;
  /// The weights as the kernels read them (the rank's experts, packed).
  rt::LayerWeights weights;
  /// Their device copies on the GPU.
  std::unique_ptr<rt::DeviceWeights> device;
  rt::Placement placement = rt::Placement::Host;
  /// GPU calls share the driver's state (scratch memory, the stream).
  std::mutex gpuCall;

  /// CompileOptions::cudaGraph: the first call recorded, then replayed.
  /// Tokens and output (`io`) and the statistics (`statistics`) pass
  /// through device buffers of the bound layer, whose addresses the
  /// recorded kernels hold.
  struct Graph {
    std::unique_ptr<rt::DeviceWeights> io, statistics;
    rt::cuda::CallGraph calls;
  };
  std::unique_ptr<Graph> graph;

  /// An error unless the tokens `x` and the output `y` are [tokens,
  /// d_model] of the activation type.
  void checkTensors(const rt::HostTensor &x, const rt::HostTensor &y) const {
    const LayerDescription &d = layer->description;
    std::vector<int64_t> shape{d.tokens, d.spec.dModel};
    for (const auto &[tensor, name] :
         {std::pair<const rt::HostTensor *, const char *>{&x, "input"},
          {&y, "output"}})
      if (tensor->dtype() != d.activationType || tensor->shape() != shape)
        throw rt::Error(layer->errorPrefix() + "the " + name + " is " +
                        std::string(rt::dtypeName(tensor->dtype())) +
                        rt::formatShape(tensor->shape()) +
                        ", the layer takes " +
                        std::string(rt::dtypeName(d.activationType)) +
                        rt::formatShape(shape));
  }

  /// One call on tokens `x` into the output `y` ([tokens, d_model] of the
  /// activation type; device memory with `ioOnDevice`).
  rt::LayerStats call(const void *x, void *y, bool ioOnDevice);
  /// The same through the CUDA graph.
  rt::LayerStats callGraph(const void *x, void *y, bool ioOnDevice);
};

BoundLayer CompiledLayer::bind(const std::string &safetensorsPath,
                               const std::string &prefix,
                               bool allowNonFinite) const {
  Progress progress(impl->options.progress);
  rt::SafeTensorsFile file = rt::SafeTensorsFile::open(safetensorsPath);
  std::string what = "loading the weights of " + safetensorsPath;
  progress.say(what);
  rt::LayerWeights weights = rt::loadLayerWeights(
      file, impl->description.spec, impl->description.weightType, prefix,
      [&](int64_t tensors, uint64_t bytes) {
        char line[64];
        std::snprintf(line, sizeof(line), ": %lld tensors, %.2f GB",
                      static_cast<long long>(tensors), double(bytes) * 1e-9);
        progress.say(what + line);
      });
  progress.done();
  return bindLoaded(std::move(weights), safetensorsPath, allowNonFinite);
}

BoundLayer CompiledLayer::bind(std::map<std::string, rt::HostTensor> named,
                               bool allowNonFinite) const {
  const std::string source = "<weights>";
  rt::LayerWeights weights =
      rt::layerWeightsFromNamed(std::move(named), impl->description.spec,
                                impl->description.weightType, source);
  return bindLoaded(std::move(weights), source, allowNonFinite);
}

BoundLayer CompiledLayer::bindLoaded(rt::LayerWeights weights,
                                     const std::string &source,
                                     bool allowNonFinite) const {
  const LayerDescription &d = impl->description;
  const CompileOptions &o = impl->options;
  impl->ensureCode();
  if (!allowNonFinite)
    rt::requireFiniteWeights(weights, source, "--allow-non-finite");
  if (d.routerType != weights.router.dtype())
    weights.router = weights.router.castTo(d.routerType);
  if (o.shards > 1) {
    // Rank r holds the experts [(r mod N)·E/N, (r mod N + 1)·E/N).
    int64_t local = d.spec.numExperts / o.shards;
    for (rt::HostTensor *w : {&weights.wIn, &weights.wGate, &weights.wOut})
      if (*w)
        *w = w->rows((o.rank % o.shards) * local, local);
  }
  auto bound = std::make_shared<BoundLayer::Impl>();
  bound->layer = impl;
  bound->weights = std::move(weights);
  rt::HostTensor noTokens;
  std::vector<rt::HostTensor *> inputs = bound->weights.callInputs(noTokens);
  for (const auto &[argument, panel] : impl->packed) {
    if (argument == 0 || argument >= inputs.size())
      throw rt::Error(
          impl->errorPrefix() + "the compiled layer packs argument " +
          std::to_string(argument) + " of " + std::to_string(inputs.size()));
    *inputs[argument] = inputs[argument]->packPanels(panel);
  }
  // Views of caller memory that are still views (not packed, sliced or
  // converted) become the bound layer's own: calls may come long after
  // the caller's arrays are gone.
  for (rt::HostTensor *weight : inputs)
    if (weight->isView())
      *weight = weight->clone();
  if (impl->onGpu()) {
    bound->placement =
        impl->hostAccess ? rt::Placement::Managed : rt::Placement::Device;
    bound->device = std::make_unique<rt::DeviceWeights>(
        std::vector<rt::HostTensor *>(inputs.begin() + 1, inputs.end()));
  }
  if (o.cudaGraph) {
    // (checkCompileOptions made sure of the backend and the one rank.)
    if (bound->placement != rt::Placement::Device)
      throw rt::Error(impl->errorPrefix() +
                      "--cuda-graph needs code whose buffers all live in "
                      "device memory; this layer's host code reads its "
                      "buffers (--fusion off?)");
    // Zeroed host tensors of the call's shapes, copied to the device once.
    rt::LayerResults shapes = rt::LayerResults::zeros(
        d.activationType, d.tokens, d.spec.dModel, d.spec.numExperts);
    rt::HostTensor tokens =
        rt::HostTensor::zeros(d.activationType, {d.tokens, d.spec.dModel});
    bound->graph = std::make_unique<BoundLayer::Impl::Graph>();
    bound->graph->io = std::make_unique<rt::DeviceWeights>(
        std::vector<rt::HostTensor *>{&tokens, &shapes.output});
    bound->graph->statistics =
        std::make_unique<rt::DeviceWeights>(shapes.statistics());
  }
  return BoundLayer(std::move(bound));
}

rt::LayerStats BoundLayer::operator()(const void *x, void *y,
                                      bool allowNonFinite) const {
  const LayerDescription &d = impl->layer->description;
  rt::HostTensor in = rt::HostTensor::view(
      d.activationType, {d.tokens, d.spec.dModel}, const_cast<void *>(x));
  rt::HostTensor out =
      rt::HostTensor::view(d.activationType, {d.tokens, d.spec.dModel}, y);
  return (*this)(in, out, allowNonFinite);
}

rt::LayerStats BoundLayer::operator()(const rt::HostTensor &x,
                                      rt::HostTensor &y,
                                      bool allowNonFinite) const {
  impl->checkTensors(x, y);
  if (!allowNonFinite)
    rt::requireFiniteTokens(x, "<input>", "allow_non_finite");
  return impl->call(x.data(), y.data(), false);
}

rt::LayerStats BoundLayer::callOnDevice(const void *x, void *y) const {
  const LayerDescription &d = impl->layer->description;
  if (!impl->layer->onGpu() || impl->placement != rt::Placement::Device)
    throw rt::Error(impl->layer->errorPrefix() +
                    (impl->layer->onGpu()
                         ? "this layer's host code reads its buffers: call "
                           "it on host memory"
                         : "a layer compiled for " + d.backend +
                               " takes host memory, not device memory"));
  return impl->call(x, y, true);
}

rt::LayerStats BoundLayer::Impl::call(const void *x, void *y, bool ioOnDevice) {
  if (graph)
    return callGraph(x, y, ioOnDevice);
  const LayerDescription &d = layer->description;
  std::vector<int64_t> shape{d.tokens, d.spec.dModel};
  // The output is the caller's memory itself.
  rt::LayerResults results = rt::LayerResults::into(
      rt::HostTensor::view(d.activationType, shape, y), d.spec.numExperts);
  rt::HostTensor input =
      rt::HostTensor::view(d.activationType, shape, const_cast<void *>(x));
  std::vector<rt::HostTensor *> inputs = weights.callInputs(input);
  std::unique_lock<std::mutex> lock(gpuCall, std::defer_lock);
  if (placement != rt::Placement::Host)
    lock.lock();
  rt::CallArguments call(inputs, results, placement, device.get(), ioOnDevice);
  layer->invoke(call.get());
  call.fetchResults();
  return results.stats(layer->description.capacity);
}

rt::LayerStats BoundLayer::Impl::callGraph(const void *x, void *y,
                                           bool ioOnDevice) {
  const LayerDescription &d = layer->description;
  std::vector<int64_t> shape{d.tokens, d.spec.dModel};
  size_t bytes =
      size_t(d.tokens * d.spec.dModel) * rt::elementSize(d.activationType);
  std::lock_guard<std::mutex> lock(gpuCall);
  void *tokens = graph->io->at(0), *output = graph->io->at(1);
  if (ioOnDevice)
    rt::cuda::copyOnDevice(tokens, x, bytes);
  else
    rt::cuda::copyToDevice(tokens, x, bytes);
  if (!graph->calls.captured()) {
    rt::HostTensor input =
        rt::HostTensor::view(d.activationType, shape, tokens);
    rt::LayerResults recorded = rt::LayerResults::into(
        rt::HostTensor::view(d.activationType, shape, output),
        d.spec.numExperts);
    std::vector<rt::HostTensor *> inputs = weights.callInputs(input);
    rt::CallArguments call(inputs, recorded, placement, device.get(),
                           /*ioOnDevice=*/true, graph->statistics.get());
    graph->calls.capture([&] { layer->invoke(call.get()); });
  }
  graph->calls.launch();
  rt::LayerResults results = rt::LayerResults::into(
      rt::HostTensor::view(d.activationType, shape, y), d.spec.numExperts);
  if (ioOnDevice)
    rt::cuda::copyOnDevice(y, output, bytes);
  else
    rt::cuda::copyToHost(y, output, bytes);
  std::vector<rt::HostTensor *> statistics = results.statistics();
  for (size_t i = 0; i < statistics.size(); ++i)
    rt::cuda::copyToHost(statistics[i]->data(), graph->statistics->at(i),
                         statistics[i]->byteSize());
  return results.stats(d.capacity);
}

std::vector<double> BoundLayer::timeCalls(const rt::HostTensor &x,
                                          rt::HostTensor &y,
                                          int64_t runs) const {
  if (!callsOnDevice())
    return rt::timeCalls(
        runs, [&] { (*this)(x, y, /*allowNonFinite=*/true); }, onGpu());
  impl->checkTensors(x, y);
  // Copied to device memory once (DeviceWeights only reads the views).
  rt::HostTensor input =
      rt::HostTensor::view(x.dtype(), x.shape(), const_cast<void *>(x.data()));
  rt::HostTensor output = rt::HostTensor::view(y.dtype(), y.shape(), y.data());
  rt::DeviceWeights onDevice({&input, &output});
  return rt::timeCalls(
      runs, [&] { callOnDevice(onDevice.at(0), onDevice.at(1)); }, true);
}

bool BoundLayer::callsOnDevice() const {
  return impl->placement == rt::Placement::Device;
}

const LayerDescription &BoundLayer::description() const {
  return impl->layer->description;
}

bool BoundLayer::onGpu() const { return impl->layer->onGpu(); }

std::string(::moe::weightTypeOf)(const std::string &safetensorsPath,
                                 const std::string &prefix) {
  return std::string(rt::dtypeName(rt::storedExpertType(
      rt::SafeTensorsFile::open(safetensorsPath), prefix)));
}
