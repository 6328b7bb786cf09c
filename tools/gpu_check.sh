#!/usr/bin/env bash
# On a GPU machine (no compiler needed): runs what tools/gpu_prepare.sh made:
# the numeric suite in f32 and bf16 activations (bf16 once more with the calls
# replayed from a CUDA graph) against the float64 reference,
# then the benchmark against PyTorch (eager loop and torch._grouped_mm).
#
#   tools/gpu_check.sh [DIR] [--shapes switch,mixtral,deepseek] [--rounds 5] [--runs 10]
#
# DIR defaults to gpu-prepared/; a DIR.tgz from gpu_prepare.sh is unpacked
# into a temporary folder first. Prints each case's PASS/FAIL line and the
# benchmark table; exits non-zero when a case fails.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="$root/gpu-prepared"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then dir="$1"; shift; fi
if [ -f "$dir" ] && [ "${dir%.tgz}" != "$dir" ]; then
  unpacked="$(mktemp -d)"
  trap 'rm -rf "$unpacked"' EXIT
  tar xzf "$dir" -C "$unpacked"
  dir="$(find "$unpacked" -mindepth 1 -maxdepth 1 -type d | head -n 1)"
fi
[ -d "$dir/numeric-f32" ] || { echo "gpu_check.sh: error: $dir has no prepared suite (tools/gpu_prepare.sh)" >&2; exit 1; }
python="${MOE_PYTHON:-python3}"  # the GPU machines: python3 with numpy and torch
status=0
for act in f32 bf16; do
  echo "== numeric suite, $act activations"
  "$python" "$root/test/e2e/run_case.py" --run-prepared --workdir "$dir/numeric-$act" --case all || status=1
done
echo "== numeric suite, bf16 activations, calls replayed from a CUDA graph"
"$python" "$root/test/e2e/run_case.py" --run-prepared --cuda-graph --workdir "$dir/numeric-bf16" --case all || status=1
echo "== benchmark"
"$python" "$root/tools/bench/gpu_bench.py" --packages "$dir/bench" "$@" || status=1
exit $status
