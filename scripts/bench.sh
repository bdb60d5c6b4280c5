#!/usr/bin/env bash
# The benchmark: the extension's functions against the floor (the same writes without HTTP or
# JWT) and a careful PL/Python sign-in, side by side on one release build, one cluster and one
# WeChat simulator, with pgbench at 1, 4 and 16 clients. Prints the table of BENCHMARKS.md.
#
#   scripts/bench.sh                 10 s per case and client count
#   BENCH_SECONDS=30 scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/lib.sh
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
CLIENTS=${BENCH_CLIENTS:-"1 4 16"}
CASES=${BENCH_CASES:-"ext_new floor_new plpython_new ext_returning floor_returning plpython_returning bind_account bind_phone refresh"}
DIR=/tmp/auth_wechat_bench
RESULTS=$DIR/results

missing=()
for pkg in postgresql-plpython3-15 python3-jwt; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then apt-get install -y -qq "${missing[@]}" >/dev/null; else sudo apt-get install -y -qq "${missing[@]}" >/dev/null; fi
fi

echo "== release build" >&2
install_extension --release
fresh_dir "$DIR"
mkdir -p "$RESULTS"
[ "$(id -u)" = 0 ] && chown postgres "$RESULTS"
APPID=wx0123456789abcdef SECRET=0123456789abcdef0123456789abcdef
start_sim "$DIR" "$APPID" "$SECRET"
start_cluster "$DIR" <<CONF
max_connections = 100
shared_buffers = 512MB
synchronous_commit = off
auth_wechat.appid = '$APPID'
auth_wechat.secret = '$SECRET'
auth_wechat.api_base = '$API_BASE'
auth_wechat.jwt_secret = 'bench-jwt-secret-with-at-least-32-characters'
CONF
trap 'stop_all "$DIR"' EXIT

psql() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres "$@"; }
psql -d postgres -c "CREATE DATABASE bench"
psql -d bench -f sql/gotrue_schema.sql
psql -d bench -c "CREATE EXTENSION auth_wechat" -f bench/setup.sql
# One session per pgbench client for the refresh case.
psql -d bench <<'SQL'
SET ROLE anon;
CREATE TEMP TABLE s AS SELECT g - 1 AS client_id, auth.wechat_sign_in('ok.refresh' || g || '.x') AS session
  FROM generate_series(1, 16) g;
RESET ROLE;
INSERT INTO bench.tokens SELECT client_id, session ->> 'refresh_token' FROM s;
SQL

sim_stat() {
    python3 - "$API_BASE" "$1" <<'PY'
import json, sys, urllib.request
stats = json.load(urllib.request.urlopen(sys.argv[1] + "/__sim/stats"))
what = sys.argv[2]
print(stats["connections"] if what == "connections" else sum(stats["calls"].values()) if what == "calls"
      else stats["calls"].get("/cgi-bin/stable_token", 0) + stats["calls"].get("/cgi-bin/token", 0))
PY
}

echo "== bare HTTP round trip" >&2
python3 - "$API_BASE" "$APPID" "$SECRET" > "$RESULTS/http.tsv" <<'PY'
import http.client, statistics, sys, time, urllib.parse
base = urllib.parse.urlsplit(sys.argv[1])
conn = http.client.HTTPConnection(base.hostname, base.port)
times = []
for i in range(3000):
    query = urllib.parse.urlencode({"appid": sys.argv[2], "secret": sys.argv[3], "js_code": f"invalid.rtt{i}",
                                    "grant_type": "authorization_code"})
    start = time.perf_counter_ns()
    conn.request("GET", "/sns/jscode2session?" + query)
    conn.getresponse().read()
    times.append(time.perf_counter_ns() - start)
times.sort()
print(times[len(times) // 2] / 1000, times[int(len(times) * 0.99)] / 1000)  # µs
PY

: > "$RESULTS/runs.tsv"
for clients in $CLIENTS; do
    for case in $CASES; do
        echo "== $case, $clients client(s), ${SECONDS_PER_RUN}s" >&2
        conns_before=$(sim_stat connections) calls_before=$(sim_stat calls)
        out=$(cd "$RESULTS" && "$BIN/pgbench" -n -h 127.0.0.1 -p "$PORT" -U postgres -c "$clients" \
            -j "$(( clients < 4 ? clients : 4 ))" -T "$SECONDS_PER_RUN" -f "$OLDPWD/bench/$case.sql" \
            --log --log-prefix="${case}_${clients}" bench 2>&1) || { echo "$out" >&2; exit 1; }
        tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -n 1)
        failed=$(echo "$out" | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p')
        [ "${failed:-0}" = 0 ] || { echo "$out" >&2; exit 1; }
        printf '%s\t%s\t%s\t%s\t%s\n' "$case" "$clients" "$tps" \
            "$(( $(sim_stat connections) - conns_before ))" "$(( $(sim_stat calls) - calls_before ))" >> "$RESULTS/runs.tsv"
    done
done
printf 'token_fetches\t%s\nconnections\t%s\n' "$(sim_stat tokens)" "$(sim_stat connections)" > "$RESULTS/totals.tsv"
python3 bench/report.py "$RESULTS"
