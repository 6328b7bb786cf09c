//===- MemRef.h - Strided memref descriptors for compiled code ---*- C++
//-*-===//
//
// The C ABI that compiled layer functions take their buffers in: for a
// rank-N buffer, {allocated pointer, aligned pointer, offset, sizes[N],
// strides[N]}, all 64-bit. Built over host tensors without any MLIR header.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_MEMREF_H
#define MOE_RUNTIME_MEMREF_H

#include "moe/Runtime/Tensor.h"

#include <cstdint>
#include <vector>

namespace moe::runtime {

/// A contiguous row-major descriptor of a host tensor. The tensor must
/// outlive the descriptor.
class MemRefDescriptor {
public:
  explicit MemRefDescriptor(HostTensor &tensor)
      : MemRefDescriptor(tensor.data(), tensor.shape()) {}

  /// A contiguous row-major descriptor of `shape` at `data` (device or
  /// managed memory included).
  MemRefDescriptor(void *data, const std::vector<int64_t> &shape) {
    auto address = reinterpret_cast<int64_t>(data);
    words = {address, address, 0};
    words.insert(words.end(), shape.begin(), shape.end());
    std::vector<int64_t> strides(shape.size(), 1);
    for (size_t i = shape.size(); i-- > 1;)
      strides[i - 1] = strides[i] * shape[i];
    words.insert(words.end(), strides.begin(), strides.end());
  }

  /// What the compiled function's C interface takes for this argument.
  void *get() { return words.data(); }

private:
  std::vector<int64_t> words;
};

} // namespace moe::runtime

#endif // MOE_RUNTIME_MEMREF_H
