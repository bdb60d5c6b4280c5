//! Scan tickets whose session was handed out, remembered outside any transaction.
//!
//! A poll collects a confirmed ticket by deleting it in the caller's transaction, and the caller
//! decides whether that transaction commits: `BEGIN; SELECT auth.wechat_scan_poll(…); ROLLBACK;`
//! from any SQL client with `anon`'s rights (or PostgREST with `Prefer: tx=rollback` where
//! allowed) would put the ticket back, and each round would carry off another access token, with
//! no session row or audit row left behind. So the handing out is also written here, in shared
//! memory, which no rollback undoes: a ticket is collected once, whatever its transaction does.
//!
//! A mark is needed only while the ticket's row could come back: once the transaction that deleted
//! it commits, the row is gone for good and the mark is dropped (`at_transaction_end`). A collect
//! inside a subtransaction (a savepoint, a PL/pgSQL exception block) could still be undone while
//! its transaction commits, so its mark stays, as does the mark of a transaction that rolls back
//! or is prepared: until its ticket could no longer be collected anyway.
//!
//! Bounded and volatile: 4096 marks (512 buckets of 8, placed by a keyed hash no caller can
//! compute); a bucket full of marks still needed refuses (429, `Retry-After`) rather than forget
//! one. Without `shared_preload_libraries` there is no such memory, and collecting refuses with
//! 500 `configuration_missing`.

use crate::error::AuthError;
use crate::shmem::{self, KeyMap};
// `pg_shmem_init!` names `pg_guard` and `pg_sys` unqualified.
use pgrx::{pg_guard, pg_shmem_init, pg_sys, PgLwLock};
use std::cell::{Cell, RefCell};

/// Until when (milliseconds since the epoch) each collected ticket's mark is needed.
#[derive(Copy, Clone, Default)]
struct Spent {
    tickets: KeyMap<i64, 512>,
}

// SAFETY: plain old data, no pointers.
unsafe impl pgrx::PGRXSharedMemory for Spent {}

// SAFETY (of the `unsafe` in the initialiser): `PgLwLock::new` only names the lock; pgrx sets it
// up in shared memory when `pg_shmem_init!` runs in the postmaster, before any backend uses it.
static SPENT: PgLwLock<Spent> = unsafe { PgLwLock::new(c"auth_wechat_spent_tickets") };

/// Reserves the shared memory; called from `_PG_init`.
pub fn init() {
    shmem::reserve(|| {
        pg_shmem_init!(SPENT);
    });
}

/// Marks `ticket` collected, the mark needed until `until_ms`: `false` if it was collected
/// already (by a transaction that committed or not).
pub fn collect(ticket: &str, until_ms: i64) -> Result<bool, AuthError> {
    if !shmem::preloaded() {
        return Err(AuthError::NotPreloaded);
    }
    let key = shmem::key_of(ticket);
    let now = shmem::now_ms();
    let mut spent = SPENT.exclusive();
    if spent.tickets.get(&key).is_some_and(|until| *until > now) {
        return Ok(false);
    }
    match spent.tickets.entry(&key, now, |until| *until <= now) {
        Some(until) => {
            *until = until_ms;
            drop(spent);
            forget_at_commit(key);
            Ok(true)
        }
        None => {
            let soonest = spent.tickets.bucket_of(&key).iter().map(|(_, until)| *until).min().unwrap_or(now);
            Err(AuthError::RateLimited { retry_after: ((soonest - now).max(0) as f64 / 1000.0).ceil().max(1.0) as u32 })
        }
    }
}

thread_local! {
    /// The marks this backend's transaction made outside any subtransaction: dropped if it commits.
    static AT_COMMIT: RefCell<Vec<[u8; 16]>> = const { RefCell::new(Vec::new()) };
    /// Whether `at_transaction_end` is registered in this backend.
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

/// Drops `key`'s mark when the transaction commits, if the delete that collected the ticket
/// commits with it (no subtransaction around it).
fn forget_at_commit(key: [u8; 16]) {
    // SAFETY: plain reads of the backend's transaction state, and the callback registered once.
    unsafe {
        if pg_sys::GetCurrentTransactionNestLevel() != 1 {
            return;
        }
        if !REGISTERED.replace(true) {
            pg_sys::RegisterXactCallback(Some(at_transaction_end), std::ptr::null_mut());
        }
    }
    AT_COMMIT.with_borrow_mut(|keys| keys.push(key));
}

/// At commit, the marks of `forget_at_commit` go; at an abort or a `PREPARE TRANSACTION` (whose
/// deletes may yet be rolled back) they stay.
#[pg_guard]
unsafe extern "C-unwind" fn at_transaction_end(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    use pg_sys::XactEvent::*;
    if !matches!(event, XACT_EVENT_COMMIT | XACT_EVENT_ABORT | XACT_EVENT_PREPARE) {
        return;
    }
    let keys = AT_COMMIT.take();
    if event == XACT_EVENT_COMMIT && !keys.is_empty() {
        let mut spent = SPENT.exclusive();
        for key in &keys {
            spent.tickets.remove(key);
        }
    }
}
