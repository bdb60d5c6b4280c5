//! What a thief or a flood can get: theft detection that no rollback undoes (from SQL and
//! through PostgREST's `Prefer: tx=rollback`), the per-session refresh budget, the per-client
//! share of WeChat calls, and refusals that PostgREST passes on without taking them for a lost
//! database.

use crate::{as_user, cluster, refresh, sign_in, token, trial};
use auth_wechat_tests::postgrest::PostgRest;
use auth_wechat_tests::rest::Caller;
use auth_wechat_tests::simstats::{calls, set_latency};
use auth_wechat_tests::{code, RpcError, TestDb, JWT_SECRET};
use libtest_mimic::Trial;
use postgres::{Client, NoTls};
use serde_json::{json, Value};

pub fn tests() -> Vec<Trial> {
    vec![
        trial("abuse::a_rolled_back_theft_still_ends_the_session", a_rolled_back_theft_still_ends_the_session),
        trial(
            "abuse::a_rolled_back_v2_probe_never_leads_to_the_current_token",
            a_rolled_back_v2_probe_never_leads_to_the_current_token,
        ),
        trial("abuse::prefer_tx_rollback_does_not_undo_a_theft", prefer_tx_rollback_does_not_undo_a_theft),
        trial("abuse::a_session_refreshes_within_its_budget", a_session_refreshes_within_its_budget),
        trial("abuse::a_client_past_its_share_waits_its_turn", a_client_past_its_share_waits_its_turn),
        trial("abuse::the_last_place_is_for_quiet_clients", the_last_place_is_for_quiet_clients),
        trial("abuse::one_cap_for_every_app_of_an_api", one_cap_for_every_app_of_an_api),
        trial("abuse::refusals_do_not_make_postgrest_reconnect", refusals_do_not_make_postgrest_reconnect),
    ]
}

const LOGIN: &str = "/sns/jscode2session";

fn postgrest_uri(db: &TestDb) -> String {
    format!("postgres://authenticator@127.0.0.1:{}/{}", cluster().port(), db.name)
}

fn count(db: &TestDb, sql: &str) -> i64 {
    db.superuser().query_one(sql, &[]).unwrap().get(0)
}

/// `wechat_refresh_session` as any SQL client with `anon`'s rights may call it: in a transaction
/// that it then rolls back.
pub fn refresh_rolled_back(db: &TestDb, token: &str) -> Value {
    let mut client = Client::connect(&db.conninfo("authenticator"), NoTls).unwrap();
    let mut tx = client.transaction().unwrap();
    tx.batch_execute("SET LOCAL ROLE anon").unwrap();
    let answer: Value = tx.query_one("SELECT auth.wechat_refresh_session($1)", &[&token]).unwrap().get(0);
    tx.rollback().unwrap();
    answer
}

/// A thief probes with an old token and rolls back: the session row survives the rollback, but
/// the session is ended all the same, for every token and every path, and the next refresh's
/// commit removes it.
fn a_rolled_back_theft_still_ends_the_session() {
    let db = cluster().database(true);
    db.set("auth_wechat.refresh_token_reuse_interval", "0");
    let first = sign_in(&mut db.rest(), &code("ok", "vicky")).unwrap();
    let second = refresh(&db, &token(&first)).unwrap();
    let third = refresh(&db, &token(&second)).unwrap();
    let probe = refresh_rolled_back(&db, &token(&first));
    assert_eq!(probe["code"], "refresh_token_already_used", "{probe}");
    assert_eq!(count(&db, "SELECT count(*) FROM auth.sessions"), 1, "the probe's transaction rolled back");

    let user = db.rest().rpc("wechat_user", json!({}), &as_user(&third)).unwrap_err();
    assert_eq!((user.status, user.error_code().as_str()), (403, "session_not_found"));
    let victim = refresh(&db, &token(&third)).unwrap_err();
    assert_eq!((victim.status, victim.error_code().as_str()), (400, "refresh_token_already_used"));
    assert_eq!(count(&db, "SELECT count(*) FROM auth.sessions"), 0, "this answer's commit ended it");
    let after = refresh(&db, &token(&third)).unwrap_err();
    assert_eq!((after.status, after.error_code().as_str()), (400, "refresh_token_not_found"));
    for probe in [&first, &second] {
        let error = refresh(&db, &token(probe)).unwrap_err();
        assert_eq!(error.status, 400, "an old token gets no session");
    }
}

/// v2's reuse interval hands an older token the current one for a while after each refresh (two
/// tabs refreshing at once). Without a durable theft answer, a thief could probe with an old token
/// in transactions that roll back until the victim refreshed, then take the current token.
fn a_rolled_back_v2_probe_never_leads_to_the_current_token() {
    let db = cluster().database(true);
    db.set("auth_wechat.refresh_token_algorithm", "v2");
    db.set("auth_wechat.refresh_token_reuse_interval", "60");
    let first = sign_in(&mut db.rest(), &code("ok", "vince")).unwrap();
    let second = refresh(&db, &token(&first)).unwrap();
    let third = refresh(&db, &token(&second)).unwrap();
    db.superuser().execute("UPDATE auth.sessions SET refreshed_at = refreshed_at - interval '5 minutes'", &[]).unwrap();
    let probe = refresh_rolled_back(&db, &token(&first));
    assert_eq!(probe["code"], "refresh_token_already_used", "two counters behind, not recent: {probe}");

    // The victim's refresh no longer rotates, so no reuse window opens for the thief.
    let victim = refresh(&db, &token(&third)).unwrap_err();
    assert_eq!((victim.status, victim.error_code().as_str()), (400, "refresh_token_already_used"));
    let thief = refresh(&db, &token(&first)).unwrap_err();
    assert_eq!((thief.status, thief.error_code().as_str()), (400, "refresh_token_not_found"));
    assert_eq!(count(&db, "SELECT count(*) FROM auth.sessions"), 0);
}

/// PostgREST lets a client ask for a rollback (`db-tx-end = commit-allow-override`,
/// `Prefer: tx=rollback`): the theft answer still ends the session.
fn prefer_tx_rollback_does_not_undo_a_theft() {
    let db = cluster().database(true);
    db.set("auth_wechat.refresh_token_reuse_interval", "0");
    db.superuser().batch_execute("SELECT auth.wechat_expose()").unwrap();
    let rest = PostgRest::start_with(&postgrest_uri(&db), JWT_SECRET, &[("PGRST_DB_TX_END", "commit-allow-override")]);
    let rpc = |function: &str, body: Value, prefer: &[(&str, &str)]| {
        rest.post_with(&format!("/rpc/{function}"), &body, None, prefer)
    };
    let first = rpc("wechat_sign_in", json!({"code": code("ok", "wanda")}), &[]);
    assert_eq!(first.status, 200, "{}", first.body);
    let second = rpc("wechat_refresh_session", json!({"refresh_token": first.body["refresh_token"]}), &[]).body;
    let third = rpc("wechat_refresh_session", json!({"refresh_token": second["refresh_token"]}), &[]).body;
    let probe = rpc(
        "wechat_refresh_session",
        json!({"refresh_token": first.body["refresh_token"]}),
        &[("Prefer", "tx=rollback")],
    );
    assert_eq!((probe.status, &probe.body["code"]), (400, &json!("refresh_token_already_used")), "{}", probe.body);
    assert_eq!(probe.header("preference-applied"), Some("tx=rollback"), "PostgREST rolled the probe back");
    let victim = rpc("wechat_refresh_session", json!({"refresh_token": third["refresh_token"]}), &[]);
    assert_eq!((victim.status, &victim.body["code"]), (400, &json!("refresh_token_already_used")));
    assert_eq!(count(&db, "SELECT count(*) FROM auth.sessions"), 0);
}

/// `auth_wechat.rate_limit_token_refresh` (bursts of 30, as GoTrue's): the first 30 refreshes
/// after a sign-in rotate as always; the next is refused with 429 and `Retry-After`, writing
/// nothing; at 0 there is no limit. Through a real PostgREST the header reaches the client. The
/// budget is set to 1 per 5 minutes, so that no refresh comes back while the test runs.
fn a_session_refreshes_within_its_budget() {
    let db = cluster().database(true);
    db.set("auth_wechat.rate_limit_token_refresh", "1");
    let retry_after = |value: Option<&str>| {
        let seconds: u32 = value.expect("a Retry-After header").parse().unwrap();
        assert!((200..=300).contains(&seconds), "one refresh comes back within 300 s: {seconds}");
    };
    let mut session = sign_in(&mut db.rest(), &code("ok", "xena")).unwrap();
    for _ in 0..30 {
        session = refresh(&db, &token(&session)).unwrap();
    }
    let rows = |db: &TestDb| {
        (
            count(db, "SELECT count(*) FROM auth.refresh_tokens"),
            count(db, "SELECT count(*) FROM auth.audit_log_entries"),
        )
    };
    let before = rows(&db);
    let refused = refresh(&db, &token(&session)).unwrap_err();
    assert_eq!((refused.status, refused.error_code().as_str()), (429, "over_request_rate_limit"), "{refused:?}");
    retry_after(refused.header("retry-after"));
    assert_eq!(rows(&db), before, "a refused refresh writes nothing");
    let other = sign_in(&mut db.rest(), &code("ok", "yann")).unwrap();
    refresh(&db, &token(&other)).expect("the budget is the session's own");

    db.superuser().batch_execute("SELECT auth.wechat_expose()").unwrap();
    let rest = PostgRest::start(&postgrest_uri(&db), JWT_SECRET);
    let answer = rest.post("/rpc/wechat_refresh_session", &json!({"refresh_token": token(&session)}), None);
    assert_eq!(answer.status, 429, "{}", answer.body);
    retry_after(answer.header("retry-after"));
    assert_eq!(answer.body["code"], "PT429", "the body of any other error: {}", answer.body);
    let details: Value = serde_json::from_str(answer.body["details"].as_str().unwrap()).unwrap();
    assert_eq!(details["error_code"], "over_request_rate_limit");

    db.set("auth_wechat.rate_limit_token_refresh", "0");
    for _ in 0..3 {
        session = refresh(&db, &token(&session)).expect("no limit at 0");
    }
}

/// A sign-in from the client the gateway's header names.
fn sign_in_from(db: &TestDb, client_ip: &str, code: &str) -> Result<Value, RpcError> {
    let headers = json!({"user-agent": "abuse-test", "x-real-ip": client_ip});
    db.rest().rpc_with_headers("auth", "wechat_sign_in", json!({ "code": code }), &Caller::Anon, headers)
}

/// With `auth_wechat.rate_limit_header`, a client that kept WeChat busy past its share is refused
/// at once (429, `Retry-After`, no WeChat call) while another client is let through; without the
/// setting clients are not told apart. Here the share is half a place (0.05 of ten), so two
/// seconds of it is one second of WeChat time: one 1.2 s sign-in spends it.
fn a_client_past_its_share_waits_its_turn() {
    let db = cluster().database(true);
    db.set("auth_wechat.max_concurrent_requests", "10");
    db.set("auth_wechat.client_share", "0.05");
    db.set("auth_wechat.rate_limit_header", "X-Real-IP");
    sign_in_from(&db, "198.51.100.1", &code("slow.1200", "flooder")).expect("within its share");
    let before = calls(&db.sim_url(), LOGIN);
    let refused = sign_in_from(&db, "198.51.100.1", &code("ok", "flooder")).unwrap_err();
    assert_eq!((refused.status, refused.error_code().as_str()), (429, "over_request_rate_limit"), "{refused:?}");
    let retry_after: u32 = refused.header("retry-after").expect("Retry-After").parse().unwrap();
    // The call's time past the 1 s allowance (a little over 0.2 s), drained at half a place.
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(calls(&db.sim_url(), LOGIN), before, "the refused call never reached WeChat");
    sign_in_from(&db, "198.51.100.2", &code("ok", "neighbour")).expect("another client has its own share");
    // Of a list, the last value counts (what the gateway appended), not what the client sent.
    let refused = sign_in_from(&db, "198.51.100.9, 198.51.100.1", &code("ok", "flooder")).unwrap_err();
    assert_eq!(refused.status, 429, "a client that prepends an address of its own is still itself");
    sign_in_from(&db, "198.51.100.1, 198.51.100.3", &code("ok", "behind")).expect("the last address of a list counts");

    db.set("auth_wechat.rate_limit_header", "");
    sign_in_from(&db, "198.51.100.1", &code("ok", "flooder")).expect("clients are not told apart without the setting");
}

/// A client over half its allowance may not take the bulkhead's last free place; a client that
/// calls rarely may. Two places and a share of one (allowance 2 s of WeChat time): client A's
/// first call, held in flight past one second, makes A heavy before it is over its share.
fn the_last_place_is_for_quiet_clients() {
    let db = std::sync::Arc::new(cluster().database(true));
    db.set("auth_wechat.max_concurrent_requests", "2");
    db.set("auth_wechat.client_share", "0.5");
    db.set("auth_wechat.rate_limit_header", "x-real-ip");
    db.set("auth_wechat.timeout_ms", "2900");
    let first = {
        let db = std::sync::Arc::clone(&db);
        std::thread::spawn(move || sign_in_from(&db, "198.51.100.7", &code("slow.2600", "heavy")))
    };
    auth_wechat_tests::wait_for_calls(&db.sim_url(), LOGIN, 1);
    // In flight for more than half of A's 2 s allowance, and (with a margin) less than all of it.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let refused = sign_in_from(&db, "198.51.100.7", &code("ok", "heavy2")).unwrap_err();
    assert_eq!((refused.status, refused.error_code().as_str()), (429, "over_request_rate_limit"), "{refused:?}");
    assert!(refused.message.contains("max_concurrent_requests"), "the last place, not the share: {}", refused.message);
    sign_in_from(&db, "198.51.100.8", &code("ok", "quiet")).expect("a quiet client takes the last place");
    first.join().unwrap().expect("A's first call went through");
}

/// `auth_wechat.max_concurrent_requests` holds for the API base, whatever app a call is for: with
/// two slow sign-ins of two mini programs in flight and a cap of two, a third app's call is
/// refused at once (three apps held three times the cap before).
fn one_cap_for_every_app_of_an_api() {
    let db = std::sync::Arc::new(cluster().database(true));
    db.set("auth_wechat.max_concurrent_requests", "2");
    let held: Vec<_> = [auth_wechat_tests::APPID, auth_wechat_tests::LITE]
        .into_iter()
        .map(|appid| {
            let db = std::sync::Arc::clone(&db);
            std::thread::spawn(move || {
                let body = json!({"code": code("slow.1500", "held"), "appid": appid});
                db.rest().rpc("wechat_sign_in", body, &Caller::Anon)
            })
        })
        .collect();
    auth_wechat_tests::wait_for_calls(&db.sim_url(), LOGIN, 2);
    let body = json!({"code": code("userinfo", "third"), "appid": auth_wechat_tests::OFFICIAL_ACCOUNT});
    let refused = db.rest().rpc("wechat_oauth_sign_in", body, &Caller::Anon).unwrap_err();
    assert_eq!((refused.status, refused.error_code().as_str()), (429, "over_request_rate_limit"), "{refused:?}");
    assert!(refused.message.contains("max_concurrent_requests"), "{}", refused.message);
    assert_eq!(calls(&db.sim_url(), "/sns/oauth2/access_token"), 0, "the third app's call never reached WeChat");
    for call in held {
        call.join().unwrap().expect("the two calls in flight went through");
    }
}

/// The count of `line` in PostgREST's log.
fn logged(rest: &PostgRest, line: &str) -> usize {
    rest.log().matches(line).count()
}

/// PostgREST takes any 503 for a lost database: it reconnects and reloads its schema cache. A
/// burst of refusals (the bulkhead full, then the breaker open) must come back at once with their
/// status and `Retry-After`, and PostgREST must not start over.
fn refusals_do_not_make_postgrest_reconnect() {
    let db = std::sync::Arc::new(cluster().database(true));
    db.superuser().batch_execute("SELECT auth.wechat_expose()").unwrap();
    db.set("auth_wechat.max_concurrent_requests", "1");
    set_latency(&db.sim_url(), 1500);
    let rest = std::sync::Arc::new(PostgRest::start(&postgrest_uri(&db), JWT_SECRET));
    let (starts, loads) = (logged(&rest, "Starting PostgREST"), logged(&rest, "Schema cache loaded"));
    assert_eq!((starts, loads), (1, 1), "{}", rest.log());
    let held = {
        let rest = std::sync::Arc::clone(&rest);
        std::thread::spawn(move || rest.post("/rpc/wechat_sign_in", &json!({"code": code("ok", "holder")}), None))
    };
    auth_wechat_tests::wait_for_calls(&db.sim_url(), LOGIN, 1);
    for i in 0..7 {
        let refused = rest.post("/rpc/wechat_sign_in", &json!({"code": code("ok", &format!("burst{i}"))}), None);
        assert_eq!(refused.status, 429, "{}", refused.body);
        assert_eq!(refused.header("retry-after"), Some("1"));
        assert_eq!(refused.body["code"], "PT429", "{}", refused.body);
    }
    // PostgREST's reconnection runs on a thread of its own after a 503 answer: the held call's
    // remaining second gives it time to show in the log.
    assert_eq!(held.join().unwrap().status, 200, "the call inside the cap went through");
    assert_eq!(
        logged(&rest, "Starting PostgREST"),
        1,
        "PostgREST restarted after the bulkhead's refusals:\n{}",
        rest.log()
    );
    assert_eq!(logged(&rest, "Schema cache loaded"), 1, "PostgREST reloaded after the bulkhead's refusals");

    // The breaker: one timeout opens it, and every call then fails fast.
    drop(rest);
    db.set("auth_wechat.timeout_ms", "300");
    db.set("auth_wechat.breaker_failures", "1");
    let rest = PostgRest::start(&postgrest_uri(&db), JWT_SECRET);
    let timed_out = rest.post("/rpc/wechat_sign_in", &json!({"code": code("ok", "slowpoke")}), None);
    assert_eq!(timed_out.status, 504, "{}", timed_out.body);
    for i in 0..7 {
        let refused = rest.post("/rpc/wechat_sign_in", &json!({"code": code("ok", &format!("open{i}"))}), None);
        assert_eq!(refused.status, 502, "{}", refused.body);
        let wait: u32 = refused.header("retry-after").expect("Retry-After").parse().unwrap();
        assert!((1..=10).contains(&wait), "the cool-down left: {wait}");
    }
    let answered = rest.get("/rpc/wechat_jwks", None);
    assert_eq!(answered.status, 200, "{}", answered.body);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        logged(&rest, "Starting PostgREST"),
        1,
        "PostgREST restarted after the breaker's refusals:\n{}",
        rest.log()
    );
    assert_eq!(logged(&rest, "Schema cache loaded"), 1, "PostgREST reloaded after the breaker's refusals");
}
