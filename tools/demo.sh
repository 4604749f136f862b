#!/usr/bin/env bash
# The main job with no cluster: builds aa-proxy and the sample backend, generates a throwaway
# local PKI under ./run/pki, starts the backend on a Unix socket and aa-proxy on
# https://127.0.0.1:8443 in front of it, prints curl commands, and serves until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh

PORT=${AA_PROXY_PORT:-8443}
RUN=$PWD/run
PKI=$RUN/pki
mkdir -p "$PKI"

bazel build //proxy:aa-proxy //sample:sample-backend
BIN=$(bazel info bazel-bin)

issue_cert() {  # name subject ca extended-key-usage
  local name=$1 subject=$2 ca=$3 eku=$4
  [ -f "$PKI/$name.crt" ] && return
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$PKI/$name.key" \
    -out "$PKI/$name.csr" -subj "$subject" 2>/dev/null
  printf 'extendedKeyUsage=%s\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n' "$eku" >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" -CAcreateserial \
    -days 30 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
}
if [ ! -f "$PKI/ca.crt" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$PKI/ca.key" \
    -out "$PKI/ca.crt" -subj "/CN=aa-proxy-demo-ca" -days 30 2>/dev/null
fi
issue_cert serving "/CN=localhost" ca serverAuth
issue_cert alice "/CN=alice/O=dev" ca clientAuth
issue_cert bob "/CN=bob/O=guests" ca clientAuth

rm -f "$RUN/backend.sock"
"$BIN/sample/sample-backend" --listen "unix://$RUN/backend.sock" >"$RUN/backend.log" 2>&1 &
backend=$!
proxy_args=(
  --secure-port "$PORT" --bind-address 127.0.0.1
  --tls-cert-file "$PKI/serving.crt" --tls-private-key-file "$PKI/serving.key"
  --client-ca-file "$PKI/ca.crt"
  --upstream "unix://$RUN/backend.sock" -v 2
)
if [ -f authz/demo-policy.yaml ]; then
  proxy_args+=(--authorization-mode static --authorization-policy-file authz/demo-policy.yaml)
fi
"$BIN/proxy/aa-proxy" "${proxy_args[@]}" 2>&1 | tee "$RUN/aa-proxy.log" &
proxy=$!
trap 'kill $proxy $backend 2>/dev/null; wait 2>/dev/null' EXIT INT TERM

for _ in $(seq 100); do
  curl -s -o /dev/null --cacert "$PKI/ca.crt" "https://127.0.0.1:$PORT/healthz" && break
  sleep 0.1
done
C="curl --cacert $PKI/ca.crt --cert $PKI/alice.crt --key $PKI/alice.key"
cat <<MSG

aa-proxy is serving https://127.0.0.1:$PORT in front of the sample backend (unix://$RUN/backend.sock).
Try (alice, group dev, has a client certificate):
  $C https://127.0.0.1:$PORT/apis/sample-api-server/v1alpha1
  $C https://127.0.0.1:$PORT/apis/sample-api-server/v1alpha1/namespaces/default/samples
  $C https://127.0.0.1:$PORT/apis/sample-api-server/v1alpha1/namespaces/default/samples/sample1
  $C -N 'https://127.0.0.1:$PORT/apis/sample-api-server/v1alpha1/namespaces/default/samples?watch=true'
Without a client certificate you are system:anonymous, which the policy does not allow (403):
  curl --cacert $PKI/ca.crt https://127.0.0.1:$PORT/apis/sample-api-server/v1alpha1
bob (group guests) gets 403 Forbidden from the static policy (authz/demo-policy.yaml):
  curl --cacert $PKI/ca.crt --cert $PKI/bob.crt --key $PKI/bob.key https://127.0.0.1:$PORT/apis/sample-api-server/v1alpha1/namespaces/default/samples
Logs: $RUN/aa-proxy.log. Ctrl-C stops both.
MSG
wait $proxy
