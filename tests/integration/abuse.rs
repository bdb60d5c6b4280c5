//! What a thief or a flood can get: theft detection that no rollback undoes (from SQL and
//! through PostgREST's `Prefer: tx=rollback`), and the per-session refresh budget.

use crate::{as_user, cluster, refresh, sign_in, token, trial};
use auth_wechat_tests::postgrest::PostgRest;
use auth_wechat_tests::{code, TestDb, JWT_SECRET};
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
    ]
}

fn count(db: &TestDb, sql: &str) -> i64 {
    db.superuser().query_one(sql, &[]).unwrap().get(0)
}

/// `wechat_refresh_session` as any SQL client with `anon`'s rights may call it: in a transaction
/// that it then rolls back.
fn refresh_rolled_back(db: &TestDb, token: &str) -> Value {
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
    let uri = format!("postgres://authenticator@127.0.0.1:{}/{}", cluster().port(), db.name);
    let rest = PostgRest::start_with(&uri, JWT_SECRET, &[("PGRST_DB_TX_END", "commit-allow-override")]);
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
    let uri = format!("postgres://authenticator@127.0.0.1:{}/{}", cluster().port(), db.name);
    let rest = PostgRest::start(&uri, JWT_SECRET);
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
