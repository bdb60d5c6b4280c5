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

use pgrx::pg_sys;
use pgrx::IntoDatum;

/// The owner of `auth.users`; an ERROR when there is no such table (the extension's own
/// install script already refuses a database without it).
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

/// Runs `work` as the auth tables' owner, in a security-restricted operation.
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
    work()
}
