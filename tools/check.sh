#!/usr/bin/env bash
# The test command: sets up, builds, and runs every test (CTest, which runs
# the lit + FileCheck suite), then the sanitized tree's tests
# (tools/sanitize.sh: clang, ASan + UBSan) and each libFuzzer target for 20 s
# (tools/fuzz.sh). MOE_CHECK_QUICK=1 stops after CTest (for local runs).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${MOE_BUILD_DIR:-$root/build}"
"$root/tools/build.sh"
(cd "$build" && ctest --output-on-failure)
if [ "${MOE_CHECK_QUICK:-0}" = 1 ]; then
  echo "check: MOE_CHECK_QUICK=1: sanitized tests and fuzzing skipped"
  exit 0
fi
"$root/tools/sanitize.sh"
"$root/tools/fuzz.sh" --no-build --seconds 20
