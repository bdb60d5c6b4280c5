//! Every public function end to end through a real PostgREST over HTTP, as a mini program (or
//! the SDKs through `clients/js`) reaches it: statuses, PostgREST's JSON error bodies, the stolen
//! refresh token's answer through `response.status`, and row-level security with minted tokens.

use crate::{cluster, trial};
use auth_wechat_tests::postgrest::{Answer, PostgRest};
use auth_wechat_tests::{code, jwt, TestDb, JWT_SECRET};
use libtest_mimic::Trial;
use serde_json::{json, Value};

pub fn tests() -> Vec<Trial> {
    vec![trial("http::every_function_through_a_real_postgrest", every_function_through_a_real_postgrest)]
}

/// An API key as Supabase issues them: an HS256 JWT naming the role.
fn api_key(role: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"role": role, "iss": "supabase", "exp": 4_000_000_000i64}),
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

/// PostgREST's error body for an extension error: SQLSTATE `PTxyz` and the stable code in
/// `details`.
fn assert_error(answer: &Answer, status: u16, error_code: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.body["code"], format!("PT{status}"), "{}", answer.body);
    let details: Value = serde_json::from_str(answer.body["details"].as_str().unwrap()).unwrap();
    assert_eq!(details["error_code"], error_code, "{}", answer.body);
    assert!(answer.body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

fn start(db: &TestDb) -> PostgRest {
    PostgRest::start(&format!("postgres://authenticator@127.0.0.1:{}/{}", cluster().port(), db.name), JWT_SECRET)
}

fn every_function_through_a_real_postgrest() {
    let db = cluster().database(true);
    db.set("auth_wechat.refresh_token_reuse_interval", "0");
    db.superuser()
        .batch_execute(
            "SELECT auth.wechat_expose();
             CREATE TABLE public.notes (user_id uuid NOT NULL DEFAULT auth.uid(), body text NOT NULL);
             ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;
             CREATE POLICY own_notes ON public.notes TO authenticated USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid());
             GRANT SELECT, INSERT ON public.notes TO authenticated;
             INSERT INTO public.notes VALUES (gen_random_uuid(), 'someone else''s');",
        )
        .unwrap();
    let rest = start(&db);
    let rpc = |function: &str, body: Value, token: Option<&str>| rest.post(&format!("/rpc/{function}"), &body, token);

    // Sign-in, and row-level security with the token.
    let signed_in = rpc("wechat_sign_in", json!({"code": code("ok", "web")}), None);
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    let session = signed_in.body;
    let access = session["access_token"].as_str().unwrap().to_string();
    assert!(jwt::verify_hs256(&access, JWT_SECRET.as_bytes()).is_some());
    assert_eq!(rest.post("/notes", &json!({"body": "mine"}), Some(&access)).status, 201);
    let notes = rest.get("/notes?select=body", Some(&access));
    assert_eq!((notes.status, notes.body), (200, json!([{"body": "mine"}])), "only the caller's rows");
    assert_eq!(rest.get("/notes", None).status, 401, "anon has no grant on notes");

    // The signed-in user's functions.
    let user = rpc("wechat_user", json!({}), Some(&access));
    assert_eq!((user.status, &user.body["id"]), (200, &session["user"]["id"]));
    let bound = rpc("wechat_bind_account", json!({"code": code("ok", "web")}), Some(&access));
    assert_eq!((bound.status, &bound.body["id"]), (200, &session["user"]["id"]), "idempotent rebind");
    assert!(bound.body.get("refresh_token").is_none(), "a bind hands out no refresh token");
    let phone = rpc("wechat_bind_phone", json!({"code": code("phone.86.13700000301", "")}), Some(&access));
    assert_eq!((phone.status, phone.body["phone"].as_str()), (200, Some("8613700000301")));

    // Errors: PostgREST's status from the SQLSTATE, its JSON body with the stable code.
    assert_error(&rpc("wechat_sign_in", json!({"code": code("invalid", "web")}), None), 400, "invalid_credentials");
    assert_error(&rpc("wechat_sign_in", json!({"code": "no spaces"}), None), 400, "validation_failed");
    let other = rpc("wechat_sign_in", json!({"code": code("ok", "other")}), None).body;
    let taken = rpc("wechat_bind_account", json!({"code": code("ok", "web")}), other["access_token"].as_str());
    assert_error(&taken, 422, "wechat_already_bound");
    let anonymous = rpc("wechat_bind_account", json!({"code": code("ok", "web")}), None);
    assert_eq!((anonymous.status, anonymous.body["code"].as_str()), (401, Some("42501")), "{}", anonymous.body);
    assert_eq!(rpc("wechat_user", json!({}), Some("not.a.jwt")).status, 401, "PostgREST refuses a bad token");

    // Refresh, then the stolen token: 400 with GoTrue's body, and the session's end is kept.
    let refreshed = rpc("wechat_refresh_session", json!({"refresh_token": session["refresh_token"]}), None);
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let newer = rpc("wechat_refresh_session", json!({"refresh_token": refreshed.body["refresh_token"]}), None);
    assert_eq!(newer.status, 200);
    let stolen = rpc("wechat_refresh_session", json!({"refresh_token": session["refresh_token"]}), None);
    assert_eq!(
        (stolen.status, stolen.body["code"].as_str()),
        (400, Some("refresh_token_already_used")),
        "{}",
        stolen.body
    );
    let after = rpc("wechat_refresh_session", json!({"refresh_token": newer.body["refresh_token"]}), None);
    assert_error(&after, 400, "refresh_token_not_found");

    // Sign-out, QR codes (service_role only by default), the JWKS.
    let other_access = other["access_token"].as_str();
    let ended = rpc("wechat_sign_out", json!({"scope": "global"}), other_access);
    assert_eq!((ended.status, &ended.body), (200, &json!({"sessions_ended": 1})));
    assert_error(&rpc("wechat_sign_out", json!({}), other_access), 403, "session_not_found");
    let service = api_key("service_role");
    let qr = rpc("wechat_unlimited_qrcode", json!({"scene": "a=1", "check_path": false}), Some(&service));
    assert!(
        qr.status == 200 && qr.body["imgBase64"].as_str().is_some_and(|b| b.starts_with("/9j/")),
        "a JPEG: {}",
        qr.body
    );
    let bytes = rpc("wechat_unlimited_qrcode_bytea", json!({"scene": "a=1", "check_path": false}), Some(&service));
    assert_eq!(bytes.status, 200);
    assert_eq!(
        rpc("wechat_unlimited_qrcode", json!({"scene": "a=1"}), Some(&access)).status,
        403,
        "users need a grant"
    );
    assert_error(&rpc("wechat_unlimited_qrcode", json!({"scene": ""}), Some(&service)), 400, "validation_failed");
    let jwks = rest.get("/rpc/wechat_jwks", None);
    assert_eq!((jwks.status, jwks.body), (200, json!({"keys": []})), "HS256 only: nothing to publish");
}
