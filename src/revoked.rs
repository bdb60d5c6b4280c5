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
//! Bounded and volatile: 1024 marks (256 buckets of 4, the oldest mark of a full bucket goes),
//! kept until a restart. A session whose end was rolled back and that no call has touched since
//! is usable again after a restart, or once 1024 later thefts have pushed its mark out. Without
//! `shared_preload_libraries` there is no such memory, and every call that asks it (refresh,
//! binds, `wechat_user`, sign-out) refuses with 500 `configuration_missing`.

use crate::error::AuthError;
use crate::shmem::{self, KeyMap};
// `pg_shmem_init!` names `pg_guard` and `pg_sys` unqualified.
use pgrx::{pg_guard, pg_shmem_init, pg_sys, PgLwLock, Uuid};

static MARKS: PgLwLock<KeyMap<(), 256>> = unsafe { PgLwLock::new(c"auth_wechat_revoked_sessions") };

/// Reserves the shared memory; called from `_PG_init`.
pub fn init() {
    shmem::reserve(|| {
        pg_shmem_init!(MARKS);
    });
}

/// Remembers that `session` was ended as stolen.
pub fn remember(session: Uuid) {
    if shmem::preloaded() {
        MARKS.exclusive().entry(session.as_bytes(), shmem::now_ms());
    }
}

/// Whether `session` was ended as stolen, even by a transaction that rolled back. Without
/// `shared_preload_libraries` there is no memory to ask, and a call that relies on it refuses
/// (500 `configuration_missing`) rather than run unprotected.
pub fn stolen(session: Uuid) -> Result<bool, AuthError> {
    if !shmem::preloaded() {
        return Err(AuthError::NotPreloaded);
    }
    Ok(MARKS.share().get(session.as_bytes()).is_some())
}
