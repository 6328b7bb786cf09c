#!/usr/bin/env bash
# The test command: sets up, builds, and runs every test (CTest, which runs
# the lit + FileCheck suite).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${MOE_BUILD_DIR:-$root/build}"
"$root/tools/build.sh"
cd "$build"
ctest --output-on-failure
