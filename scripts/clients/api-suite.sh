#!/usr/bin/env bash
# The API as a black box, with curl and jq: artifacts (upload, refused upload, list, read,
# download link and its bytes), a deployment through a device's whole life (next by POST and
# GET, status reports to success, a log), statistics, the paged and searched list, an abort
# and the 409 a device gets after it, 401/403/404, the audit feed (pages and live tail), and a
# failure policy pausing a rollout of devices admitted through the API (history, simulate,
# resume).
# Every step asserts; the first failure stops the run with its request and answer.
#
#   scripts/clients/api-suite.sh [SERVER_BINARY]   # an embedded server it starts itself
#                                                  # (default target/debug/deployments)
#   HS256_SECRET=... scripts/clients/api-suite.sh BASE_URL
#   USER_TOKEN=... DEVICE_TOKEN_CMD=... scripts/clients/api-suite.sh BASE_URL
#
# Against a running stack (BASE_URL, the argument or in the environment; e.g. the gateway of
# deploy/local/up.sh) it needs tokens:
#   HS256_SECRET      the secret the stack verifies tokens with: the suite mints user and
#                     device tokens itself, in a tenant of its own for each run;
#   or USER_TOKEN     a user token (or TOKEN), and
#      DEVICE_TOKEN_CMD  a command that, with a device id appended, prints a device token of
#                     the same tenant (e.g. "deployments token --device", configured with the
#                     stack's key); or HS256_SECRET, with TENANT the user token's tenant.
# Names carry a suffix of the run's own, so a stack that already holds data passes too.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

need mender-artifact mender-artifact
need jq jq
need curl curl

MANAGEMENT=/api/management/v1/deployments
DEVICES=/api/devices/v1/deployments/device/deployments

# A tenant of the run's own when the suite mints every token itself (lib.sh mints in $TENANT).
if [ -n "${HS256_SECRET:-}" ] && [ -z "${TOKEN:-}${USER_TOKEN:-}" ]; then
  TENANT=${TENANT:-api-suite-$(date +%s)-$RANDOM}
fi
setup_target "$@"
if [ -n "$EMBEDDED" ]; then
  # The embedded server signs with the secret in its data directory; its binary mints.
  HS256_SECRET=
  DEVICE_TOKEN_CMD="$SERVER_BIN token --device"
elif [ -z "${HS256_SECRET:-}" ] && [ -z "${DEVICE_TOKEN_CMD:-}" ]; then
  echo "against $BASE_URL: set HS256_SECRET, or DEVICE_TOKEN_CMD, to make device tokens" >&2
  exit 2
fi

# device_token DEVICE: a device token for it, in the user token's tenant.
device_token() {
  if [ -n "${HS256_SECRET:-}" ]; then hs256_token "$1" device; else $DEVICE_TOKEN_CMD "$1"; fi
}

# request TOKEN METHOD URL [CURL ARGS...]: the status to stdout, the answer's headers and body
# to $WORK/headers and $WORK/body, the request to $WORK/request (for a failure's report).
request() {
  local token=$1 method=$2 url=$3
  shift 3
  printf '%s %s\n' "$method" "$url" >"$WORK/request"
  local auth=()
  [ -z "$token" ] || auth=(-H "Authorization: Bearer $token")
  curl -sS -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' -X "$method" "${auth[@]}" "$@" "$url"
}
# lib.sh's api (api_json calls it) through request: with the user token, headers kept.
api() { request "$TOKEN" "$1" "$BASE_URL$2" "${@:3}"; }
# as_device DEVICE METHOD PATH [JSON]: a device API request with DEVICE's token.
as_device() {
  local body=()
  [ $# -lt 4 ] || body=(-H 'Content-Type: application/json' --data-binary "$4")
  request "$(device_token "$1")" "$2" "$BASE_URL$DEVICES$3" "${body[@]}"
}
# shellcheck disable=SC2016 # evaluated when a check fails
diagnose 'printf -- "---- last request: %s ----\n" "$(cat "$WORK/request" 2>/dev/null)"; cat "$WORK/headers" 2>/dev/null; head -c 2000 "$WORK/body" 2>/dev/null; echo'

# header NAME: the last answer's header of that name, without the line end.
header() {
  grep -i "^$1:" "$WORK/headers" | head -n1 | cut -d: -f2- | sed -e 's/^ *//' -e 's/\r$//'
}
# expect_json WHAT JQ_FILTER: the last body makes the filter true.
expect_json() {
  if jq -e "$2" "$WORK/body" >/dev/null 2>&1; then pass "$1"; else fail "$1: $2 is not true of the answer"; fi
}
# expect_mender_error WHAT STATUS ACTUAL: that status with Mender's {"error", "request_id"}.
expect_mender_error() {
  expect_status "$1" "$2" "$3"
  expect_json "$1: Mender's error body" \
    '(.error | type == "string" and length > 0) and (.request_id | type == "string" and length > 0)'
}
last_id() { header location | sed 's#.*/##'; }
matches() { [[ $1 =~ $2 ]]; }

RUN=$(date +%s)-$RANDOM
NAME=suite-$RUN
DEVICE_TYPE=suite-board-$RUN
D1=suite-$RUN-d1
D2=suite-$RUN-d2
D3=suite-$RUN-d3
UNKNOWN=0b7c6a0e-3f4d-4e7a-9a41-7d2f1c9e8b55

# --- health and authentication ----------------------------------------------------------------
expect_status "alive, without a token" 204 "$(request "" GET "$BASE_URL/api/internal/v1/deployments/alive")"
expect_status "the user token is accepted" 200 "$(api GET "$MANAGEMENT/artifacts")"
expect_status "management API without a token" 401 "$(request "" GET "$BASE_URL$MANAGEMENT/artifacts")"
check "401 challenges with the management realm" \
  grep -qi '^www-authenticate: Bearer realm="ManagementJWT"' "$WORK/headers"
expect_status "device API without a token" 401 \
  "$(request "" POST "$BASE_URL$DEVICES/next")"
expect_status "a forged token" 401 \
  "$(request "$(device_token "$D1" | cut -d. -f1-2).forged" GET "$BASE_URL$MANAGEMENT/artifacts")"
expect_status "a device token on the management API" 403 \
  "$(request "$(device_token "$D1")" GET "$BASE_URL$MANAGEMENT/artifacts")"

# --- artifacts ---------------------------------------------------------------------------------
head -c 65536 /dev/urandom >"$WORK/rootfs.ext4"
if mender-artifact write rootfs-image -t "$DEVICE_TYPE" -n "$NAME" -f "$WORK/rootfs.ext4" \
  -o "$WORK/release.mender" >"$WORK/mender-artifact.log" 2>&1; then
  pass "mender-artifact wrote $NAME"
else
  fail "mender-artifact write: $(cat "$WORK/mender-artifact.log")"
fi

head -c 20000 /dev/urandom >"$WORK/garbage.mender"
expect_mender_error "uploading random bytes" 400 \
  "$(api POST "$MANAGEMENT/artifacts" -F "artifact=@$WORK/garbage.mender")"
expect_json "the refusal names the artifact reader" '.error | startswith("reading artifact error: ")'
expect_mender_error "an upload without the artifact part" 400 \
  "$(api POST "$MANAGEMENT/artifacts" -F description=nothing)"

expect_status "uploading $NAME" 201 \
  "$(api POST "$MANAGEMENT/artifacts" -F "description=api suite $RUN" -F "artifact=@$WORK/release.mender")"
ARTIFACT=$(last_id)
check "the upload's Location names an artifact id" matches "$ARTIFACT" '^[0-9a-f-]{36}$'
check "the upload answers with its log position" matches "$(header x-deployments-log-position)" '^[0-9]+$'

expect_status "reading the artifact at once" 200 "$(api GET "$MANAGEMENT/artifacts/$ARTIFACT")"
expect_json "the artifact reads back field by field" "
  .id == \"$ARTIFACT\" and .name == \"$NAME\" and .description == \"api suite $RUN\"
  and .device_types_compatible == [\"$DEVICE_TYPE\"] and .size == $(stat -c %s "$WORK/release.mender")
  and .updates[0].type_info.type == \"rootfs-image\""
expect_status "listing artifacts" 200 "$(api GET "$MANAGEMENT/artifacts")"
expect_json "the list holds the artifact" "any(.[]; .id == \"$ARTIFACT\")"
expect_status "the paged list filtered by name" 200 "$(api GET "$MANAGEMENT/artifacts/list?name=$NAME")"
check "it counts one artifact (X-Total-Count)" [ "$(header x-total-count)" = 1 ]
expect_mender_error "an unknown artifact" 404 \
  "$(api GET "$MANAGEMENT/artifacts/$UNKNOWN" -H "X-MEN-RequestID: suite-$RUN-lookup")"
check "the request id comes back, in the header and the body" bash -c "
  grep -qi '^x-men-requestid: suite-$RUN-lookup' '$WORK/headers' &&
  jq -e '.request_id == \"suite-$RUN-lookup\"' '$WORK/body' >/dev/null"

expect_status "a download link" 200 "$(api GET "$MANAGEMENT/artifacts/$ARTIFACT/download")"
expect_json "the link is {uri, expire, method: GET}" \
  '(.uri | startswith("http")) and (.expire | type == "string") and .method == "GET"'
LINK=$(jq -r .uri "$WORK/body")
expect_status "fetching the link, without a token" 200 \
  "$(request "" GET "$LINK")"
check "the link serves the uploaded bytes" cmp -s "$WORK/body" "$WORK/release.mender"

# --- a deployment ------------------------------------------------------------------------------
deploy() { # deploy NAME DEVICE...: creates a deployment of the artifact; status to stdout.
  local name=$1
  shift
  api_json POST "$MANAGEMENT/deployments" "$(jq -cn --arg name "$name" --arg artifact "$NAME" \
    '{name: $name, artifact_name: $artifact, devices: $ARGS.positional}' --args "$@")"
}
expect_status "a deployment of an unknown artifact" 422 \
  "$(api_json POST "$MANAGEMENT/deployments" '{"name": "x", "artifact_name": "no-such-artifact", "devices": ["d"]}')"
expect_json "... says so" '.error == "No artifact for the deployment"'
expect_mender_error "a deployment without devices" 400 \
  "$(api_json POST "$MANAGEMENT/deployments" "{\"name\": \"x\", \"artifact_name\": \"$NAME\", \"devices\": []}")"
expect_status "creating a deployment to three devices" 201 "$(deploy "$NAME-a" "$D1" "$D2" "$D3")"
DEPLOYMENT=$(last_id)
CREATED_AT=$(header x-deployments-log-position)
check "its Location names a deployment id" matches "$DEPLOYMENT" '^[0-9a-f-]{36}$'
check "its answer carries its log position" matches "$CREATED_AT" '^[0-9]+$'
expect_status "the same deployment again while it is active" 409 "$(deploy "$NAME-a" "$D1" "$D2" "$D3")"
expect_status "reading the deployment at once" 200 "$(api GET "$MANAGEMENT/deployments/$DEPLOYMENT")"
expect_json "it is pending for three devices" \
  ".name == \"$NAME-a\" and .artifact_name == \"$NAME\" and .status == \"pending\" and .max_devices == 3"
expect_mender_error "an unknown deployment" 404 "$(api GET "$MANAGEMENT/deployments/$UNKNOWN")"
expect_mender_error "a deployment id that is no UUID" 400 "$(api GET "$MANAGEMENT/deployments/not-a-uuid")"

# --- the device's side -------------------------------------------------------------------------
running_release() { jq -cn --arg type "$DEVICE_TYPE" '{artifact_name: "suite-factory", device_type: $type}'; }
expect_status "$D1 asks for its next deployment (POST)" 200 "$(as_device "$D1" POST /next "$(running_release)")"
expect_json "it is told to install the artifact" \
  ".id == \"$DEPLOYMENT\" and .artifact.artifact_name == \"$NAME\" and .artifact.source.method == \"GET\"
   and .artifact.device_types_compatible == [\"$DEVICE_TYPE\"]"
DEVICE_LINK=$(jq -r .artifact.source.uri "$WORK/body")
expect_status "$D1 downloads, without a token" 200 \
  "$(request "" GET "$DEVICE_LINK")"
check "the device gets the uploaded bytes" cmp -s "$WORK/body" "$WORK/release.mender"
expect_status "$D1 asks again (GET with query parameters)" 200 \
  "$(as_device "$D1" GET "/next?artifact_name=suite-factory&device_type=$DEVICE_TYPE")"
expect_json "the same deployment" ".id == \"$DEPLOYMENT\""
expect_status "next without a device type" 400 "$(as_device "$D1" POST /next '{"artifact_name": "suite-factory"}')"
expect_status "the v2 next route does not exist (clients fall back to v1)" 404 \
  "$(request "$(device_token "$D1")" POST "$BASE_URL/api/devices/v2/deployments/device/deployments/next" \
    -H 'Content-Type: application/json' --data-binary "$(running_release)")"
expect_status "a device in no deployment" 204 \
  "$(as_device "suite-$RUN-elsewhere" POST /next "$(running_release)")"
expect_status "a user token on the device API" 403 \
  "$(request "$TOKEN" GET "$BASE_URL$DEVICES/next?artifact_name=a&device_type=b")"

for status in downloading installing rebooting success; do
  expect_status "$D1 reports $status" 204 \
    "$(as_device "$D1" PUT "/$DEPLOYMENT/status" "{\"status\": \"$status\"}")"
done
expect_status "a status a device may not report" 400 \
  "$(as_device "$D1" PUT "/$DEPLOYMENT/status" '{"status": "exploded"}')"
expect_status "a report for an unknown deployment" 404 \
  "$(as_device "$D1" PUT "/$UNKNOWN/status" '{"status": "installing"}')"
expect_status "$D1 uploads its log" 204 \
  "$(as_device "$D1" PUT "/$DEPLOYMENT/log" '{"messages": [
      {"timestamp": "2026-01-01T10:00:00Z", "level": "info", "message": "suite installing"},
      {"timestamp": "2026-01-01T10:00:05Z", "level": "info", "message": "suite done"}]}')"
expect_status "reading $D1's log" 200 "$(api GET "$MANAGEMENT/deployments/$DEPLOYMENT/devices/$D1/log")"
check "the log holds both messages" grep -q 'info: suite installing' "$WORK/body"
check "... in order" bash -c "grep -n 'suite done' '$WORK/body' | grep -q '^2:'"

expect_status "$D2 asks for its next deployment" 200 "$(as_device "$D2" POST /next "$(running_release)")"
expect_status "$D2 reports downloading" 204 \
  "$(as_device "$D2" PUT "/$DEPLOYMENT/status" '{"status": "downloading"}')"
expect_status "statistics" 200 "$(api GET "$MANAGEMENT/deployments/$DEPLOYMENT/statistics")"
expect_json "13 statuses: one success, one downloading, nothing else" \
  '(keys | length) == 13 and .success == 1 and .downloading == 1 and ([.[]] | add) == 2'
expect_status "the deployment's devices" 200 "$(api GET "$MANAGEMENT/deployments/$DEPLOYMENT/devices")"
expect_json "two devices joined" "length == 2 and any(.[]; .id == \"$D1\" and .status == \"success\")"
expect_status "the deployment" 200 "$(api GET "$MANAGEMENT/deployments/$DEPLOYMENT")"
expect_json "it is in progress for two devices" '.status == "inprogress" and .device_count == 2'

# --- listing and searching ---------------------------------------------------------------------
expect_status "a second deployment" 201 "$(deploy "$NAME-b" "suite-$RUN-d4")"
expect_status "a third deployment" 201 "$(deploy "$NAME-c" "suite-$RUN-d5")"
expect_status "searching, page 1 of 2" 200 "$(api GET "$MANAGEMENT/deployments?search=$NAME&per_page=2&page=1")"
check "X-Total-Count counts all three" [ "$(header x-total-count)" = 3 ]
check "Link has first and next, no prev" bash -c "
  grep -qi '^link:.*rel=\"first\"' '$WORK/headers' && grep -qi '^link:.*rel=\"next\"' '$WORK/headers' &&
  ! grep -qi '^link:.*rel=\"prev\"' '$WORK/headers'"
expect_json "two on the page, newest first" \
  "length == 2 and .[0].name == \"$NAME-c\" and .[1].name == \"$NAME-b\""
expect_status "searching, page 2 of 2" 200 "$(api GET "$MANAGEMENT/deployments?search=$NAME&per_page=2&page=2")"
check "Link has prev, no next" bash -c "
  grep -qi '^link:.*rel=\"prev\"' '$WORK/headers' && ! grep -qi '^link:.*rel=\"next\"' '$WORK/headers'"
expect_json "the oldest on the last page" "length == 1 and .[0].id == \"$DEPLOYMENT\""
expect_status "per_page out of range" 400 "$(api GET "$MANAGEMENT/deployments?per_page=501")"

# --- abort -------------------------------------------------------------------------------------
expect_status "aborting the deployment" 204 \
  "$(api_json PUT "$MANAGEMENT/deployments/$DEPLOYMENT/status" '{"status": "aborted"}')"
expect_status "$D2 reports installing after the abort" 409 \
  "$(as_device "$D2" PUT "/$DEPLOYMENT/status" '{"status": "installing"}')"
expect_json "the refusal says why" '.error == "Deployment aborted"'
expect_status "$D3 asks after the abort" 204 "$(as_device "$D3" POST /next "$(running_release)")"
expect_status "aborting it again" 422 \
  "$(api_json PUT "$MANAGEMENT/deployments/$DEPLOYMENT/status" '{"status": "aborted"}')"
expect_status "the aborted deployment" 200 "$(api GET "$MANAGEMENT/deployments/$DEPLOYMENT")"
expect_json "it is finished" '.status == "finished"'
expect_status "its statistics" 200 "$(api GET "$MANAGEMENT/deployments/$DEPLOYMENT/statistics")"
expect_json "the success stays, the unfinished device is aborted" '.success == 1 and .aborted == 1'

# --- the audit feed ----------------------------------------------------------------------------
expect_status "the events after the one before the deployment's creation" 200 \
  "$(api GET "$MANAGEMENT/events?after=$((CREATED_AT - 1))&limit=1")"
expect_json "the first is that creation, as recorded" "
  .events[0].position == $CREATED_AT and .events[0].event_type == \"DeploymentCreated\"
  and .events[0].payload.name == \"$NAME-a\" and .next == \"$CREATED_AT\""
expect_status "an events cursor that is no position" 400 "$(api GET "$MANAGEMENT/events?after=yesterday")"
# The live tail sends what is recorded after Last-Event-ID, then keeps the connection open.
curl -s -N --max-time 3 -H "Authorization: Bearer $TOKEN" -H "Last-Event-ID: $((CREATED_AT - 1))" \
  -o "$WORK/tail" "$BASE_URL$MANAGEMENT/events/stream" || true
check "the live tail streams the creation at once" grep -q "^id: *$CREATED_AT\$" "$WORK/tail"
check "... as a DeploymentCreated event" grep -q '^event: *DeploymentCreated$' "$WORK/tail"

# --- a failure policy, on devices admitted through the API -------------------------------------
# Devices are admitted as a real fleet is: each preauthorized with its own key, then asking
# for its token with a signed auth request. Admission has one tenant, so this part acts in it:
# the embedded server's user token is there already; with HS256_SECRET one is minted for it.
if [ -n "$EMBEDDED" ]; then
  FLEET_TOKEN=$TOKEN
elif [ -n "${HS256_SECRET:-}" ]; then
  FLEET_TOKEN=$(TENANT='' hs256_token admin user)
else
  FLEET_TOKEN=
  log "no user token of the admission tenant (set HS256_SECRET): the failure policy part is left out"
fi
if [ -n "$FLEET_TOKEN" ]; then
  need openssl openssl
  fleet() { request "$FLEET_TOKEN" "$1" "$BASE_URL$2" "${@:3}"; }
  fleet_json() { fleet "$1" "$2" -H 'Content-Type: application/json' --data-binary "$3"; }
  FLEET=()
  declare -A FLEET_TOKENS=()
  # admit N: an Ed25519 key, preauthorized through deviceauth, then a signed auth request.
  admit() {
    local identity key="$WORK/fleet-$1.key" id body signature
    identity=$(jq -cn --arg mac "suite-$RUN-$1" '{mac: $mac}')
    openssl genpkey -algorithm ed25519 -out "$key" 2>/dev/null
    expect_status "preauthorizing fleet device $1" 201 "$(fleet_json POST /api/management/v2/devauth/devices \
      "$(jq -cn --arg identity "$identity" --arg key "$(openssl pkey -in "$key" -pubout)" \
        '{identity_data: ($identity | fromjson), pubkey: $key}')")"
    id=$(header location | sed 's#.*/##')
    body=$(jq -cn --arg identity "$identity" --arg key "$(openssl pkey -in "$key" -pubout)" \
      '{id_data: $identity, pubkey: $key, tenant_token: ""}')
    printf '%s' "$body" >"$WORK/auth-request"
    signature=$(openssl pkeyutl -sign -rawin -inkey "$key" -in "$WORK/auth-request" | base64 -w0)
    expect_status "fleet device $1 asks for its token" 200 \
      "$(request "" POST "$BASE_URL/api/devices/v1/authentication/auth_requests" \
        -H 'Content-Type: application/json' -H "X-MEN-Signature: $signature" --data-binary "@$WORK/auth-request")"
    FLEET+=("$id")
    FLEET_TOKENS[$id]=$(cat "$WORK/body")
  }
  as_fleet_device() {
    local body=()
    [ $# -lt 4 ] || body=(-H 'Content-Type: application/json' --data-binary "$4")
    request "${FLEET_TOKENS[$1]}" "$2" "$BASE_URL$DEVICES$3" "${body[@]}"
  }
  for n in $(seq 1 12); do admit "$n"; done
  check "twelve devices admitted, each with a token of its own" [ "${#FLEET_TOKENS[@]}" = 12 ]
  # The admission tenant may be the suite's own (the embedded server): upload where missing.
  expect_status "the artifact where the fleet is" 200 "$(fleet GET "$MANAGEMENT/artifacts/list?name=$NAME")"
  if [ "$(header x-total-count)" = 0 ]; then
    expect_status "uploading $NAME where the fleet is" 201 \
      "$(fleet POST "$MANAGEMENT/artifacts" -F "artifact=@$WORK/release.mender")"
  fi

  POLICY='{"failure_threshold_percent": 20, "min_finished_devices": 10, "on_threshold": "pause"}'
  expect_mender_error "a policy with a key of its own" 400 "$(fleet_json POST "$MANAGEMENT/deployments" \
    "$(jq -cn --arg a "$NAME" '{name: "x", artifact_name: $a, devices: ["d"], policy: {failure_threshold_percent: 20, colour: "red"}}')")"
  expect_json "... naming it" '.error | contains("colour")'
  expect_status "a deployment to the twelve, paused at 20 % failures of 10" 201 "$(fleet_json POST "$MANAGEMENT/deployments" \
    "$(jq -cn --arg n "$NAME-policed" --arg a "$NAME" --argjson p "$POLICY" \
      '{name: $n, artifact_name: $a, devices: $ARGS.positional, policy: $p}' --args "${FLEET[@]}")")"
  POLICED=$(last_id)
  # Three of the first ten fail: 30 % once ten have finished.
  for n in $(seq 0 9); do
    device=${FLEET[$n]}
    outcome=success
    [ "$n" -ge 3 ] || outcome=failure
    expect_status "fleet device $((n + 1)) gets the deployment" 200 \
      "$(as_fleet_device "$device" POST /next "$(running_release)")"
    expect_status "fleet device $((n + 1)) reports $outcome" 204 \
      "$(as_fleet_device "$device" PUT "/$POLICED/status" "{\"status\": \"$outcome\"}")"
  done
  expect_status "the eleventh device asks" 204 "$(as_fleet_device "${FLEET[10]}" POST /next "$(running_release)")"
  expect_status "the policed deployment" 200 "$(fleet GET "$MANAGEMENT/deployments/$POLICED")"
  expect_json "it paused itself, naming the counts" \
    '.paused == true and .pause_cause.kind == "policy" and .pause_cause.finished == 10 and .pause_cause.failed == 3
     and .policy_trip.failure_percent == 30'
  MANAGEMENT_V2=/api/management/v2/deployments
  expect_status "a failed device's history" 200 \
    "$(fleet GET "$MANAGEMENT_V2/deployments/$POLICED/devices/${FLEET[0]}/history")"
  expect_json "its last change is its own failure report" \
    '.[-1].status == "failure" and .[-1].cause.kind == "device_report"'
  expect_status "the policy tried on the recorded rollout" 200 \
    "$(fleet_json POST "$MANAGEMENT_V2/deployments/$POLICED/simulate" "{\"policy\": $POLICY}")"
  expect_json "it trips where the live one did" '.tripped == true and .at.finished == 10 and .at.failed == 3'
  expect_status "a second pause" 409 "$(fleet POST "$MANAGEMENT_V2/deployments/$POLICED/pause")"
  expect_status "resuming" 204 "$(fleet POST "$MANAGEMENT_V2/deployments/$POLICED/resume")"
  expect_status "the eleventh device asks again" 200 "$(as_fleet_device "${FLEET[10]}" POST /next "$(running_release)")"
  expect_json "and gets the deployment" ".id == \"$POLICED\""
fi

summary
