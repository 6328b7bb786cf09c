//===- Tensor.h - Element types and host tensors ----------------*- C++ -*-===//
//
// The runtime's data model: a small set of element types, the bit-level
// bfloat16 and float16 conversions, and `HostTensor`, a dense row-major
// (C order) array in 64-byte-aligned host memory that owns its storage.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_TENSOR_H
#define MOE_RUNTIME_TENSOR_H

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moe::runtime {

/// Element types of host tensors.
enum class DType { F32, BF16, F16, F64, I64, I32, Bool };

/// Bytes per element of `dtype`.
std::size_t elementSize(DType dtype);
/// The short name used in messages: `f32`, `bf16`, `f16`, `f64`, `i64`,
/// `i32`, `bool`.
std::string_view dtypeName(DType dtype);
/// True for the floating-point types (F32, BF16, F16, F64).
bool isFloatingPoint(DType dtype);

/// Formats a shape as `[4, 16, 32]` (`[]` for a scalar).
std::string formatShape(const std::vector<int64_t> &shape);

/// The bytes of a tensor of `shape` with elements of `elementBytes` bytes,
/// or std::nullopt when a dimension is negative or the size does not fit an
/// int64_t: what readers check a file's claims against before they allocate
/// anything.
std::optional<std::size_t> byteSizeOf(std::size_t elementBytes,
                                      const std::vector<int64_t> &shape);

/// The bits of a float.
inline uint32_t floatBits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

/// The float with the given bits.
inline float floatFromBits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

/// Rounds a float to bfloat16, to nearest with ties to even. Infinities stay
/// infinite, values beyond the bfloat16 range become infinities, and a NaN
/// stays a (quiet) NaN with its sign.
inline uint16_t f32ToBF16(float value) {
  uint32_t bits = floatBits(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  uint32_t bias = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + bias) >> 16);
}

/// Widens a bfloat16 to float; exact.
inline float bf16ToF32(uint16_t value) {
  return floatFromBits(static_cast<uint32_t>(value) << 16);
}

/// Rounds a float to IEEE half precision, to nearest with ties to even,
/// with subnormals, overflow to infinity and NaN preserved.
uint16_t f32ToF16(float value);
/// Widens an IEEE half to float; exact.
float f16ToF32(uint16_t value);

/// A dense, row-major array on the host that owns 64-byte-aligned storage.
/// A default-constructed tensor is null (holds no array, see `isNull`).
/// Tensors move cheaply; copies are explicit (`clone`).
class HostTensor {
public:
  /// The alignment in bytes of every tensor's data.
  static constexpr std::size_t alignment = 64;

  /// A null tensor.
  HostTensor() = default;
  /// Moves leave the source null.
  HostTensor(HostTensor &&) noexcept = default;
  HostTensor &operator=(HostTensor &&) noexcept = default;
  HostTensor(const HostTensor &) = delete;
  HostTensor &operator=(const HostTensor &) = delete;

  /// A tensor of the given type and shape filled with zero bytes. Throws
  /// `Error` for a negative dimension or a size that overflows.
  static HostTensor zeros(DType dtype, std::vector<int64_t> shape);
  /// A tensor of the given type and shape holding a copy of the
  /// `numElements * elementSize(dtype)` bytes at `data`.
  static HostTensor fromBytes(DType dtype, std::vector<int64_t> shape,
                              const void *data);
  /// An F32 tensor holding `values`, whose count must match the shape.
  static HostTensor fromF32(std::vector<int64_t> shape,
                            const std::vector<float> &values);
  /// A tensor over `numElements * elementSize(dtype)` bytes of memory that
  /// the caller owns and keeps alive (and writable, if anything writes the
  /// tensor) for the tensor's lifetime: no copy, nothing freed. Throws
  /// `Error` for a null `data`, a negative dimension or a size that
  /// overflows.
  static HostTensor view(DType dtype, std::vector<int64_t> shape, void *data);
  /// A tensor over `numElements * elementSize(dtype)` bytes at `data`, a
  /// 64-byte-aligned part of memory that `owner` keeps alive (a file
  /// mapping, say): no copy; the tensor shares `owner` until destroyed, so
  /// it is not a view(). Writes must be allowed there. Throws `Error` for a
  /// null or misaligned `data`, a null `owner`, a negative dimension or a
  /// size that overflows.
  static HostTensor shared(DType dtype, std::vector<int64_t> shape, void *data,
                           std::shared_ptr<const void> owner);
  /// Whether the tensor is a view() of memory it does not own.
  bool isView() const {
    return storage && !storage.get_deleter().owns &&
           !storage.get_deleter().owner;
  }

  /// True for a default-constructed (or moved-from) tensor.
  bool isNull() const { return !storage; }
  /// True unless null.
  explicit operator bool() const { return !isNull(); }

  /// The element type.
  DType dtype() const { return type; }
  /// The extents, outermost first.
  const std::vector<int64_t> &shape() const { return dims; }
  /// The number of dimensions (0 for a scalar).
  int64_t rank() const { return static_cast<int64_t>(dims.size()); }
  /// Extent of dimension `index`.
  int64_t dim(std::size_t index) const { return dims.at(index); }
  /// Product of the dimensions (1 for a scalar).
  int64_t numElements() const { return count; }
  /// Bytes of element data: `numElements() * elementSize(dtype())`.
  std::size_t byteSize() const { return bytes; }

  /// The element data; never null for a non-null tensor, even when empty.
  void *data() { return storage.get(); }
  const void *data() const { return storage.get(); }
  /// The element data as `T`. Throws `Error` when `sizeof(T)` is not the
  /// element size.
  template <typename T> T *dataAs() {
    checkElementSize(sizeof(T));
    return static_cast<T *>(data());
  }
  template <typename T> const T *dataAs() const {
    checkElementSize(sizeof(T));
    return static_cast<const T *>(data());
  }

  /// A deep copy.
  HostTensor clone() const;
  /// A copy of rows [first, first + count) along dimension 0. Throws `Error`
  /// for a scalar or rows out of range.
  HostTensor rows(int64_t first, int64_t count) const;
  /// The same elements under another shape with as many elements; the
  /// storage moves into the result. Throws `Error` when the counts differ.
  HostTensor reshaped(std::vector<int64_t> shape) &&;
  /// A float32 copy of a floating-point tensor (F32, BF16, F16, F64; F64 is
  /// rounded to nearest). Throws `Error` for integer or boolean tensors.
  HostTensor toF32() const;
  /// A copy converted to `target`. Floating-point types convert into each
  /// other through float32 with round-to-nearest-even (F64 targets are
  /// widened exactly from float32); any type converts to itself. Other
  /// conversions throw `Error`.
  HostTensor castTo(DType target) const;

  /// The panel layout of the CPU grouped-matmul kernels: a [E, K, N] weight
  /// as [E, N / panel, K, panel], the `panel` columns of each K row of a
  /// panel contiguous, in the same element type. Throws `Error` unless the
  /// tensor has rank 3 and `panel` divides N.
  HostTensor packPanels(int64_t panel) const;

  /// The first element in row-major order that is NaN or ±infinity, for a
  /// floating-point tensor: its index per dimension and "NaN", "+inf" or
  /// "-inf". std::nullopt when every element is finite or the tensor holds
  /// integers or booleans.
  struct NonFinite {
    std::vector<int64_t> index;
    std::string_view kind;
  };
  std::optional<NonFinite> firstNonFinite() const;

private:
  struct AlignedFree {
    AlignedFree() noexcept {}
    explicit AlignedFree(bool owns,
                         std::shared_ptr<const void> owner = nullptr) noexcept
        : owns(owns), owner(std::move(owner)) {}
    /// False for a view() or a shared() tensor: the memory is not freed.
    bool owns = true;
    /// What keeps a shared() tensor's memory alive; null otherwise.
    std::shared_ptr<const void> owner;
    void operator()(std::byte *pointer) const;
  };

  /// A tensor over `data` whose storage `deleter` releases.
  static HostTensor over(DType dtype, std::vector<int64_t> shape, void *data,
                         AlignedFree deleter);

  /// A tensor of the given type and shape with uninitialized storage.
  static HostTensor allocate(DType dtype, std::vector<int64_t> shape);
  void checkElementSize(std::size_t size) const;

  DType type = DType::F32;
  std::vector<int64_t> dims;
  int64_t count = 0;
  std::size_t bytes = 0;
  std::unique_ptr<std::byte[], AlignedFree> storage;
};

} // namespace moe::runtime

#endif // MOE_RUNTIME_TENSOR_H
