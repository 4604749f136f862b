#!/usr/bin/env bash
# HTTP/2 benchmark: aa-proxy vs nginx (http2) with h2load, and both over HTTP/1.1 as reference.
# See bench/h2_bench.py and bench/README.md. `bench/h2.sh --quick` for a smoke run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec python3 bench/h2_bench.py "$@"
