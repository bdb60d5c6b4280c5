//! GoTrue's v2 refresh tokens, written from GoTrue's `internal/crypto/refresh_tokens.go`
//! independently of the extension: tokens the tests build as GoTrue would, and a reader for the
//! ones the extension issues.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// `0x00 | session id | uvarint(counter) | HMAC-SHA256(key)[..16] | SHA-256[..4]`, base64url.
pub fn encode(session_id: [u8; 16], counter: u64, key: &[u8]) -> String {
    let mut raw = vec![0u8];
    raw.extend_from_slice(&session_id);
    let mut value = counter;
    while value >= 0x80 {
        raw.push((value as u8) | 0x80);
        value >>= 7;
    }
    raw.push(value as u8);
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(&raw);
    raw.extend_from_slice(&mac.finalize().into_bytes()[..16]);
    let checksum = Sha256::digest(&raw);
    raw.extend_from_slice(&checksum[..4]);
    URL_SAFE_NO_PAD.encode(raw)
}

/// The session id and counter of `token` if it is well formed and signed with `key`.
pub fn decode(token: &str, key: &[u8]) -> Option<([u8; 16], u64)> {
    let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
    let (body, checksum) = raw.split_at(raw.len().checked_sub(4)?);
    if raw.first() != Some(&0) || Sha256::digest(body)[..4] != *checksum {
        return None;
    }
    let session_id: [u8; 16] = body.get(1..17)?.try_into().ok()?;
    let (mut counter, mut shift, mut end) = (0u64, 0, 17);
    loop {
        let byte = *body.get(end)?;
        counter |= u64::from(byte & 0x7f) << shift;
        shift += 7;
        end += 1;
        if byte & 0x80 == 0 {
            break;
        }
    }
    let (signed, signature) = body.split_at(end);
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(signed);
    (signature == &mac.finalize().into_bytes()[..16]).then_some((session_id, counter))
}

/// A session key as GoTrue stores it in `auth.sessions.refresh_token_hmac_key`.
pub fn stored_key(key: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

/// The key bytes of a stored `refresh_token_hmac_key`.
pub fn key_bytes(stored: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(stored).unwrap()
}

/// `token` with one bit of its HMAC flipped and its checksum made right again: a forgery that
/// only the signature check can catch.
pub fn with_flipped_signature(token: &str) -> String {
    let mut raw = URL_SAFE_NO_PAD.decode(token).unwrap();
    let body_len = raw.len() - 4;
    raw[body_len - 1] ^= 1;
    let checksum = Sha256::digest(&raw[..body_len]);
    raw[body_len..].copy_from_slice(&checksum[..4]);
    URL_SAFE_NO_PAD.encode(raw)
}
