//===- TestMain.cpp - Entry point and helpers of the runtime unit tests ---===//
//
// `moe-runtime-tests <inputs-dir> [gtest flags]`: runs every runtime unit
// test; the npy fixtures are read from <inputs-dir> (test/Runtime/Inputs).
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace fs = std::filesystem;
using namespace moe::runtime;

namespace {
std::string inputs;
} // namespace

const std::string &moe::runtime::test::inputsDir() { return inputs; }

test::ScratchDir::ScratchDir() {
  std::string pattern =
      (fs::temp_directory_path() / "moe-runtime-test-XXXXXX").string();
  if (!::mkdtemp(pattern.data()))
    throw std::runtime_error("cannot create a scratch directory");
  root = pattern;
}

test::ScratchDir::~ScratchDir() {
  std::error_code ignored;
  fs::remove_all(root, ignored);
}

std::string test::ScratchDir::file(const std::string &name) const {
  return root + "/" + name;
}

std::vector<std::string> test::ScratchDir::entries() const {
  std::vector<std::string> names;
  for (const fs::directory_entry &entry : fs::directory_iterator(root))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

void test::writeBytes(const std::string &path, const std::string &bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out)
    throw std::runtime_error("cannot write " + path);
}

std::string test::readBytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

/// Runs `body` and returns the message of the `Error` it throws; fails the
/// assertion result if it throws nothing or something else.
static ::testing::AssertionResult catchError(const std::function<void()> &body,
                                             std::string &message) {
  try {
    body();
  } catch (const Error &error) {
    message = error.what();
    if (message.find('\n') != std::string::npos)
      return ::testing::AssertionFailure()
             << "message is not one line: " << message;
    return ::testing::AssertionSuccess();
  } catch (const std::exception &other) {
    return ::testing::AssertionFailure()
           << "threw a non-Error exception: " << other.what();
  }
  return ::testing::AssertionFailure() << "threw nothing";
}

::testing::AssertionResult
test::throwsError(const std::function<void()> &body,
                  const std::vector<std::string> &fragments) {
  std::string message;
  ::testing::AssertionResult caught = catchError(body, message);
  if (!caught)
    return caught;
  for (const std::string &fragment : fragments)
    if (message.find(fragment) == std::string::npos)
      return ::testing::AssertionFailure()
             << "message '" << message << "' lacks '" << fragment << "'";
  return ::testing::AssertionSuccess() << message;
}

::testing::AssertionResult
test::throwsExactly(const std::function<void()> &body,
                    const std::string &expected) {
  std::string message;
  ::testing::AssertionResult caught = catchError(body, message);
  if (!caught)
    return caught;
  if (message != expected)
    return ::testing::AssertionFailure()
           << "message\n  '" << message << "'\nexpected\n  '" << expected
           << "'";
  return ::testing::AssertionSuccess();
}

int main(int argc, char **argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (argc != 2 || !fs::is_directory(argv[1])) {
    std::cerr << "usage: moe-runtime-tests <test/Runtime/Inputs> "
                 "[gtest flags]\n";
    return 2;
  }
  inputs = argv[1];
  return RUN_ALL_TESTS();
}
