#!/usr/bin/env python3
"""Turns `bazel aquery --output=jsonproto` (read on stdin) into compile_commands.json (stdout).

Only the project's own .cc files are kept (not third_party/ or external repositories). The
directory of each entry is the execroot given as the first argument, where Bazel's relative
paths (-iquote ., bazel-out/...) resolve. Bazel compiles with gcc; clang-tidy parses with clang,
so the few gcc-only flags that clang rejects are dropped.
"""
import json
import sys

PROJECT_DIRS = ("authn", "authz", "cache", "common", "config", "kube", "k8s", "proxy",
                "sample", "bench", "fuzz", "tools", "e2e")
# gcc flags clang does not know (an unknown -f flag is an error in clang).
GCC_ONLY_FLAGS = {"-fno-canonical-system-headers"}


def source_of(arguments):
    """The file after -c: the translation unit of a CppCompile action."""
    for i, arg in enumerate(arguments[:-1]):
        if arg == "-c":
            return arguments[i + 1]
    return None


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: bazel aquery ... --output=jsonproto | compile_commands.py EXECROOT")
    execroot = sys.argv[1]
    aquery = json.load(sys.stdin)
    entries = {}
    for action in aquery.get("actions", []):
        if action.get("mnemonic") != "CppCompile":
            continue
        arguments = action.get("arguments", [])
        source = source_of(arguments)
        if source is None or not source.endswith(".cc"):
            continue
        if source.split("/", 1)[0] not in PROJECT_DIRS:
            continue
        # One entry per file: a file compiled twice (two configurations) is checked once.
        if source in entries:
            continue
        arguments = ["clang++-14"] + [a for a in arguments[1:] if a not in GCC_ONLY_FLAGS]
        entries[source] = {"directory": execroot, "file": source, "arguments": arguments}
    json.dump([entries[s] for s in sorted(entries)], sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
