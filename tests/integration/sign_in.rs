//! `auth.wechat_sign_in`: the happy path, its rows, the token, transactions and concurrency.

use crate::{cluster, sign_in, trial};
use auth_wechat_tests::jwt::verify_hs256;
use auth_wechat_tests::{code, APPID, JWT_SECRET};
use libtest_mimic::Trial;
use serde_json::{json, Value};
use std::sync::{Arc, Barrier};
use std::time::{SystemTime, UNIX_EPOCH};

pub fn tests() -> Vec<Trial> {
    vec![
        trial("sign_in::first_sign_in_writes_gotrue_rows", first_sign_in_writes_gotrue_rows),
        trial("sign_in::returning_user_gets_a_new_session", returning_user_gets_a_new_session),
        trial("sign_in::unionid_is_stored_when_sent", unionid_is_stored_when_sent),
        trial("sign_in::access_token_verifies_with_gotrue_claims", access_token_verifies_with_gotrue_claims),
        trial("sign_in::rollback_leaves_no_trace", rollback_leaves_no_trace),
        trial("sign_in::concurrent_first_sign_ins_make_one_user", concurrent_first_sign_ins_make_one_user),
        trial("sign_in::no_row_lock_is_held_while_waiting_on_wechat", no_row_lock_is_held_while_waiting_on_wechat),
        trial("sign_in::sign_up_can_be_disabled", sign_up_can_be_disabled),
        trial("sign_in::banned_user_is_refused", banned_user_is_refused),
        trial("sign_in::callers_temp_tables_catch_no_writes", callers_temp_tables_catch_no_writes),
        trial("sign_in::one_backend_keeps_one_connection_to_wechat", one_backend_keeps_one_connection_to_wechat),
    ]
}

fn is_refresh_token(token: &str) -> bool {
    token.len() == 12 && token.bytes().all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn first_sign_in_writes_gotrue_rows() {
    let db = cluster().database(true);
    let openid = wechat_sim::openid(APPID, "alice");
    let session = sign_in(&mut db.rest(), &code("ok", "alice")).expect("sign-in succeeds");

    assert_eq!(session["token_type"], "bearer");
    assert_eq!(session["expires_in"], 3600);
    assert!((session["expires_at"].as_i64().unwrap() - (now() + 3600)).abs() <= 5);
    assert!(is_refresh_token(session["refresh_token"].as_str().unwrap()), "{session}");
    let handed_out = auth_wechat_tests::simstats::secrets(&db.sim_url());
    assert!(!handed_out.is_empty(), "the simulator handed out a session_key");
    for secret in &handed_out {
        assert!(!session.to_string().contains(secret.as_str()), "the session_key is in the answer");
    }
    let user = &session["user"];
    assert_eq!(user["aud"], "authenticated");
    assert_eq!(user["role"], "authenticated");
    assert_eq!(user["email"], "");
    assert_eq!(user["phone"], "");
    assert_eq!(user["wechat_id"], openid.as_str());
    assert_eq!(user["wechat_unionid"], "");
    assert_eq!(user["is_anonymous"], false);
    assert_eq!(user["app_metadata"], json!({"provider": "wechat_mini", "providers": ["wechat_mini"]}));
    assert_eq!(user["user_metadata"], json!({}));
    assert!(user["last_sign_in_at"].is_string());
    assert!(user.get("email_confirmed_at").is_none(), "null timestamps are left out");
    let identities = user["identities"].as_array().unwrap();
    assert_eq!(identities.len(), 1);
    assert_eq!(identities[0]["provider"], "wechat_mini");
    assert_eq!(identities[0]["id"], openid.as_str());
    assert_eq!(identities[0]["identity_data"], json!({"sub": openid, "openid": openid, "appid": APPID}));
    assert!(identities[0]["last_sign_in_at"].is_string());
    assert!(identities[0].get("email").is_none(), "an identity's null email is left out");

    let mut admin = db.superuser();
    let row = admin
        .query_one(
            "SELECT instance_id::text, aud, role, raw_app_meta_data, raw_user_meta_data,
                    confirmation_token, recovery_token, email_change_token_new, email_change,
                    phone_change, phone_change_token, email_change_token_current, reauthentication_token,
                    encrypted_password, created_at IS NOT NULL AND updated_at IS NOT NULL, last_sign_in_at IS NOT NULL,
                    wechat_id, wechat_unionid, id::text
               FROM auth.users",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "00000000-0000-0000-0000-000000000000");
    assert_eq!(row.get::<_, String>(1), "authenticated");
    assert_eq!(row.get::<_, String>(2), "authenticated");
    assert_eq!(row.get::<_, Value>(3), json!({"provider": "wechat_mini", "providers": ["wechat_mini"]}));
    assert_eq!(row.get::<_, Value>(4), json!({}));
    for column in 5..=13 {
        assert_eq!(row.get::<_, Option<String>>(column).as_deref(), Some(""), "column {column} is '' not NULL");
    }
    assert!(row.get::<_, bool>(14));
    assert!(row.get::<_, bool>(15));
    assert_eq!(row.get::<_, String>(16), openid);
    assert_eq!(row.get::<_, String>(17), "");
    let user_id: String = row.get(18);
    assert_eq!(user["id"], user_id.as_str());

    let counts = admin
        .query_one(
            "SELECT (SELECT count(*) FROM auth.identities WHERE user_id::text = $1 AND provider = 'wechat_mini' AND provider_id = $2),
                    (SELECT count(*) FROM auth.sessions WHERE user_id::text = $1 AND aal = 'aal1'),
                    (SELECT count(*) FROM auth.refresh_tokens r JOIN auth.sessions s ON s.id = r.session_id
                      WHERE r.token = $3 AND r.user_id = $1 AND NOT r.revoked
                        AND r.instance_id = '00000000-0000-0000-0000-000000000000'),
                    (SELECT count(*) FROM auth.mfa_amr_claims a JOIN auth.sessions s ON s.id = a.session_id
                      WHERE s.user_id::text = $1 AND a.authentication_method = 'oauth')",
            &[&user_id, &openid, &session["refresh_token"].as_str().unwrap()],
        )
        .unwrap();
    assert_eq!(
        (counts.get::<_, i64>(0), counts.get::<_, i64>(1), counts.get::<_, i64>(2), counts.get::<_, i64>(3)),
        (1, 1, 1, 1)
    );
}

fn returning_user_gets_a_new_session() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let first = sign_in(&mut rest, &code("ok", "bob")).unwrap();
    let second = sign_in(&mut db.rest(), &code("ok", "bob")).unwrap();
    assert_eq!(first["user"]["id"], second["user"]["id"]);
    assert_ne!(first["refresh_token"], second["refresh_token"]);
    let session_of = |s: &Value| {
        verify_hs256(s["access_token"].as_str().unwrap(), JWT_SECRET.as_bytes()).unwrap().1["session_id"].clone()
    };
    assert_ne!(session_of(&first), session_of(&second));
    let counts = db
        .superuser()
        .query_one(
            "SELECT (SELECT count(*) FROM auth.users), (SELECT count(*) FROM auth.sessions),
                    (SELECT count(*) FROM auth.identities), (SELECT count(*) FROM auth.refresh_tokens)",
            &[],
        )
        .unwrap();
    assert_eq!(
        (counts.get::<_, i64>(0), counts.get::<_, i64>(1), counts.get::<_, i64>(2), counts.get::<_, i64>(3)),
        (1, 2, 1, 2)
    );
}

fn unionid_is_stored_when_sent() {
    let db = cluster().database(true);
    let session = sign_in(&mut db.rest(), &code("union", "carol")).unwrap();
    let unionid = wechat_sim::unionid("carol");
    assert_eq!(session["user"]["wechat_unionid"], unionid.as_str());
    assert_eq!(session["user"]["identities"][0]["identity_data"]["unionid"], unionid.as_str());
    // A success that also carries errcode 0 is still a success, and keeps the stored unionid.
    let again = sign_in(&mut db.rest(), &code("okzero", "carol")).unwrap();
    assert_eq!(again["user"]["id"], session["user"]["id"]);
    assert_eq!(again["user"]["wechat_unionid"], unionid.as_str());
}

fn access_token_verifies_with_gotrue_claims() {
    let db = cluster().database(true);
    let session = sign_in(&mut db.rest(), &code("ok", "dave")).unwrap();
    let token = session["access_token"].as_str().unwrap();
    assert!(verify_hs256(token, b"some-other-secret-of-enough-length-000").is_none());
    let (header, claims) = verify_hs256(token, JWT_SECRET.as_bytes()).expect("signed with auth_wechat.jwt_secret");
    assert_eq!(header["alg"], "HS256");
    assert_eq!(claims["iss"], "http://localhost/auth/v1");
    assert_eq!(claims["sub"], session["user"]["id"]);
    assert_eq!(claims["aud"], "authenticated");
    assert_eq!(claims["role"], "authenticated");
    assert_eq!(claims["email"], "");
    assert_eq!(claims["phone"], "");
    assert_eq!(claims["aal"], "aal1");
    assert_eq!(claims["is_anonymous"], false);
    assert_eq!(claims["app_metadata"], session["user"]["app_metadata"]);
    assert_eq!(claims["user_metadata"], json!({}));
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600);
    assert_eq!(claims["exp"], session["expires_at"]);
    assert_eq!(claims["amr"][0]["method"], "oauth");
    let authenticated_at = claims["amr"][0]["timestamp"].as_i64().unwrap();
    assert!((claims["iat"].as_i64().unwrap() - authenticated_at).abs() <= 2, "amr timestamp is the sign-in time");
    let session_id = claims["session_id"].as_str().unwrap();
    let exists: bool = db
        .superuser()
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM auth.sessions WHERE id::text = $1 AND user_id::text = $2)",
            &[&session_id, &claims["sub"].as_str().unwrap()],
        )
        .unwrap()
        .get(0);
    assert!(exists, "the session_id claim names a real session of the user");
    // Without an issuer, GoTrue writes no iss claim.
    db.set("auth_wechat.jwt_issuer", "");
    let session = sign_in(&mut db.rest(), &code("ok", "dave")).unwrap();
    let (_, claims) = verify_hs256(session["access_token"].as_str().unwrap(), JWT_SECRET.as_bytes()).unwrap();
    assert!(claims.get("iss").is_none(), "{claims}");
    assert_eq!(claims["sub"], session["user"]["id"]);
}

fn rollback_leaves_no_trace() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let client = rest.client();
    let mut tx = client.transaction().unwrap();
    tx.execute("SELECT set_config('role', 'anon', true)", &[]).unwrap();
    let session: Value = tx.query_one("SELECT auth.wechat_sign_in($1)", &[&code("ok", "erin")]).unwrap().get(0);
    assert!(session["access_token"].is_string());
    tx.rollback().unwrap();
    let counts = db
        .superuser()
        .query_one(
            "SELECT (SELECT count(*) FROM auth.users) + (SELECT count(*) FROM auth.identities)
                  + (SELECT count(*) FROM auth.sessions) + (SELECT count(*) FROM auth.refresh_tokens)
                  + (SELECT count(*) FROM auth.mfa_amr_claims)",
            &[],
        )
        .unwrap();
    assert_eq!(counts.get::<_, i64>(0), 0);
}

fn concurrent_first_sign_ins_make_one_user() {
    let db = Arc::new(cluster().database(true));
    let barrier = Arc::new(Barrier::new(8));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (db, barrier) = (Arc::clone(&db), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let mut rest = db.rest();
                barrier.wait();
                // The simulator answers all eight after the same delay, so they reach the
                // database together.
                sign_in(&mut rest, &code("slow.150", "frank"))
            })
        })
        .collect();
    let results: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    for result in &results {
        assert!(result.is_ok(), "every concurrent sign-in succeeds: {result:?}");
    }
    let ids: std::collections::HashSet<String> =
        results.iter().map(|r| r.as_ref().unwrap()["user"]["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 1, "one user for one openid");
    let openid = wechat_sim::openid(APPID, "frank");
    let counts = db
        .superuser()
        .query_one(
            "SELECT (SELECT count(*) FROM auth.users WHERE wechat_id = $1),
                    (SELECT count(*) FROM auth.sessions s JOIN auth.users u ON u.id = s.user_id WHERE u.wechat_id = $1),
                    (SELECT count(*) FROM auth.identities WHERE provider_id = $1)",
            &[&openid],
        )
        .unwrap();
    assert_eq!((counts.get::<_, i64>(0), counts.get::<_, i64>(1), counts.get::<_, i64>(2)), (1, 8, 1));
}

fn no_row_lock_is_held_while_waiting_on_wechat() {
    let db = Arc::new(cluster().database(true));
    sign_in(&mut db.rest(), &code("ok", "gina")).unwrap();
    let slow_db = Arc::clone(&db);
    let slow = std::thread::spawn(move || sign_in(&mut slow_db.rest(), &code("slow.2000", "gina")));
    // The slow sign-in is waiting on WeChat once the simulator has seen it (its first call was
    // the user's first sign-in above).
    auth_wechat_tests::wait_for_calls(&db.sim_url(), "/sns/jscode2session", 2);
    sign_in(&mut db.rest(), &code("ok", "gina")).expect("a second sign-in of the same user is not blocked");
    assert!(!slow.is_finished(), "the second sign-in waited for the slow one: a row was locked during the WeChat call");
    slow.join().unwrap().unwrap();
}

fn sign_up_can_be_disabled() {
    let db = cluster().database(true);
    let existing = sign_in(&mut db.rest(), &code("ok", "hank")).unwrap();
    db.set("auth_wechat.allow_sign_up", "off");
    let mut rest = db.rest();
    let again = sign_in(&mut rest, &code("ok", "hank")).expect("known users still sign in");
    assert_eq!(again["user"]["id"], existing["user"]["id"]);
    let refused = sign_in(&mut rest, &code("ok", "ivy")).unwrap_err();
    assert_eq!((refused.status, refused.error_code().as_str()), (403, "signup_disabled"));
    let users: i64 = db.superuser().query_one("SELECT count(*) FROM auth.users", &[]).unwrap().get(0);
    assert_eq!(users, 1);
}

fn banned_user_is_refused() {
    let db = cluster().database(true);
    sign_in(&mut db.rest(), &code("ok", "jack")).unwrap();
    db.superuser().execute("UPDATE auth.users SET banned_until = now() + interval '1 day'", &[]).unwrap();
    let refused = sign_in(&mut db.rest(), &code("ok", "jack")).unwrap_err();
    assert_eq!((refused.status, refused.error_code().as_str()), (403, "user_banned"));
    let sessions: i64 = db.superuser().query_one("SELECT count(*) FROM auth.sessions", &[]).unwrap().get(0);
    assert_eq!(sessions, 1, "no session for a banned user");
}

fn callers_temp_tables_catch_no_writes() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let client = rest.client();
    let mut tx = client.transaction().unwrap();
    tx.batch_execute(
        "SELECT set_config('role', 'anon', true);
         CREATE TEMP TABLE users (id uuid, wechat_id text, last_sign_in_at timestamptz);
         CREATE TEMP TABLE identities (provider_id text, user_id uuid);
         CREATE TEMP TABLE sessions (id uuid, user_id uuid);
         CREATE TEMP TABLE refresh_tokens (token text);
         SELECT set_config('search_path', 'pg_temp, auth, public', true);",
    )
    .unwrap();
    let session: Value = tx.query_one("SELECT auth.wechat_sign_in($1)", &[&code("ok", "kate")]).unwrap().get(0);
    let temp_rows: i64 = tx
        .query_one(
            "SELECT (SELECT count(*) FROM pg_temp.users) + (SELECT count(*) FROM pg_temp.identities)
                  + (SELECT count(*) FROM pg_temp.sessions) + (SELECT count(*) FROM pg_temp.refresh_tokens)",
            &[],
        )
        .unwrap()
        .get(0);
    tx.commit().unwrap();
    assert_eq!(temp_rows, 0);
    let real: i64 = db
        .superuser()
        .query_one("SELECT count(*) FROM auth.users WHERE id::text = $1", &[&session["user"]["id"].as_str().unwrap()])
        .unwrap()
        .get(0);
    assert_eq!(real, 1);
}

fn one_backend_keeps_one_connection_to_wechat() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    for i in 0..20 {
        sign_in(&mut rest, &code("ok", &format!("user{i}"))).unwrap();
    }
    assert_eq!(auth_wechat_tests::simstats::calls(&db.sim_url(), "/sns/jscode2session"), 20);
    assert_eq!(auth_wechat_tests::simstats::connections(&db.sim_url()), 1, "keep-alive: one TCP connection");
}
