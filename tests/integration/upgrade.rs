//! `ALTER EXTENSION auth_wechat UPDATE` from every released version, whose libraries
//! `scripts/test.sh` builds (`install_old_releases`) and names in `AUTH_WECHAT_OLD_RELEASES`
//! (`<version>=<libdir> …`):
//! - users, identities and sessions made by that release live on;
//! - between installing this build and the update (the old declarations, this library) calls work,
//!   and nothing `postgres` plants runs as a superuser, the update included;
//! - the update ends where a fresh install starts: the same functions, owners, grants and indexes.

use crate::planted::{assert_never_superuser, definer_owners, plant_lookalikes, plant_on_the_tables, spied};
use crate::privileges::SPY;
use crate::{as_user, claims, sign_in, token, trial};
use auth_wechat_tests::cluster::{Owned, GOTRUE_SCHEMA, SUPABASE_ROLES};
use auth_wechat_tests::{code, Cluster, TestDb, LITE};
use libtest_mimic::Trial;
use serde_json::{json, Value};

/// The released versions, each with its commit in CHANGELOG.md.
const RELEASES: [&str; 2] = ["0.1.0", "0.2.0"];

pub fn tests() -> Vec<Trial> {
    // Skipped (shown as ignored) where the old releases were not built; the test command builds
    // them and runs ignored trials too, so there they must pass.
    let built = |version: &str| old_library(version).is_some();
    vec![
        trial("upgrade::from_0_1_0", || from_release("0.1.0")).with_ignored_flag(!built("0.1.0")),
        trial("upgrade::from_0_2_0", || from_release("0.2.0")).with_ignored_flag(!built("0.2.0")),
        trial("upgrade::every_release_is_in_the_changelog", every_release_is_in_the_changelog),
    ]
}

/// The directory of `version`'s library, from `AUTH_WECHAT_OLD_RELEASES`.
fn old_library(version: &str) -> Option<String> {
    std::env::var("AUTH_WECHAT_OLD_RELEASES")
        .ok()?
        .split_whitespace()
        .find_map(|entry| entry.strip_prefix(&format!("{version}=")).map(str::to_string))
}

/// The extension's version, as its Cargo.toml has it.
fn this_version() -> &'static str {
    include_str!("../../Cargo.toml")
        .lines()
        .find_map(|line| line.strip_prefix("version = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("Cargo.toml names the version")
}

/// The test command builds what CHANGELOG.md calls a release, from the commit it names, and
/// there is an upgrade script from each release to the next.
fn every_release_is_in_the_changelog() {
    let changelog = include_str!("../../CHANGELOG.md");
    let lib_sh = include_str!("../../scripts/lib.sh");
    let mut versions: Vec<&str> = RELEASES.to_vec();
    versions.push(this_version());
    for pair in versions.windows(2) {
        let script = format!("{}/../sql/auth_wechat--{}--{}.sql", env!("CARGO_MANIFEST_DIR"), pair[0], pair[1]);
        assert!(std::path::Path::new(&script).exists(), "no upgrade script {script}");
    }
    for version in RELEASES {
        let heading = changelog
            .lines()
            .find(|line| line.starts_with(&format!("## {version} (commit ")))
            .unwrap_or_else(|| panic!("CHANGELOG.md has no heading '## {version} (commit …)'"));
        let commit = heading.trim_end_matches(')').rsplit(' ').next().unwrap();
        assert!(lib_sh.contains(&format!("\"{version} {commit}\"")), "scripts/lib.sh builds {version} from {commit}");
    }
    assert!(changelog.contains(&format!("## Unreleased ({})", this_version())), "CHANGELOG.md's Unreleased section");
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
/// owner, settings, body or symbol, grants, comment.
fn functions(db: &TestDb) -> Vec<String> {
    db.superuser()
        .query(
            "SELECT concat_ws(' | ', p.oid::regprocedure::text, p.provolatile, p.prosecdef, p.proowner::regrole::text,
                              p.proconfig::text, p.prosrc, p.proacl::text, obj_description(p.oid, 'pg_proc'))
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

/// The indexes of the auth tables, but for those the test planted.
fn indexes(db: &TestDb) -> Vec<String> {
    db.superuser()
        .query("SELECT indexdef FROM pg_indexes WHERE schemaname = 'auth' AND indexname <> 'spy' ORDER BY 1", &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

fn sign_in_to(db: &TestDb, appid: &str, code: &str) -> Value {
    crate::sign_in_to(&mut db.rest(), appid, code).unwrap_or_else(|e| panic!("sign-in to {appid}: {e:?}"))
}

fn from_release(version: &str) {
    let old_lib = old_library(version).expect("AUTH_WECHAT_OLD_RELEASES (scripts/test.sh)");
    // Started with this build's library, which the template database's extension needs; then
    // with the release's first on the path.
    let cluster = Owned::new(Cluster::start_with(&format!("upgrade_{version}"), ""));
    cluster.0.restart_with(&format!("dynamic_library_path = '{old_lib}:$libdir'"));
    let db = database_at(cluster.0, version);

    // With the release's library: a sign-up, a refresh, a user with a unionid and a phone bound;
    // from 0.2.0 on, a user of a second mini program as well.
    let ada = sign_in(&mut db.rest(), &code("ok", "ada")).unwrap();
    let ada = crate::refresh(&db, &token(&ada)).unwrap();
    let bob = sign_in(&mut db.rest(), &code("union", "bob")).unwrap();
    let bound = db.rest().rpc("wechat_bind_phone", json!({"code": code("phone.86.13700000909", "")}), &as_user(&bob));
    assert_eq!(
        bound.unwrap().get("refresh_token").is_some(),
        version == "0.1.0",
        "the release's library answered the bind (0.1.0's answer was a session)"
    );
    let cy = (version != "0.1.0").then(|| sign_in_to(&db, LITE, &code("ok", "cy")));
    // From 0.2.0 on, an unlinked openid, which 0.2.0 remembered in the user's other identities.
    let dee = (version != "0.1.0").then(|| {
        sign_in_to(&db, auth_wechat_tests::APPID, &code("union", "dee"));
        let both = sign_in_to(&db, LITE, &code("union", "dee"));
        let lite = both["user"]["identities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["identity_data"]["appid"] == LITE)
            .unwrap();
        db.rest().rpc("wechat_unlink_identity", json!({"identity_id": lite["identity_id"]}), &as_user(&both)).unwrap();
        both["user"]["id"].clone()
    });
    // Identities 0.1.0 made name no app: they are the default mini program's all the same.
    let appid_kept = |db: &TestDb| -> bool {
        db.superuser()
            .query_one(
                "SELECT bool_and(identity_data ? 'appid') FROM auth.identities WHERE provider = 'wechat_mini'",
                &[],
            )
            .unwrap()
            .get(0)
    };
    assert_eq!(appid_kept(&db), version != "0.1.0", "which identities name their app");

    // This build's library (a restart). Until the update, the functions are declared as the
    // release had them: owned by a superuser, without the arguments added since.
    cluster.0.restart_with("dynamic_library_path = '$libdir'");
    let mut postgres = db.postgres();
    postgres.batch_execute(SPY).unwrap();
    plant_lookalikes(&db, "auth");
    if version == "0.1.0" {
        // 0.1.0 has no auth.wechat_prepare_schema(): one planted under that name, and auth.users
        // out of the way, was a superuser's call through the library of 0.2.0.
        postgres
            .batch_execute(
                "CREATE FUNCTION auth.wechat_prepare_schema() RETURNS void LANGUAGE plpgsql AS $$
                 BEGIN PERFORM public.spy('auth.wechat_prepare_schema'); END $$;
                 GRANT EXECUTE ON FUNCTION auth.wechat_prepare_schema() TO PUBLIC;",
            )
            .unwrap();
    }
    postgres.batch_execute("ALTER TABLE auth.users RENAME TO users_moved").unwrap();
    let refused = sign_in(&mut db.rest(), &code("ok", "dan")).unwrap_err();
    assert_eq!(refused.sqlstate, "42P01", "{refused:?}");
    postgres.batch_execute("ALTER TABLE auth.users_moved RENAME TO users").unwrap();
    assert_never_superuser(&db);
    assert_eq!(spied(&db), vec![], "planted code ran");
    if version == "0.1.0" {
        // (It would stop the update, which creates the real one.)
        postgres.batch_execute("DROP FUNCTION auth.wechat_prepare_schema()").unwrap();
    }

    // Calls work, as the tables' owner.
    plant_on_the_tables(&db);
    let between = sign_in(&mut db.rest(), &code("union", "bob")).expect("a sign-in before the update");
    assert_eq!(between["user"]["id"], bob["user"]["id"]);
    let bound =
        db.rest().rpc("wechat_bind_phone", json!({"code": code("phone.86.13700000909", "")}), &as_user(&between));
    assert!(bound.is_ok(), "a bind before the update: {bound:?}");
    assert!(spied(&db).iter().any(|(who, _, via)| who == "supabase_auth_admin" && via == "sessions"));
    assert_never_superuser(&db);

    // Then the update.
    let mut admin = db.superuser();
    admin.batch_execute("ALTER EXTENSION auth_wechat UPDATE").unwrap();
    let updated: String =
        admin.query_one("SELECT extversion FROM pg_extension WHERE extname = 'auth_wechat'", &[]).unwrap().get(0);
    assert_eq!(updated, this_version(), "updated to this build's version");
    assert_never_superuser(&db);

    // Users, identities and sessions from before live on.
    let refreshed = crate::refresh(&db, &token(&ada)).expect("a refresh token of the release refreshes");
    assert_eq!(claims(&refreshed)["session_id"], claims(&ada)["session_id"]);
    let again = sign_in(&mut db.rest(), &code("union", "bob")).unwrap();
    assert_eq!(again["user"]["id"], bob["user"]["id"], "the same user for the same openid");
    assert_eq!(again["user"]["phone"], "8613700000909");
    if let Some(cy) = cy {
        assert_eq!(
            sign_in_to(&db, LITE, &code("ok", "cy"))["user"]["id"],
            cy["user"]["id"],
            "an identity of the lite app"
        );
    }
    if let Some(dee) = dee {
        let unlinked = sign_in_to(&db, LITE, &code("union", "dee"));
        assert_ne!(unlinked["user"]["id"], dee, "an openid unlinked under 0.2.0 is still a new person");
        assert_eq!(sign_in_to(&db, auth_wechat_tests::APPID, &code("union", "dee"))["user"]["id"], dee);
    }
    let user: Value = db.rest().rpc("wechat_user", json!({}), &as_user(&refreshed)).unwrap();
    assert_eq!(user["id"], ada["user"]["id"]);
    let rebound =
        db.rest().rpc("wechat_bind_account", json!({"code": code("ok", "ada")}), &as_user(&refreshed)).unwrap();
    assert!(rebound.get("refresh_token").is_none(), "this build's bind answers the user");
    assert!(appid_kept(&db), "a sign-in or bind names the app of an identity that named none");
    db.rest().rpc("wechat_sign_out", json!({"scope": "global"}), &as_user(&refreshed)).unwrap();
    assert_never_superuser(&db);

    // The update made what a fresh install makes.
    let fresh = database_at(cluster.0, &updated);
    assert_eq!(functions(&db), functions(&fresh), "updated and fresh installs differ");
    assert_eq!(indexes(&db), indexes(&fresh), "updated and fresh indexes differ");
    assert_eq!(definer_owners(&db), (vec![], vec!["auth_wechat_definer".to_string()]));
}
