//===- LayerCall.cpp - Calling a compiled layer function ------------------===//
//
// See moe/Runtime/LayerCall.h.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/LayerCall.h"
#include "moe/Runtime/CudaDriver.h"
#include "moe/Runtime/Error.h"
#include "moe/Runtime/FileIO.h"
#include "moe/Runtime/Npy.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

using namespace moe::runtime;

LayerResults LayerResults::zeros(DType activation, int64_t tokens,
                                 int64_t width, int64_t experts) {
  return {HostTensor::zeros(activation, {tokens, width}),
          HostTensor::zeros(DType::I64, {experts}),
          HostTensor::zeros(DType::I64, {}), HostTensor::zeros(DType::F32, {}),
          HostTensor::zeros(DType::F32, {})};
}

LayerResults LayerResults::into(HostTensor output, int64_t experts) {
  return {std::move(output), HostTensor::zeros(DType::I64, {experts}),
          HostTensor::zeros(DType::I64, {}), HostTensor::zeros(DType::F32, {}),
          HostTensor::zeros(DType::F32, {})};
}

LayerStats LayerResults::stats(std::optional<int64_t> capacity) const {
  LayerStats stats;
  stats.capacity = capacity;
  const int64_t *counts = tokensPerExpert.dataAs<int64_t>();
  stats.tokensPerExpert.assign(counts, counts + tokensPerExpert.dim(0));
  stats.dropped = *dropped.dataAs<int64_t>();
  stats.loadBalanceLoss = *loadBalanceLoss.dataAs<float>();
  stats.routerZLoss = *routerZLoss.dataAs<float>();
  return stats;
}

DeviceWeights::DeviceWeights(const std::vector<HostTensor *> &weights) {
  for (HostTensor *weight : weights) {
    void *copy = cuda::allocate(weight->byteSize(), cuda::Memory::Device);
    copies.push_back(copy);
    cuda::copyToDevice(copy, weight->data(), weight->byteSize());
  }
}

DeviceWeights::~DeviceWeights() {
  for (void *copy : copies)
    cuda::release(copy);
}

CallArguments::CallArguments(const std::vector<HostTensor *> &inputs,
                             LayerResults &results, Placement placement,
                             const DeviceWeights *resident, bool ioOnDevice,
                             const DeviceWeights *statistics)
    : tensors(inputs), firstResult(inputs.size()), placement(placement),
      ioOnDevice(ioOnDevice), statisticsOnDevice(statistics) {
  bool onGpu = placement != Placement::Host;
  if ((ioOnDevice || statistics) && placement != Placement::Device)
    throw Error("moe-runtime", "tokens and output in device memory need a "
                               "layer whose host code touches no buffer");
  if (statistics && statistics->size() != 4)
    throw Error("moe-runtime", "a call's statistics are 4 buffers, not " +
                                   std::to_string(statistics->size()));
  if (onGpu)
    cuda::setScratchMemory(placement == Placement::Device
                               ? cuda::Memory::Device
                               : cuda::Memory::Managed);
  tensors.push_back(&results.output);
  for (HostTensor *statistic : results.statistics())
    tensors.push_back(statistic);
  if (resident && onGpu && resident->size() + 1 != firstResult)
    throw Error("moe-runtime", "the bound layer has " +
                                   std::to_string(resident->size()) +
                                   " weights, the call passes " +
                                   std::to_string(firstResult - 1));
  descriptors.reserve(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    HostTensor *tensor = tensors[i];
    void *data = tensor->data();
    // The weights (inputs after the tokens) are read by kernels only:
    // plain device memory. Tokens and results too unless the host code
    // reads or writes them: then managed memory.
    bool weight = i > 0 && i < firstResult;
    bool io = i == 0 || i == firstResult;
    if (ioOnDevice && io) {
      deviceData.push_back(data);
      owned.push_back(false);
    } else if (statistics && i > firstResult) {
      data = statistics->at(i - firstResult - 1);
      deviceData.push_back(data);
      owned.push_back(false);
    } else if (onGpu && weight && resident) {
      data = resident->at(i - 1);
      deviceData.push_back(data);
      owned.push_back(false);
    } else if (onGpu) {
      bool device = weight || placement == Placement::Device;
      data = cuda::allocate(tensor->byteSize(), device ? cuda::Memory::Device
                                                       : cuda::Memory::Managed);
      if (device)
        cuda::copyToDevice(data, tensor->data(), tensor->byteSize());
      else
        std::memcpy(data, tensor->data(), tensor->byteSize());
      deviceData.push_back(data);
      owned.push_back(true);
    }
    pointers.push_back(descriptors.emplace_back(data, tensor->shape()).get());
  }
}

CallArguments::~CallArguments() {
  for (size_t i = 0; i < deviceData.size(); ++i)
    if (owned[i])
      cuda::release(deviceData[i]);
}

void CallArguments::fetchResults() {
  if (placement == Placement::Host)
    return;
  cuda::synchronize();
  size_t end = statisticsOnDevice ? firstResult + 1 : tensors.size();
  for (size_t i = firstResult + (ioOnDevice ? 1 : 0); i < end; ++i)
    if (placement == Placement::Device)
      cuda::copyToHost(tensors[i]->data(), deviceData[i],
                       tensors[i]->byteSize());
    else
      std::memcpy(tensors[i]->data(), deviceData[i], tensors[i]->byteSize());
}

double moe::runtime::keptExpertFlops(const LayerStats &stats, int64_t dModel,
                                     int64_t dFF, bool gated) {
  int64_t kept = 0;
  for (int64_t c : stats.tokensPerExpert)
    kept += c;
  return double(kept) * 2.0 * double(dModel) * double(dFF) * (gated ? 3 : 2);
}

std::vector<double> moe::runtime::timeCalls(int64_t runs,
                                            const std::function<void()> &call,
                                            bool onGpu) {
  std::vector<double> times;
  // On the GPU, CUDA events time the device work of each call.
  std::optional<cuda::EventTimer> events;
  if (onGpu)
    events.emplace();
  for (int64_t i = 0; i < runs; ++i) {
    auto start = std::chrono::steady_clock::now();
    if (events)
      events->start();
    call();
    times.push_back(events ? events->stop()
                           : std::chrono::duration<double>(
                                 std::chrono::steady_clock::now() - start)
                                 .count());
  }
  return times;
}

std::string moe::runtime::benchLine(const std::string &backend, int64_t tokens,
                                    int64_t ranks, std::vector<double> times,
                                    double compileSeconds, double expertFlops) {
  std::sort(times.begin(), times.end());
  double median = times[times.size() / 2];
  char line[512];
  std::snprintf(
      line, sizeof(line),
      "BENCH {\"backend\": \"%s\", \"tokens\": %lld, \"ranks\": "
      "%lld, \"runs\": %zu, \"compile_s\": %.4f, \"median_s\": "
      "%.6f, \"min_s\": %.6f, \"max_s\": %.6f, \"tokens_per_s\": %.1f, "
      "\"expert_gflop\": %.4f, \"expert_gflops\": %.2f}",
      backend.c_str(), static_cast<long long>(tokens),
      static_cast<long long>(ranks), times.size(), compileSeconds, median,
      times.front(), times.back(), double(tokens) / median, expertFlops * 1e-9,
      expertFlops * 1e-9 / median);
  return line;
}

void moe::runtime::writeLayerOutputs(const std::string &outputPath,
                                     const HostTensor &y,
                                     const std::string &statsPath,
                                     const std::string &statsText) {
  // Statistics first: if either write fails, no output is left behind.
  if (!statsPath.empty())
    writeTextFileAtomically(statsPath, statsText);
  try {
    writeNpy(outputPath, y);
  } catch (...) {
    if (!statsPath.empty())
      std::remove(statsPath.c_str());
    throw;
  }
}
