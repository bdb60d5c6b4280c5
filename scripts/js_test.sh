#!/usr/bin/env bash
# The JavaScript client tests: supabase-js and MemFire's supabase-wechat-stable-v2, unmodified,
# through clients/js/auth_wechat_fetch.js, against a real PostgREST on a throw-away PostgreSQL
# cluster with auth_wechat and the WeChat simulator. No request reaches /auth/v1.
#
# Builds nothing but the simulator: auth_wechat must already be installed in the PostgreSQL of
# $PG_CONFIG (default /usr/lib/postgresql/15/bin/pg_config), e.g. by scripts/test.sh or
# `cargo pgrx install`. Installs PostgREST (scripts/postgrest.sh) and the test's npm packages
# (clients/js/test, from its lockfile) when missing.
#
#   scripts/js_test.sh                  every test file in clients/js/test
#   scripts/js_test.sh memfire.test.js  some of them
#   KEEP=1 scripts/js_test.sh           leave the stack running and print its coordinates (a directory of its own each run)
#   JWT_EXP=60                          the access tokens' lifetime (auth_wechat.jwt_exp), default 60
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

source scripts/lib.sh
source scripts/postgrest.sh
# A directory of its own unless one is named: another run may be using any fixed one.
DIR=${JS_TEST_DIR:-$(mktemp -d /tmp/auth_wechat_js.XXXXXX)}
JWT_EXP=${JWT_EXP:-60}

control="$("$PG_CONFIG" --sharedir)/extension/auth_wechat.control"
if [ ! -f "$control" ]; then
    echo "js_test: auth_wechat is not installed in $("$PG_CONFIG" --version) ($control missing)." >&2
    echo "js_test: install it first: scripts/setup.sh && cargo pgrx install --release --pg-config $PG_CONFIG" >&2
    exit 1
fi
command -v node >/dev/null || { echo "js_test: node (20+) is needed" >&2; exit 1; }

echo "== PostgREST $POSTGREST_VERSION"
install_postgrest

echo "== npm packages of clients/js/test (from package-lock.json)"
(
    cd clients/js/test
    stamp=node_modules/.auth_wechat_lock
    lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$lock_sum" ]; then
        npm ci --no-audit --no-fund --loglevel=error >/dev/null
        echo "$lock_sum" > "$stamp"
    fi
)

ES256_DIR=$DIR/es256 RECIPE_DIR=$DIR/recipe
fresh_dir "$ES256_DIR"
fresh_dir "$RECIPE_DIR"
fresh_dir "$DIR"
mkdir -p "$ES256_DIR" "$RECIPE_DIR"
if [ "$(id -u)" = 0 ]; then chown postgres "$ES256_DIR" "$RECIPE_DIR"; fi
cleanup() {
    stop_all "$RECIPE_DIR"
    stop_postgrest "$ES256_DIR"
    stop_all "$ES256_DIR"
    stop_postgrest "$DIR"
    stop_all "$DIR"
    [ -n "${JS_TEST_DIR:-}" ] || rm -rf "$DIR"
}
if [ -z "${KEEP:-}" ]; then trap cleanup EXIT; fi

APPID=wx0123456789abcdef SECRET=0123456789abcdef0123456789abcdef
# A second mini program of the same Open Platform account (one person, one unionid across both).
LITE_APPID=wx1111aaaa1111aaaa LITE_SECRET=1f2e3d4c5b6a79888978a6b5c4d3e2f1
echo "== WeChat simulator (builds target/release/wechat-sim)"
start_sim "$DIR" "$APPID" "$SECRET" --app "$LITE_APPID:$LITE_SECRET"
echo "   $API_BASE"

JWT_SECRET=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
# start_stack DIR [postgresql.conf lines]: a cluster with auth_wechat, the database `js` and a
# PostgREST whose jwt-secret is auth.wechat_postgrest_jwks(); sets PORT and REST_URL.
start_stack() {
    start_cluster "$1" "$JWT_SECRET" <<CONF
auth_wechat.jwt_issuer = 'http://127.0.0.1/auth/v1'
auth_wechat.jwt_exp = $JWT_EXP
auth_wechat.apps = '[{"appid": "$LITE_APPID", "secret": "$LITE_SECRET", "type": "miniprogram"}]'
${2:-}
CONF
    create_api_database js
    psql -d js <<'SQL'
-- What the .from()/.rpc() tests read and write: rows of their own only (RLS).
CREATE TABLE public.notes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id uuid NOT NULL DEFAULT auth.uid(),
    body text NOT NULL
);
ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY notes_own ON public.notes TO authenticated
    USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid());
GRANT SELECT, INSERT, UPDATE, DELETE ON public.notes TO authenticated;
CREATE FUNCTION public.whoami() RETURNS jsonb LANGUAGE sql STABLE
    AS $$ SELECT jsonb_build_object('uid', auth.uid(), 'role', auth.role(), 'session_id', auth.jwt() ->> 'session_id') $$;
GRANT EXECUTE ON FUNCTION public.whoami() TO anon, authenticated;
SQL
    start_postgrest "$1" "postgres://authenticator@127.0.0.1:$PORT/js" "$(psql -d js -Atc 'SELECT auth.wechat_postgrest_jwks()')"
}

# A second stack whose access tokens are ES256 (an EC key signs; the legacy secret is kept as an
# oct key that verifies, so the HS256 API keys work there too): getClaims verifies those itself.
EC_KEY=$(node -e '
    const jwk = require("node:crypto").generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "jwk" });
    console.log(JSON.stringify({ ...jwk, kid: "js-test-ec", alg: "ES256", key_ops: ["sign", "verify"] }));')
LEGACY_KEY=$(printf '{"kty":"oct","kid":"legacy","alg":"HS256","key_ops":["verify"],"k":"%s"}' \
    "$(printf '%s' "$JWT_SECRET" | base64 -w0 | tr '+/' '-_' | tr -d '=')")
echo "== PostgreSQL and PostgREST with ES256 tokens (auth_wechat.jwt_keys)"
start_stack "$ES256_DIR" "auth_wechat.jwt_keys = '[$LEGACY_KEY, $EC_KEY]'"
REST_URL_ES256=$REST_URL
echo "   $REST_URL_ES256"

# A bare cluster for the README's plain PostgreSQL + PostgREST recipe, which readme.test.js runs.
echo "== PostgreSQL for the README's recipe"
start_cluster "$RECIPE_DIR" "$JWT_SECRET" <<'CONF'
CONF
RECIPE_PGPORT=$PORT

echo "== PostgreSQL with auth_wechat (jwt_exp $JWT_EXP s) and PostgREST"
start_stack "$DIR"
echo "   127.0.0.1:$PORT (data in $DIR), $REST_URL"
# Chosen after the last server here started: a port probed free earlier may be taken since.
RECIPE_POSTGREST_PORT=$(free_port)

# The project's API keys: HS256 JWTs of the roles, as Supabase issues them.
mint_key() {
    JWT_SECRET=$JWT_SECRET node -e '
        const c = require("node:crypto"), b = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
        const now = Math.floor(Date.now() / 1000);
        const t = b({ alg: "HS256", typ: "JWT" }) + "." + b({ iss: "supabase", role: process.argv[1], iat: now, exp: now + 10 * 365 * 86400 });
        console.log(t + "." + c.createHmac("sha256", process.env.JWT_SECRET).update(t).digest("base64url"));
    ' "$1"
}
ANON_KEY=$(mint_key anon)
SERVICE_ROLE_KEY=$(mint_key service_role)

export RECIPE_PGPORT RECIPE_POSTGREST_PORT POSTGREST_BIN LITE_APPID
export REST_URL REST_URL_ES256 ANON_KEY SERVICE_ROLE_KEY JWT_SECRET JWT_EXP
export PSQL=$BIN/psql DB_URI="postgres://postgres@127.0.0.1:$PORT/js" SIM_URL=$API_BASE

if [ -n "${KEEP:-}" ]; then
    echo "== still running (stop: kill \$(cat $DIR/postgrest.pid $ES256_DIR/postgrest.pid $DIR/sim.pid);" \
        "$BIN/pg_ctl -D $DIR/data stop; $BIN/pg_ctl -D $ES256_DIR/data stop)"
    printf 'export REST_URL=%q REST_URL_ES256=%q LITE_APPID=%q ANON_KEY=%q SERVICE_ROLE_KEY=%q JWT_SECRET=%q JWT_EXP=%q PSQL=%q DB_URI=%q SIM_URL=%q\n' \
        "$REST_URL" "$REST_URL_ES256" "$LITE_APPID" "$ANON_KEY" "$SERVICE_ROLE_KEY" "$JWT_SECRET" "$JWT_EXP" "$PSQL" "$DB_URI" "$SIM_URL" > "$DIR/env.sh"
    echo "   environment for the tests: source $DIR/env.sh; cd clients/js/test; node --test"
fi

echo "== node --test (clients/js/test)"
# Here the stack is up: an SDK test that finds it missing fails instead of skipping.
export AUTH_WECHAT_REQUIRE_STACK=1
cd "$ROOT/clients/js/test"
node_flags=()
# The latest supabase-js wants Node 22's WebSocket; Node 20 has it behind a flag.
node -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' || node_flags+=(--experimental-websocket)
if [ $# -eq 0 ]; then set -- *.test.js; fi
node "${node_flags[@]}" --test --test-concurrency=4 "$@"
