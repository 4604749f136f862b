#!/usr/bin/env bash
# ThreadSanitizer over the multi-worker paths (the shared caches, the authentication, policy and
# TLS snapshot swaps, metrics): builds with --config=tsan, runs every unit test and the e2e
# suites that drive several workers, prints "N passed, N failed" and the number of TSan reports
# in the test logs. Exits non-zero on a failed test or any report.
#   tools/tsan.sh                          everything below
#   tools/tsan.sh //e2e:reload_stress_test only these targets
# Extra bazel flags go in TSAN_BAZEL_FLAGS. See docs/CONTRIBUTING-helpers.md ("ThreadSanitizer").
set -uo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh || exit 1

# Suites whose aa-proxy runs --workers 2 or more (E2E_PROXY_WORKERS for reload_stress_test).
e2e_suites=(
  //e2e:reload_stress_test
  //e2e:authn_test
  //e2e:authz_test
  //e2e:routes_test
  //e2e:fault_matrix_test
  //e2e:proxy_test
)
if [ $# -gt 0 ]; then
  targets=("$@")
else
  # The fuzz corpus tests run single-threaded parsers: nothing for TSan there.
  mapfile -t targets < <(bazel query 'kind(cc_test, //...) except //fuzz/...' 2>/dev/null)
  targets+=("${e2e_suites[@]}")
fi
read -r -a flags <<<"${TSAN_BAZEL_FLAGS:-}"
# .bazelrc's TSAN_OPTIONS and the suppressions of libraries built without TSan (tools/tsan.supp).
flags=(--config=tsan
  "--test_env=TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tools/tsan.supp"
  "${flags[@]}")

log=/tmp/aa-proxy-tsan.log
# Debian's Bazel lets linux-sandbox print its debug trace for every action; drop that noise.
bazel test --keep_going "${flags[@]}" "${targets[@]}" 2>&1 |
  grep --line-buffered -v 'src/main/tools/linux-sandbox' | tee "$log"
status=${PIPESTATUS[0]}

testlogs=$(bazel info "${flags[@]}" bazel-testlogs 2>/dev/null)
summary=$(python3 tools/count_tests.py "$log" "$testlogs")
passed=${summary%% passed*}
failed=$(echo "$summary" | sed -E 's/.* ([0-9]+) failed/\1/')
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1  # Bazel failed without a failing test (a build or infrastructure error)
fi
# One "WARNING: ThreadSanitizer" line per report: a unit test's own, or one the e2e harness
# copied from a child's log (e2e/harness.py).
reports=0
for target in "${targets[@]}"; do
  package=${target#//}
  test_log="$testlogs/${package%%:*}/${package#*:}/test.log"
  if [ -f "$test_log" ]; then
    n=$(grep -c "WARNING: ThreadSanitizer" "$test_log")
    if [ "$n" -gt 0 ]; then
      echo "$n TSan report(s) in $test_log"
      reports=$((reports + n))
    fi
  fi
done
echo "${passed} passed, ${failed} failed"
echo "${reports} ThreadSanitizer reports"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ] && [ "$reports" -eq 0 ]
