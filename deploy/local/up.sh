#!/usr/bin/env bash
# Runs the split stack on this machine, from Debian packages and this workspace's binaries:
# PostgreSQL and RabbitMQ (started, or installed first, when missing), s3s-fs with access keys
# (scripts/s3-test-server), a fresh database, command-service and query-service on free ports,
# and nginx with deploy/nginx/gateway.conf in front of them. Prints `export` lines:
#
#   eval "$(deploy/local/up.sh)"     # BIN_DIR=target/debug for a debug build
#   curl -H "Authorization: Bearer $DEPLOY_USER_TOKEN" \
#     "$DEPLOY_GATEWAY_URL/api/management/v1/deployments/artifacts"
#   deploy/local/down.sh
#
#   DEPLOY_GATEWAY_URL   the gateway: the whole API on one base URL
#   DEPLOY_USER_TOKEN    a user token (user admin, no tenant), valid 24 h
#   DEPLOY_HS256_SECRET  the secret both services verify tokens with: mint more with
#                             DEPLOYMENTS_AUTH__HS256_SECRET=... deployments token --device d1
#
# BIN_DIR (default target/release, relative to the repository unless absolute) holds
# command-service, query-service and deployments. AUTO_ACCEPT=false (default true) makes
# command-service keep new devices pending until accepted through the devauth API.
# INSTANCES=N (default 1) runs N of each service on the one database, the gateway spreading
# requests over them (round robin): one query-service instance projects and relays at a
# time, and another takes over when it stops. When the stack is already up with as many
# instances, this prints its exports again; otherwise what is up is taken down and started
# afresh. Only the export
# lines go to stdout; progress goes to stderr and each process's log to logs/ in the state
# directory (see common.sh for it and the other settings).
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/common.sh"

NGINX_DIR=$STATE_DIR/nginx
BUCKET=mender-artifacts

apt_updated=
apt_install() {
  command -v apt-get >/dev/null || die "cannot install $*: no apt-get on this machine"
  if [ -z "$apt_updated" ]; then
    apt-get update -qq >&2
    apt_updated=1
  fi
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

# wait_until SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s.
wait_until() {
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq 1 $((seconds * 5))); do
    "$@" && return
    sleep 0.2
  done
  die "no $what within ${seconds}s"
}

rabbitmq_ready() { rabbitmq-diagnostics -q ping >/dev/null 2>&1; }

ensure_postgres() {
  postgres_ready && return
  if ! ls -d /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql
    # Connections over TCP as postgres without a password, as scripts/test expects too.
    sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' \
      /etc/postgresql/*/main/pg_hba.conf
  fi
  log "starting PostgreSQL"
  local version
  version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
  wait_until 30 "answer from PostgreSQL" postgres_ready
}

ensure_rabbitmq() {
  rabbitmq_ready && return
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
  log "starting RabbitMQ"
  rabbitmq-server -detached >/dev/null 2>&1 || true
  wait_until 60 "answer from RabbitMQ" rabbitmq_ready
}

ensure_nginx() {
  command -v nginx >/dev/null && return
  # Installing the package starts the system's nginx on port 80 unless invoke-rc.d is told
  # not to (as it is in most containers); this stack runs an nginx of its own.
  local guard=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    guard=1
  fi
  local status=0
  apt_install nginx || status=$?
  if [ -n "$guard" ]; then rm -f /usr/sbin/policy-rc.d; fi
  [ "$status" = 0 ] || die "installing nginx failed"
  command -v nginx >/dev/null || die "nginx is not on PATH after installing it"
}

port_answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port VARIABLE: sets it to a port nothing listens on, below the range outgoing
# connections take their ports from (a port in use that way is invisible to a connect, yet
# taken for a listener), and not one this script chose already.
chosen_ports=" "
free_port() {
  local low=32768 port
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range || true
  [ "$low" -gt 11000 ] || low=65535
  for _ in $(seq 1 200); do
    port=$((10000 + RANDOM % (low - 10000)))
    [[ $chosen_ports = *" $port "* ]] && continue
    if ! port_answers "$port"; then
      chosen_ports+="$port "
      printf -v "$1" '%s' "$port"
      return
    fi
  done
  die "found no free port"
}

# answers URL STATUS: the URL answers with that HTTP status.
answers() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = "$2" ]; }

# start NAME MARKER COMMAND...: runs COMMAND detached (its own session, so it outlives this
# script and a Ctrl-C in the caller's terminal), logging to logs/NAME.log. MARKER is a string
# of its command line by which down.sh knows the pid is still this process.
start() {
  local name=$1 marker=$2
  shift 2
  setsid "$@" </dev/null >"$LOG_DIR/$name.log" 2>&1 &
  echo $! >"$PID_DIR/$name.pid"
  printf '%s' "$marker" >"$PID_DIR/$name.program"
}

# serving NAME URL: waits until NAME's health route answers 204, failing early if it exits.
serving() {
  local name=$1 url=$2
  for _ in $(seq 1 300); do
    answers "$url/api/internal/v1/deployments/health" 204 && return
    running "$name" >/dev/null || die "$name exited: $(tail -n 20 "$LOG_DIR/$name.log")"
    sleep 0.2
  done
  die "$name did not become healthy within 60 s: $(tail -n 20 "$LOG_DIR/$name.log")"
}

# render_gateway: deploy/nginx/gateway.conf with this stack's addresses in its placeholders.
# shellcheck disable=SC2016 # the placeholders are literal text
render_gateway() {
  local conf
  conf=$(<"$REPO_DIR/deploy/nginx/gateway.conf")
  conf=${conf//'${GATEWAY_LISTEN}'/127.0.0.1:$gateway_port}
  conf=${conf//'    server ${COMMAND_SERVICE};'/$(upstream_servers "${command_ports[@]}")}
  conf=${conf//'    server ${QUERY_SERVICE};'/$(upstream_servers "${query_ports[@]}")}
  conf=${conf//'${OBJECT_STORE}'/${TEST_S3_ENDPOINT#http://}}
  conf=${conf//'${ARTIFACT_BUCKET}'/$BUCKET}
  printf '%s\n' "$conf"
}

# upstream_servers PORT...: an upstream block's `server` line for each instance.
upstream_servers() {
  local port lines=()
  for port in "$@"; do lines+=("    server 127.0.0.1:$port;"); done
  printf '%s\n' "${lines[@]}"
}

stack_is_up() {
  [ -f "$STATE_DIR/exports" ] || return 1
  [ "$(cat "$STATE_DIR/instances" 2>/dev/null)" = "${INSTANCES:-1}" ] || return 1
  local name
  for name in "${PROCESSES[@]}"; do running "$name" >/dev/null || return 1; done
  # shellcheck source=/dev/null
  (source "$STATE_DIR/exports" && answers "$DEPLOY_GATEWAY_URL/api/internal/v1/deployments/alive" 204)
}

if stack_is_up; then
  log "already up (state in $STATE_DIR)"
  cat "$STATE_DIR/exports"
  exit 0
fi
if [ -d "$PID_DIR" ]; then
  log "taking down what is left of an earlier stack"
  "$REPO_DIR/deploy/local/down.sh"
fi

bin_dir=${BIN_DIR:-target/release}
[[ $bin_dir = /* ]] || bin_dir=$REPO_DIR/$bin_dir
for program in command-service query-service deployments; do
  [ -x "$bin_dir/$program" ] || die "no $bin_dir/$program: build it (cargo build --release -p command-service -p query-service -p deployments) or set BIN_DIR"
done

ensure_postgres
ensure_rabbitmq
ensure_nginx
command -v curl >/dev/null || apt_install curl

rm -rf "$LOG_DIR" "$NGINX_DIR"
mkdir -p "$PID_DIR" "$LOG_DIR" "$NGINX_DIR"
instances=${INSTANCES:-1}
[[ $instances =~ ^[1-9][0-9]*$ ]] || die "INSTANCES must be a positive number, not $instances"
echo "$instances" >"$STATE_DIR/instances"
list_processes

# Whatever fails from here on takes the partial stack down again.
up=
trap '[ -n "$up" ] || { log "failed; logs kept in $LOG_DIR"; "$REPO_DIR/deploy/local/down.sh"; }' EXIT

# s3s-fs, checking signatures; the server script records where its data lives.
"$REPO_DIR/scripts/s3-test-server" >"$STATE_DIR/s3.env"
# shellcheck source=/dev/null
source "$STATE_DIR/s3.env"
echo "$TEST_S3_PID" >"$PID_DIR/s3s-fs.pid"
printf '%s' "$TEST_S3_ROOT" >"$PID_DIR/s3s-fs.program"
dirname "$TEST_S3_ROOT" >"$STATE_DIR/s3.dir"

database=${DEPLOY_DATABASE:-deployments_local}
echo "$database" >"$STATE_DIR/database"
drop_database "$database"
psql "$PG_ADMIN_URL" -qc "CREATE DATABASE \"$database\"" >/dev/null
database_url=${PG_ADMIN_URL%/*}/$database
log "database $database"

command_ports=() query_ports=() gateway_port='' next_port=''
for ((n = 1; n <= instances; n++)); do
  free_port next_port
  command_ports+=("$next_port")
  free_port next_port
  query_ports+=("$next_port")
done
free_port gateway_port
gateway_url=http://127.0.0.1:$gateway_port
secret=local-$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')

# Only the settings below reach the services: none of the caller's DEPLOYMENTS_* variables.
for variable in $(compgen -e | grep '^DEPLOYMENTS_' || true); do unset "$variable"; done
export DEPLOYMENTS_EVENT_LOG_URL=$database_url
export DEPLOYMENTS_READ_MODELS_URL=$database_url
export DEPLOYMENTS_AUTH__HS256_SECRET=$secret
# Devices ask command-service to be admitted: at once, or (AUTO_ACCEPT=false) once accepted
# through the devauth API.
export DEPLOYMENTS_STANDALONE__AUTO_ACCEPT=${AUTO_ACCEPT:-true}
export DEPLOYMENTS_STORAGE__BACKEND=s3
export DEPLOYMENTS_STORAGE__PUBLIC_URL=$gateway_url
export DEPLOYMENTS_STORAGE__S3__BUCKET=$BUCKET
export DEPLOYMENTS_STORAGE__S3__ENDPOINT=$TEST_S3_ENDPOINT
export DEPLOYMENTS_STORAGE__S3__ACCESS_KEY_ID=$TEST_S3_ACCESS_KEY
export DEPLOYMENTS_STORAGE__S3__SECRET_ACCESS_KEY=$TEST_S3_SECRET_KEY
export DEPLOYMENTS_STORAGE__S3__FORCE_PATH_STYLE=true
export DEPLOYMENTS_STORAGE__S3__CREATE_BUCKET=true
# Download links name the gateway, which passes /<bucket>/ on to s3s-fs.
export DEPLOYMENTS_STORAGE__S3__PRESIGN_PUBLIC_ENDPOINT=$gateway_url

# command-service first: the two would apply the event log's migrations at once (safely,
# under an advisory lock), but one at a time makes a failure's log easier to read.
# instance_name SERVICE N: the process name of the service's Nth instance.
instance_name() { if [ "$2" = 1 ]; then echo "$1"; else echo "$1-$2"; fi; }
for ((n = 1; n <= instances; n++)); do
  name=$(instance_name command-service "$n")
  DEPLOYMENTS_LISTEN=127.0.0.1:${command_ports[n - 1]} \
    start "$name" "$bin_dir/command-service" "$bin_dir/command-service"
  serving "$name" "http://127.0.0.1:${command_ports[n - 1]}"
done
for ((n = 1; n <= instances; n++)); do
  name=$(instance_name query-service "$n")
  DEPLOYMENTS_LISTEN=127.0.0.1:${query_ports[n - 1]} \
    DEPLOYMENTS_CONSOLE__API_URL=$gateway_url \
    DEPLOYMENTS_RELAY__AMQP_URL=${DEPLOY_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f} \
    start "$name" "$bin_dir/query-service" "$bin_dir/query-service"
  serving "$name" "http://127.0.0.1:${query_ports[n - 1]}"
done
log "command-service on ${command_ports[*]}, query-service on ${query_ports[*]}"

# The gateway: the shared server block with this stack's addresses, inside a main
# configuration whose every file lives in the state directory.
render_gateway >"$NGINX_DIR/gateway.conf"
cat >"$NGINX_DIR/nginx.conf" <<EOF
# Generated by deploy/local/up.sh; the server block is deploy/nginx/gateway.conf.
worker_processes 1;
pid $NGINX_DIR/nginx.pid;
error_log $LOG_DIR/nginx-error.log;
events { worker_connections 256; }
http {
    access_log $LOG_DIR/nginx-access.log;
    client_body_temp_path $NGINX_DIR/client_body;
    proxy_temp_path $NGINX_DIR/proxy;
    fastcgi_temp_path $NGINX_DIR/fastcgi;
    uwsgi_temp_path $NGINX_DIR/uwsgi;
    scgi_temp_path $NGINX_DIR/scgi;
    include $NGINX_DIR/gateway.conf;
}
EOF
# As root nginx hands requests to workers running as an unprivileged user, who could not
# write the temporary files in the state directory.
if [ "$(id -u)" = 0 ]; then sed -i '1a user root;' "$NGINX_DIR/nginx.conf"; fi
nginx -t -q -c "$NGINX_DIR/nginx.conf" -e "$LOG_DIR/nginx-error.log" >&2
# nginx puts itself in the background and writes its master's pid to nginx.pid.
setsid nginx -c "$NGINX_DIR/nginx.conf" -e "$LOG_DIR/nginx-error.log" </dev/null >&2
wait_until 10 "pid file from nginx" test -s "$NGINX_DIR/nginx.pid"
cp "$NGINX_DIR/nginx.pid" "$PID_DIR/nginx.pid"
printf '%s' "$NGINX_DIR/nginx.conf" >"$PID_DIR/nginx.program"
wait_until 30 "204 from /alive through the gateway" answers "$gateway_url/api/internal/v1/deployments/alive" 204

token=$(DEPLOYMENTS_AUTH__HS256_SECRET=$secret "$bin_dir/deployments" token --user admin)
{
  printf 'export DEPLOY_GATEWAY_URL=%q\n' "$gateway_url"
  printf 'export DEPLOY_USER_TOKEN=%q\n' "$token"
  printf 'export DEPLOY_HS256_SECRET=%q\n' "$secret"
} >"$STATE_DIR/exports"
up=1
log "up: gateway on $gateway_url; logs in $LOG_DIR; take it down with deploy/local/down.sh"
cat "$STATE_DIR/exports"
