//! In-backend tests of the units that need Postgres: settings, the auth store, session rows and
//! the error wrapper. Each runs in a transaction that is rolled back.

#[pgrx::pg_schema]
mod tests {
    use crate::jsonb::{Jsonb, Member};
    use crate::{session, store};
    use pgrx::prelude::*;
    use pgrx::Uuid;

    #[pg_test]
    fn settings_have_their_defaults() {
        let get = |name: &str| Spi::get_one::<String>(&format!("SELECT current_setting('{name}')")).unwrap();
        assert_eq!(get("auth_wechat.api_base").as_deref(), Some("https://api.weixin.qq.com"));
        assert_eq!(get("auth_wechat.timeout_ms").as_deref(), Some("2500ms"));
        assert_eq!(get("auth_wechat.jwt_exp").as_deref(), Some("1h"));
        assert_eq!(get("auth_wechat.allow_sign_up").as_deref(), Some("on"));
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
    fn creates_finds_and_renders_a_wechat_user() {
        let id = session::new_uuid();
        assert_eq!(store::create_user(id, "oOpenid1", Some("oUnion1")), Some(id));
        // A second insert of the same openid yields to the first.
        assert_eq!(store::create_user(session::new_uuid(), "oOpenid1", None), None);
        let found = store::find_by_openid("oOpenid1").expect("user is found by openid");
        assert_eq!(found.id, id);
        assert!(!found.banned);
        let signed_in = store::sign_in_by_openid("oOpenid1", None).expect("the sign-in is recorded");
        assert_eq!(signed_in.id, id);
        store::upsert_identity(id, "oOpenid1", None);
        let user = store::user_json(id).unwrap().omit_empty(&store::OMIT_EMPTY).to_value();
        assert_eq!(user["wechat_id"], "oOpenid1");
        assert_eq!(user["wechat_unionid"], "oUnion1");
        assert_eq!(user["app_metadata"], serde_json::json!({"provider": "wechat_mini", "providers": ["wechat_mini"]}));
        assert_eq!(user["identities"][0]["provider"], "wechat_mini");
        assert_eq!(user["identities"][0]["id"], "oOpenid1");
        assert!(user.get("last_sign_in_at").is_some());
        assert!(user.get("email_confirmed_at").is_none());
    }

    #[pg_test]
    fn omit_empty_drops_only_the_named_null_members() {
        let user = Jsonb::from(serde_json::json!({
            "id": "u", "banned_until": null, "last_sign_in_at": "2026-01-01T00:00:00+00:00",
            "user_metadata": {"banned_until": null, "email": null},
            "identities": [{"id": "o", "email": null, "last_sign_in_at": null, "identity_data": {"email": null}},
                           {"id": "p", "email": "a@b.c", "last_sign_in_at": null}],
            "other": [{"email": null}]
        }));
        let expected = serde_json::json!({
            "id": "u", "last_sign_in_at": "2026-01-01T00:00:00+00:00",
            "user_metadata": {"banned_until": null, "email": null},
            "identities": [{"id": "o", "identity_data": {"email": null}}, {"id": "p", "email": "a@b.c"}],
            "other": [{"email": null}]
        });
        assert_eq!(user.omit_empty(&store::OMIT_EMPTY).to_value(), expected);
        let embedded = Jsonb::object(&[("user", Member::OmitEmpty(&user, &store::OMIT_EMPTY)), ("n", Member::Int(1))]);
        assert_eq!(embedded.to_value(), serde_json::json!({"user": expected, "n": 1}));
    }

    #[pg_test]
    fn unbound_users_do_not_collide() {
        Spi::run(
            "INSERT INTO auth.users (id, wechat_id) VALUES (gen_random_uuid(), ''), (gen_random_uuid(), ''),
                                                        (gen_random_uuid(), NULL), (gen_random_uuid(), NULL)",
        )
        .unwrap();
        assert!(store::find_by_openid("").is_none());
    }

    #[pg_test]
    fn starts_a_session_with_its_rows() {
        let id = session::new_uuid();
        store::create_user(id, "oOpenid2", None);
        let (session_id, token) = session::start(id, "oOpenid2", None);
        let identities = Spi::get_one_with_args::<i64>(
            "SELECT count(*) FROM auth.identities WHERE user_id = $1 AND provider_id = 'oOpenid2' AND provider = 'wechat_mini'",
            &[id.into()],
        )
        .unwrap();
        assert_eq!(identities, Some(1), "the session statement upserts the WeChat identity");
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
        assert!(message.contains("auth_wechat.jwt_secret"), "{message}");
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
        assert!(received.recv().unwrap().starts_with(b"GET /x HTTP/1.1"));
        // A host name is looked up (and the addresses tried in turn: localhost may be ::1 first).
        let named =
            crate::http::get(format!("http://localhost:{port}/y"), timeout, 1024).expect("a host name resolves");
        assert_eq!(named.status, 200);
        assert!(received.recv().unwrap().starts_with(b"GET /y HTTP/1.1"));
        // The same server over https: the client opens with a TLS handshake record (0x16), so
        // the request, which would carry the app secret, is never written in clear; and the
        // plain-text answer is refused.
        let tls = crate::http::get(format!("https://127.0.0.1:{port}/x"), timeout, 1024);
        assert_eq!(received.recv().unwrap().first(), Some(&0x16), "a TLS ClientHello");
        assert!(tls.is_err(), "a TLS client must not accept a plain-text answer");
    }
}
