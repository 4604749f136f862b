#!/usr/bin/env bash
# Installs what aa-proxy needs on Debian 12 (run as root); does nothing when all is present.
set -euo pipefail

packages=(
  bazel-bootstrap bazel-rules-java g++ libevent-dev libssl-dev libsimdjson-dev libabsl-dev
  libgtest-dev libgmock-dev libyaml-cpp-dev libhttp-parser-dev libbenchmark-dev
  python3 curl openssl nginx-light ca-certificates
  etcd-server libnghttp2-dev nghttp2-client clang-14 libclang-rt-14-dev clang-tidy-14 valgrind
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's nginx and etcd-server packages start system services (ports 80, 2379); the project
# only runs its own instances, on free ports.
for service in nginx etcd; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$service" 2>/dev/null; then
    systemctl stop "$service" || true
  fi
done
