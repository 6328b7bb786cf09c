#!/usr/bin/env bash
# The main example: sets up and builds, then takes a layer spec (by default
# Switch-Base-8, test/Examples/specs/switch-base-8.json, for 2048 tokens)
# through the toolchain: import (moe.layer), decomposition, and a run on the
# CPU with random weights, printing what each stage produced.
#
#   tools/example.sh [SPEC.json [TOKENS [DMODELxDFF]]]
#
# DMODELxDFF narrows the experts (d_model, d_ff, and shared_d_ff in the same
# ratio) and keeps every routing field, for layers whose real weights do not
# fit this machine: tools/example.sh test/Examples/specs/deepseek-v3.json 64
# 512x256 runs DeepSeek-V3's routing (256 experts, 8 groups, sigmoid + bias,
# shared expert) on 512-wide tokens; its real expert weights are 45 GB in f32.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${MOE_BUILD_DIR:-$root/build}"
"$root/tools/build.sh" >/dev/null
spec="${1:-$root/test/Examples/specs/switch-base-8.json}"
tokens="${2:-2048}"
narrow="${3:-}"
work="$build/example/$(basename "$spec" .json)"
mkdir -p "$work"
if [[ -n "$narrow" ]]; then
  if [[ ! "$narrow" =~ ^[1-9][0-9]*x[1-9][0-9]*$ ]]; then
    echo "example.sh: error: DMODELxDFF must look like 512x256, got '$narrow'" >&2
    exit 2
  fi
  /usr/bin/python3 - "$spec" "${narrow%x*}" "${narrow#*x}" "$work/narrow.json" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
d, f = int(sys.argv[2]), int(sys.argv[3])
if spec.get("shared_d_ff"):
    spec["shared_d_ff"] = max(1, spec["shared_d_ff"] * f // spec["d_ff"])
spec["d_model"], spec["d_ff"] = d, f
json.dump(spec, open(sys.argv[4], "w"), indent=2)
PY
  echo "== $spec with d_model $((${narrow%x*})) and d_ff $((${narrow#*x})) (every routing field kept)"
  spec="$work/narrow.json"
fi

echo "== the layer spec: $spec"
cat "$spec"
echo
echo "== moe-translate --import-moe-spec --tokens=$tokens"
"$build/bin/moe-translate" --import-moe-spec "$spec" --tokens="$tokens" -o "$work/layer.mlir"
cat "$work/layer.mlir"
echo "== moe-opt --canonicalize --moe-decompose"
"$build/bin/moe-opt" --verify-each --canonicalize --moe-decompose "$work/layer.mlir"
echo "== random weights and $tokens tokens"
/usr/bin/python3 "$root/tools/example_inputs.py" "$spec" "$tokens" "$work"
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
