#!/usr/bin/env bash
# On a GPU machine (no compiler needed): runs what tools/gpu_prepare.sh made:
# the numeric suite in f32 and bf16 activations (bf16 once more with the calls
# replayed from a CUDA graph) against the float64 reference,
# then the benchmark against PyTorch (eager loop and torch._grouped_mm).
#
#   tools/gpu_check.sh [DIR] [--budget-s 540] [--out LOGDIR] [--jobs 8]
#                      [gpu_bench.py flags: --shapes switch,mixtral,deepseek
#                       --rounds 5 --runs 10]
#
# DIR defaults to gpu-prepared/; a DIR.tgz from gpu_prepare.sh is unpacked
# into a temporary folder first.
#   --budget-s S  seconds the whole check may take (default 540: inside the
#                 lent machines' 10-minute command). The numeric suites run
#                 first; the benchmark gets what is left less 20 s and fits
#                 its rounds and contenders into it (gpu_bench.py --budget-s).
#   --out LOGDIR  where the logs and results go (numeric-f32.log,
#                 numeric-bf16.log, numeric-graph.log, bench.log, bench.err,
#                 bench.json, bench.png); default $OUT when set (the folder
#                 the device tool brings back), else a temporary folder.
#   --jobs N      numeric cases run at a time (default 8; they share the GPU).
# Prints each case's PASS/FAIL line and the benchmark as it goes, then a
# summary (each suite's counts, its first failed cases, the benchmark table);
# exits non-zero when a case or the benchmark fails.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
die() { echo "gpu_check.sh: error: $*" >&2; exit 2; }
dir="$root/gpu-prepared"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then dir="$1"; shift; fi
budget=540 logs="${OUT:-}" jobs=8 bench_flags=()
while [ $# -gt 0 ]; do
  case "$1" in
    --budget-s) budget="${2:-}"; shift 2 || die "--budget-s needs a value" ;;
    --out) logs="${2:-}"; shift 2 || die "--out needs a folder" ;;
    --jobs) jobs="${2:-}"; shift 2 || die "--jobs needs a count" ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) bench_flags+=("$1"); shift ;;
  esac
done
[[ "$budget" =~ ^[0-9]+$ ]] && [ "$budget" -ge 60 ] ||
  die "--budget-s needs a whole number of seconds, at least 60, got '$budget'"
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || die "--jobs needs a positive count, got '$jobs'"
start=$SECONDS
if [ -f "$dir" ] && [ "${dir%.tgz}" != "$dir" ]; then
  unpacked="$(mktemp -d)"
  trap 'rm -rf "$unpacked"' EXIT
  tar xzf "$dir" -C "$unpacked"
  dir="$(find "$unpacked" -mindepth 1 -maxdepth 1 -type d | head -n 1)"
fi
[ -d "$dir/numeric-f32" ] || die "$dir has no prepared suite (tools/gpu_prepare.sh)"
[ -n "$logs" ] || logs="$(mktemp -d)"
mkdir -p "$logs" || die "cannot make the log folder '$logs'"
python="${MOE_PYTHON:-python3}"  # the GPU machines: python3 with numpy and torch
export PYTHONUNBUFFERED=1
status=0
suite() {  # NAME WORKDIR [run_case.py flags]
  local name="$1" work="$2"; shift 2
  echo "== numeric suite, $name ($(( SECONDS - start )) s into the check)"
  "$python" "$root/test/e2e/run_case.py" --run-prepared --workdir "$work" --case all \
    --jobs "$jobs" "$@" | tee "$logs/numeric-$name.log" || status=1
}
suite f32 "$dir/numeric-f32"
suite bf16 "$dir/numeric-bf16"
suite graph "$dir/numeric-bf16" --cuda-graph
left=$(( budget - (SECONDS - start) - 20 ))
echo "== benchmark ($(( SECONDS - start )) s into the check, $left s for it)"
if [ "$left" -lt 30 ]; then
  echo "gpu_check.sh: no time left for the benchmark (--budget-s $budget)" | tee "$logs/bench.log"
  status=1
else
  "$python" "$root/tools/bench/gpu_bench.py" --packages "$dir/bench" --budget-s "$left" \
    --json "$logs/bench.json" "${bench_flags[@]}" 2> >(tee "$logs/bench.err" >&2) |
    tee "$logs/bench.log" || status=1
fi
echo "== summary ($(( SECONDS - start )) s; logs in $logs)"
for name in f32 bf16 graph; do
  log="$logs/numeric-$name.log"
  failed=$(grep -c '^FAIL' "$log")
  echo "numeric $name: $(grep -c '^PASS' "$log") passed, $failed failed"
  grep '^FAIL' "$log" | head -n 5
  [ "$failed" -le 5 ] || echo "  ... and $(( failed - 5 )) more (numeric-$name.log)"
done
grep -v '^#' "$logs/bench.log" 2>/dev/null | grep -v 'relative difference' || true
exit $status
