//! Whose rights the extension's reads and writes of `auth.*` run with: the auth tables' owner's.
//!
//! The SQL API is `SECURITY DEFINER` and owned by the superuser who created the extension, so
//! that the `anon` role can reach rows it may not touch itself. But everything a write sets off —
//! triggers, rules, column defaults, index expressions and check constraints on `auth.users` and
//! its siblings, and the access token hook — is code that the tables' owner (on Supabase
//! `supabase_auth_admin`, whose members include the non-superuser `postgres`) can create. Run as
//! the function owner, one anonymous sign-in would run that code as a superuser. So the work runs
//! with the user id switched to the owner of `auth.users` (what GoTrue itself connects as), the
//! way PostgreSQL runs index expressions during VACUUM or REFRESH MATERIALIZED VIEW: a local user
//! id change (`SET ROLE` cannot undo it) in a security-restricted operation (no `SET ROLE`, no
//! temporary objects, no cursors that outlive it).
//!
//! That code may also change settings (`set_config('search_path', …)`, locally or for the whole
//! session), and a setting outlives the code that set it: a search path planted by a trigger would
//! steer the statements the extension runs afterwards as the function's owner, and a session-level
//! one would stay on a pooled connection for every later request. So the work also runs in a GUC
//! nest level of its own that starts from the safe search path (`pg_catalog, pg_temp`) and is
//! rolled back when the work returns, as REFRESH MATERIALIZED VIEW and CREATE INDEX do around
//! user code; an ERROR rolls it back with its (sub)transaction.

use pgrx::pg_sys;
use pgrx::IntoDatum;

/// Refuses (`insufficient_privilege`) anyone but a superuser: for the functions that hand out
/// secrets, which are granted to no one, in case someone grants one anyway.
pub fn require_superuser(function: &str) {
    // SAFETY: superuser() reads the current user's catalog row inside the call's transaction.
    if !unsafe { pg_sys::superuser() } {
        pgrx::ereport!(
            ERROR,
            pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("auth_wechat: only a superuser may call {function}: it returns secrets")
        );
    }
}

/// The owner of `auth.users`; `undefined_table` naming what is missing when there is no such
/// table (the extension may be created before GoTrue makes its tables).
pub fn auth_owner() -> pg_sys::Oid {
    // SAFETY: catalog lookups by name and by oid inside a transaction; the syscache tuple is
    // read and released before anything else can happen.
    unsafe {
        let namespace = pg_sys::get_namespace_oid(c"auth".as_ptr(), true);
        let relation = if namespace == pg_sys::InvalidOid {
            pg_sys::InvalidOid
        } else {
            pg_sys::get_relname_relid(c"users".as_ptr(), namespace)
        };
        let tuple = if relation == pg_sys::InvalidOid {
            std::ptr::null_mut()
        } else {
            pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::RELOID as _, relation.into_datum().unwrap())
        };
        if tuple.is_null() {
            // The schema's own check names every missing table, with its hint (undefined_table).
            crate::spi::first_row("SELECT 1 FROM auth.wechat_prepare_schema()", &[], |row| row.get_one::<i32>());
            pgrx::error!("auth_wechat: table auth.users does not exist");
        }
        let owner = (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_class>(tuple)).relowner;
        pg_sys::ReleaseSysCache(tuple);
        owner
    }
}

/// Puts the user id and security context back when dropped, on success or while an ERROR
/// unwinds (a transaction abort would restore them too, but a caught error must not leave the
/// rest of the transaction running as the owner).
struct Restore {
    user: pg_sys::Oid,
    context: i32,
}

impl Drop for Restore {
    fn drop(&mut self) {
        // SAFETY: restores exactly what GetUserIdAndSecContext returned.
        unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.context) }
    }
}

/// Runs `work` as the auth tables' owner, in a security-restricted operation, inside a GUC nest
/// level that starts from the safe search path and is rolled back afterwards: no setting that
/// the owner's code changes survives the work.
pub fn as_auth_owner<T>(work: impl FnOnce() -> T) -> T {
    let owner = auth_owner();
    let mut saved = Restore { user: pg_sys::InvalidOid, context: 0 };
    // SAFETY: the documented save / switch / restore sequence of miscinit.c.
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved.user, &mut saved.context);
        pg_sys::SetUserIdAndSecContext(
            owner,
            saved.context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32 | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        );
    }
    let _restore = saved;
    // SAFETY: PostgreSQL's pattern around user code (matview.c, indexcmds.c): a new nest level,
    // the safe search path saved into it, and the level rolled back on the way out. On an ERROR
    // the level is not popped here: the (sub)transaction's abort rolls back every level above its
    // own, this one included, and nothing in between runs.
    let level = unsafe {
        let level = pg_sys::NewGUCNestLevel();
        restrict_search_path();
        level
    };
    let result = work();
    // SAFETY: the level opened above, still the innermost one: `work` returned normally, and
    // every level opened inside it was closed by whoever opened it.
    unsafe { pg_sys::AtEOXact_GUC(false, level) };
    result
}

/// PostgreSQL 17's `RestrictSearchPath()`, which earlier majors lack: the safe search path, saved
/// into the current nest level.
///
/// # Safety
/// Inside a transaction, with a GUC nest level opened for it.
unsafe fn restrict_search_path() {
    // SAFETY: per this function's contract; the strings are static and NUL-terminated.
    unsafe {
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            c"pg_catalog, pg_temp".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
    }
}
