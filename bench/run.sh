#!/usr/bin/env bash
# bench: measures the sample backend directly, aa-proxy in front of it and nginx (mTLS reverse
# proxy) in front of it, under the same closed-loop load, and prints one table. See bench/README.md.
#
#   bench/run.sh            3 runs of 10 s per target, medians (about 2 minutes after the build)
#   bench/run.sh --quick    1 run of 3 s per target (smoke check)
#
# Everything listens on 127.0.0.1 only, runs from a temporary directory and is stopped and removed
# on exit. Environment overrides: see usage() below.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: bench/run.sh [--quick] [--help]

Environment overrides (defaults in brackets):
  BENCH_RUNS=N               runs per target, medians reported [3; --quick: 1]
  BENCH_DURATION=D           load duration per run [10s; --quick: 3s]
  BENCH_WARMUP=D             unrecorded warm-up per target before its first run [2s; --quick: 1s]
  BENCH_CONNECTIONS=N        keep-alive connections [64]
  BENCH_LOADGEN_THREADS=N    load generator threads [1]
  BENCH_PROXY_WORKERS=N      aa-proxy --workers and nginx worker_processes [2]
  BENCH_TARGETS=LIST         comma-separated subset of backend,aa-proxy,aa-proxy-routes20,
                             aa-proxy-sar,nginx [all five]. aa-proxy authorizes with a static
                             policy; aa-proxy-routes20 is the same with a --config route table
                             of 20 routes (19 that do not match the request); aa-proxy-sar
                             with SubjectAccessReviews to the kube-apiserver double
                             (e2e/fake_apiserver.py), answered from aa-proxy's decision cache
  BENCH_KEY_TYPE=ec|rsa      key type of the throwaway PKI [ec, P-256]
  BENCH_AA_PROXY_FLAGS=...   extra aa-proxy flags [--anonymous-auth=false, plus
                             --authorization-mode static --authorization-policy-file <a policy
                             allowing the bench user to get/list samples> when aa-proxy has them]
  BENCH_BACKEND=auto|sample|nginx   backend: //sample:sample-backend, or nginx serving the same
                             JSON when that target is missing or does not answer [auto]
  BENCH_BAZEL_OUTPUT_BASE=DIR       [/root/.cache/bazel-bench]
  BENCH_RESULTS=FILE         also write every run's raw JSON (plus CPU counters) to FILE
  BENCH_PAIRED=0|1           after the rounds, also load every proxy at the same time (an
                             equal share of the connections each), so all see the same moment
                             of a machine whose speed drifts; prints CPU/req ratios to nginx [1]
  BENCH_KEEP_TMP=1           keep the temporary directory (configs, PKI, logs)
  BENCH_HTTP2=0|1            then aa-proxy and nginx over HTTP/2 with h2load (bench/h2.sh) [1]
EOF
}

QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench: unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done

if [[ $QUICK == 1 ]]; then
  RUNS=${BENCH_RUNS:-1}
  DURATION=${BENCH_DURATION:-3s}
  WARMUP=${BENCH_WARMUP:-1s}
else
  RUNS=${BENCH_RUNS:-3}
  DURATION=${BENCH_DURATION:-10s}
  WARMUP=${BENCH_WARMUP:-2s}
fi
CONNECTIONS=${BENCH_CONNECTIONS:-64}
LOADGEN_THREADS=${BENCH_LOADGEN_THREADS:-1}
PROXY_WORKERS=${BENCH_PROXY_WORKERS:-2}
TARGETS=${BENCH_TARGETS:-backend,aa-proxy,aa-proxy-routes20,aa-proxy-sar,nginx}
KEY_TYPE=${BENCH_KEY_TYPE:-ec}
BACKEND_KIND=${BENCH_BACKEND:-auto}
OUTPUT_BASE=${BENCH_BAZEL_OUTPUT_BASE:-/root/.cache/bazel-bench}
REQUEST_PATH=/apis/sample-api-server/v1alpha1/namespaces/default/samples

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLK_TCK=$(getconf CLK_TCK)

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Seconds (rounded up) of a duration like 10s, 500ms, 1m.
duration_seconds() {
  local d=$1
  case "$d" in
    *ms) echo $(((${d%ms} + 999) / 1000)) ;;
    *s) echo "${d%s}" | awk '{printf "%d\n", ($1 == int($1)) ? $1 : int($1) + 1}' ;;
    *m) echo $((${d%m} * 60)) ;;
    *) die "cannot read duration '$d' (use e.g. 10s, 500ms, 1m)" ;;
  esac
}
duration_seconds "$DURATION" >/dev/null # fail early on a bad duration
duration_seconds "$WARMUP" >/dev/null

for tool in openssl curl nginx awk ss; do
  command -v "$tool" >/dev/null || die "'$tool' is not installed (apt-get install -y openssl curl nginx-light gawk iproute2)"
done

# ---------------------------------------------------------------------------------------------
# Temporary directory, started processes and cleanup.

TMP=$(mktemp -d /tmp/aa-proxy-bench.XXXXXX)
STARTED_PIDS=()
CHILD_PID=""

# Runs a command in the background and waits for it, so that a signal to this script is handled
# at once (bash runs traps during `wait`, but only after a foreground child has exited).
run_child() {
  "$@" &
  CHILD_PID=$!
  local rc=0
  wait "$CHILD_PID" || rc=$?
  CHILD_PID=""
  return "$rc"
}

cleanup() {
  local rc=$?
  set +e
  local pid
  if [[ -n $CHILD_PID ]]; then
    kill -TERM "$CHILD_PID" 2>/dev/null
    wait "$CHILD_PID" 2>/dev/null
  fi
  for pid in "${STARTED_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${STARTED_PIDS[@]}"; do
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if [[ ${BENCH_KEEP_TMP:-0} == 1 ]]; then
    log "kept $TMP"
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Stops one started process (and, for nginx, its workers: nginx stops them on TERM).
stop_process() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# Sets variable $1 to a TCP port on 127.0.0.1 that nobody listens on right now.
USED_PORTS=" "
free_port() {
  local port
  for _ in $(seq 100); do
    # Below the kernel's ephemeral range (32768+): a port there can be taken by any outgoing
    # connection (a load generator's, curl's) between this check and the server's bind.
    port=$((20000 + RANDOM % 12000))
    if [[ -z $(ss -Htan "sport = :$port") && $USED_PORTS != *" $port "* ]]; then
      USED_PORTS+="$port "
      printf -v "$1" '%s' "$port"
      return
    fi
  done
  die "no free port found"
}

# Polls a URL until it answers 2xx, the process dies or 10 s pass.
wait_ready() {
  local pid=$1 name=$2
  shift 2
  local deadline=$((SECONDS + 10))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name exited"
      return 1
    fi
    if curl -sf -o /dev/null --max-time 1 "$@"; then
      return 0
    fi
    sleep 0.1
  done
  log "$name did not answer within 10 s"
  return 1
}

# ---------------------------------------------------------------------------------------------
# Build.

bazel_cmd() { (cd "$REPO" && exec bazel --output_base="$OUTPUT_BASE" "$@"); }

BUILD_LOG=$TMP/build.log
log "building //bench:loadgen (bazel -c opt, output base $OUTPUT_BASE)"
run_child bazel_cmd build -c opt --symlink_prefix=/ //bench:loadgen >"$BUILD_LOG" 2>&1 ||
  { tail -30 "$BUILD_LOG" >&2; die "building //bench:loadgen failed"; }
BIN=$(bazel_cmd info -c opt bazel-bin 2>/dev/null)
LOADGEN=$BIN/bench/loadgen

# Builds an optional target and sets variable $1 to its path, or to nothing (with the reason on
# stderr) if it is missing or does not build yet.
# shellcheck disable=SC2034  # result is a nameref to the caller's variable
build_optional() {
  local -n result=$1
  local label=$2 path=$3
  result=""
  if ! run_child bazel_cmd query "$label" >/dev/null 2>&1; then
    log "$label does not exist (yet)"
    return 0
  fi
  log "building $label"
  if ! run_child bazel_cmd build -c opt --symlink_prefix=/ "$label" >"$BUILD_LOG" 2>&1; then
    tail -15 "$BUILD_LOG" >&2
    log "$label exists but does not build"
    return 0
  fi
  result=$BIN/$path
}

target_wanted() { [[ ",$TARGETS," == *",$1,"* ]]; }

SAMPLE_BACKEND=""
if [[ $BACKEND_KIND != nginx ]]; then
  build_optional SAMPLE_BACKEND //sample:sample-backend sample/sample-backend
  if [[ -z $SAMPLE_BACKEND && $BACKEND_KIND == sample ]]; then
    die "BENCH_BACKEND=sample but //sample:sample-backend is not available"
  fi
fi
AA_PROXY=""
if target_wanted aa-proxy || target_wanted aa-proxy-routes20 || target_wanted aa-proxy-sar; then
  build_optional AA_PROXY //proxy:aa-proxy proxy/aa-proxy
  [[ -n $AA_PROXY ]] || log "SKIPPING aa-proxy: //proxy:aa-proxy is not available (see above)"
fi

# The Bazel server's JVM would otherwise compete for the two cores while we measure.
run_child bazel_cmd shutdown >/dev/null 2>&1 || true

# ---------------------------------------------------------------------------------------------
# Throwaway PKI: one CA signs the serving certificate (127.0.0.1) and the load generator's
# client certificate.

PKI=$TMP/pki
mkdir -p "$PKI"
new_key() {
  if [[ $KEY_TYPE == rsa ]]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null
  else
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
  fi
}
make_pki() {
  new_key "$PKI/ca.key"
  openssl req -x509 -new -key "$PKI/ca.key" -out "$PKI/ca.crt" -days 2 -subj "/CN=aa-proxy-bench-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
  new_key "$PKI/server.key"
  openssl req -new -key "$PKI/server.key" -out "$PKI/server.csr" -subj "/CN=127.0.0.1"
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" >"$PKI/server.ext"
  openssl x509 -req -in "$PKI/server.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 2 -extfile "$PKI/server.ext" -out "$PKI/server.crt" 2>/dev/null
  new_key "$PKI/client.key"
  openssl req -new -key "$PKI/client.key" -out "$PKI/client.csr" \
    -subj "/O=bench-readers/CN=bench-user"
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=clientAuth" >"$PKI/client.ext"
  openssl x509 -req -in "$PKI/client.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 2 -extfile "$PKI/client.ext" -out "$PKI/client.crt" 2>/dev/null
}
make_pki || die "generating the PKI with openssl failed"
CLIENT_TLS=(--cert "$PKI/client.crt" --key "$PKI/client.key" --cacert "$PKI/ca.crt")
CURL_TLS=(--cert "$PKI/client.crt" --key "$PKI/client.key" --cacert "$PKI/ca.crt")

# ---------------------------------------------------------------------------------------------
# Backend.

# The list response of the sample API (kubernetes-semantics.md §6), for the nginx stand-in.
SAMPLE_LIST_JSON='{"apiVersion":"sample-api-server/v1alpha1","kind":"SampleList","metadata":{"resourceVersion":"1"},"items":[{"apiVersion":"sample-api-server/v1alpha1","kind":"Sample","metadata":{"name":"sample1"},"spec":{"name":"default"}}]}'

start_sample_backend() {
  "$SAMPLE_BACKEND" --listen "127.0.0.1:$BACKEND_PORT" >"$TMP/backend.log" 2>&1 &
  BACKEND_PID=$!
  STARTED_PIDS+=("$BACKEND_PID")
  BACKEND_DESC="//sample:sample-backend"
}

start_nginx_backend() {
  mkdir -p "$TMP/backend-nginx"
  cat >"$TMP/backend-nginx/nginx.conf" <<EOF
# Stand-in for //sample:sample-backend: the same list body from memory.
worker_processes 1;
daemon off;
pid $TMP/backend-nginx/nginx.pid;
error_log $TMP/backend-nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $TMP/backend-nginx/body;
  proxy_temp_path $TMP/backend-nginx/proxy;
  fastcgi_temp_path $TMP/backend-nginx/fastcgi;
  uwsgi_temp_path $TMP/backend-nginx/uwsgi;
  scgi_temp_path $TMP/backend-nginx/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:$BACKEND_PORT;
    location = $REQUEST_PATH {
      default_type application/json;
      return 200 '$SAMPLE_LIST_JSON';
    }
    location / { return 404; }
  }
}
EOF
  nginx -c "$TMP/backend-nginx/nginx.conf" -p "$TMP/backend-nginx" >"$TMP/backend.log" 2>&1 &
  BACKEND_PID=$!
  STARTED_PIDS+=("$BACKEND_PID")
  BACKEND_DESC="nginx stand-in serving the sample list JSON"
}

free_port BACKEND_PORT
BACKEND_URL=http://127.0.0.1:$BACKEND_PORT
BACKEND_PID=""
if [[ -n $SAMPLE_BACKEND ]]; then
  start_sample_backend
  if ! wait_ready "$BACKEND_PID" sample-backend "$BACKEND_URL$REQUEST_PATH"; then
    tail -5 "$TMP/backend.log" >&2
    stop_process "$BACKEND_PID"
    [[ $BACKEND_KIND == sample ]] && die "//sample:sample-backend does not serve $REQUEST_PATH"
    log "//sample:sample-backend does not serve $REQUEST_PATH with 2xx yet; using the nginx stand-in"
    BACKEND_PID=""
  fi
fi
if [[ -z $BACKEND_PID ]]; then
  start_nginx_backend
  if ! wait_ready "$BACKEND_PID" backend "$BACKEND_URL$REQUEST_PATH"; then
    tail -20 "$TMP/backend.log" "$TMP/backend-nginx/error.log" >&2 2>/dev/null
    die "the nginx stand-in backend did not start"
  fi
fi
BACKEND_BODY=$(curl -sf "$BACKEND_URL$REQUEST_PATH")

# ---------------------------------------------------------------------------------------------
# Proxies.

AA_PROXY_PID=""
AA_PROXY_URL=""
if [[ -n $AA_PROXY ]] && target_wanted aa-proxy; then
  free_port AA_PROXY_PORT
  AA_PROXY_URL=https://127.0.0.1:$AA_PROXY_PORT
  if [[ -n ${BENCH_AA_PROXY_FLAGS:-} ]]; then
    AA_PROXY_FLAGS=$BENCH_AA_PROXY_FLAGS
  else
    AA_PROXY_FLAGS="--anonymous-auth=false"
    # Standalone (no cluster): the local policy authorizes every request, as a SubjectAccessReview
    # would. The client's group is not system:masters, so the authorizer really runs.
    # (Not `--help | grep -q`: grep quits at the match, aa-proxy dies of SIGPIPE, and pipefail
    # makes the test false.)
    if [[ $("$AA_PROXY" --help 2>&1) == *--authorization-policy-file* ]]; then
      cat >"$TMP/policy.yaml" <<EOF
rules:
  - groups: ["bench-readers"]
    verbs: ["get", "list"]
    apiGroups: ["sample-api-server"]
    resources: ["samples"]
EOF
      AA_PROXY_FLAGS+=" --authorization-mode static --authorization-policy-file $TMP/policy.yaml"
    fi
  fi
  log "aa-proxy flags: $AA_PROXY_FLAGS"
  # shellcheck disable=SC2086  # AA_PROXY_FLAGS is a list of flags
  "$AA_PROXY" --secure-port "$AA_PROXY_PORT" --bind-address 127.0.0.1 \
    --tls-cert-file "$PKI/server.crt" --tls-private-key-file "$PKI/server.key" \
    --client-ca-file "$PKI/ca.crt" --upstream "$BACKEND_URL" --workers "$PROXY_WORKERS" \
    $AA_PROXY_FLAGS >"$TMP/aa-proxy.log" 2>&1 &
  AA_PROXY_PID=$!
  STARTED_PIDS+=("$AA_PROXY_PID")
  if ! wait_ready "$AA_PROXY_PID" aa-proxy "${CURL_TLS[@]}" "$AA_PROXY_URL$REQUEST_PATH"; then
    tail -20 "$TMP/aa-proxy.log" >&2
    log "SKIPPING aa-proxy: it did not start or does not answer $REQUEST_PATH with 2xx (log above)"
    stop_process "$AA_PROXY_PID"
    AA_PROXY_PID=""
  fi
fi

# aa-proxy as above plus a route table of 20 routes (--config): 19 decoys under /apis/ that the
# request does not match, longer than the one it does, so every request is checked against all
# of them (longest prefix first) before its own route. Compared with aa-proxy: the routing cost.
AA_PROXY_ROUTES_PID=""
AA_PROXY_ROUTES_URL=""
if [[ -n $AA_PROXY ]] && target_wanted aa-proxy-routes20; then
  free_port AA_PROXY_ROUTES_PORT
  AA_PROXY_ROUTES_URL=https://127.0.0.1:$AA_PROXY_ROUTES_PORT
  # shellcheck source=bench/routes20.sh
  source "$REPO/bench/routes20.sh"
  write_routes20_config "$TMP/routes20.yaml" "$BACKEND_URL"
  if [[ -z ${AA_PROXY_FLAGS:-} ]]; then
    AA_PROXY_FLAGS=${BENCH_AA_PROXY_FLAGS:---anonymous-auth=false}
  fi
  # shellcheck disable=SC2086  # AA_PROXY_FLAGS is a list of flags
  "$AA_PROXY" --secure-port "$AA_PROXY_ROUTES_PORT" --bind-address 127.0.0.1 \
    --tls-cert-file "$PKI/server.crt" --tls-private-key-file "$PKI/server.key" \
    --client-ca-file "$PKI/ca.crt" --workers "$PROXY_WORKERS" --config "$TMP/routes20.yaml" \
    $AA_PROXY_FLAGS >"$TMP/aa-proxy-routes20.log" 2>&1 &
  AA_PROXY_ROUTES_PID=$!
  STARTED_PIDS+=("$AA_PROXY_ROUTES_PID")
  if ! wait_ready "$AA_PROXY_ROUTES_PID" aa-proxy-routes20 "${CURL_TLS[@]}" "$AA_PROXY_ROUTES_URL$REQUEST_PATH"; then
    tail -20 "$TMP/aa-proxy-routes20.log" >&2
    log "SKIPPING aa-proxy-routes20: it did not start or does not answer $REQUEST_PATH with 2xx (log above)"
    stop_process "$AA_PROXY_ROUTES_PID"
    AA_PROXY_ROUTES_PID=""
  fi
fi

# aa-proxy in webhook mode: every request is authorized by a SubjectAccessReview, as in a
# cluster, answered by the kube-apiserver double; the decision cache (10 s allowed TTL) keeps
# the double out of the hot path, which is what this row measures.
AA_PROXY_SAR_PID=""
AA_PROXY_SAR_URL=""
if [[ -n $AA_PROXY ]] && target_wanted aa-proxy-sar; then
  APISERVER_DIR=$TMP/apiserver
  mkdir -p "$APISERVER_DIR"
  echo '{"sar": [{"group": "bench-readers", "verb": "list", "apiGroup": "sample-api-server", "resource": "samples", "allowed": true}]}' \
    >"$APISERVER_DIR/policy.json"
  echo '{}' >"$APISERVER_DIR/configmap.json"
  python3 "$REPO/e2e/fake_apiserver.py" --cert "$PKI/server.crt" --key "$PKI/server.key" \
    --configmap-file "$APISERVER_DIR/configmap.json" --policy-file "$APISERVER_DIR/policy.json" \
    >"$APISERVER_DIR/out.log" 2>"$APISERVER_DIR/err.log" &
  STARTED_PIDS+=("$!")
  APISERVER_ADDR=""
  for _ in $(seq 100); do
    APISERVER_ADDR=$(sed -n 's/^listening on //p' "$APISERVER_DIR/out.log")
    [[ -n $APISERVER_ADDR ]] && break
    sleep 0.1
  done
  if [[ -z $APISERVER_ADDR ]]; then
    tail -5 "$APISERVER_DIR/err.log" >&2
    log "SKIPPING aa-proxy-sar: the kube-apiserver double did not start (log above)"
  else
    printf '%s\n' "apiVersion: v1" "kind: Config" \
      "clusters: [{name: double, cluster: {server: 'https://$APISERVER_ADDR', certificate-authority: '$PKI/ca.crt'}}]" \
      "users: [{name: aa-proxy, user: {token: bench}}]" \
      "contexts: [{name: double, context: {cluster: double, user: aa-proxy}}]" \
      "current-context: double" >"$APISERVER_DIR/kubeconfig"
    free_port AA_PROXY_SAR_PORT
    AA_PROXY_SAR_URL=https://127.0.0.1:$AA_PROXY_SAR_PORT
    "$AA_PROXY" --secure-port "$AA_PROXY_SAR_PORT" --bind-address 127.0.0.1 \
      --tls-cert-file "$PKI/server.crt" --tls-private-key-file "$PKI/server.key" \
      --client-ca-file "$PKI/ca.crt" --upstream "$BACKEND_URL" --workers "$PROXY_WORKERS" \
      --anonymous-auth=false --authentication-skip-lookup \
      --authorization-mode webhook --authorization-kubeconfig "$APISERVER_DIR/kubeconfig" \
      >"$TMP/aa-proxy-sar.log" 2>&1 &
    AA_PROXY_SAR_PID=$!
    STARTED_PIDS+=("$AA_PROXY_SAR_PID")
    if ! wait_ready "$AA_PROXY_SAR_PID" aa-proxy-sar "${CURL_TLS[@]}" "$AA_PROXY_SAR_URL$REQUEST_PATH"; then
      tail -20 "$TMP/aa-proxy-sar.log" >&2
      log "SKIPPING aa-proxy-sar: it did not start or does not answer $REQUEST_PATH with 2xx (log above)"
      stop_process "$AA_PROXY_SAR_PID"
      AA_PROXY_SAR_PID=""
    fi
  fi
fi

NGINX_PID=""
NGINX_URL=""
if target_wanted nginx; then
  free_port NGINX_PORT
  NGINX_URL=https://127.0.0.1:$NGINX_PORT
  mkdir -p "$TMP/proxy-nginx"
  cat >"$TMP/proxy-nginx/nginx.conf" <<EOF
# nginx as the reference mTLS reverse proxy, configured like aa-proxy: client certificate
# required, keep-alive pool to the backend, HTTP/1.1 upstream, no access log.
worker_processes $PROXY_WORKERS;
daemon off;
pid $TMP/proxy-nginx/nginx.pid;
error_log $TMP/proxy-nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $TMP/proxy-nginx/body;
  proxy_temp_path $TMP/proxy-nginx/proxy;
  fastcgi_temp_path $TMP/proxy-nginx/fastcgi;
  uwsgi_temp_path $TMP/proxy-nginx/uwsgi;
  scgi_temp_path $TMP/proxy-nginx/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  upstream backend {
    server 127.0.0.1:$BACKEND_PORT;
    keepalive 64;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT ssl;
    ssl_certificate $PKI/server.crt;
    ssl_certificate_key $PKI/server.key;
    ssl_client_certificate $PKI/ca.crt;
    ssl_verify_client on;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:bench:10m;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      # Forward an identity, as aa-proxy does with X-Remote-User/X-Remote-Group.
      proxy_set_header X-Remote-User \$ssl_client_s_dn;
    }
  }
}
EOF
  nginx -c "$TMP/proxy-nginx/nginx.conf" -p "$TMP/proxy-nginx" >"$TMP/proxy-nginx.log" 2>&1 &
  NGINX_PID=$!
  STARTED_PIDS+=("$NGINX_PID")
  if ! wait_ready "$NGINX_PID" nginx "${CURL_TLS[@]}" "$NGINX_URL$REQUEST_PATH"; then
    tail -20 "$TMP/proxy-nginx.log" "$TMP/proxy-nginx/error.log" >&2 2>/dev/null
    die "nginx (the reference proxy) did not start"
  fi
fi

# Same bytes through every target, or the comparison is meaningless.
check_body() {
  local name=$1 url=$2
  local body
  body=$(curl -sf "${CURL_TLS[@]}" "$url$REQUEST_PATH") || { log "WARNING: $name: request failed"; return; }
  if [[ $body != "$BACKEND_BODY" ]]; then
    log "WARNING: $name returns a different body than the backend (${#body} vs ${#BACKEND_BODY} bytes)"
  fi
}
[[ -n $AA_PROXY_PID ]] && check_body aa-proxy "$AA_PROXY_URL"
[[ -n $AA_PROXY_ROUTES_PID ]] && check_body aa-proxy-routes20 "$AA_PROXY_ROUTES_URL"
[[ -n $AA_PROXY_SAR_PID ]] && check_body aa-proxy-sar "$AA_PROXY_SAR_URL"
[[ -n $NGINX_PID ]] && check_body nginx "$NGINX_URL"

# ---------------------------------------------------------------------------------------------
# Measurement.

# Sum of utime+stime clock ticks of the given pids and, with -c, of their children (nginx
# workers). Fields 14 and 15 of /proc/PID/stat, counted after the ')' that ends the command name.
cpu_ticks() {
  local with_children=0
  if [[ $1 == -c ]]; then
    with_children=1
    shift
  fi
  local pids=("$@") total=0 pid stat rest fields
  if [[ $with_children == 1 ]]; then
    for pid in "$@"; do
      # shellcheck disable=SC2207
      pids+=($(cat "/proc/$pid/task/"*/children 2>/dev/null))
    done
  fi
  for pid in "${pids[@]}"; do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    rest=${stat##*) }
    read -ra fields <<<"$rest"
    total=$((total + fields[11] + fields[12]))
  done
  echo "$total"
}

# One number out of the loadgen's flat JSON line.
json_number() { grep -o "\"$2\":[-0-9.e+]*" <<<"$1" | head -1 | cut -d: -f2; }

RESULTS=$TMP/results.jsonl
: >"$RESULTS"

# Runs the load generator once against a target and appends the JSON line, extended with the
# CPU ticks of the proxy and of the backend during the run, to $RESULTS (unless warm-up).
run_load() {
  local name=$1 url=$2 duration=$3 record=$4
  local proxy_pid="" loadgen_args=(--url "$url$REQUEST_PATH" --connections "$CONNECTIONS"
    --threads "$LOADGEN_THREADS" --duration "$duration")
  case "$name" in
    backend) ;;
    aa-proxy) proxy_pid=$AA_PROXY_PID; loadgen_args+=("${CLIENT_TLS[@]}") ;;
    aa-proxy-routes20) proxy_pid=$AA_PROXY_ROUTES_PID; loadgen_args+=("${CLIENT_TLS[@]}") ;;
    aa-proxy-sar) proxy_pid=$AA_PROXY_SAR_PID; loadgen_args+=("${CLIENT_TLS[@]}") ;;
    nginx) proxy_pid=$NGINX_PID; loadgen_args+=("${CLIENT_TLS[@]}") ;;
  esac
  local proxy_before=0 proxy_after=0 backend_before backend_after out
  backend_before=$(cpu_ticks -c "$BACKEND_PID")
  [[ -n $proxy_pid ]] && proxy_before=$(cpu_ticks -c "$proxy_pid")
  if ! run_child timeout $(($(duration_seconds "$duration") + 30)) "$LOADGEN" "${loadgen_args[@]}" \
    >"$TMP/loadgen.out" 2>"$TMP/loadgen.err"; then
    cat "$TMP/loadgen.err" >&2
    die "the load generator failed against $name"
  fi
  out=$(<"$TMP/loadgen.out")
  [[ -n $proxy_pid ]] && proxy_after=$(cpu_ticks -c "$proxy_pid")
  backend_after=$(cpu_ticks -c "$BACKEND_PID")
  if [[ -s $TMP/loadgen.err ]]; then
    sed "s/^/bench: $name: /" "$TMP/loadgen.err" >&2
  fi
  if [[ $record == 1 ]]; then
    echo "${out%\}},\"target\":\"$name\",\"proxy_cpu_ticks\":$((proxy_after - proxy_before)),\"backend_cpu_ticks\":$((backend_after - backend_before)),\"clk_tck\":$CLK_TCK}" >>"$RESULTS"
    local rps p50 p99 errors requests cpu="-"
    rps=$(json_number "$out" requests_per_sec)
    p50=$(json_number "$out" p50_us)
    p99=$(json_number "$out" p99_us)
    errors=$(json_number "$out" errors)
    requests=$(json_number "$out" requests)
    if [[ -n $proxy_pid && $requests -gt 0 ]]; then
      cpu=$(awk -v t=$((proxy_after - proxy_before)) -v hz="$CLK_TCK" -v n="$requests" \
        'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
    fi
    log "$(printf '%-12s %10s req/s  p50 %8s us  p99 %9s us  proxy CPU %6s us/req  errors %s' \
      "$name" "$rps" "$p50" "$p99" "$cpu" "$errors")"
  fi
}

ACTIVE=()
target_wanted backend && ACTIVE+=(backend)
[[ -n $AA_PROXY_PID ]] && ACTIVE+=(aa-proxy)
[[ -n $AA_PROXY_ROUTES_PID ]] && ACTIVE+=(aa-proxy-routes20)
[[ -n $AA_PROXY_SAR_PID ]] && ACTIVE+=(aa-proxy-sar)
[[ -n $NGINX_PID ]] && ACTIVE+=(nginx)
[[ ${#ACTIVE[@]} -gt 0 ]] || die "nothing to measure (BENCH_TARGETS=$TARGETS)"
url_of() {
  case "$1" in
    backend) echo "$BACKEND_URL" ;;
    aa-proxy) echo "$AA_PROXY_URL" ;;
    aa-proxy-routes20) echo "$AA_PROXY_ROUTES_URL" ;;
    aa-proxy-sar) echo "$AA_PROXY_SAR_URL" ;;
    nginx) echo "$NGINX_URL" ;;
  esac
}

log "backend: $BACKEND_DESC on $BACKEND_URL"
log "load: $CONNECTIONS keep-alive connections, $LOADGEN_THREADS loadgen thread(s), $RUNS x $DURATION per target (+ $WARMUP warm-up), GET $REQUEST_PATH"
log "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) before start"

for name in "${ACTIVE[@]}"; do
  run_load "$name" "$(url_of "$name")" "$WARMUP" 0
done
# Targets take turns within each round so slow drift on the machine hits all of them alike.
for ((run = 1; run <= RUNS; run++)); do
  log "round $run/$RUNS"
  for name in "${ACTIVE[@]}"; do
    run_load "$name" "$(url_of "$name")" "$DURATION" 1
  done
done

[[ -n ${BENCH_RESULTS:-} ]] && cp "$RESULTS" "$BENCH_RESULTS"

# Paired rounds: the sequential rounds above give each target its own 10 s, and on a shared VM
# the machine's speed can change between them by a third. Here every proxy (aa-proxy,
# aa-proxy-sar, nginx) is loaded at the same moment, one load generator each with an equal share
# of the connections, so a slow phase hits them all; each aa-proxy's CPU/req is compared with
# nginx's from the same round.
declare -A PAIRED_RATIOS=()
ROUTES_RATIOS=""  # aa-proxy-routes20 / aa-proxy CPU per request, per paired round
PAIRED=()
pid_of() {
  case "$1" in
    aa-proxy) echo "$AA_PROXY_PID" ;;
    aa-proxy-routes20) echo "$AA_PROXY_ROUTES_PID" ;;
    aa-proxy-sar) echo "$AA_PROXY_SAR_PID" ;;
    nginx) echo "$NGINX_PID" ;;
  esac
}
for name in "${ACTIVE[@]}"; do
  [[ $name != backend ]] && PAIRED+=("$name")
done
if [[ ${BENCH_PAIRED:-1} == 1 && -n $NGINX_PID && ${#PAIRED[@]} -ge 2 ]]; then
  share=$((CONNECTIONS / ${#PAIRED[@]}))
  for ((run = 1; run <= RUNS; run++)); do
    declare -A before=() after=() requests=() cpu=() pids=()
    for name in "${PAIRED[@]}"; do
      before[$name]=$(cpu_ticks -c "$(pid_of "$name")")
    done
    for name in "${PAIRED[@]}"; do
      "$LOADGEN" --url "$(url_of "$name")$REQUEST_PATH" --connections "$share" --threads 1 \
        --duration "$DURATION" "${CLIENT_TLS[@]}" >"$TMP/paired-$name.out" 2>"$TMP/paired-$name.err" &
      pids[$name]=$!
    done
    for name in "${PAIRED[@]}"; do
      CHILD_PID=${pids[$name]}
      wait "${pids[$name]}" || die "the load generator failed against $name (paired round)"
    done
    CHILD_PID=""
    summary=""
    for name in "${PAIRED[@]}"; do
      after[$name]=$(cpu_ticks -c "$(pid_of "$name")")
      requests[$name]=$(json_number "$(<"$TMP/paired-$name.out")" requests)
      cpu[$name]=$(awk -v t=$((after[$name] - before[$name])) -v hz="$CLK_TCK" -v n="${requests[$name]}" \
        'BEGIN { printf "%.1f", (n > 0) ? t * 1e6 / hz / n : 0 }')
      summary+=" $name ${cpu[$name]} us/req (${requests[$name]} requests);"
    done
    for name in "${PAIRED[@]}"; do
      [[ $name == nginx ]] && continue
      ratio=$(awk -v a="${cpu[$name]}" -v n="${cpu[nginx]}" 'BEGIN { printf "%.3f", (n > 0) ? a / n : 0 }')
      PAIRED_RATIOS[$name]+="$ratio "
      summary+=" $name/nginx $ratio;"
    done
    if [[ -n ${cpu[aa-proxy]:-} && -n ${cpu[aa-proxy-routes20]:-} ]]; then
      ratio=$(awk -v a="${cpu[aa-proxy-routes20]}" -v b="${cpu[aa-proxy]}" 'BEGIN { printf "%.3f", (b > 0) ? a / b : 0 }')
      ROUTES_RATIOS+="$ratio "
      summary+=" aa-proxy-routes20/aa-proxy $ratio;"
    fi
    log "paired round $run/$RUNS:${summary%;}"
    unset before after requests cpu pids
  done
fi

# ---------------------------------------------------------------------------------------------
# Report: medians over the runs of each target, then aa-proxy/nginx ratios.

awk -v order="${ACTIVE[*]}" -v runs="$RUNS" -v duration="$DURATION" -v conns="$CONNECTIONS" \
  -v backend_desc="$BACKEND_DESC" '
function num(line, key,    m) {
  if (match(line, "\"" key "\":[-0-9.e+]*")) {
    return substr(line, RSTART + length(key) + 3, RLENGTH - length(key) - 3) + 0
  }
  return 0
}
function str(line, key) {
  if (match(line, "\"" key "\":\"[^\"]*\"")) {
    return substr(line, RSTART + length(key) + 4, RLENGTH - length(key) - 5)
  }
  return ""
}
function median(t, metric,    n, i, j, tmp, a) {
  n = count[t]
  for (i = 1; i <= n; i++) a[i] = val[t, metric, i]
  for (i = 2; i <= n; i++) { tmp = a[i]; for (j = i - 1; j >= 1 && a[j] > tmp; j--) a[j + 1] = a[j]; a[j + 1] = tmp }
  if (n % 2 == 1) return a[(n + 1) / 2]
  return (a[n / 2] + a[n / 2 + 1]) / 2
}
function ratio(a, b) { return (b > 0) ? sprintf("%.2f", a / b) : "n/a" }
{
  t = str($0, "target"); n = ++count[t]
  req = num($0, "requests"); tck = num($0, "clk_tck")
  val[t, "rps", n] = num($0, "requests_per_sec")
  val[t, "p50", n] = num($0, "p50_us")
  val[t, "p99", n] = num($0, "p99_us")
  val[t, "err", n] = num($0, "errors")
  val[t, "proxy_cpu", n] = (req > 0) ? num($0, "proxy_cpu_ticks") * 1e6 / tck / req : 0
  val[t, "backend_cpu", n] = (req > 0) ? num($0, "backend_cpu_ticks") * 1e6 / tck / req : 0
  val[t, "loadgen_cpu", n] = num($0, "loadgen_cpu_s") / num($0, "duration_s") * 100
  if (str($0, "tls_protocol") != "") tls[t] = str($0, "tls_protocol") " " str($0, "tls_cipher")
}
END {
  printf "\naa-proxy benchmark: %d keep-alive connections, %s x %d run(s), medians; backend: %s\n\n", conns, duration, runs, backend_desc
  fmt = "%-12s %9s %9s %9s %16s %18s %12s %7s\n"
  printf fmt, "target", "req/s", "p50 us", "p99 us", "proxy CPU us/req", "backend CPU us/req", "loadgen CPU%", "errors"
  printf fmt, "------------", "---------", "---------", "---------", "----------------", "------------------", "------------", "-------"
  nt = split(order, names, " ")
  for (i = 1; i <= nt; i++) {
    t = names[i]
    if (!(t in count)) continue
    m[t, "rps"] = median(t, "rps"); m[t, "p50"] = median(t, "p50"); m[t, "p99"] = median(t, "p99")
    m[t, "proxy_cpu"] = median(t, "proxy_cpu"); m[t, "backend_cpu"] = median(t, "backend_cpu")
    errs = 0; for (r = 1; r <= count[t]; r++) errs += val[t, "err", r]
    printf fmt, t, sprintf("%.0f", m[t, "rps"]), sprintf("%.0f", m[t, "p50"]), sprintf("%.0f", m[t, "p99"]),
      (t == "backend") ? "-" : sprintf("%.1f", m[t, "proxy_cpu"]), sprintf("%.1f", m[t, "backend_cpu"]),
      sprintf("%.0f", median(t, "loadgen_cpu")), errs
  }
  tls_line = ""
  for (i = 1; i <= nt; i++) if (names[i] in tls) tls_line = tls_line sprintf("   %s: %s", names[i], tls[names[i]])
  if (tls_line != "") printf "\nTLS negotiated:%s\n", tls_line
  if (("aa-proxy" in tls) && ("nginx" in tls) && tls["aa-proxy"] != tls["nginx"]) {
    printf "WARNING: aa-proxy and nginx negotiated different TLS parameters; CPU/req is not like for like\n"
  }
  if (("aa-proxy" in count) && ("nginx" in count)) {
    printf "\naa-proxy / nginx:  req/s %s   p50 %s   p99 %s   proxy CPU/req %s   (CPU/req <= 1.00 meets the target)\n",
      ratio(m["aa-proxy", "rps"], m["nginx", "rps"]), ratio(m["aa-proxy", "p50"], m["nginx", "p50"]),
      ratio(m["aa-proxy", "p99"], m["nginx", "p99"]), ratio(m["aa-proxy", "proxy_cpu"], m["nginx", "proxy_cpu"])
  } else if (!("aa-proxy-sar" in count)) {
    printf "\naa-proxy / nginx:  n/a (needs both aa-proxy and nginx rows)\n"
  }
  if (("aa-proxy-routes20" in count) && ("aa-proxy" in count)) {
    printf "aa-proxy-routes20 / aa-proxy:  req/s %s   proxy CPU/req %s   (20 routes vs one; <= 1.03 meets the target)\n",
      ratio(m["aa-proxy-routes20", "rps"], m["aa-proxy", "rps"]), ratio(m["aa-proxy-routes20", "proxy_cpu"], m["aa-proxy", "proxy_cpu"])
  }
  if (("aa-proxy-sar" in count) && ("nginx" in count)) {
    printf "aa-proxy-sar / nginx:  req/s %s   p50 %s   p99 %s   proxy CPU/req %s\n",
      ratio(m["aa-proxy-sar", "rps"], m["nginx", "rps"]), ratio(m["aa-proxy-sar", "p50"], m["nginx", "p50"]),
      ratio(m["aa-proxy-sar", "p99"], m["nginx", "p99"]), ratio(m["aa-proxy-sar", "proxy_cpu"], m["nginx", "proxy_cpu"])
  }
}' "$RESULTS"

for name in "${PAIRED[@]}"; do
  [[ -n ${PAIRED_RATIOS[$name]:-} ]] || continue
  # shellcheck disable=SC2086  # the ratios are a space-separated list
  printf '%s / nginx, paired (all proxies loaded at the same moment, %d connections each, %s x %d):  proxy CPU/req median %s (rounds: %s)\n' \
    "$name" "$share" "$DURATION" "$RUNS" \
    "$(printf '%s\n' ${PAIRED_RATIOS[$name]} | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')" \
    "${PAIRED_RATIOS[$name]% }"
done

if [[ -n $ROUTES_RATIOS ]]; then
  # shellcheck disable=SC2086  # the ratios are a space-separated list
  printf 'aa-proxy-routes20 / aa-proxy, paired (same moment):  proxy CPU/req median %s (rounds: %s)\n' \
    "$(printf '%s\n' $ROUTES_RATIOS | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')" \
    "${ROUTES_RATIOS% }"
fi

if [[ -n $AA_PROXY_SAR_PID ]]; then
  # Evidence that the decision cache, not the double, answered the load.
  SARS=$(curl -sf --cacert "$PKI/ca.crt" "https://$APISERVER_ADDR/__recorded" |
    grep -o '"path": *"/apis/authorization.k8s.io/v1/subjectaccessreviews' | wc -l) || SARS="?"
  echo "aa-proxy-sar: the kube-apiserver double received $SARS SubjectAccessReview(s) in all."
fi

# The HTTP/2 targets: aa-proxy and nginx (http2) under h2load, same rounds and duration, after
# the HTTP/1.1 table (bench/h2_bench.py; off with BENCH_HTTP2=0). Its own processes and PKI.
if [[ ${BENCH_HTTP2:-1} == 1 ]]; then
  echo
  BENCH_RUNS=$RUNS BENCH_DURATION=$(duration_seconds "$DURATION") BENCH_PROXY_WORKERS=$PROXY_WORKERS \
    run_child python3 "$REPO/bench/h2_bench.py"
fi
