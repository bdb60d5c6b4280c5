#!/usr/bin/env bash
# The test command: sets up the machine, runs the in-backend unit tests (`cargo pgrx test`), the
# simulator's tests, installs the extension into the system PostgreSQL 15 and runs the
# integration tests (their own throw-away cluster + the WeChat simulator).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/lib.sh

# pgrx refuses to run Postgres as root: give its cluster a directory the postgres user owns.
pgdata=$(mktemp -d /tmp/auth_wechat_pgtest.XXXXXX)
trap 'rm -rf "$pgdata"' EXIT
chown postgres "$pgdata" 2>/dev/null || sudo chown postgres "$pgdata"

echo "== unit tests (cargo pgrx test)"
cargo pgrx test pg15 --runas postgres --pgdata "$pgdata/data"

echo "== simulator tests"
cargo test -p wechat-sim --lib

echo "== install the extension"
install_extension

echo "== integration tests"
PG_CONFIG="$PG_CONFIG" cargo test -p auth_wechat_tests --test integration
