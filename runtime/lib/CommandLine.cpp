//===- CommandLine.cpp - The flag parser of the runner tools --------------===//
//
// See moe/Runtime/CommandLine.h.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/CommandLine.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>

using namespace moe::runtime;

int FlagParser::bad(const std::string &message) const {
  std::fprintf(stderr, "%s: error: %s (see --help)\n", tool.c_str(),
               message.c_str());
  return 2;
}

std::optional<int> FlagParser::parse(int argc, char **argv) const {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(usage, stdout);
      return 0;
    }
    if (auto it = switches.find(arg); it != switches.end()) {
      *it->second = true;
      continue;
    }
    if (other && other(arg))
      continue;
    std::string key = arg, value;
    bool inlineValue = false;
    if (size_t eq = arg.find('='); eq != std::string::npos && arg[0] == '-') {
      key = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      inlineValue = true;
    }
    auto it = valued.find(key);
    if (it == valued.end())
      return bad("unknown argument '" + arg + "'");
    if (!inlineValue) {
      if (i + 1 >= argc)
        return bad(key + " needs a value");
      value = argv[++i];
    }
    if (value.empty() && !emptyAllowed.count(key))
      return bad(key + " needs a value");
    *it->second = value;
  }
  return std::nullopt;
}

bool moe::runtime::parseCount(const std::string &text, int64_t &value) {
  char *end = nullptr;
  errno = 0;
  long long parsed = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || parsed < 1 ||
      parsed > 1000000)
    return false;
  value = parsed;
  return true;
}
