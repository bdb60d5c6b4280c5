//! In-backend tests of the units that need Postgres: settings, identities and the user JSON, session
//! rows and the error wrapper. Each runs in a transaction that is rolled back.

#[pgrx::pg_schema]
mod tests {
    use crate::identity::{self, WechatIdentity};
    use crate::jsonb::{Jsonb, Member};
    use crate::session;
    use pgrx::prelude::*;
    use pgrx::Uuid;
    use serde_json::json;

    /// A default-mini-program identity of `openid`.
    fn mini_identity<'a>(openid: &'a str, unionid: Option<&'a str>) -> WechatIdentity<'a> {
        WechatIdentity {
            provider: identity::PROVIDER,
            appid: "wx5ba1c0ffee5ba1c0",
            openid,
            unionid,
            profile: None,
            memfire: true,
        }
    }

    /// A user with no identity, as GoTrue's admin API may make one.
    fn bare_user() -> Uuid {
        let id = crate::ids::new_uuid();
        Spi::run_with_args(
            "INSERT INTO auth.users (id, aud, role) VALUES ($1, 'authenticated', 'authenticated')",
            &[id.into()],
        )
        .unwrap();
        id
    }

    #[pg_test]
    fn settings_have_their_defaults() {
        let get = |name: &str| Spi::get_one::<String>(&format!("SELECT current_setting('{name}')")).unwrap();
        assert_eq!(get("auth_wechat.api_base").as_deref(), Some("https://api.weixin.qq.com"));
        assert_eq!(get("auth_wechat.timeout_ms").as_deref(), Some("2500ms"));
        assert_eq!(get("auth_wechat.jwt_exp").as_deref(), Some("1h"));
        assert_eq!(get("auth_wechat.allow_sign_up").as_deref(), Some("on"));
        assert_eq!(get("auth_wechat.link_by_unionid").as_deref(), Some("on"));
    }

    #[pg_test]
    fn secrets_are_hidden_from_pg_settings_listing() {
        let listed = Spi::get_one::<i64>(
            "SELECT count(*) FROM pg_settings WHERE name IN ('auth_wechat.secret', 'auth_wechat.jwt_secret')",
        )
        .unwrap();
        assert_eq!(listed, Some(0));
    }

    #[pg_test]
    #[should_panic(expected = "invalid configuration parameter name")]
    fn prefix_is_reserved() {
        Spi::run("SET auth_wechat.no_such_setting = 'x'").unwrap();
    }

    #[pg_test]
    fn signs_up_finds_and_renders_a_wechat_user() {
        let person = mini_identity("oOpenid1", Some("oUnion1"));
        let first = identity::sign_in(&person).expect("a new person signs up");
        assert_eq!(first.actions.len(), 2, "signed up, then logged in");
        let again = identity::sign_in(&person).expect("a known person signs in");
        assert_eq!((again.user_id, again.actions.len()), (first.user_id, 1));
        let user = Jsonb::object(&crate::user::user(first.user_id).unwrap().members()).to_value();
        assert_eq!(user["wechat_id"], "oOpenid1");
        assert_eq!(user["wechat_unionid"], "oUnion1");
        assert_eq!(user["app_metadata"], serde_json::json!({"provider": "wechat_mini", "providers": ["wechat_mini"]}));
        assert_eq!(user["identities"][0]["provider"], "wechat_mini");
        assert_eq!(user["identities"][0]["id"], "oOpenid1");
        assert_eq!(user["identities"][0]["identity_data"]["unionid"], "oUnion1");
        assert!(user.get("last_sign_in_at").is_some());
        assert!(user.get("email_confirmed_at").is_none());
    }

    #[pg_test]
    fn renders_a_user_as_gotrue_does() {
        let id = crate::ids::new_uuid();
        // Timestamps are written in the session's time zone, as to_jsonb writes them.
        Spi::run("SET LOCAL TimeZone = 'Asia/Shanghai'").unwrap();
        Spi::run_with_args(
            "INSERT INTO auth.users (id, aud, role, email, wechat_id, created_at, updated_at, banned_until)
             VALUES ($1, 'authenticated', 'authenticated', 'a@b.c', 'oX', '2026-01-02 03:04:05.678+00', NULL, 'infinity');
             INSERT INTO auth.identities (provider_id, user_id, identity_data, provider, created_at)
             VALUES ('+8613800000000', $1, '{}', 'phone', NULL);
             INSERT INTO auth.identities (provider_id, user_id, identity_data, provider, created_at, last_sign_in_at)
             VALUES ('a@b.c', $1, '{\"email\": \"A@b.c\"}', 'email', '2026-01-03 00:00:00+00', '2026-01-04 00:00:00.5+00');
             INSERT INTO auth.identities (provider_id, user_id, identity_data, provider, created_at, updated_at)
             VALUES ('oX', $1, '{\"sub\": \"oX\", \"email\": null}', 'wechat_mini', '2026-01-01 00:00:00+00', NULL)",
            &[id.into()],
        )
        .unwrap();
        let user = Jsonb::object(&crate::user::user(id).unwrap().members()).to_value();
        let in_sql = |value: &str| -> serde_json::Value {
            Spi::get_one::<pgrx::JsonB>(&format!("SELECT to_jsonb({value}::timestamptz)")).unwrap().unwrap().0
        };
        assert_eq!(user["id"], id.to_string());
        assert_eq!(
            (&user["email"], &user["phone"], &user["wechat_unionid"]),
            (&json!("a@b.c"), &json!(""), &json!(""))
        );
        assert_eq!((&user["app_metadata"], &user["user_metadata"]), (&json!({}), &json!({})));
        assert_eq!(user["is_anonymous"], false);
        assert_eq!(user["created_at"], in_sql("'2026-01-02 03:04:05.678+00'"));
        assert_eq!(user["created_at"], "2026-01-02T11:04:05.678+08:00");
        assert_eq!(user["banned_until"], "infinity");
        // A null timestamp GoTrue does not omit stays null; its `omitempty` ones go.
        assert_eq!(user["updated_at"], serde_json::Value::Null);
        for omitted in
            ["email_confirmed_at", "phone_confirmed_at", "confirmation_sent_at", "confirmed_at", "last_sign_in_at"]
        {
            assert!(user.get(omitted).is_none(), "{omitted}");
        }
        // GoTrue's order, by creation (a null one last), whatever the rows' order.
        let identities = user["identities"].as_array().unwrap();
        let providers: Vec<&str> = identities.iter().map(|i| i["provider"].as_str().unwrap()).collect();
        assert_eq!(providers, ["wechat_mini", "email", "phone"]);
        assert_eq!(identities[2]["created_at"], serde_json::Value::Null);
        let (wechat, email) = (&identities[0], &identities[1]);
        assert_eq!(
            (&wechat["id"], &wechat["provider"], &wechat["user_id"]),
            (&json!("oX"), &json!("wechat_mini"), &json!(id.to_string()))
        );
        assert_eq!(wechat["identity_data"], json!({"sub": "oX", "email": null}), "nulls inside the data stay");
        assert_eq!(wechat["updated_at"], serde_json::Value::Null);
        assert!(wechat.get("email").is_none() && wechat.get("last_sign_in_at").is_none());
        assert_eq!(email["email"], "a@b.c");
        assert_eq!(email["last_sign_in_at"], in_sql("'2026-01-04 00:00:00.5+00'"));
        assert!(email["identity_id"].as_str().is_some_and(|identity_id| identity_id.len() == 36));
        // No identity at all: an empty array.
        let lone = bare_user();
        assert_eq!(Jsonb::object(&crate::user::user(lone).unwrap().members()).to_value()["identities"], json!([]));
    }

    #[pg_test]
    fn builds_nested_jsonb_values() {
        let inner = Jsonb::from(json!({"k": [1, null]}));
        let built = Jsonb::object(&[
            ("n", Member::Null),
            ("b", Member::Bool(true)),
            ("i", Member::Int(-7)),
            ("t", Member::Text("x\"y")),
            ("j", Member::Jsonb(&inner)),
            (
                "a",
                Member::Array(vec![
                    Member::Int(1),
                    Member::Object(vec![("e", Member::Array(vec![]))]),
                    Member::Jsonb(&inner),
                ]),
            ),
        ]);
        assert_eq!(
            built.to_value(),
            json!({"n": null, "b": true, "i": -7, "t": "x\"y", "j": {"k": [1, null]}, "a": [1, {"e": []}, {"k": [1, null]}]})
        );
    }

    #[pg_test]
    fn a_dead_backends_places_are_taken_back_at_the_cap() {
        let mut exited = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = exited.id() as i32;
        exited.wait().unwrap();
        let api_base = "http://dead-backends.invalid";
        crate::bulkhead::occupy(api_base, dead_pid, crate::gucs::max_concurrent_requests());
        let admitted = crate::bulkhead::admit(api_base, "an app", None);
        assert!(admitted.is_ok(), "the places of a backend that no longer exists are free");
    }

    #[pg_test]
    fn unbound_users_do_not_collide() {
        Spi::run(
            "INSERT INTO auth.users (id, wechat_id) VALUES (gen_random_uuid(), ''), (gen_random_uuid(), ''),
                                                        (gen_random_uuid(), NULL), (gen_random_uuid(), NULL)",
        )
        .unwrap();
        let fresh = identity::sign_in(&mini_identity("oFresh", None)).expect("unbound users are no one's openid");
        assert_eq!(fresh.actions.len(), 2, "a new user");
    }

    #[pg_test]
    fn starts_a_session_with_its_rows() {
        let id = bare_user();
        let (session_id, token) = session::start(id);
        let rows = Spi::get_three_with_args::<i64, i64, i64>(
            "SELECT (SELECT count(*) FROM auth.sessions WHERE id = $1 AND user_id = $2 AND aal = 'aal1'),
                    (SELECT count(*) FROM auth.refresh_tokens WHERE session_id = $1 AND token = $3 AND user_id = $2::text AND NOT revoked),
                    (SELECT count(*) FROM auth.mfa_amr_claims WHERE session_id = $1 AND authentication_method = 'oauth')",
            &[session_id.into(), id.into(), token.into()],
        )
        .unwrap();
        assert_eq!(rows, (Some(1), Some(1), Some(1)));
    }

    /// The ERROR that `call` (a query) raises, as `[SQLSTATE, message, DETAIL]`, caught in SQL
    /// (pgrx's own catch knows only its list of SQLSTATEs).
    fn raised(call: &str) -> Vec<String> {
        Spi::run(
            "CREATE OR REPLACE FUNCTION pg_temp.raised(call text) RETURNS text[] LANGUAGE plpgsql AS $$
             DECLARE detail text;
             BEGIN
                 EXECUTE call;
                 RETURN ARRAY['no error'];
             EXCEPTION WHEN OTHERS THEN
                 GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
                 RETURN ARRAY[SQLSTATE, SQLERRM, detail];
             END $$",
        )
        .unwrap();
        Spi::get_one_with_args::<Vec<String>>("SELECT pg_temp.raised($1)", &[call.into()]).unwrap().unwrap()
    }

    #[pg_test]
    fn sign_in_reports_a_missing_setting_without_calling_wechat() {
        let [sqlstate, message, detail] =
            <[String; 3]>::try_from(raised("SELECT auth.wechat_sign_in('ok.alice.1')")).unwrap();
        assert_eq!(sqlstate, "PT500");
        assert!(message.contains("auth_wechat.appid"), "{message}");
        let detail: serde_json::Value = serde_json::from_str(&detail).unwrap();
        assert_eq!(detail, serde_json::json!({"error_code": "configuration_missing"}));
    }

    #[pg_test]
    fn sign_in_rejects_bad_codes_first() {
        for code in ["NULL", "''", "'a b'", "repeat('a', 200)"] {
            let raised = raised(&format!("SELECT auth.wechat_sign_in({code})"));
            assert_eq!(raised[0], "PT400", "{code}: {raised:?}");
            assert_eq!(raised[2], r#"{"error_code":"validation_failed"}"#, "{code}");
        }
        let _unused: Option<Uuid> = None;
    }

    /// A server that answers every connection with a plain-text HTTP 200 and closes it; returns
    /// its port and, per connection, the first bytes the client sent.
    fn plain_http_server() -> (u16, std::sync::mpsc::Receiver<Vec<u8>>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (sent, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut request = [0u8; 1024];
                let n = stream.read(&mut request).unwrap_or(0);
                let _ = sent.send(request[..n].to_vec());
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            }
        });
        (port, received)
    }

    #[pg_test]
    fn https_is_spoken_in_tls_and_http_in_clear() {
        let (port, received) = plain_http_server();
        let timeout = std::time::Duration::from_secs(2);
        let plain = crate::http::get(format!("http://127.0.0.1:{port}/x"), timeout, 1024).expect("plain HTTP answers");
        assert_eq!((plain.status, plain.body.as_slice()), (200, &b"ok"[..]));
        assert!(received
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("a request within 20 s")
            .starts_with(b"GET /x HTTP/1.1"));
        // A host name is looked up (and the addresses tried in turn: localhost may be ::1 first).
        let named =
            crate::http::get(format!("http://localhost:{port}/y"), timeout, 1024).expect("a host name resolves");
        assert_eq!(named.status, 200);
        assert!(received
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("a request within 20 s")
            .starts_with(b"GET /y HTTP/1.1"));
        // The same server over https: the client opens with a TLS handshake record (0x16), so
        // the request, which would carry the app secret, is never written in clear; and the
        // plain-text answer is refused.
        let tls = crate::http::get(format!("https://127.0.0.1:{port}/x"), timeout, 1024);
        assert_eq!(
            received.recv_timeout(std::time::Duration::from_secs(20)).expect("a request within 20 s").first(),
            Some(&0x16),
            "a TLS ClientHello"
        );
        assert!(tls.is_err(), "a TLS client must not accept a plain-text answer");
    }
}
