#!/bin/sh
# Runs a Python unittest module with the system python3: Bazel 4.2.3's py_test stub needs a
# `python` binary on PATH, which this environment does not have.
set -eu
# Leading NAME=value arguments are exported first (e2e/defs.bzl's `env`).
while [ $# -gt 0 ]; do
  case "$1" in
    [A-Z]*=*) export "$1"; shift ;;
    *) break ;;
  esac
done
# junit_runner.py runs the suite and writes its cases for Bazel's test.xml.
exec python3 "$(dirname "$0")/junit_runner.py" "$@"
