#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2015 # code in single quotes runs later (eval, modules); A && B || fail is meant
# The real mender-cli (Debian's package, 1.9) against this server: artifacts upload, list and
# delete, refused uploads, `devices list` with a device that admitted itself, and `login` when
# the server answers the useradm login route.
#
#   scripts/clients/mender-cli.sh [SERVER_BINARY]      # starts an embedded server (default
#                                                      # target/debug/deployments)
#   BASE_URL=http://gateway TOKEN=<user jwt> scripts/clients/mender-cli.sh
#   TOKEN=<user jwt> scripts/clients/mender-cli.sh http://gateway
#   HS256_SECRET=<the stack's secret> scripts/clients/mender-cli.sh http://gateway
#                                                      # a running stack; nothing started
#
# Login: the embedded server is started with an administrator's email and password of the
# test's own (standalone.admin_email / standalone.admin_password); against a running stack
# login is tested only when MENDER_USERNAME and MENDER_PASSWORD are set, and skipped when the
# stack answers POST /api/management/v1/useradm/auth/login with 404 (the split services).
source "$(dirname "$0")/lib.sh"

need mender-artifact mender-artifact
need mender-cli mender-cli
need jq jq
need curl curl

# Credentials the embedded server is started with, for `mender-cli login`.
EMBEDDED_USERNAME=admin@example.com
EMBEDDED_PASSWORD=client-test-$RANDOM$RANDOM
if [ -z "${BASE_URL:-}" ]; then
  SERVER_ENV="${SERVER_ENV:-} DEPLOYMENTS_STANDALONE__ADMIN_EMAIL=$EMBEDDED_USERNAME DEPLOYMENTS_STANDALONE__ADMIN_PASSWORD=$EMBEDDED_PASSWORD"
fi
setup_target "$@"

# mender-cli keeps its token and reads its settings under $HOME: never the caller's.
export HOME="$WORK/home" XDG_CACHE_HOME="$WORK/home/.cache"
mkdir -p "$HOME"

SKIPPED=0
summary() { printf 'clients: %d passed, %d failed, %d skipped\n' "$PASSED" "$FAILED" "$SKIPPED"; }

cli() { mender-cli --server "$BASE_URL" "$@"; }
# cli_user ARGS...: mender-cli with the user token; stdout and stderr to $WORK/cli.out.
cli_user() { cli --token-value "$TOKEN" "$@" >"$WORK/cli.out" 2>&1; }
diagnose 'printf -- "---- last mender-cli output ----\n"; cat "$WORK/cli.out" 2>/dev/null'

suffix=$(date +%s)-$RANDOM
NAME=cli-release-$suffix
DEVICE_TYPE=cli-board-$suffix

# A rootfs-image artifact (mender-cli 1.9 cannot decode the object `meta_data` module images
# have, so the listing test uses rootfs images).
head -c 65536 /dev/urandom >"$WORK/rootfs.ext4"
mender-artifact write rootfs-image -t "$DEVICE_TYPE" -n "$NAME" -f "$WORK/rootfs.ext4" \
  -o "$WORK/release.mender" >/dev/null 2>&1
pass "mender-artifact wrote $NAME for $DEVICE_TYPE"

artifact_ids_named() {
  api GET /api/management/v1/deployments/artifacts >/dev/null
  jq -r --arg n "$1" '.[] | select(.name == $n) | .id' "$WORK/body"
}
artifact_count() {
  api GET /api/management/v1/deployments/artifacts >/dev/null
  jq length "$WORK/body"
}

# --- upload ----------------------------------------------------------------------------------
before=$(artifact_count)
check "mender-cli artifacts upload" \
  cli_user artifacts upload --no-progress --description "uploaded by mender-cli" "$WORK/release.mender"
ids=$(artifact_ids_named "$NAME")
[ "$(printf '%s\n' "$ids" | grep -c .)" = 1 ] || fail "the API lists $NAME $(printf '%s\n' "$ids" | grep -c .) times"
ID=$ids
pass "the API lists the uploaded artifact ($ID)"
jq -e --arg id "$ID" --arg dt "$DEVICE_TYPE" '.[] | select(.id == $id)
    | .description == "uploaded by mender-cli" and .device_types_compatible == [$dt]
      and .size == '"$(stat -c %s "$WORK/release.mender")" "$WORK/body" >/dev/null ||
  fail "the artifact's description, device types or size: $(jq --arg id "$ID" '.[] | select(.id == $id)' "$WORK/body")"
pass "description, device type and size as uploaded"

# --- list ------------------------------------------------------------------------------------
check "mender-cli artifacts list" cli_user artifacts list
grep -qx "ID: $ID" "$WORK/cli.out" && grep -qx "Name: $NAME" "$WORK/cli.out" ||
  fail "mender-cli artifacts list does not show $ID / $NAME"
pass "mender-cli artifacts list shows the artifact's id and name"

check "mender-cli artifacts list --detail 2" cli_user artifacts list --detail 2
# The block of our artifact: from its ID line to the separator.
awk -v id="ID: $ID" '$0 == id {on = 1} on {print} on && /^-----/ {exit}' "$WORK/cli.out" >"$WORK/block"
grep -qx "Name: $NAME" "$WORK/block" || fail "the detailed listing has no block for $NAME"
grep -qx "  $DEVICE_TYPE" "$WORK/block" || fail "the detailed listing lacks device type $DEVICE_TYPE: $(cat "$WORK/block")"
grep -qx 'Description: uploaded by mender-cli' "$WORK/block" || fail "the detailed listing lacks the description"
grep -qx "Size: $(stat -c %s "$WORK/release.mender")" "$WORK/block" || fail "the detailed listing has a wrong size"
grep -qx 'Signed: false' "$WORK/block" || fail "the detailed listing says the artifact is signed"
grep -qx 'Artifact format: mender' "$WORK/block" && grep -qx 'Format version: 3' "$WORK/block" ||
  fail "the detailed listing lacks format mender, version 3"
grep -qx "Artifact provides: $NAME" "$WORK/block" || fail "the detailed listing lacks artifact_provides"
grep -qx '  Type: rootfs-image' "$WORK/block" || fail "the detailed listing lacks the update type"
grep -qx "$(printf '\tName: rootfs.ext4')" "$WORK/block" &&
  grep -qx "$(printf '\tChecksum: %s' "$(sha256sum "$WORK/rootfs.ext4" | cut -d' ' -f1)")" "$WORK/block" &&
  grep -qx "$(printf '\tSize: 65536')" "$WORK/block" ||
  fail "the detailed listing lacks the payload file's name, checksum or size: $(cat "$WORK/block")"
pass "mender-cli shows device type, description, size, format, provides and payload file"

# --- refused uploads -------------------------------------------------------------------------
if cli_user artifacts upload --no-progress "$WORK/release.mender"; then
  fail "a second upload of the same name and device type succeeded"
fi
grep -q 'status 409' "$WORK/cli.out" || fail "the duplicate upload failed without status 409"
pass "a duplicate upload fails (409)"

head -c 30000 /dev/urandom >"$WORK/not-an-artifact.mender"
if cli_user artifacts upload --no-progress "$WORK/not-an-artifact.mender"; then
  fail "uploading a file that is no artifact succeeded"
fi
grep -q 'status 400' "$WORK/cli.out" || fail "the upload of a non-artifact failed without status 400"
pass "a file that is no artifact is refused (400)"

head -c 20000 "$WORK/release.mender" >"$WORK/truncated.mender"
if cli_user artifacts upload --no-progress "$WORK/truncated.mender"; then
  fail "uploading a truncated artifact succeeded"
fi
grep -q 'status 400' "$WORK/cli.out" || fail "the upload of a truncated artifact failed without status 400"
pass "a truncated artifact is refused (400)"

[ "$(artifact_count)" = $((before + 1)) ] || fail "refused uploads changed the artifact list: $(body)"
pass "refused uploads left no artifact behind"

if mender-cli --server "$BASE_URL" --token-value not-a-token artifacts list >"$WORK/cli.out" 2>&1; then
  fail "mender-cli artifacts list succeeded with a bad token"
fi
pass "a bad token is refused"

if [ -n "${TLS_CA:-}" ]; then
  # Over HTTPS the certificate is checked: without the test CA, mender-cli refuses the server.
  if env -u SSL_CERT_FILE mender-cli --server "$BASE_URL" --token-value "$TOKEN" artifacts list \
    >"$WORK/cli.out" 2>&1; then
    fail "mender-cli trusted a certificate from an unknown CA"
  fi
  grep -qi 'certificate' "$WORK/cli.out" || fail "mender-cli failed, but not on the certificate"
  pass "over HTTPS, mender-cli checks the server's certificate"
fi

# --- delete ----------------------------------------------------------------------------------
check "mender-cli artifacts delete" cli_user artifacts delete "$ID"
[ -z "$(artifact_ids_named "$NAME")" ] || fail "the API still lists $NAME after the delete: $(body)"
pass "the API no longer lists the deleted artifact"
expect_status "GET the deleted artifact" 404 "$(api GET "/api/management/v1/deployments/artifacts/$ID")"
check "mender-cli artifacts list after the delete" cli_user artifacts list
! grep -qx "ID: $ID" "$WORK/cli.out" || fail "mender-cli still lists $ID"
pass "mender-cli no longer lists the deleted artifact"
if cli_user artifacts delete "$ID"; then fail "deleting the deleted artifact again succeeded"; fi
grep -q 'status 404' "$WORK/cli.out" || fail "the second delete failed without status 404"
pass "deleting it again fails (404)"

# --- devices list ----------------------------------------------------------------------------
# A device admits itself as mender-client would (an Ed25519 key, the request signed with it),
# then `mender-cli devices list` must show it, on the embedded server and on the split stack.
# A stack that does not admit devices itself (behind Mender's deviceauth) still serves the list.
need openssl openssl
AUTH_REQUESTS=/api/devices/v1/authentication/auth_requests
openssl genpkey -algorithm ED25519 -out "$WORK/device.key" 2>/dev/null
openssl pkey -in "$WORK/device.key" -pubout -out "$WORK/device.pub" 2>/dev/null
MAC=$(printf '02:00:%02x:%02x:%02x:%02x' $((RANDOM % 256)) $((RANDOM % 256)) $((RANDOM % 256)) $((RANDOM % 256)))
jq -cn --arg id "$(jq -cn --arg mac "$MAC" '{mac: $mac}')" --rawfile key "$WORK/device.pub" \
  '{id_data: $id, pubkey: $key, tenant_token: ""}' | tr -d '\n' >"$WORK/auth.json"
openssl pkeyutl -sign -rawin -inkey "$WORK/device.key" -in "$WORK/auth.json" -out "$WORK/auth.sig"
auth_request() {
  curl -sS -o "$WORK/body" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    -H "X-MEN-Signature: $(base64 -w0 "$WORK/auth.sig")" --data-binary @"$WORK/auth.json" \
    "$BASE_URL$AUTH_REQUESTS"
}
status=$(auth_request)
if [ "$status" = 401 ]; then
  # Auto-accept is off: the device waits as pending until accepted through the API.
  pending() {
    api GET "/api/management/v2/devauth/devices?status=pending&per_page=500" >/dev/null &&
      jq -e --arg mac "$MAC" 'any(.[]; .identity_data.mac == $mac)' "$WORK/body" >/dev/null
  }
  wait_for 10 "the device waits as pending" pending
  read -r pending_id pending_set < <(jq -r --arg mac "$MAC" \
    '.[] | select(.identity_data.mac == $mac) | "\(.id) \(.auth_sets[0].id)"' "$WORK/body")
  expect_status "accept it through the devauth API" 204 \
    "$(api_json PUT "/api/management/v2/devauth/devices/$pending_id/auth/$pending_set/status" '{"status": "accepted"}')"
  status=$(auth_request)
fi
if [ "$status" = 404 ] || [ "$status" = 405 ]; then
  check "mender-cli devices list (the stack admits no devices itself)" cli_user devices list
  SKIPPED=$((SKIPPED + 1))
  log "skipped: a device in mender-cli devices list (POST $AUTH_REQUESTS answers $status)"
else
  expect_status "a device admits itself" 200 "$status"
  DEVICE=$(jwt_claims "$(body)" | jq -r .sub)
  listed() {
    cli_user devices list --detail 1 &&
      awk -v id="ID: $DEVICE" '$0 == id {on = 1} on {print} on && /^-----/ {exit}' "$WORK/cli.out" >"$WORK/block" &&
      grep -qx "ID: $DEVICE" "$WORK/block"
  }
  wait_for 10 "mender-cli devices list shows the device ($DEVICE)" listed
  grep -qx 'Status: accepted' "$WORK/block" || fail "mender-cli shows the device not accepted: $(cat "$WORK/block")"
  grep -q "$MAC" "$WORK/block" || fail "mender-cli --detail 1 lacks the device's MAC address: $(cat "$WORK/block")"
  pass "mender-cli shows it accepted, with its MAC address"
fi

# --- login -----------------------------------------------------------------------------------
LOGIN=/api/management/v1/useradm/auth/login
status=$(curl -sS -o "$WORK/body" -w '%{http_code}' -X POST "$BASE_URL$LOGIN")
if [ "$status" = 404 ] || [ "$status" = 405 ]; then
  SKIPPED=$((SKIPPED + 1))
  log "skipped: mender-cli login (POST $LOGIN answers $status)"
else
  if [ -n "$EMBEDDED" ]; then
    username=${MENDER_USERNAME:-$EMBEDDED_USERNAME}
    password=${MENDER_PASSWORD:-$EMBEDDED_PASSWORD}
  else
    username=${MENDER_USERNAME:-}
    password=${MENDER_PASSWORD:-}
  fi
  if [ -z "$username" ] || [ -z "$password" ]; then
    SKIPPED=$((SKIPPED + 1))
    log "skipped: mender-cli login (set MENDER_USERNAME and MENDER_PASSWORD)"
  else
    expect_status "POST $LOGIN without credentials" 401 "$status"
    if cli login --username "$username" --password "wrong-$password" >"$WORK/cli.out" 2>&1; then
      fail "mender-cli login with a wrong password succeeded"
    fi
    [ ! -s "$XDG_CACHE_HOME/mender/authtoken" ] || fail "a failed login stored a token"
    pass "mender-cli login with a wrong password fails"

    check "mender-cli login" eval 'cli login --username "$username" --password "$password" >"$WORK/cli.out" 2>&1'
    [ -s "$XDG_CACHE_HOME/mender/authtoken" ] || fail "mender-cli login stored no token"
    claims=$(jwt_claims "$(cat "$XDG_CACHE_HOME/mender/authtoken")")
    printf '%s' "$claims" | jq -e '."mender.user" == true' >/dev/null ||
      fail "the login token is no user token: $claims"
    pass "the login token is a user token"

    # Everything again with the stored token (no --token-value).
    check "mender-cli artifacts upload with the login token" \
      eval 'cli artifacts upload --no-progress "$WORK/release.mender" >"$WORK/cli.out" 2>&1'
    check "mender-cli artifacts list with the login token" eval 'cli artifacts list >"$WORK/cli.out" 2>&1'
    ID=$(awk -v n="Name: $NAME" '/^ID: / {id = $2} $0 == n {print id; exit}' "$WORK/cli.out")
    [ -n "$ID" ] || fail "the list made with the login token lacks $NAME"
    pass "the list made with the login token shows $NAME"
    check "mender-cli artifacts delete with the login token" \
      eval 'cli artifacts delete "$ID" >"$WORK/cli.out" 2>&1'
    [ -z "$(artifact_ids_named "$NAME")" ] || fail "the artifact deleted with the login token is still listed"
    pass "the artifact deleted with the login token is gone"
  fi
fi

summary
