#!/usr/bin/env bash
# The test command: sets up the machine, checks formatting and runs clippy on every major, runs
# the simulator's tests, then on each supported PostgreSQL major (scripts/majors.sh) the
# in-backend unit tests (`cargo pgrx test`), installs the extension, builds the released versions
# for the upgrade test, and runs the integration tests (their own
# throw-away clusters + the WeChat simulator); then the JavaScript SDK tests (scripts/js_test.sh)
# against the first major.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/majors.sh
source scripts/lib.sh

# limited MINUTES COMMAND...: a step that hangs fails the run instead of holding CI until its own
# limit; every step is bounded, and all of them together stay well inside CI's 90 minutes.
limited() {
    local minutes=$1
    shift
    timeout --kill-after=30s "${minutes}m" "$@"
}

# pgrx refuses to run Postgres as root: give its clusters a directory the postgres user owns.
pgdata=$(mktemp -d /tmp/auth_wechat_pgtest.XXXXXX)
trap 'rm -rf "$pgdata"' EXIT
chown postgres "$pgdata" 2>/dev/null || sudo chown postgres "$pgdata"

# The lint gate first: the code is clean, and stays so.
echo "== cargo fmt --check"
cargo fmt --check
for major in "${MAJORS[@]}"; do
    echo "== PostgreSQL $major: cargo clippy (every target, warnings are errors)"
    cargo clippy --workspace --all-targets --no-default-features --features "pg$major" -- -D warnings
done

echo "== simulator tests"
cargo test -p wechat-sim --lib

for major in "${MAJORS[@]}"; do
    PG_CONFIG=$(pg_config_for "$major")
    echo "== PostgreSQL $major: unit tests (cargo pgrx test)"
    limited 15 cargo pgrx test "pg$major" --runas postgres --pgdata "$pgdata/$major"

    echo "== PostgreSQL $major: install the extension, and build the released versions for the upgrade test"
    install_extension
    install_old_releases

    # --include-ignored: the trials that need what only this script provides (the old release)
    # are ignored elsewhere, and must run here.
    echo "== PostgreSQL $major: integration tests"
    cargo build --quiet -p auth-wechat-import
    PG_CONFIG="$PG_CONFIG" AUTH_WECHAT_OLD_RELEASES="$OLD_RELEASE_LIBDIRS" \
        limited 15 cargo test -p auth_wechat_tests --test integration -- --include-ignored
done

# The SDKs are JavaScript and see only HTTP: once, on the first major.
echo "== supabase-js and MemFire's SDK through the adapter and a real PostgREST"
PG_CONFIG=$(pg_config_for "${MAJORS[0]}") limited 15 scripts/js_test.sh
