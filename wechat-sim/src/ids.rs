//! Identifiers shaped like WeChat's: stable openids and unionids, random session keys and rids.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The openid of `user` in app `appid`: 28 characters starting with `o`, the same on every call
/// and different per app, like WeChat's.
pub fn openid(appid: &str, user: &str) -> String {
    format!("o{}", stable_text(&(appid, user, "openid"), 27))
}

/// The unionid of `user`: the same across apps.
pub fn unionid(user: &str) -> String {
    format!("o{}", stable_text(&(user, "unionid"), 27))
}

/// A 24-character base64 session key, different on every call.
pub fn session_key() -> String {
    let mut key = random_text(22);
    key.push_str("==");
    key.replace(['-', '_'], "+")
}

/// The opaque part of an access token.
pub fn token_text() -> String {
    random_text(64)
}

/// A request trace id like WeChat's `rid: 6380622c-50076416-224b40b0`.
pub fn rid() -> String {
    let n = next_random();
    format!("{:08x}-{:08x}-{:08x}", n >> 32, n as u32, next_random() as u32)
}

fn stable_text(seed: &impl Hash, len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut round = 0u64;
    while out.len() < len {
        let mut hasher = DefaultHasher::new();
        seed.hash(&mut hasher);
        round.hash(&mut hasher);
        let mut n = hasher.finish();
        for _ in 0..10 {
            if out.len() < len {
                out.push(ALPHABET[(n & 63) as usize] as char);
                n >>= 6;
            }
        }
        round += 1;
    }
    out
}

fn random_text(len: usize) -> String {
    (0..len).map(|_| ALPHABET[(next_random() & 63) as usize] as char).collect()
}

/// splitmix64 over a counter seeded from the clock: unpredictable enough for a simulator.
fn next_random() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    if STATE.load(Ordering::Relaxed) == 0 {
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
        let _ = STATE.compare_exchange(0, seed | 1, Ordering::Relaxed, Ordering::Relaxed);
    }
    let mut z = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openids_are_stable_per_app_and_user() {
        assert_eq!(openid("wx1", "alice"), openid("wx1", "alice"));
        assert_ne!(openid("wx1", "alice"), openid("wx2", "alice"));
        assert_ne!(openid("wx1", "alice"), openid("wx1", "bob"));
        assert_eq!(openid("wx1", "alice").len(), 28);
        assert!(openid("wx1", "alice").starts_with('o'));
    }

    #[test]
    fn session_keys_look_like_base64_of_16_bytes() {
        let key = session_key();
        assert_eq!(key.len(), 24);
        assert!(key.ends_with("=="));
        assert_ne!(key, session_key());
    }
}
