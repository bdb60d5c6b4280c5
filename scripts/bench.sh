#!/usr/bin/env bash
# The benchmark: the extension's functions against the floor (the same writes without HTTP or
# JWT) and a careful PL/Python sign-in, side by side on one release build, one cluster and one
# WeChat simulator, with pgbench at 1, 4 and 16 clients. Prints the table of BENCHMARKS.md.
# Besides tps and latency, every run measures the CPU the backends burnt per transaction (the
# postmaster's reaped-children CPU over the run: backends exit when pgbench ends) and the
# simulator's (its own utime+stime).
#
#   scripts/bench.sh                 10 s per case and client count (about 8 minutes)
#   BENCH_SECONDS=30 scripts/bench.sh
#   BENCH_CLIENTS="4" BENCH_CASES="ext_new floor_new" scripts/bench.sh
#   BENCH_ROUNDS=3 scripts/bench.sh  every case and client count three times, interleaved (round 1
#                                    of all, then round 2...); the report takes medians, and each
#                                    ratio is the median of the rounds' ratios
#   BENCH_INSTALL=0 scripts/bench.sh use the auth_wechat already installed in PostgreSQL 15 (no
#                                    setup, no release build: a dry run of the script with
#                                    whatever build is there)
#   BENCH_PERF=1 scripts/bench.sh    also profiles each run (perf record -e cpu-clock -g, whole
#                                    machine) into results/<case>_<clients>.perf; read the backends'
#                                    share with: perf report -i FILE --comm postgres -n --no-children
#   BENCH_SCALE=1 scripts/bench.sh   the scale run: first fills the tables (bench/scale_fill.sql:
#                                    1 M users, 5 M refresh tokens in 1 M sessions, 10 M audit
#                                    rows; BENCH_SCALE_USERS / BENCH_SCALE_TOKENS_PER_SESSION /
#                                    BENCH_SCALE_AUDIT change the sizes), then the same runs; its
#                                    report compares them with the last normal run's results
#                                    (BENCH_COMPARE=<results dir>, default
#                                    /tmp/auth_wechat_bench/results)
#
# Results: /tmp/auth_wechat_bench/results (scale run: /tmp/auth_wechat_bench_scale/results),
# including explain.txt, the plans of the extension's statements (bench/explain.py).
set -euo pipefail
cd "$(dirname "$0")/.."
INSTALL=${BENCH_INSTALL:-1}
SCALE=${BENCH_SCALE:-0}
# PL/Python and PyJWT for the PL/Python peer (bench/setup.sql).
[ "$INSTALL" = 0 ] || SETUP_EXTRA_PACKAGES="postgresql-plpython3-15 python3-jwt" scripts/setup.sh
source scripts/lib.sh
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-1}
CLIENTS=${BENCH_CLIENTS:-"1 4 16"}
CASES=${BENCH_CASES:-"ext_new floor_new plpython_new ext_returning floor_returning plpython_returning bind_account bind_phone refresh floor_refresh"}
if [ "$SCALE" = 0 ]; then DIR=${BENCH_DIR:-/tmp/auth_wechat_bench}; else DIR=${BENCH_DIR:-/tmp/auth_wechat_bench_scale}; fi
RESULTS=$DIR/results
COMPARE=${BENCH_COMPARE:-}
if [ "$SCALE" != 0 ] && [ -z "$COMPARE" ] && [ -f /tmp/auth_wechat_bench/results/runs.tsv ]; then
    COMPARE=/tmp/auth_wechat_bench/results
fi

bench_build
if [ -n "$COMPARE" ] && [ -f "$COMPARE/runs.tsv" ]; then
    # fresh_dir empties DIR: keep the baseline if it lives there.
    case $COMPARE in "$DIR"/*) cp -r "$COMPARE" "/tmp/auth_wechat_bench_compare.$$"; COMPARE=/tmp/auth_wechat_bench_compare.$$ ;; esac
fi
fresh_dir "$DIR"
mkdir -p "$RESULTS"
[ "$(id -u)" = 0 ] && chown postgres "$RESULTS"
APPID=wx0123456789abcdef SECRET=0123456789abcdef0123456789abcdef
start_sim "$DIR" "$APPID" "$SECRET"
# autovacuum off: its workers are children of the postmaster too, and would land in the CPU of
# whichever run they ran in; the script vacuums between runs instead. Checkpoints: one before
# each run, none inside it (a run is far shorter than checkpoint_timeout and max_wal_size).
start_cluster "$DIR" bench-jwt-secret-with-at-least-32-characters <<CONF
# Each refresh case rotates a few sessions thousands of times: no per-session budget here.
auth_wechat.rate_limit_token_refresh = 0
max_connections = 100
shared_buffers = 512MB
synchronous_commit = off
autovacuum = off
max_wal_size = 16GB
checkpoint_timeout = 1h
max_parallel_workers_per_gather = 0
# The benchmark measures throughput, not the bulkhead (scripts/bench_bulkhead.sh does): room for 16 clients.
auth_wechat.max_concurrent_requests = 64
CONF
trap 'stop_all "$DIR"' EXIT

create_bench_database
if [ "$SCALE" != 0 ]; then
    echo "== scale: filling the tables (bench/scale_fill.sql)" >&2
    index_defs() { psql -d bench -At -c "SELECT indexdef FROM pg_indexes WHERE schemaname = 'auth' ORDER BY 1"; }
    index_defs > "$RESULTS/indexes.before"
    fill_start=$(date +%s.%N)
    psql -d bench -v users="${BENCH_SCALE_USERS:-1000000}" -v tokens_per_session="${BENCH_SCALE_TOKENS_PER_SESSION:-5}" \
        -v audit="${BENCH_SCALE_AUDIT:-10000000}" -f bench/scale_fill.sql > "$RESULTS/scale_fill.log"
    fill_end=$(date +%s.%N)
    index_defs > "$RESULTS/indexes.after"
    diff "$RESULTS/indexes.before" "$RESULTS/indexes.after" >&2 || { echo "bench: the fill changed the indexes" >&2; exit 1; }
    psql -d bench -c "VACUUM (ANALYZE)" -c "CHECKPOINT"
    vacuum_end=$(date +%s.%N)
    psql -d bench -At -F $'\t' > "$RESULTS/scale.tsv" <<SQL
SELECT 'fill_seconds', round(($fill_end - $fill_start)::numeric, 1)
UNION ALL SELECT 'vacuum_analyze_seconds', round(($vacuum_end - $fill_end)::numeric, 1)
UNION ALL SELECT 'users', count(*) FROM auth.users
UNION ALL SELECT 'identities', count(*) FROM auth.identities
UNION ALL SELECT 'sessions', count(*) FROM auth.sessions
UNION ALL SELECT 'refresh_tokens', count(*) FROM auth.refresh_tokens
UNION ALL SELECT 'audit_log_entries', count(*) FROM auth.audit_log_entries
UNION ALL SELECT 'database_mb', pg_database_size('bench') / 1048576;
SQL
    sed 's/^/   /' "$RESULTS/scale.tsv" >&2
fi
# A project that already has users: the normal run loads the same fill at a hundredth of the
# scale run's size (10,000 users, sessions and identities, 50,000 refresh tokens, 100,000 audit
# rows). On near-empty tables the statistics, and so the plans every backend caches at a run's
# start, would say "no rows" while the run grows them: a run's figures would then depend on which
# cases ran before it.
if [ "$SCALE" = 0 ]; then
    psql -d bench -v users=10000 -v tokens_per_session=5 -v audit=100000 -f bench/scale_fill.sql > "$RESULTS/seed_fill.log"
fi
# One session per pgbench client for the refresh cases: the extension's, and the floor's.
psql -d bench <<'SQL'
SET ROLE anon;
CREATE TEMP TABLE s AS SELECT g - 1 AS client_id, auth.wechat_sign_in('ok.refresh' || g || '.x') AS session
  FROM generate_series(1, 16) g;
CREATE TEMP TABLE f AS SELECT g - 1 AS client_id, bench.floor_sign_in('ofrefresh' || g) AS session
  FROM generate_series(1, 16) g;
RESET ROLE;
INSERT INTO bench.tokens SELECT client_id, session ->> 'refresh_token' FROM s;
INSERT INTO bench.floor_tokens SELECT client_id, session ->> 'refresh_token' FROM f;
SQL

# CPU accounting, in clock ticks. The postmaster's cutime+cstime (fields 16 and 17 of
# /proc/<pid>/stat) grow when it reaps a child: a backend's CPU is counted once the backend has
# exited. So: wait until the postmaster has no child but its long-lived auxiliary processes (as
# many as when idle), read, run pgbench, wait again, read. The simulator is one process: its own
# utime+stime (fields 14 and 15, all threads).
CLK_TCK=$(getconf CLK_TCK)
POSTMASTER=$(head -n 1 "$DIR/data/postmaster.pid")
SIM_PID=$(cat "$DIR/sim.pid")
stat_fields() { local s; s=$(cat "/proc/$1/stat"); s=${s##*) }; echo "$s"; }  # fields 3.. (after the name)
children_ticks() { local f; read -ra f <<< "$(stat_fields "$1")"; echo $(( f[13] + f[14] )); }
own_ticks() { local f; read -ra f <<< "$(stat_fields "$1")"; echo $(( f[11] + f[12] )); }
postmaster_children() { { pgrep -P "$POSTMASTER" || true; } | wc -l; }
sleep 1
AUX_CHILDREN=$(postmaster_children)
wait_reaped() {
    for _ in $(seq 600); do
        [ "$(postmaster_children)" -le "$AUX_CHILDREN" ] && return 0
        sleep 0.05
    done
    echo "bench: the postmaster still has $(postmaster_children) children (idle: $AUX_CHILDREN)" >&2
    return 1
}

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
for round in $(seq "$ROUNDS"); do
for clients in $CLIENTS; do
    for case in $CASES; do
        echo "== $case, $clients client(s), ${SECONDS_PER_RUN}s (round $round of $ROUNDS)" >&2
        # What autovacuum would have done, and a checkpoint, outside the measured window.
        psql -d bench -c "VACUUM (ANALYZE)" -c "CHECKPOINT"
        conns_before=$(sim_stat connections) calls_before=$(sim_stat calls)
        wait_reaped
        backend_before=$(children_ticks "$POSTMASTER") sim_before=$(own_ticks "$SIM_PID")
        profile=()
        [ "${BENCH_PERF:-0}" = 0 ] || profile=(perf record -q -e cpu-clock -g -a -o "$RESULTS/${case}_${clients}.perf" --)
        out=$(cd "$RESULTS" && "${profile[@]}" "$BIN/pgbench" -n -h 127.0.0.1 -p "$PORT" -U postgres -c "$clients" \
            -j "$(( clients < 4 ? clients : 4 ))" -T "$SECONDS_PER_RUN" -f "$OLDPWD/bench/$case.sql" \
            --log --log-prefix="${case}_${clients}" bench 2>&1) || { echo "$out" >&2; exit 1; }
        wait_reaped
        backend_ticks=$(( $(children_ticks "$POSTMASTER") - backend_before )) sim_ticks=$(( $(own_ticks "$SIM_PID") - sim_before ))
        tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -n 1)
        failed=$(echo "$out" | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p')
        txns=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
        [ "${failed:-0}" = 0 ] || { echo "$out" >&2; exit 1; }
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$case" "$clients" "$tps" \
            "$(( $(sim_stat connections) - conns_before ))" "$(( $(sim_stat calls) - calls_before ))" \
            "$txns" "$backend_ticks" "$sim_ticks" "$round" >> "$RESULTS/runs.tsv"
        echo "   tps $tps; CPU per transaction: backends $(( backend_ticks * 1000000 / CLK_TCK / (txns > 0 ? txns : 1) )) µs, simulator $(( sim_ticks * 1000000 / CLK_TCK / (txns > 0 ? txns : 1) )) µs" >&2
    done
done
done
printf 'token_fetches\t%s\nconnections\t%s\nclk_tck\t%s\nseconds_per_run\t%s\nscale\t%s\n' "$(sim_stat tokens)" \
    "$(sim_stat connections)" "$CLK_TCK" "$SECONDS_PER_RUN" "$SCALE" > "$RESULTS/totals.tsv"
echo "== plans of the extension's statements" >&2
# The plans the extension's statements run with, logged by auto_explain (bench/explain.py): on
# for new sessions only now, after the measured runs; each of the extension's cases runs a few
# dozen calls, then bench/explain_calls.sql the calls no case makes.
psql -d bench -c "ANALYZE"
cat >> "$DIR/data/postgresql.conf" <<'CONF'
session_preload_libraries = 'auto_explain'
auto_explain.log_min_duration = 0
auto_explain.log_nested_statements = on
auto_explain.log_format = 'json'
CONF
psql -d bench -c "SELECT pg_reload_conf()" > /dev/null
for case in ext_new ext_returning bind_account bind_phone refresh; do
    (cd "$RESULTS" && "$BIN/pgbench" -n -h 127.0.0.1 -p "$PORT" -U postgres -c 1 -t 30 -f "$OLDPWD/bench/$case.sql" bench > /dev/null)
done
psql -d bench -f bench/explain_calls.sql
python3 bench/explain.py "$DIR/server.log" > "$RESULTS/explain.txt"
echo "   $RESULTS/explain.txt" >&2
python3 bench/report.py "$RESULTS" ${COMPARE:+"$COMPARE"}
