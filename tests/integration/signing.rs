//! Asymmetric signing keys (`auth_wechat.jwt_keys`, GoTrue's `GOTRUE_JWT_KEYS`): tokens verified
//! from the published JWKS alone, by an independent JWT library and by a real PostgREST.

use crate::{cluster, sign_in, trial};
use auth_wechat_tests::cluster::Owned;
use auth_wechat_tests::postgrest::PostgRest;
use auth_wechat_tests::simstats::calls;
use auth_wechat_tests::{code, jwt, Cluster, JWT_SECRET};
use base64::Engine;
use libtest_mimic::Trial;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub fn tests() -> Vec<Trial> {
    vec![
        trial("signing::legacy_hs256_tokens_carry_no_kid", legacy_hs256_tokens_carry_no_kid),
        trial("signing::asymmetric_tokens_pass_a_real_postgrest", asymmetric_tokens_pass_a_real_postgrest),
        trial("signing::an_es256_roll_out_keeps_the_api_keys_working", an_es256_roll_out_keeps_the_api_keys_working),
        trial("signing::postgrest_jwks_is_for_superusers_only", postgrest_jwks_is_for_superusers_only),
    ]
}

fn legacy_hs256_tokens_carry_no_kid() {
    let db = cluster().database(true);
    let session = sign_in(&mut db.rest(), &code("ok", "legacy")).unwrap();
    let (header, _) = jwt::verify_hs256(session["access_token"].as_str().unwrap(), JWT_SECRET.as_bytes()).unwrap();
    assert_eq!(header, json!({"alg": "HS256", "typ": "JWT"}), "no signing key set: HS256 without kid, as GoTrue");
    let jwks: Value = db.superuser().query_one("SELECT auth.wechat_jwks()", &[]).unwrap().get(0);
    assert_eq!(jwks, json!({"keys": []}), "the HS256 secret is never published");
}

/// ES256 then RS256 (a rotation: the RSA key is published before it signs), through a real
/// PostgREST whose `jwt-secret` is the extension's JWKS; then a broken key set.
fn asymmetric_tokens_pass_a_real_postgrest() {
    let (ec, rsa) = jwt::generate_keys();
    let conf = format!("auth_wechat.jwt_keys = '{}'", jwt::key_set(&[&ec, &rsa], 0));
    let keyed = Owned::new(Cluster::start_with("keys", &conf));
    let db = keyed.0.database(true);
    let mut admin = db.superuser();
    admin
        .batch_execute(
            "SELECT auth.wechat_expose();
             CREATE TABLE public.notes (user_id uuid NOT NULL, body text NOT NULL);
             ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;
             CREATE POLICY own_notes ON public.notes FOR SELECT TO authenticated USING (user_id = auth.uid());
             GRANT SELECT ON public.notes TO authenticated;
             INSERT INTO public.notes VALUES (gen_random_uuid(), 'someone else''s');",
        )
        .unwrap();
    // A real key set is a secret like the others: masked from pg_read_all_settings, out of
    // pg_settings, refused from catalog storage.
    let keys = jwt::key_set(&[&ec, &rsa], 0);
    let mut monitor = postgres::Client::connect(&db.conninfo("monitor"), postgres::NoTls).unwrap();
    let shown: String = monitor.query_one("SELECT current_setting('auth_wechat.jwt_keys')", &[]).unwrap().get(0);
    assert_eq!(shown, "********");
    let listed: i64 =
        monitor.query_one("SELECT count(*) FROM pg_settings WHERE name = 'auth_wechat.jwt_keys'", &[]).unwrap().get(0);
    assert_eq!(listed, 0);
    for statement in [
        format!("ALTER DATABASE {} SET auth_wechat.jwt_keys = '{keys}'", db.name),
        format!("ALTER ROLE plain_user SET auth_wechat.jwt_keys = '{keys}'"),
    ] {
        let error = admin.batch_execute(&statement).expect_err("a key set in a catalog");
        let db_error = error.as_db_error().unwrap();
        assert_eq!(db_error.code().code(), "22023", "{db_error:?}");
        let text = format!("{} {:?} {:?}", db_error.message(), db_error.detail(), db_error.hint());
        assert!(!text.contains(ec["d"].as_str().unwrap()), "the refusal prints the private key: {text}");
    }
    let jwks: Value = admin.query_one("SELECT auth.wechat_jwks()", &[]).unwrap().get(0);
    let published = jwks["keys"].as_array().unwrap();
    assert_eq!(published.len(), 2, "the signing key and the one waiting to sign");
    for key in published {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(key.get(private).is_none(), "{private} published: {key}");
        }
        assert_eq!((&key["use"], &key["key_ops"]), (&json!("sig"), &json!(["verify"])));
    }

    let rest = PostgRest::start(
        &format!("postgres://authenticator@127.0.0.1:{}/{}", keyed.0.port(), db.name),
        &jwks.to_string(),
    );
    let served = rest.get("/rpc/wechat_jwks", None);
    assert_eq!((served.status, &served.body), (200, &jwks), "the JWKS through PostgREST, for clients");

    let mut bodies = Vec::new();
    for (rotation, (alg, kid)) in [("ES256", "test-ec"), ("RS256", "test-rsa")].into_iter().enumerate() {
        if rotation == 1 {
            set_keys(&mut admin, &jwt::key_set(&[&ec, &rsa], 1));
        }
        let token = eventually(|| {
            let session = rest.post("/rpc/wechat_sign_in", &json!({"code": code("ok", "keyed")}), None);
            assert_eq!(session.status, 200, "{}", session.body);
            let token = session.body["access_token"].as_str().unwrap().to_string();
            (jsonwebtoken::decode_header(&token).unwrap().kid.as_deref() == Some(kid)).then_some(token)
        });
        let (header, claims) = jwt::verify_with_jwks(&token, &jwks).expect("verifies from the JWKS alone");
        assert_eq!((header["alg"].as_str(), header["kid"].as_str()), (Some(alg), Some(kid)));
        admin
            .execute("INSERT INTO public.notes VALUES ($1::text::uuid, $2)", &[&claims["sub"].as_str().unwrap(), &alg])
            .unwrap();
        bodies.push(json!({"body": alg}));
        let notes = rest.get("/notes?select=body&order=body", Some(&token));
        assert_eq!((notes.status, &notes.body), (200, &Value::Array(bodies.clone())), "row-level security with {alg}");

        let mut forged = token.clone();
        forged.replace_range(forged.len() - 4.., if forged.ends_with("AAAA") { "BBBB" } else { "AAAA" });
        assert_eq!(rest.get("/notes", Some(&forged)).status, 401, "a broken {alg} signature");
    }
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"role": "authenticated", "aud": "authenticated", "exp": 4_000_000_000i64}),
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(rest.get("/notes", Some(&hs256)).status, 401, "the legacy secret is not in the key set");

    // A key that cannot sign: a clear error naming the setting, never the key, and no code spent.
    let mut broken = ec.clone();
    broken["d"] = rsa["e"].clone();
    set_keys(&mut admin, &jwt::key_set(&[&broken], 0));
    // Until every pooled backend has read the reload, a sign-in may still succeed (and call
    // WeChat); once one is refused, the next must be refused before WeChat is called.
    eventually(|| {
        let answer = rest.post("/rpc/wechat_sign_in", &json!({"code": code("ok", "keyed")}), None);
        (answer.status == 500).then_some(())
    });
    let logins = calls(&db.sim_url(), "/sns/jscode2session");
    let answer = rest.post("/rpc/wechat_sign_in", &json!({"code": code("ok", "keyed")}), None);
    assert_eq!(answer.status, 500, "{}", answer.body);
    let error = answer.body;
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("auth_wechat.jwt_keys") && message.contains("test-ec"), "{message}");
    for value in [&ec["d"], &ec["x"], &rsa["e"]] {
        assert!(!error.to_string().contains(value.as_str().unwrap()), "{error}");
    }
    assert!(error["details"].as_str().unwrap().contains("configuration_invalid"), "{error}");
    assert_eq!(calls(&db.sim_url(), "/sns/jscode2session"), logins, "refused before WeChat was called");
}

/// The README's roll-out, in GoTrue's order, through a real PostgREST restarted with
/// `auth.wechat_postgrest_jwks()` whenever that value changes: HS256 only; the legacy secret as
/// the signing `oct` key with an EC key on standby; EC signing; a second EC key on standby, then
/// signing; the first retired. The project's HS256 API keys work at every step, a user token
/// keeps working until its key is retired, and the retired key's tokens are refused.
fn an_es256_roll_out_keeps_the_api_keys_working() {
    let (a, _) = jwt::generate_keys();
    let (mut b, _) = jwt::generate_keys();
    b["kid"] = "test-ec-2".into();
    let mut legacy = json!({"kty": "oct", "kid": "legacy", "alg": "HS256",
                            "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(JWT_SECRET)});
    let rolling = Owned::new(Cluster::start_with("rollout", ""));
    let db = rolling.0.database(true);
    let mut admin = db.superuser();
    admin
        .batch_execute(
            "SELECT auth.wechat_expose();
             CREATE FUNCTION public.whoami() RETURNS text LANGUAGE sql STABLE AS 'SELECT current_user::text';
             GRANT EXECUTE ON FUNCTION public.whoami() TO anon, authenticated, service_role;",
        )
        .unwrap();
    let (anon, service) = (api_key("anon"), api_key("service_role"));
    let uri = format!("postgres://authenticator@127.0.0.1:{}/{}", rolling.0.port(), db.name);
    let mut published = Value::Null;
    let mut rest: Option<PostgRest> = None;
    // Each step: the keys, then PostgREST restarted if its key set changed, then the API keys.
    // Gives PostgREST's address and key set.
    let mut step = |admin: &mut postgres::Client, keys: Option<String>, what: &str| -> (String, Value) {
        if let Some(keys) = keys {
            set_keys(admin, &keys);
        }
        let now: Value = admin.query_one("SELECT auth.wechat_postgrest_jwks()", &[]).unwrap().get(0);
        if published != now {
            drop(rest.take());
            rest = Some(PostgRest::start(&uri, &now.to_string()));
            published = now;
        }
        let rest = rest.as_ref().unwrap();
        for (key, role) in [(&anon, "anon"), (&service, "service_role")] {
            let answer = rest.get("/rpc/whoami", Some(key));
            assert_eq!((answer.status, answer.body.as_str()), (200, Some(role)), "{what}: the {role} key");
        }
        (rest.url.clone(), published.clone())
    };
    let whoami = |url: &str, token: &str| {
        ureq::get(&format!("{url}/rpc/whoami"))
            .header("Authorization", &format!("Bearer {token}"))
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    // Signs in through PostgREST with the anon key, as a client does, until a backend that has
    // read the reload signs with `kid`.
    let sign_in_with = |url: &str, kid: Option<&str>| -> String {
        eventually(|| {
            let answer = ureq::post(&format!("{url}/rpc/wechat_sign_in"))
                .header("Authorization", &format!("Bearer {anon}"))
                .send_json(json!({"code": code("ok", "rolling")}))
                .unwrap()
                .into_body()
                .read_json::<Value>()
                .unwrap();
            let token = answer["access_token"].as_str().unwrap().to_string();
            (jsonwebtoken::decode_header(&token).unwrap().kid.as_deref() == kid).then_some(token)
        })
    };

    let (url, keys) = step(&mut admin, None, "HS256 only");
    assert_eq!(keys, json!({"keys": [{"kty": "oct", "alg": "HS256", "k": legacy["k"]}]}), "the legacy secret alone");
    let hs256 = sign_in_with(&url, None);
    assert_eq!(whoami(&url, &hs256), 200);

    // 1. The EC key on standby: published, not signing; the legacy secret signs as an oct key.
    legacy["key_ops"] = json!(["sign", "verify"]);
    let mut a_standby = a.clone();
    a_standby["key_ops"] = json!(["verify"]);
    let (url, keys) = step(&mut admin, Some(json!([legacy, a_standby]).to_string()), "standby");
    assert_eq!(keys["keys"].as_array().unwrap().len(), 2, "EC public key and the secret, once");
    let hs256_kid = sign_in_with(&url, Some("legacy"));
    for token in [&hs256, &hs256_kid] {
        assert_eq!(whoami(&url, token), 200, "standby: an HS256 user token");
    }

    // 2. The EC key signs. PostgREST's key set is the same: no restart.
    legacy["key_ops"] = json!(["verify"]);
    let switched = step(&mut admin, Some(jwt::key_set(&[&legacy, &a], 1)), "ES256 signs");
    assert_eq!(switched, (url.clone(), keys), "switching the signer changes nothing for PostgREST");
    let es256_a = sign_in_with(&url, Some("test-ec"));
    for token in [&hs256, &hs256_kid, &es256_a] {
        assert_eq!(whoami(&url, token), 200, "after the switch");
    }

    // 3. A second EC key: on standby, then signing; then the first retired.
    step(&mut admin, Some(jwt::key_set(&[&legacy, &a, &b], 1)), "second key on standby");
    let (url, _) = step(&mut admin, Some(jwt::key_set(&[&legacy, &a, &b], 2)), "second key signs");
    let es256_b = sign_in_with(&url, Some("test-ec-2"));
    assert_eq!(whoami(&url, &es256_a), 200, "the first key's tokens until it is retired");
    let (url, _) = step(&mut admin, Some(jwt::key_set(&[&legacy, &b], 1)), "first key retired");
    assert_eq!(whoami(&url, &es256_a), 401, "a retired key's token");
    for token in [&hs256, &es256_b] {
        assert_eq!(whoami(&url, token), 200, "after the retirement");
    }
}

/// `auth.wechat_postgrest_jwks()` holds secrets: granted to no one, refused to a non-superuser
/// even when someone grants it, and never a wrapper that `/rpc` could reach.
fn postgrest_jwks_is_for_superusers_only() {
    let db = cluster().database(true);
    let mut admin = db.superuser();
    admin.batch_execute("SELECT auth.wechat_expose()").unwrap();
    let mut postgres = db.postgres();
    let refused = |client: &mut postgres::Client| {
        let error = client.query_one("SELECT auth.wechat_postgrest_jwks()", &[]).expect_err("a non-superuser");
        let error = error.as_db_error().unwrap().clone();
        assert!(!format!("{error:?}").contains(&JWT_SECRET[..12]), "{error:?}");
        error.code().code().to_string()
    };
    assert_eq!(refused(&mut postgres), "42501", "no grant");
    admin.batch_execute("GRANT EXECUTE ON FUNCTION auth.wechat_postgrest_jwks() TO postgres").unwrap();
    let error = postgres.query_one("SELECT auth.wechat_postgrest_jwks()", &[]).unwrap_err();
    let error = error.as_db_error().unwrap();
    assert_eq!(error.code().code(), "42501", "granted, still refused: {error:?}");
    assert!(error.message().contains("superuser"), "{}", error.message());
    let rest = PostgRest::start(
        &format!("postgres://authenticator@127.0.0.1:{}/{}", db.cluster().port(), db.name),
        JWT_SECRET,
    );
    let answer = rest.post("/rpc/wechat_postgrest_jwks", &json!({}), Some(&api_key("service_role")));
    assert_eq!(answer.status, 404, "not reachable through /rpc: {}", answer.body);
    let wrapped: i64 =
        admin.query_one("SELECT count(*) FROM pg_proc WHERE proname = 'wechat_postgrest_jwks'", &[]).unwrap().get(0);
    assert_eq!(wrapped, 1, "auth.wechat_postgrest_jwks() alone, no wrapper");
}

/// A project API key as Supabase makes them: HS256 with the legacy secret, no `kid`.
fn api_key(role: &str) -> String {
    let claims = json!({"role": role, "iss": "supabase", "iat": 1_700_000_000i64, "exp": 4_000_000_000i64});
    let key = jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}

/// `ALTER SYSTEM` (outside a transaction) and a reload, which `admin`'s own backend has read when
/// this returns (other backends read it a moment later).
fn set_keys(admin: &mut postgres::Client, keys: &str) {
    admin.batch_execute(&format!("ALTER SYSTEM SET auth_wechat.jwt_keys = '{keys}'")).unwrap();
    admin.batch_execute("SELECT pg_reload_conf()").unwrap();
    eventually(|| {
        let now: String = admin.query_one("SELECT current_setting('auth_wechat.jwt_keys')", &[]).unwrap().get(0);
        (now == keys).then_some(())
    });
}

/// Retries `attempt` until it gives a value: a reload reaches PostgREST's pooled backends a
/// moment after `pg_reload_conf()` returns.
fn eventually<T>(mut attempt: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = attempt() {
            return value;
        }
        assert!(Instant::now() < deadline, "no change within 10 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}
