//===- Error.cpp - The exception every runtime failure throws -------------===//
//
// One-line message construction for `moe::runtime::Error`.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/Error.h"

using namespace moe::runtime;

namespace {

/// `message` with every line break replaced by a space.
std::string oneLine(std::string_view message) {
  std::string line(message);
  for (char &c : line)
    if (c == '\n' || c == '\r')
      c = ' ';
  return line;
}

} // namespace

Error::Error(std::string_view message) : std::runtime_error(oneLine(message)) {}

Error::Error(std::string_view source, std::string_view what)
    : std::runtime_error(
          oneLine(std::string(source) + ": error: " + std::string(what))) {}

std::string moe::runtime::quoteName(std::string_view text) {
  return "'" + std::string(text) + "'";
}
