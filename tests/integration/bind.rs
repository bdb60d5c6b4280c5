//! `auth.wechat_bind_account` and `auth.wechat_bind_phone`: linking, conflicts, callers, races,
//! and the shared access token behind the phone call.

use crate::{as_user, claims, cluster, sign_in, trial};
use auth_wechat_tests::rest::Caller;
use auth_wechat_tests::simstats::{calls, claim_expires_in, fail_next_token_check, revoke_tokens, set_path_latency};
use auth_wechat_tests::{code, RpcError, TestDb, APPID};
use libtest_mimic::Trial;
use serde_json::{json, Value};
use std::sync::{Arc, Barrier};

const LOGIN: &str = "/sns/jscode2session";
const STABLE_TOKEN: &str = "/cgi-bin/stable_token";
const PHONE: &str = "/wxa/business/getuserphonenumber";

pub fn tests() -> Vec<Trial> {
    vec![
        trial(
            "bind::bind_then_wechat_sign_in_reaches_the_same_account",
            bind_then_wechat_sign_in_reaches_the_same_account,
        ),
        trial("bind::openid_of_another_user_is_a_conflict", openid_of_another_user_is_a_conflict),
        trial("bind::caller_bound_to_another_openid_is_refused", caller_bound_to_another_openid_is_refused),
        trial("bind::rebinding_the_same_openid_is_idempotent", rebinding_the_same_openid_is_idempotent),
        trial("bind::anonymous_and_ghost_callers_are_refused", anonymous_and_ghost_callers_are_refused),
        trial("bind::banned_callers_and_ended_sessions_are_refused", banned_callers_and_ended_sessions_are_refused),
        trial("bind::six_users_race_for_one_openid", six_users_race_for_one_openid),
        trial(
            "bind::caller_row_is_not_locked_while_waiting_on_wechat",
            caller_row_is_not_locked_while_waiting_on_wechat,
        ),
        trial("bind::phone_is_stored_confirmed_in_either_format", phone_is_stored_confirmed_in_either_format),
        trial("bind::phone_of_another_user_is_a_conflict", phone_of_another_user_is_a_conflict),
        trial("bind::a_phone_users_phone_identity_follows_the_number", a_phone_users_phone_identity_follows_the_number),
        trial("bind::cold_token_cache_fetches_once_for_sixteen", cold_token_cache_fetches_once_for_sixteen),
        trial("bind::a_failed_fetch_answers_all_who_waited_on_it", a_failed_fetch_answers_all_who_waited_on_it),
        trial("bind::rejected_token_is_refetched_once", rejected_token_is_refetched_once),
        trial(
            "bind::a_token_near_expiry_is_refreshed_while_others_use_it",
            a_token_near_expiry_is_refreshed_while_others_use_it,
        ),
        trial("bind::a_stale_fetch_is_taken_over", a_stale_fetch_is_taken_over),
        trial("bind::token_tools_are_for_superusers", token_tools_are_for_superusers),
        trial("bind::claims_are_not_credentials", claims_are_not_credentials),
        trial("bind::hostile_token_lifetimes_are_bounded", hostile_token_lifetimes_are_bounded),
        trial("bind::binds_may_require_a_recent_sign_in", binds_may_require_a_recent_sign_in),
    ]
}

/// A user who signed up with phone + SMS elsewhere, with a live session, as GoTrue leaves them.
struct PhoneUser {
    id: String,
    session_id: String,
    refresh_token: String,
}

impl PhoneUser {
    /// PostgREST's caller for this user's live session.
    fn caller(&self) -> Caller {
        signed_in(&self.id, Some(&self.session_id))
    }
}

fn phone_user(db: &TestDb, phone: &str) -> PhoneUser {
    let row = db
        .superuser()
        .query_one(
            "WITH u AS (
                 INSERT INTO auth.users (instance_id, id, aud, role, phone, phone_confirmed_at, raw_app_meta_data,
                                         raw_user_meta_data, created_at, updated_at, confirmation_token,
                                         recovery_token, email_change_token_new, email_change)
                 VALUES ('00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated', 'authenticated',
                         $1, now(), '{\"provider\": \"phone\", \"providers\": [\"phone\"]}', '{}', now(), now(), '', '', '', '')
                 RETURNING id
             ), i AS (
                 INSERT INTO auth.identities (provider_id, user_id, identity_data, provider, created_at, updated_at)
                 SELECT u.id::text, u.id, jsonb_build_object('sub', u.id::text, 'phone', $1::text), 'phone', now(), now() FROM u
             ), s AS (
                 INSERT INTO auth.sessions (id, user_id, created_at, updated_at, aal)
                 SELECT gen_random_uuid(), u.id, now(), now(), 'aal1' FROM u RETURNING id, user_id
             ), r AS (
                 INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, session_id)
                 SELECT '00000000-0000-0000-0000-000000000000', substr(md5(random()::text), 1, 12), s.user_id::text,
                        false, now(), now(), s.id FROM s
                 RETURNING token
             )
             SELECT (SELECT id::text FROM u), (SELECT id::text FROM s), (SELECT token FROM r)",
            &[&phone],
        )
        .unwrap();
    PhoneUser { id: row.get(0), session_id: row.get(1), refresh_token: row.get(2) }
}

fn signed_in(user_id: &str, session_id: Option<&str>) -> Caller {
    let mut claims = json!({"role": "authenticated", "aud": "authenticated", "sub": user_id});
    if let Some(session_id) = session_id {
        claims["session_id"] = json!(session_id);
    }
    Caller::Claims(claims)
}

fn bind_account(db: &TestDb, caller: &Caller, code: &str) -> Result<Value, RpcError> {
    db.rest().rpc("wechat_bind_account", json!({ "code": code }), caller)
}

fn bind_phone(db: &TestDb, caller: &Caller, code: &str) -> Result<Value, RpcError> {
    db.rest().rpc("wechat_bind_phone", json!({ "code": code }), caller)
}

fn wechat_id_of(db: &TestDb, user_id: &str) -> String {
    db.superuser()
        .query_one("SELECT coalesce(wechat_id, '') FROM auth.users WHERE id::text = $1", &[&user_id])
        .unwrap()
        .get(0)
}

fn bind_then_wechat_sign_in_reaches_the_same_account() {
    let db = cluster().database(true);
    let user = phone_user(&db, "8613700137000");
    let caller = signed_in(&user.id, Some(&user.session_id));
    let bound = bind_account(&db, &caller, &code("union", "yuki")).expect("bind succeeds");
    let openid = wechat_sim::openid(APPID, "yuki");
    assert_eq!(bound["id"], user.id.as_str(), "the answer is the user");
    assert_eq!(bound["wechat_id"], openid.as_str());
    assert_eq!(bound["wechat_unionid"], wechat_sim::unionid("yuki").as_str());
    assert_eq!(bound["app_metadata"], json!({"provider": "phone", "providers": ["phone", "wechat_mini"]}));
    let providers: Vec<&str> =
        bound["identities"].as_array().unwrap().iter().map(|i| i["provider"].as_str().unwrap()).collect();
    assert_eq!(providers, ["phone", "wechat_mini"]);
    for minted in ["access_token", "refresh_token", "user"] {
        assert!(bound.get(minted).is_none(), "a bind mints nothing: {minted} in {bound}");
    }
    // The caller's next refresh carries the new providers.
    let refreshed = crate::refresh(&db, &user.refresh_token).unwrap();
    assert_eq!(claims(&refreshed)["session_id"], user.session_id.as_str());
    assert_eq!(claims(&refreshed)["app_metadata"]["providers"], json!(["phone", "wechat_mini"]));
    let updated: bool = db
        .superuser()
        .query_one("SELECT updated_at > created_at FROM auth.users WHERE id::text = $1", &[&user.id])
        .unwrap()
        .get(0);
    assert!(updated, "updated_at is bumped");
    let linked = db
        .superuser()
        .query_one(
            "SELECT a.payload ->> 'log_type', a.payload -> 'traits' ->> 'provider_id', i.provider
               FROM auth.audit_log_entries a JOIN auth.identities i ON i.id::text = a.payload -> 'traits' ->> 'identity_id'
              WHERE a.payload ->> 'action' = 'identity_linked'",
            &[],
        )
        .unwrap();
    assert_eq!(
        (linked.get::<_, String>(0), linked.get::<_, String>(1), linked.get::<_, String>(2)),
        ("user".into(), openid.clone(), "wechat_mini".into()),
        "GoTrue's identity_linked row"
    );

    let again = sign_in(&mut db.rest(), &code("ok", "yuki")).unwrap();
    assert_eq!(again["user"]["id"], user.id.as_str(), "WeChat sign-in reaches the bound account");
}

fn openid_of_another_user_is_a_conflict() {
    let db = cluster().database(true);
    let owner = sign_in(&mut db.rest(), &code("ok", "zane")).unwrap();
    let user = phone_user(&db, "8613700137001");
    let error = bind_account(&db, &user.caller(), &code("ok", "zane")).unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (409, "identity_already_exists"));
    assert_eq!(wechat_id_of(&db, &user.id), "", "nothing written");
    assert_eq!(wechat_id_of(&db, owner["user"]["id"].as_str().unwrap()), wechat_sim::openid(APPID, "zane"));
}

fn caller_bound_to_another_openid_is_refused() {
    let db = cluster().database(true);
    let user = phone_user(&db, "8613700137002");
    let caller = user.caller();
    bind_account(&db, &caller, &code("ok", "amy")).unwrap();
    let error = bind_account(&db, &caller, &code("ok", "ben")).unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (422, "wechat_already_bound"));
    assert_eq!(wechat_id_of(&db, &user.id), wechat_sim::openid(APPID, "amy"), "the existing binding is untouched");
}

fn rebinding_the_same_openid_is_idempotent() {
    let db = cluster().database(true);
    let user = phone_user(&db, "8613700137003");
    let caller = signed_in(&user.id, Some(&user.session_id));
    let first = bind_account(&db, &caller, &code("ok", "cleo")).unwrap();
    let second = bind_account(&db, &caller, &code("ok", "cleo")).unwrap();
    assert_eq!(first["wechat_id"], second["wechat_id"]);
    assert_eq!(second["app_metadata"]["providers"], json!(["phone", "wechat_mini"]), "no duplicate provider");
    let identities: i64 = db
        .superuser()
        .query_one("SELECT count(*) FROM auth.identities WHERE provider = 'wechat_mini'", &[])
        .unwrap()
        .get(0);
    assert_eq!(identities, 1);
}

fn anonymous_and_ghost_callers_are_refused() {
    let db = cluster().database(true);
    for function in ["wechat_bind_account", "wechat_bind_phone"] {
        let anon = db.rest().rpc(function, json!({"code": code("ok", "dina")}), &Caller::Anon).unwrap_err();
        assert_eq!((anon.status, anon.sqlstate.as_str()), (401, "42501"), "{function}: {anon:?}");
        let ghost = signed_in("00000000-0000-4000-8000-000000000000", None);
        let error = db.rest().rpc(function, json!({"code": code("ok", "dina")}), &ghost).unwrap_err();
        assert_eq!((error.status, error.error_code().as_str()), (403, "user_not_found"), "{function}");
        let no_sub = Caller::Claims(json!({"role": "authenticated"}));
        let error = db.rest().rpc(function, json!({"code": code("ok", "dina")}), &no_sub).unwrap_err();
        assert_eq!((error.sqlstate.as_str(), error.error_code().as_str()), ("42501", "no_authorization"), "{function}");
    }
    assert_eq!(calls(&db.sim_url(), LOGIN) + calls(&db.sim_url(), PHONE), 0, "no WeChat call");
    let users: i64 = db.superuser().query_one("SELECT count(*) FROM auth.users", &[]).unwrap().get(0);
    assert_eq!(users, 0);
}

fn banned_callers_and_ended_sessions_are_refused() {
    let db = cluster().database(true);
    let user = phone_user(&db, "8613700137005");
    let caller = signed_in(&user.id, Some(&user.session_id));
    db.superuser().execute("DELETE FROM auth.sessions WHERE id::text = $1", &[&user.session_id]).unwrap();
    for function in ["wechat_bind_account", "wechat_bind_phone"] {
        let error = db.rest().rpc(function, json!({"code": code("ok", "jo")}), &caller).unwrap_err();
        assert_eq!(
            (error.status, error.error_code().as_str()),
            (403, "session_not_found"),
            "{function}: a signed-out token"
        );
    }
    db.superuser().execute("UPDATE auth.users SET banned_until = now() + interval '1 day'", &[]).unwrap();
    let error = bind_account(&db, &signed_in(&user.id, None), &code("ok", "jo")).unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (403, "user_banned"));
    assert_eq!(calls(&db.sim_url(), LOGIN), 0, "no code was spent");
    assert_eq!(wechat_id_of(&db, &user.id), "");
}

fn six_users_race_for_one_openid() {
    let db = Arc::new(cluster().database(true));
    let users: Vec<PhoneUser> = (0..6).map(|i| phone_user(&db, &format!("861370013710{i}"))).collect();
    let barrier = Arc::new(Barrier::new(6));
    let workers: Vec<_> = users
        .iter()
        .map(|user| {
            let (db, barrier, caller) = (Arc::clone(&db), Arc::clone(&barrier), user.caller());
            std::thread::spawn(move || {
                let mut rest = db.rest();
                barrier.wait();
                rest.rpc("wechat_bind_account", json!({"code": code("slow.150", "eve")}), &caller)
            })
        })
        .collect();
    let results: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "exactly one wins: {results:?}");
    for error in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!((error.status, error.error_code().as_str()), (409, "identity_already_exists"), "{error:?}");
    }
    let bound: i64 = db
        .superuser()
        .query_one("SELECT count(*) FROM auth.users WHERE wechat_id = $1", &[&wechat_sim::openid(APPID, "eve")])
        .unwrap()
        .get(0);
    assert_eq!(bound, 1);
}

fn caller_row_is_not_locked_while_waiting_on_wechat() {
    let db = Arc::new(cluster().database(true));
    let user = phone_user(&db, "8613700137004");
    let (slow_db, caller) = (Arc::clone(&db), user.caller());
    let slow = std::thread::spawn(move || bind_account(&slow_db, &caller, &code("slow.2000", "finn")));
    auth_wechat_tests::wait_for_calls(&db.sim_url(), LOGIN, 1);
    db.superuser()
        .execute("UPDATE auth.users SET raw_user_meta_data = '{\"nick\": \"x\"}' WHERE id::text = $1", &[&user.id])
        .unwrap();
    assert!(!slow.is_finished(), "the update waited for the bind: the caller's row was locked during the WeChat call");
    slow.join().unwrap().expect("the slow bind succeeds");
}

fn phone_is_stored_confirmed_in_either_format() {
    let db = cluster().database(true);
    let session = sign_in(&mut db.rest(), &code("ok", "gwen")).unwrap();
    let bound = bind_phone(&db, &as_user(&session), &code("phone.86.13800138000", "")).unwrap();
    assert_eq!(bound["phone"], "8613800138000");
    assert!(bound["phone_confirmed_at"].is_string());
    let refreshed = crate::refresh(&db, &crate::token(&session)).unwrap();
    assert_eq!(claims(&refreshed)["phone"], "8613800138000", "the next token carries the phone claim");

    db.set("auth_wechat.phone_format", "national");
    let other = sign_in(&mut db.rest(), &code("ok", "hugo")).unwrap();
    let bound = bind_phone(&db, &as_user(&other), &code("phone.86.13900139000", "")).unwrap();
    assert_eq!(bound["phone"], "13900139000");
}

fn a_phone_users_phone_identity_follows_the_number() {
    let db = cluster().database(true);
    let user = phone_user(&db, "8613700137006");
    let bound =
        bind_phone(&db, &signed_in(&user.id, Some(&user.session_id)), &code("phone.86.13900000007", "")).unwrap();
    assert_eq!(bound["phone"], "8613900000007");
    let phone = bound["identities"].as_array().unwrap().iter().find(|i| i["provider"] == "phone").unwrap();
    assert_eq!(phone["identity_data"]["phone"], "8613900000007");
}

fn phone_of_another_user_is_a_conflict() {
    let db = cluster().database(true);
    phone_user(&db, "8613800138001");
    let session = sign_in(&mut db.rest(), &code("ok", "iris")).unwrap();
    let user_id = session["user"]["id"].as_str().unwrap().to_string();
    let error = bind_phone(&db, &as_user(&session), &code("phone.86.13800138001", "")).unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (409, "phone_exists"));
    let phone: Option<String> =
        db.superuser().query_one("SELECT phone FROM auth.users WHERE id::text = $1", &[&user_id]).unwrap().get(0);
    assert_eq!(phone, None, "nothing written");
    let error = bind_phone(&db, &as_user(&session), &code("ok", "iris")).unwrap_err();
    assert_eq!(
        (error.status, error.error_code().as_str()),
        (400, "invalid_credentials"),
        "a login code is no phone code"
    );
}

/// Sixteen backends find the cache cold at once while the fetch is slow (WeChat answers the token
/// after 500 ms): one fetches, the others wait for it.
fn cold_token_cache_fetches_once_for_sixteen() {
    let db = Arc::new(cluster().database(true));
    set_path_latency(&db.sim_url(), STABLE_TOKEN, 500);
    let users: Vec<Caller> =
        (0..16).map(|i| as_user(&sign_in(&mut db.rest(), &code("ok", &format!("cold{i}"))).unwrap())).collect();
    let barrier = Arc::new(Barrier::new(16));
    let workers: Vec<_> = users
        .into_iter()
        .enumerate()
        .map(|(i, caller)| {
            let (db, barrier) = (Arc::clone(&db), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let mut rest = db.rest();
                barrier.wait();
                rest.rpc("wechat_bind_phone", json!({"code": code(&format!("phone.86.1360000{i:04}"), "")}), &caller)
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap().expect("every bind succeeds");
    }
    assert_eq!(calls(&db.sim_url(), STABLE_TOKEN), 1, "single flight: one token fetch for sixteen backends");
    assert_eq!(calls(&db.sim_url(), "/cgi-bin/token"), 0, "the stable token endpoint is preferred");
}

/// The stampede: sixteen backends need a token while the one fetch of it fails (a slow, then
/// unusable answer). Those who waited on it are refused at once with its error, instead of each
/// fetching in turn on a WeChat that is failing already: a handful of fetches, not sixteen, and no
/// one waits for sixteen of them.
fn a_failed_fetch_answers_all_who_waited_on_it() {
    let db = Arc::new(cluster().database(true));
    set_path_latency(&db.sim_url(), STABLE_TOKEN, 500);
    claim_expires_in(&db.sim_url(), "-1");
    let users: Vec<Caller> =
        (0..16).map(|i| as_user(&sign_in(&mut db.rest(), &code("ok", &format!("herd{i}"))).unwrap())).collect();
    let barrier = Arc::new(Barrier::new(16));
    let started = std::time::Instant::now();
    let workers: Vec<_> = users
        .into_iter()
        .enumerate()
        .map(|(i, caller)| {
            let (db, barrier) = (Arc::clone(&db), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let mut rest = db.rest();
                barrier.wait();
                rest.rpc("wechat_bind_phone", json!({"code": code(&format!("phone.86.1360001{i:04}"), "")}), &caller)
            })
        })
        .collect();
    for worker in workers {
        let error = worker.join().unwrap().expect_err("no token, no bind");
        assert_eq!((error.status, error.error_code().as_str()), (502, "wechat_bad_response"), "{error:?}");
    }
    let fetches = calls(&db.sim_url(), STABLE_TOKEN);
    assert!(fetches <= 3, "those who waited shared the failed fetch's answer: {fetches} fetches");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "no one waited for the others' fetches: {:?}",
        started.elapsed()
    );
}

fn rejected_token_is_refetched_once() {
    let db = cluster().database(true);
    let ids: Vec<Caller> =
        (0..3).map(|i| as_user(&sign_in(&mut db.rest(), &code("ok", &format!("tok{i}"))).unwrap())).collect();
    bind_phone(&db, &ids[0], &code("phone.86.13500000001", "")).unwrap();
    assert_eq!(calls(&db.sim_url(), STABLE_TOKEN), 1);

    revoke_tokens(&db.sim_url());
    bind_phone(&db, &ids[1], &code("phone.86.13500000002", "")).expect("40001 → refetch → retry");
    assert_eq!(calls(&db.sim_url(), STABLE_TOKEN), 2, "one refetch");
    assert_eq!(calls(&db.sim_url(), PHONE), 3, "the refused call, then one retry");

    fail_next_token_check(&db.sim_url(), 40014);
    bind_phone(&db, &ids[2], &code("phone.86.13500000003", "")).expect("40014 → refetch → retry");
    assert_eq!(calls(&db.sim_url(), STABLE_TOKEN), 3);
    assert_eq!(calls(&db.sim_url(), PHONE), 5);

    fail_next_token_check(&db.sim_url(), 42001);
    bind_phone(&db, &ids[2], &code("phone.86.13500000004", "")).expect("42001 (expired) → refetch → retry");
    assert_eq!((calls(&db.sim_url(), STABLE_TOKEN), calls(&db.sim_url(), PHONE)), (4, 7));

    // A fresh token refused too: one refetch, never more, and the error table's 502.
    fail_next_token_check(&db.sim_url(), 40001);
    fail_next_token_check(&db.sim_url(), 40001);
    let error = bind_phone(&db, &ids[2], &code("phone.86.13500000005", "")).unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (502, "wechat_token_rejected"), "{error:?}");
    assert_eq!((calls(&db.sim_url(), STABLE_TOKEN), calls(&db.sim_url(), PHONE)), (5, 9));
    // Another errcode is no token's fault: no refetch, the table's wechat_error.
    fail_next_token_check(&db.sim_url(), 99999);
    let error = bind_phone(&db, &ids[2], &code("phone.86.13500000006", "")).unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (502, "wechat_error"), "{error:?}");
    assert_eq!(error.detail_json()["wechat_errcode"], 99999);
    assert_eq!((calls(&db.sim_url(), STABLE_TOKEN), calls(&db.sim_url(), PHONE)), (5, 10));
}

/// A token near its expiry (WeChat said 301 s: the refresh is due after 1 s) is fetched again by
/// one backend, while the others keep using it without waiting for that fetch; and when that
/// fetch fails (here: slower than the call's limit), its caller uses the token it was to replace.
fn a_token_near_expiry_is_refreshed_while_others_use_it() {
    let db = Arc::new(cluster().database(true));
    let users: Vec<Caller> =
        (0..3).map(|i| as_user(&sign_in(&mut db.rest(), &code("ok", &format!("ahead{i}"))).unwrap())).collect();
    claim_expires_in(&db.sim_url(), "301");
    bind_phone(&db, &users[0], &code("phone.86.13500000101", "")).unwrap();
    assert_eq!(calls(&db.sim_url(), STABLE_TOKEN), 1);
    std::thread::sleep(std::time::Duration::from_millis(1100)); // into the refresh-ahead window
    set_path_latency(&db.sim_url(), STABLE_TOKEN, 3000);
    let refreshing = {
        let (db, caller) = (Arc::clone(&db), users[1].clone());
        std::thread::spawn(move || bind_phone(&db, &caller, &code("phone.86.13500000102", "")))
    };
    auth_wechat_tests::wait_for_calls(&db.sim_url(), STABLE_TOKEN, 2);
    bind_phone(&db, &users[2], &code("phone.86.13500000103", "")).expect("the old token still works");
    assert!(!refreshing.is_finished(), "the third bind did not wait for the refresh");
    assert_eq!(calls(&db.sim_url(), STABLE_TOKEN), 2, "one refresh");
    refreshing.join().unwrap().expect("the refresh timed out, and its caller used the old token");
}

/// A fetcher that dies mid-fetch leaves its mark; once the mark is stale (the HTTP timeout and
/// two seconds), the next backend takes the fetch over instead of waiting for ever.
fn a_stale_fetch_is_taken_over() {
    let db = Arc::new(cluster().database(true));
    db.set("auth_wechat.timeout_ms", "1000");
    let users: Vec<Caller> =
        (0..2).map(|i| as_user(&sign_in(&mut db.rest(), &code("ok", &format!("stale{i}"))).unwrap())).collect();
    set_path_latency(&db.sim_url(), STABLE_TOKEN, 800);
    let dying = {
        let (db, caller) = (Arc::clone(&db), users[0].clone());
        std::thread::spawn(move || bind_phone(&db, &caller, &code("phone.86.13500000201", "")))
    };
    auth_wechat_tests::wait_for_calls(&db.sim_url(), STABLE_TOKEN, 1);
    let killed: bool = db
        .superuser()
        .query_one(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = current_database() AND query LIKE '%wechat_bind_phone%' AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(killed);
    let _ = dying.join();
    set_path_latency(&db.sim_url(), STABLE_TOKEN, 0);
    bind_phone(&db, &users[1], &code("phone.86.13500000202", "")).expect("the stale fetch is taken over");
    assert_eq!(calls(&db.sim_url(), STABLE_TOKEN), 2, "the dead fetch, and the one that took over");
}

fn token_tools_are_for_superusers() {
    let db = cluster().database(true);
    let mut admin = db.superuser();
    let status: Value = admin.query_one("SELECT auth.wechat_access_token_status()", &[]).unwrap().get(0);
    assert_eq!(status["cached"], false, "{status}");
    let refreshed: Value = admin.query_one("SELECT auth.wechat_refresh_access_token()", &[]).unwrap().get(0);
    assert_eq!(refreshed["cached"], true, "{refreshed}");
    let ttl = refreshed["expires_at"].as_i64().unwrap() - refreshed["fetched_at"].as_i64().unwrap();
    assert!((7000..=7200).contains(&ttl), "{refreshed}");
    let tokens = auth_wechat_tests::simstats::secrets(&db.sim_url());
    assert!(!tokens.is_empty(), "the simulator handed out a token");
    for token in &tokens {
        assert!(!refreshed.to_string().contains(token.as_str()), "the token itself is never shown: {refreshed}");
    }
    admin.query_one("SELECT auth.wechat_refresh_access_token(force => true)", &[]).unwrap();
    assert_eq!(calls(&db.sim_url(), STABLE_TOKEN), 2);
    for role in ["anon", "authenticated", "service_role"] {
        let mut client = postgres::Client::connect(&db.conninfo("authenticator"), postgres::NoTls).unwrap();
        client.batch_execute(&format!("SET ROLE {role}")).unwrap();
        for call in ["SELECT auth.wechat_access_token_status()", "SELECT auth.wechat_refresh_access_token()"] {
            let error = client.query_one(call, &[]).unwrap_err();
            assert_eq!(error.code().map(|c| c.code()), Some("42501"), "{role}: {call}");
        }
    }
}

/// `request.jwt.claims` is a setting any SQL caller can write: claims that name no live session
/// of their user get nothing, before any WeChat call, and never a new refresh token.
fn claims_are_not_credentials() {
    let db = cluster().database(true);
    let victim = sign_in(&mut db.rest(), &code("ok", "vic")).unwrap();
    let other = sign_in(&mut db.rest(), &code("ok", "olly")).unwrap();
    let ended = sign_in(&mut db.rest(), &code("ok", "vic")).unwrap();
    db.rest().rpc("wechat_sign_out", json!({}), &as_user(&ended)).unwrap();
    let revoked = sign_in(&mut db.rest(), &code("ok", "vic")).unwrap();
    db.superuser()
        .execute(
            "UPDATE auth.refresh_tokens SET revoked = true WHERE session_id::text = $1",
            &[&claims(&revoked)["session_id"].as_str().unwrap()],
        )
        .unwrap();
    let user_id = victim["user"]["id"].clone();
    let with_session = |session_id: Value| {
        let mut claims = json!({"role": "authenticated", "aud": "authenticated", "sub": user_id});
        if !session_id.is_null() {
            claims["session_id"] = session_id;
        }
        Caller::Claims(claims)
    };
    let cases = [
        ("no session_id", with_session(Value::Null)),
        ("an unknown session", with_session(json!("00000000-0000-4000-8000-00000000abcd"))),
        ("another user's session", with_session(claims(&other)["session_id"].clone())),
        ("a signed-out session", with_session(claims(&ended)["session_id"].clone())),
        ("a session with every token revoked", with_session(claims(&revoked)["session_id"].clone())),
    ];
    let rows = |db: &TestDb| -> (i64, i64) {
        let row = db
            .superuser()
            .query_one("SELECT (SELECT count(*) FROM auth.refresh_tokens), (SELECT count(*) FROM auth.sessions)", &[])
            .unwrap();
        (row.get(0), row.get(1))
    };
    let before = rows(&db);
    let logins = calls(&db.sim_url(), LOGIN);
    for (case, caller) in &cases {
        for (function, body) in [
            ("wechat_bind_account", json!({"code": code("ok", "vic")})),
            ("wechat_bind_phone", json!({"code": code("phone.86.13800000077", "")})),
            ("wechat_sign_out", json!({"scope": "global"})),
            ("wechat_sign_out", json!({"scope": "others"})),
        ] {
            let error = db.rest().rpc(function, body, caller).unwrap_err();
            assert_eq!((error.status, error.error_code().as_str()), (403, "session_not_found"), "{function}, {case}");
        }
    }
    assert_eq!(rows(&db), before, "no session or refresh token was made or ended");
    assert_eq!(calls(&db.sim_url(), LOGIN), logins, "no WeChat call");
    assert_eq!(calls(&db.sim_url(), PHONE), 0, "no WeChat call");
    // The victim's live session is untouched and still works.
    db.rest().rpc("wechat_bind_phone", json!({"code": code("phone.86.13800000077", "")}), &as_user(&victim)).unwrap();
}

/// A token lifetime from WeChat meets the clock only bounded: a huge `expires_in` is capped at
/// WeChat's 7200 s, nonsense is refused.
fn hostile_token_lifetimes_are_bounded() {
    let db = cluster().database(true);
    let mut admin = db.superuser();
    claim_expires_in(&db.sim_url(), "9223372036854775807");
    let status: Value = admin.query_one("SELECT auth.wechat_refresh_access_token()", &[]).unwrap().get(0);
    let ttl = status["expires_at"].as_i64().unwrap() - status["fetched_at"].as_i64().unwrap();
    assert_eq!(ttl, 7200, "{status}");
    for nonsense in ["-1", "0", "1e300", "%2271%22"] {
        claim_expires_in(&db.sim_url(), nonsense);
        let error = admin.query_one("SELECT auth.wechat_refresh_access_token(force => true)", &[]).unwrap_err();
        let db_error = error.as_db_error().unwrap();
        assert_eq!(db_error.code().code(), "PT502", "{nonsense}: {db_error:?}");
        assert!(db_error.message().contains("expires_in"), "{nonsense}: {}", db_error.message());
    }
}

/// With `auth_wechat.bind_requires_sign_in_within`, a stolen access token of an old session can
/// no longer attach the thief's WeChat or phone: the session's latest sign-in must be recent.
/// Refreshing does not count as signing in; a new sign-in does.
fn binds_may_require_a_recent_sign_in() {
    let db = cluster().database(true);
    db.set("auth_wechat.bind_requires_sign_in_within", "5min");
    let session = sign_in(&mut db.rest(), &code("ok", "rita")).unwrap();
    bind_phone(&db, &as_user(&session), &code("phone.86.13700000201", "")).expect("a fresh session may bind");
    db.superuser()
        .batch_execute(
            "UPDATE auth.sessions SET created_at = created_at - interval '10 minutes';
             UPDATE auth.mfa_amr_claims SET updated_at = updated_at - interval '10 minutes'",
        )
        .unwrap();
    let refreshed = crate::refresh(&db, &crate::token(&session)).unwrap();
    let spent = calls(&db.sim_url(), LOGIN) + calls(&db.sim_url(), PHONE);
    for (function, body) in [
        ("wechat_bind_account", json!({"code": code("ok", "thief")})),
        ("wechat_bind_phone", json!({"code": code("phone.86.13700000202", "")})),
    ] {
        let error = db.rest().rpc(function, body, &as_user(&refreshed)).unwrap_err();
        assert_eq!((error.status, error.error_code().as_str()), (400, "reauthentication_needed"), "{function}");
    }
    assert_eq!(calls(&db.sim_url(), LOGIN) + calls(&db.sim_url(), PHONE), spent, "no code was spent");
    let again = sign_in(&mut db.rest(), &code("ok", "rita")).unwrap();
    bind_phone(&db, &as_user(&again), &code("phone.86.13700000203", "")).expect("a new sign-in may bind");
}
