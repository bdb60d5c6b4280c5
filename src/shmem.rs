//! The extension's shared memory: state that every backend of the cluster sees and that no
//! transaction rolls back (the access-token cache, the WeChat call limits, the sessions ended as
//! stolen, the refresh and scan budgets, the scan tickets collected).
//!
//! PostgreSQL hands out shared memory only while `shared_preload_libraries` loads the library, so
//! each module reserves its part through `reserve` from `_PG_init`, and asks `preloaded` before
//! using it. `KeyMap` is the one table shape the per-session and per-client state shares: a fixed
//! number of small buckets keyed by 16 bytes (a session id; an upstream and a client), so a lookup
//! reads a handful of entries whatever the number of keys.
//!
//! Two rules keep a caller from steering it. A key's bucket is an HMAC of the key under a secret
//! drawn at random when the server starts, so no one can compute which keys share a bucket (with
//! a fixed hash, four sessions of one's own were enough to push a stolen session's mark out). And
//! an entry gives up its place only when its owner says it may (a drained budget: nothing is lost
//! by forgetting it); a bucket whose entries all hold on has no room, and the caller fails closed.

use hmac::{Hmac, Mac};
use pgrx::pg_sys;
use sha2::Sha256;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Set in the postmaster when the library is preloaded; backends inherit it.
static PRELOADED: AtomicBool = AtomicBool::new(false);

/// Runs `reserve` (a module's `pg_shmem_init!`) if shared memory can be reserved now, that is
/// while `shared_preload_libraries` loads the library.
pub fn reserve(reserve: impl FnOnce()) {
    // SAFETY: reading a flag Postgres sets before calling _PG_init.
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        reserve();
        PRELOADED.store(true, Ordering::SeqCst);
    }
}

/// Whether the library was preloaded, so that the shared memory exists.
pub fn preloaded() -> bool {
    PRELOADED.load(Ordering::SeqCst)
}

/// Milliseconds since the Unix epoch: the clock of the shared state, the same in every backend.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A `KeyMap` key for a name (a client's address, an upstream): its SHA-256, cut to 16 bytes.
pub fn key_of(name: &str) -> [u8; 16] {
    use sha2::Digest;
    let digest = Sha256::digest(name.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// Entries per bucket of a `KeyMap`.
const WAYS: usize = 8;

#[derive(Copy, Clone, Default)]
struct Entry<V> {
    key: [u8; 16],
    /// When the entry was last used; 0 marks a free place.
    used_ms: i64,
    value: V,
}

/// Values in shared memory keyed by 16 bytes: `BUCKETS` buckets of `WAYS` entries, a key's bucket
/// chosen by a keyed hash (see the module's notes).
#[derive(Copy, Clone)]
pub struct KeyMap<V: Copy + Default, const BUCKETS: usize> {
    /// The hash key, drawn at the first write after the server started; all zero until then,
    /// while the map is empty.
    secret: [u8; 32],
    buckets: [[Entry<V>; WAYS]; BUCKETS],
}

impl<V: Copy + Default, const BUCKETS: usize> Default for KeyMap<V, BUCKETS> {
    fn default() -> Self {
        KeyMap { secret: [0; 32], buckets: [[Entry::default(); WAYS]; BUCKETS] }
    }
}

// SAFETY: plain old data (when `V` is), no pointers.
unsafe impl<V: Copy + Default, const BUCKETS: usize> pgrx::PGRXSharedMemory for KeyMap<V, BUCKETS> {}

impl<V: Copy + Default, const BUCKETS: usize> KeyMap<V, BUCKETS> {
    /// The bucket of `key` (meaningful once the map was written to; until then every key reads
    /// as absent anyway).
    pub fn bucket(&self, key: &[u8; 16]) -> usize {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(key);
        let digest = mac.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        (u64::from_le_bytes(first) % BUCKETS as u64) as usize
    }

    /// The key's value, if the map holds one.
    pub fn get(&self, key: &[u8; 16]) -> Option<&V> {
        if self.secret == [0; 32] {
            return None;
        }
        self.buckets[self.bucket(key)].iter().find(|e| e.used_ms != 0 && e.key == *key).map(|e| &e.value)
    }

    /// The key's value, marked used now. A new key starts from `V::default()` in a free place of
    /// its bucket, or in the place of the least recently used entry whose value `may_go` lets go;
    /// `None` when every place is held (nothing changes then).
    pub fn entry(&mut self, key: &[u8; 16], now_ms: i64, may_go: impl Fn(&V) -> bool) -> Option<&mut V> {
        if self.secret == [0; 32] {
            getrandom::fill(&mut self.secret).expect("the OS random source works");
        }
        let bucket_index = self.bucket(key);
        let bucket = &mut self.buckets[bucket_index];
        let way = match bucket.iter().position(|e| e.used_ms != 0 && e.key == *key) {
            Some(way) => way,
            None => {
                let way = (0..WAYS)
                    .filter(|&w| bucket[w].used_ms == 0 || may_go(&bucket[w].value))
                    .min_by_key(|&w| bucket[w].used_ms)?;
                bucket[way] = Entry { key: *key, used_ms: now_ms, value: V::default() };
                way
            }
        };
        let entry = &mut bucket[way];
        entry.used_ms = now_ms.max(1);
        Some(&mut entry.value)
    }

    /// The keys and values that share `key`'s bucket (`key`'s own included, if held).
    pub fn bucket_of(&self, key: &[u8; 16]) -> Vec<([u8; 16], V)> {
        if self.secret == [0; 32] {
            return Vec::new();
        }
        self.buckets[self.bucket(key)].iter().filter(|e| e.used_ms != 0).map(|e| (e.key, e.value)).collect()
    }

    /// Forgets `key`.
    pub fn remove(&mut self, key: &[u8; 16]) {
        if self.secret == [0; 32] {
            return;
        }
        let bucket_index = self.bucket(key);
        if let Some(entry) = self.buckets[bucket_index].iter_mut().find(|e| e.used_ms != 0 && e.key == *key) {
            *entry = Entry::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One bucket: every key lands in it.
    fn key(i: u8) -> [u8; 16] {
        [i; 16]
    }

    #[test]
    fn a_full_bucket_gives_up_only_what_may_go() {
        let mut map = KeyMap::<u32, 1>::default();
        for i in 1..=WAYS as u8 {
            *map.entry(&key(i), 10 + i64::from(i), |_| false).unwrap() = u32::from(i);
        }
        assert!(map.entry(&key(100), 50, |_| false).is_none(), "nothing may go: no room");
        assert_eq!(map.get(&key(1)), Some(&1), "and nothing went");
        // Values 1 and 2 may go: the least recently used of them does.
        *map.entry(&key(1), 60, |_| false).unwrap() += 100; // used again: now the most recent
        *map.entry(&key(100), 70, |v| *v <= 2 || *v == 101).unwrap() = 100;
        assert_eq!(map.get(&key(2)), None, "the least recently used of those that may go");
        assert_eq!((map.get(&key(1)), map.get(&key(100))), (Some(&101), Some(&100)));
        map.remove(&key(100));
        assert_eq!(map.get(&key(100)), None);
        assert_eq!(*map.entry(&key(2), 80, |_| false).unwrap(), 0, "a returning key starts afresh in the free place");
        assert_eq!(map.bucket_of(&key(1)).len(), WAYS);
    }

    #[test]
    fn buckets_depend_on_a_secret_drawn_at_the_first_write() {
        let mut a = KeyMap::<u32, 1024>::default();
        let mut b = KeyMap::<u32, 1024>::default();
        assert_eq!(a.get(&key(1)), None);
        a.entry(&key(1), 1, |_| true);
        b.entry(&key(1), 1, |_| true);
        assert_ne!(a.secret, [0; 32]);
        assert_ne!(a.secret, b.secret);
        let spread = |map: &KeyMap<u32, 1024>| (0..=255u8).map(|i| map.bucket(&key(i))).collect::<Vec<_>>();
        assert_ne!(spread(&a), spread(&b), "two secrets, two layouts");
    }
}
