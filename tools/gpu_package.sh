#!/usr/bin/env bash
# Compiles a layer for the GPU into a folder that runs on any machine with an
# NVIDIA GPU and driver, with no compiler there:
#
#   tools/gpu_package.sh --spec S.json --tokens T -o DIR [--act-dtype bf16]
#                        [--weight-dtype bf16] [--gpu-chip sm_90a]
#                        [--gpu-mma auto|warp|warpgroup] [--gpu-tile-rows 0|64|128]
#                        [--gpu-max-step-depth 64|32] [--gpu-max-tile-cols 128|64]
#                        [--kernel-format auto|bin|isa] [--no-runner]
#   DIR/moe-gpu-run --artifact DIR/layer.cuda.json --host DIR/layer.host.so \
#       --weights W.safetensors --input X.npy --output Y.npy [--stats ST.json]
#
# --gpu-mma picks the tensor-core MMA of the grouped matmuls (auto: warpgroup
# on sm_90a, warp elsewhere); --gpu-tile-rows the rows of their block tiles
# (0, the default: 128 where the experts average at least 256 rows, else 64);
# --gpu-max-step-depth the k of their reduction steps (64, the default, where K
# allows, else 32; or 32 throughout); --gpu-max-tile-cols the columns of the
# block tiles of a grouped matmul with one weight (128, the default, where N
# allows, else 64; or 64 throughout). DIR gets: layer.mlir (the imported layer), layer.cuda.json (the CUDA
# artifact of moe-translate --moe-to-cuda-artifact), layer.host.so (its host
# code, compiled by LLVM's llc and linked as a shared object), and a copy of
# moe-gpu-run (linked without MLIR, LLVM or MPI) unless --no-runner. Uses the tools of the build
# in ./build (or $MOE_BUILD_DIR), which must exist (tools/build.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${MOE_BUILD_DIR:-$root/build}"
llc=/usr/lib/llvm-22/bin/llc

die() { echo "gpu_package.sh: error: $*" >&2; exit 1; }

spec="" tokens="" out="" act="f32" weight="f32" chip="sm_90a" format="auto" mma="auto"
rows=0 depth=64 columns=128
runner=1
while [ $# -gt 0 ]; do
  case "$1" in
    --spec) spec="${2:?}"; shift 2 ;;
    --tokens) tokens="${2:?}"; shift 2 ;;
    -o) out="${2:?}"; shift 2 ;;
    --act-dtype) act="${2:?}"; shift 2 ;;
    --weight-dtype) weight="${2:?}"; shift 2 ;;
    --gpu-chip) chip="${2:?}"; shift 2 ;;
    --gpu-mma) mma="${2:?}"; shift 2 ;;
    --gpu-tile-rows) rows="${2:?}"; shift 2 ;;
    --gpu-max-step-depth) depth="${2:?}"; shift 2 ;;
    --gpu-max-tile-cols) columns="${2:?}"; shift 2 ;;
    --kernel-format) format="${2:?}"; shift 2 ;;
    --no-runner) runner=0; shift ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ -n "$spec" ] && [ -n "$tokens" ] && [ -n "$out" ] ||
  die "--spec, --tokens and -o are required (see --help)"
for tool in moe-translate moe-gpu-run; do
  [ -x "$build/bin/$tool" ] || die "$build/bin/$tool is missing: run tools/build.sh"
done
[ -x "$llc" ] || die "$llc is missing (apt-get install llvm-22)"

mkdir -p "$out"
echo "gpu_package.sh: importing $spec for $tokens tokens ($act activations, $weight weights)"
"$build/bin/moe-translate" --import-moe-spec "$spec" --tokens "$tokens" \
  --act-dtype "$act" --weight-dtype "$weight" -o "$out/layer.mlir"
echo "gpu_package.sh: compiling the GPU code for $chip ($format kernels, $mma MMA)"
PATH="/usr/local/cuda/bin:$PATH" "$build/bin/moe-translate" \
  --moe-to-cuda-artifact --gpu-chip "$chip" --gpu-mma "$mma" --gpu-tile-rows "$rows" \
  --gpu-max-step-depth "$depth" --gpu-max-tile-cols "$columns" \
  --kernel-format "$format" \
  "$out/layer.mlir" -o "$out/layer.cuda.json"
echo "gpu_package.sh: compiling the host code"
python3 -c 'import json, sys; sys.stdout.write(json.load(open(sys.argv[1]))["host_llvm_ir"])' \
  "$out/layer.cuda.json" > "$out/layer.host.ll"
"$llc" -O2 -relocation-model=pic -filetype=obj "$out/layer.host.ll" \
  -o "$out/layer.host.o"
c++ -shared -o "$out/layer.host.so" "$out/layer.host.o" -lm
rm -f "$out/layer.host.ll" "$out/layer.host.o"
[ "$runner" = 1 ] && cp "$build/bin/moe-gpu-run" "$out/moe-gpu-run"
echo "gpu_package.sh: done: $out/moe-gpu-run --artifact $out/layer.cuda.json --host $out/layer.host.so --weights W.safetensors --input X.npy --output Y.npy"
