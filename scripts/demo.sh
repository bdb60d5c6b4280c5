#!/usr/bin/env bash
# The demo: builds and installs auth_wechat, starts a throw-away PostgreSQL 15 cluster and the
# WeChat simulator on free loopback ports, loads the GoTrue-compatible auth schema, creates and
# configures the extension, and signs a mini-program user in exactly as PostgREST would call
# POST /rpc/wechat_sign_in. Prints the session and the access token's claims.
#
#   scripts/demo.sh                      against the simulator
#   WECHAT_APPID=wx... WECHAT_SECRET=... WECHAT_CODE=<a fresh wx.login() code> scripts/demo.sh
#                                        against WeChat's real API
#   KEEP=1 scripts/demo.sh               leave the cluster (and simulator) running afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

source scripts/lib.sh
DEMO=/tmp/auth_wechat_demo

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
start_cluster "$DEMO" <<CONF
auth_wechat.appid = '$APPID'
auth_wechat.secret = '$SECRET'
auth_wechat.api_base = '$API_BASE'
auth_wechat.jwt_secret = '$JWT_SECRET'
auth_wechat.jwt_issuer = 'http://localhost:54321/auth/v1'
CONF
[ -n "${KEEP:-}" ] || trap 'stop_all "$DEMO"' EXIT
echo "== PostgreSQL 15 on 127.0.0.1:$PORT (data in $DEMO)"

psql() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" "$@"; }
psql -U postgres -d postgres -c "CREATE DATABASE demo"
psql -U postgres -d demo -f sql/gotrue_schema.sql
psql -U postgres -d demo -c "CREATE ROLE authenticator LOGIN NOINHERIT" \
    -c "GRANT anon, authenticated, service_role TO authenticator" \
    -c "CREATE EXTENSION auth_wechat"
echo "== created the extension in database demo"

# What PostgREST runs for POST /rpc/wechat_sign_in {"code": "..."} from an anonymous client.
rpc_sign_in() {
    psql -U authenticator -d demo -t -A -v code="$1" <<'SQL'
BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE;
SELECT set_config('search_path', 'public', true), set_config('role', 'anon', true),
       set_config('request.jwt.claims', '{"role":"anon"}', true), set_config('request.method', 'POST', true),
       set_config('request.path', '/rpc/wechat_sign_in', true),
       set_config('request.headers', '{"user-agent":"auth_wechat-demo"}', true) \g /dev/null
SELECT "auth"."wechat_sign_in"("code" := pgrst_args."code")
  FROM json_to_record(json_build_object('code', :'code')) AS pgrst_args("code" text);
COMMIT;
SQL
}

SESSION=$(rpc_sign_in "$CODE")
echo "== session returned by auth.wechat_sign_in"
psql -U postgres -d demo -t -A -v s="$SESSION" <<<"SELECT jsonb_pretty(:'s'::jsonb)"
echo "== access token claims (HS256, verified below)"
psql -U postgres -d demo -t -A -v s="$SESSION" <<'SQL'
WITH t AS (SELECT split_part(:'s'::jsonb ->> 'access_token', '.', 2) AS payload)
SELECT jsonb_pretty(convert_from(decode(rpad(translate(payload, '-_', '+/'), (length(payload) + 3) / 4 * 4, '='), 'base64'), 'UTF8')::jsonb)
  FROM t;
SQL
psql -U postgres -d demo -c "CREATE EXTENSION IF NOT EXISTS pgcrypto"
psql -U postgres -d demo -t -A -v s="$SESSION" -v secret="$JWT_SECRET" <<'SQL'
WITH t AS (SELECT :'s'::jsonb ->> 'access_token' AS token)
SELECT CASE WHEN translate(encode(hmac(split_part(token, '.', 1) || '.' || split_part(token, '.', 2), :'secret', 'sha256'), 'base64'), E'+/=\n', '-_')
               = split_part(token, '.', 3)
            THEN 'signature: valid for auth_wechat.jwt_secret' ELSE 'signature: INVALID' END
  FROM t;
SQL
if [ -n "$CODE2" ]; then
    SECOND=$(rpc_sign_in "$CODE2")
    psql -U postgres -d demo -t -A -v a="$SESSION" -v b="$SECOND" <<<\
        "SELECT format('== signed in again: %s, new session with refresh token %s',
                CASE WHEN (:'b'::jsonb #>> '{user,id}') = (:'a'::jsonb #>> '{user,id}') THEN 'same user' ELSE 'A DIFFERENT USER' END,
                :'b'::jsonb ->> 'refresh_token')"
fi
psql -U postgres -d demo -t -A -c \
    "SELECT format('== rows: %s user(s), %s identity(ies), %s session(s), %s refresh token(s)',
            (SELECT count(*) FROM auth.users), (SELECT count(*) FROM auth.identities),
            (SELECT count(*) FROM auth.sessions), (SELECT count(*) FROM auth.refresh_tokens))"
if [ -n "${KEEP:-}" ]; then
    echo "== still running: psql -h 127.0.0.1 -p $PORT -U postgres demo   (stop: $BIN/pg_ctl -D $DEMO/data stop)"
fi
