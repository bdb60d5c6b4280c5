#!/usr/bin/env bash
# Anonymous floods through a real PostgREST (pool of 10), WeChat answering every call after
# FLOOD_LATENCY_MS (the simulator's latency hook):
#
# 1. Sign-ins: FLOOD_JUNK clients, each from its own address (X-Real-IP), send well-formed codes
#    WeChat refuses, as fast as answers come, for FLOOD_SECONDS; after FLOOD_WARMUP seconds a
#    legitimate client signs in 30 times, one sign-in a second (all while the flood goes on). Four phases: the legitimate client
#    alone; the flood with auth_wechat.rate_limit_header unset (clients not told apart, the
#    default); the flood with rate_limit_header = 'x-real-ip' (the per-client share, at the
#    default auth_wechat.client_share of 0.1); and rate_limit_header = 'x-forwarded-for' with
#    every junk request putting a random address of its own before its real one (a gateway
#    appends to what the client sent), the 30 legitimate sign-ins each from an address of its own.
# 2. Refresh: one client rotates its refresh token as fast as it can for FLOOD_REFRESH_SECONDS,
#    with auth_wechat.rate_limit_token_refresh = 0 (no budget) and at its default (150 per 5
#    minutes); rows written per phase.
#
#   scripts/bench_flood.sh                    release build; about two minutes
#   BENCH_INSTALL=0 scripts/bench_flood.sh    the auth_wechat installed in PostgreSQL 15 as it is
#   FLOOD_LATENCY_MS=250 FLOOD_JUNK=6 FLOOD_SECONDS=45 FLOOD_WARMUP=5 FLOOD_REFRESH_SECONDS=10 scripts/bench_flood.sh
#
# Results (JSON lines) in /tmp/auth_wechat_flood/results.jsonl; a Markdown table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
INSTALL=${BENCH_INSTALL:-1}
[ "$INSTALL" = 0 ] || scripts/setup.sh
source scripts/lib.sh
source scripts/postgrest.sh
LATENCY_MS=${FLOOD_LATENCY_MS:-250}
JUNK=${FLOOD_JUNK:-6}
SECONDS_PER_PHASE=${FLOOD_SECONDS:-45}
WARMUP=${FLOOD_WARMUP:-5}
REFRESH_SECONDS=${FLOOD_REFRESH_SECONDS:-10}
DIR=/tmp/auth_wechat_flood

command -v node >/dev/null || { echo "bench_flood: node (20+) is needed" >&2; exit 1; }
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
curl -sf -o /dev/null -X POST "$API_BASE/__sim/latency?ms=$LATENCY_MS"
start_cluster "$DIR" "$JWT_SECRET" <<CONF
max_connections = 100
synchronous_commit = off
CONF
create_api_database rest
start_postgrest "$DIR" "postgres://authenticator@127.0.0.1:$PORT/rest" "$JWT_SECRET"

# set NAME VALUE: ALTER SYSTEM and a reload, which PostgREST's pooled backends read at their next
# statement.
set_setting() {
    psql -d rest -c "ALTER SYSTEM SET $1 = '$2'" -c "SELECT pg_reload_conf()" >/dev/null
    sleep 1
}

: > "$DIR/results.jsonl"
signins() {  # label junk-clients [flood.js options]
    echo "== sign-ins: $1 ($2 junk clients, WeChat latency ${LATENCY_MS} ms)" >&2
    node bench/flood.js signins --url "$REST_URL" --seconds "$SECONDS_PER_PHASE" --junk-clients "$2" \
        --warmup "$WARMUP" --legit 30 --label "$1" "${@:3}" | tee -a "$DIR/results.jsonl" >&2
    sleep 2
}
signins "no flood" 0
signins "flood, rate_limit_header unset" "$JUNK"
set_setting auth_wechat.rate_limit_header x-real-ip
signins "flood, rate_limit_header = x-real-ip" "$JUNK"
set_setting auth_wechat.rate_limit_header x-forwarded-for
signins "flood spoofing x-forwarded-for, 30 legitimate addresses" "$JUNK" --header X-Forwarded-For --spoof 1 --distinct 1

rows() { psql -d rest -At -c "SELECT (SELECT count(*) FROM auth.refresh_tokens) + (SELECT count(*) FROM auth.audit_log_entries)"; }
refresh() {  # label
    echo "== refresh loop: $1" >&2
    local before after
    before=$(rows)
    node bench/flood.js refresh --url "$REST_URL" --seconds "$REFRESH_SECONDS" --label "$1" > "$DIR/refresh.json"
    after=$(rows)
    node -e 'const r = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8")); r.rows_per_s = Math.round((process.argv[3] - process.argv[2]) / r.seconds); console.log(JSON.stringify(r))' \
        "$DIR/refresh.json" "$before" "$after" | tee -a "$DIR/results.jsonl" >&2
}
set_setting auth_wechat.rate_limit_token_refresh 0
refresh "rate_limit_token_refresh = 0"
set_setting auth_wechat.rate_limit_token_refresh 150
refresh "rate_limit_token_refresh = 150 (default)"

node - "$DIR/results.jsonl" <<'JS'
const lines = require('node:fs').readFileSync(process.argv[2], 'utf8').trim().split('\n').map(JSON.parse);
const counts = (o) => Object.entries(o).map(([k, v]) => `${k}: ${v}`).join(', ') || '–';
console.log('| sign-ins | legitimate client (30 sign-ins) | junk clients |');
console.log('|---|---|---|');
for (const r of lines.filter((l) => l.mode === 'signins')) console.log(`| ${r.label} | ${counts(r.legit)} | ${counts(r.junk)} |`);
console.log('\n| refresh loop | answers | rotations/s | rows written/s |');
console.log('|---|---|---:|---:|');
for (const r of lines.filter((l) => l.mode === 'refresh')) {
  console.log(`| ${r.label} | ${counts(r.answers)} | ${r.rotations_per_s} | ${r.rows_per_s} |`);
}
JS
