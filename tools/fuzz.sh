#!/usr/bin/env bash
# Builds the libFuzzer targets (tools/build-sanitized.sh) and runs each one
# for a while on a working copy of its seed corpus (test/Fuzz/corpus/<name>).
#
#   tools/fuzz.sh [--seconds N] [--targets a,b,...] [--no-build]
#
# --seconds: time per target (default 30; the test command uses 20, a long
# run e.g. 3600). Targets: npy, safetensors, layer-spec, hf-config,
# cuda-artifact, dialect (default: all). The working corpora grow under
# build-san/fuzz/corpus/<name> and are kept between runs; a crash leaves its
# input in build-san/fuzz/crashes/<name>/ (reproduce: build-san/bin/
# moe-fuzz-<name> <file>). Prints one line per target: executions, their
# rate, coverage (libFuzzer's cov = edges, ft = features), corpus size;
# exits 1 when a target crashed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${MOE_SAN_BUILD_DIR:-$root/build-san}"
seconds=30
targets="npy,safetensors,layer-spec,hf-config,cuda-artifact,dialect"
build_first=1
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --targets) targets="$2"; shift 2 ;;
    --no-build) build_first=0; shift ;;
    *) echo "fuzz.sh: unknown argument '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
done
if [ "$build_first" = 1 ]; then "$root/tools/build-sanitized.sh"; fi
export ASAN_OPTIONS="allow_user_poisoning=0:detect_leaks=0"
failed=0
IFS=, read -ra names <<< "$targets"
for name in "${names[@]}"; do
  binary="$build/bin/moe-fuzz-$name"
  seeds="$root/test/Fuzz/corpus/$name"
  if [ ! -x "$binary" ] || [ ! -d "$seeds" ]; then
    echo "fuzz.sh: no target '$name' (binary $binary, seeds $seeds)" >&2
    exit 2
  fi
  corpus="$build/fuzz/corpus/$name"
  crashes="$build/fuzz/crashes/$name"
  log="$build/fuzz/$name.log"
  mkdir -p "$corpus" "$crashes"
  status=0
  "$binary" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$crashes/" "$corpus" "$seeds" \
    >"$log" 2>&1 || status=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
  cov=$(echo "$last" | grep -o 'cov: [0-9]*' || true)
  ft=$(echo "$last" | grep -o 'ft: [0-9]*' || true)
  corp=$(echo "$last" | grep -o 'corp: [0-9/]*[a-zA-Z]*' || true)
  if [ "$status" -ne 0 ]; then
    failed=1
    echo "FAIL fuzz $name: exit $status after $runs runs; crash inputs in $crashes; log $log"
    grep -m 3 -E 'ERROR|SUMMARY|runtime error' "$log" || true
  else
    echo "PASS fuzz $name: $runs runs in ${seconds} s ($rate/s), $cov, $ft, $corp"
  fi
done
exit "$failed"
