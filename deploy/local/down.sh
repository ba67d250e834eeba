#!/usr/bin/env bash
# Stops what deploy/local/up.sh started (nginx, the query-service and command-service
# instances, s3s-fs, by the pids it recorded), drops its database and removes its files, keeping the logs in
# <state dir>/logs. Safe to run twice, or when up.sh never ran. PostgreSQL, RabbitMQ and
# installed packages stay as they are.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/common.sh"

for ((i = ${#PROCESSES[@]} - 1; i >= 0; i--)); do stop "${PROCESSES[$i]}"; done

if [ -f "$STATE_DIR/s3.dir" ]; then
  rm -rf "$(cat "$STATE_DIR/s3.dir")"
fi
if postgres_ready; then
  database=$(database_name)
  drop_database "$database"
  log "dropped database $database"
fi
rm -rf "$PID_DIR" "$STATE_DIR/nginx" "$STATE_DIR/s3.dir" "$STATE_DIR/s3.env" \
  "$STATE_DIR/database" "$STATE_DIR/exports" "$STATE_DIR/instances"
log "down"
