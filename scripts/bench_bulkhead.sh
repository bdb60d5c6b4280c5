#!/usr/bin/env bash
# The bulkhead under load, through a real PostgREST (pool of 10, scripts/postgrest.sh): WeChat
# answers every login after 2 s (the simulator's `slow.<ms>.` codes) while 50 clients sign in via
# POST /rpc/wechat_sign_in, and one more client reads a plain table (GET /items) at a steady rate.
# Three phases of BULKHEAD_SECONDS each: reads alone (the baseline), then reads with the sign-ins
# under auth_wechat.max_concurrent_requests = 5 (the default: at most 5 of the pool's 10
# connections wait on WeChat; further sign-ins answer 429 over_request_rate_limit at once), then = 64
# (the bulkhead effectively off: sign-ins take every pooled connection). Prints, per phase, the
# reads' p50/p99/max and errors, and the sign-ins' answers by status.
#
#   scripts/bench_bulkhead.sh                   release build; about 2 minutes
#   BENCH_INSTALL=0 scripts/bench_bulkhead.sh   the auth_wechat installed in PostgreSQL 15 as it is
#   BULKHEAD_SECONDS=20 BULKHEAD_CLIENTS=50 BULKHEAD_SLOW_MS=2000 BULKHEAD_READ_RATE=20 \
#   BULKHEAD_RETRY_MS=100 BULKHEAD_MAX="5 64" scripts/bench_bulkhead.sh
#
# A sign-in client waits BULKHEAD_RETRY_MS after an answer other than 200 before its next try.
# Results (JSON lines) in /tmp/auth_wechat_bulkhead/results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
INSTALL=${BENCH_INSTALL:-1}
[ "$INSTALL" = 0 ] || scripts/setup.sh
source scripts/lib.sh
source scripts/postgrest.sh
SECONDS_PER_PHASE=${BULKHEAD_SECONDS:-20}
CLIENTS=${BULKHEAD_CLIENTS:-50}
SLOW_MS=${BULKHEAD_SLOW_MS:-2000}
READ_RATE=${BULKHEAD_READ_RATE:-20}
RETRY_MS=${BULKHEAD_RETRY_MS:-100}
MAXES=${BULKHEAD_MAX:-"5 64"}
DIR=/tmp/auth_wechat_bulkhead

command -v node >/dev/null || { echo "bench_bulkhead: node (20+) is needed" >&2; exit 1; }
bench_build
[ -x "$POSTGREST_BIN" ] || install_postgrest
fresh_dir "$DIR"
cleanup() {
    stop_postgrest "$DIR"
    stop_all "$DIR"
}
trap cleanup EXIT

APPID=wx0123456789abcdef SECRET=0123456789abcdef0123456789abcdef
JWT_SECRET=bench-jwt-secret-with-at-least-32-characters
start_sim "$DIR" "$APPID" "$SECRET"
start_cluster "$DIR" "$JWT_SECRET" <<CONF
max_connections = 100
shared_buffers = 256MB
synchronous_commit = off
CONF

psql -d postgres -c "CREATE DATABASE rest"
psql -d rest -f sql/gotrue_schema.sql
psql -d rest <<'SQL'
CREATE ROLE authenticator LOGIN NOINHERIT;
GRANT anon, authenticated, service_role TO authenticator;
CREATE EXTENSION auth_wechat;
SELECT auth.wechat_expose() \g /dev/null
-- A plain table anyone may read: what the rest of the API serves while users sign in.
CREATE TABLE public.items (id int PRIMARY KEY, name text NOT NULL, price numeric NOT NULL);
INSERT INTO public.items SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, 5) g;
GRANT SELECT ON public.items TO anon;
SQL

echo "== PostgREST $POSTGREST_VERSION (db-pool 10)" >&2
start_postgrest "$DIR" "postgres://authenticator@127.0.0.1:$PORT/rest" "$JWT_SECRET"
echo "   $REST_URL" >&2
# Warm-up: every pooled connection opened, and a sign-in that reaches WeChat (the access token,
# the backends' HTTP helpers).
for i in $(seq 30); do curl -sf -o /dev/null "$REST_URL/items"; done
curl -sf -o /dev/null -H 'Content-Type: application/json' -d '{"code":"ok.warmup.1"}' "$REST_URL/rpc/wechat_sign_in"

set_max() {
    psql -d rest -c "ALTER SYSTEM SET auth_wechat.max_concurrent_requests = $1" -c "SELECT pg_reload_conf()" >/dev/null
    sleep 1  # idle pooled backends read the file at their next command
    [ "$(psql -d rest -At -c 'SHOW auth_wechat.max_concurrent_requests')" = "$1" ]
}

: > "$DIR/results.jsonl"
run() {  # label signin-clients
    echo "== $1: $2 sign-in client(s) (WeChat answers after ${SLOW_MS} ms), reads at ${READ_RATE}/s, ${SECONDS_PER_PHASE}s" >&2
    node bench/bulkhead.js --url "$REST_URL" --seconds "$SECONDS_PER_PHASE" --signin-clients "$2" --slow-ms "$SLOW_MS" \
        --read-rate "$READ_RATE" --retry-ms "$RETRY_MS" --label "$1" | tee -a "$DIR/results.jsonl" >&2
    sleep 3  # sign-ins still waiting on WeChat end; the bulkhead's places are back
}

run "baseline: reads alone" 0
for max in $MAXES; do
    set_max "$max"
    run "max_concurrent_requests = $max" "$CLIENTS"
done
set_max 5

node - "$DIR/results.jsonl" <<'JS'
const lines = require('node:fs').readFileSync(process.argv[2], 'utf8').trim().split('\n').map(JSON.parse);
const f = (x) => (x === null || x === undefined ? '–' : x.toFixed(1));
const counts = (o) => Object.entries(o).map(([k, v]) => `${k}: ${v}`).join(', ') || '–';
console.log('| phase | reads | read p50 ms | read p99 ms | read max ms | read errors | sign-ins by status | sign-in refusals | sign-in (200) p50 ms |');
console.log('|---|---:|---:|---:|---:|---:|---|---|---:|');
for (const r of lines) {
  console.log(`| ${r.label} | ${r.reads.sent} | ${f(r.reads.p50_ms)} | ${f(r.reads.p99_ms)} | ${f(r.reads.max_ms)} | ${r.reads.errors} | ` +
    `${counts(r.signins.statuses)} | ${counts(r.signins.errors)} | ${f(r.signins.ok_p50_ms)} |`);
}
JS
