//===- Npy.cpp - Reading and writing NumPy .npy files ---------------------===//
//
// The npy reader (magic, version, a small parser for the Python dict literal
// of the header, the data) and the atomic npy writer.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/Npy.h"

#include "moe/Runtime/Error.h"
#include "moe/Runtime/FileIO.h"

#include "PythonLiteral.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sys/stat.h>

using namespace moe::runtime;
using namespace moe::runtime::detail;

namespace {

/// The first six bytes of every npy file.
constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicSize = 6;

/// The supported type strings, as listed in messages.
constexpr std::string_view kSupportedDescrs =
    "'<f4', '<f8', '<f2', '<i8', '<i4', '|b1'";

/// Maps a type string onto a dtype, or throws naming `path`.
DType dtypeOfDescr(const std::string &descr, const std::string &path) {
  static const std::pair<std::string_view, DType> kDescrs[] = {
      {"<f4", DType::F32}, {"<f8", DType::F64}, {"<f2", DType::F16},
      {"<i8", DType::I64}, {"<i4", DType::I32}, {"|b1", DType::Bool}};
  for (const auto &[name, dtype] : kDescrs)
    if (descr == name)
      return dtype;
  if (!descr.empty() && descr[0] == '>')
    throw Error(path, "big-endian arrays are not supported (dtype " +
                          quoteName(descr) + ")");
  throw Error(path, "unsupported dtype " + quoteName(descr) +
                        " (supported: " + std::string(kSupportedDescrs) + ")");
}

/// An open input file that closes itself.
class InputFile {
public:
  explicit InputFile(const std::string &path) : path(path) {
    file = std::fopen(path.c_str(), "rb");
    if (!file)
      throw Error(path,
                  std::string("cannot open the file: ") + std::strerror(errno));
    struct stat info;
    if (::fstat(fileno(file), &info) != 0 || !S_ISREG(info.st_mode)) {
      std::fclose(file);
      throw Error(path, "not a regular file");
    }
    fileSize = static_cast<std::size_t>(info.st_size);
  }
  InputFile(const InputFile &) = delete;
  InputFile &operator=(const InputFile &) = delete;
  ~InputFile() { std::fclose(file); }

  std::size_t size() const { return fileSize; }

  /// Reads exactly `size` bytes at the current position, or throws saying
  /// the file is truncated in `what`.
  void read(void *data, std::size_t size, const std::string &what) {
    if (size && std::fread(data, 1, size, file) != size)
      throw Error(path, "truncated file: incomplete " + what);
  }

private:
  const std::string &path;
  std::FILE *file = nullptr;
  std::size_t fileSize = 0;
};

/// Reads and checks the header of the open file `in`.
NpyHeader parseHeader(InputFile &in, const std::string &path) {
  char prefix[kMagicSize + 2];
  if (in.size() < sizeof(prefix))
    throw Error(path, "not an npy file (too short for the npy magic)");
  in.read(prefix, sizeof(prefix), "magic");
  if (std::memcmp(prefix, kMagic, kMagicSize) != 0)
    throw Error(path, "not an npy file (bad magic)");
  int major = static_cast<unsigned char>(prefix[kMagicSize]);
  int minor = static_cast<unsigned char>(prefix[kMagicSize + 1]);
  if (major < 1 || major > 3 || minor != 0)
    throw Error(path, "unsupported npy format version " +
                          std::to_string(major) + "." + std::to_string(minor));

  // Version 1.0 stores the header length in 2 bytes, later ones in 4.
  unsigned char lengthBytes[4] = {0, 0, 0, 0};
  std::size_t lengthSize = major == 1 ? 2 : 4;
  in.read(lengthBytes, lengthSize, "header");
  std::size_t headerLength = 0;
  for (std::size_t i = lengthSize; i-- > 0;)
    headerLength = headerLength << 8 | lengthBytes[i];
  std::size_t dataOffset = sizeof(prefix) + lengthSize + headerLength;
  if (dataOffset > in.size())
    throw Error(path, "truncated file: the header needs " +
                          std::to_string(headerLength) + " bytes");
  std::string text(headerLength, '\0');
  in.read(text.data(), headerLength, "header");

  PyValue dict = parsePythonLiteral(text, path);
  if (dict.kind != PyValue::Kind::Dict)
    throw Error(path, "malformed npy header: not a dict");
  const PyValue *descr = nullptr, *fortran = nullptr, *shape = nullptr;
  for (std::size_t i = 0; i < dict.keys.size(); ++i) {
    const std::string &key = dict.keys[i];
    if (key == "descr")
      descr = &dict.items[i];
    else if (key == "fortran_order")
      fortran = &dict.items[i];
    else if (key == "shape")
      shape = &dict.items[i];
    else
      throw Error(path,
                  "malformed npy header: unexpected key " + quoteName(key));
  }
  if (!descr || !fortran || !shape)
    throw Error(path, std::string("malformed npy header: missing key '") +
                          (!descr     ? "descr"
                           : !fortran ? "fortran_order"
                                      : "shape") +
                          "'");
  if (descr->kind != PyValue::Kind::String)
    throw Error(path, "structured dtypes are not supported");
  if (fortran->kind != PyValue::Kind::Bool)
    throw Error(path, "malformed npy header: 'fortran_order' is not a bool");
  if (fortran->flag)
    throw Error(path, "Fortran-order arrays are not supported (save a "
                      "C-order array, e.g. with numpy.ascontiguousarray)");
  if (shape->kind != PyValue::Kind::Sequence)
    throw Error(path, "malformed npy header: 'shape' is not a tuple");

  NpyHeader header;
  header.descr = descr->text;
  header.dtype = dtypeOfDescr(descr->text, path);
  for (const PyValue &extent : shape->items) {
    if (extent.kind != PyValue::Kind::Int || extent.number < 0)
      throw Error(path, "malformed npy header: 'shape' holds something other "
                        "than non-negative integers");
    header.shape.push_back(extent.number);
  }
  header.dataOffset = dataOffset;
  return header;
}

/// Reads the data described by `header` from `in`, which is positioned at
/// the data.
HostTensor readData(InputFile &in, const NpyHeader &header,
                    const std::string &path) {
  // The size the header promises is checked against the file before
  // anything is allocated: a 100-byte file may claim terabytes.
  std::size_t available = in.size() - header.dataOffset;
  std::optional<std::size_t> size = byteSizeOf(elementSize(header.dtype), header.shape);
  std::string shape = formatTupleShape(header.shape);
  if (!size)
    throw Error(path, "shape " + shape + " of " + quoteName(header.descr) +
                          " is larger than any file");
  std::size_t needed = *size;
  if (available < needed)
    throw Error(path, "truncated file: shape " + shape + " of " +
                          quoteName(header.descr) + " needs " +
                          std::to_string(needed) + " data bytes, found " +
                          std::to_string(available));
  if (available > needed)
    throw Error(path, std::to_string(available - needed) +
                          " unexpected bytes after the array data");
  HostTensor tensor = HostTensor::zeros(header.dtype, header.shape);
  in.read(tensor.data(), tensor.byteSize(), "array data");
  return tensor;
}

} // namespace

std::string moe::runtime::npyDescr(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return "<f4";
  case DType::F64:
    return "<f8";
  case DType::F16:
    return "<f2";
  case DType::I64:
    return "<i8";
  case DType::I32:
    return "<i4";
  case DType::Bool:
    return "|b1";
  case DType::BF16:
    return "";
  }
  return "";
}

std::string_view moe::runtime::numpyTypeName(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return "float32";
  case DType::BF16:
    return "bfloat16";
  case DType::F16:
    return "float16";
  case DType::F64:
    return "float64";
  case DType::I64:
    return "int64";
  case DType::I32:
    return "int32";
  case DType::Bool:
    return "bool";
  }
  return "?";
}

std::string moe::runtime::formatTupleShape(const std::vector<int64_t> &shape) {
  std::string text = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i)
      text += ", ";
    text += std::to_string(shape[i]);
  }
  return text + (shape.size() == 1 ? ",)" : ")");
}

NpyHeader moe::runtime::readNpyHeader(const std::string &path) {
  InputFile in(path);
  return parseHeader(in, path);
}

HostTensor moe::runtime::readNpy(const std::string &path) {
  InputFile in(path);
  NpyHeader header = parseHeader(in, path);
  return readData(in, header, path);
}

HostTensor moe::runtime::readNpyAs(const std::string &path, DType dtype,
                                   int64_t rank) {
  InputFile in(path);
  NpyHeader header = parseHeader(in, path);
  if (header.dtype != dtype ||
      (rank >= 0 && static_cast<int64_t>(header.shape.size()) != rank)) {
    std::string expected =
        "expected a " + std::string(numpyTypeName(dtype)) + " array";
    if (rank >= 0)
      expected += " of rank " + std::to_string(rank);
    throw Error(path, expected + ", got " + quoteName(header.descr) +
                          " shape " + formatTupleShape(header.shape));
  }
  return readData(in, header, path);
}

void moe::runtime::writeNpy(const std::string &path, const HostTensor &tensor) {
  if (tensor.isNull())
    throw Error(path, "cannot write a null tensor");
  std::string descr = npyDescr(tensor.dtype());
  if (descr.empty())
    throw Error(path, "bf16 tensors have no npy type; convert them to f32 "
                      "before writing");

  std::string dict = "{'descr': '" + descr +
                     "', 'fortran_order': False, 'shape': " +
                     formatTupleShape(tensor.shape()) + ", }";
  // Pad with spaces and a final newline so the data starts on a multiple of
  // 64 bytes, as numpy does; switch to version 2.0 if the length needs more
  // than 2 bytes.
  int major = 1;
  std::size_t prefixSize = kMagicSize + 2 + 2;
  if ((prefixSize + dict.size() + 1 + 63) / 64 * 64 - prefixSize > 0xffff) {
    major = 2;
    prefixSize = kMagicSize + 2 + 4;
  }
  std::size_t total = (prefixSize + dict.size() + 1 + 63) / 64 * 64;
  std::size_t headerLength = total - prefixSize;
  dict.append(headerLength - dict.size() - 1, ' ');
  dict += '\n';

  std::string prefix(kMagic, kMagicSize);
  prefix += static_cast<char>(major);
  prefix += '\0';
  for (std::size_t i = 0; i < prefixSize - kMagicSize - 2; ++i)
    prefix += static_cast<char>((headerLength >> (8 * i)) & 0xff);
  writeFileAtomically(path, {{prefix.data(), prefix.size()},
                             {dict.data(), dict.size()},
                             {tensor.data(), tensor.byteSize()}});
}
