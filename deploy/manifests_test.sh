#!/usr/bin/env bash
# //deploy:manifests_test: renders deploy/kubernetes (base and overlays/insecure) with the
# machine's kubectl and checks it against aa-proxy's and sample-backend's --help, the Dockerfiles
# and the binaries' shared libraries. See manifests_test.py.
set -euo pipefail
proxy=$1 backend=$2
here="${TEST_SRCDIR:?run me with bazel test}/${TEST_WORKSPACE:-aa_proxy}/deploy"
command -v kubectl >/dev/null || { echo "FAIL: kubectl is not on PATH" >&2; exit 1; }
exec python3 "$here/manifests_test.py" "$proxy" "$backend" "$here/kubernetes" "$here"
