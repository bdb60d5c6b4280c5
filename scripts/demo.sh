#!/usr/bin/env bash
# The demo: builds and installs auth_wechat, starts a throw-away PostgreSQL 15 cluster, the WeChat
# simulator and PostgREST on free loopback ports, loads the GoTrue-compatible auth schema, creates
# and configures the extension, then does over plain HTTP (curl) what a mini program does: signs a
# user in through POST /rpc/wechat_sign_in, writes and reads a row-level-security table with the
# access token, and refreshes the session. Prints the session and the access token's claims.
#
#   scripts/demo.sh                      against the simulator
#   WECHAT_APPID=wx... WECHAT_SECRET=... WECHAT_CODE=<a fresh wx.login() code> scripts/demo.sh
#                                        against WeChat's real API
#   KEEP=1 scripts/demo.sh               leave everything running afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

source scripts/lib.sh
source scripts/postgrest.sh
# A directory of its own: another run (or a test) may be using any fixed one.
DEMO=$(mktemp -d /tmp/auth_wechat_demo.XXXXXX)

echo "== building and installing the extension"
install_extension
fresh_dir "$DEMO"

if [ -n "${WECHAT_APPID:-}" ] && [ -n "${WECHAT_SECRET:-}" ]; then
    : "${WECHAT_CODE:?set WECHAT_CODE to a fresh code from wx.login() in your mini program (valid 5 minutes, once)}"
    APPID=$WECHAT_APPID SECRET=$WECHAT_SECRET API_BASE=https://api.weixin.qq.com
    CODE=$WECHAT_CODE CODE2=""
    echo "== using WeChat's real API for app $APPID"
else
    APPID=wx0123456789abcdef SECRET=0123456789abcdef0123456789abcdef
    start_sim "$DEMO" "$APPID" "$SECRET"
    nonce=$(date +%s%N)
    CODE="union.demo-user.a$nonce" CODE2="ok.demo-user.b$nonce"
    echo "== WeChat simulator at $API_BASE"
fi

JWT_SECRET=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
start_cluster "$DEMO" "$JWT_SECRET" <<CONF
auth_wechat.jwt_issuer = 'http://localhost:54321/auth/v1'
CONF
[ -n "${KEEP:-}" ] || trap 'stop_postgrest "$DEMO"; stop_all "$DEMO"; rm -rf "$DEMO"' EXIT
echo "== PostgreSQL 15 on 127.0.0.1:$PORT (data in $DEMO)"

create_api_database demo
psql -U postgres -d demo <<'SQL'
-- An app table: each signed-in user sees and writes only their own rows.
CREATE TABLE public.notes (user_id uuid NOT NULL DEFAULT auth.uid(), body text NOT NULL);
ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_notes ON public.notes TO authenticated USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid());
GRANT SELECT, INSERT ON public.notes TO authenticated;
SQL
echo "== created the extension in database demo and exposed its functions (auth.wechat_expose())"

start_postgrest "$DEMO" "postgres://authenticator@127.0.0.1:$PORT/demo" "$JWT_SECRET"
echo "== PostgREST $POSTGREST_VERSION at $REST_URL"

json() { python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin), indent=2))'; }
field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
rpc() { curl -sS -X POST "$REST_URL/rpc/$1" -H 'Content-Type: application/json' "${@:3}" -d "$2"; }

echo "== curl -X POST $REST_URL/rpc/wechat_sign_in -d '{\"code\": \"…\"}'"
SESSION=$(rpc wechat_sign_in "{\"code\": \"$CODE\"}" -H 'User-Agent: auth_wechat-demo')
echo "$SESSION" | json
TOKEN=$(echo "$SESSION" | field access_token)
echo "== access token claims (HS256, verified with the JWT secret)"
python3 - "$TOKEN" "$JWT_SECRET" <<'PY'
import base64, hashlib, hmac, json, sys
token, secret = sys.argv[1], sys.argv[2]
head, body, sig = token.split(".")
pad = lambda s: s + "=" * (-len(s) % 4)
print(json.dumps(json.loads(base64.urlsafe_b64decode(pad(body))), indent=2))
good = hmac.compare_digest(base64.urlsafe_b64encode(hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()).rstrip(b"=").decode(), sig)
print("signature:", "valid for auth_wechat.jwt_secret" if good else "INVALID")
PY

echo "== row-level security with the token: POST /notes, then GET /notes"
curl -sS -X POST "$REST_URL/notes" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"body": "hello from the mini program"}' -o /dev/null -w 'POST /notes: HTTP %{http_code}\n'
curl -sS "$REST_URL/notes?select=body" -H "Authorization: Bearer $TOKEN" -w '   (GET /notes with the token: HTTP %{http_code})\n'
curl -sS "$REST_URL/notes" -o /dev/null -w 'GET /notes without a token: HTTP %{http_code}\n'

echo "== POST /rpc/wechat_refresh_session: a new access token, the refresh token rotated"
REFRESHED=$(rpc wechat_refresh_session "{\"refresh_token\": \"$(echo "$SESSION" | field refresh_token)\"}")
echo "refresh token: $(echo "$SESSION" | field refresh_token) -> $(echo "$REFRESHED" | field refresh_token)"
if [ -n "$CODE2" ]; then
    SECOND=$(rpc wechat_sign_in "{\"code\": \"$CODE2\"}")
    python3 - "$SESSION" "$SECOND" <<'PY'
import json, sys
a, b = (json.loads(x) for x in sys.argv[1:3])
print("== signed in again:", "same user" if a["user"]["id"] == b["user"]["id"] else "A DIFFERENT USER",
      "- a new session, refresh token", b["refresh_token"])
PY
    echo "== a refused code: HTTP status and PostgREST's error body"
    rpc wechat_sign_in "{\"code\": \"$CODE2\"}" -w '\n(HTTP %{http_code})\n'
fi
psql -U postgres -d demo -t -A -c \
    "SELECT format('== rows: %s user(s), %s identity(ies), %s session(s), %s refresh token(s), %s audit row(s)',
            (SELECT count(*) FROM auth.users), (SELECT count(*) FROM auth.identities),
            (SELECT count(*) FROM auth.sessions), (SELECT count(*) FROM auth.refresh_tokens),
            (SELECT count(*) FROM auth.audit_log_entries))"
if [ -n "${KEEP:-}" ]; then
    echo "== still running: PostgREST $REST_URL, psql -h 127.0.0.1 -p $PORT -U postgres demo"
    echo "   (stop: kill \$(cat $DEMO/postgrest.pid) \$(cat $DEMO/sim.pid 2>/dev/null); $BIN/pg_ctl -D $DEMO/data stop)"
fi
