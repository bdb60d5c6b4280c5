//! Work done and then undone: a subtransaction rolled back once the work returns, as PL/pgSQL's
//! exception blocks use one. `auth.wechat_import_users`' dry run writes everything (so that later
//! records of a batch see the earlier ones, and the answer is the one a real run gives) and keeps
//! nothing.

use pgrx::pg_sys;

/// Runs `work` in a subtransaction and rolls it back. An ERROR inside aborts the whole
/// transaction as usual (the subtransaction with it).
pub fn undone<T>(work: impl FnOnce() -> T) -> T {
    // SAFETY: plpgsql's sequence (pl_exec.c, exec_stmt_block): the caller's memory context and
    // resource owner are saved, the work runs in the caller's context, and both are restored
    // after the rollback, which releases what the subtransaction held.
    unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::CurrentMemoryContext = context;
        let result = work();
        pg_sys::RollbackAndReleaseCurrentSubTransaction();
        pg_sys::CurrentMemoryContext = context;
        pg_sys::CurrentResourceOwner = owner;
        result
    }
}
