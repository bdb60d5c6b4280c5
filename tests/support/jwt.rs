//! An HS256 check written independently of the extension's JWT library.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// The header and claims of `token` if its HS256 signature is valid for `secret`.
pub fn verify_hs256(token: &str, secret: &[u8]) -> Option<(Value, Value)> {
    let mut parts = token.split('.');
    let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    mac.update(format!("{header}.{claims}").as_bytes());
    mac.verify_slice(&URL_SAFE_NO_PAD.decode(signature).ok()?).ok()?;
    let decode = |part: &str| serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(part).ok()?).ok();
    Some((decode(header)?, decode(claims)?))
}

/// Fresh signing keys as private JWKs (GoTrue's `GOTRUE_JWT_KEYS` entries), made by Node's crypto,
/// which knows nothing of the extension: `(EC P-256, RSA 2048)`, each with `kid` and `alg` set
/// and no `key_ops` (the caller decides which one signs).
pub fn generate_keys() -> (Value, Value) {
    let script = "const c = require('crypto');
        const jwk = (kind, options) => c.generateKeyPairSync(kind, options).privateKey.export({ format: 'jwk' });
        console.log(JSON.stringify([jwk('ec', { namedCurve: 'P-256' }), jwk('rsa', { modulusLength: 2048 })]));";
    let output = std::process::Command::new("node").args(["-e", script]).output().expect("node runs");
    assert!(output.status.success(), "node: {}", String::from_utf8_lossy(&output.stderr));
    let keys: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    let (mut ec, mut rsa) = (keys[0].clone(), keys[1].clone());
    ec["alg"] = "ES256".into();
    ec["kid"] = "test-ec".into();
    rsa["alg"] = "RS256".into();
    rsa["kid"] = "test-rsa".into();
    (ec, rsa)
}

/// `keys` with `key_ops` set: `["sign", "verify"]` for the one at `signer`, `["verify"]` for the
/// others; as the JSON text of `auth_wechat.jwt_keys`.
pub fn key_set(keys: &[&Value], signer: usize) -> String {
    let keys: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let mut key = (*key).clone();
            key["key_ops"] =
                if i == signer { serde_json::json!(["sign", "verify"]) } else { serde_json::json!(["verify"]) };
            key
        })
        .collect();
    Value::Array(keys).to_string()
}

/// The header and claims of `token` if it verifies against the key of `jwks` its `kid` names,
/// with an independent JWT library and nothing but the JWKS.
pub fn verify_with_jwks(token: &str, jwks: &Value) -> Option<(Value, Value)> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone()).ok()?;
    let key = set.find(header.kid.as_deref()?)?;
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&["authenticated"]);
    let decoded =
        jsonwebtoken::decode::<Value>(token, &jsonwebtoken::DecodingKey::from_jwk(key).ok()?, &validation).ok()?;
    Some((serde_json::to_value(&decoded.header).ok()?, decoded.claims))
}
