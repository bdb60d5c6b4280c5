//! Several WeChat apps (`auth_wechat.apps`): the setting's checks, and one person across mini
//! programs, joined by unionid. The test cluster lists `MORE_APPS`, which every test's simulator
//! serves.

use crate::{claims, cluster, trial};
use auth_wechat_tests::rest::Caller;
use auth_wechat_tests::simstats::calls;
use auth_wechat_tests::{code, Rest, RpcError, TestDb, APPID, LITE, OFFICIAL_ACCOUNT};
use libtest_mimic::Trial;
use serde_json::{json, Value};
use std::sync::{Arc, Barrier};

pub fn tests() -> Vec<Trial> {
    vec![
        trial(
            "apps::a_broken_setting_is_named_before_wechat_is_called",
            a_broken_setting_is_named_before_wechat_is_called,
        ),
        trial("apps::a_unionid_joins_two_mini_programs_into_one_user", a_unionid_joins_two_mini_programs_into_one_user),
        trial("apps::without_a_shared_unionid_apps_stay_apart", without_a_shared_unionid_apps_stay_apart),
        trial("apps::a_unionid_two_users_hold_is_a_conflict", a_unionid_two_users_hold_is_a_conflict),
        trial("apps::an_unknown_or_wrong_kind_of_app_is_refused", an_unknown_or_wrong_kind_of_app_is_refused),
        trial("apps::two_apps_of_one_person_at_once_make_one_user", two_apps_of_one_person_at_once_make_one_user),
    ]
}

/// `POST /rpc/wechat_sign_in {"code", "appid"}` as the anonymous role.
fn sign_in_to(rest: &mut Rest, appid: &str, code: &str) -> Result<Value, RpcError> {
    rest.rpc("wechat_sign_in", json!({"code": code, "appid": appid}), &Caller::Anon)
}

fn count(db: &TestDb, sql: &str) -> i64 {
    db.superuser().query_one(sql, &[]).unwrap().get(0)
}

/// A malformed array, an appid configured twice (the default's included) or an unknown type:
/// 500 `configuration_invalid` naming the setting and the app by position, never a secret, and
/// WeChat not called.
fn a_broken_setting_is_named_before_wechat_is_called() {
    let db = cluster().database(true);
    let mut admin = db.superuser();
    let default_appid: String = admin.query_one("SELECT current_setting('auth_wechat.appid')", &[]).unwrap().get(0);
    let secret = "a-secret-of-another-app";
    for (apps, expected) in [
        (json!({"appid": "wx1"}), "JSON array"),
        (json!([{"appid": default_appid, "secret": secret, "type": "miniprogram"}]), "app 1"),
        (
            json!([{"appid": "wx1", "secret": secret, "type": "website"}, {"appid": "wx1", "secret": secret, "type": "website"}]),
            "app 2 (wx1): the appid is configured twice",
        ),
        (json!([{"appid": "wx1", "secret": secret, "type": "game"}]), "app 1 (wx1): type must be"),
    ] {
        admin.execute("SELECT set_config('auth_wechat.apps', $1, false)", &[&apps.to_string()]).unwrap();
        let error = admin.query_one("SELECT auth.wechat_sign_in($1)", &[&code("ok", "apps")]).unwrap_err();
        let error = error.as_db_error().unwrap();
        assert_eq!(error.code().code(), "PT500", "{error:?}");
        let detail: Value = serde_json::from_str(error.detail().unwrap()).unwrap();
        assert_eq!(detail["error_code"], "configuration_invalid");
        assert!(
            error.message().contains("auth_wechat.apps") && error.message().contains(expected),
            "{}",
            error.message()
        );
        assert!(!format!("{error:?}").contains(secret), "{error:?}");
    }
    assert_eq!(calls(&db.sim_url(), "/sns/jscode2session"), 0, "refused before WeChat was called");
}

/// Sign-ins from the default mini program and the lite one with the same unionid are one user:
/// the second adds its identity (GoTrue's user JSON lists both), `identity_linked` is audited,
/// MemFire's columns keep the default app's openid, and each app's later sign-ins find the user.
fn a_unionid_joins_two_mini_programs_into_one_user() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let first = sign_in_to(&mut rest, APPID, &code("union", "ada")).unwrap();
    let linked = sign_in_to(&mut rest, LITE, &code("union", "ada")).unwrap();
    let user = &linked["user"];
    assert_eq!(user["id"], first["user"]["id"], "one person, one user");
    assert_eq!(user["wechat_id"], first["user"]["wechat_id"], "MemFire's columns describe the default app");
    let identities = user["identities"].as_array().unwrap();
    assert_eq!(identities.len(), 2, "{identities:?}");
    let appids: Vec<&str> = identities.iter().map(|i| i["identity_data"]["appid"].as_str().unwrap()).collect();
    assert!(appids.contains(&APPID) && appids.contains(&LITE), "{appids:?}");
    assert!(identities.iter().all(|i| i["provider"] == "wechat_mini"));
    assert_ne!(identities[0]["id"], identities[1]["id"], "an openid per app");
    assert_eq!(identities[0]["identity_data"]["unionid"], identities[1]["identity_data"]["unionid"]);
    assert_eq!(user["app_metadata"]["providers"], json!(["wechat_mini"]));
    assert_eq!(claims(&linked)["sub"], user["id"]);
    let id = user["id"].as_str().unwrap();
    let linked_rows = count(
        &db,
        &format!(
            "SELECT count(*) FROM auth.audit_log_entries
              WHERE payload ->> 'action' = 'identity_linked' AND payload ->> 'actor_id' = '{id}'"
        ),
    );
    assert_eq!(linked_rows, 1);
    // Again from either app, with or without a unionid in the answer: the same user.
    for (appid, kind) in [(LITE, "ok"), (APPID, "ok"), (LITE, "union")] {
        let again = sign_in_to(&mut rest, appid, &code(kind, "ada")).unwrap();
        assert_eq!(again["user"]["id"], id, "{appid} {kind}");
    }
    assert_eq!(count(&db, &format!("SELECT count(*) FROM auth.identities WHERE user_id = '{id}'")), 2);
    assert_eq!(count(&db, "SELECT count(*) FROM auth.users"), 1);
}

/// No unionid (the app is not bound to the same Open Platform account), or linking turned off:
/// each app's openid is a person of its own, with no MemFire columns for another app's.
fn without_a_shared_unionid_apps_stay_apart() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let main = sign_in_to(&mut rest, APPID, &code("ok", "bea")).unwrap();
    let lite = sign_in_to(&mut rest, LITE, &code("ok", "bea")).unwrap();
    assert_ne!(main["user"]["id"], lite["user"]["id"], "no unionid: nothing links");
    assert_eq!(lite["user"]["wechat_id"], "", "the default app's column stays empty");
    assert_eq!(lite["user"]["identities"][0]["identity_data"]["appid"], LITE);
    db.set("auth_wechat.link_by_unionid", "off");
    let mut rest = db.rest();
    let main = sign_in_to(&mut rest, APPID, &code("union", "cy")).unwrap();
    let lite = sign_in_to(&mut rest, LITE, &code("union", "cy")).unwrap();
    assert_ne!(main["user"]["id"], lite["user"]["id"], "link_by_unionid off");
}

/// A unionid that two users already hold (imported data): a new openid with it names no one.
/// 409 `wechat_unionid_conflict`, and nothing is written.
fn a_unionid_two_users_hold_is_a_conflict() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let first = sign_in_to(&mut rest, APPID, &code("union", "dee")).unwrap();
    let other = sign_in_to(&mut rest, APPID, &code("ok", "eve")).unwrap();
    let unionid = first["user"]["wechat_unionid"].as_str().unwrap().to_string();
    let other_id = other["user"]["id"].as_str().unwrap().to_string();
    db.superuser()
        .execute("UPDATE auth.users SET wechat_unionid = $1 WHERE id = $2::text::uuid", &[&unionid, &other_id])
        .unwrap();
    let rows = "SELECT (SELECT count(*) FROM auth.users) * 1000 + (SELECT count(*) FROM auth.identities)";
    let before = count(&db, rows);
    let error = sign_in_to(&mut rest, LITE, &code("union", "dee")).unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (409, "wechat_unionid_conflict"), "{error:?}");
    assert_eq!(count(&db, rows), before, "nothing written");
}

/// An appid the database does not know, or one that is not a mini program: 400
/// `validation_failed`, before WeChat is called.
fn an_unknown_or_wrong_kind_of_app_is_refused() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    for appid in ["wx0000000000000000", OFFICIAL_ACCOUNT] {
        let error = sign_in_to(&mut rest, appid, &code("ok", "fay")).unwrap_err();
        assert_eq!((error.status, error.error_code().as_str()), (400, "validation_failed"), "{appid}: {error:?}");
    }
    assert_eq!(calls(&db.sim_url(), "/sns/jscode2session"), 0);
}

/// The same person signing in from two mini programs at the same moment, several times over:
/// each time one user, holding both identities.
fn two_apps_of_one_person_at_once_make_one_user() {
    let db = Arc::new(cluster().database(true));
    for round in 0..4 {
        let person = format!("gus{round}");
        let barrier = Arc::new(Barrier::new(4));
        let workers: Vec<_> = [APPID, LITE, APPID, LITE]
            .into_iter()
            .map(|appid| {
                let (db, barrier, person) = (Arc::clone(&db), Arc::clone(&barrier), person.clone());
                std::thread::spawn(move || {
                    let mut rest = db.rest();
                    barrier.wait();
                    // The simulator answers all four after the same delay.
                    sign_in_to(&mut rest, appid, &code("slowunion.150", &person))
                })
            })
            .collect();
        let ids: std::collections::HashSet<String> = workers
            .into_iter()
            .map(|w| w.join().unwrap().expect("every sign-in succeeds")["user"]["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids.len(), 1, "round {round}: {ids:?}");
        let id = ids.into_iter().next().unwrap();
        assert_eq!(count(&db, &format!("SELECT count(*) FROM auth.identities WHERE user_id = '{id}'")), 2);
    }
    assert_eq!(count(&db, "SELECT count(*) FROM auth.users"), 4);
}
