//! GoTrue's v2 refresh tokens (`auth_wechat.refresh_token_algorithm = v2`, and sessions GoTrue
//! made): counter, reuse, theft and forgery, checked with tokens built by the tests' own
//! implementation of GoTrue's format.

use crate::{as_user, claims, cluster, refresh, sign_in, token, trial};
use auth_wechat_tests::{code, v2token, TestDb};
use libtest_mimic::Trial;
use serde_json::{json, Value};

pub fn tests() -> Vec<Trial> {
    vec![
        trial("refresh_v2::v2_sessions_refresh_as_gotrue", v2_sessions_refresh_as_gotrue),
        trial("refresh_v2::sessions_gotrue_made_work_everywhere", sessions_gotrue_made_work_everywhere),
        trial("refresh_v2::a_schema_without_v2_columns_keeps_working", a_schema_without_v2_columns_keeps_working),
        trial(
            "refresh_v2::a_grandparent_within_the_reuse_interval_gets_the_current_token",
            a_grandparent_within_the_reuse_interval_gets_the_current_token,
        ),
    ]
}

fn count(db: &TestDb, sql: &str) -> i64 {
    db.superuser().query_one(sql, &[]).unwrap().get(0)
}

fn uuid_bytes(uuid: &str) -> [u8; 16] {
    let hex = uuid.replace('-', "");
    let bytes: Vec<u8> = (0..16).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect();
    bytes.try_into().unwrap()
}

fn session_id(session: &Value) -> [u8; 16] {
    uuid_bytes(claims(session)["session_id"].as_str().unwrap())
}

/// The session's key and counter, as stored.
fn stored(db: &TestDb, session: &Value) -> (Vec<u8>, i64) {
    let row = db
        .superuser()
        .query_one(
            "SELECT refresh_token_hmac_key, refresh_token_counter FROM auth.sessions WHERE id::text = $1",
            &[&claims(session)["session_id"].as_str().unwrap()],
        )
        .unwrap();
    (v2token::key_bytes(row.get(0)), row.get(1))
}

fn fails(db: &TestDb, token: &str) -> (u16, String) {
    let error = refresh(db, token).unwrap_err();
    (error.status, error.error_code())
}

fn v2_sessions_refresh_as_gotrue() {
    let db = cluster().database(true);
    db.set("auth_wechat.refresh_token_algorithm", "v2");
    db.set("auth_wechat.refresh_token_reuse_interval", "0");
    let first = sign_in(&mut db.rest(), &code("ok", "vee")).unwrap();
    let sid = session_id(&first);
    let (key, counter) = stored(&db, &first);
    assert_eq!((key.len(), counter), (32, 0));
    assert_eq!(v2token::decode(&token(&first), &key), Some((sid, 0)), "GoTrue's v2 format, counter 0");
    assert_eq!(count(&db, "SELECT count(*) FROM auth.refresh_tokens"), 0, "v2 writes no token rows");

    let second = refresh(&db, &token(&first)).unwrap();
    assert_eq!(v2token::decode(&token(&second), &key), Some((sid, 1)));
    assert_eq!(stored(&db, &second).1, 1);
    assert_eq!(claims(&second)["session_id"], claims(&first)["session_id"]);
    let again = refresh(&db, &token(&first)).expect("the token before the current one: an unsaved answer");
    assert_eq!((token(&again), stored(&db, &again).1), (token(&second), 1), "the current token again, no bump");
    let third = refresh(&db, &token(&second)).unwrap();
    assert_eq!(v2token::decode(&token(&third), &key), Some((sid, 2)));

    assert_eq!(fails(&db, &v2token::encode(sid, 9, &key)), (400, "validation_failed".into()), "not issued here");
    assert_eq!(fails(&db, &v2token::encode(sid, 2, &[1; 32])), (400, "refresh_token_not_found".into()), "forged");
    let mut broken = token(&third);
    broken.replace_range(20..21, if &broken[20..21] == "A" { "B" } else { "A" });
    assert_eq!(fails(&db, &broken), (400, "validation_failed".into()), "checksum");
    assert_eq!(
        fails(&db, &v2token::with_flipped_signature(&token(&third))),
        (400, "refresh_token_not_found".into()),
        "a flipped signature with a good checksum"
    );
    // Another session's key signing this session's id (or the reverse) proves nothing.
    let other = sign_in(&mut db.rest(), &code("ok", "vee2")).unwrap();
    let (other_key, _) = stored(&db, &other);
    assert_eq!(fails(&db, &v2token::encode(sid, 2, &other_key)), (400, "refresh_token_not_found".into()));
    assert_eq!(fails(&db, &v2token::encode(session_id(&other), 0, &key)), (400, "refresh_token_not_found".into()));
    assert_eq!(fails(&db, &"A".repeat(100_000)), (400, "validation_failed".into()), "oversized input");
    assert_eq!(stored(&db, &third).1, 2, "no forgery moved the counter");

    assert_eq!(fails(&db, &token(&first)), (400, "refresh_token_already_used".into()), "two behind: stolen");
    assert_eq!(count(&db, "SELECT count(*) FROM auth.sessions"), 1, "the session ended, and that was committed");
    assert_eq!(fails(&db, &token(&third)), (400, "refresh_token_not_found".into()));
    let audit =
        count(&db, "SELECT count(*) FROM auth.audit_log_entries WHERE payload ->> 'action' = 'token_refreshed'");
    let revoked =
        count(&db, "SELECT count(*) FROM auth.audit_log_entries WHERE payload ->> 'action' = 'token_revoked'");
    assert_eq!((audit, revoked), (3, 0), "a v2 refresh writes token_refreshed only, as GoTrue");
}

/// A session as GoTrue's v2 writes it (key, counter 5, no token rows), its token built by the
/// test: it refreshes here, and binds, `wechat_user` and sign-out accept it, while the extension
/// itself still issues v1 tokens.
fn sessions_gotrue_made_work_everywhere() {
    let db = cluster().database(true);
    let own = sign_in(&mut db.rest(), &code("ok", "gotrue")).unwrap();
    let user_id = own["user"]["id"].as_str().unwrap().to_string();
    let key = [5u8; 32];
    let sid: String = db.superuser().query_one("SELECT gen_random_uuid()::text", &[]).unwrap().get(0);
    db.superuser()
        .execute(
            "WITH s AS (
                 INSERT INTO auth.sessions (id, user_id, created_at, updated_at, aal, refresh_token_hmac_key, refresh_token_counter)
                 VALUES ($1::text::uuid, $2::text::uuid, now(), now(), 'aal1', $3, 5) RETURNING id)
             INSERT INTO auth.mfa_amr_claims (id, session_id, created_at, updated_at, authentication_method)
             SELECT gen_random_uuid(), id, now(), now(), 'password' FROM s",
            &[&sid, &user_id, &v2token::stored_key(&key)],
        )
        .unwrap();
    let sid_bytes = uuid_bytes(&sid);
    let refreshed = refresh(&db, &v2token::encode(sid_bytes, 5, &key)).unwrap();
    assert_eq!(v2token::decode(&token(&refreshed), &key), Some((sid_bytes, 6)));
    assert_eq!(claims(&refreshed)["amr"][0]["method"], "password", "GoTrue's own amr is carried");

    let user = db.rest().rpc("wechat_user", json!({}), &as_user(&refreshed)).unwrap();
    assert_eq!(user["id"], user_id.as_str());
    let bound =
        db.rest().rpc("wechat_bind_account", json!({"code": code("ok", "gotrue")}), &as_user(&refreshed)).unwrap();
    assert_eq!(bound["id"], user_id.as_str(), "a v2 session may bind");
    let ended = db.rest().rpc("wechat_sign_out", json!({}), &as_user(&refreshed)).unwrap();
    assert_eq!(ended["sessions_ended"], 1);
    assert_eq!(fails(&db, &token(&refreshed)), (400, "refresh_token_not_found".into()));
}

fn a_schema_without_v2_columns_keeps_working() {
    let db = cluster().database(true);
    db.superuser()
        .batch_execute(
            "ALTER TABLE auth.sessions DROP COLUMN refresh_token_hmac_key, DROP COLUMN refresh_token_counter",
        )
        .unwrap();
    db.set("auth_wechat.refresh_token_algorithm", "v2");
    let session = sign_in(&mut db.rest(), &code("ok", "old")).unwrap();
    assert_eq!(token(&session).len(), 12, "v1 tokens where the schema has no v2 columns");
    let refreshed = refresh(&db, &token(&session)).unwrap();
    db.rest().rpc("wechat_user", json!({}), &as_user(&refreshed)).expect("the session is live");
    assert_eq!(fails(&db, &v2token::encode([3; 16], 0, &[1; 32])), (400, "refresh_token_not_found".into()));
}

/// v2 with the default reuse interval: a token two counters behind, presented within the interval
/// of the last refresh (two tabs), gets the current token and moves nothing; the session lives.
fn a_grandparent_within_the_reuse_interval_gets_the_current_token() {
    let db = cluster().database(true);
    db.set("auth_wechat.refresh_token_algorithm", "v2");
    let first = sign_in(&mut db.rest(), &code("ok", "tabs2")).unwrap();
    let second = refresh(&db, &token(&first)).unwrap();
    let third = refresh(&db, &token(&second)).unwrap();
    let raced = refresh(&db, &token(&first)).expect("no theft inside the interval");
    assert_eq!(token(&raced), token(&third), "the current token");
    assert_eq!(stored(&db, &third).1, 2, "the counter did not move");
    let fourth = refresh(&db, &token(&third)).expect("the session lives on");
    assert_eq!(stored(&db, &fourth).1, 3);
}
