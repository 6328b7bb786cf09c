//===- Npy.h - Reading and writing NumPy .npy files -------------*- C++ -*-===//
//
// The npy format (versions 1.0, 2.0 and 3.0) for little-endian, C-order
// arrays of float32, float64, float16, int64, int32 and bool. The header,
// a Python dict literal, is parsed as such, so any spacing and key order
// numpy or other writers produce is accepted.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_NPY_H
#define MOE_RUNTIME_NPY_H

#include "moe/Runtime/Tensor.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moe::runtime {

/// What the header of an npy file says.
struct NpyHeader {
  /// The array protocol type string, e.g. `<f4`.
  std::string descr;
  /// The element type `descr` stands for.
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  /// Offset of the array data from the start of the file.
  std::size_t dataOffset = 0;
};

/// Reads and checks the header of the npy file at `path`, without the data.
/// Throws `Error` (naming `path`) for a file that is not a supported npy
/// file: bad magic, unknown version, malformed header, Fortran order, a
/// big-endian or unsupported dtype.
NpyHeader readNpyHeader(const std::string &path);

/// Reads the npy file at `path`. Throws `Error` naming `path` for everything
/// `readNpyHeader` rejects and for truncated data or trailing bytes.
HostTensor readNpy(const std::string &path);

/// Reads the npy file at `path` and requires an array of `dtype` and, unless
/// `rank` is negative, of that rank; otherwise throws `Error` such as
/// `x.npy: error: expected a float32 array of rank 2, got '<f8' shape (4, 8)`.
HostTensor readNpyAs(const std::string &path, DType dtype, int64_t rank = -1);

/// Writes `tensor` as an npy file (version 1.0, or 2.0 for a huge header)
/// atomically (see `writeFileAtomically`). BF16 has no npy type: such
/// tensors are rejected with `Error`; convert them with `toF32` first.
void writeNpy(const std::string &path, const HostTensor &tensor);

/// The npy type string of `dtype` (`<f4`, ...), or an empty string for BF16.
std::string npyDescr(DType dtype);

/// NumPy's name of `dtype`: `float32`, `bfloat16`, `float16`, `float64`,
/// `int64`, `int32`, `bool`.
std::string_view numpyTypeName(DType dtype);

/// Formats a shape the way Python prints a tuple: `()`, `(4,)`, `(4, 8)`.
std::string formatTupleShape(const std::vector<int64_t> &shape);

} // namespace moe::runtime

#endif // MOE_RUNTIME_NPY_H
