//===- PythonLiteral.h - Python literals of npy headers ---------*- C++ -*-===//
//
// Internal to MoERuntime: the subset of Python literal syntax that npy
// headers are written in (strings, integers, True, False, None, tuples,
// lists and dicts).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_LIB_PYTHONLITERAL_H
#define MOE_RUNTIME_LIB_PYTHONLITERAL_H

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moe::runtime::detail {

/// A value of the Python literal subset that npy headers use.
struct PyValue {
  enum class Kind { String, Int, Bool, None, Sequence, Dict };
  Kind kind = Kind::None;
  std::string text;
  int64_t number = 0;
  bool flag = false;
  /// Elements of a sequence, or values of a dict.
  std::vector<PyValue> items;
  /// Keys of a dict, parallel to `items`.
  std::vector<std::string> keys;
};

/// Parses `text` as one Python literal. Throws `Error` naming `path`
/// (`malformed npy header: ... at column N`) for anything else.
PyValue parsePythonLiteral(std::string_view text, const std::string &path);

} // namespace moe::runtime::detail

#endif // MOE_RUNTIME_LIB_PYTHONLITERAL_H
