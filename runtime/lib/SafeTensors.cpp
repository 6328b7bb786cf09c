//===- SafeTensors.cpp - Reading and writing safetensors files ------------===//
//
// Validation of the safetensors header, the memory mapping of opened files,
// tensor copies, and the atomic writer.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/SafeTensors.h"

#include "moe/Runtime/Error.h"
#include "moe/Runtime/FileIO.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <set>
#include <string_view>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the safetensors reader assumes a little-endian host"
#endif

using namespace moe::runtime;
using JSON = nlohmann::json;

namespace {

/// Headers longer than this are rejected as corrupt rather than allocated.
constexpr uint64_t kMaxHeaderLength = 100u << 20;

/// The dtypes `get` supports, as listed in messages.
constexpr std::string_view kSupportedDTypes =
    "F32, BF16, F16, F64, I64, I32, BOOL";

/// A safetensors dtype string with its element size and runtime type.
struct DTypeEntry {
  std::string_view name;
  std::size_t size;
  std::optional<DType> dtype;
};

/// Every safetensors dtype with a whole-byte element size.
const DTypeEntry kDTypes[] = {
    {"F32", 4, DType::F32},       {"BF16", 2, DType::BF16},
    {"F16", 2, DType::F16},       {"F64", 8, DType::F64},
    {"I64", 8, DType::I64},       {"I32", 4, DType::I32},
    {"BOOL", 1, DType::Bool},     {"U8", 1, std::nullopt},
    {"I8", 1, std::nullopt},      {"I16", 2, std::nullopt},
    {"U16", 2, std::nullopt},     {"U32", 4, std::nullopt},
    {"U64", 8, std::nullopt},     {"F8_E4M3", 1, std::nullopt},
    {"F8_E5M2", 1, std::nullopt}, {"F8_E8M0", 1, std::nullopt}};

/// The table entry of `name`, or null for a dtype the table does not know
/// (such as the sub-byte ones); those tensors are listed but not
/// size-checked, and `get` rejects them.
const DTypeEntry *findDType(const std::string &name) {
  for (const DTypeEntry &entry : kDTypes)
    if (entry.name == name)
      return &entry;
  return nullptr;
}

/// Reads a non-negative integer that fits in `int64_t`, or returns false.
bool readCount(const JSON &value, int64_t &count) {
  if (!value.is_number_integer())
    return false;
  if (value.is_number_unsigned()) {
    uint64_t number = value.get<uint64_t>();
    if (number > static_cast<uint64_t>(INT64_MAX))
      return false;
    count = static_cast<int64_t>(number);
    return true;
  }
  count = value.get<int64_t>();
  return count >= 0;
}

/// Checks one header entry and turns it into a TensorInfo; `dataSize` is
/// the size of the data section.
TensorInfo readEntry(const std::string &path, const std::string &name,
                     const JSON &entry, std::size_t dataSize) {
  auto fail = [&](const std::string &what) -> Error {
    return Error(path, "tensor " + quoteName(name) + ": " + what);
  };
  if (!entry.is_object())
    throw fail("header entry is not an object");
  auto dtype = entry.find("dtype");
  auto shape = entry.find("shape");
  auto offsets = entry.find("data_offsets");
  if (dtype == entry.end() || !dtype->is_string())
    throw fail("missing or non-string 'dtype'");
  if (shape == entry.end() || !shape->is_array())
    throw fail("missing or non-array 'shape'");
  if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2)
    throw fail("'data_offsets' is not an array of two integers");

  TensorInfo info;
  info.dtypeName = dtype->get<std::string>();
  for (const JSON &extent : *shape) {
    int64_t value = 0;
    if (!readCount(extent, value))
      throw fail("'shape' holds something other than non-negative integers");
    info.shape.push_back(value);
  }
  int64_t begin = 0, end = 0;
  if (!readCount((*offsets)[0], begin) || !readCount((*offsets)[1], end))
    throw fail("'data_offsets' is not an array of two integers");
  if (begin > end || static_cast<uint64_t>(end) > dataSize)
    throw fail("data_offsets [" + std::to_string(begin) + ", " +
               std::to_string(end) + "] out of range (the data section has " +
               std::to_string(dataSize) + " bytes)");
  info.begin = static_cast<std::size_t>(begin);
  info.end = static_cast<std::size_t>(end);

  if (const DTypeEntry *known = findDType(info.dtypeName)) {
    info.dtype = known->dtype;
    std::optional<std::size_t> size = byteSizeOf(known->size, info.shape);
    if (!size)
      throw fail("shape " + formatShape(info.shape) + " is too big");
    std::size_t bytes = *size;
    if (bytes != info.end - info.begin)
      throw fail("shape " + formatShape(info.shape) + " of " + info.dtypeName +
                 " needs " + std::to_string(bytes) +
                 " bytes, but data_offsets span " +
                 std::to_string(info.end - info.begin));
  }
  return info;
}

} // namespace

/// A private (copy-on-write) memory mapping of a whole file.
struct SafeTensorsFile::Mapping {
  const std::byte *base = nullptr;
  std::size_t size = 0;
  ~Mapping() {
    if (base)
      ::munmap(const_cast<std::byte *>(base), size);
  }
};

SafeTensorsFile SafeTensorsFile::open(const std::string &path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw Error(path,
                std::string("cannot open the file: ") + std::strerror(errno));
  struct stat status;
  if (::fstat(fd, &status) != 0 || !S_ISREG(status.st_mode)) {
    ::close(fd);
    throw Error(path, "not a regular file");
  }
  std::size_t fileSize = static_cast<std::size_t>(status.st_size);
  if (fileSize < 8) {
    ::close(fd);
    throw Error(path, "not a safetensors file (shorter than the 8-byte "
                      "header length)");
  }
  // Writable but private: tensors that share the mapping (see get) may be
  // written without changing the file or faulting.
  void *base =
      ::mmap(nullptr, fileSize, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  int mapErrno = errno;
  ::close(fd);
  if (base == MAP_FAILED)
    throw Error(path,
                std::string("cannot map the file: ") + std::strerror(mapErrno));
  auto mapping = std::make_shared<Mapping>();
  mapping->base = static_cast<const std::byte *>(base);
  mapping->size = fileSize;

  uint64_t headerLength = 0;
  for (int i = 7; i >= 0; --i)
    headerLength =
        headerLength << 8 | std::to_integer<uint64_t>(mapping->base[i]);
  if (headerLength > fileSize - 8)
    throw Error(path, "header length " + std::to_string(headerLength) +
                          " runs past the end of the file (" +
                          std::to_string(fileSize) + " bytes)");
  if (headerLength > kMaxHeaderLength)
    throw Error(path, "header length " + std::to_string(headerLength) +
                          " is implausibly large");

  const char *headerText = reinterpret_cast<const char *>(mapping->base + 8);
  JSON header;
  try {
    header = JSON::parse(headerText, headerText + headerLength);
  } catch (const JSON::exception &e) {
    std::string what = e.what();
    std::size_t bracket = what.find("] ");
    if (what.rfind("[json.exception.", 0) == 0 && bracket != std::string::npos)
      what = what.substr(bracket + 2);
    throw Error(path, "invalid JSON header: " + what);
  }
  if (!header.is_object())
    throw Error(path, "the JSON header is not an object");

  SafeTensorsFile file;
  file.filePath = path;
  file.dataStart = 8 + static_cast<std::size_t>(headerLength);
  std::size_t dataSize = fileSize - file.dataStart;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object())
        throw Error(path, "'__metadata__' is not an object");
      for (auto entry = it.value().begin(); entry != it.value().end(); ++entry)
        if (entry.value().is_string())
          file.meta[entry.key()] = entry.value().get<std::string>();
      continue;
    }
    file.tensors[it.key()] = readEntry(path, it.key(), it.value(), dataSize);
  }

  // No two tensors may share bytes.
  std::vector<std::pair<const std::string *, const TensorInfo *>> byOffset;
  for (const auto &[name, info] : file.tensors)
    if (info.end > info.begin)
      byOffset.emplace_back(&name, &info);
  std::sort(byOffset.begin(), byOffset.end(),
            [](auto &a, auto &b) { return a.second->begin < b.second->begin; });
  for (std::size_t i = 1; i < byOffset.size(); ++i)
    if (byOffset[i].second->begin < byOffset[i - 1].second->end)
      throw Error(path, "tensors " + quoteName(*byOffset[i - 1].first) +
                            " and " + quoteName(*byOffset[i].first) +
                            " have overlapping data_offsets");

  file.mapping = std::move(mapping);
  return file;
}

std::vector<std::string> SafeTensorsFile::names() const {
  std::vector<std::string> result;
  result.reserve(tensors.size());
  for (const auto &entry : tensors)
    result.push_back(entry.first);
  return result;
}

bool SafeTensorsFile::has(const std::string &name) const {
  return tensors.count(name) != 0;
}

const TensorInfo &SafeTensorsFile::info(const std::string &name) const {
  auto it = tensors.find(name);
  if (it == tensors.end())
    throw Error(filePath, "no tensor named " + quoteName(name));
  return it->second;
}

HostTensor SafeTensorsFile::get(const std::string &name) const {
  const TensorInfo &entry = info(name);
  if (!entry.dtype)
    throw Error(filePath, "tensor " + quoteName(name) + " has dtype " +
                              entry.dtypeName +
                              ", which is not supported (supported: " +
                              std::string(kSupportedDTypes) + ")");
  const std::byte *data = mapping->base + dataStart + entry.begin;
  // Aligned bytes are used where they are mapped: a tensor of tens of GB
  // is then neither copied nor held twice.
  if (reinterpret_cast<std::uintptr_t>(data) % HostTensor::alignment == 0)
    return HostTensor::shared(*entry.dtype, entry.shape,
                              const_cast<std::byte *>(data), mapping);
  return HostTensor::fromBytes(*entry.dtype, entry.shape, data);
}

std::string moe::runtime::safeTensorsDTypeName(DType dtype) {
  for (const DTypeEntry &entry : kDTypes)
    if (entry.dtype == dtype)
      return std::string(entry.name);
  return "";
}

void moe::runtime::writeSafeTensors(
    const std::string &path,
    const std::vector<std::pair<std::string, const HostTensor *>> &tensors,
    const std::map<std::string, std::string> &metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty())
    header["__metadata__"] = metadata;
  std::set<std::string> seen;
  std::vector<ByteChunk> chunks(2);
  std::size_t offset = 0;
  for (const auto &[name, tensor] : tensors) {
    if (name.empty() || name == "__metadata__")
      throw Error(path, "invalid tensor name " + quoteName(name));
    if (!seen.insert(name).second)
      throw Error(path, "duplicate tensor name " + quoteName(name));
    if (!tensor || tensor->isNull())
      throw Error(path, "tensor " + quoteName(name) + " is null");
    header[name] = {{"dtype", safeTensorsDTypeName(tensor->dtype())},
                    {"shape", tensor->shape()},
                    {"data_offsets", {offset, offset + tensor->byteSize()}}};
    offset += tensor->byteSize();
    chunks.push_back({tensor->data(), tensor->byteSize()});
  }

  // Pad the header with spaces so the data section starts 64-byte aligned
  // in the file (the format asks for 8): readers can then use tensors whose
  // sizes are multiples of 64 bytes where they are mapped (see get).
  std::string text = header.dump();
  text.append((64 - (8 + text.size()) % 64) % 64, ' ');
  unsigned char length[8];
  for (int i = 0; i < 8; ++i)
    length[i] = static_cast<unsigned char>(
        (static_cast<uint64_t>(text.size()) >> (8 * i)) & 0xff);
  chunks[0] = {length, sizeof(length)};
  chunks[1] = {text.data(), text.size()};
  writeFileAtomically(path, chunks);
}
