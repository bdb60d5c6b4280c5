#!/usr/bin/env bash
# auth-wechat-import against its floor: IMPORT_RECORDS LeanCloud `_User` records (release builds)
# through the command line (batches of 1,000, each its own transaction), then a second run of the
# same file (every record `unchanged`), against a plain INSERT ... SELECT of the same users and
# identities from a staging table (no lookups, no merges, no audit: what writing the rows costs).
#
#   scripts/bench_import.sh                       100,000 records; about five minutes
#   IMPORT_RECORDS=20000 scripts/bench_import.sh
#   BENCH_INSTALL=0 scripts/bench_import.sh       the auth_wechat installed in PostgreSQL 15 as it is
#
# The export: every record has a mini-program openid (lc_weapp) and a unionid; one in five also
# a phone, one in ten an email; one in fifty is a second record of the person before it (a
# _weixin_unionid merge). A Markdown table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
INSTALL=${BENCH_INSTALL:-1}
[ "$INSTALL" = 0 ] || scripts/setup.sh
source scripts/lib.sh
RECORDS=${IMPORT_RECORDS:-100000}
DIR=/tmp/auth_wechat_bench_import

bench_build
cargo build --quiet --release -p auth-wechat-import
fresh_dir "$DIR"
trap 'stop_all "$DIR"' EXIT

# No WeChat call is made: the app's settings need only exist.
APPID=wx0123456789abcdef SECRET=0123456789abcdef0123456789abcdef API_BASE=http://127.0.0.1:9
start_cluster "$DIR" bench-jwt-secret-with-at-least-32-characters <<CONF
synchronous_commit = off
CONF
create_api_database imported
psql -d postgres -c "CREATE DATABASE floor"
psql -d floor -f sql/gotrue_schema.sql -c "CREATE EXTENSION auth_wechat"
for db in imported floor; do psql -d "$db" -c "SELECT auth.wechat_prepare_schema()" >/dev/null; done

python3 - "$RECORDS" > "$DIR/_User.jsonl" <<'PY'
import json, sys
n = int(sys.argv[1])
for i in range(n):
    person = i - 1 if i % 50 == 49 else i
    record = {"objectId": "lc%022d" % i, "username": "user%d" % i, "createdAt": "2021-03-04T05:06:07.000Z",
              "updatedAt": "2022-01-01T00:00:00.000Z", "nickName": "User %d" % i, "level": i % 7}
    if i % 50 == 49:
        record["authData"] = {"_weixin_unionid": {"uid": "oUnion%022d" % person},
                              "lc_weapp": {"openid": "oOpen%023d" % person, "session_key": "k"}}
    else:
        record["authData"] = {"lc_weapp": {"openid": "oOpen%023d" % i, "unionid": "oUnion%022d" % i, "session_key": "k"}}
        if i % 5 == 0:
            record["mobilePhoneNumber"] = "+86139%08d" % i
            record["mobilePhoneVerified"] = True
        if i % 10 == 3:
            record["email"] = "user%d@example.com" % i
            record["emailVerified"] = True
    print(json.dumps(record))
PY

importer=target/release/auth-wechat-import
run_import() {
    "$importer" --from leancloud --dsn "host=127.0.0.1 port=$PORT user=postgres dbname=imported" \
        --report "$DIR/report.jsonl" "$DIR/_User.jsonl" 2>/dev/null
}
echo "== import ($RECORDS records)" >&2
first=$(run_import)
echo "$first" >&2
echo "== again (every record unchanged)" >&2
second=$(run_import)
echo "$second" >&2

echo "== floor: load the file into a staging table, then INSERT ... SELECT users and identities" >&2
psql -d floor -c "CREATE TABLE staging (doc jsonb)" \
    -c "\\copy staging (doc) FROM '$DIR/_User.jsonl' WITH (FORMAT csv, QUOTE e'\\x01', DELIMITER e'\\x02')"
floor_start=$(date +%s.%N)
psql -d floor <<'SQL'
BEGIN;
CREATE TEMP TABLE s ON COMMIT DROP AS
    SELECT gen_random_uuid() AS id, doc FROM staging WHERE doc #>> '{authData,lc_weapp,unionid}' IS NOT NULL;
INSERT INTO auth.users (instance_id, id, aud, role, email, email_confirmed_at, phone, phone_confirmed_at,
                        encrypted_password, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
SELECT '00000000-0000-0000-0000-000000000000', id, 'authenticated', 'authenticated', lower(doc ->> 'email'),
       CASE WHEN doc ? 'email' THEN now() END, ltrim(doc ->> 'mobilePhoneNumber', '+'),
       CASE WHEN doc ? 'mobilePhoneNumber' THEN now() END, '',
       jsonb_build_object('provider', 'wechat_mini', 'providers', '["wechat_mini"]'::jsonb,
                          'imported_from', jsonb_build_object('source', 'leancloud', 'id', doc ->> 'objectId')),
       doc - 'authData' - 'objectId', (doc ->> 'createdAt')::timestamptz, now()
  FROM s;
INSERT INTO auth.identities (provider_id, user_id, identity_data, provider, created_at, updated_at)
SELECT doc #>> '{authData,lc_weapp,openid}', id,
       jsonb_build_object('sub', doc #>> '{authData,lc_weapp,openid}', 'openid', doc #>> '{authData,lc_weapp,openid}',
                          'appid', 'wx0123456789abcdef', 'unionid', doc #>> '{authData,lc_weapp,unionid}'),
       'wechat_mini', now(), now()
  FROM s;
COMMIT;
SQL
floor_end=$(date +%s.%N)

python3 - "$RECORDS" "$first" "$second" "$floor_start" "$floor_end" <<'PY'
import json, sys
records = int(sys.argv[1])
first, second = json.loads(sys.argv[2]), json.loads(sys.argv[3])
floor = float(sys.argv[5]) - float(sys.argv[4])
print("| run | records | seconds | records/s | result |")
print("|---|---:|---:|---:|---|")
print("| auth-wechat-import, first run | %d | %.1f | %.0f | imported %d, merged %d, conflicts %d, skipped %d |"
      % (records, first["seconds"], records / first["seconds"], first["imported"], first["merged"],
         first["conflicts"], first["skipped"]))
print("| auth-wechat-import, same file again | %d | %.1f | %.0f | unchanged %d |"
      % (records, second["seconds"], records / second["seconds"], second["unchanged"]))
print("| floor: INSERT ... SELECT (users, identities) | %d | %.1f | %.0f | no checks, no merges, no audit |"
      % (records, floor, records / floor))
PY
