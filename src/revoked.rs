//! Sessions ended as stolen, remembered outside any transaction.
//!
//! Theft detection ends a session in the caller's transaction, and the caller decides whether
//! that transaction commits: `BEGIN … ROLLBACK` from any SQL client with `anon`'s rights, or
//! PostgREST with `db-tx-end = commit-allow-override` and `Prefer: tx=rollback`, would keep the
//! session alive, and the thief could probe with old tokens until the reuse interval after the
//! victim's next refresh handed them the current one. So a detected theft is also written here,
//! in shared memory, which no rollback undoes: every later use of the session (refresh, bind,
//! `wechat_user`, sign-out) treats it as ended, and a refresh of it ends it again in its own
//! transaction, whose answer commits. A probe that rolls back thus teaches nothing a committed
//! one would not: from then on the session answers as ended, whatever token is shown.
//!
//! Bounded, volatile, and never forgetful of a live mark: 4096 marks (512 buckets of 8, placed by
//! a keyed hash no caller can compute), kept until a restart. A mark goes only once its session is
//! gone for good: when a bucket is full, the marks of sessions that `auth.sessions` no longer holds
//! (as the new mark's transaction sees it, and not ended by that transaction itself, which may
//! still roll back) make room. A bucket still full of live marks fails closed: it remembers that it
//! lost one, and from then on a session of that bucket without a mark counts as stolen too, until a
//! restart (a warning in the server log says so). Without `shared_preload_libraries` there is no
//! such memory, and every call that asks it refuses with 500 `configuration_missing`.

use crate::error::AuthError;
use crate::shmem::{self, KeyMap};
// `pg_shmem_init!` names `pg_guard` and `pg_sys` unqualified.
use pgrx::{pg_guard, pg_shmem_init, pg_sys, PgLwLock, Uuid};
use std::cell::RefCell;

const BUCKETS: usize = 512;

#[derive(Copy, Clone)]
struct Marks {
    sessions: KeyMap<(), BUCKETS>,
    /// Buckets that had no room for a mark: their unmarked sessions count as stolen.
    lost: [bool; BUCKETS],
}

impl Default for Marks {
    fn default() -> Self {
        Marks { sessions: KeyMap::default(), lost: [false; BUCKETS] }
    }
}

// SAFETY: plain old data, no pointers.
unsafe impl pgrx::PGRXSharedMemory for Marks {}

// SAFETY (of the `unsafe` in the initialiser): `PgLwLock::new` only names the lock; pgrx sets it
// up in shared memory when `pg_shmem_init!` runs in the postmaster, before any backend uses it.
static MARKS: PgLwLock<Marks> = unsafe { PgLwLock::new(c"auth_wechat_revoked_sessions") };

thread_local! {
    /// The sessions this backend's current transaction ended (its top-level transaction id, and
    /// the ids): that end may still roll back, so their marks are never swept while it runs.
    static ENDED_HERE: RefCell<(pg_sys::TransactionId, Vec<Uuid>)> =
        const { RefCell::new((pg_sys::InvalidTransactionId, Vec::new())) };
}

/// Reserves the shared memory; called from `_PG_init`.
pub fn init() {
    shmem::reserve(|| {
        pg_shmem_init!(MARKS);
    });
}

/// The current top-level transaction's id (it has one once it wrote).
fn this_transaction() -> pg_sys::TransactionId {
    // SAFETY: a plain read of the current transaction's state.
    unsafe { pg_sys::GetTopTransactionIdIfAny() }
}

/// Notes that this transaction ended `sessions` (see `ENDED_HERE`).
pub fn ended_in_this_transaction(sessions: &[Uuid]) {
    let xid = this_transaction();
    ENDED_HERE.with(|ended| {
        let mut ended = ended.borrow_mut();
        if ended.0 != xid {
            *ended = (xid, Vec::new());
        }
        ended.1.extend_from_slice(sessions);
    });
}

fn ended_here(session: Uuid) -> bool {
    let xid = this_transaction();
    ENDED_HERE.with(|ended| {
        let ended = ended.borrow();
        ended.0 == xid && xid != pg_sys::InvalidTransactionId && ended.1.contains(&session)
    })
}

/// Remembers that `session` was ended as stolen. `existing` tells which of some sessions still
/// exist, for making room (see the module's notes).
pub fn remember(session: Uuid, existing: impl FnOnce(&[Uuid]) -> Vec<Uuid>) -> Result<(), AuthError> {
    if !shmem::preloaded() {
        return Err(AuthError::NotPreloaded);
    }
    let key = *session.as_bytes();
    let neighbours: Vec<Uuid> = {
        let mut marks = MARKS.exclusive();
        if marks.sessions.entry(&key, shmem::now_ms(), |_| false).is_some() {
            return Ok(());
        }
        marks.sessions.bucket_of(&key).into_iter().map(|(k, ())| Uuid::from_bytes(k)).collect()
    };
    // The bucket is full: forget the marks of sessions that are gone for good.
    let candidates: Vec<Uuid> = neighbours.into_iter().filter(|s| !ended_here(*s)).collect();
    let alive = existing(&candidates);
    let mut marks = MARKS.exclusive();
    for gone in candidates.iter().filter(|s| !alive.contains(s)) {
        marks.sessions.remove(gone.as_bytes());
    }
    if marks.sessions.entry(&key, shmem::now_ms(), |_| false).is_none() {
        let bucket = marks.sessions.bucket(&key);
        marks.lost[bucket] = true;
        drop(marks);
        pgrx::warning!(
            "auth_wechat: the memory of stolen sessions has no room in one of its parts; sessions of that part \
             count as stolen until the server restarts"
        );
    }
    Ok(())
}

/// Whether `session` counts as stolen: it was ended as stolen (even by a transaction that rolled
/// back), or its bucket lost a mark and holds none of it. Without `shared_preload_libraries`
/// there is no memory to ask, and a call that relies on it refuses (500 `configuration_missing`)
/// rather than run unprotected.
pub fn stolen(session: Uuid) -> Result<bool, AuthError> {
    if !shmem::preloaded() {
        return Err(AuthError::NotPreloaded);
    }
    let key = *session.as_bytes();
    let marks = MARKS.share();
    if marks.sessions.get(&key).is_some() {
        return Ok(true);
    }
    Ok(marks.lost.iter().any(|&lost| lost) && marks.lost[marks.sessions.bucket(&key)])
}
