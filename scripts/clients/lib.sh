# shellcheck shell=bash disable=SC2034 # EMBEDDED, SERVER_BIN, ... are for the scripts that source this
# Shared helpers of the real-client tests in scripts/clients/. Sourced, not run.
#
# A test runs against one of:
#   - an embedded server it starts itself: the `deployments` binary named by its first argument
#     (default target/debug/deployments), on a free port, with a fresh data directory;
#   - a running stack (e.g. the split services behind a gateway): BASE_URL and TOKEN (a user
#     token) in the environment, nothing started.
#
# Everything a test writes lives under $WORK (a temporary directory removed on exit; set
# KEEP_WORK=1 to keep it). Each check that passes is counted; the first that fails stops the
# test with its diagnostics. The last line is "clients: N passed, N failed".

set -euo pipefail

CLIENTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$CLIENTS_DIR/../.." && pwd)

PASSED=0
FAILED=0
SERVER_PID=
WORK=
CLEANUPS=()

log() { printf '==> %s\n' "$*" >&2; }

summary() { printf 'clients: %d passed, %d failed\n' "$PASSED" "$FAILED"; }

# Runs every registered cleanup (last registered first), then removes $WORK.
cleanup() {
  local status=$?
  set +e
  local i
  for ((i = ${#CLEANUPS[@]} - 1; i >= 0; i--)); do eval "${CLEANUPS[$i]}"; done
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    if [ "${KEEP_WORK:-}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  fi
  return "$status"
}
on_exit() { CLEANUPS+=("$1"); }

# Hooks a test sets to print more when it fails (e.g. a client's log).
DIAGNOSTICS=()
diagnose() { DIAGNOSTICS+=("$1"); }

fail() {
  FAILED=$((FAILED + 1))
  printf 'FAIL: %s\n' "$*" >&2
  set +e
  local d
  for d in "${DIAGNOSTICS[@]}"; do eval "$d" >&2; done
  if [ -n "$SERVER_PID" ] && [ -f "$WORK/server.log" ]; then
    printf -- '---- server log (last 60 lines) ----\n' >&2
    tail -n 60 "$WORK/server.log" | sed 's/\x1b\[[0-9;]*m//g' >&2
  fi
  summary
  exit 1
}

pass() {
  PASSED=$((PASSED + 1))
  printf 'ok: %s\n' "$*" >&2
}

# check DESCRIPTION COMMAND...: runs the command; passes when it succeeds.
check() {
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}

apt_updated=
apt_install() {
  command -v apt-get >/dev/null || { echo "cannot install $*: no apt-get" >&2; exit 1; }
  if [ -z "$apt_updated" ]; then
    apt-get update -qq >/dev/null
    apt_updated=1
  fi
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# need COMMAND PACKAGE: installs the Debian package when the command is missing.
need() {
  command -v "$1" >/dev/null 2>&1 || apt_install "$2"
  command -v "$1" >/dev/null 2>&1 || { echo "$1 missing after installing $2" >&2; exit 1; }
}

# jwt_claims JWT: prints the decoded payload (claims) of a JWT.
jwt_claims() {
  local p
  p=$(printf '%s' "$1" | cut -d. -f2 | tr '_-' '/+')
  case $(( ${#p} % 4 )) in 2) p="$p==" ;; 3) p="$p=" ;; esac
  printf '%s' "$p" | base64 -d 2>/dev/null
}

b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }

# hs256_token SUBJECT user|device: a token signed with $HS256_SECRET, as the `token` subcommand
# makes them (in $TENANT when set).
hs256_token() {
  need openssl openssl
  local now header payload signature
  now=$(date +%s)
  header=$(printf '{"typ":"JWT","alg":"HS256"}' | b64url)
  payload=$(jq -cn --arg sub "$1" --arg kind "mender.$2" --arg tenant "${TENANT:-}" \
    --argjson now "$now" '{sub: $sub, iat: $now, exp: ($now + 86400), iss: "deployments-clients"}
      + {($kind): true} + (if $tenant == "" then {} else {"mender.tenant": $tenant} end)' | b64url)
  signature=$(printf '%s.%s' "$header" "$payload" |
    openssl dgst -sha256 -hmac "$HS256_SECRET" -binary | b64url)
  printf '%s.%s.%s\n' "$header" "$payload" "$signature"
}

# setup_target [SERVER_BINARY | BASE_URL]: sets BASE_URL and TOKEN, starting an embedded server
# unless a running stack is named: by BASE_URL (first argument or environment) with a user
# token in TOKEN (or USER_TOKEN), or HS256_SECRET to mint one. Extra settings for the
# embedded server can be passed as DEPLOYMENTS_* variables in SERVER_ENV (space separated
# NAME=VALUE words). With TLS=1 the embedded server serves HTTPS with a certificate (for
# localhost and 127.0.0.1) from a throwaway CA, TLS_CA names the CA's certificate, and curl
# (CURL_CA_BUNDLE) and Go clients (SSL_CERT_FILE) trust it and nothing else.
setup_target() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/deployments-clients.XXXXXX")
  chmod 755 "$WORK"
  trap cleanup EXIT
  trap 'exit 130' INT TERM

  if [[ ${1:-} =~ ^https?:// ]]; then
    BASE_URL=$1
    shift
  fi
  if [ -n "${BASE_URL:-}" ]; then
    TOKEN=${TOKEN:-${USER_TOKEN:-}}
    if [ -z "$TOKEN" ] && [ -n "${HS256_SECRET:-}" ]; then TOKEN=$(hs256_token admin user); fi
    [ -n "$TOKEN" ] || { echo "against $BASE_URL: set TOKEN (a user token) or HS256_SECRET" >&2; exit 2; }
    BASE_URL=${BASE_URL%/}
    EMBEDDED=
    log "testing the stack at $BASE_URL"
    return
  fi

  local bin=${1:-$REPO_DIR/target/debug/deployments}
  [ -x "$bin" ] || { echo "no server binary at $bin (build it, or set BASE_URL and TOKEN)" >&2; exit 2; }
  SERVER_BIN=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
  EMBEDDED=1

  # A fresh server: no settings from the caller's environment leak in, except SERVER_ENV.
  local var
  for var in $(compgen -e | grep '^DEPLOYMENTS_' || true); do unset "$var"; done
  export DEPLOYMENTS_DATA_DIR="$WORK/server-data"
  export DEPLOYMENTS_LISTEN=127.0.0.1:0
  local kv
  for kv in ${SERVER_ENV:-}; do export "${kv?}"; done
  local scheme=http host=127.0.0.1
  if [ "${TLS:-}" = 1 ]; then
    make_tls_certificate "$WORK/tls"
    export DEPLOYMENTS_HTTP__TLS_CERTIFICATE="$WORK/tls/server.crt"
    export DEPLOYMENTS_HTTP__TLS_KEY="$WORK/tls/server.key"
    export TLS_CA="$WORK/tls/ca.pem" CURL_CA_BUNDLE="$WORK/tls/ca.pem" SSL_CERT_FILE="$WORK/tls/ca.pem"
    scheme=https host=localhost
  fi

  # The log exists before the server starts: the redirection happens in the child, and on a
  # busy machine the first look at the log below can come before the child opened it.
  : >"$WORK/server.log"
  "$SERVER_BIN" >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  local port=
  for _ in $(seq 1 300); do
    port=$(sed -n 's/^Serving on port \([0-9]*\).*/\1/p' "$WORK/server.log" | head -n1) || true
    [ -n "$port" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$port" ] || { cat "$WORK/server.log" >&2; echo "the server did not start" >&2; exit 1; }
  BASE_URL="$scheme://$host:$port"
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$BASE_URL/api/internal/v1/deployments/alive" && break
    sleep 0.1
  done
  TOKEN=$("$SERVER_BIN" token --user admin)
  log "embedded server on $BASE_URL (data in $DEPLOYMENTS_DATA_DIR)"
}

# make_tls_certificate DIR: a throwaway CA (DIR/ca.pem) and a certificate it issued for
# localhost and 127.0.0.1 (DIR/server.crt, DIR/server.key).
make_tls_certificate() {
  need openssl openssl
  local dir=$1
  mkdir -p "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=deployments clients test CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 2 -extfile "$dir/server.ext" -out "$dir/server.crt" 2>/dev/null
}

# api METHOD PATH [CURL ARGS...]: a request with the user token; the body goes to $WORK/body,
# the status code to stdout.
api() {
  local method=$1 path=$2
  shift 2
  curl -sS -o "$WORK/body" -w '%{http_code}' -X "$method" \
    -H "Authorization: Bearer $TOKEN" "$@" "$BASE_URL$path"
}

# api_json METHOD PATH JSON [CURL ARGS...]: like api with a JSON body.
api_json() {
  api "$1" "$2" -H 'Content-Type: application/json' --data-binary "$3" "${@:4}"
}

body() { cat "$WORK/body"; }

# expect_status WHAT EXPECTED ACTUAL
expect_status() {
  if [ "$3" = "$2" ]; then
    pass "$1 ($3)"
  else
    fail "$1: expected HTTP $2, got $3: $(head -c 2000 "$WORK/body" 2>/dev/null)"
  fi
}

# wait_for SECONDS DESCRIPTION COMMAND...: polls the command every second until it succeeds.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  while ! "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then fail "timed out after ${seconds}s waiting for $what"; fi
    sleep 1
  done
  pass "$what"
}
