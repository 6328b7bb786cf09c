#!/usr/bin/env bash
# The main example: sets up and builds, then takes the Switch-Base-8 layer
# spec (test/Examples/specs/switch-base-8.json) for 2048 tokens through the
# toolchain: import (moe.layer), decomposition, and a run on the CPU with
# random weights, printing what each stage produced.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${MOE_BUILD_DIR:-$root/build}"
"$root/tools/build.sh" >/dev/null
spec="$root/test/Examples/specs/switch-base-8.json"
work="$build/example"
mkdir -p "$work"

echo "== the layer spec: $spec"
cat "$spec"
echo
echo "== moe-translate --import-moe-spec --tokens=2048"
"$build/bin/moe-translate" --import-moe-spec "$spec" --tokens=2048 -o "$work/layer.mlir"
cat "$work/layer.mlir"
echo "== moe-opt --canonicalize --moe-decompose"
"$build/bin/moe-opt" --verify-each --canonicalize --moe-decompose "$work/layer.mlir"
echo "== random weights and 2048 tokens"
/usr/bin/python3 "$root/tools/example_inputs.py" "$spec" 2048 "$work"
ls -l "$work/weights.safetensors" "$work/x.npy"
echo "== moe-run (moe-cpu-pipeline, JIT) -v --bench 3"
"$build/bin/moe-run" --spec "$spec" --weights "$work/weights.safetensors" \
  --input "$work/x.npy" --output "$work/y.npy" --stats "$work/stats.json" -v --bench 3
echo "== statistics ($work/stats.json)"
cat "$work/stats.json"
echo "== output ($work/y.npy)"
/usr/bin/python3 -c "
import numpy as np
y = np.load('$work/y.npy')
print('shape', y.shape, y.dtype, ' |y| =', float(np.linalg.norm(y)))
print('tokens with every assignment dropped (y = 0):', int((np.abs(y).sum(1) == 0).sum()))
print('y[0, :6] =', np.array2string(y[0, :6], precision=4))
"
