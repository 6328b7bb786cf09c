#!/usr/bin/env bash
# The main example: sets up, builds, then imports the Switch-Base-8 layer spec
# (test/Examples/specs/switch-base-8.json) for 2048 tokens, canonicalizes and
# decomposes it, and prints the IR of each stage.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${MOE_BUILD_DIR:-$root/build}"
"$root/tools/build.sh" >/dev/null
spec="$root/test/Examples/specs/switch-base-8.json"
echo "== $spec"
cat "$spec"
echo "== moe-translate --import-moe-spec --tokens=2048"
"$build/bin/moe-translate" --import-moe-spec "$spec" --tokens=2048 -o "$build/example-layer.mlir"
cat "$build/example-layer.mlir"
echo "== moe-opt --canonicalize --moe-decompose"
"$build/bin/moe-opt" --verify-each --canonicalize --moe-decompose "$build/example-layer.mlir"
