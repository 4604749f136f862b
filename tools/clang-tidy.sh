#!/usr/bin/env bash
# Runs clang-tidy-14 with the repo's .clang-tidy over the project's own .cc files (all of them,
# or those under the given paths), two at a time, and prints "N findings in M files".
# Exits 1 when there are findings. Not part of tools/test.sh: run it by hand (see README.md).
#   tools/clang-tidy.sh                 # everything (about 10 minutes of CPU)
#   tools/clang-tidy.sh authz proxy/http_message.cc
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
jobs=${CLANG_TIDY_JOBS:-2}
if ! command -v clang-tidy-14 >/dev/null; then
  echo "clang-tidy-14 is missing: run tools/install-deps.sh" >&2
  exit 2
fi

# The compilation database comes from Bazel's own compile actions (no network); build first so
# every header the actions name exists in the execroot.
bazel build //... 2>&1 | grep -v 'src/main/tools/linux-sandbox' >&2
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "bazel build failed" >&2; exit 2; }
execroot=$(bazel info execution_root 2>/dev/null)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bazel aquery 'mnemonic("CppCompile", //...)' --output=jsonproto 2>/dev/null |
  python3 tools/compile_commands.py "$execroot" >"$work/compile_commands.json" || exit 2

files=$(python3 -c 'import json,sys; [print(e["file"]) for e in json.load(open(sys.argv[1]))]' \
  "$work/compile_commands.json")
if [ $# -gt 0 ]; then
  selected=""
  for path in "$@"; do
    path=${path#./}
    path=${path%/}
    selected+=$(echo "$files" | grep -E "^${path}(/|$)")$'\n'
  done
  files=$(echo "$selected" | sed '/^$/d' | sort -u)
fi
[ -n "$files" ] || { echo "no project .cc files under: $*" >&2; exit 2; }
echo "clang-tidy-14 over $(echo "$files" | wc -l) files, $jobs at a time" >&2

# Run from the execroot, where the database's relative paths resolve.
(cd "$execroot" && echo "$files" | xargs -P "$jobs" -I{} sh -c \
  'clang-tidy-14 --quiet -p "$1" --config-file="$2" "$3" >"$4/$(echo "$3" | tr / _).log" 2>&1' \
  _ "$work" "$repo/.clang-tidy" {} "$work")

# A header's finding is reported by every file that includes it: count it once.
cat "$work"/*.log | sed -E -e "s#^$execroot/##" -e 's#^\./##' |
  grep -E '^[^ :]+:[0-9]+:[0-9]+: (warning|error): .*\[[[:alnum:].,-]+\]$' | sort -u >"$work/findings"
cat "$work/findings"
findings=$(wc -l <"$work/findings")
findings_files=$(cut -d: -f1 "$work/findings" | sort -u | wc -l)
echo "$findings findings in $findings_files files"
[ "$findings" -eq 0 ]
