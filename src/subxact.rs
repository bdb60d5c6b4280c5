//! Work done and then undone: a subtransaction rolled back once the work returns, as PL/pgSQL's
//! exception blocks use one. `auth.wechat_import_users`' dry run writes everything (so that later
//! records of a batch see the earlier ones, and the answer is the one a real run gives) and keeps
//! nothing.

use pgrx::{pg_sys, PgTryBuilder};
use std::panic::AssertUnwindSafe;

/// Runs `work` in a subtransaction and rolls it back. An ERROR inside rolls the subtransaction
/// back too, then goes on to abort the caller's transaction as usual: left open, the
/// subtransaction would outlive the call, and a session outside a transaction block would be left
/// in a state its next `ROLLBACK` ends with FATAL.
pub fn undone<T>(work: impl FnOnce() -> T) -> T {
    // SAFETY: plpgsql's sequence (pl_exec.c, exec_stmt_block): the caller's memory context and
    // resource owner are saved, the work runs in the caller's context, and both are restored
    // after the rollback, which releases what the subtransaction held. pgrx has copied and
    // flushed a caught ERROR's data before the handler runs, as PG_CATCH does.
    let (context, owner) = unsafe {
        let saved = (pg_sys::CurrentMemoryContext, pg_sys::CurrentResourceOwner);
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::CurrentMemoryContext = saved.0;
        saved
    };
    let result = PgTryBuilder::new(AssertUnwindSafe(work))
        .catch_others(|error| {
            roll_back(context, owner);
            error.rethrow()
        })
        .execute();
    roll_back(context, owner);
    result
}

/// Rolls the subtransaction back and restores the caller's memory context and resource owner.
fn roll_back(context: pg_sys::MemoryContext, owner: pg_sys::ResourceOwner) {
    // SAFETY: called once, in the subtransaction `undone` began, with what it saved.
    unsafe {
        pg_sys::RollbackAndReleaseCurrentSubTransaction();
        pg_sys::CurrentMemoryContext = context;
        pg_sys::CurrentResourceOwner = owner;
    }
}
