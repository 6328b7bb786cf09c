#!/usr/bin/env bash
# Builds the sanitized tree (tools/build-sanitized.sh: clang-22, ASan + UBSan)
# and runs in it the runtime unit tests, the collectives (1, 2 and 4 ranks)
# and the lit tests that run the tools on real data: every e2e numeric case
# (e2e/fusion-on.test: all cases on the CPU and in the GPU program's host
# emulation), the non-finite and random-layer cases (the latter with runtime
# checks compiled in), and moe-run's error cases (the single-case e2e tests
# repeat fusion-on.test, and e2e/runtime-checks.test runs every case again
# with checks: both are left to the normal tree). Any sanitizer report fails
# the run.
#
# ASAN_OPTIONS: Debian's libMLIR is not instrumented, so the poisoning done
# by inline LLVM allocator code compiled into our objects is invisible to it
# and shows up as use-after-poison: allow_user_poisoning=0 turns that
# poisoning off. Leak checking is off: MLIR's and LLVM's process-lifetime
# registries are not freed at exit by design.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${MOE_SAN_BUILD_DIR:-$root/build-san}"
"$root/tools/build-sanitized.sh"
export ASAN_OPTIONS="allow_user_poisoning=0:detect_leaks=0:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
cd "$build"
ctest --output-on-failure -R 'moe-runtime-unit|moe-collectives'
/usr/lib/llvm-22/bin/lit -sv "$build/test" \
  --filter 'e2e/(fusion-on|non-finite|random-layers)|moe-run/'
