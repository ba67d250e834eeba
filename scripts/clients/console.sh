#!/usr/bin/env bash
# shellcheck disable=SC2015 # A && B || fail is meant
# The web console as a browser without script sees it, with curl and a cookie jar: sign-in
# (with the password on the embedded server, with a user token against a running stack),
# a stale session cleared, the pages, an upload as the page's script sends it and as the
# plain form does, the audit feed filtered, a deployment created and aborted through the
# forms, a form without its CSRF token refused, and the live feed's stream.
#
#   scripts/clients/console.sh [SERVER_BINARY]           # an embedded server it starts
#   TOKEN=<user jwt> scripts/clients/console.sh http://gateway   # a running stack
source "$(dirname "$0")/lib.sh"

need mender-artifact mender-artifact
need curl curl

PASSWORD=console-test-$RANDOM$RANDOM
if [ -z "${BASE_URL:-}" ]; then
  SERVER_ENV="${SERVER_ENV:-} DEPLOYMENTS_STANDALONE__ADMIN_PASSWORD=$PASSWORD"
fi
setup_target "$@"

JAR=$WORK/cookies
# page METHOD PATH [CURL ARGS...]: a browser's request with the cookie jar; the body goes to
# $WORK/page, the headers to $WORK/headers, the status code to stdout.
page() {
  local method=$1 path=$2
  shift 2
  curl -sS -b "$JAR" -c "$JAR" -o "$WORK/page" -D "$WORK/headers" -w '%{http_code}' \
    -X "$method" "$@" "$BASE_URL$path"
}
csrf() { sed -n 's/.*name="csrf" value="\([0-9a-f]*\)".*/\1/p' "$WORK/page" | head -n1; }
location() { sed -n 's/^[Ll]ocation: *\([^\r]*\).*/\1/p' "$WORK/headers" | head -n1; }
diagnose 'printf -- "---- last page ----\n"; head -c 3000 "$WORK/page" 2>/dev/null; echo'

expect_status "/ui/ without a session goes to the sign-in page" 303 "$(page GET /ui/)"
[ "$(location)" = /ui/sign-in ] || fail "redirected to $(location)"
# A session the API no longer takes is cleared on the way, and the form shown: no loop.
expect_status "a stale session goes to the sign-in page" 303 \
  "$(page GET /ui/ -H 'Cookie: deployments_session=stale.session.token')"
grep -qi '^set-cookie: deployments_session=;.*Max-Age=0' "$WORK/headers" &&
  pass "the stale cookie is cleared" || fail "the stale cookie stays: $(grep -i set-cookie "$WORK/headers")"
expect_status "the sign-in page with a stale session shows the form" 200 \
  "$(page GET /ui/sign-in -H 'Cookie: deployments_session=stale.session.token')"
expect_status "the sign-in page" 200 "$(page GET /ui/sign-in)"
grep -qi '^content-security-policy:.*script-src .self.' "$WORK/headers" ||
  fail "no Content-Security-Policy on the sign-in page"
token=$(csrf)
if [ -n "$EMBEDDED" ]; then
  status=$(page POST /ui/sign-in --data-urlencode "csrf=$token" \
    --data-urlencode email=admin@example.com --data-urlencode "password=$PASSWORD")
else
  status=$(page POST /ui/sign-in --data-urlencode "csrf=$token" --data-urlencode "token=$TOKEN")
fi
expect_status "signing in" 303 "$status"
grep -qi '^set-cookie: deployments_session=[^;]\+;.*HttpOnly.*SameSite=Strict' "$WORK/headers" ||
  fail "no strict session cookie: $(grep -i set-cookie "$WORK/headers")"
if [[ $BASE_URL = https://* ]]; then
  grep -qi '^set-cookie: deployments_session=.*; Secure' "$WORK/headers" &&
    pass "over HTTPS the session cookie is Secure" ||
    fail "over HTTPS without Secure: $(grep -i set-cookie "$WORK/headers")"
fi

for path in /ui/ /ui/devices /ui/releases /ui/deployments /ui/deployments/new /ui/events /ui/devices/find; do
  expect_status "GET $path" 200 "$(page GET "$path")"
done
expect_status "the script" 200 "$(page GET /ui/assets/console.js)"
token=$(page GET /ui/releases >/dev/null && csrf)

# An upload as the page's script sends it: multipart, the token in a header, JSON back.
suffix=$(date +%s)-$RANDOM
NAME=console-release-$suffix
head -c 32768 /dev/urandom >"$WORK/rootfs.ext4"
mender-artifact write rootfs-image -t console-board -n "$NAME" -f "$WORK/rootfs.ext4" \
  -o "$WORK/release.mender" >/dev/null 2>&1
expect_status "an upload through the console" 201 \
  "$(page POST /ui/releases/upload -H "X-CSRF-Token: $token" -F "artifact=@$WORK/release.mender")"
expect_status "the same upload again: the API's refusal" 409 \
  "$(page POST /ui/releases/upload -H "X-CSRF-Token: $token" -F "artifact=@$WORK/release.mender")"
grep -q '"error"' "$WORK/page" || fail "the refusal has no error message"
page GET "/ui/releases?name=$NAME" >/dev/null
grep -q "$NAME" "$WORK/page" && pass "the release is listed" || fail "$NAME is not listed"
# The form without its script: the token as its first field, then the file (curl keeps the
# order); redirected back with a notice.
mender-artifact write rootfs-image -t console-board -n "$NAME-plain" -f "$WORK/rootfs.ext4" \
  -o "$WORK/plain.mender" >/dev/null 2>&1
expect_status "an upload through the plain form" 303 \
  "$(page POST /ui/releases/upload -F "csrf=$token" -F "artifact=@$WORK/plain.mender")"
[[ $(location) = *notice=Uploaded* ]] || fail "after the plain upload: $(location)"
expect_status "the plain form without its token" 403 \
  "$(page POST /ui/releases/upload -F "artifact=@$WORK/plain.mender")"

# The audit feed, filtered by the API: the newest uploads of the artifacts stream.
expect_status "the events page filtered" 200 \
  "$(page GET "/ui/events?stream=artifacts&type=ArtifactUploaded")"
grep -q '<td>ArtifactUploaded</td>' "$WORK/page" && ! grep -q '<td>DeploymentCreated</td>' "$WORK/page" &&
  pass "only the uploads are shown" || fail "the events page does not filter"

# A deployment through the form, then aborted through its page.
form=(--data-urlencode "name=console $suffix" --data-urlencode "release=$NAME"
  --data-urlencode target=devices --data-urlencode "devices=console-device-$suffix")
expect_status "a form without its token is refused" 403 "$(page POST /ui/deployments "${form[@]}")"
expect_status "creating a deployment through the form" 303 \
  "$(page POST /ui/deployments --data-urlencode "csrf=$token" "${form[@]}")"
deployment=$(location)
[[ $deployment = /ui/deployments/* ]] || fail "redirected to $deployment"
expect_status "its page" 200 "$(page GET "$deployment")"
grep -q "console $suffix" "$WORK/page" && pass "its page names it" || fail "the page does not name it"
expect_status "abort through the page" 303 \
  "$(page POST "$deployment/abort" --data-urlencode "csrf=$token")"
[[ $(location) = *notice=Aborted* ]] || fail "after abort: $(location)"
expect_status "the API shows it finished" 200 \
  "$(api GET "/api/management/v1/deployments/deployments/${deployment##*/}")"
grep -q '"status":"finished"' "$WORK/body" && pass "aborted" || fail "not finished: $(body)"

# The live feed: an event stream that stays open (cut after two seconds).
curl -s -b "$JAR" -N -m 2 -D "$WORK/headers" -o /dev/null "$BASE_URL/ui/live" || true
grep -qi '^content-type: text/event-stream' "$WORK/headers" &&
  pass "the live feed is an event stream" || fail "the live feed: $(cat "$WORK/headers")"

expect_status "signing out" 303 "$(page POST /ui/sign-out --data-urlencode "csrf=$token")"
expect_status "signed out, /ui/ goes to the sign-in page again" 303 "$(page GET /ui/)"
summary
