#!/usr/bin/env bash
# Prepares, on the build machine, everything a GPU machine without a compiler
# needs to check and measure the GPU path in one command (tools/gpu_check.sh):
#
#   tools/gpu_prepare.sh [-o DIR] [--shapes switch,mixtral,deepseek]
#                        [--gpu-chip sm_90a]
#
# DIR (default gpu-prepared/, ignored by git) gets:
#   numeric-f32/, numeric-bf16/  the numeric suite, every case written and compiled
#                                (test/e2e/run_case.py --prepare-gpu), f32 and bf16
#                                activations;
#   bench/<shape>/               the benchmark shapes of tools/bench/gpu_bench.py
#                                compiled with bf16 tokens and weights
#                                (tools/gpu_package.sh --no-runner);
#   bench/<shape>-warp/          the same with warp MMAs (--gpu-mma warp), which
#                                gpu_bench.py measures beside the default
#                                (warpgroup MMAs on sm_90a);
#   bench/<shape>-rows64/ or -rows128/
#                                the same with the other tile of the tensor-core
#                                kernels than the default picks (--gpu-tile-rows:
#                                64 for Switch and Mixtral, whose experts average
#                                2048 and 1024 rows, 128 for DeepSeek-V3's 128),
#                                measured beside it too;
#   bench/<shape>-narrow/        the same with the tensor-core kernels' earlier
#                                loop shape: steps of 32 k, 64-column tiles
#                                (--gpu-max-step-depth 32 --gpu-max-tile-cols 64),
#                                so that the benchmark measures what the 64-k
#                                steps and 128-column tiles change;
#   bench/moe-gpu-run            the runner (no MLIR, LLVM or CUDA library needed);
# and DIR.tgz, the same compressed (about 21 MB instead of 104: the artifacts'
# host code carries the kernels as text), to carry to the GPU machine.
# Uses the build in ./build (or $MOE_BUILD_DIR): run tools/build.sh first.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${MOE_BUILD_DIR:-$root/build}"
out="$root/gpu-prepared" shapes="switch,mixtral,deepseek" chip="sm_90a"
die() { echo "gpu_prepare.sh: error: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out="${2:?}"; shift 2 ;;
    --shapes) shapes="${2:?}"; shift 2 ;;
    --gpu-chip) chip="${2:?}"; shift 2 ;;
    -h|--help) sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ -x "$build/bin/moe-gpu-run" ] || die "$build/bin/moe-gpu-run is missing: run tools/build.sh"
mkdir -p "$out/bench"
for act in f32 bf16; do
  echo "gpu_prepare.sh: numeric suite, $act activations -> $out/numeric-$act"
  /usr/bin/python3 "$root/test/e2e/run_case.py" --prepare-gpu "$build" \
    --workdir "$out/numeric-$act" --case all --act-dtype "$act" >/dev/null
done
spec_of() {
  case "$1" in
    switch) echo "$root/test/Examples/specs/switch-base-8.json 16384" ;;
    mixtral) echo "$root/test/Examples/specs/mixtral-8x7b.json 4096" ;;
    deepseek) echo "$root/tools/bench/specs/deepseek-v3-shape.json 4096" ;;
    *) die "unknown shape '$1' (switch, mixtral, deepseek)" ;;
  esac
}
# The tile the default does not pick for a shape (see above).
other_rows() {
  case "$1" in
    deepseek) echo 128 ;;
    *) echo 64 ;;
  esac
}
IFS=, read -r -a list <<< "$shapes"
for shape in "${list[@]}"; do
  read -r spec tokens <<< "$(spec_of "$shape")"
  rows="$(other_rows "$shape")"
  for variant in auto warp "rows$rows" narrow; do
    folder="$out/bench/$shape" mma=auto tile=0 depth=64 columns=128
    case "$variant" in
      warp) mma=warp folder="$folder-warp" ;;
      rows*) tile="$rows" folder="$folder-$variant" ;;
      narrow) depth=32 columns=64 folder="$folder-narrow" ;;
    esac
    echo "gpu_prepare.sh: benchmark shape $shape (T $tokens, $mma MMA, tile rows $tile," \
      "steps of at most $depth k, at most $columns columns) -> $folder"
    "$root/tools/gpu_package.sh" --spec "$spec" --tokens "$tokens" --act-dtype bf16 \
      --weight-dtype bf16 --gpu-chip "$chip" --gpu-mma "$mma" --gpu-tile-rows "$tile" \
      --gpu-max-step-depth "$depth" --gpu-max-tile-cols "$columns" \
      --no-runner -o "$folder" >/dev/null
  done
done
cp "$build/bin/moe-gpu-run" "$out/bench/moe-gpu-run"
tar czf "$out.tgz" -C "$(dirname "$out")" "$(basename "$out")"
echo "gpu_prepare.sh: done: $out ($(du -sh "$out" | cut -f1)), $out.tgz ($(du -sh "$out.tgz" | cut -f1));" \
  "on the GPU machine: tools/gpu_check.sh $(basename "$out").tgz"
