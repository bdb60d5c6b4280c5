# Shell helpers shared by the scripts: a throw-away PostgreSQL cluster (15 unless PG_CONFIG says
# otherwise) and the WeChat simulator, both on free loopback ports, in one directory; psql on that
# cluster; the builds. Source it; it sets PG_CONFIG and BIN.

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
BIN=$("$PG_CONFIG" --bindir)

# Postgres refuses to run as root: its programs run as the postgres user when we are root.
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# install_extension [--release]: builds auth_wechat for the PostgreSQL of $PG_CONFIG (15 by
# default) and installs it there.
install_extension() {
    local sudo_flag=() log major
    [ "$(id -u)" = 0 ] || sudo_flag=(--sudo)
    major=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
    log=$(mktemp)
    if ! cargo pgrx install --pg-config "$PG_CONFIG" --no-default-features --features "pg$major" \
            "${sudo_flag[@]}" "$@" > "$log" 2>&1; then
        cat "$log"; rm -f "$log"; return 1
    fi
    rm -f "$log"
}

# The released versions the upgrade test starts from, each with the commit it was released from
# (CHANGELOG.md's headings name them; git tags v<version> mark them where tags travel).
OLD_RELEASES=("0.1.0 182df34" "0.2.0 f983b0c")

# install_old_releases: builds each of OLD_RELEASES as it was, for the PostgreSQL of $PG_CONFIG (a
# debug build; one cargo target directory, target/old_release/target, serves every release and
# major, so the dependencies compile once per major), keeps its library in
# target/old_release/<version>/pgN/lib, and puts its install script (auth_wechat--<version>.sql)
# beside the current ones in the server's extension directory. Built once: a later run reuses them.
# Sets OLD_RELEASE_LIBDIRS to "<version>=<libdir> ...", as the upgrade test reads it. Needs the
# commits in this clone's history.
install_old_releases() {
    local major sharedir pkglibdir release version commit dir log target
    major=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
    sharedir=$("$PG_CONFIG" --sharedir)
    pkglibdir=$("$PG_CONFIG" --pkglibdir)
    target=$PWD/target/old_release/target
    OLD_RELEASE_LIBDIRS=""
    for release in "${OLD_RELEASES[@]}"; do
        read -r version commit <<< "$release"
        dir=$PWD/target/old_release/$version/pg$major
        if [ ! -f "$dir/lib/auth_wechat.so" ] || [ ! -f "$dir/auth_wechat--$version.sql" ]; then
            if ! git cat-file -e "$commit^{commit}" 2>/dev/null; then
                echo "install_old_releases: commit $commit ($version) is not in this clone (a shallow clone?)" >&2
                return 1
            fi
            rm -rf "$dir"
            mkdir -p "$dir/src" "$dir/lib"
            git archive "$commit" | tar -x -C "$dir/src"
            log=$(mktemp)
            if ! (cd "$dir/src" && CARGO_TARGET_DIR="$target" cargo pgrx package --debug --pg-config "$PG_CONFIG" \
                    --no-default-features --features "pg$major" --out-dir "$dir/package") > "$log" 2>&1; then
                cat "$log"; rm -f "$log"; return 1
            fi
            rm -f "$log"
            cp "$dir/package$pkglibdir/auth_wechat.so" "$dir/lib/"
            cp "$dir/package$sharedir/extension/auth_wechat--$version.sql" "$dir/"
            rm -rf "$dir/src" "$dir/package"
        fi
        if [ "$(id -u)" = 0 ]; then
            install -m 0644 "$dir/auth_wechat--$version.sql" "$sharedir/extension/"
        else
            sudo install -m 0644 "$dir/auth_wechat--$version.sql" "$sharedir/extension/"
        fi
        OLD_RELEASE_LIBDIRS="$OLD_RELEASE_LIBDIRS $version=$dir/lib"
    done
    OLD_RELEASE_LIBDIRS=${OLD_RELEASE_LIBDIRS# }
}

# fresh_dir DIR: stops what a previous run left in DIR, then empties it.
fresh_dir() {
    local dir=$1
    if [ -f "$dir/data/postmaster.pid" ]; then as_postgres "$BIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; fi
    if [ -f "$dir/sim.pid" ]; then kill "$(cat "$dir/sim.pid")" 2>/dev/null || true; fi
    rm -rf "$dir"
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
}

# start_sim DIR APPID SECRET [--app ID:SECRET]...: runs the simulator in the background, serving
# that app (and the others); sets API_BASE.
start_sim() {
    local dir=$1
    cargo build --quiet --release -p wechat-sim
    target/release/wechat-sim --appid "$2" --secret "$3" "${@:4}" > "$dir/sim.out" 2>&1 &
    echo $! > "$dir/sim.pid"
    for _ in $(seq 100); do [ -s "$dir/sim.out" ] && break; sleep 0.1; done
    API_BASE=$(head -n 1 "$dir/sim.out")
}

# start_cluster DIR [JWT_SECRET] < extra-postgresql.conf-lines: initdb, the lines (with
# JWT_SECRET, first the settings of the app start_sim serves: app_settings), start; sets PORT.
# Settings (secrets included) go into the server's own config file before it starts: see the
# security notes on reloads (docs/security.md).
start_cluster() {
    local dir=$1 jwt_secret=${2:-}
    PORT=$(free_port)
    as_postgres "$BIN/initdb" -D "$dir/data" -A trust -U postgres --no-sync -E UTF8 >/dev/null
    {
        echo "port = $PORT"
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$dir'"
        echo "shared_preload_libraries = 'auth_wechat'"
        [ -z "$jwt_secret" ] || app_settings "$jwt_secret"
        cat
    } >> "$dir/data/postgresql.conf"
    as_postgres "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
}

# app_settings JWT_SECRET: postgresql.conf lines for the app start_sim serves ($APPID, $SECRET at
# $API_BASE) and an HS256 secret.
app_settings() {
    printf "auth_wechat.appid = '%s'\nauth_wechat.secret = '%s'\nauth_wechat.api_base = '%s'\nauth_wechat.jwt_secret = '%s'\n" \
        "$APPID" "$SECRET" "$API_BASE" "$1"
}

# psql ARGS...: psql as the cluster's superuser on the cluster of start_cluster, stopping at the
# first error.
psql() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres "$@"; }

# create_api_database DB: in the cluster of start_cluster, a database with the GoTrue-compatible
# schema, PostgREST's `authenticator` role, the extension, and its functions exposed in `public`.
create_api_database() {
    psql -d postgres -c "CREATE DATABASE $1"
    psql -d "$1" -f sql/gotrue_schema.sql
    psql -d "$1" <<'SQL'
CREATE ROLE authenticator LOGIN NOINHERIT;
GRANT anon, authenticated, service_role TO authenticator;
CREATE EXTENSION auth_wechat;
SELECT auth.wechat_expose() \g /dev/null
SQL
}

# create_bench_database: in the cluster of start_cluster, the database `bench` with the
# GoTrue-compatible schema, the extension and bench/setup.sql (the floors, the PL/Python peer).
create_bench_database() {
    psql -d postgres -c "CREATE DATABASE bench"
    psql -d bench -f sql/gotrue_schema.sql
    psql -d bench -c "CREATE EXTENSION auth_wechat" -f bench/setup.sql
}

# bench_build: for a benchmark, the release build installed; with BENCH_INSTALL=0 the build that
# is installed, as it is.
bench_build() {
    if [ "${BENCH_INSTALL:-1}" = 0 ]; then
        echo "== BENCH_INSTALL=0: using the auth_wechat installed in $("$PG_CONFIG" --version) as it is" >&2
    else
        echo "== release build" >&2
        install_extension --release
    fi
}

# stop_all DIR: the cluster and the simulator.
stop_all() {
    as_postgres "$BIN/pg_ctl" -D "$1/data" -m fast stop >/dev/null 2>&1 || true
    if [ -f "$1/sim.pid" ]; then kill "$(cat "$1/sim.pid")" 2>/dev/null || true; fi
}
