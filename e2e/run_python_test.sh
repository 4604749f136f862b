#!/bin/sh
# Runs a Python unittest module with the system python3: Bazel 4.2.3's py_test stub needs a
# `python` binary on PATH, which this environment does not have.
set -eu
exec python3 "$@"
