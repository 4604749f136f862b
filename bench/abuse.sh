#!/usr/bin/env bash
# Load, memory and abuse benchmark: handshakes, idle connections, slowloris, a slow kube-apiserver
# and a soak, aa-proxy against nginx where it applies. See bench/abuse.py and bench/README.md.
#   bench/abuse.sh [handshakes] [idle] [slowloris] [slow-apiserver] [soak] [--quick]
#                  [--soak-minutes N]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# 10,000 idle connections: the proxies and the clients inherit the raised limit.
ulimit -n "$(ulimit -Hn)"
exec python3 bench/abuse.py "$@"
