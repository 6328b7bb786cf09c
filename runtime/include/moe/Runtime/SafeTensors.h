//===- SafeTensors.h - Reading and writing safetensors files ----*- C++ -*-===//
//
// The safetensors format: an 8-byte little-endian header length, a JSON
// header mapping each tensor name to its dtype, shape and byte range, then
// the raw little-endian data. Files are validated completely when opened
// and stay memory-mapped; tensors are copied out on request.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_SAFETENSORS_H
#define MOE_RUNTIME_SAFETENSORS_H

#include "moe/Runtime/Tensor.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace moe::runtime {

/// What the header says about one tensor.
struct TensorInfo {
  /// The safetensors dtype string (`F32`, `BF16`, `U8`, ...).
  std::string dtypeName;
  /// The runtime type for `dtypeName`, absent when the runtime does not
  /// support it (it may still be listed and inspected).
  std::optional<DType> dtype;
  std::vector<int64_t> shape;
  /// Byte range of the data, relative to the start of the data section.
  std::size_t begin = 0;
  std::size_t end = 0;
};

/// An open, validated safetensors file. Copies share the mapping.
class SafeTensorsFile {
public:
  /// Opens and validates the file at `path`: the header length must fit in
  /// the file, the header must be a JSON object whose entries (other than
  /// `__metadata__`) each have a known `dtype`, a `shape` of non-negative
  /// integers and `data_offsets` inside the data section that span exactly
  /// the shape's bytes, without overlapping another tensor. Throws `Error`
  /// naming `path` otherwise.
  static SafeTensorsFile open(const std::string &path);

  /// The path the file was opened with; messages about its tensors use it.
  const std::string &path() const { return filePath; }
  /// The tensor names, sorted.
  std::vector<std::string> names() const;
  /// True when the file holds a tensor named `name`.
  bool has(const std::string &name) const;
  /// The header entry of `name`. Throws `Error` if there is none.
  const TensorInfo &info(const std::string &name) const;
  /// The string entries of `__metadata__` (empty when absent).
  const std::map<std::string, std::string> &metadata() const { return meta; }
  /// Tensor `name`: where its bytes are 64-byte aligned in the file, the
  /// mapped bytes themselves (copy-on-write; the tensor keeps the mapping
  /// alive), else a copy. Throws `Error` naming the file and the tensor
  /// when it is missing or its dtype is not one of F32, BF16, F16, F64, I64,
  /// I32, BOOL.
  HostTensor get(const std::string &name) const;

private:
  struct Mapping;

  std::string filePath;
  std::map<std::string, TensorInfo> tensors;
  std::map<std::string, std::string> meta;
  std::shared_ptr<const Mapping> mapping;
  /// Offset of the data section in the file.
  std::size_t dataStart = 0;
};

/// The safetensors dtype string of `dtype` (`F32`, `BF16`, `F16`, `F64`,
/// `I64`, `I32`, `BOOL`).
std::string safeTensorsDTypeName(DType dtype);

/// Writes the named tensors to `path` atomically (see `writeFileAtomically`),
/// in the order given, with optional `__metadata__` entries. Throws `Error`
/// for a duplicate or empty name, a null tensor, or a failed write.
void writeSafeTensors(
    const std::string &path,
    const std::vector<std::pair<std::string, const HostTensor *>> &tensors,
    const std::map<std::string, std::string> &metadata = {});

} // namespace moe::runtime

#endif // MOE_RUNTIME_SAFETENSORS_H
