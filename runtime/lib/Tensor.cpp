//===- Tensor.cpp - Element types and host tensors ------------------------===//
//
// Element type properties, the float16 conversions, and the storage and
// conversions of `HostTensor`.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/Tensor.h"

#include "moe/Runtime/Error.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

using namespace moe::runtime;

namespace {

/// The source named in messages about in-memory tensors.
constexpr std::string_view kTensorSource = "tensor";

/// Alignment of every tensor's storage, in bytes.
constexpr std::size_t kAlignment = HostTensor::alignment;

} // namespace

std::size_t moe::runtime::elementSize(DType dtype) {
  switch (dtype) {
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::BF16:
  case DType::F16:
    return 2;
  case DType::F64:
  case DType::I64:
    return 8;
  case DType::Bool:
    return 1;
  }
  return 1;
}

std::string_view moe::runtime::dtypeName(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return "f32";
  case DType::BF16:
    return "bf16";
  case DType::F16:
    return "f16";
  case DType::F64:
    return "f64";
  case DType::I64:
    return "i64";
  case DType::I32:
    return "i32";
  case DType::Bool:
    return "bool";
  }
  return "?";
}

bool moe::runtime::isFloatingPoint(DType dtype) {
  return dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16 ||
         dtype == DType::F64;
}

std::string moe::runtime::formatShape(const std::vector<int64_t> &shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i)
      text += ", ";
    text += std::to_string(shape[i]);
  }
  return text + "]";
}

uint16_t moe::runtime::f32ToF16(float value) {
  uint32_t bits = floatBits(value);
  uint32_t sign = (bits >> 16) & 0x8000u;
  uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude >= 0x7f800000u) {
    // Infinity, or NaN: keep the top payload bits and force a quiet NaN.
    uint32_t nan =
        magnitude > 0x7f800000u ? 0x0200u | ((magnitude >> 13) & 0x3ffu) : 0;
    return static_cast<uint16_t>(sign | 0x7c00u | nan);
  }
  // 65520 is halfway between the largest half (65504) and 2^16; the tie goes
  // to the even neighbour, which is infinity.
  if (magnitude >= 0x477ff000u)
    return static_cast<uint16_t>(sign | 0x7c00u);
  if (magnitude >= 0x38800000u) {
    // Normal half: rebias the exponent and round away 13 mantissa bits.
    uint32_t half =
        (((magnitude >> 23) - 112u) << 10) | ((magnitude >> 13) & 0x3ffu);
    uint32_t rest = magnitude & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u)))
      ++half;
    return static_cast<uint16_t>(sign | half);
  }
  // At most half of the smallest subnormal (2^-25) rounds to zero.
  if (magnitude <= 0x33000000u)
    return static_cast<uint16_t>(sign);
  // Subnormal half: count units of 2^-24.
  uint32_t exponent = magnitude >> 23;
  uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;
  uint32_t shift = 126u - exponent;
  uint32_t half = mantissa >> shift;
  uint32_t rest = mantissa & ((1u << shift) - 1u);
  uint32_t midpoint = 1u << (shift - 1u);
  if (rest > midpoint || (rest == midpoint && (half & 1u)))
    ++half;
  return static_cast<uint16_t>(sign | half);
}

float moe::runtime::f16ToF32(uint16_t value) {
  uint32_t sign = static_cast<uint32_t>(value & 0x8000u) << 16;
  uint32_t exponent = (value >> 10) & 0x1fu;
  uint32_t mantissa = value & 0x3ffu;
  if (exponent == 0x1fu)
    return floatFromBits(sign | 0x7f800000u | (mantissa << 13));
  if (exponent != 0)
    return floatFromBits(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  if (mantissa == 0)
    return floatFromBits(sign);
  // Subnormal: normalize into a float exponent.
  uint32_t floatExponent = 113u;
  while (!(mantissa & 0x400u)) {
    mantissa <<= 1;
    --floatExponent;
  }
  return floatFromBits(sign | (floatExponent << 23) |
                       ((mantissa & 0x3ffu) << 13));
}

void HostTensor::AlignedFree::operator()(std::byte *pointer) const {
  if (owns)
    std::free(pointer);
}

std::optional<std::size_t>
moe::runtime::byteSizeOf(std::size_t elementBytes,
                         const std::vector<int64_t> &shape) {
  int64_t bytes = static_cast<int64_t>(elementBytes);
  for (int64_t extent : shape)
    if (extent < 0 || __builtin_mul_overflow(bytes, extent, &bytes))
      return std::nullopt;
  return static_cast<std::size_t>(bytes);
}

/// The bytes of a `dtype` tensor of `shape`; throws `Error` for a negative
/// dimension or a size past INT64_MAX bytes.
static std::size_t checkedByteSize(DType dtype,
                                   const std::vector<int64_t> &shape) {
  for (int64_t extent : shape)
    if (extent < 0)
      throw Error(kTensorSource,
                  "negative dimension in shape " + formatShape(shape));
  std::optional<std::size_t> size = byteSizeOf(elementSize(dtype), shape);
  if (!size)
    throw Error(kTensorSource, "shape " + formatShape(shape) + " is too big");
  return *size;
}

HostTensor HostTensor::allocate(DType dtype, std::vector<int64_t> shape) {
  // At most INT64_MAX bytes: the alignment round-up below cannot overflow.
  std::size_t bytes = checkedByteSize(dtype, shape);
  int64_t count = static_cast<int64_t>(bytes / elementSize(dtype));

  // aligned_alloc wants a multiple of the alignment; keep at least one block
  // so that even an empty tensor has a non-null data pointer.
  std::size_t capacity = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  if (capacity == 0)
    capacity = kAlignment;
  auto *memory =
      static_cast<std::byte *>(std::aligned_alloc(kAlignment, capacity));
  if (!memory)
    throw Error(kTensorSource, "out of memory allocating " +
                                   std::to_string(bytes) + " bytes for a " +
                                   formatShape(shape) + " tensor");

  HostTensor tensor;
  tensor.type = dtype;
  tensor.dims = std::move(shape);
  tensor.count = count;
  tensor.bytes = bytes;
  tensor.storage.reset(memory);
  return tensor;
}

HostTensor HostTensor::over(DType dtype, std::vector<int64_t> shape, void *data,
                            AlignedFree deleter) {
  std::size_t size = checkedByteSize(dtype, shape);
  HostTensor tensor;
  tensor.type = dtype;
  tensor.dims = std::move(shape);
  tensor.bytes = size;
  tensor.count = static_cast<int64_t>(size / elementSize(dtype));
  tensor.storage = std::unique_ptr<std::byte[], AlignedFree>(
      static_cast<std::byte *>(data), std::move(deleter));
  return tensor;
}

HostTensor HostTensor::view(DType dtype, std::vector<int64_t> shape,
                            void *data) {
  if (!data)
    throw Error(kTensorSource,
                "a view of a " + formatShape(shape) + " tensor at null");
  return over(dtype, std::move(shape), data, AlignedFree(/*owns=*/false));
}

HostTensor HostTensor::shared(DType dtype, std::vector<int64_t> shape,
                              void *data, std::shared_ptr<const void> owner) {
  if (!data || !owner || reinterpret_cast<std::uintptr_t>(data) % kAlignment)
    throw Error(kTensorSource, "a shared " + formatShape(shape) +
                                   " tensor needs an owner and " +
                                   std::to_string(kAlignment) +
                                   "-byte-aligned data");
  return over(dtype, std::move(shape), data,
              AlignedFree(/*owns=*/false, std::move(owner)));
}

HostTensor HostTensor::zeros(DType dtype, std::vector<int64_t> shape) {
  HostTensor tensor = allocate(dtype, std::move(shape));
  std::memset(tensor.data(), 0, tensor.byteSize());
  return tensor;
}

HostTensor HostTensor::fromBytes(DType dtype, std::vector<int64_t> shape,
                                 const void *data) {
  HostTensor tensor = allocate(dtype, std::move(shape));
  if (tensor.byteSize())
    std::memcpy(tensor.data(), data, tensor.byteSize());
  return tensor;
}

HostTensor HostTensor::fromF32(std::vector<int64_t> shape,
                               const std::vector<float> &values) {
  HostTensor tensor = allocate(DType::F32, std::move(shape));
  if (static_cast<std::size_t>(tensor.numElements()) != values.size())
    throw Error(kTensorSource, std::to_string(values.size()) +
                                   " values do not fill shape " +
                                   formatShape(tensor.shape()));
  if (tensor.byteSize())
    std::memcpy(tensor.data(), values.data(), tensor.byteSize());
  return tensor;
}

void HostTensor::checkElementSize(std::size_t size) const {
  if (size != elementSize(type))
    throw Error(kTensorSource, "cannot view " + std::string(dtypeName(type)) +
                                   " elements as " + std::to_string(size) +
                                   "-byte values");
}

HostTensor HostTensor::clone() const {
  if (isNull())
    return HostTensor();
  return fromBytes(type, dims, data());
}

HostTensor HostTensor::rows(int64_t first, int64_t count) const {
  if (dims.empty() || first < 0 || count < 0 || first + count > dims[0])
    throw Error(kTensorSource, "rows [" + std::to_string(first) + ", " +
                                   std::to_string(first + count) + ") of a " +
                                   formatShape(dims) + " tensor");
  std::vector<int64_t> shape = dims;
  shape[0] = count;
  size_t rowBytes = dims[0] ? bytes / static_cast<size_t>(dims[0]) : 0;
  return fromBytes(type, shape,
                   data() ? static_cast<const std::byte *>(data()) +
                                static_cast<size_t>(first) * rowBytes
                          : nullptr);
}

HostTensor HostTensor::reshaped(std::vector<int64_t> shape) && {
  int64_t elements = 1;
  for (int64_t d : shape)
    elements *= d;
  if (elements != count)
    throw Error(kTensorSource, "cannot view " + formatShape(dims) + " as " +
                                   formatShape(shape));
  HostTensor result = std::move(*this);
  result.dims = std::move(shape);
  return result;
}

HostTensor HostTensor::toF32() const {
  if (type == DType::F32)
    return clone();
  if (!isFloatingPoint(type))
    throw Error(kTensorSource, "cannot convert a " +
                                   std::string(dtypeName(type)) +
                                   " tensor to f32");
  HostTensor result = allocate(DType::F32, dims);
  float *out = result.dataAs<float>();
  std::size_t n = static_cast<std::size_t>(count);
  if (type == DType::BF16) {
    const uint16_t *in = dataAs<uint16_t>();
    for (std::size_t i = 0; i < n; ++i)
      out[i] = bf16ToF32(in[i]);
  } else if (type == DType::F16) {
    const uint16_t *in = dataAs<uint16_t>();
    for (std::size_t i = 0; i < n; ++i)
      out[i] = f16ToF32(in[i]);
  } else {
    const double *in = dataAs<double>();
    for (std::size_t i = 0; i < n; ++i)
      out[i] = static_cast<float>(in[i]);
  }
  return result;
}

HostTensor HostTensor::packPanels(int64_t panel) const {
  if (rank() != 3 || panel < 1 || dims[2] % panel != 0)
    throw Error(kTensorSource,
                "cannot pack a tensor of shape " + formatShape(dims) +
                    " into panels of " + std::to_string(panel) +
                    " columns (needs [E, K, N] with N divisible by it)");
  int64_t experts = dims[0], depth = dims[1], cols = dims[2];
  int64_t panels = cols / panel;
  HostTensor result = allocate(type, {experts, panels, depth, panel});
  std::size_t size = elementSize(type);
  std::size_t run = static_cast<std::size_t>(panel) * size;
  const std::byte *in = storage.get();
  std::byte *out = result.storage.get();
  // Row by row of the source, so that it is read sequentially.
  for (int64_t e = 0; e < experts; ++e)
    for (int64_t k = 0; k < depth; ++k) {
      const std::byte *row = in + ((e * depth + k) * cols) * size;
      for (int64_t p = 0; p < panels; ++p)
        std::memcpy(out + (((e * panels + p) * depth + k) * panel) * size,
                    row + p * run, run);
    }
  return result;
}

HostTensor HostTensor::castTo(DType target) const {
  if (target == type)
    return clone();
  if (!isFloatingPoint(type) || !isFloatingPoint(target))
    throw Error(kTensorSource,
                "cannot convert a " + std::string(dtypeName(type)) +
                    " tensor to " + std::string(dtypeName(target)));
  if (target == DType::F32)
    return toF32();
  if (type != DType::F32)
    return toF32().castTo(target);

  HostTensor result = allocate(target, dims);
  const float *in = dataAs<float>();
  std::size_t n = static_cast<std::size_t>(count);
  if (target == DType::F64) {
    double *out = result.dataAs<double>();
    for (std::size_t i = 0; i < n; ++i)
      out[i] = in[i];
  } else {
    uint16_t *out = result.dataAs<uint16_t>();
    if (target == DType::BF16)
      for (std::size_t i = 0; i < n; ++i)
        out[i] = f32ToBF16(in[i]);
    else
      for (std::size_t i = 0; i < n; ++i)
        out[i] = f32ToF16(in[i]);
  }
  return result;
}

namespace {

/// The index of the first element of `data` whose exponent field is all
/// ones (NaN or ±infinity in an IEEE format with these sign, exponent and
/// mantissa masks), and in `kind` which of "NaN", "+inf", "-inf" it is.
template <typename Bits>
std::optional<int64_t> scanBits(const void *data, int64_t count, Bits sign,
                                Bits exponent, Bits mantissa,
                                std::string_view &kind) {
  const Bits *values = static_cast<const Bits *>(data);
  // Blocks without an early exit (the compiler vectorizes the test, and
  // tens of GB of weights are checked at memory speed); the element itself
  // is looked for only in a block that holds one.
  constexpr int64_t kBlock = 4096;
  for (int64_t begin = 0; begin < count; begin += kBlock) {
    int64_t end = std::min(count, begin + kBlock);
    // (v & exponent) ^ exponent is 0 exactly for a non-finite v: a min
    // reduction, which vectorizes, finds whether the block holds one.
    Bits least = exponent;
    for (int64_t i = begin; i < end; ++i)
      least = std::min<Bits>(least, (values[i] & exponent) ^ exponent);
    if (least != 0)
      continue;
    for (int64_t i = begin; i < end; ++i) {
      if ((values[i] & exponent) != exponent)
        continue;
      kind = (values[i] & mantissa) ? "NaN"
             : (values[i] & sign)   ? "-inf"
                                    : "+inf";
      return i;
    }
  }
  return std::nullopt;
}

} // namespace

std::optional<HostTensor::NonFinite> HostTensor::firstNonFinite() const {
  std::string_view kind;
  std::optional<int64_t> flat;
  switch (type) {
  case DType::F32:
    flat = scanBits<uint32_t>(data(), count, 0x80000000u, 0x7f800000u,
                              0x007fffffu, kind);
    break;
  case DType::BF16:
    flat = scanBits<uint16_t>(data(), count, 0x8000u, 0x7f80u, 0x007fu, kind);
    break;
  case DType::F16:
    flat = scanBits<uint16_t>(data(), count, 0x8000u, 0x7c00u, 0x03ffu, kind);
    break;
  case DType::F64:
    flat = scanBits<uint64_t>(data(), count, 0x8000000000000000ull,
                              0x7ff0000000000000ull, 0x000fffffffffffffull,
                              kind);
    break;
  default:
    return std::nullopt;
  }
  if (!flat)
    return std::nullopt;
  NonFinite found{std::vector<int64_t>(dims.size()), kind};
  int64_t rest = *flat;
  for (std::size_t d = dims.size(); d-- > 0;) {
    found.index[d] = rest % dims[d];
    rest /= dims[d];
  }
  return found;
}
