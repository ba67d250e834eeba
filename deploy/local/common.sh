# shellcheck shell=bash disable=SC2034 # the paths are for the scripts that source this
# What up.sh and down.sh share: where the stack keeps its state, and how a process it started
# is stopped. Sourced, not run.
#
#   DEPLOY_STATE_DIR  pid files, settings, nginx files and logs (default target/deploy-local)
#   DEPLOY_DATABASE   the PostgreSQL database the stack makes and drops (default
#                     deployments_local)
#   PG_ADMIN_URL      where that database is made (default
#                     postgres://postgres@127.0.0.1:5432/postgres)

set -euo pipefail

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE_DIR=${DEPLOY_STATE_DIR:-$REPO_DIR/target/deploy-local}
PID_DIR=$STATE_DIR/pids
LOG_DIR=$STATE_DIR/logs
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}

log() { printf 'deploy/local: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The database of the running stack (recorded by up.sh), else the one up.sh would make.
database_name() {
  if [ -f "$STATE_DIR/database" ]; then cat "$STATE_DIR/database"; else echo "${DEPLOY_DATABASE:-deployments_local}"; fi
}

postgres_ready() { pg_isready -q -d "$PG_ADMIN_URL"; }

drop_database() {
  PGOPTIONS="-c client_min_messages=warning" \
    psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null
}

# running NAME: the pid recorded as pids/NAME.pid, when that process still runs what up.sh
# started (its command line holds the marker in pids/NAME.program): a pid the system has
# given to another process since is not ours to stop.
running() {
  local pid marker command_line
  pid=$(cat "$PID_DIR/$1.pid" 2>/dev/null) || return 1
  marker=$(cat "$PID_DIR/$1.program" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ && -n $marker ]] || return 1
  command_line=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ $command_line == *"$marker"* ]] || return 1
  echo "$pid"
}

# stop NAME: SIGTERM to the process up.sh started as NAME, SIGKILL if it is still there after
# 10 s; forgets its pid file either way.
stop() {
  local pid
  if pid=$(running "$1"); then
    log "stopping $1 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PID_DIR/$1.pid" "$PID_DIR/$1.program"
}

# How many instances of each service the stack runs: as up.sh recorded it, else INSTANCES
# (default 1).
instance_count() {
  cat "$STATE_DIR/instances" 2>/dev/null || echo "${INSTANCES:-1}"
}

# The processes of the stack, in the order up.sh starts them (down.sh stops them backwards):
# each service's first instance is named after the service, the others NAME-2, NAME-3, ...
list_processes() {
  local count service n
  count=$(instance_count)
  PROCESSES=(s3s-fs)
  for service in command-service query-service; do
    PROCESSES+=("$service")
    for ((n = 2; n <= count; n++)); do PROCESSES+=("$service-$n"); done
  done
  PROCESSES+=(nginx)
}
list_processes
