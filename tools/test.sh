#!/usr/bin/env bash
# Runs every test (`bazel test //...`) after installing what is missing, then prints a plain
# "N passed, N failed" line counted from the test cases in Bazel's test.xml files.
set -uo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh || exit 1

bazel_args=("$@")
# A log of this run only: two runs at once (say, ASan beside the plain suite) must not count
# each other's targets.
log=$(mktemp /tmp/aa-proxy-test.XXXXXX.log)
trap 'rm -f "$log"' EXIT
# Debian's Bazel lets linux-sandbox print its debug trace for every action; drop that noise.
bazel test --keep_going "${bazel_args[@]}" //... 2>&1 | grep --line-buffered -v 'src/main/tools/linux-sandbox' |
  tee "$log"
status=${PIPESTATUS[0]}

testlogs=$(bazel info "${bazel_args[@]}" bazel-testlogs 2>/dev/null)
summary=$(python3 tools/count_tests.py "$log" "$testlogs")
passed=${summary%% passed*}
failed=$(echo "$summary" | sed -E 's/.* ([0-9]+) failed/\1/')
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1  # Bazel failed without a failing test (a build or infrastructure error)
fi
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ]
