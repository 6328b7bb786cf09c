//===- SafeTensorsTest.cpp - Tests of the safetensors reader and writer ---===//
//
// Round trips of every supported dtype with metadata, and malformed files:
// short files, header lengths past the end, bad JSON, bad entries, offsets
// out of range or overlapping, shapes that do not match their bytes.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "moe/Runtime/SafeTensors.h"

#include <cstdint>
#include <cstring>
#include <memory>

using namespace moe::runtime;
using namespace moe::runtime::test;

namespace {

/// A safetensors file with the given header text and data section.
std::string safeTensorsBytes(const std::string &header,
                             const std::string &data) {
  std::string bytes;
  for (int i = 0; i < 8; ++i)
    bytes += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return bytes + header + data;
}

TEST(SafeTensors, RoundTripsEveryDType) {
  ScratchDir dir;
  std::vector<HostTensor> tensors;
  std::vector<std::pair<std::string, const HostTensor *>> named;
  std::vector<DType> dtypes = {DType::F32, DType::BF16, DType::F16, DType::F64,
                               DType::I64, DType::I32,  DType::Bool};
  for (std::size_t i = 0; i < dtypes.size(); ++i) {
    HostTensor tensor = HostTensor::zeros(dtypes[i], {2, int64_t(i) + 1});
    auto *bytes = static_cast<unsigned char *>(tensor.data());
    for (std::size_t b = 0; b < tensor.byteSize(); ++b)
      bytes[b] = dtypes[i] == DType::Bool ? b % 2 : (b * 7 + i) & 0xff;
    tensors.push_back(std::move(tensor));
  }
  tensors.push_back(HostTensor::zeros(DType::F32, {0, 4}));
  for (std::size_t i = 0; i < tensors.size(); ++i)
    named.emplace_back("t" + std::to_string(i), &tensors[i]);

  std::string path = dir.file("w.safetensors");
  writeSafeTensors(path, named, {{"format", "pt"}});
  std::string raw = readBytes(path);
  uint64_t headerLength = 0;
  std::memcpy(&headerLength, raw.data(), 8);
  EXPECT_EQ(headerLength % 8, 0u);
  EXPECT_EQ((8 + headerLength) % HostTensor::alignment, 0u)
      << "the data section starts 64-byte aligned";

  SafeTensorsFile file = SafeTensorsFile::open(path);
  EXPECT_EQ(file.path(), path);
  EXPECT_EQ(file.names().size(), tensors.size());
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_FALSE(file.has("__metadata__"));
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    std::string name = "t" + std::to_string(i);
    ASSERT_TRUE(file.has(name));
    EXPECT_EQ(file.info(name).dtypeName,
              safeTensorsDTypeName(tensors[i].dtype()));
    HostTensor read = file.get(name);
    EXPECT_EQ(read.dtype(), tensors[i].dtype());
    EXPECT_EQ(read.shape(), tensors[i].shape());
    ASSERT_EQ(read.byteSize(), tensors[i].byteSize());
    EXPECT_EQ(std::memcmp(read.data(), tensors[i].data(), read.byteSize()), 0)
        << name;
  }
  // The file stays usable after copies and after the original is gone.
  SafeTensorsFile copy = file;
  file = SafeTensorsFile::open(path);
  EXPECT_EQ(copy.get("t0").byteSize(), 8u);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"w.safetensors"});
}

// Tensors whose bytes are 64-byte aligned in the file are used where they
// are mapped (no copy), others are copied; either kind outlives the file
// object, reads the file's values, and can be written without changing the
// file (the mapping is copy-on-write).
TEST(SafeTensors, SharesAlignedTensorsWithTheMapping) {
  ScratchDir dir;
  // "a" (100 bytes) starts aligned, so "b" after it does not.
  HostTensor a = HostTensor::zeros(DType::BF16, {50});
  HostTensor b = HostTensor::zeros(DType::F32, {3, 4});
  for (int i = 0; i < 50; ++i)
    a.dataAs<uint16_t>()[i] = static_cast<uint16_t>(0x3f80 + i);
  for (int i = 0; i < 12; ++i)
    b.dataAs<float>()[i] = 0.5f * i;
  std::string path = dir.file("m.safetensors");
  writeSafeTensors(path, {{"a", &a}, {"b", &b}});
  std::string before = readBytes(path);

  HostTensor readA, readB;
  {
    SafeTensorsFile file = SafeTensorsFile::open(path);
    readA = file.get("a");
    readB = file.get("b");
  }
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(readA.data()) %
                HostTensor::alignment,
            0u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(readB.data()) %
                HostTensor::alignment,
            0u);
  // Neither is a view of someone else's memory (a bound layer would copy
  // those).
  EXPECT_FALSE(readA.isView());
  EXPECT_FALSE(readB.isView());
  ASSERT_EQ(readA.byteSize(), a.byteSize());
  EXPECT_EQ(std::memcmp(readA.data(), a.data(), a.byteSize()), 0);
  ASSERT_EQ(readB.byteSize(), b.byteSize());
  EXPECT_EQ(std::memcmp(readB.data(), b.data(), b.byteSize()), 0);
  // The shared one points into the mapping: its address is the mapped
  // file's data start plus its offset, so two reads give the same bytes.
  SafeTensorsFile again = SafeTensorsFile::open(path);
  HostTensor first = again.get("a"), second = again.get("a");
  EXPECT_EQ(first.data(), second.data()) << "aligned tensors are not copied";
  HostTensor firstB = again.get("b"), secondB = again.get("b");
  EXPECT_NE(firstB.data(), secondB.data()) << "misaligned tensors are copied";
  readA.dataAs<uint16_t>()[0] = 0xffff;
  first.dataAs<uint16_t>()[1] = 0xffff;
  readB.dataAs<float>()[0] = -1.0f;
  EXPECT_EQ(readBytes(path), before) << "writing a tensor changed the file";
  EXPECT_EQ(second.dataAs<uint16_t>()[0], 0x3f80);

  // HostTensor::shared itself: an owner and aligned memory are required.
  auto owner = std::make_shared<std::vector<float>>(32);
  EXPECT_TRUE(
      throwsError([&] { HostTensor::shared(DType::F32, {2}, nullptr, owner); },
                  {"needs an owner"}));
  EXPECT_TRUE(throwsError(
      [&] { HostTensor::shared(DType::F32, {2}, readA.data(), nullptr); },
      {"needs an owner"}));
  EXPECT_TRUE(throwsError(
      [&] {
        HostTensor::shared(DType::BF16, {2},
                           static_cast<std::byte *>(readA.data()) + 2, owner);
      },
      {"64-byte-aligned"}));
}

TEST(SafeTensors, ReportsMissingAndUnsupportedTensors) {
  ScratchDir dir;
  std::string path = dir.file("u.safetensors");
  writeBytes(path,
             safeTensorsBytes(
                 R"({"u":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                 R"("q":{"dtype":"F4","shape":[2],"data_offsets":[2,3]}})",
                 "abc"));
  SafeTensorsFile file = SafeTensorsFile::open(path);
  EXPECT_EQ(file.names(), (std::vector<std::string>{"q", "u"}));
  EXPECT_FALSE(file.info("u").dtype.has_value());
  EXPECT_TRUE(throwsExactly(
      [&] { file.get("u"); },
      path + ": error: tensor 'u' has dtype U8, which is not supported "
             "(supported: F32, BF16, F16, F64, I64, I32, BOOL)"));
  EXPECT_TRUE(throwsError([&] { file.get("q"); }, {"dtype F4"}));
  EXPECT_TRUE(throwsExactly([&] { file.get("w"); },
                            path + ": error: no tensor named 'w'"));
}

TEST(SafeTensors, RejectsMalformedFiles) {
  ScratchDir dir;
  std::string f32x2 =
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  struct Case {
    const char *name;
    std::string bytes;
    std::string fragment;
  };
  std::string pastEnd = safeTensorsBytes(f32x2, std::string(8, '\0'));
  pastEnd[0] = static_cast<char>(200);
  std::vector<Case> cases = {
      {"short", "abc", "shorter than the 8-byte header length"},
      {"past-end", pastEnd, "header length 200 runs past the end of the file"},
      {"huge-length", std::string(7, '\0') + "\x7f" + std::string(8, ' '),
       "runs past the end"},
      {"bad-json", safeTensorsBytes(R"({"a": {"dtype": )", ""),
       "invalid JSON header: parse error at line 1"},
      {"not-object", safeTensorsBytes("[1, 2]", ""), "not an object"},
      {"entry-not-object", safeTensorsBytes(R"({"a": 3})", ""),
       "tensor 'a': header entry is not an object"},
      {"no-dtype",
       safeTensorsBytes(R"({"a":{"shape":[2],"data_offsets":[0,8]}})",
                        std::string(8, '\0')),
       "tensor 'a': missing or non-string 'dtype'"},
      {"no-offsets",
       safeTensorsBytes(R"({"a":{"dtype":"F32","shape":[2]}})",
                        std::string(8, '\0')),
       "'data_offsets' is not an array of two integers"},
      {"bad-shape",
       safeTensorsBytes(
           R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})",
           std::string(8, '\0')),
       "non-negative integers"},
      {"out-of-range", safeTensorsBytes(f32x2, std::string(4, '\0')),
       "tensor 'a': data_offsets [0, 8] out of range (the data section has 4 "
       "bytes)"},
      {"reversed",
       safeTensorsBytes(
           R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})",
           std::string(8, '\0')),
       "out of range"},
      {"size-mismatch",
       safeTensorsBytes(
           R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
           std::string(8, '\0')),
       "tensor 'a': shape [3] of F32 needs 12 bytes, but data_offsets span 8"},
      {"overlap",
       safeTensorsBytes(
           R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
           std::string(12, '\0')),
       "tensors 'a' and 'b' have overlapping data_offsets"},
      {"bad-metadata", safeTensorsBytes(R"({"__metadata__": 5})", ""),
       "'__metadata__' is not an object"}};
  for (const Case &c : cases) {
    std::string path = dir.file(std::string(c.name) + ".safetensors");
    writeBytes(path, c.bytes);
    EXPECT_TRUE(throwsError([&] { SafeTensorsFile::open(path); },
                            {path + ": error: ", c.fragment}))
        << c.name;
  }
  std::string missing = dir.file("missing.safetensors");
  EXPECT_TRUE(throwsError([&] { SafeTensorsFile::open(missing); },
                          {missing + ": error: cannot open the file"}));
}

TEST(SafeTensors, WriterRejectsBadInput) {
  ScratchDir dir;
  HostTensor tensor = HostTensor::zeros(DType::F32, {2});
  std::string path = dir.file("w.safetensors");
  EXPECT_TRUE(throwsError(
      [&] {
        writeSafeTensors(path, {{"a", &tensor}, {"a", &tensor}});
      },
      {"duplicate tensor name 'a'"}));
  EXPECT_TRUE(throwsError(
      [&] {
        writeSafeTensors(path, {{"a", nullptr}});
      },
      {"tensor 'a' is null"}));
  EXPECT_TRUE(throwsError(
      [&] {
        writeSafeTensors(path, {{"__metadata__", &tensor}});
      },
      {"invalid tensor name"}));
  std::string nowhere = dir.file("missing/w.safetensors");
  EXPECT_TRUE(throwsError(
      [&] {
        writeSafeTensors(nowhere, {{"a", &tensor}});
      },
      {nowhere + ": error: cannot write the file"}));
  EXPECT_TRUE(dir.entries().empty());
}

} // namespace
