//===- TensorTest.cpp - Tests of element types and host tensors -----------===//
//
// bfloat16 and float16 rounding (ties to even, NaN, infinities, subnormals),
// HostTensor storage, and the dtype conversions.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "moe/Runtime/Tensor.h"

#include <cmath>
#include <limits>
#include <random>

using namespace moe::runtime;
using namespace moe::runtime::test;

namespace {

TEST(DType, SizesAndNames) {
  EXPECT_EQ(elementSize(DType::F32), 4u);
  EXPECT_EQ(elementSize(DType::BF16), 2u);
  EXPECT_EQ(elementSize(DType::F16), 2u);
  EXPECT_EQ(elementSize(DType::F64), 8u);
  EXPECT_EQ(elementSize(DType::I64), 8u);
  EXPECT_EQ(elementSize(DType::I32), 4u);
  EXPECT_EQ(elementSize(DType::Bool), 1u);
  EXPECT_EQ(dtypeName(DType::BF16), "bf16");
  EXPECT_EQ(dtypeName(DType::Bool), "bool");
  EXPECT_TRUE(isFloatingPoint(DType::F16));
  EXPECT_FALSE(isFloatingPoint(DType::I32));
  EXPECT_EQ(formatShape({4, 16, 32}), "[4, 16, 32]");
  EXPECT_EQ(formatShape({}), "[]");
}

TEST(BFloat16, RoundsToNearestEven) {
  EXPECT_EQ(f32ToBF16(1.0f), 0x3f80);
  // Exactly halfway: the even neighbour wins, up or down.
  EXPECT_EQ(f32ToBF16(floatFromBits(0x3f808000u)), 0x3f80);
  EXPECT_EQ(f32ToBF16(floatFromBits(0x3f818000u)), 0x3f82);
  EXPECT_EQ(f32ToBF16(floatFromBits(0xbf818000u)), 0xbf82);
  // Off the midpoint: to the nearer one.
  EXPECT_EQ(f32ToBF16(floatFromBits(0x3f808001u)), 0x3f81);
  EXPECT_EQ(f32ToBF16(floatFromBits(0x3f817fffu)), 0x3f81);
  // Subnormals round like everything else.
  EXPECT_EQ(f32ToBF16(floatFromBits(0x00008000u)), 0x0000);
  EXPECT_EQ(f32ToBF16(floatFromBits(0x00018000u)), 0x0002);
}

TEST(BFloat16, InfinitiesAndNaN) {
  float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(f32ToBF16(inf), 0x7f80);
  EXPECT_EQ(f32ToBF16(-inf), 0xff80);
  // The largest float is above the largest bfloat16's midpoint.
  EXPECT_EQ(f32ToBF16(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_TRUE(std::isinf(bf16ToF32(0x7f80)));
  // NaNs stay NaN, even when only low payload bits are set (truncating them
  // would give an infinity), and keep their sign.
  for (uint32_t bits : {0x7fc00000u, 0x7f800001u, 0xff800001u, 0x7fffffffu}) {
    uint16_t half = f32ToBF16(floatFromBits(bits));
    EXPECT_TRUE(std::isnan(bf16ToF32(half))) << std::hex << bits;
    EXPECT_EQ(half >> 15, bits >> 31);
  }
}

TEST(BFloat16, EveryValueSurvivesARoundTrip) {
  for (uint32_t bits = 0; bits <= 0xffffu; ++bits) {
    uint16_t value = static_cast<uint16_t>(bits);
    float widened = bf16ToF32(value);
    if (std::isnan(widened))
      continue;
    ASSERT_EQ(f32ToBF16(widened), value) << std::hex << bits;
  }
}

TEST(Float16, RoundsToNearestEven) {
  EXPECT_EQ(f32ToF16(1.0f), 0x3c00);
  EXPECT_EQ(f32ToF16(-2.5f), 0xc100);
  EXPECT_EQ(f32ToF16(1.0f + 0x1p-11f), 0x3c00);
  EXPECT_EQ(f32ToF16(1.0f + 3 * 0x1p-11f), 0x3c02);
  EXPECT_EQ(f32ToF16(65504.0f), 0x7bff);
  EXPECT_EQ(f32ToF16(65519.0f), 0x7bff);
  EXPECT_EQ(f32ToF16(65520.0f), 0x7c00);
  // Subnormals: 2^-24 is the smallest; halfway cases go to even.
  EXPECT_EQ(f32ToF16(0x1p-24f), 0x0001);
  EXPECT_EQ(f32ToF16(0x1p-25f), 0x0000);
  EXPECT_EQ(f32ToF16(0x1.000002p-25f), 0x0001);
  EXPECT_EQ(f32ToF16(3 * 0x1p-25f), 0x0002);
  EXPECT_EQ(f32ToF16(0x1.ffcp-15f), 0x0400);
  EXPECT_EQ(f32ToF16(-0.0f), 0x8000);
  EXPECT_EQ(f32ToF16(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_TRUE(std::isnan(f16ToF32(f32ToF16(floatFromBits(0x7f800001u)))));
  EXPECT_EQ(f16ToF32(0x0001), 0x1p-24f);
  EXPECT_EQ(f16ToF32(0x7bff), 65504.0f);
}

TEST(Float16, EveryValueSurvivesARoundTrip) {
  for (uint32_t bits = 0; bits <= 0xffffu; ++bits) {
    uint16_t value = static_cast<uint16_t>(bits);
    float widened = f16ToF32(value);
    if (std::isnan(widened))
      continue;
    ASSERT_EQ(f32ToF16(widened), value) << std::hex << bits;
  }
}

#ifdef __FLT16_MAX__
TEST(Float16, AgreesWithTheCompiler) {
  std::mt19937 random(42);
  for (int i = 0; i < 200000; ++i) {
    // Mostly values near the half range, some anywhere.
    uint32_t bits = random();
    if (i % 4)
      bits = (bits & 0x807fffffu) | ((100u + bits % 50u) << 23);
    float value = floatFromBits(bits);
    if (std::isnan(value))
      continue;
    _Float16 expected = static_cast<_Float16>(value);
    uint16_t expectedBits;
    std::memcpy(&expectedBits, &expected, sizeof(expectedBits));
    ASSERT_EQ(f32ToF16(value), expectedBits) << std::hex << bits;
  }
}
#endif

TEST(HostTensor, ReshapesWithoutCopying) {
  HostTensor tensor = HostTensor::fromF32({2, 3}, {1, 2, 3, 4, 5, 6});
  const void *data = tensor.data();
  HostTensor flat = std::move(tensor).reshaped({6});
  EXPECT_EQ(flat.shape(), (std::vector<int64_t>{6}));
  EXPECT_EQ(flat.data(), data);
  EXPECT_EQ(flat.dataAs<float>()[4], 5.0f);
  EXPECT_TRUE(throwsError([&] { (void)std::move(flat).reshaped({4}); },
                          {"cannot view [6] as [4]"}));
}

TEST(HostTensor, ZerosAreAlignedAndZero) {
  HostTensor tensor = HostTensor::zeros(DType::F32, {3, 5});
  EXPECT_FALSE(tensor.isNull());
  EXPECT_EQ(tensor.rank(), 2);
  EXPECT_EQ(tensor.dim(1), 5);
  EXPECT_EQ(tensor.numElements(), 15);
  EXPECT_EQ(tensor.byteSize(), 60u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(tensor.data()) % 64, 0u);
  for (int64_t i = 0; i < 15; ++i)
    EXPECT_EQ(tensor.dataAs<float>()[i], 0.0f);

  HostTensor scalar = HostTensor::zeros(DType::I64, {});
  EXPECT_EQ(scalar.numElements(), 1);
  EXPECT_EQ(scalar.byteSize(), 8u);
  HostTensor empty = HostTensor::zeros(DType::BF16, {0, 7});
  EXPECT_EQ(empty.numElements(), 0);
  EXPECT_NE(empty.data(), nullptr);
}

TEST(HostTensor, RejectsBadShapesAndViews) {
  EXPECT_TRUE(throwsError(
      [] {
        HostTensor::zeros(DType::F32, {2, -1});
      },
      {"tensor: error: negative dimension", "[2, -1]"}));
  EXPECT_TRUE(throwsError(
      [] {
        HostTensor::zeros(DType::F32, {int64_t(1) << 62, 8});
      },
      {"too big"}));
  HostTensor tensor = HostTensor::zeros(DType::F32, {2});
  EXPECT_TRUE(throwsError([&] { tensor.dataAs<double>(); }, {"f32"}));
  EXPECT_TRUE(throwsError(
      [] {
        HostTensor::fromF32({2, 2}, {1, 2, 3});
      },
      {"3 values", "[2, 2]"}));
}

TEST(HostTensor, MovesAndClones) {
  HostTensor a = HostTensor::fromF32({2}, {1.5f, -2.0f});
  HostTensor b = a.clone();
  HostTensor c = std::move(a);
  EXPECT_TRUE(a.isNull()); // NOLINT(bugprone-use-after-move)
  EXPECT_NE(b.data(), c.data());
  EXPECT_EQ(b.dataAs<float>()[1], -2.0f);
  EXPECT_EQ(c.dataAs<float>()[0], 1.5f);
  EXPECT_TRUE(HostTensor().clone().isNull());
}

TEST(HostTensor, ConvertsBetweenFloatTypes) {
  HostTensor source =
      HostTensor::fromF32({4}, {1.0f, 1.0f + 0x1p-8f, -3.25f, 1e-3f});
  HostTensor bf16 = source.castTo(DType::BF16);
  EXPECT_EQ(bf16.dtype(), DType::BF16);
  EXPECT_EQ(bf16.shape(), source.shape());
  EXPECT_EQ(bf16.dataAs<uint16_t>()[0], 0x3f80);
  EXPECT_EQ(bf16.dataAs<uint16_t>()[1], 0x3f80); // Tie to even.
  HostTensor back = bf16.toF32();
  EXPECT_EQ(back.dataAs<float>()[2], -3.25f);
  EXPECT_EQ(back.dataAs<float>()[3], bf16ToF32(f32ToBF16(1e-3f)));

  HostTensor f16 = source.castTo(DType::F16);
  EXPECT_EQ(f16.dataAs<uint16_t>()[2], f32ToF16(-3.25f));
  EXPECT_EQ(f16.toF32().dataAs<float>()[2], -3.25f);
  // Between the 16-bit types, through float32.
  EXPECT_EQ(f16.castTo(DType::BF16).dataAs<uint16_t>()[2], f32ToBF16(-3.25f));

  HostTensor f64 = source.castTo(DType::F64);
  EXPECT_EQ(f64.dataAs<double>()[3], static_cast<double>(1e-3f));
  EXPECT_EQ(f64.toF32().dataAs<float>()[3], 1e-3f);
}

TEST(HostTensor, RejectsIntegerConversions) {
  HostTensor ints = HostTensor::zeros(DType::I64, {3});
  EXPECT_TRUE(throwsError([&] { ints.toF32(); }, {"cannot convert", "i64"}));
  EXPECT_TRUE(
      throwsError([&] { ints.castTo(DType::BF16); }, {"i64 tensor to bf16"}));
  EXPECT_EQ(ints.castTo(DType::I64).numElements(), 3);
  HostTensor flags = HostTensor::zeros(DType::F32, {1});
  EXPECT_TRUE(throwsError([&] { flags.castTo(DType::Bool); }, {"bool"}));
}

// The kernels' panel layout: element [e, k, n] of the weight lands at
// [e, n / panel, k, n % panel], whatever the element type.
TEST(HostTensor, PacksWeightPanels) {
  const int64_t experts = 3, depth = 5, cols = 12, panel = 4;
  std::vector<float> values;
  for (int64_t i = 0; i < experts * depth * cols; ++i)
    values.push_back(float(i) + 0.5f);
  HostTensor w = HostTensor::fromF32({experts, depth, cols}, values);
  for (DType dtype : {DType::F32, DType::BF16}) {
    HostTensor typed = w.castTo(dtype);
    HostTensor packed = typed.packPanels(panel);
    ASSERT_EQ(packed.dtype(), dtype);
    ASSERT_EQ(packed.shape(),
              (std::vector<int64_t>{experts, cols / panel, depth, panel}));
    HostTensor original = typed.toF32(), result = packed.toF32();
    const float *in = original.dataAs<float>();
    const float *out = result.dataAs<float>();
    for (int64_t e = 0; e < experts; ++e)
      for (int64_t k = 0; k < depth; ++k)
        for (int64_t n = 0; n < cols; ++n)
          ASSERT_EQ(out[((e * (cols / panel) + n / panel) * depth + k) * panel +
                        n % panel],
                    in[(e * depth + k) * cols + n])
              << "e=" << e << " k=" << k << " n=" << n;
  }
}

TEST(HostTensor, PackRejectsBadShapes) {
  HostTensor w = HostTensor::zeros(DType::F32, {2, 3, 10});
  EXPECT_TRUE(throwsError([&] { w.packPanels(4); }, {"[2, 3, 10]", "4"}));
  HostTensor flat = HostTensor::zeros(DType::F32, {6, 10});
  EXPECT_TRUE(throwsError([&] { flat.packPanels(2); }, {"[E, K, N]"}));
}

// Spec §3.7: the first NaN or infinity in row-major order, with its index
// and kind, in every floating-point type; none in a finite tensor.
TEST(HostTensor, FindsTheFirstNonFiniteElement) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> values(2 * 3 * 4, 1.5f);
  values[7] = -1e38f; // finite extremes are not reported
  values[8] = 3.4e38f;
  HostTensor finite = HostTensor::fromF32({2, 3, 4}, values);
  EXPECT_FALSE(finite.firstNonFinite());
  EXPECT_FALSE(finite.castTo(DType::F64).firstNonFinite());
  std::vector<float> small(2 * 3 * 4, 0.25f);
  EXPECT_FALSE(HostTensor::fromF32({2, 3, 4}, small).castTo(DType::F16)
                   .firstNonFinite());
  EXPECT_FALSE(HostTensor::fromF32({2, 3, 4}, small).castTo(DType::BF16)
                   .firstNonFinite());
  for (auto [value, kind] : {std::pair<float, std::string_view>{inf, "+inf"},
                             {-inf, "-inf"},
                             {nan, "NaN"},
                             {-nan, "NaN"}}) {
    std::vector<float> spoiled(2 * 3 * 4, 0.25f);
    spoiled[1 * 12 + 1 * 4 + 3] = value; // [1, 1, 3]
    spoiled[23] = nan;                   // a later one is not reported
    HostTensor t = HostTensor::fromF32({2, 3, 4}, spoiled);
    for (DType dtype : {DType::F32, DType::BF16, DType::F16, DType::F64}) {
      auto found = t.castTo(dtype).firstNonFinite();
      ASSERT_TRUE(found) << dtypeName(dtype) << " " << kind;
      EXPECT_EQ(found->index, (std::vector<int64_t>{1, 1, 3}))
          << dtypeName(dtype);
      EXPECT_EQ(found->kind, kind) << dtypeName(dtype);
    }
  }
  EXPECT_FALSE(HostTensor::zeros(DType::I32, {4}).firstNonFinite());
  // Large tensors are scanned in blocks: the first non-finite element is
  // found in a later block, at a block's edges and in a short last block,
  // and an earlier one in the same block wins.
  const int64_t n = 3 * 4096 + 5;
  for (int64_t at :
       {int64_t(4095), int64_t(4096), int64_t(8191), int64_t(8200), n - 1}) {
    std::vector<float> spoiled(n, 0.25f);
    spoiled[at] = -inf;
    if (at + 2 < n)
      spoiled[at + 2] = nan;
    for (DType dtype : {DType::F32, DType::BF16, DType::F16, DType::F64}) {
      auto found =
          HostTensor::fromF32({n}, spoiled).castTo(dtype).firstNonFinite();
      ASSERT_TRUE(found) << dtypeName(dtype) << " at " << at;
      EXPECT_EQ(found->index, std::vector<int64_t>{at}) << dtypeName(dtype);
      EXPECT_EQ(found->kind, "-inf") << dtypeName(dtype);
    }
  }
  EXPECT_FALSE(HostTensor::fromF32({n}, std::vector<float>(n, 2.0f))
                   .castTo(DType::BF16)
                   .firstNonFinite());
}

} // namespace
