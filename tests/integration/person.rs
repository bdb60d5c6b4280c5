//! One person, one user, along the ordinary paths that used to split a person in two and then lock
//! them out of every new app (409 `wechat_unionid_conflict` for good): a unionid is never recorded
//! on a second holder, an unlinked openid is remembered with its user even when MemFire's columns
//! were its only binding, and an administrator can mend a split that exists already.

use crate::{as_user, cluster, oauth_sign_in, sign_in_to, trial};
use auth_wechat_tests::rest::Caller;
use auth_wechat_tests::{code, Rest, TestDb, APPID, LITE, OFFICIAL_ACCOUNT, WEBSITE};
use libtest_mimic::Trial;
use serde_json::{json, Value};

pub fn tests() -> Vec<Trial> {
    vec![
        trial("person::an_unlinked_openid_never_makes_a_second_holder", an_unlinked_openid_never_makes_a_second_holder),
        trial(
            "person::a_late_unionid_is_never_recorded_on_a_second_holder",
            a_late_unionid_is_never_recorded_on_a_second_holder,
        ),
        trial("person::an_unlink_from_memfires_columns_is_remembered", an_unlink_from_memfires_columns_is_remembered),
        trial("person::an_administrator_mends_a_split_person", an_administrator_mends_a_split_person),
    ]
}

fn user_id(session: &Value) -> String {
    session["user"]["id"].as_str().unwrap().to_string()
}

fn identity_of(user: &Value, appid: &str) -> Value {
    user["identities"].as_array().unwrap().iter().find(|i| i["identity_data"]["appid"] == appid).cloned().unwrap()
}

/// The users who hold `unionid` in an identity or in MemFire's column.
fn holders(db: &TestDb, unionid: &str) -> i64 {
    db.superuser()
        .query_one(
            "SELECT count(*) FROM auth.users u
              WHERE u.wechat_unionid = $1
                 OR EXISTS (SELECT 1 FROM auth.identities i WHERE i.user_id = u.id AND i.identity_data ->> 'unionid' = $1)",
            &[&unionid],
        )
        .unwrap()
        .get(0)
}

/// A person with two mini programs unlinks one; its openid then signs up a new user. That user
/// must not hold the unionid, or the person's next app finds two holders.
fn an_unlinked_openid_never_makes_a_second_holder() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let main = sign_in_to(&mut rest, APPID, &code("union", "pat")).unwrap();
    let both = sign_in_to(&mut rest, LITE, &code("union", "pat")).unwrap();
    assert_eq!(user_id(&both), user_id(&main));
    let lite = identity_of(&both["user"], LITE);
    rest.rpc("wechat_unlink_identity", json!({"identity_id": lite["identity_id"]}), &as_user(&both)).unwrap();
    let stranger = sign_in_to(&mut rest, LITE, &code("union", "pat")).unwrap();
    assert_ne!(user_id(&stranger), user_id(&main), "the unlinked openid is a new person");
    assert_eq!(stranger["user"]["wechat_unionid"], "");
    assert!(stranger["user"]["identities"][0]["identity_data"].get("unionid").is_none(), "{stranger}");
    assert_eq!(holders(&db, &wechat_sim::unionid("pat")), 1);
    let next_app = oauth_sign_in(&mut rest, OFFICIAL_ACCOUNT, &code("userinfo", "pat")).expect("no conflict");
    assert_eq!(user_id(&next_app), user_id(&main), "the person's next app is the person");
}

/// A silent official-account sign-in (`snsapi_base`, no unionid) makes user A; the mini program
/// then makes user B, who holds the unionid. A later `snsapi_userinfo` sign-in is still A, but
/// does not record the unionid on A: the person's next app (a website) is B, not a conflict.
fn a_late_unionid_is_never_recorded_on_a_second_holder() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let silent = oauth_sign_in(&mut rest, OFFICIAL_ACCOUNT, &code("base", "quin")).unwrap();
    let mini = sign_in_to(&mut rest, APPID, &code("union", "quin")).unwrap();
    assert_ne!(user_id(&silent), user_id(&mini), "no unionid joined them");
    let asked = oauth_sign_in(&mut rest, OFFICIAL_ACCOUNT, &code("userinfo", "quin")).unwrap();
    assert_eq!(user_id(&asked), user_id(&silent), "a known openid is its user");
    assert!(identity_of(&asked["user"], OFFICIAL_ACCOUNT)["identity_data"].get("unionid").is_none(), "{asked}");
    assert_eq!(holders(&db, &wechat_sim::unionid("quin")), 1);
    let website = oauth_sign_in(&mut rest, WEBSITE, &code("login", "quin")).expect("no conflict");
    assert_eq!(user_id(&website), user_id(&mini));
}

/// A user whom MemFire's columns alone bind to the default mini program (imported data: no
/// identity row) links a second mini program by unionid, then unlinks it. The unlink is
/// remembered with the user, so the next sign-in of that openid does not link straight back.
fn an_unlink_from_memfires_columns_is_remembered() {
    let db = cluster().database(true);
    let user: String = db
        .superuser()
        .query_one(
            "WITH u AS (
                 INSERT INTO auth.users (instance_id, id, aud, role, phone, phone_confirmed_at, raw_app_meta_data,
                                         raw_user_meta_data, created_at, updated_at, wechat_id, wechat_unionid)
                 VALUES ('00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated', 'authenticated',
                         '8613700000555', now(), '{\"provider\": \"phone\", \"providers\": [\"phone\"]}', '{}', now(), now(),
                         $1, $2)
                 RETURNING id
             ), i AS (
                 INSERT INTO auth.identities (provider_id, user_id, identity_data, provider, created_at, updated_at)
                 SELECT u.id::text, u.id, jsonb_build_object('sub', u.id::text, 'phone', '8613700000555'), 'phone', now(), now()
                   FROM u
             )
             SELECT id::text FROM u",
            &[&wechat_sim::openid(APPID, "rue"), &wechat_sim::unionid("rue")],
        )
        .unwrap()
        .get(0);
    let mut rest = db.rest();
    let linked = sign_in_to(&mut rest, LITE, &code("union", "rue")).unwrap();
    assert_eq!(user_id(&linked), user, "linked by the unionid in MemFire's column");
    let lite = identity_of(&linked["user"], LITE);
    rest.rpc("wechat_unlink_identity", json!({"identity_id": lite["identity_id"]}), &as_user(&linked)).unwrap();
    let again = sign_in_to(&mut rest, LITE, &code("union", "rue")).unwrap();
    assert_ne!(user_id(&again), user, "the unlinked openid does not link straight back");
    let mini = sign_in_to(&mut rest, APPID, &code("union", "rue")).unwrap();
    assert_eq!(user_id(&mini), user, "the default mini program is still the user");
}

/// `auth.wechat_move_identity` (service_role) mends the split of `a_late_unionid…`: the mini
/// program's identity moves to the official account's user, with MemFire's columns, providers and
/// audit rows for both; the next mini-program sign-in is that user. Refusals: another openid of
/// the app at the target (422), an unknown identity (404) or user (400), callers other than
/// `service_role`.
fn an_administrator_mends_a_split_person() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let first = oauth_sign_in(&mut rest, OFFICIAL_ACCOUNT, &code("base", "sid")).unwrap();
    let split = sign_in_to(&mut rest, APPID, &code("union", "sid")).unwrap();
    let (keep, gone) = (user_id(&first), user_id(&split));
    let mini = identity_of(&split["user"], APPID);
    let service = Caller::Claims(json!({"role": "service_role"}));
    let move_to = |rest: &mut Rest, identity: &Value, to: &str, caller: &Caller| {
        rest.rpc("wechat_move_identity", json!({"identity_id": identity, "to_user_id": to}), caller)
    };
    for caller in [Caller::Anon, as_user(&first)] {
        let refused = move_to(&mut rest, &mini["identity_id"], &keep, &caller).unwrap_err();
        assert!(matches!(refused.status, 401 | 403), "{refused:?}");
    }
    let moved = move_to(&mut rest, &mini["identity_id"], &keep, &service).unwrap();
    assert_eq!(moved["to"]["id"], keep.as_str());
    assert_eq!(moved["to"]["wechat_id"], wechat_sim::openid(APPID, "sid").as_str());
    assert_eq!(moved["to"]["app_metadata"]["providers"], json!(["wechat_official", "wechat_mini"]));
    assert_eq!(moved["from"]["identities"], json!([]));
    assert_eq!(moved["from"]["wechat_id"], "");
    let audited: i64 = db
        .superuser()
        .query_one(
            "SELECT count(*) FROM auth.audit_log_entries
              WHERE (payload ->> 'action' = 'identity_unlinked' AND payload ->> 'actor_id' = $1)
                 OR (payload ->> 'action' = 'identity_linked' AND payload ->> 'actor_id' = $2)",
            &[&gone, &keep],
        )
        .unwrap()
        .get(0);
    assert_eq!(audited, 2);
    let again = sign_in_to(&mut rest, APPID, &code("union", "sid")).unwrap();
    assert_eq!(user_id(&again), keep, "the person is one user again");

    let other = sign_in_to(&mut rest, APPID, &code("ok", "tad")).unwrap();
    let taken = move_to(&mut rest, &identity_of(&other["user"], APPID)["identity_id"], &keep, &service).unwrap_err();
    assert_eq!((taken.status, taken.error_code().as_str()), (422, "wechat_already_bound"));
    let nobody = move_to(&mut rest, &json!("00000000-0000-4000-8000-000000000000"), &keep, &service).unwrap_err();
    assert_eq!((nobody.status, nobody.error_code().as_str()), (404, "identity_not_found"));
    let no_user =
        move_to(&mut rest, &mini["identity_id"], "00000000-0000-4000-8000-000000000000", &service).unwrap_err();
    assert_eq!((no_user.status, no_user.error_code().as_str()), (400, "validation_failed"));
}
