//===- NpyTest.cpp - Tests of the npy reader and writer -------------------===//
//
// Round trips of every dtype, files written by numpy, header variants, and
// malformed files whose errors must name the file.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "moe/Runtime/Npy.h"

#include <cstring>

using namespace moe::runtime;
using namespace moe::runtime::test;

namespace {

/// A version 1.0 npy file with the given header dict (unpadded) and data.
std::string npyFile(const std::string &dict, const std::string &data,
                    char major = 1) {
  std::string bytes = "\x93NUMPY";
  bytes += major;
  bytes += '\0';
  std::string header = dict + "\n";
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>(header.size() >> 8);
  if (major != 1)
    bytes += std::string(2, '\0');
  return bytes + header + data;
}

/// `count` float32 values 0, 1, 2, ... as bytes.
std::string floatData(int count) {
  std::string data;
  for (int i = 0; i < count; ++i) {
    float value = static_cast<float>(i);
    data.append(reinterpret_cast<const char *>(&value), sizeof(value));
  }
  return data;
}

/// A tensor of `dtype` and `shape` whose bytes count up from 1.
HostTensor patterned(DType dtype, std::vector<int64_t> shape) {
  HostTensor tensor = HostTensor::zeros(dtype, std::move(shape));
  auto *bytes = static_cast<unsigned char *>(tensor.data());
  for (std::size_t i = 0; i < tensor.byteSize(); ++i)
    bytes[i] =
        dtype == DType::Bool ? i % 3 == 0 : static_cast<unsigned char>(i + 1);
  return tensor;
}

TEST(Npy, RoundTripsEveryDType) {
  ScratchDir dir;
  for (DType dtype : {DType::F32, DType::F64, DType::F16, DType::I64,
                      DType::I32, DType::Bool})
    for (const std::vector<int64_t> &shape :
         std::vector<std::vector<int64_t>>{{}, {0}, {7}, {2, 3, 5}}) {
      HostTensor tensor = patterned(dtype, shape);
      std::string path = dir.file("t.npy");
      writeNpy(path, tensor);
      HostTensor read = readNpy(path);
      EXPECT_EQ(read.dtype(), dtype);
      EXPECT_EQ(read.shape(), shape);
      ASSERT_EQ(read.byteSize(), tensor.byteSize());
      EXPECT_EQ(std::memcmp(read.data(), tensor.data(), tensor.byteSize()), 0)
          << dtypeName(dtype) << " " << formatShape(shape);
      NpyHeader header = readNpyHeader(path);
      EXPECT_EQ(header.descr, npyDescr(dtype));
      EXPECT_EQ(header.dataOffset % 64, 0u);
      EXPECT_EQ(readBytes(path)[header.dataOffset - 1], '\n');
    }
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"t.npy"});
}

TEST(Npy, ReadsFilesWrittenByNumpy) {
  HostTensor f32 = readNpy(inputsDir() + "/f32_2x3.npy");
  EXPECT_EQ(f32.dtype(), DType::F32);
  EXPECT_EQ(f32.shape(), (std::vector<int64_t>{2, 3}));
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(f32.dataAs<float>()[i], i * 0.5f - 1.0f);

  HostTensor i64 = readNpy(inputsDir() + "/i64_4.npy");
  EXPECT_EQ(i64.dtype(), DType::I64);
  EXPECT_EQ(i64.shape(), std::vector<int64_t>{4});
  EXPECT_EQ(i64.dataAs<int64_t>()[0], -3);
  EXPECT_EQ(i64.dataAs<int64_t>()[3], int64_t(1) << 40);

  HostTensor f16 = readNpy(inputsDir() + "/f16_scalar.npy");
  EXPECT_EQ(f16.dtype(), DType::F16);
  EXPECT_EQ(f16.rank(), 0);
  EXPECT_EQ(f16.toF32().dataAs<float>()[0], -2.5f);

  HostTensor flags = readNpy(inputsDir() + "/bool_2x2_v2.npy");
  EXPECT_EQ(flags.dtype(), DType::Bool);
  EXPECT_EQ(flags.shape(), (std::vector<int64_t>{2, 2}));
  const uint8_t *values = flags.dataAs<uint8_t>();
  EXPECT_EQ(values[0], 1);
  EXPECT_EQ(values[1], 0);
  EXPECT_EQ(values[2], 0);
  EXPECT_EQ(values[3], 1);
}

TEST(Npy, ParsesHeaderVariants) {
  ScratchDir dir;
  const char *dicts[] = {
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
      "{\"shape\":(2,3),\"descr\":\"<f4\",\"fortran_order\":False}",
      "{ 'fortran_order' : False , 'shape' : [ 2 , 3 ] , 'descr' : '<f4' }",
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L)}"};
  for (const char *dict : dicts) {
    std::string path = dir.file("v.npy");
    writeBytes(path, npyFile(dict, floatData(6)));
    HostTensor tensor = readNpy(path);
    EXPECT_EQ(tensor.shape(), (std::vector<int64_t>{2, 3})) << dict;
    EXPECT_EQ(tensor.dataAs<float>()[5], 5.0f);
  }
  std::string path = dir.file("v3.npy");
  writeBytes(path, npyFile("{'descr': '<f4', 'fortran_order': False, "
                           "'shape': (1,)}",
                           floatData(1), 3));
  EXPECT_EQ(readNpy(path).numElements(), 1);
}

TEST(Npy, ChecksTheExpectedTypeAndRank) {
  std::string fixture = inputsDir() + "/f32_2x3.npy";
  EXPECT_EQ(readNpyAs(fixture, DType::F32, 2).numElements(), 6);
  EXPECT_EQ(readNpyAs(fixture, DType::F32).numElements(), 6);
  EXPECT_TRUE(throwsExactly(
      [&] { readNpyAs(fixture, DType::F32, 1); },
      fixture + ": error: expected a float32 array of rank 1, got '<f4' "
                "shape (2, 3)"));

  ScratchDir dir;
  std::string path = dir.file("x.npy");
  writeNpy(path, HostTensor::zeros(DType::F64, {4, 8}));
  EXPECT_TRUE(throwsExactly(
      [&] { readNpyAs(path, DType::F32, 2); },
      path + ": error: expected a float32 array of rank 2, got '<f8' "
             "shape (4, 8)"));
  EXPECT_EQ(formatTupleShape({5}), "(5,)");
  EXPECT_EQ(formatTupleShape({}), "()");
}

TEST(Npy, RejectsMalformedFiles) {
  ScratchDir dir;
  std::string good = readBytes(inputsDir() + "/f32_2x3.npy");
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, "
                           "'shape': (2, 3), }";
  struct Case {
    const char *name;
    std::string bytes;
    std::string fragment;
  };
  std::vector<Case> cases = {
      {"truncated-data", good.substr(0, good.size() - 4),
       "truncated file: shape (2, 3) of '<f4' needs 24 data bytes, found 20"},
      {"truncated-header", good.substr(0, 20), "truncated file"},
      {"tiny", "\x93NUM", "too short"},
      {"bad-magic", "\x93NUMPZ" + good.substr(6), "bad magic"},
      {"version", npyFile(dict, floatData(6), 4), "version 4.0"},
      {"fortran",
       npyFile("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3)}",
               floatData(6)),
       "Fortran-order arrays are not supported"},
      {"dtype",
       npyFile("{'descr': '<u2', 'fortran_order': False, 'shape': (3,)}",
               floatData(2)),
       "unsupported dtype '<u2'"},
      {"big-endian",
       npyFile("{'descr': '>f4', 'fortran_order': False, 'shape': (2,)}",
               floatData(2)),
       "big-endian"},
      {"structured",
       npyFile("{'descr': [('a', '<f4')], 'fortran_order': False, "
               "'shape': (2,)}",
               floatData(2)),
       "structured dtypes"},
      {"syntax",
       npyFile("{'descr': '<f4' 'fortran_order': False, 'shape': (2,)}",
               floatData(2)),
       "malformed npy header: expected ',' or '}' at column"},
      {"missing-key", npyFile("{'descr': '<f4', 'shape': (2,)}", floatData(2)),
       "missing key 'fortran_order'"},
      {"extra-key",
       npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), "
               "'x': 1}",
               floatData(2)),
       "unexpected key 'x'"},
      {"negative",
       npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}",
               floatData(2)),
       "non-negative integers"},
      {"deep", npyFile(std::string(100, '(') + std::string(100, ')'), ""),
       "nested too deeply"},
      {"trailing", good + "xyz", "3 unexpected bytes after the array data"},
      // Found by the npy fuzzer: a 141-byte file claiming 5.5 GB was
      // allocated before the size check.
      {"huge",
       npyFile("{'descr': '|b1', 'fortran_order': False, "
               "'shape': (2777777777, 2), }",
               ""),
       "truncated file: shape (2777777777, 2) of '|b1' needs 5555555554 data "
       "bytes, found 0"},
      {"overflow",
       npyFile("{'descr': '<f4', 'fortran_order': False, "
               "'shape': (4611686018427387904, 8), }",
               ""),
       "is larger than any file"}};
  for (const Case &c : cases) {
    std::string path = dir.file(std::string(c.name) + ".npy");
    writeBytes(path, c.bytes);
    EXPECT_TRUE(
        throwsError([&] { readNpy(path); }, {path + ": error: ", c.fragment}))
        << c.name;
  }
  std::string missing = dir.file("missing.npy");
  EXPECT_TRUE(throwsError([&] { readNpy(missing); },
                          {missing + ": error: cannot open the file"}));
}

TEST(Npy, WritesAtomically) {
  ScratchDir dir;
  std::string path = dir.file("out.npy");
  writeNpy(path, HostTensor::fromF32({2}, {1.0f, 2.0f}));
  writeNpy(path, HostTensor::fromF32({3}, {4.0f, 5.0f, 6.0f}));
  EXPECT_EQ(readNpy(path).dataAs<float>()[2], 6.0f);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"out.npy"});

  std::string nowhere = dir.file("no-such-dir/out.npy");
  EXPECT_TRUE(throwsError(
      [&] { writeNpy(nowhere, HostTensor::zeros(DType::F32, {2})); },
      {nowhere + ": error: cannot write the file"}));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"out.npy"});

  EXPECT_TRUE(throwsError(
      [&] { writeNpy(dir.file("b.npy"), HostTensor::zeros(DType::BF16, {2})); },
      {"bf16 tensors have no npy type"}));
  EXPECT_TRUE(throwsError([&] { writeNpy(dir.file("n.npy"), HostTensor()); },
                          {"null tensor"}));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"out.npy"});
}

} // namespace
