#!/usr/bin/env bash
# bench: user-space instructions per proxied request, aa-proxy and nginx in one run, counted by
# valgrind's callgrind: repeatable to about 1% where run.sh's CPU time is noisy. See bench/README.md.
# All on 127.0.0.1, from a temporary directory removed on exit (also on Ctrl-C); as in run.sh.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: bench/instructions.sh [--help]

Runs aa-proxy (run.sh's aa-proxy-sar target, --workers 1), then nginx (one process), under
callgrind; loads each in a short run A and a long run B and prints user-space instructions per
request = (Ir B - Ir A) / (requests B - requests A); then the top functions by self cost.

Environment overrides (defaults in brackets):
  BENCH_CONNECTIONS=N        keep-alive connections in both runs [8]
  BENCH_DURATION_A=D         run A [4s]
  BENCH_DURATION_B=D         run B [12s]
  BENCH_TOP=N                functions listed per proxy, 0 for none [15]
  BENCH_BAZEL_OUTPUT_BASE=DIR       [/root/.cache/bazel-bench]
  BENCH_KEEP_TMP=1           keep the temporary directory (PKI, logs, callgrind dumps)
  BENCH_ROUTES=0|1           also aa-proxy with a --config route table of 20 routes (19 that the
                             request does not match), reported against aa-proxy [1]
  BENCH_HTTP2=0|1            then the same for HTTP/2 (bench/h2.sh --instructions) [1]
EOF
}
for arg in "$@"; do
  [[ $arg == -h || $arg == --help ]] && { usage; exit 0; }
  echo "bench: unknown argument: $arg (see --help)" >&2; exit 2
done

CONNECTIONS=${BENCH_CONNECTIONS:-8}
DURATION_A=${BENCH_DURATION_A:-4s}
DURATION_B=${BENCH_DURATION_B:-12s}
TOP=${BENCH_TOP:-15}
OUTPUT_BASE=${BENCH_BAZEL_OUTPUT_BASE:-/root/.cache/bazel-bench}
REQUEST_PATH=/apis/sample-api-server/v1alpha1/namespaces/default/samples
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in valgrind callgrind_control callgrind_annotate; do
  command -v "$tool" >/dev/null || die "'$tool' is not installed (apt-get install -y valgrind)"
done
for tool in openssl curl nginx awk ss python3; do
  command -v "$tool" >/dev/null || die "'$tool' is not installed (apt-get install -y openssl curl nginx-light gawk iproute2)"
done

# --- Temporary directory (also for callgrind's dumps and valgrind's control FIFOs), cleanup. ----
TMP=$(mktemp -d /tmp/aa-proxy-instructions.XXXXXX)
CG=$TMP/callgrind VGDB_PREFIX=$TMP/vgdb-pipe PKI=$TMP/pki API=$TMP/apiserver NGX=$TMP/proxy-nginx
mkdir -p "$CG" "$PKI" "$API" "$NGX"
STARTED_PIDS=() CHILD_PID=""

# Runs a command in the background and waits for it, so a signal to this script is handled at once.
run_child() {
  local rc=0
  "$@" & CHILD_PID=$!
  wait "$CHILD_PID" || rc=$?
  CHILD_PID=""; return "$rc"
}
# TERM, then KILL after $2 tenths of a second (a process under valgrind takes a while to exit).
stop_process() {
  local pid=$1 tenths=${2:-50}
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && ((tenths-- > 0)); do sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$? pid
  set +e
  [[ -n $CHILD_PID ]] && { kill -TERM "$CHILD_PID" 2>/dev/null; wait "$CHILD_PID" 2>/dev/null; }
  for pid in "${STARTED_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${STARTED_PIDS[@]}"; do stop_process "$pid" 150; done
  if [[ ${BENCH_KEEP_TMP:-0} == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT; trap 'exit 143' TERM; trap 'exit 129' HUP

# Sets variable $1 to a free TCP port below the ephemeral range (32768+: outgoing connections).
USED_PORTS=" "
free_port() {
  local port
  for _ in $(seq 100); do
    port=$((20000 + RANDOM % 12000))
    [[ -z $(ss -Htan "sport = :$port") && $USED_PORTS != *" $port "* ]] &&
      { USED_PORTS+="$port "; printf -v "$1" '%s' "$port"; return; }
  done
  die "no free port found"
}
# Polls a URL (curl arguments after $3) until it answers 2xx, process $1 dies or $3 seconds pass.
wait_ready() {
  local pid=$1 name=$2 seconds=$3 start=$SECONDS
  shift 3
  while ((SECONDS < start + seconds)); do
    kill -0 "$pid" 2>/dev/null || { log "$name exited"; return 1; }
    curl -sf -o /dev/null --max-time 2 "$@" && return 0
    sleep 0.2
  done
  log "$name did not answer within $seconds s"; return 1
}

# --- Build (--symlink_prefix=/: no bazel-* symlinks in the repository); stop the Bazel server. --
bazel_cmd() { (cd "$REPO" && exec bazel --output_base="$OUTPUT_BASE" "$@"); }
TARGETS=(//bench:loadgen //proxy:aa-proxy //sample:sample-backend)
log "building ${TARGETS[*]} (bazel -c opt, output base $OUTPUT_BASE)"
run_child bazel_cmd build -c opt --symlink_prefix=/ "${TARGETS[@]}" >"$TMP/build.log" 2>&1 ||
  { tail -30 "$TMP/build.log" >&2; die "the build failed"; }
BIN=$(bazel_cmd info -c opt bazel-bin 2>/dev/null)
run_child bazel_cmd shutdown >/dev/null 2>&1 || true

# --- Throwaway PKI as run.sh's (P-256): CA, server 127.0.0.1, client CN=bench-user,O=bench-readers.
make_pki() {
  local k leaf=("basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment")
  for k in ca server client; do
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/$k.key" 2>/dev/null || return
  done
  openssl req -x509 -new -key "$PKI/ca.key" -out "$PKI/ca.crt" -days 2 -subj "/CN=aa-proxy-bench-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" || return
  printf '%s\n' "${leaf[@]}" extendedKeyUsage=serverAuth subjectAltName=IP:127.0.0.1,DNS:localhost >"$PKI/server.ext"
  printf '%s\n' "${leaf[@]}" extendedKeyUsage=clientAuth >"$PKI/client.ext"
  for k in server:/CN=127.0.0.1 client:/O=bench-readers/CN=bench-user; do
    openssl req -new -key "$PKI/${k%%:*}.key" -out "$PKI/${k%%:*}.csr" -subj "${k#*:}" &&
      openssl x509 -req -in "$PKI/${k%%:*}.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
        -days 2 -extfile "$PKI/${k%%:*}.ext" -out "$PKI/${k%%:*}.crt" 2>/dev/null || return
  done
}
make_pki || die "generating the PKI with openssl failed"
CLIENT_TLS=(--cert "$PKI/client.crt" --key "$PKI/client.key" --cacert "$PKI/ca.crt")

# --- The sample backend (not under valgrind) and the kube-apiserver double, as in run.sh. -------
free_port BACKEND_PORT
BACKEND_URL=http://127.0.0.1:$BACKEND_PORT
"$BIN/sample/sample-backend" --listen "127.0.0.1:$BACKEND_PORT" >"$TMP/backend.log" 2>&1 &
STARTED_PIDS+=("$!")
wait_ready "$!" sample-backend 10 "$BACKEND_URL$REQUEST_PATH" ||
  { tail -5 "$TMP/backend.log" >&2; die "//sample:sample-backend does not serve $REQUEST_PATH"; }

echo '{"sar": [{"group": "bench-readers", "verb": "list", "apiGroup": "sample-api-server", "resource": "samples", "allowed": true}]}' >"$API/policy.json"
echo '{}' >"$API/configmap.json"
python3 "$REPO/e2e/fake_apiserver.py" --cert "$PKI/server.crt" --key "$PKI/server.key" \
  --configmap-file "$API/configmap.json" --policy-file "$API/policy.json" >"$API/out.log" 2>"$API/err.log" &
STARTED_PIDS+=("$!")
for _ in $(seq 100); do
  APISERVER_ADDR=$(sed -n 's/^listening on //p' "$API/out.log"); [[ -z $APISERVER_ADDR ]] || break; sleep 0.1
done
[[ -n $APISERVER_ADDR ]] || { tail -5 "$API/err.log" >&2; die "the kube-apiserver double did not start"; }
printf '%s\n' "apiVersion: v1" "kind: Config" \
  "clusters: [{name: double, cluster: {server: 'https://$APISERVER_ADDR', certificate-authority: '$PKI/ca.crt'}}]" \
  "users: [{name: aa-proxy, user: {token: bench}}]" \
  "contexts: [{name: double, context: {cluster: double, user: aa-proxy}}]" \
  "current-context: double" >"$API/kubeconfig"

# --- Measurement. -----------------------------------------------------------------------------
VALGRIND=(valgrind --tool=callgrind "--callgrind-out-file=$CG/cg.%p" --dump-instr=no "--vgdb-prefix=$VGDB_PREFIX")
json_number() { grep -o "\"$2\":[-0-9.e+]*" <<<"$1" | head -1 | cut -d: -f2; }
total_ir() { awk '/^(totals|summary):/ { n = $2 } END { print n + 0 }' "$1"; }

# Has callgrind in process $1 dump (and zero) its counters; sets DUMP_FILE to the dump once it is
# complete (the totals line comes last).
dump() {
  local pid=$1 n
  n=$(find "$CG" -name "cg.$pid.*" | wc -l)
  DUMP_FILE=$CG/cg.$pid.$((n + 1))
  run_child callgrind_control "--vgdb-prefix=$VGDB_PREFIX" -d "$pid" >>"$TMP/callgrind_control.log" 2>&1 ||
    die "callgrind_control -d $pid failed: $(tail -3 "$TMP/callgrind_control.log")"
  for _ in $(seq 300); do sleep 0.1; [[ -f $DUMP_FILE ]] && grep -q '^totals:' "$DUMP_FILE" && return; done
  die "callgrind did not write $DUMP_FILE"
}
# Loads URL $2 for $3; sets LOAD_REQUESTS to the complete responses.
load() {
  local name=$1 url=$2 duration=$3 out
  run_child "$BIN/bench/loadgen" --url "$url$REQUEST_PATH" "${CLIENT_TLS[@]}" \
    --connections "$CONNECTIONS" --duration "$duration" >"$TMP/loadgen.out" 2>"$TMP/loadgen.err" ||
    { cat "$TMP/loadgen.err" >&2; die "the load generator failed against $name"; }
  out=$(<"$TMP/loadgen.out")
  [[ $(json_number "$out" errors) == 0 ]] ||
    log "WARNING: $name: $(json_number "$out" errors) errors in $duration: $(head -3 "$TMP/loadgen.err")"
  LOAD_REQUESTS=$(json_number "$out" requests)
}

declare -A REQ_A REQ_B IR_PER_REQ DUMP_A DUMP_B
measure() { # name url pid-of-valgrind
  local name=$1 url=$2 pid=$3 ir_a ir_b
  wait_ready "$pid" "$name (under callgrind)" 30 "${CLIENT_TLS[@]}" "$url$REQUEST_PATH" ||
    { tail -20 "$TMP/$name.log" >&2; die "$name did not start under valgrind"; }
  dump "$pid" # start-up: discarded
  load "$name" "$url" "$DURATION_A" && dump "$pid" && REQ_A[$name]=$LOAD_REQUESTS DUMP_A[$name]=$DUMP_FILE
  load "$name" "$url" "$DURATION_B" && dump "$pid" && REQ_B[$name]=$LOAD_REQUESTS DUMP_B[$name]=$DUMP_FILE
  stop_process "$pid" 300
  ir_a=$(total_ir "${DUMP_A[$name]}") ir_b=$(total_ir "${DUMP_B[$name]}")
  ((REQ_B[$name] > REQ_A[$name])) || die "$name: run B did not complete more requests than run A"
  IR_PER_REQ[$name]=$(((2 * (ir_b - ir_a) + REQ_B[$name] - REQ_A[$name]) / (2 * (REQ_B[$name] - REQ_A[$name]))))
  log "$name: run A ${REQ_A[$name]} requests, $ir_a Ir; run B ${REQ_B[$name]} requests, $ir_b Ir"
}

log "load: $CONNECTIONS keep-alive connections, run A $DURATION_A, run B $DURATION_B, GET $REQUEST_PATH"
free_port AA_PROXY_PORT
log "aa-proxy under callgrind (--workers 1; authorization webhook to the kube-apiserver double)"
"${VALGRIND[@]}" "$BIN/proxy/aa-proxy" --secure-port "$AA_PROXY_PORT" --bind-address 127.0.0.1 \
  --tls-cert-file "$PKI/server.crt" --tls-private-key-file "$PKI/server.key" \
  --client-ca-file "$PKI/ca.crt" --upstream "$BACKEND_URL" --workers 1 \
  --anonymous-auth=false --authentication-skip-lookup \
  --authorization-mode webhook --authorization-kubeconfig "$API/kubeconfig" >"$TMP/aa-proxy.log" 2>&1 &
STARTED_PIDS+=("$!")
measure aa-proxy "https://127.0.0.1:$AA_PROXY_PORT" "$!"

NAMES=(aa-proxy)
if [[ ${BENCH_ROUTES:-1} == 1 ]]; then
  # run.sh's aa-proxy-routes20: every request is checked against 19 longer decoy prefixes first.
  # shellcheck source=bench/routes20.sh
  source "$REPO/bench/routes20.sh"
  write_routes20_config "$TMP/routes20.yaml" "$BACKEND_URL"
  free_port AA_PROXY_ROUTES_PORT
  log "aa-proxy-routes20 under callgrind (as aa-proxy, plus 20 routes in --config)"
  "${VALGRIND[@]}" "$BIN/proxy/aa-proxy" --secure-port "$AA_PROXY_ROUTES_PORT" --bind-address 127.0.0.1 \
    --tls-cert-file "$PKI/server.crt" --tls-private-key-file "$PKI/server.key" \
    --client-ca-file "$PKI/ca.crt" --config "$TMP/routes20.yaml" --workers 1 \
    --anonymous-auth=false --authentication-skip-lookup \
    --authorization-mode webhook --authorization-kubeconfig "$API/kubeconfig" >"$TMP/aa-proxy-routes20.log" 2>&1 &
  STARTED_PIDS+=("$!")
  measure aa-proxy-routes20 "https://127.0.0.1:$AA_PROXY_ROUTES_PORT" "$!"
  NAMES+=(aa-proxy-routes20)
fi
NAMES+=(nginx)

free_port NGINX_PORT
cat >"$NGX/nginx.conf" <<EOF
# run.sh's nginx target in one process (no master), so that the process under valgrind serves.
worker_processes 1; master_process off; daemon off;
pid $NGX/nginx.pid; error_log $NGX/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $NGX/body; proxy_temp_path $NGX/proxy; fastcgi_temp_path $NGX/fastcgi;
  uwsgi_temp_path $NGX/uwsgi; scgi_temp_path $NGX/scgi;
  keepalive_requests 100000000; keepalive_timeout 300s;
  upstream backend {
    server 127.0.0.1:$BACKEND_PORT;
    keepalive 64; keepalive_requests 100000000; keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT ssl;
    ssl_certificate $PKI/server.crt; ssl_certificate_key $PKI/server.key;
    ssl_client_certificate $PKI/ca.crt; ssl_verify_client on;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:bench:10m;
    location / {
      proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Remote-User \$ssl_client_s_dn;
    }
  }
}
EOF
log "nginx under callgrind (worker_processes 1, master_process off)"
"${VALGRIND[@]}" nginx -c "$NGX/nginx.conf" -p "$NGX" >"$TMP/nginx.log" 2>&1 &
STARTED_PIDS+=("$!")
measure nginx "https://127.0.0.1:$NGINX_PORT" "$!"

# --- Report. ----------------------------------------------------------------------------------
printf '\nUser-space instructions per request (callgrind Ir), %d connections: (Ir B - Ir A) / (requests B - requests A)\n\n' "$CONNECTIONS"
printf '%-18s %11s %11s %11s\n' target "requests A" "requests B" "Ir/request" ------------------ ----------- ----------- -----------
for name in "${NAMES[@]}"; do
  printf '%-18s %11s %11s %11s\n' "$name" "${REQ_A[$name]}" "${REQ_B[$name]}" "${IR_PER_REQ[$name]}"
done
awk -v a="${IR_PER_REQ[aa-proxy]}" -v n="${IR_PER_REQ[nginx]}" 'BEGIN { printf "\naa-proxy / nginx: %.3f\n", a / n }'
if [[ -n ${IR_PER_REQ[aa-proxy-routes20]:-} ]]; then
  awk -v r="${IR_PER_REQ[aa-proxy-routes20]}" -v a="${IR_PER_REQ[aa-proxy]}" \
    'BEGIN { printf "aa-proxy-routes20 / aa-proxy: %.3f   (20 routes vs one; <= 1.03 meets the target)\n", r / a }'
fi

# callgrind_annotate's self cost per function, without the calls still active at the dump
# (callgrind writes them as "calls=0"; callgrind_annotate would count them as the caller's self cost).
self_costs() {
  awk '/^calls=0 / { skip = 1; next } skip { skip = 0; next } { print }' "$1" >"$1.self"
  callgrind_annotate --auto=no --threshold=100 "$1.self"
}
# Top functions by self cost, per request like the totals: (B - A) / (requests B - requests A).
# Names are shortened: no source file, template arguments, parameter list or object file directory.
top_functions() {
  awk -v ra="${REQ_A[$1]}" -v rb="${REQ_B[$1]}" '
    $1 ~ /^[0-9][0-9,]*$/ && $2 ~ /^\(/ && !/PROGRAM TOTALS/ {
      ir = $1; gsub(",", "", ir)
      fn = $0; sub(/^ *[0-9,]+ +\([^)]*\) +/, "", fn)
      obj = ""
      if (match(fn, / \[[^]]*\]$/)) { obj = substr(fn, RSTART + 2, RLENGTH - 3); fn = substr(fn, 1, RSTART - 1) }
      sub(/.*\//, "", obj); sub(/^[^:]*:/, "", fn)
      gsub(/\(anonymous namespace\)/, "{anon}", fn)
      while (match(fn, /<[^<>]*>/)) fn = substr(fn, 1, RSTART - 1) "\001" substr(fn, RSTART + RLENGTH)
      gsub(/\001/, "<>", fn)
      if (fn !~ /^\(/) sub(/\(.*$/, "", fn)
      if (length(fn) > 72) fn = substr(fn, 1, 69) "..."
      cost[fn "  [" obj "]"] += (FILENAME == ARGV[1]) ? -ir : ir
    }
    END { for (k in cost) printf "%.0f\t%s\n", cost[k] / (rb - ra), k }' \
    <(self_costs "${DUMP_A[$1]}") <(self_costs "${DUMP_B[$1]}") |
    sort -t$'\t' -k1,1nr | awk -F'\t' -v top="$TOP" 'NR <= top { printf "%9s  %s\n", $1, $2 }'
}
for name in aa-proxy nginx; do
  ((TOP > 0)) || break
  printf '\n%s: top %d functions by self cost, Ir/request\n' "$name" "$TOP"
  top_functions "$name"
done

# The HTTP/2 path: the same measure with h2load (bench/h2_bench.py --instructions); off with
# BENCH_HTTP2=0.
if [[ ${BENCH_HTTP2:-1} == 1 ]]; then
  printf '\n'
  python3 "$REPO/bench/h2_bench.py" --instructions
fi
