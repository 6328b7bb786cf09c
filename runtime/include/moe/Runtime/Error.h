//===- Error.h - The exception every runtime failure throws -----*- C++ -*-===//
//
// The runtime reports bad input (missing files, malformed npy or safetensors
// data, weights that do not fit the layer spec) by throwing `Error` with a
// one-line message `<source>: error: <what>`, where the source is usually the
// path of the offending file.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_ERROR_H
#define MOE_RUNTIME_ERROR_H

#include <stdexcept>
#include <string>
#include <string_view>

namespace moe::runtime {

/// A runtime failure with a one-line, user-facing message.
struct Error : std::runtime_error {
  /// Takes a complete message; line breaks in it are replaced by spaces so
  /// the message stays on one line.
  explicit Error(std::string_view message);
  /// Builds `<source>: error: <what>`.
  Error(std::string_view source, std::string_view what);
};

/// Wraps `text` in single quotes, for names inside messages.
std::string quoteName(std::string_view text);

} // namespace moe::runtime

#endif // MOE_RUNTIME_ERROR_H
