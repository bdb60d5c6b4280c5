//! CREATE EXTENSION on GoTrue's schema, on MemFire's, before GoTrue's tables and on a plain
//! database; DROP EXTENSION keeps user data.

use crate::{cluster, sign_in, trial};
use auth_wechat_tests::cluster::GOTRUE_SCHEMA;
use auth_wechat_tests::{code, APPID};
use libtest_mimic::Trial;

pub fn tests() -> Vec<Trial> {
    vec![
        trial("schema::gotrue_schema_gains_wechat_columns", gotrue_schema_gains_wechat_columns),
        trial("schema::memfire_schema_with_empty_ids_works", memfire_schema_with_empty_ids_works),
        trial("schema::plain_database_is_refused_clearly", plain_database_is_refused_clearly),
        trial(
            "schema::extension_before_gotrues_tables_works_once_they_exist",
            extension_before_gotrues_tables_works_once_they_exist,
        ),
        trial("schema::drop_extension_keeps_user_data", drop_extension_keeps_user_data),
    ]
}

fn gotrue_schema_gains_wechat_columns() {
    let db = cluster().database(true);
    let mut admin = db.superuser();
    let columns: Vec<(String, String, Option<String>)> = admin
        .query(
            "SELECT column_name::text, data_type::text, column_default::text FROM information_schema.columns
              WHERE table_schema = 'auth' AND table_name = 'users' AND column_name LIKE 'wechat%' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(columns.len(), 3);
    assert_eq!(columns[0].0, "wechat_id");
    assert_eq!(columns[1].0, "wechat_unionid");
    assert!(columns[..2]
        .iter()
        .all(|c| c.1 == "character varying" && c.2.as_deref().is_some_and(|d| d.starts_with("''"))));
    assert_eq!(
        (columns[2].0.as_str(), columns[2].1.as_str()),
        ("wechat_unlinked", "ARRAY"),
        "the openids a user unlinked"
    );
    let index: String =
        admin.query_one("SELECT pg_get_indexdef('auth.users_wechat_id_key'::regclass)", &[]).unwrap().get(0);
    assert!(index.starts_with("CREATE UNIQUE INDEX") && index.contains("WHERE"), "{index}");
}

fn memfire_schema_with_empty_ids_works() {
    let db = cluster().database(false);
    let mut admin = db.superuser();
    admin.batch_execute(GOTRUE_SCHEMA).unwrap();
    admin
        .batch_execute(
            "ALTER TABLE auth.users ADD COLUMN wechat_id varchar(255) DEFAULT '', ADD COLUMN wechat_unionid varchar(255) DEFAULT '';
             INSERT INTO auth.users (instance_id, id, aud, role, phone, wechat_id, wechat_unionid, raw_app_meta_data)
             SELECT '00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated', 'authenticated',
                    '861380013800' || g, '', '', '{\"provider\": \"phone\", \"providers\": [\"phone\"]}'
               FROM generate_series(1, 3) g;
             INSERT INTO auth.users (id, wechat_id) VALUES (gen_random_uuid(), NULL);
             CREATE EXTENSION auth_wechat;",
        )
        .expect("CREATE EXTENSION works beside existing '' and NULL wechat ids");
    let session = sign_in(&mut db.rest(), &code("ok", "will")).unwrap();
    assert_eq!(session["user"]["wechat_id"], wechat_sim::openid(APPID, "will").as_str());
    let untouched: i64 = admin
        .query_one("SELECT count(*) FROM auth.users WHERE wechat_id = '' AND last_sign_in_at IS NULL", &[])
        .unwrap()
        .get(0);
    assert_eq!(untouched, 3);
}

/// A database that never gets GoTrue's tables: CREATE EXTENSION works (the tables may come
/// later), and the first call answers the clear error, naming what is missing, with its hint,
/// before any WeChat call.
fn plain_database_is_refused_clearly() {
    let db = cluster().database(false);
    let mut admin = db.superuser();
    admin.batch_execute("CREATE EXTENSION auth_wechat").expect("the tables may come later");
    let error = admin.query("SELECT auth.wechat_sign_in($1)", &[&code("ok", "nobody")]).unwrap_err();
    let db_error = error.as_db_error().expect("a database error");
    assert_eq!(db_error.code().code(), "42P01", "undefined_table: {db_error:?}");
    assert!(db_error.message().contains("missing: auth.users, auth.identities"), "{}", db_error.message());
    assert!(db_error.hint().unwrap_or_default().contains("gotrue_schema.sql"), "{:?}", db_error.hint());
    assert_eq!(auth_wechat_tests::simstats::calls(&db.sim_url(), "/sns/jscode2session"), 0);
}

/// Supabase's start-up order: the extension first, GoTrue's tables afterwards. The first call
/// adds the WeChat columns and the index, as the tables' owner, and signs the user in.
fn extension_before_gotrues_tables_works_once_they_exist() {
    let db = cluster().database(false);
    let mut admin = db.superuser();
    admin.batch_execute("CREATE EXTENSION auth_wechat").unwrap();
    admin.batch_execute(GOTRUE_SCHEMA).unwrap();
    admin.batch_execute(auth_wechat_tests::cluster::SUPABASE_ROLES).unwrap();
    let missing: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'auth.users'::regclass AND attname = 'wechat_id'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(missing, 0, "GoTrue's users table came without the WeChat columns");
    let session = sign_in(&mut db.rest(), &code("ok", "early")).unwrap();
    assert_eq!(session["user"]["wechat_id"], wechat_sim::openid(APPID, "early").as_str());
    let owner: String = admin
        .query_one(
            "SELECT c.relowner::regrole::text FROM pg_class c WHERE c.oid = 'auth.users_wechat_id_key'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(owner, "supabase_auth_admin", "added as the tables' owner");
    // Called again by hand: nothing to do.
    admin.batch_execute("SELECT auth.wechat_prepare_schema(); SELECT auth.wechat_prepare_schema();").unwrap();
}

fn drop_extension_keeps_user_data() {
    let db = cluster().database(true);
    let first = sign_in(&mut db.rest(), &code("ok", "xena")).unwrap();
    let mut admin = db.superuser();
    admin.batch_execute("DROP EXTENSION auth_wechat").unwrap();
    let kept = admin
        .query_one(
            "SELECT (SELECT count(*) FROM auth.users WHERE wechat_id <> ''), (SELECT count(*) FROM auth.sessions),
                    to_regclass('auth.users_wechat_id_key') IS NOT NULL,
                    to_regprocedure('auth.wechat_sign_in(text, text)') IS NULL",
            &[],
        )
        .unwrap();
    assert_eq!((kept.get::<_, i64>(0), kept.get::<_, i64>(1)), (1, 1));
    assert!(kept.get::<_, bool>(2), "the unique index stays with the table");
    assert!(kept.get::<_, bool>(3), "the functions are gone");

    let dump = db
        .cluster()
        .client_program("pg_dump")
        .args(["--data-only", "--table=auth.users", "-d", &db.name])
        .output()
        .unwrap();
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
    let openid = wechat_sim::openid(APPID, "xena");
    assert!(String::from_utf8_lossy(&dump.stdout).contains(&openid), "pg_dump keeps the WeChat binding");

    admin.batch_execute("CREATE EXTENSION auth_wechat").unwrap();
    let again = sign_in(&mut db.rest(), &code("ok", "xena")).unwrap();
    assert_eq!(again["user"]["id"], first["user"]["id"], "the same user after re-creating the extension");
}
