#!/usr/bin/env bash
# Sets up the machine (tools/setup.sh) and builds the project with Ninja in
# ./build (or $MOE_BUILD_DIR).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${MOE_BUILD_DIR:-$root/build}"
"$root/tools/setup.sh"
cmake -G Ninja -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
echo "build: ninja -C $build"
ninja -C "$build"
