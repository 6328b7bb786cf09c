//===- TestUtil.h - Helpers of the runtime unit tests -----------*- C++ -*-===//
//
// The fixture directory given on the command line, scratch directories,
// raw file writes for malformed inputs, and the check that a call throws a
// one-line `moe::runtime::Error` with the expected text.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TEST_RUNTIME_TESTUTIL_H
#define MOE_TEST_RUNTIME_TESTUTIL_H

#include "moe/Runtime/Error.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

namespace moe::runtime::test {

/// The directory of the committed npy fixtures (argv[1] of the test binary).
const std::string &inputsDir();

/// A fresh directory under the system's temporary directory, removed with
/// its contents when the object dies.
class ScratchDir {
public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir &) = delete;
  ScratchDir &operator=(const ScratchDir &) = delete;

  /// The path of `name` inside the directory.
  std::string file(const std::string &name) const;
  /// The names of the entries in the directory, sorted.
  std::vector<std::string> entries() const;

private:
  std::string root;
};

/// Writes `bytes` to `path` as is (for malformed inputs).
void writeBytes(const std::string &path, const std::string &bytes);
/// The whole content of `path`.
std::string readBytes(const std::string &path);

/// Succeeds when `body` throws `moe::runtime::Error` whose message is one
/// line and contains every string of `fragments`.
::testing::AssertionResult
throwsError(const std::function<void()> &body,
            const std::vector<std::string> &fragments);

/// Succeeds when `body` throws `moe::runtime::Error` with exactly `message`.
::testing::AssertionResult throwsExactly(const std::function<void()> &body,
                                         const std::string &message);

} // namespace moe::runtime::test

#endif // MOE_TEST_RUNTIME_TESTUTIL_H
