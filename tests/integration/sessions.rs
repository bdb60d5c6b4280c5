//! Refresh, sign-out, the audit log, the access-token hook, exposure through `public`, and rows
//! GoTrue can read, column by column.

use crate::{as_user, claims, cluster, refresh, sign_in, token, trial};
use auth_wechat_tests::rest::{Caller, CLIENT_IP, USER_AGENT};
use auth_wechat_tests::simstats::calls;
use auth_wechat_tests::{code, TestDb};
use libtest_mimic::Trial;
use serde_json::{json, Value};

pub fn tests() -> Vec<Trial> {
    vec![
        trial("sessions::refresh_rotates_in_the_same_session", refresh_rotates_in_the_same_session),
        trial(
            "sessions::a_retry_within_the_reuse_interval_gets_the_current_token",
            a_retry_within_the_reuse_interval_gets_the_current_token,
        ),
        trial(
            "sessions::a_grandparent_within_the_reuse_interval_gets_the_current_token",
            a_grandparent_within_the_reuse_interval_gets_the_current_token,
        ),
        trial("sessions::reuse_after_the_interval_ends_the_session", reuse_after_the_interval_ends_the_session),
        trial("sessions::concurrent_refreshes_of_one_token_do_not_fork", concurrent_refreshes_of_one_token_do_not_fork),
        trial(
            "sessions::unknown_tokens_expired_sessions_and_banned_users",
            unknown_tokens_expired_sessions_and_banned_users,
        ),
        trial("sessions::session_limits_end_refreshes", session_limits_end_refreshes),
        trial("sessions::soft_deleted_users_are_refused", soft_deleted_users_are_refused),
        trial("sessions::an_aal2_session_stays_aal2", an_aal2_session_stays_aal2),
        trial("sessions::sign_out_scopes", sign_out_scopes),
        trial("sessions::wechat_user_is_gotrues_get_user", wechat_user_is_gotrues_get_user),
        trial("sessions::audit_log_records_every_action", audit_log_records_every_action),
        trial("sessions::access_token_hook_shapes_every_token", access_token_hook_shapes_every_token),
        trial("sessions::exposure_wrappers_keep_the_grants", exposure_wrappers_keep_the_grants),
        trial("sessions::the_hooks_failures_answer_clearly", the_hooks_failures_answer_clearly),
        trial("sessions::a_slow_hook_is_cut_by_the_callers_timeout", a_slow_hook_is_cut_by_the_callers_timeout),
        trial("sessions::a_refresh_moves_the_sessions_client", a_refresh_moves_the_sessions_client),
        trial("sessions::rows_are_gotrue_compatible_column_by_column", rows_are_gotrue_compatible_column_by_column),
    ]
}

fn count(db: &TestDb, sql: &str) -> i64 {
    db.superuser().query_one(sql, &[]).unwrap().get(0)
}

fn refresh_rotates_in_the_same_session() {
    let db = cluster().database(true);
    let first = sign_in(&mut db.rest(), &code("ok", "ada")).unwrap();
    db.superuser().execute("UPDATE auth.users SET raw_user_meta_data = '{\"nick\": \"Ada\"}'", &[]).unwrap();
    let second = refresh(&db, &token(&first)).unwrap();
    assert_ne!(token(&second), token(&first));
    assert_eq!(claims(&second)["session_id"], claims(&first)["session_id"], "same session");
    assert_eq!(claims(&second)["user_metadata"], json!({"nick": "Ada"}), "claims come from the current user row");
    assert_eq!(claims(&second)["amr"][0]["method"], "oauth");
    let row = db
        .superuser()
        .query_one(
            "SELECT old.revoked, new.parent, NOT new.revoked, s.refreshed_at IS NOT NULL
               FROM auth.refresh_tokens old, auth.refresh_tokens new, auth.sessions s
              WHERE old.token = $1 AND new.token = $2 AND s.id = new.session_id AND old.session_id = new.session_id",
            &[&token(&first), &token(&second)],
        )
        .unwrap();
    assert!(row.get::<_, bool>(0), "the presented token is revoked");
    assert_eq!(row.get::<_, String>(1), token(&first), "the child's parent is the presented token");
    assert!(row.get::<_, bool>(2));
    assert!(row.get::<_, bool>(3), "refreshed_at moves");
    let third = refresh(&db, &token(&second)).unwrap();
    assert_ne!(token(&third), token(&second));
}

fn a_retry_within_the_reuse_interval_gets_the_current_token() {
    let db = cluster().database(true);
    let first = sign_in(&mut db.rest(), &code("ok", "bo")).unwrap();
    let second = refresh(&db, &token(&first)).unwrap();
    let retried = refresh(&db, &token(&first)).expect("a client retry is no theft");
    assert_eq!(token(&retried), token(&second), "the session's current token comes back");
    assert_eq!(count(&db, "SELECT count(*) FROM auth.refresh_tokens"), 2, "nothing rotated");
}

/// Two tabs, or an auto-refresh racing a manual one: a token two rotations old, inside the reuse
/// interval, gets the session's current token, and the session lives on.
fn a_grandparent_within_the_reuse_interval_gets_the_current_token() {
    let db = cluster().database(true);
    let first = sign_in(&mut db.rest(), &code("ok", "tabs")).unwrap();
    let second = refresh(&db, &token(&first)).unwrap();
    let third = refresh(&db, &token(&second)).unwrap();
    let raced = refresh(&db, &token(&first)).expect("no theft inside the interval");
    assert_eq!(token(&raced), token(&third), "the current token");
    assert_eq!(count(&db, "SELECT count(*) FROM auth.sessions"), 1);
    assert_eq!(count(&db, "SELECT count(*) FROM auth.refresh_tokens WHERE NOT revoked"), 1, "nothing rotated");
    refresh(&db, &token(&third)).expect("the session lives on");
}

fn reuse_after_the_interval_ends_the_session() {
    let db = cluster().database(true);
    db.set("auth_wechat.refresh_token_reuse_interval", "0");
    let first = sign_in(&mut db.rest(), &code("ok", "cy")).unwrap();
    let second = refresh(&db, &token(&first)).unwrap();
    let third = refresh(&db, &token(&second)).unwrap();
    // The parent of the current token is still a retry; its grandparent is not.
    let stolen = refresh(&db, &token(&first)).unwrap_err();
    assert_eq!((stolen.status, stolen.error_code().as_str()), (400, "refresh_token_already_used"));
    assert_eq!(count(&db, "SELECT count(*) FROM auth.sessions"), 0, "the session ended, and that was committed");
    let after = refresh(&db, &token(&third)).unwrap_err();
    assert_eq!((after.status, after.error_code().as_str()), (400, "refresh_token_not_found"));
    assert_eq!(
        count(&db, "SELECT count(*) FROM auth.audit_log_entries WHERE payload ->> 'action' = 'token_revoked'"),
        2,
        "one per rotation; as in GoTrue, the theft itself writes no row"
    );
}

fn concurrent_refreshes_of_one_token_do_not_fork() {
    let db = std::sync::Arc::new(cluster().database(true));
    for round in 0..5 {
        let session = sign_in(&mut db.rest(), &code("ok", &format!("fork{round}"))).unwrap();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (db, barrier, token) =
                    (std::sync::Arc::clone(&db), std::sync::Arc::clone(&barrier), token(&session));
                std::thread::spawn(move || {
                    let mut rest = db.rest();
                    barrier.wait();
                    rest.rpc("wechat_refresh_session", json!({ "refresh_token": token }), &Caller::Anon)
                })
            })
            .collect();
        let tokens: Vec<String> =
            workers.into_iter().map(|w| token(&w.join().unwrap().expect("both refreshes succeed"))).collect();
        assert_eq!(tokens[0], tokens[1], "the retry gets the same child, not a second branch");
        let live: i64 = db
            .superuser()
            .query_one(
                "SELECT count(*) FROM auth.refresh_tokens WHERE NOT revoked AND session_id::text = $1",
                &[&claims(&session)["session_id"].as_str().unwrap()],
            )
            .unwrap()
            .get(0);
        assert_eq!(live, 1, "one live token per session");
    }
}

fn unknown_tokens_expired_sessions_and_banned_users() {
    let db = cluster().database(true);
    let unknown = refresh(&db, "abcdefghij01").unwrap_err();
    assert_eq!((unknown.status, unknown.error_code().as_str()), (400, "refresh_token_not_found"));
    // GoTrue checks the shape first: `^[a-z0-9]{12}$` for a v1 token.
    for malformed in ["short", "", "ABCDEFGHIJKL", "abcdefghijk!"] {
        let error = refresh(&db, malformed).unwrap_err();
        assert_eq!((error.status, error.error_code().as_str()), (400, "validation_failed"), "{malformed:?}");
    }
    let session = sign_in(&mut db.rest(), &code("ok", "di")).unwrap();
    db.superuser()
        .batch_execute(
            "UPDATE auth.sessions SET not_after = now() - interval '1 second';
             UPDATE auth.users SET banned_until = now() + interval '1 day'",
        )
        .unwrap();
    let banned = refresh(&db, &token(&session)).unwrap_err();
    assert_eq!((banned.status, banned.error_code().as_str()), (400, "user_banned"), "the user is checked first");
    db.superuser().execute("UPDATE auth.users SET banned_until = NULL", &[]).unwrap();
    let expired = refresh(&db, &token(&session)).unwrap_err();
    assert_eq!((expired.status, expired.error_code().as_str()), (400, "session_expired"));
    db.superuser().execute("UPDATE auth.sessions SET not_after = NULL", &[]).unwrap();
    refresh(&db, &token(&session)).expect("live again");
}

/// GoTrue's session limits, off by default, enforced with GoTrue's answers on refresh and on
/// every other path that accepts the session: `wechat_user` and the binds (which refuse before
/// spending the code).
fn session_limits_end_refreshes() {
    let expired = |db: &TestDb, session: &Value| {
        let spent =
            calls(&db.sim_url(), "/sns/jscode2session") + calls(&db.sim_url(), "/wxa/business/getuserphonenumber");
        for (function, body) in [
            ("wechat_user", json!({})),
            ("wechat_bind_account", json!({"code": code("ok", "limits")})),
            ("wechat_bind_phone", json!({"code": code("phone.86.13700000555", "")})),
        ] {
            let error = db.rest().rpc(function, body, &as_user(session)).unwrap_err();
            assert_eq!((error.status, error.error_code().as_str()), (400, "session_expired"), "{function}");
        }
        let now =
            calls(&db.sim_url(), "/sns/jscode2session") + calls(&db.sim_url(), "/wxa/business/getuserphonenumber");
        assert_eq!(now, spent, "no code was spent on an expired session");
        let error = refresh(db, &token(session)).unwrap_err();
        assert_eq!((error.status, error.error_code().as_str()), (400, "session_expired"), "{}", error.message);
        error.message
    };
    let db = cluster().database(true);
    let old = sign_in(&mut db.rest(), &code("ok", "limits")).unwrap();
    let newer = sign_in(&mut db.rest(), &code("ok", "limits")).unwrap();
    db.superuser()
        .execute(
            "UPDATE auth.sessions SET created_at = now() - interval '30 days' WHERE id = $1::text::uuid",
            &[&claims(&old)["session_id"].as_str().unwrap()],
        )
        .unwrap();
    let newer = refresh(&db, &token(&newer)).unwrap();
    let old = refresh(&db, &token(&old)).expect("no limits by default: a 30-day-old session refreshes");

    db.set("auth_wechat.sessions_single_per_user", "on");
    assert!(expired(&db, &newer).contains("Revoked by Newer Login"), "refreshed less recently than the other one");
    let old = refresh(&db, &token(&old)).expect("the most recently refreshed session refreshes");

    db.set("auth_wechat.sessions_single_per_user", "off");
    db.set("auth_wechat.sessions_timebox", "7d");
    assert!(expired(&db, &old).ends_with("Session Expired; sign in again"), "30 days old");
    let newer = refresh(&db, &token(&newer)).expect("within the time-box, and single_per_user is off again");

    db.set("auth_wechat.sessions_inactivity_timeout", "15min");
    db.superuser()
        .execute(
            "UPDATE auth.sessions SET refreshed_at = timezone('utc', now()) - interval '20 minutes' WHERE id = $1::text::uuid",
            &[&claims(&newer)["session_id"].as_str().unwrap()],
        )
        .unwrap();
    assert!(expired(&db, &newer).contains("(Inactivity)"), "20 minutes idle");
    let fresh = sign_in(&mut db.rest(), &code("ok", "limits")).unwrap();
    refresh(&db, &token(&fresh)).expect("a fresh session is active");
}

/// A soft-deleted user (GoTrue admin's `should_soft_delete`: `deleted_at` set) cannot sign in,
/// bind, refresh or read itself, and a refused sign-in writes nothing.
fn soft_deleted_users_are_refused() {
    let db = cluster().database(true);
    let session = sign_in(&mut db.rest(), &code("ok", "gone")).unwrap();
    db.superuser().execute("UPDATE auth.users SET deleted_at = now()", &[]).unwrap();
    let snapshot = |db: &TestDb| -> Vec<i64> {
        [
            "auth.users WHERE last_sign_in_at < now()",
            "auth.sessions",
            "auth.refresh_tokens",
            "auth.identities",
            "auth.audit_log_entries",
        ]
        .iter()
        .map(|table| count(db, &format!("SELECT count(*) FROM {table}")))
        .collect()
    };
    let before = snapshot(&db);
    let error = sign_in(&mut db.rest(), &code("ok", "gone")).unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (403, "user_not_found"));
    let error = db
        .rest()
        .rpc("wechat_bind_phone", json!({"code": code("phone.86.13700000077", "")}), &as_user(&session))
        .unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (403, "user_not_found"));
    let error = db.rest().rpc("wechat_user", json!({}), &as_user(&session)).unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (403, "user_not_found"));
    let error = refresh(&db, &token(&session)).unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (400, "refresh_token_not_found"));
    assert_eq!(snapshot(&db), before, "nothing written");

    let other = sign_in(&mut db.rest(), &code("ok", "other")).unwrap();
    // `other` unbound: no WeChat in MemFire's columns nor in its identities.
    db.superuser()
        .batch_execute(
            "UPDATE auth.users SET wechat_id = '' WHERE deleted_at IS NULL;
             DELETE FROM auth.identities i USING auth.users u WHERE u.id = i.user_id AND u.deleted_at IS NULL;",
        )
        .unwrap();
    let error =
        db.rest().rpc("wechat_bind_account", json!({"code": code("ok", "gone")}), &as_user(&other)).unwrap_err();
    assert_eq!(
        (error.status, error.error_code().as_str()),
        (409, "identity_already_exists"),
        "a deleted user's openid stays taken"
    );
}

/// A session that reached aal2 elsewhere (MFA through GoTrue) keeps its level and methods in every
/// token minted here: every refresh.
fn an_aal2_session_stays_aal2() {
    let db = cluster().database(true);
    let session = sign_in(&mut db.rest(), &code("ok", "mfa")).unwrap();
    assert_eq!(claims(&session)["aal"], "aal1");
    db.superuser()
        .batch_execute(
            "UPDATE auth.sessions SET aal = 'aal2';
             INSERT INTO auth.mfa_amr_claims (id, session_id, created_at, updated_at, authentication_method)
             SELECT gen_random_uuid(), id, now() + interval '1 second', now() + interval '1 second', 'totp' FROM auth.sessions",
        )
        .unwrap();
    let refreshed = refresh(&db, &token(&session)).unwrap();
    let again = refresh(&db, &token(&refreshed)).unwrap();
    for minted in [&refreshed, &again] {
        let claims = claims(minted);
        assert_eq!(claims["aal"], "aal2");
        let methods: Vec<&str> =
            claims["amr"].as_array().unwrap().iter().map(|m| m["method"].as_str().unwrap()).collect();
        assert_eq!(methods, ["totp", "oauth"], "newest first, as GoTrue orders them");
        let stored = count(
            &db,
            "SELECT floor(extract(epoch FROM updated_at))::bigint FROM auth.mfa_amr_claims WHERE authentication_method = 'totp'",
        );
        assert_eq!(claims["amr"][0]["timestamp"], stored, "the claim's time, in Unix seconds");
    }
}

fn sign_out_scopes() {
    let db = cluster().database(true);
    let sessions: Vec<Value> = (0..3).map(|_| sign_in(&mut db.rest(), &code("ok", "eli")).unwrap()).collect();
    let sign_out =
        |session: &Value, scope: &str| db.rest().rpc("wechat_sign_out", json!({ "scope": scope }), &as_user(session));
    let live = || count(&db, "SELECT count(*) FROM auth.sessions");

    assert_eq!(sign_out(&sessions[0], "others").unwrap()["sessions_ended"], 2);
    assert_eq!(live(), 1);
    assert_eq!(refresh(&db, &token(&sessions[1])).unwrap_err().error_code(), "refresh_token_not_found");
    let fourth = sign_in(&mut db.rest(), &code("ok", "eli")).unwrap();
    assert_eq!(sign_out(&sessions[0], "local").unwrap()["sessions_ended"], 1);
    assert_eq!(live(), 1, "only the caller's session ended");
    assert_eq!(
        refresh(&db, &token(&sessions[0])).unwrap_err().error_code(),
        "refresh_token_not_found",
        "refresh after sign-out"
    );
    let default_scope = db.rest().rpc("wechat_sign_out", json!({}), &as_user(&fourth)).unwrap();
    assert_eq!(default_scope["sessions_ended"], 1, "local by default");
    let again = sign_in(&mut db.rest(), &code("ok", "eli")).unwrap();
    sign_in(&mut db.rest(), &code("ok", "eli")).unwrap();
    assert_eq!(sign_out(&again, "global").unwrap()["sessions_ended"], 2);
    assert_eq!(live(), 0);
    assert_eq!(
        count(&db, "SELECT count(*) FROM auth.refresh_tokens") + count(&db, "SELECT count(*) FROM auth.mfa_amr_claims"),
        0
    );

    let bad = sign_out(&again, "everything").unwrap_err();
    assert_eq!((bad.status, bad.error_code().as_str()), (400, "validation_failed"));
    let no_session = Caller::Claims(json!({"role": "authenticated", "sub": again["user"]["id"]}));
    let error = db.rest().rpc("wechat_sign_out", json!({"scope": "others"}), &no_session).unwrap_err();
    assert_eq!(
        (error.status, error.error_code().as_str()),
        (403, "session_not_found"),
        "no session claim is not 'all'"
    );
    let anon = db.rest().rpc("wechat_sign_out", json!({}), &Caller::Anon).unwrap_err();
    assert_eq!(anon.status, 401);
}

fn wechat_user_is_gotrues_get_user() {
    let db = cluster().database(true);
    let session = sign_in(&mut db.rest(), &code("union", "ursula")).unwrap();
    let user = db.rest().rpc("wechat_user", json!({}), &as_user(&session)).unwrap();
    assert_eq!(user, session["user"], "the user as the sign-in rendered it");
    // And as the rows are, read independently of the renderer.
    let row = db
        .superuser()
        .query_one(
            "SELECT u.id::text, u.wechat_id, u.wechat_unionid, u.raw_app_meta_data, i.id::text, i.provider_id
               FROM auth.users u JOIN auth.identities i ON i.user_id = u.id",
            &[],
        )
        .unwrap();
    assert_eq!(user["id"], row.get::<_, String>(0).as_str());
    assert_eq!((user["wechat_id"].as_str(), user["wechat_unionid"].as_str()), (row.get(1), row.get(2)));
    assert_eq!(user["app_metadata"], row.get::<_, Value>(3));
    assert_eq!(user["identities"].as_array().map(Vec::len), Some(1));
    assert_eq!(user["identities"][0]["identity_id"], row.get::<_, String>(4).as_str());
    assert_eq!(user["identities"][0]["id"], row.get::<_, String>(5).as_str());
    assert_eq!(user["identities"][0]["provider"], "wechat_mini");
    assert!(user["wechat_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(user["wechat_unionid"].as_str().is_some_and(|id| !id.is_empty()));

    let anon = db.rest().rpc("wechat_user", json!({}), &Caller::Anon).unwrap_err();
    assert_eq!((anon.status, anon.sqlstate.as_str()), (401, "42501"));
    let no_session = Caller::Claims(json!({"role": "authenticated", "sub": user["id"]}));
    let error = db.rest().rpc("wechat_user", json!({}), &no_session).unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (403, "session_not_found"));
    assert!(error.message.contains("no session_id"), "claims without a session say so: {}", error.message);
    // A banned user may neither read itself nor sign out, as GoTrue's /user and /logout refuse.
    db.superuser().execute("UPDATE auth.users SET banned_until = now() + interval '1 hour'", &[]).unwrap();
    for (function, body) in [("wechat_user", json!({})), ("wechat_sign_out", json!({"scope": "global"}))] {
        let error = db.rest().rpc(function, body, &as_user(&session)).unwrap_err();
        assert_eq!((error.status, error.error_code().as_str()), (403, "user_banned"), "{function}");
    }
    assert_eq!(count(&db, "SELECT count(*) FROM auth.sessions"), 1, "a banned user's sign-out ended nothing");
    db.superuser().execute("UPDATE auth.users SET banned_until = NULL", &[]).unwrap();
    db.rest().rpc("wechat_sign_out", json!({}), &as_user(&session)).unwrap();
    let error = db.rest().rpc("wechat_user", json!({}), &as_user(&session)).unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (403, "session_not_found"), "after sign-out");
}

fn audit_log_records_every_action() {
    let db = cluster().database(true);
    let session = sign_in(&mut db.rest(), &code("ok", "fay")).unwrap();
    sign_in(&mut db.rest(), &code("ok", "fay")).unwrap();
    let user_id = session["user"]["id"].as_str().unwrap().to_string();
    db.rest().rpc("wechat_bind_phone", json!({"code": code("phone.86.13700000042", "")}), &as_user(&session)).unwrap();
    let refreshed = refresh(&db, &token(&session)).unwrap();
    db.rest().rpc("wechat_sign_out", json!({}), &as_user(&refreshed)).unwrap();
    let rows = db
        .superuser()
        .query(
            "SELECT payload ->> 'action', payload ->> 'log_type', payload ->> 'actor_id', ip_address,
                    payload -> 'traits' ->> 'provider', instance_id::text, payload ->> 'actor_username'
               FROM auth.audit_log_entries ORDER BY created_at, payload ->> 'action'",
            &[],
        )
        .unwrap();
    let actions: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    for expected in ["user_signedup", "login", "user_modified", "token_refreshed", "token_revoked", "logout"] {
        assert!(actions.contains(&expected.to_string()), "{expected} in {actions:?}");
    }
    assert_eq!(actions.iter().filter(|a| *a == "login").count(), 2);
    for row in &rows {
        assert_eq!(row.get::<_, String>(2), user_id);
        let action = row.get::<_, String>(0);
        let token_row = action.starts_with("token_");
        // GoTrue writes its refresh rows with no IP and no traits.
        assert_eq!(row.get::<_, String>(3), if token_row { "" } else { CLIENT_IP }, "{action}: the client IP");
        assert_eq!(row.get::<_, String>(1) == "token", token_row, "{action}");
        assert_eq!(row.get::<_, String>(5), "00000000-0000-0000-0000-000000000000");
    }
    let token_traits =
        count(&db, "SELECT count(*) FROM auth.audit_log_entries WHERE payload ->> 'action' LIKE 'token_%' AND payload::jsonb ? 'traits'");
    assert_eq!(token_traits, 0);
    let login = rows.iter().find(|r| r.get::<_, String>(0) == "login").unwrap();
    assert_eq!(
        (login.get::<_, String>(1), login.get::<_, Option<String>>(4)),
        ("account".into(), Some("wechat_mini".into()))
    );
    for row in &rows {
        // GoTrue's actor_username: the email, else the phone, as the user row is when written.
        let action = row.get::<_, String>(0);
        let before_phone = ["user_signedup", "login"].contains(&action.as_str());
        let expected = if before_phone { "" } else { "8613700000042" };
        assert_eq!(row.get::<_, String>(6), expected, "{action}: actor_username");
    }

    let other = cluster().database(true);
    other.set("auth_wechat.audit_log", "off");
    sign_in(&mut other.rest(), &code("ok", "fay")).unwrap();
    assert_eq!(count(&other, "SELECT count(*) FROM auth.audit_log_entries"), 0, "off means off");
}

fn access_token_hook_shapes_every_token() {
    let db = cluster().database(true);
    db.superuser()
        .batch_execute(
            r#"CREATE FUNCTION public.add_tenant(event jsonb) RETURNS jsonb LANGUAGE sql AS $$
                   SELECT jsonb_build_object('claims', event -> 'claims' || jsonb_build_object(
                       'tenant', 't1', 'method', event ->> 'authentication_method', 'uid', event ->> 'user_id',
                       'metadata', event -> 'metadata'))
               $$;
               CREATE FUNCTION public.drop_role(event jsonb) RETURNS jsonb LANGUAGE sql AS $$
                   SELECT jsonb_build_object('claims', (event -> 'claims') - 'role')
               $$;
               CREATE FUNCTION public.refuse(event jsonb) RETURNS jsonb LANGUAGE sql AS $$
                   SELECT '{"error": {"http_code": 403, "message": "not in this tenant"}}'::jsonb
               $$;"#,
        )
        .unwrap();
    db.set("auth_wechat.access_token_hook", "public.add_tenant");
    let session = sign_in(&mut db.rest(), &code("ok", "gus")).unwrap();
    let signed = claims(&session);
    assert_eq!((signed["tenant"].as_str(), signed["method"].as_str()), (Some("t1"), Some("oauth")));
    assert_eq!(signed["uid"], session["user"]["id"]);
    // GoTrue's hook metadata (2026-02): a fresh id per call, the time, the hook's name, the client.
    let metadata = &signed["metadata"];
    assert_eq!(
        (metadata["name"].as_str(), metadata["ip_address"].as_str()),
        (Some("customize-access-token"), Some(CLIENT_IP))
    );
    assert_eq!(metadata["uuid"].as_str().map(str::len), Some(36));
    assert!(
        metadata["time"].as_str().is_some_and(|t| t.len() == 27 && t.ends_with('Z') && t.as_bytes()[10] == b'T'),
        "{metadata}"
    );
    let refreshed = claims(&refresh(&db, &token(&session)).unwrap());
    assert_eq!((refreshed["tenant"].as_str(), refreshed["method"].as_str()), (Some("t1"), Some("token_refresh")));

    db.set("auth_wechat.access_token_hook", "public.drop_role");
    let error = sign_in(&mut db.rest(), &code("ok", "gus")).unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (500, "unexpected_failure"));
    assert!(error.message.contains("role"), "{}", error.message);

    db.set("auth_wechat.access_token_hook", "public.refuse");
    let error = sign_in(&mut db.rest(), &code("ok", "gus")).unwrap_err();
    assert_eq!(
        (error.status, error.error_code().as_str(), error.message.as_str()),
        (403, "hook_refused", "not in this tenant")
    );
}

fn exposure_wrappers_keep_the_grants() {
    let db = cluster().database(true);
    let mut admin = db.superuser();
    let created: Vec<String> =
        admin.query("SELECT auth.wechat_expose()", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(created.len(), 19, "{created:?}");
    let mut rest = db.rest();
    let session = rest.rpc_in("public", "wechat_sign_in", json!({"code": code("ok", "hal")}), &Caller::Anon).unwrap();
    let refreshed = rest
        .rpc_in("public", "wechat_refresh_session", json!({"refresh_token": token(&session)}), &Caller::Anon)
        .unwrap();
    assert!(refreshed["access_token"].is_string());
    let anon_bind =
        rest.rpc_in("public", "wechat_bind_account", json!({"code": code("ok", "hal")}), &Caller::Anon).unwrap_err();
    assert_eq!(
        (anon_bind.status, anon_bind.sqlstate.as_str()),
        (401, "42501"),
        "anon cannot reach bind through the wrapper"
    );
    let user_qr =
        rest.rpc_in("public", "wechat_unlimited_qrcode", json!({"scene": "a"}), &as_user(&session)).unwrap_err();
    assert_eq!(user_qr.status, 403);
    let service = Caller::Claims(json!({"role": "service_role"}));
    assert!(
        rest.rpc_in("public", "wechat_unlimited_qrcode", json!({"scene": "a"}), &service).is_ok(),
        "defaults carried over"
    );
    let signed_out = rest.rpc_in("public", "wechat_sign_out", json!({}), &as_user(&refreshed)).unwrap();
    assert_eq!(signed_out["sessions_ended"], 1);

    let mut removed: Vec<String> =
        admin.query("SELECT auth.wechat_unexpose()", &[]).unwrap().iter().map(|row| row.get(0)).collect();
    removed.sort();
    assert_eq!(removed.len(), 19, "{removed:?}");
    assert!(
        removed.contains(&"public.wechat_sign_in(text,text)".to_string()),
        "the dropped wrappers by name: {removed:?}"
    );
    assert!(removed.iter().all(|name| name.starts_with("public.wechat_")), "{removed:?}");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND proname LIKE 'wechat%'"
        ),
        0
    );
    admin
        .batch_execute(
            "CREATE FUNCTION public.wechat_sign_in(code text) RETURNS jsonb LANGUAGE sql AS 'SELECT null::jsonb'",
        )
        .unwrap();
    let error = admin.query("SELECT auth.wechat_expose()", &[]).unwrap_err();
    let message = error.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
    assert!(message.contains("not an auth_wechat wrapper"), "{message}");
    // Nor one that carries our comment but belongs to someone else.
    admin
        .batch_execute(
            "DROP FUNCTION public.wechat_sign_in(text);
             CREATE FUNCTION public.wechat_sign_in(code text, appid text) RETURNS jsonb LANGUAGE sql AS 'SELECT null::jsonb';
             COMMENT ON FUNCTION public.wechat_sign_in(text, text) IS 'auth_wechat wrapper';
             ALTER FUNCTION public.wechat_sign_in(text, text) OWNER TO plain_user;",
        )
        .unwrap();
    let error = admin.query("SELECT auth.wechat_expose()", &[]).unwrap_err();
    assert!(error.as_db_error().is_some_and(|e| e.message().contains("not an auth_wechat wrapper")));
    let plain = postgres::Client::connect(&db.conninfo("plain_user"), postgres::NoTls)
        .unwrap()
        .query("SELECT auth.wechat_expose()", &[])
        .unwrap_err();
    assert_eq!(plain.code().map(|c| c.code()), Some("42501"), "superusers only");
}

fn rows_are_gotrue_compatible_column_by_column() {
    let db = cluster().database(true);
    let session = sign_in(&mut db.rest(), &code("ok", "ivo")).unwrap();
    let refreshed = refresh(&db, &token(&session)).unwrap();
    let session_id = claims(&refreshed)["session_id"].as_str().unwrap().to_string();
    let mut admin = db.superuser();
    let s = admin
        .query_one(
            "SELECT aal::text, created_at IS NOT NULL AND updated_at IS NOT NULL, not_after IS NULL,
                    user_agent, host(ip), refreshed_at IS NOT NULL, factor_id IS NULL
               FROM auth.sessions WHERE id::text = $1",
            &[&session_id],
        )
        .unwrap();
    assert_eq!(s.get::<_, String>(0), "aal1");
    assert!(s.get::<_, bool>(1) && s.get::<_, bool>(2));
    assert_eq!(s.get::<_, String>(3), USER_AGENT);
    assert_eq!(s.get::<_, String>(4), CLIENT_IP);
    assert!(s.get::<_, bool>(5) && s.get::<_, bool>(6));
    for r in admin
        .query(
            "SELECT token, instance_id::text, user_id, revoked IS NOT NULL, created_at IS NOT NULL AND updated_at IS NOT NULL
               FROM auth.refresh_tokens WHERE session_id::text = $1",
            &[&session_id],
        )
        .unwrap()
    {
        let token: String = r.get(0);
        assert!(token.len() == 12 && token.bytes().all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)), "{token}");
        assert_eq!(r.get::<_, String>(1), "00000000-0000-0000-0000-000000000000");
        assert_eq!(r.get::<_, String>(2), session["user"]["id"].as_str().unwrap());
        assert!(r.get::<_, bool>(3) && r.get::<_, bool>(4));
    }
    let amr: Vec<String> = admin
        .query("SELECT authentication_method FROM auth.mfa_amr_claims WHERE session_id::text = $1", &[&session_id])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(amr, ["oauth"], "one amr row, with a method GoTrue knows");
    let stored = admin
        .query_one(
            "SELECT floor(extract(epoch FROM c.updated_at))::bigint, s.aal::text
               FROM auth.mfa_amr_claims c JOIN auth.sessions s ON s.id = c.session_id WHERE s.id::text = $1",
            &[&session_id],
        )
        .unwrap();
    let claims = claims(&session);
    assert_eq!(claims["amr"], json!([{"method": "oauth", "timestamp": stored.get::<_, i64>(0)}]), "amr as stored");
    assert_eq!(claims["aal"], stored.get::<_, String>(1), "aal as stored");
    let i = admin
        .query_one(
            "SELECT identity_data IS NOT NULL, created_at IS NOT NULL AND updated_at IS NOT NULL AND last_sign_in_at IS NOT NULL
               FROM auth.identities",
            &[],
        )
        .unwrap();
    assert!(i.get::<_, bool>(0) && i.get::<_, bool>(1));
    let nulls: i64 = admin
        .query_one(
            "SELECT count(*) FROM auth.users WHERE instance_id IS NULL OR aud IS NULL OR role IS NULL
                OR confirmation_token IS NULL OR recovery_token IS NULL OR email_change_token_new IS NULL
                OR email_change IS NULL OR email_change_token_current IS NULL OR phone_change IS NULL
                OR phone_change_token IS NULL OR reauthentication_token IS NULL
                OR raw_app_meta_data IS NULL OR raw_user_meta_data IS NULL OR created_at IS NULL OR updated_at IS NULL",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(nulls, 0, "no NULL where GoTrue reads a string or an object");
}

/// How a broken access token hook answers: a function of another signature, or one returning a
/// set, is refused by name, and an ERROR the hook raises is a failing hook, with its message (500
/// `unexpected_failure`, as GoTrue answers a failing hook), with nothing of Rust's; an
/// `http_code` outside 400–599 is 403.
/// A hook slower than the caller's `statement_timeout` (3 s for `anon`, as PostgREST applies it)
/// is cut by it: a failing hook, 500 `unexpected_failure` naming the hook and the timeout (as for
/// any ERROR the hook raises), nothing written; the next sign-in without the hook works.
fn a_slow_hook_is_cut_by_the_callers_timeout() {
    let db = cluster().database(true);
    db.superuser()
        .batch_execute(
            "CREATE FUNCTION public.slow_hook(event jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
             BEGIN PERFORM pg_sleep(10); RETURN jsonb_build_object('claims', event -> 'claims'); END $$;
             GRANT EXECUTE ON FUNCTION public.slow_hook(jsonb) TO supabase_auth_admin;",
        )
        .unwrap();
    db.set("auth_wechat.access_token_hook", "public.slow_hook");
    let started = std::time::Instant::now();
    let error = sign_in(&mut db.rest(), &code("ok", "sloth")).unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (500, "unexpected_failure"), "{error:?}");
    assert!(error.message.contains("slow_hook") && error.message.contains("statement timeout"), "{}", error.message);
    assert!(started.elapsed() < std::time::Duration::from_secs(8), "cut at anon's 3 s: {:?}", started.elapsed());
    assert!(!error.all_text().contains("rs:"), "{error:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM auth.sessions"), 0, "nothing written");
    db.set("auth_wechat.access_token_hook", "");
    sign_in(&mut db.rest(), &code("ok", "sloth")).expect("a sign-in without the hook");
}

fn the_hooks_failures_answer_clearly() {
    let db = cluster().database(true);
    db.superuser()
        .batch_execute(
            r#"CREATE FUNCTION public.text_hook(event text) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
               CREATE FUNCTION public.set_hook(event jsonb) RETURNS SETOF jsonb LANGUAGE sql AS $$ SELECT event $$;
               CREATE FUNCTION public.raising_hook(event jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
               BEGIN RAISE SQLSTATE 'PT409' USING MESSAGE = 'tenant is full'; END $$;
               CREATE FUNCTION public.odd_status(event jsonb) RETURNS jsonb LANGUAGE sql AS $$
                   SELECT '{"error": {"http_code": 200, "message": "no"}}'::jsonb
               $$;
               CREATE FUNCTION public.huge_status(event jsonb) RETURNS jsonb LANGUAGE sql AS $$
                   SELECT '{"error": {"http_code": 700, "message": "no"}}'::jsonb
               $$;"#,
        )
        .unwrap();
    let attempt = |hook: &str| {
        db.set("auth_wechat.access_token_hook", hook);
        sign_in(&mut db.rest(), &code("ok", "hooked")).unwrap_err()
    };
    let error = attempt("public.text_hook");
    assert_eq!((error.status, error.error_code().as_str()), (500, "unexpected_failure"));
    assert!(error.message.contains("public.text_hook(jsonb) does not exist"), "{}", error.message);
    let error = attempt("public.set_hook");
    assert_eq!((error.status, error.error_code().as_str()), (500, "unexpected_failure"));
    assert!(error.message.contains("must be a plain function returning jsonb"), "{}", error.message);
    let error = attempt("public.raising_hook");
    assert_eq!((error.status, error.error_code().as_str()), (500, "unexpected_failure"));
    assert!(error.message.ends_with("public.raising_hook(jsonb) failed: tenant is full"), "{}", error.message);
    assert!(!error.all_text().contains("backtrace"), "{error:?}");
    for hook in ["public.odd_status", "public.huge_status"] {
        let error = attempt(hook);
        assert_eq!((error.status, error.error_code().as_str()), (403, "hook_refused"), "{hook}");
    }
    let users: i64 = db.superuser().query_one("SELECT count(*) FROM auth.sessions", &[]).unwrap().get(0);
    assert_eq!(users, 0, "no session was kept");
}

/// A refresh moves the session's `user_agent` and `ip` to the refreshing client, as GoTrue does.
fn a_refresh_moves_the_sessions_client() {
    let db = cluster().database(true);
    let session = sign_in(&mut db.rest(), &code("ok", "mover")).unwrap();
    let client = |db: &TestDb| -> (String, String) {
        let row = db.superuser().query_one("SELECT user_agent, host(ip) FROM auth.sessions", &[]).unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(client(&db), (USER_AGENT.to_string(), CLIENT_IP.to_string()));
    let headers = json!({"user-agent": "another-phone/2.0", "x-forwarded-for": "198.51.100.23, 10.0.0.1"});
    db.rest()
        .rpc_with_headers(
            "auth",
            "wechat_refresh_session",
            json!({"refresh_token": token(&session)}),
            &Caller::Anon,
            headers,
        )
        .unwrap();
    assert_eq!(client(&db), ("another-phone/2.0".to_string(), "198.51.100.23".to_string()));
}
