//! GoTrue's v2 refresh tokens (supabase/auth 2025-10, `internal/crypto/refresh_tokens.go`): no
//! `auth.refresh_tokens` row; the token names its session and a counter, signed with the
//! session's own key (`auth.sessions.refresh_token_hmac_key`), and the session keeps the counter
//! of the last token it issued (`refresh_token_counter`).
//!
//! Layout, base64url without padding: `0x00 | session id (16) | counter (unsigned LEB128 varint)
//! | HMAC-SHA256(key, everything before)[..16] | SHA-256(everything before)[..4]`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const VERSION: u8 = 0;
const SIGNATURE_LEN: usize = 16;
const CHECKSUM_LEN: usize = 4;
const MIN_LEN: usize = 1 + 16 + 1 + SIGNATURE_LEN + CHECKSUM_LEN;

/// A v2 token whose shape and checksum are sound; its signature is checked against the
/// session's key once that is read.
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed {
    pub session_id: [u8; 16],
    pub counter: i64,
    signed: Vec<u8>,
    signature: Vec<u8>,
}

/// Parses a token as GoTrue's `ParseRefreshToken` does; `None` where GoTrue answers 400
/// `validation_failed`.
pub fn parse(token: &str) -> Option<Parsed> {
    let bytes = B64URL.decode(token).ok()?;
    if bytes.len() < MIN_LEN || bytes[0] != VERSION {
        return None;
    }
    let (body, checksum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
    if !constant_time_eq(&Sha256::digest(body)[..CHECKSUM_LEN], checksum) {
        return None;
    }
    let session_id: [u8; 16] = body[1..17].try_into().ok()?;
    let (counter, varint_len) = read_uvarint(&body[17..])?;
    let signed_len = 17 + varint_len;
    if body.len() != signed_len + SIGNATURE_LEN {
        return None;
    }
    Some(Parsed {
        session_id,
        // GoTrue clamps to its int64 counter column.
        counter: i64::try_from(counter).unwrap_or(i64::MAX),
        signed: body[..signed_len].to_vec(),
        signature: body[signed_len..].to_vec(),
    })
}

/// Whether `parsed` was signed with `key` (the decoded bytes of `refresh_token_hmac_key`).
pub fn verify(parsed: &Parsed, key: &[u8]) -> bool {
    constant_time_eq(&mac(key, &parsed.signed), &parsed.signature)
}

/// The token for `counter` of session `session_id`, signed with `key`.
pub fn encode(session_id: [u8; 16], counter: i64, key: &[u8]) -> String {
    let mut bytes = vec![VERSION];
    bytes.extend_from_slice(&session_id);
    let mut rest = u64::try_from(counter).unwrap_or(0);
    loop {
        let byte = (rest & 0x7f) as u8;
        rest >>= 7;
        if rest == 0 {
            bytes.push(byte);
            break;
        }
        bytes.push(byte | 0x80);
    }
    let signature = mac(key, &bytes);
    bytes.extend_from_slice(&signature);
    let checksum = Sha256::digest(&bytes);
    bytes.extend_from_slice(&checksum[..CHECKSUM_LEN]);
    B64URL.encode(bytes)
}

/// A fresh session key: 32 random bytes, stored as GoTrue stores it (base64url, no padding).
pub fn new_key() -> String {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("the OS random source works");
    B64URL.encode(key)
}

/// The key bytes of a stored `refresh_token_hmac_key`; `None` for a key GoTrue encrypted with
/// its own database-encryption keys (a JSON object), which this extension cannot read.
pub fn decode_key(stored: &str) -> Option<Vec<u8>> {
    if stored.starts_with('{') {
        return None;
    }
    B64URL.decode(stored.trim_end_matches('=')).ok()
}

fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes()[..SIGNATURE_LEN].to_vec()
}

/// Go's `binary.Uvarint`: the value and how many bytes it took.
fn read_uvarint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        if i == 9 && *byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: [u8; 16] =
        [0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x33, 0x33, 0x44, 0x44, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55];

    fn key() -> Vec<u8> {
        (0u8..32).collect()
    }

    #[test]
    fn matches_a_vector_computed_independently() {
        // From a separate Python rendering of GoTrue's Encode: key 0x00..0x1f, counter 0.
        assert_eq!(encode(SID, 0, &key()), "ABEREREiIjMzRERVVVVVVVUAbQYLQ1yMaykUnny3YB-qbHjd1so");
    }

    #[test]
    fn round_trips_and_checks_the_signature() {
        for counter in [0, 1, 127, 128, 16_384, i64::MAX] {
            let token = encode(SID, counter, &key());
            let parsed = parse(&token).unwrap();
            assert_eq!((parsed.session_id, parsed.counter), (SID, counter));
            assert!(verify(&parsed, &key()));
            assert!(!verify(&parsed, &[7u8; 32]));
        }
        assert_eq!(encode(SID, 0, &key()).len(), 51);
        assert_eq!(encode(SID, 128, &key()).len(), 52);
    }

    #[test]
    fn refuses_what_gotrue_refuses() {
        let token = encode(SID, 5, &key());
        let mut bytes = B64URL.decode(&token).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(parse(&B64URL.encode(&bytes)), None, "checksum");
        let mut versioned = B64URL.decode(&token).unwrap();
        versioned[0] = 1;
        assert_eq!(parse(&B64URL.encode(&versioned)), None, "version");
        assert_eq!(parse(&token[..20]), None, "length");
        assert_eq!(parse("not base64!"), None);
    }

    #[test]
    fn keys_are_stored_as_gotrue_stores_them() {
        let stored = new_key();
        assert_eq!(decode_key(&stored).map(|k| k.len()), Some(32));
        assert_eq!(decode_key(r#"{"key_id":"k","alg":"aes-gcm-hkdf"}"#), None);
    }
}
