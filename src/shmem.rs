//! The extension's shared memory: state that every backend of the cluster sees and that no
//! transaction rolls back (the access-token cache, the WeChat call limits, the sessions ended as
//! stolen, the refresh budgets).
//!
//! PostgreSQL hands out shared memory only while `shared_preload_libraries` loads the library, so
//! each module reserves its part through `reserve` from `_PG_init`, and asks `preloaded` before
//! using it. `KeyMap` is the one table shape the per-session and per-client state shares: a fixed
//! number of small buckets keyed by 16 bytes (a session id; an upstream and a client), so a lookup
//! reads a handful of entries whatever the number of keys, and a full bucket gives up its least
//! recently used entry.

use pgrx::pg_sys;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
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

/// Entries per bucket of a `KeyMap`.
const WAYS: usize = 4;

#[derive(Copy, Clone, Default)]
struct Entry<V> {
    key: [u8; 16],
    used_ms: i64,
    value: V,
}

/// Values in shared memory keyed by 16 bytes: `BUCKETS` buckets of `WAYS` entries. A key that is
/// not in its bucket reads as absent; taking a place for it evicts the entry of its bucket used
/// least recently. Keys are hashed to their bucket, and session ids are random (v4 uuids) besides,
/// so buckets fill evenly and no caller can aim keys at one bucket.
#[derive(Copy, Clone)]
pub struct KeyMap<V: Copy + Default, const BUCKETS: usize> {
    buckets: [[Entry<V>; WAYS]; BUCKETS],
}

impl<V: Copy + Default, const BUCKETS: usize> Default for KeyMap<V, BUCKETS> {
    fn default() -> Self {
        KeyMap { buckets: [[Entry::default(); WAYS]; BUCKETS] }
    }
}

// SAFETY: plain old data (when `V` is), no pointers.
unsafe impl<V: Copy + Default, const BUCKETS: usize> pgrx::PGRXSharedMemory for KeyMap<V, BUCKETS> {}

impl<V: Copy + Default, const BUCKETS: usize> KeyMap<V, BUCKETS> {
    fn bucket(key: &[u8; 16]) -> usize {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        (hasher.finish() % BUCKETS as u64) as usize
    }

    /// The key's value, if the map holds one.
    pub fn get(&self, key: &[u8; 16]) -> Option<&V> {
        self.buckets[Self::bucket(key)].iter().find(|e| e.used_ms != 0 && e.key == *key).map(|e| &e.value)
    }

    /// The key's value, marked used now; a new entry starts from `V::default()`, in the place of
    /// its bucket's least recently used one.
    pub fn entry(&mut self, key: &[u8; 16], now_ms: i64) -> &mut V {
        let bucket = &mut self.buckets[Self::bucket(key)];
        let way = match bucket.iter().position(|e| e.used_ms != 0 && e.key == *key) {
            Some(way) => way,
            None => {
                let way = (0..WAYS).min_by_key(|&w| bucket[w].used_ms).unwrap_or(0);
                bucket[way] = Entry { key: *key, used_ms: now_ms, value: V::default() };
                way
            }
        };
        let entry = &mut bucket[way];
        entry.used_ms = now_ms.max(1);
        &mut entry.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_gives_up_its_least_recently_used_entry() {
        // One bucket: every session lands in it.
        let mut map = KeyMap::<u32, 1>::default();
        for (i, session) in (1..=4u8).map(|i| [i; 16]).enumerate() {
            *map.entry(&session, 10 + i as i64) = u32::from(session[0]);
        }
        *map.entry(&[1; 16], 20) += 100; // used again: now the most recent
        assert_eq!(map.get(&[1; 16]), Some(&101));
        *map.entry(&[5; 16], 30) = 5;
        assert_eq!(map.get(&[2; 16]), None, "the least recently used entry went");
        assert_eq!((map.get(&[1; 16]), map.get(&[3; 16]), map.get(&[5; 16])), (Some(&101), Some(&3), Some(&5)));
        assert_eq!(*map.entry(&[2; 16], 40), 0, "a returning session starts afresh");
    }
}
