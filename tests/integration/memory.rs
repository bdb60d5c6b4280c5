//! The shared memory's tables when a caller aims at them: the memory of stolen sessions and the
//! refresh budgets are placed by a keyed hash no caller can compute, a live mark is never pushed
//! out, a budget is never forgotten before it has refilled, and budgets refill. Sessions whose ids
//! share a bucket under the fixed hash the extension used before (Rust's `DefaultHasher::new()`,
//! SipHash with fixed keys) are made here directly in `auth.sessions`, as a caller who signs in
//! often enough could pick them.

use crate::abuse::refresh_rolled_back;
use crate::{cluster, refresh, sign_in, token, trial};
use auth_wechat_tests::rest::Caller;
use auth_wechat_tests::{code, RpcError, TestDb};
use libtest_mimic::Trial;
use serde_json::{json, Value};
use std::hash::{Hash, Hasher};

pub fn tests() -> Vec<Trial> {
    vec![
        trial(
            "memory::rolled_back_thefts_never_push_a_stolen_sessions_mark_out",
            rolled_back_thefts_never_push_a_stolen_sessions_mark_out,
        ),
        trial("memory::sessions_of_one_bucket_keep_their_own_budgets", sessions_of_one_bucket_keep_their_own_budgets),
        trial("memory::a_spent_budget_refills", a_spent_budget_refills),
        trial("memory::a_client_address_has_a_refresh_budget_too", a_client_address_has_a_refresh_budget_too),
    ]
}

/// A session id's bucket under the old fixed hash, among `buckets`.
fn old_bucket(id: &[u8; 16], buckets: u64) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut hasher);
    hasher.finish() % buckets
}

fn uuid_bytes(text: &str) -> [u8; 16] {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    let mut bytes = [0u8; 16];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    bytes
}

/// `n` random session ids that share `target`'s bucket among `buckets` under the old hash.
fn ids_in_the_bucket_of(db: &TestDb, target: &str, buckets: u64, n: usize) -> Vec<String> {
    let bucket = old_bucket(&uuid_bytes(target), buckets);
    let mut found = Vec::new();
    let mut admin = db.superuser();
    while found.len() < n {
        for row in admin.query("SELECT gen_random_uuid()::text FROM generate_series(1, 20000)", &[]).unwrap() {
            let id: String = row.get(0);
            if found.len() < n && old_bucket(&uuid_bytes(&id), buckets) == bucket {
                found.push(id);
            }
        }
    }
    found
}

/// A session `id` of `user_id` with one live v1 refresh token, made directly; returns the token.
fn session_with_id(db: &TestDb, user_id: &str, id: &str) -> String {
    db.superuser()
        .query_one(
            "WITH s AS (
                 INSERT INTO auth.sessions (id, user_id, created_at, updated_at, aal)
                 VALUES ($2::text::uuid, $1::text::uuid, now(), now(), 'aal1') RETURNING id
             )
             INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, session_id)
             SELECT '00000000-0000-0000-0000-000000000000', substr(md5(random()::text), 1, 12), $1, false, now(), now(), s.id
               FROM s
             RETURNING token",
            &[&user_id, &id],
        )
        .unwrap()
        .get(0)
}

fn status(result: &Result<Value, RpcError>) -> (u16, String) {
    match result {
        Ok(_) => (200, String::new()),
        Err(error) => (error.status, error.error_code()),
    }
}

/// A thief rolls back the theft answer for a victim's session, then rolls back thefts of sessions
/// of its own chosen to share the victim's bucket (four pushed the victim's mark out before): the
/// victim's session stays ended for the victim's current token.
fn rolled_back_thefts_never_push_a_stolen_sessions_mark_out() {
    let db = cluster().database(true);
    db.set("auth_wechat.refresh_token_reuse_interval", "0");
    let first = sign_in(&mut db.rest(), &code("ok", "vera")).unwrap();
    let current = refresh(&db, &token(&refresh(&db, &token(&first)).unwrap())).unwrap();
    let victim = crate::claims(&current)["session_id"].as_str().unwrap().to_string();
    assert_eq!(refresh_rolled_back(&db, &token(&first))["code"], "refresh_token_already_used");

    let thief = sign_in(&mut db.rest(), &code("ok", "tom")).unwrap();
    let thief_id = thief["user"]["id"].as_str().unwrap().to_string();
    for id in ids_in_the_bucket_of(&db, &victim, 256, 12) {
        let old = session_with_id(&db, &thief_id, &id);
        let next = refresh(&db, &old).expect("the thief's own session rotates");
        refresh(&db, &token(&next)).expect("and rotates again");
        assert_eq!(refresh_rolled_back(&db, &old)["code"], "refresh_token_already_used", "a rolled-back theft");
    }
    let after = refresh(&db, &token(&current));
    assert_eq!(status(&after), (400, "refresh_token_already_used".into()), "the stolen session came back");
}

/// Five sessions whose ids shared one bucket of the old table (of four places) took turns pushing
/// each other out, each starting from a full budget every time: unlimited refreshes. Each has its
/// own budget now. (One refresh per 5 minutes refills: none comes back while the test runs.)
fn sessions_of_one_bucket_keep_their_own_budgets() {
    let db = cluster().database(true);
    db.set("auth_wechat.rate_limit_token_refresh", "1");
    let user = sign_in(&mut db.rest(), &code("ok", "rolf")).unwrap();
    let user_id = user["user"]["id"].as_str().unwrap().to_string();
    let target = crate::claims(&user)["session_id"].as_str().unwrap().to_string();
    let mut tokens: Vec<String> =
        ids_in_the_bucket_of(&db, &target, 2048, 5).iter().map(|id| session_with_id(&db, &user_id, id)).collect();
    let mut refused = 0;
    for _round in 0..31 {
        for token in tokens.iter_mut() {
            match refresh(&db, token) {
                Ok(session) => *token = crate::token(&session),
                Err(error) => {
                    assert_eq!((error.status, error.error_code().as_str()), (429, "over_request_rate_limit"));
                    refused += 1;
                }
            }
        }
    }
    assert_eq!(refused, 5, "each session's 31st refresh is past its burst of 30");
}

/// A budget spent to its burst refills at `auth_wechat.rate_limit_token_refresh` (150 per 5
/// minutes: one every 2 s), after the `Retry-After` it answered.
fn a_spent_budget_refills() {
    let db = cluster().database(true);
    let mut session = sign_in(&mut db.rest(), &code("ok", "ruth")).unwrap();
    for _ in 0..30 {
        session = refresh(&db, &token(&session)).unwrap();
    }
    let refused = refresh(&db, &token(&session)).unwrap_err();
    assert_eq!(refused.status, 429);
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3).contains(&retry_after), "one refresh back within 2 s: {retry_after}");
    std::thread::sleep(std::time::Duration::from_millis(retry_after * 1000 + 200));
    refresh(&db, &token(&session)).expect("the budget refilled");
}

/// As GoTrue counts refreshes per client address: with `auth_wechat.rate_limit_header`, one
/// address's refreshes across many sessions share a budget of their own, and another address has
/// its own.
fn a_client_address_has_a_refresh_budget_too() {
    let db = cluster().database(true);
    db.set("auth_wechat.rate_limit_header", "x-real-ip");
    let from = |ip: &str, token: &str| {
        let headers = json!({"user-agent": "memory-test", "x-real-ip": ip});
        db.rest().rpc_with_headers(
            "auth",
            "wechat_refresh_session",
            json!({"refresh_token": token}),
            &Caller::Anon,
            headers,
        )
    };
    let mut tokens: Vec<String> =
        (0..3).map(|i| token(&sign_in(&mut db.rest(), &code("ok", &format!("nat{i}"))).unwrap())).collect();
    for round in 0..10 {
        for token in tokens.iter_mut() {
            let session = from("198.51.100.77", token).unwrap_or_else(|e| panic!("round {round}: {e:?}"));
            *token = crate::token(&session);
        }
    }
    let refused = from("198.51.100.77", &tokens[0]).unwrap_err();
    assert_eq!((refused.status, refused.error_code().as_str()), (429, "over_request_rate_limit"), "the 31st");
    from("198.51.100.78", &tokens[0]).expect("another address has its own budget");
}
