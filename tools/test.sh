#!/usr/bin/env bash
# Runs every test (`bazel test //...`) after installing what is missing, then prints a plain
# "N passed, N failed" line counted from the test cases in Bazel's test.xml files.
set -uo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh || exit 1

bazel_args=("$@")
touch /tmp/aa-proxy-test.log.start
# Debian's Bazel lets linux-sandbox print its debug trace for every action; drop that noise.
bazel test --keep_going "${bazel_args[@]}" //... 2>&1 | grep --line-buffered -v 'src/main/tools/linux-sandbox' |
  tee /tmp/aa-proxy-test.log
status=${PIPESTATUS[0]}

testlogs=$(bazel info "${bazel_args[@]}" bazel-testlogs 2>/dev/null)
passed=0
failed=0
if [ -d "$testlogs" ]; then
  while IFS= read -r xml; do
    cases=$(grep -c '<testcase' "$xml" || true)
    bad=$(grep -cE '<failure|<error' "$xml" || true)
    [ "$cases" -eq 0 ] && cases=1
    [ "$bad" -gt "$cases" ] && bad=$cases
    passed=$((passed + cases - bad))
    failed=$((failed + bad))
  done < <(find -L "$testlogs" -name test.xml -newer /tmp/aa-proxy-test.log.start 2>/dev/null)
fi
# Targets that failed to build or timed out have no (new) test.xml: count each as one failure.
build_failures=$(grep -cE '^//.* (FAILED TO BUILD|NO STATUS|TIMEOUT)' /tmp/aa-proxy-test.log || true)
failed=$((failed + build_failures))
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1
fi
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ]
