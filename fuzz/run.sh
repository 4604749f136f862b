#!/usr/bin/env bash
# Builds the libFuzzer targets (clang-14, ASan+UBSan, a separate Bazel output base so the main
# workspace's gcc cache stays as it is) and runs each for SECONDS (default 20), one after the
# other, starting from its committed corpus. One line per target, then "N targets, N crashes";
# exits non-zero when any target crashed (or broke an invariant).
#
#   fuzz/run.sh [SECONDS]
#   FUZZ_TARGETS="http1_request selector" fuzz/run.sh 600   # some targets only
#   FUZZ_RUNS=10000000 fuzz/run.sh 36000   # each target until 10M executions (or 10 h)
#
# Environment: FUZZ_WORKDIR (default /tmp/aa-proxy-fuzz: grown corpora, crash inputs, logs),
# AA_PROXY_FUZZ_OUTPUT_BASE (default ~/.cache/aa-proxy-fuzz), FUZZ_RSS_LIMIT_MB (default 2048).
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-20}
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "usage: fuzz/run.sh [SECONDS]" >&2
  exit 2
fi
output_base=${AA_PROXY_FUZZ_OUTPUT_BASE:-$HOME/.cache/aa-proxy-fuzz}
workdir=${FUZZ_WORKDIR:-/tmp/aa-proxy-fuzz}
rss_limit_mb=${FUZZ_RSS_LIMIT_MB:-2048}
runs=${FUZZ_RUNS:--1}
if ! [[ "$runs" =~ ^-?[0-9]+$ ]]; then
  echo "FUZZ_RUNS: not a number: $runs" >&2
  exit 2
fi
all_targets="http1_request http2_session request_info selector request_header configmap
  kubeconfig static_policy flags_config token_review subject_access_review"
targets=${FUZZ_TARGETS:-$all_targets}

bazel_targets=()
for t in $targets; do
  if [ ! -d "fuzz/corpus/$t" ]; then
    echo "unknown target $t (no fuzz/corpus/$t)" >&2
    exit 2
  fi
  bazel_targets+=("//fuzz:${t}_fuzzer")
done

# --max_idle_secs: the fuzz build's Bazel server does not linger for hours after a run.
bazel=(bazel "--output_base=$output_base" --max_idle_secs=900)
if ! "${bazel[@]}" build --config=fuzz "${bazel_targets[@]}" 2>&1 |
  grep -v 'src/main/tools/linux-sandbox' | grep -E 'ERROR|error:|Elapsed time' >&2; then
  :  # grep found nothing to show
fi
if [ "${PIPESTATUS[0]}" -ne 0 ]; then
  echo "fuzz build failed" >&2
  exit 1
fi
bin_dir=$("${bazel[@]}" info --config=fuzz bazel-bin 2>/dev/null)/fuzz

crashes_total=0
count=0
for t in $targets; do
  count=$((count + 1))
  dir="$workdir/$t"
  mkdir -p "$dir/corpus" "$dir/artifacts" "$dir/tmp"
  cp -n "fuzz/corpus/$t"/* "$dir/corpus/" 2>/dev/null || true
  before=$(find "$dir/corpus" -type f | wc -l)
  artifacts_before=$(find "$dir/artifacts" -type f | wc -l)
  dict=()
  if [ -f "fuzz/$t.dict" ]; then
    dict=("-dict=fuzz/$t.dict")
  fi
  # The hard timeout is a backstop: libFuzzer stops itself after -max_total_time.
  TEST_TMPDIR="$dir/tmp" \
    ASAN_OPTIONS="detect_leaks=1:quarantine_size_mb=16:malloc_context_size=20" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    timeout --kill-after=30 $((seconds + 120)) \
    "$bin_dir/${t}_fuzzer" "$dir/corpus" "${dict[@]}" \
    -max_total_time="$seconds" -runs="$runs" -rss_limit_mb="$rss_limit_mb" -malloc_limit_mb="$rss_limit_mb" \
    -timeout=10 -max_len=4096 -use_value_profile=1 -print_final_stats=1 \
    -artifact_prefix="$dir/artifacts/" >"$dir/log" 2>&1
  status=$?
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$dir/log" | tail -1 | grep -o '[0-9]*$')
  after=$(find "$dir/corpus" -type f | wc -l)
  crashes=$(($(find "$dir/artifacts" -type f | wc -l) - artifacts_before))
  if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
    crashes=1  # failed without leaving an input (startup failure, killed by the backstop)
  fi
  crashes_total=$((crashes_total + crashes))
  line="$t: ${execs:-0} execs, $crashes crashes, corpus $before -> $after"
  if [ "$crashes" -gt 0 ]; then
    line="$line (log: $dir/log; inputs in $dir/artifacts/)"
  fi
  echo "$line"
done
echo "$count targets, $crashes_total crashes"
[ "$crashes_total" -eq 0 ]
