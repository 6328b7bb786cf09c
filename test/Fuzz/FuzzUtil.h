//===- FuzzUtil.h - Shared pieces of the libFuzzer targets -----*- C++ -*-===//
//
// The readers under test take file paths: each input is written to a file
// of its own process (in /dev/shm when there is one) and read back through
// the same code the tools use.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TEST_FUZZ_FUZZUTIL_H
#define MOE_TEST_FUZZ_FUZZUTIL_H

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <unistd.h>

namespace moe::fuzz {

/// The path of this process's scratch file with `suffix`, holding `data`.
inline const std::string &writeInput(const uint8_t *data, size_t size,
                                     const char *suffix) {
  static const std::string path =
      std::string(access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp") +
      "/moe-fuzz-" + std::to_string(getpid()) + suffix;
  std::FILE *file = std::fopen(path.c_str(), "wb");
  if (!file)
    __builtin_trap();
  if (size && std::fwrite(data, 1, size, file) != size)
    __builtin_trap();
  std::fclose(file);
  return path;
}

} // namespace moe::fuzz

#endif // MOE_TEST_FUZZ_FUZZUTIL_H
