# Sourced by bench/run.sh and bench/instructions.sh: the 20-route --config of their
# aa-proxy-routes20 target. 19 decoys under /apis/ that the request does not match, longer than
# the request's own route, so every request is checked against all of them first.
#   write_routes20_config FILE BACKEND_URL
write_routes20_config() {
  local file=$1 backend=$2 i
  {
    echo "routes:"
    for i in $(seq 1 19); do
      printf -- '- path: /apis/decoy-%02d.sample-api-server.example.com/v1alpha1\n' "$i"
      printf -- '  upstream: %s\n' "$backend"
    done
    echo "- path: /apis/sample-api-server/"
    printf -- '  upstream: %s\n' "$backend"
  } >"$file"
}
