//! Who may read and change the settings, who may call what, and what reaches the server log.

use crate::{as_user, cluster, sign_in, token, trial};
use auth_wechat_tests::cluster::Owned;
use auth_wechat_tests::rest::Caller;
use auth_wechat_tests::{code, Cluster, JWT_SECRET, SECRET};
use libtest_mimic::Trial;
use postgres::{Client, NoTls};
use serde_json::{json, Value};

/// Every setting the extension defines, read from the source that defines them (so that a new one
/// cannot be left out), checked against what the server lists.
fn settings() -> Vec<String> {
    let names: std::collections::BTreeSet<String> = include_str!("../../src/gucs.rs")
        .split("c\"auth_wechat.")
        .skip(1)
        .map(|rest| format!("auth_wechat.{}", rest.split('"').next().unwrap()))
        .filter(|name| name.len() > "auth_wechat.".len() && !name.contains(' '))
        .collect();
    assert!(names.len() >= 20, "{names:?}");
    names.into_iter().collect()
}

/// The secret settings: those `gucs.rs` defines with `define_secret`.
fn secrets() -> Vec<String> {
    let names: Vec<String> = include_str!("../../src/gucs.rs")
        .split("define_secret(")
        .skip(1)
        .filter_map(|rest| rest.split("c\"").nth(1)?.split('"').next().map(str::to_string))
        .filter(|name| name.starts_with("auth_wechat."))
        .collect();
    assert!(names.len() >= 4, "{names:?}");
    names
}

pub fn tests() -> Vec<Trial> {
    vec![
        trial("security::secrets_are_hidden_from_other_roles", secrets_are_hidden_from_other_roles),
        trial("security::settings_are_superuser_only", settings_are_superuser_only),
        trial("security::secrets_refuse_catalog_storage", secrets_refuse_catalog_storage),
        trial("security::execute_is_granted_exactly_as_documented", execute_is_granted_exactly_as_documented),
        trial("security::every_function_pins_its_search_path", every_function_pins_its_search_path),
        trial("security::server_log_holds_no_secret_or_code", server_log_holds_no_secret_or_code),
        trial("security::no_token_names_a_powerful_role", no_token_names_a_powerful_role),
        trial("security::protections_need_shared_memory", protections_need_shared_memory),
    ]
}

fn sqlstate(result: Result<impl Sized, postgres::Error>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(e) => e.code().map(|c| c.code().to_string()).unwrap_or_else(|| e.to_string()),
    }
}

fn secrets_are_hidden_from_other_roles() {
    let db = cluster().database(true);
    // PostgREST's roles (through authenticator) and any plain login role.
    let mut callers: Vec<(String, Client)> = Vec::new();
    for role in ["anon", "authenticated", "service_role"] {
        let mut client = Client::connect(&db.conninfo("authenticator"), NoTls).unwrap();
        client.batch_execute(&format!("SET ROLE {role}")).unwrap();
        callers.push((role.into(), client));
    }
    callers.push(("plain_user".into(), Client::connect(&db.conninfo("plain_user"), NoTls).unwrap()));
    // Monitoring (pg_monitor, and so pg_read_all_settings, which PostgreSQL lets read
    // SUPERUSER_ONLY settings), and Supabase's postgres (a member of supabase_auth_admin).
    callers.push(("monitor".into(), Client::connect(&db.conninfo("monitor"), NoTls).unwrap()));
    callers.push(("postgres".into(), db.postgres()));
    for (role, client) in &mut callers {
        for secret in secrets() {
            let secret = secret.as_str();
            // Refused, or (for pg_read_all_settings, which PostgreSQL lets through) masked.
            let shown = match client.simple_query(&format!("SHOW {secret}")) {
                Ok(messages) => messages
                    .iter()
                    .find_map(|m| match m {
                        postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
                        _ => None,
                    })
                    .expect("SHOW answers a row"),
                Err(e) => e.code().unwrap().code().to_string(),
            };
            let read = match client.query_one("SELECT current_setting($1)", &[&secret]) {
                Ok(row) => row.get(0),
                Err(e) => e.code().unwrap().code().to_string(),
            };
            let expected = if role == "monitor" { "********" } else { "42501" };
            assert_eq!((shown.as_str(), read.as_str()), (expected, expected), "{role} reads {secret}");
            let listed: i64 = client
                .query_one(
                    "SELECT (SELECT count(*) FROM pg_settings WHERE name = $1)
                          + (SELECT count(*) FROM pg_show_all_settings() WHERE name = $1)",
                    &[&secret],
                )
                .unwrap()
                .get(0);
            assert_eq!(listed, 0, "{role} sees {secret} in pg_settings or pg_show_all_settings()");
        }
        let all: String = client
            .simple_query("SHOW ALL")
            .unwrap()
            .iter()
            .filter_map(|m| match m {
                postgres::SimpleQueryMessage::Row(r) => Some(format!("{:?} {:?}", r.get(0), r.get(1))),
                _ => None,
            })
            .collect();
        assert!(!all.contains(SECRET) && !all.contains(JWT_SECRET), "{role}: SHOW ALL leaks a secret");
        // The non-secret settings stay readable.
        let appid: String = client.query_one("SELECT current_setting('auth_wechat.appid')", &[]).unwrap().get(0);
        assert!(!appid.is_empty());
    }
    let secret: String = db.superuser().query_one("SELECT current_setting('auth_wechat.secret')", &[]).unwrap().get(0);
    assert_eq!(secret, SECRET, "a superuser can read it");
}

fn settings_are_superuser_only() {
    let db = cluster().database(true);
    let mut admin = db.superuser();
    // The server knows each of them (the secrets are kept out of pg_settings, for everyone).
    let listed: Vec<String> = admin
        .query("SELECT name FROM pg_settings WHERE name LIKE 'auth_wechat.%' ORDER BY 1", &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let secrets = secrets();
    let mut expected: Vec<String> = settings().into_iter().filter(|s| !secrets.contains(s)).collect();
    expected.sort();
    assert_eq!(listed, expected, "the settings the server lists");
    let mut plain = Client::connect(&db.conninfo("plain_user"), NoTls).unwrap();
    let mut anon = Client::connect(&db.conninfo("authenticator"), NoTls).unwrap();
    anon.batch_execute("SET ROLE anon").unwrap();
    admin.batch_execute(&format!("ALTER DATABASE {} OWNER TO postgres", db.name)).unwrap();
    let mut owner = db.postgres();
    for setting in settings() {
        let setting = setting.as_str();
        let value = if setting.ends_with("_ms") || setting.ends_with("_exp") { "1000" } else { "off" };
        for (who, client) in [("plain_user", &mut plain), ("anon", &mut anon)] {
            assert_eq!(
                sqlstate(client.batch_execute(&format!("SET {setting} = '{value}'"))),
                "42501",
                "{who} SET {setting}"
            );
            assert_eq!(
                sqlstate(client.query("SELECT set_config($1, $2, true)", &[&setting, &value])),
                "42501",
                "{who} set_config {setting}"
            );
        }
        assert_eq!(
            sqlstate(plain.batch_execute(&format!("ALTER ROLE plain_user SET {setting} = '{value}'"))),
            "42501",
            "ALTER ROLE ... SET {setting}"
        );
        // The database's owner, and Supabase's postgres (CREATEROLE, a member of the auth tables'
        // owner), may not store one either.
        for (who, client) in [("postgres (the database's owner)", &mut owner)] {
            for statement in [
                format!("ALTER DATABASE {} SET {setting} = '{value}'", db.name),
                format!("ALTER ROLE postgres SET {setting} = '{value}'"),
                format!("ALTER ROLE anon SET {setting} = '{value}'"),
                format!("ALTER ROLE postgres IN DATABASE {} SET {setting} = '{value}'", db.name),
            ] {
                let refused = sqlstate(client.batch_execute(&statement));
                assert!(refused == "42501" || refused == "22023", "{who}: {statement}: {refused}");
            }
        }
    }
    // An unknown name under the reserved prefix is an error, not a new placeholder.
    assert_eq!(sqlstate(plain.batch_execute("SET auth_wechat.api_bse = 'x'")), "42602");
}

/// Even a superuser cannot put a secret where every role can read it.
fn secrets_refuse_catalog_storage() {
    let db = cluster().database(true);
    let mut admin = db.superuser();
    for secret in secrets() {
        for statement in [
            format!("ALTER DATABASE {} SET {secret} = 'leaked'", db.name),
            format!("ALTER ROLE plain_user SET {secret} = 'leaked'"),
            format!("ALTER ROLE ALL SET {secret} = 'leaked'"),
            format!("CREATE FUNCTION public.leak() RETURNS int LANGUAGE sql SET {secret} = 'leaked' AS 'SELECT 1'"),
        ] {
            let error = admin.batch_execute(&statement).expect_err(&statement);
            let db_error = error.as_db_error().unwrap();
            assert_eq!(db_error.code().code(), "22023", "{statement}: {db_error:?}");
            assert!(db_error.hint().unwrap_or_default().contains("ALTER SYSTEM"), "{db_error:?}");
        }
    }
    let stored: i64 = admin
        .query_one("SELECT count(*) FROM pg_db_role_setting, unnest(setconfig) c WHERE c LIKE '%leaked%'", &[])
        .unwrap()
        .get(0);
    assert_eq!(stored, 0);
    // The other settings may be set per database.
    admin.batch_execute(&format!("ALTER DATABASE {} SET auth_wechat.jwt_exp = 600", db.name)).unwrap();
}

/// Who may call what, exactly as the README's SQL API table says, for every function of the
/// extension and every kind of role; `postgres` is a member of the three API roles, as on
/// Supabase, and so reaches what they reach.
fn execute_is_granted_exactly_as_documented() {
    let db = cluster().database(true);
    let mut admin = db.superuser();
    let api = |roles: &[&'static str]| roles.to_vec();
    let qr = "(text, text, boolean, text, integer, boolean, jsonb, boolean, text)";
    let documented: Vec<(String, Vec<&str>)> = vec![
        ("auth.wechat_sign_in(text, text)".into(), api(&["anon", "authenticated"])),
        ("auth.wechat_oauth_sign_in(text, text)".into(), api(&["anon", "authenticated"])),
        ("auth.wechat_authorize_url(text, text, text, text)".into(), api(&["anon", "authenticated", "service_role"])),
        ("auth.wechat_refresh_session(text)".into(), api(&["anon", "authenticated"])),
        ("auth.wechat_sign_out(text)".into(), api(&["authenticated"])),
        ("auth.wechat_user()".into(), api(&["authenticated"])),
        ("auth.wechat_bind_account(text, text)".into(), api(&["authenticated"])),
        ("auth.wechat_oauth_bind(text, text)".into(), api(&["authenticated"])),
        ("auth.wechat_bind_phone(text, text)".into(), api(&["authenticated"])),
        ("auth.wechat_unlink_identity(uuid)".into(), api(&["authenticated"])),
        ("auth.wechat_move_identity(uuid, uuid)".into(), api(&["service_role"])),
        ("auth.wechat_import_users(text, jsonb, jsonb)".into(), api(&["service_role"])),
        ("auth.wechat_scan_start(text, text)".into(), api(&["anon", "authenticated"])),
        ("auth.wechat_scan_view(text)".into(), api(&["authenticated"])),
        ("auth.wechat_scan_confirm(text, boolean)".into(), api(&["authenticated"])),
        ("auth.wechat_scan_poll(text, text)".into(), api(&["anon", "authenticated"])),
        ("auth.wechat_jwks()".into(), api(&["anon", "authenticated", "service_role"])),
        (format!("auth.wechat_unlimited_qrcode{qr}"), api(&["service_role"])),
        (format!("auth.wechat_unlimited_qrcode_bytea{qr}"), api(&["service_role"])),
        ("auth.wechat_access_token_status(text)".into(), api(&[])),
        ("auth.wechat_refresh_access_token(boolean, text)".into(), api(&[])),
        ("auth.wechat_check_settings()".into(), api(&[])),
        ("auth.wechat_postgrest_jwks()".into(), api(&[])),
        ("auth.wechat_expose(name)".into(), api(&[])),
        ("auth.wechat_unexpose(name)".into(), api(&[])),
        ("auth_wechat.is_wrapper(regprocedure)".into(), api(&[])),
        ("auth_wechat.require_superuser(text)".into(), api(&[])),
    ];
    // Anyone may call this one: it steps down to the tables' owner, and does what the first call
    // of the API would do.
    let public = ["auth.wechat_prepare_schema()"];
    let listed: Vec<String> = admin
        .query(
            "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid
              WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'auth_wechat') AND d.deptype = 'e'
              ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let short = |f: &str| f.replace("auth.", "").replace(' ', "");
    let mut expected: Vec<String> =
        documented.iter().map(|(f, _)| short(f)).chain(public.iter().map(|f| short(f))).collect();
    expected.sort();
    let mut listed_short: Vec<String> = listed.iter().map(|f| short(f)).collect();
    listed_short.sort();
    assert_eq!(listed_short, expected, "every function of the extension is in the table, and only those");
    for (function, granted) in &documented {
        for role in
            ["anon", "authenticated", "service_role", "postgres", "plain_user", "monitor", "supabase_auth_admin"]
        {
            let may: bool = admin
                .query_one("SELECT has_function_privilege($1, $2, 'EXECUTE')", &[&role, &function])
                .unwrap()
                .get(0);
            let expected = if role == "postgres" { !granted.is_empty() } else { granted.contains(&role) };
            assert_eq!(may, expected, "{role} EXECUTE {function}");
        }
    }
    for function in public {
        let everyone: bool = admin
            .query_one(
                "SELECT bool_and(has_function_privilege(r.rolname, $1, 'EXECUTE')) FROM pg_roles r",
                &[&function],
            )
            .unwrap()
            .get(0);
        assert!(everyone, "{function} is for everyone");
    }
    // A plain role with USAGE on the schema still may not call it.
    admin.batch_execute("GRANT USAGE ON SCHEMA auth TO plain_user").unwrap();
    let mut plain = Client::connect(&db.conninfo("plain_user"), NoTls).unwrap();
    assert_eq!(sqlstate(plain.query("SELECT auth.wechat_sign_in('x')", &[])), "42501");
    // Signed-in callers may sign in too (e.g. to switch WeChat accounts).
    let claims = json!({"role": "authenticated", "sub": "00000000-0000-0000-0000-000000000001"});
    let session = db.rest().rpc("wechat_sign_in", json!({"code": code("ok", "uma")}), &Caller::Claims(claims)).unwrap();
    assert!(session["access_token"].is_string());
}

/// Every function of the extension pins its search path, so that nothing on a caller's path
/// (a planted function, a temporary table) takes part; exactly the API that anyone may be
/// granted is SECURITY DEFINER (its owner has no rights: see `planted`).
fn every_function_pins_its_search_path() {
    let db = cluster().database(true);
    let rows = db
        .superuser()
        .query(
            "SELECT p.oid::regprocedure::text, p.proconfig, p.prosecdef FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid
              WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'auth_wechat') AND d.deptype = 'e'",
            &[],
        )
        .unwrap();
    assert!(rows.len() >= 14, "{} functions", rows.len());
    // SECURITY INVOKER: the superuser tools and their helpers.
    let invokers = [
        "wechat_access_token_status",
        "wechat_refresh_access_token",
        "wechat_check_settings",
        "wechat_postgrest_jwks",
        "wechat_expose",
        "wechat_unexpose",
        "is_wrapper",
        "require_superuser",
    ];
    for row in rows {
        let (function, config, definer): (String, Option<Vec<String>>, bool) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(config, Some(vec!["search_path=pg_catalog, pg_temp".to_string()]), "{function}");
        let invoker = invokers.iter().any(|t| function.contains(t));
        assert_eq!(definer, !invoker, "{function}: SECURITY DEFINER exactly for the API");
    }
}

fn server_log_holds_no_secret_or_code() {
    let db = cluster().database(true);
    db.set("auth_wechat.timeout_ms", "200");
    let mut rest = db.rest();
    let codes: Vec<String> = ["invalid", "busy", "garbage", "huge", "redirect", "http500", "slow.1000"]
        .iter()
        .map(|kind| code(kind, if kind.starts_with("slow") { "vera" } else { "" }))
        .collect();
    for code in &codes {
        sign_in(&mut rest, code).unwrap_err();
    }
    let ok = code("ok", "vera");
    sign_in(&mut rest, &ok).unwrap();
    let log = db.cluster().log();
    assert!(log.contains("ERROR"), "the failures above are logged");
    let handed_out = auth_wechat_tests::simstats::secrets(&db.sim_url());
    assert!(!handed_out.is_empty());
    for needle in codes.iter().chain(&handed_out).map(String::as_str).chain([ok.as_str(), SECRET, JWT_SECRET]) {
        assert!(!log.contains(needle), "the server log holds {needle:?}");
    }
}

/// The `role` claim is the role PostgREST becomes for the token's bearer. `postgres` (a member of
/// the auth tables' owner) may write `auth.users.role`, and a hook chooses the claim too: a token
/// naming a superuser, a role with BYPASSRLS, CREATEROLE or REPLICATION, or a member of the tables'
/// owner is never minted (500 `configuration_invalid`), and nothing is written.
fn no_token_names_a_powerful_role() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let session = sign_in(&mut rest, &code("ok", "rhea")).unwrap();
    let user_id = session["user"]["id"].as_str().unwrap().to_string();
    let mut postgres = db.postgres();
    let set_role = |postgres: &mut Client, role: &str| {
        postgres.execute("UPDATE auth.users SET role = $1 WHERE id = $2::text::uuid", &[&role, &user_id]).unwrap();
    };
    let sessions = |db: &auth_wechat_tests::TestDb| -> i64 {
        db.superuser().query_one("SELECT count(*) FROM auth.sessions", &[]).unwrap().get(0)
    };
    db.superuser().batch_execute("CREATE ROLE replicator NOLOGIN REPLICATION").ok();
    for role in ["supabase_admin", "service_role", "postgres", "supabase_auth_admin", "replicator"] {
        set_role(&mut postgres, role);
        let before = sessions(&db);
        let refused = crate::refresh(&db, &token(&session)).unwrap_err();
        assert_eq!((refused.status, refused.error_code().as_str()), (500, "configuration_invalid"), "{role}");
        assert!(refused.message.contains(role), "{role}: {}", refused.message);
        let refused = sign_in(&mut rest, &code("ok", "rhea")).unwrap_err();
        assert_eq!(refused.error_code(), "configuration_invalid", "{role}");
        assert_eq!(sessions(&db), before, "{role}: a refused mint wrote a session");
    }
    // An ordinary role is minted, and the refresh token the refusals above did not spend works.
    set_role(&mut postgres, "authenticated");
    let refreshed = crate::refresh(&db, &token(&session)).unwrap();
    assert_eq!(crate::claims(&refreshed)["role"], "authenticated");

    // The access token hook may not choose such a role either.
    db.superuser()
        .batch_execute(
            r#"CREATE FUNCTION public.elevate(event jsonb) RETURNS jsonb LANGUAGE sql AS $$
                   SELECT jsonb_build_object('claims', event -> 'claims' || '{"role": "service_role"}')
               $$;
               GRANT EXECUTE ON FUNCTION public.elevate(jsonb) TO supabase_auth_admin;"#,
        )
        .unwrap();
    db.set("auth_wechat.access_token_hook", "public.elevate");
    let refused = sign_in(&mut db.rest(), &code("ok", "rhea")).unwrap_err();
    assert_eq!((refused.status, refused.error_code().as_str()), (500, "configuration_invalid"));
}

/// Without `shared_preload_libraries` the memory of stolen sessions and the refresh budgets do not
/// exist: every call that relies on them refuses (500 `configuration_missing`) rather than run
/// unprotected, before any WeChat call.
fn protections_need_shared_memory() {
    let cluster = Owned::new(Cluster::start_with("nopreload", ""));
    let db = cluster.0.database(true);
    let session = sign_in(&mut db.rest(), &code("ok", "sol")).unwrap();
    cluster.0.restart_with("shared_preload_libraries = ''");
    let user = as_user(&session);
    let mut rest = db.rest();
    let calls = [
        crate::refresh(&db, &token(&session)),
        rest.rpc("wechat_user", json!({}), &user),
        rest.rpc("wechat_sign_out", json!({}), &user),
        rest.rpc("wechat_bind_account", json!({"code": code("ok", "sol")}), &user),
        rest.rpc("wechat_bind_phone", json!({"code": code("phone.86.13700000321", "")}), &user),
        sign_in(&mut rest, &code("ok", "sol")),
    ];
    for (n, call) in calls.into_iter().enumerate() {
        let refused = call.unwrap_err();
        assert_eq!((refused.status, refused.error_code().as_str()), (500, "configuration_missing"), "call {n}");
        assert!(refused.message.contains("shared_preload_libraries"), "{}", refused.message);
    }
    let report: Value = db.superuser().query_one("SELECT auth.wechat_check_settings()", &[]).unwrap().get(0);
    assert!(
        report["problems"].as_array().unwrap().iter().any(|p| p["setting"] == "shared_preload_libraries"),
        "{report}"
    );
    // One sign-in, before the restart.
    for (path, before) in [("/sns/jscode2session", 1), ("/wxa/business/getuserphonenumber", 0)] {
        assert_eq!(auth_wechat_tests::simstats::calls(&db.sim_url(), path), before, "{path}: a code was spent");
    }
}
