//===- CommandLine.h - The flag parser of the runner tools --------*- C++ -*-===//
//
// moe-run and moe-gpu-run take `--flag value` / `--flag=value` options and
// bare switches, and answer bad usage with one line and exit status 2. (They
// do not use llvm::cl: LLVM owns a `-stats` option, and `--stats` is part of
// their contract; moe-gpu-run links no LLVM at all.)
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_COMMANDLINE_H
#define MOE_RUNTIME_COMMANDLINE_H

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>

namespace moe::runtime {

struct FlagParser {
  /// The tool's name, for messages, and its --help text.
  std::string tool;
  const char *usage = "";
  /// Flags that take a value, and where it goes.
  std::map<std::string, std::string *> valued;
  /// Valued flags whose value may be empty (checked by the caller).
  std::set<std::string> emptyAllowed;
  /// Switches without a value.
  std::map<std::string, bool *> switches;
  /// Any other argument; true when it was taken (e.g. `-O2`).
  std::function<bool(const std::string &)> other;

  /// Parses argv; returns an exit status when the tool should stop (0 after
  /// --help, 2 after printing a usage error), nothing to go on.
  std::optional<int> parse(int argc, char **argv) const;

  /// Prints `<tool>: error: <message> (see --help)`; returns 2.
  int bad(const std::string &message) const;
};

/// Parses a count in [1, 10^6].
bool parseCount(const std::string &text, int64_t &value);

} // namespace moe::runtime

#endif // MOE_RUNTIME_COMMANDLINE_H
