//! `ALTER EXTENSION auth_wechat UPDATE` from the last release before upgrade scripts (0.1.0,
//! commit 182df34), built by `scripts/test.sh` (`install_old_release`), whose library it finds in
//! `AUTH_WECHAT_OLD_LIBDIR`: users and sessions made by that release live on, and the updated
//! functions are exactly what a fresh install makes.

use crate::{as_user, claims, sign_in, token, trial};
use auth_wechat_tests::cluster::{Owned, GOTRUE_SCHEMA, SUPABASE_ROLES};
use auth_wechat_tests::{code, Cluster, TestDb};
use libtest_mimic::Trial;
use serde_json::{json, Value};

pub fn tests() -> Vec<Trial> {
    // Skipped (shown as ignored) where the old release was not built; the test command builds it
    // and runs ignored trials too, so there it must pass.
    let built = std::env::var_os("AUTH_WECHAT_OLD_LIBDIR").is_some();
    vec![trial("upgrade::sessions_of_0_1_0_live_on_after_the_update", sessions_of_0_1_0_live_on_after_the_update)
        .with_ignored_flag(!built)]
}

/// The extension's version, as its Cargo.toml has it.
fn this_version() -> &'static str {
    include_str!("../../Cargo.toml")
        .lines()
        .find_map(|line| line.strip_prefix("version = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("Cargo.toml names the version")
}

/// A database with GoTrue's schema, Supabase's roles and the extension at `version`.
fn database_at(cluster: &'static Cluster, version: &str) -> TestDb {
    let db = cluster.database(false);
    let mut admin = db.superuser();
    admin.batch_execute(GOTRUE_SCHEMA).unwrap();
    admin.batch_execute(SUPABASE_ROLES).unwrap();
    admin.batch_execute(&format!("CREATE EXTENSION auth_wechat VERSION '{version}'")).unwrap();
    db
}

/// Every function of the extension as the catalog describes it: signature, volatility, security,
/// settings, body or symbol, grants, comment.
fn functions(db: &TestDb) -> Vec<String> {
    db.superuser()
        .query(
            "SELECT concat_ws(' | ', p.oid::regprocedure::text, p.provolatile, p.prosecdef, p.proconfig::text,
                              p.prosrc, p.proacl::text, obj_description(p.oid, 'pg_proc'))
               FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid
              WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'auth_wechat') AND d.deptype = 'e'
              ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

fn sessions_of_0_1_0_live_on_after_the_update() {
    let old_lib = std::env::var("AUTH_WECHAT_OLD_LIBDIR").expect("AUTH_WECHAT_OLD_LIBDIR (scripts/test.sh)");
    // Started with this build's library, which the template database's extension needs; then
    // with 0.1.0's first on the path.
    let cluster = Owned::new(Cluster::start_with("upgrade", ""));
    cluster.0.restart_with(&format!("dynamic_library_path = '{old_lib}:$libdir'"));
    let db = database_at(cluster.0, "0.1.0");

    // With 0.1.0's library: a sign-up, a refresh, a second user with a unionid, and a phone bind,
    // whose 0.1.0 answer was the session (so it is that library that runs).
    let ada = sign_in(&mut db.rest(), &code("ok", "ada")).unwrap();
    let ada = crate::refresh(&db, &token(&ada)).unwrap();
    let bob = sign_in(&mut db.rest(), &code("union", "bob")).unwrap();
    let bound = db.rest().rpc("wechat_bind_phone", json!({"code": code("phone.86.13700000909", "")}), &as_user(&bob));
    assert!(bound.unwrap().get("refresh_token").is_some(), "0.1.0's library answered the bind");

    // The new library (a restart). Until the update, the functions are declared as 0.1.0 had
    // them (without the arguments added since): calls still work, with the new ones' defaults.
    cluster.0.restart_with("dynamic_library_path = '$libdir'");
    let between = sign_in(&mut db.rest(), &code("union", "bob")).expect("a sign-in before the update");
    assert_eq!(between["user"]["id"], bob["user"]["id"]);
    let bound =
        db.rest().rpc("wechat_bind_phone", json!({"code": code("phone.86.13700000909", "")}), &as_user(&between));
    assert!(bound.is_ok(), "a bind before the update: {bound:?}");
    // Then the update.
    let mut admin = db.superuser();
    admin.batch_execute("ALTER EXTENSION auth_wechat UPDATE").unwrap();
    let version: String =
        admin.query_one("SELECT extversion FROM pg_extension WHERE extname = 'auth_wechat'", &[]).unwrap().get(0);
    assert_eq!(version, this_version(), "updated to this build's version");

    // Sessions and users from before live on.
    let refreshed = crate::refresh(&db, &token(&ada)).expect("a 0.1.0 refresh token refreshes");
    assert_eq!(claims(&refreshed)["session_id"], claims(&ada)["session_id"]);
    let again = sign_in(&mut db.rest(), &code("union", "bob")).unwrap();
    assert_eq!(again["user"]["id"], bob["user"]["id"], "the same user for the same openid");
    assert_eq!(again["user"]["phone"], "8613700000909");
    let user: Value = db.rest().rpc("wechat_user", json!({}), &as_user(&refreshed)).unwrap();
    assert_eq!(user["id"], ada["user"]["id"]);
    let rebound =
        db.rest().rpc("wechat_bind_account", json!({"code": code("ok", "ada")}), &as_user(&refreshed)).unwrap();
    assert!(rebound.get("refresh_token").is_none(), "this build's bind answers the user");
    db.rest().rpc("wechat_sign_out", json!({"scope": "global"}), &as_user(&refreshed)).unwrap();

    // The update made what a fresh install makes.
    let fresh = database_at(cluster.0, &version);
    assert_eq!(functions(&db), functions(&fresh), "updated and fresh installs differ");
}
