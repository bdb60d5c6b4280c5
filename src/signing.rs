//! Access-token signing: HS256 with the JWT secret (Supabase's legacy scheme), or the asymmetric
//! keys of `auth_wechat.jwt_keys` (ES256/RS256, GoTrue's `GOTRUE_JWT_KEYS`) with their `kid` in
//! the header and their public parts published by `auth.wechat_jwks()`. PostgREST needs more than
//! the public set: the project's API keys (`anon`, `service_role`) and the tokens minted before a
//! switch to asymmetric keys are HS256, so `auth.wechat_postgrest_jwks()` adds the HS256 secrets,
//! for superusers only.
//!
//! Keys are parsed and checked once per backend and value: RSA key checks cost milliseconds.
//! A bad value is reported when a token is minted (or the JWKS read), never when it is set: a
//! GUC check hook's error would print the value, the private key, into the server log.

use crate::error::AuthError;
use crate::gucs;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::{FromEncodedPoint, ToEncodedPoint};
use p256::pkcs8::EncodePrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::cell::RefCell;
use std::ffi::CString;
use std::rc::Rc;

const SETTING: &str = "auth_wechat.jwt_keys";
/// Smallest RSA modulus accepted, in bits (GoTrue's and the JOSE specs' floor).
const MIN_RSA_BITS: usize = 2048;

/// The parsed `auth_wechat.jwt_keys`: the one signing key, the public keys to publish and the
/// HS256 (`oct`) keys, which verifiers that hold secrets need besides.
struct KeySet {
    algorithm: Algorithm,
    kid: Option<String>,
    key: EncodingKey,
    public: Vec<Value>,
    secret: Vec<Value>,
}

thread_local! {
    static PARSED: RefCell<Option<(CString, Rc<KeySet>)>> = const { RefCell::new(None) };
}

/// Fails, before a single-use WeChat code is spent, when no token could be signed.
pub fn ready() -> Result<(), AuthError> {
    match gucs::jwt_keys() {
        Some(value) => key_set(value).map(drop),
        None => gucs::jwt_secret().map(drop),
    }
}

/// Signs `claims`: with the signing key of `auth_wechat.jwt_keys` when it is set, else HS256 with
/// the JWT secret and no `kid`, as GoTrue does when it has no signing key.
pub fn sign(claims: &impl Serialize) -> Result<String, AuthError> {
    let (header, key) = match gucs::jwt_keys() {
        Some(value) => {
            let keys = key_set(value)?;
            let mut header = Header::new(keys.algorithm);
            header.kid = keys.kid.clone();
            (header, keys.key.clone())
        }
        None => (Header::default(), EncodingKey::from_secret(&gucs::jwt_secret()?)),
    };
    jsonwebtoken::encode(&header, claims, &key).map_err(|_| invalid("the signing key cannot sign"))
}

/// `{"keys": [...]}`: the public parts of the asymmetric keys in `auth_wechat.jwt_keys`, as GoTrue's
/// `/.well-known/jwks.json`; never a private part, never an HS256 secret. Empty without keys.
pub fn jwks() -> Result<Value, AuthError> {
    let keys = match gucs::jwt_keys() {
        Some(value) => key_set(value)?.public.clone(),
        None => Vec::new(),
    };
    Ok(json!({ "keys": keys }))
}

/// PostgREST's `jwt-secret`: every key whose tokens PostgREST must accept. That is the public keys
/// of `jwks()`, the `oct` keys of `auth_wechat.jwt_keys`, and the legacy JWT secret as an `oct`
/// key unless one of those already is it: the project's API keys are signed with it, whatever
/// signs the users' tokens. Holds secrets: only for superusers.
pub fn postgrest_jwks() -> Result<Value, AuthError> {
    let mut keys = match gucs::jwt_keys() {
        Some(value) => {
            let set = key_set(value)?;
            set.public.iter().chain(&set.secret).cloned().collect()
        }
        None => Vec::new(),
    };
    match gucs::jwt_secret() {
        Ok(secret) => {
            let k = B64URL.encode(secret);
            if !keys.iter().any(|key| key["k"] == k.as_str()) {
                keys.push(json!({"kty": "oct", "k": k, "alg": "HS256"}));
            }
        }
        Err(missing) if keys.is_empty() => return Err(missing),
        Err(_) => {}
    }
    Ok(json!({ "keys": keys }))
}

fn key_set(value: CString) -> Result<Rc<KeySet>, AuthError> {
    if let Some(cached) = PARSED.with(|p| p.borrow().as_ref().filter(|(v, _)| *v == value).map(|(_, k)| Rc::clone(k))) {
        return Ok(cached);
    }
    let parsed = Rc::new(parse(value.to_str().map_err(|_| invalid("it is not UTF-8"))?)?);
    PARSED.with(|p| *p.borrow_mut() = Some((value, Rc::clone(&parsed))));
    Ok(parsed)
}

fn invalid(why: impl Into<String>) -> AuthError {
    AuthError::InvalidSetting(SETTING, why.into())
}

/// Parses a JSON array of JWKs. Errors name a key by its position and `kid` (public), never by
/// any of its values.
fn parse(value: &str) -> Result<KeySet, AuthError> {
    let keys: Vec<Map<String, Value>> =
        serde_json::from_str(value).map_err(|_| invalid("it must be a JSON array of JWK objects"))?;
    let mut signer = None;
    let mut public = Vec::new();
    let mut secret = Vec::new();
    for (index, jwk) in keys.iter().enumerate() {
        let name = match jwk.get("kid").and_then(Value::as_str) {
            Some(kid) => format!("key {} (kid {kid:?})", index + 1),
            None => format!("key {}", index + 1),
        };
        let key = Jwk::parse(jwk).map_err(|why| invalid(format!("{name}: {why}")))?;
        if let Some(public_jwk) = key.public_jwk() {
            public.push(public_jwk);
        }
        if let Some(secret_jwk) = key.secret_jwk().map_err(|why| invalid(format!("{name}: {why}")))? {
            secret.push(secret_jwk);
        }
        if key.signs {
            if signer.is_some() {
                return Err(invalid("more than one key has \"sign\" in key_ops"));
            }
            let encoding = key.encoding_key().map_err(|why| invalid(format!("{name}: {why}")))?;
            signer = Some((key.algorithm, key.kid.clone(), encoding));
        }
    }
    let (algorithm, kid, key) = signer.ok_or_else(|| invalid("no key has \"sign\" in key_ops"))?;
    Ok(KeySet { algorithm, kid, key, public, secret })
}

/// One JWK of the setting, checked.
struct Jwk<'a> {
    jwk: &'a Map<String, Value>,
    algorithm: Algorithm,
    kid: Option<String>,
    signs: bool,
}

impl<'a> Jwk<'a> {
    fn parse(jwk: &'a Map<String, Value>) -> Result<Jwk<'a>, String> {
        let kty = jwk.get("kty").and_then(Value::as_str).ok_or("it has no kty")?;
        let alg = jwk.get("alg").and_then(Value::as_str);
        let algorithm = match (kty, alg) {
            ("EC", Some("ES256")) => match jwk.get("crv").and_then(Value::as_str) {
                Some("P-256") => Algorithm::ES256,
                Some(_) => return Err("an EC key must be on crv P-256".into()),
                None => return Err("it has no crv (P-256)".into()),
            },
            ("EC", _) => return Err("an EC key must be alg ES256".into()),
            ("RSA", Some("RS256")) => Algorithm::RS256,
            ("RSA", _) => return Err("an RSA key must be alg RS256".into()),
            ("oct", None | Some("HS256")) => Algorithm::HS256,
            ("oct", _) => return Err("an oct key must be alg HS256".into()),
            _ => return Err(format!("kty {kty:?} is not EC, RSA or oct")),
        };
        let key_ops = match jwk.get("key_ops") {
            None => Vec::new(),
            Some(Value::Array(ops)) => {
                ops.iter().map(|op| op.as_str().ok_or("key_ops must hold strings")).collect::<Result<_, _>>()?
            }
            Some(_) => return Err("key_ops must be an array".into()),
        };
        let kid = match jwk.get("kid") {
            None => None,
            Some(Value::String(kid)) if !kid.is_empty() => Some(kid.clone()),
            Some(_) => return Err("kid must be a non-empty string".into()),
        };
        let key = Jwk { jwk, algorithm, kid, signs: key_ops.contains(&"sign") };
        // Every asymmetric key is published, so its public part is checked even when it does not
        // sign yet.
        match algorithm {
            Algorithm::ES256 => {
                key.ec_point()?;
            }
            Algorithm::RS256 => {
                key.rsa_public()?;
            }
            _ => {}
        }
        Ok(key)
    }

    fn bytes(&self, member: &str) -> Result<Vec<u8>, String> {
        let text = self.jwk.get(member).and_then(Value::as_str).ok_or_else(|| format!("it has no {member}"))?;
        B64URL.decode(text.trim_end_matches('=')).map_err(|_| format!("{member} is not base64url"))
    }

    fn ec_point(&self) -> Result<p256::PublicKey, String> {
        let (x, y) = (self.bytes("x")?, self.bytes("y")?);
        if x.len() != 32 || y.len() != 32 {
            return Err("x and y must be 32 bytes each".into());
        }
        let point = p256::EncodedPoint::from_affine_coordinates(x.as_slice().into(), y.as_slice().into(), false);
        Option::from(p256::PublicKey::from_encoded_point(&point)).ok_or_else(|| "x, y is not a point of P-256".into())
    }

    fn rsa_public(&self) -> Result<rsa::RsaPublicKey, String> {
        let n = rsa::BigUint::from_bytes_be(&self.bytes("n")?);
        let e = rsa::BigUint::from_bytes_be(&self.bytes("e")?);
        let public = rsa::RsaPublicKey::new(n, e).map_err(|_| "n, e is not a valid RSA public key")?;
        if public.size() * 8 < MIN_RSA_BITS {
            return Err(format!("an RSA key must have at least {MIN_RSA_BITS} bits"));
        }
        Ok(public)
    }

    /// The key to sign with; needs the private part, consistent with the public one.
    fn encoding_key(&self) -> Result<EncodingKey, String> {
        let private = "the signing key has no private part (d)";
        match self.algorithm {
            Algorithm::ES256 => {
                let secret = p256::SecretKey::from_slice(&self.bytes("d").map_err(|_| private)?)
                    .map_err(|_| "d is not a P-256 private key")?;
                if secret.public_key() != self.ec_point()? {
                    return Err("d does not match x, y".into());
                }
                let der = secret.to_pkcs8_der().map_err(|_| "the EC key cannot be encoded")?;
                Ok(EncodingKey::from_ec_der(der.as_bytes()))
            }
            Algorithm::RS256 => {
                let public = self.rsa_public()?;
                let d = rsa::BigUint::from_bytes_be(&self.bytes("d").map_err(|_| private)?);
                let primes = match (self.bytes("p"), self.bytes("q")) {
                    (Ok(p), Ok(q)) => vec![rsa::BigUint::from_bytes_be(&p), rsa::BigUint::from_bytes_be(&q)],
                    _ => Vec::new(),
                };
                let key = rsa::RsaPrivateKey::from_components(public.n().clone(), public.e().clone(), d, primes)
                    .map_err(|_| "d, p, q do not make a valid RSA private key for n, e")?;
                let der = key.to_pkcs1_der().map_err(|_| "the RSA key cannot be encoded")?;
                Ok(EncodingKey::from_rsa_der(der.as_bytes()))
            }
            _ => Ok(EncodingKey::from_secret(&self.bytes("k")?)),
        }
    }

    /// An HS256 key as verifiers that hold secrets take it (`k` unpadded, `alg`, `kid`); none for
    /// asymmetric keys.
    fn secret_jwk(&self) -> Result<Option<Value>, String> {
        if self.algorithm != Algorithm::HS256 {
            return Ok(None);
        }
        let mut jwk = json!({"kty": "oct", "k": B64URL.encode(self.bytes("k")?), "alg": "HS256"});
        if let Some(kid) = &self.kid {
            jwk["kid"] = json!(kid);
        }
        Ok(Some(jwk))
    }

    /// The JWKS entry: public members only, with GoTrue's `use` and `key_ops`; none for HS256.
    fn public_jwk(&self) -> Option<Value> {
        let mut public = match self.algorithm {
            Algorithm::ES256 => {
                let point = self.ec_point().ok()?.to_encoded_point(false);
                json!({"kty": "EC", "crv": "P-256", "x": B64URL.encode(point.x()?), "y": B64URL.encode(point.y()?)})
            }
            Algorithm::RS256 => {
                let public = self.rsa_public().ok()?;
                json!({"kty": "RSA", "n": B64URL.encode(public.n().to_bytes_be()), "e": B64URL.encode(public.e().to_bytes_be())})
            }
            _ => return None,
        };
        public["alg"] = json!(if self.algorithm == Algorithm::ES256 { "ES256" } else { "RS256" });
        public["use"] = json!("sig");
        public["key_ops"] = json!(["verify"]);
        if let Some(kid) = &self.kid {
            public["kid"] = json!(kid);
        }
        Some(public)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A P-256 private JWK for the scalar `[byte; 32]`, signing, with kid `ec-1`.
    fn ec_jwk(byte: u8) -> Value {
        let secret = p256::SecretKey::from_slice(&[byte; 32]).unwrap();
        let point = secret.public_key().to_encoded_point(false);
        json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "ec-1", "key_ops": ["sign", "verify"],
               "x": B64URL.encode(point.x().unwrap()), "y": B64URL.encode(point.y().unwrap()),
               "d": B64URL.encode([byte; 32])})
    }

    fn parse_one(jwk: &Value) -> Result<KeySet, AuthError> {
        parse(&json!([jwk]).to_string())
    }

    #[test]
    fn the_sign_key_signs_with_its_kid_and_only_public_parts_are_published() {
        let keys = parse_one(&ec_jwk(7)).unwrap();
        assert_eq!((keys.algorithm, keys.kid.as_deref()), (Algorithm::ES256, Some("ec-1")));
        assert_eq!(keys.public.len(), 1);
        let published = &keys.public[0];
        assert!(published.get("d").is_none());
        assert_eq!(published["key_ops"], json!(["verify"]));
        let decoding =
            jsonwebtoken::DecodingKey::from_jwk(&serde_json::from_value(published.clone()).unwrap()).unwrap();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = keys.kid.clone();
        let token = jsonwebtoken::encode(&header, &json!({"sub": "u1", "exp": 4_000_000_000i64}), &keys.key).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.validate_aud = false;
        assert_eq!(jsonwebtoken::decode::<Value>(&token, &decoding, &validation).unwrap().claims["sub"], "u1");
    }

    #[test]
    fn errors_name_the_setting_and_the_key_never_its_values() {
        let ec = ec_jwk(7);
        let mut wrong_d = ec.clone();
        wrong_d["d"] = ec_jwk(9)["d"].clone();
        let mut not_signing = ec.clone();
        not_signing["key_ops"] = json!(["verify"]);
        let mut wrong_alg = ec.clone();
        wrong_alg["alg"] = json!("RS256");
        for (value, expected) in [
            ("not json".to_string(), "JSON array"),
            (json!([not_signing]).to_string(), "no key has"),
            (json!([ec, ec]).to_string(), "more than one"),
            (json!([wrong_d]).to_string(), "d does not match"),
            (json!([wrong_alg]).to_string(), "alg ES256"),
        ] {
            let message = parse(&value).err().expect(expected).message();
            assert!(message.contains("auth_wechat.jwt_keys") && message.contains(expected), "{message}");
            for private in [&ec["d"], &wrong_d["d"]] {
                assert!(!message.contains(private.as_str().unwrap()), "{message}");
            }
        }
    }

    #[test]
    fn hs256_keys_sign_but_are_never_published() {
        let mut waiting = ec_jwk(7);
        waiting["key_ops"] = json!(["verify"]);
        let hs256 = json!({"kty": "oct", "k": B64URL.encode("a-secret-of-at-least-thirty-two-bytes"), "kid": "h1", "key_ops": ["sign"]});
        let keys = parse(&json!([hs256, waiting]).to_string()).unwrap();
        assert_eq!((keys.algorithm, keys.kid.as_deref()), (Algorithm::HS256, Some("h1")));
        assert_eq!(keys.public.len(), 1, "the EC key listed without sign is published before it signs");
        assert_eq!(keys.public[0]["kid"], "ec-1");
        assert_eq!(
            keys.secret,
            vec![json!({"kty": "oct", "k": hs256["k"], "alg": "HS256", "kid": "h1"})],
            "the secret as verifiers that hold secrets (PostgREST) take it"
        );
    }
}
