#!/usr/bin/env bash
# Instructions per call: what a shared machine's noise cannot move. Each case (the extension's
# refresh, returning and new sign-in, and their PL/pgSQL floors) runs in a loop inside one
# single-user backend under callgrind, twice (WARM and WARM + CALLS calls), counting only the
# instructions inside the called SECURITY DEFINER function (fmgr_security_definer: the statements,
# the Rust or PL/pgSQL around them; not parsing the call or sending its answer). The difference of
# the two runs over CALLS is the cost of one warm call, first-call set-up excluded; it does not
# move between runs (within 0.1 %; the sign-ins within about 1 %, as their wait for WeChat
# polls). User-space instructions only: the kernel's work for the WeChat exchange is not in it,
# which is why pgbench's CPU figures (scripts/bench.sh) stay the targets' measure.
#
#   scripts/bench_instructions.sh            (about 3 minutes plus a release build)
#   BENCH_INSTALL=0 scripts/bench_instructions.sh   the installed build, no setup
#
# Needs valgrind: scripts/setup.sh installs it for this script.
set -euo pipefail
cd "$(dirname "$0")/.."
INSTALL=${BENCH_INSTALL:-1}
[ "$INSTALL" = 0 ] || SETUP_EXTRA_PACKAGES="valgrind postgresql-plpython3-15 python3-jwt" scripts/setup.sh
source scripts/lib.sh
command -v valgrind >/dev/null || { echo "bench_instructions: valgrind is missing (run without BENCH_INSTALL=0)" >&2; exit 1; }
[ "$INSTALL" = 0 ] || install_extension --release
WARM=${BENCH_WARM:-20}
CALLS=${BENCH_CALLS:-200}
DIR=/tmp/auth_wechat_instructions
fresh_dir "$DIR"
APPID=wx0123456789abcdef SECRET=0123456789abcdef0123456789abcdef
start_sim "$DIR" "$APPID" "$SECRET"
start_cluster "$DIR" bench-jwt-secret-with-at-least-32-characters <<CONF
# Each refresh case rotates a few sessions thousands of times: no per-session budget here.
auth_wechat.rate_limit_token_refresh = 0
shared_buffers = 512MB
synchronous_commit = off
autovacuum = off
CONF
trap 'stop_all "$DIR"' EXIT
create_bench_database
# The tables of scripts/bench.sh's normal run, and one session for each refresh loop.
psql -d bench -v users=10000 -v tokens_per_session=5 -v audit=100000 -f bench/scale_fill.sql > /dev/null
psql -d bench <<'SQL'
INSERT INTO bench.tokens VALUES (0, auth.wechat_sign_in('ok.instructions.x') ->> 'refresh_token');
INSERT INTO bench.floor_tokens VALUES (0, bench.floor_sign_in('ofinstructions') ->> 'refresh_token');
VACUUM (ANALYZE);
SQL
as_postgres "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null

# call CASE K: the SQL expression of call K of a case (each sign-in code is used once).
call() {
    case $1 in
        refresh) echo "t := auth.wechat_refresh_session(t) ->> 'refresh_token'" ;;
        floor_refresh) echo "t := bench.floor_refresh(t) ->> 'refresh_token'" ;;
        ext_returning) echo "j := auth.wechat_sign_in('ok.returning.$2-' || k)" ;;
        floor_returning) echo "j := bench.floor_sign_in('ofreturning')" ;;
        ext_new) echo "j := auth.wechat_sign_in('ok.new$2-' || k || '.x')" ;;
        floor_new) echo "j := bench.floor_sign_in('ofnew$2-' || k)" ;;
    esac
}
# instructions CASE N: inside the called function, over N calls, in a transaction rolled back.
instructions() {
    local out="$DIR/callgrind.$1.$2" table=tokens
    [ "$1" = floor_refresh ] && table=floor_tokens
    cat > "$DIR/loop.sql" <<SQL
BEGIN;
SELECT set_config('request.headers', '{"user-agent":"bench"}', true);
DO \$\$ DECLARE t text; j jsonb; BEGIN
    SELECT token INTO t FROM bench.$table WHERE client_id = 0;
    FOR k IN 1..$2 LOOP $(call "$1" "$2"); END LOOP;
END \$\$;
ROLLBACK;
SQL
    chmod 644 "$DIR/loop.sql"
    as_postgres valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect=fmgr_security_definer \
        "$BIN/postgres" --single -D "$DIR/data" -j bench < "$DIR/loop.sql" > "$DIR/callgrind.log" 2>&1
    if grep -q ERROR "$DIR/callgrind.log"; then grep ERROR "$DIR/callgrind.log" >&2; exit 1; fi
    sed -n 's/^summary: //p' "$out"
}

printf '| case | instructions per call |\n|---|---:|\n'
declare -A PER
for case in refresh floor_refresh ext_returning floor_returning ext_new floor_new; do
    warm=$(instructions "$case" "$WARM") all=$(instructions "$case" $((WARM + CALLS)))
    PER[$case]=$(( (all - warm) / CALLS ))
    printf '| %s | %d |\n' "$case" "${PER[$case]}"
done
printf '\n| ratio | instructions |\n|---|---:|\n'
for pair in refresh:floor_refresh ext_returning:floor_returning ext_new:floor_new; do
    printf '| %s ÷ %s | %s |\n' "${pair%:*}" "${pair#*:}" \
        "$(python3 -c "print(f'{${PER[${pair%:*}]} / ${PER[${pair#*:}]}:.3f}')")"
done
