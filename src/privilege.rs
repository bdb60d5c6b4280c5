//! Whose rights the extension's code runs with: the auth tables' owner's, and never a superuser's.
//!
//! Everything a call of the SQL API sets off in the database — triggers, rules, column defaults,
//! index expressions and check constraints on `auth.users` and its siblings, the access token
//! hook, functions and operators that a statement might resolve to — is code that the tables'
//! owner (on Supabase `supabase_auth_admin`, whose members include the non-superuser `postgres`)
//! can create. So nothing of the extension runs with more rights than that owner has, by two
//! walls:
//!
//! - The functions a client can reach are `SECURITY DEFINER` owned by `auth_wechat_definer`, a
//!   role with no login, no attributes and no rights at all (sql/api.sql): whatever runs as that
//!   owner can do nothing.
//! - Every entry point (`api.rs`) steps down to the auth tables' owner before anything else, with
//!   `as_auth_owner`: a local user id change (`SET ROLE` cannot undo it) in a security-restricted
//!   operation (no `SET ROLE`, no temporary objects, no cursors that outlive it), the way
//!   PostgreSQL runs index expressions during VACUUM. An owner that is a superuser is refused, so
//!   this holds whoever declared the function: also between installing a new build and
//!   `ALTER EXTENSION auth_wechat UPDATE`, when the older declarations still name a superuser as
//!   the owner (docs/operations.md).
//!
//! The owner is found by OID, never by a name someone else could take: the function being called
//! must be a member of the extension (its `pg_depend` entry), its schema is the extension's, and
//! the owner is that of `users` in that schema. The extension's statements name `auth.users` and
//! its siblings, so a schema called `auth` that is not the extension's (the real one renamed, and
//! another made in its place) is refused. Before the step down nothing runs but those catalog
//! reads: no SQL, no function call.
//!
//! The owner's code may also change settings (`set_config('search_path', …)`, locally or for the
//! whole session), and a setting outlives the code that set it: a search path planted by a trigger
//! would steer the extension's later statements, and a session-level one would stay on a pooled
//! connection for every later request. So the work also runs in a GUC nest level of its own that
//! starts from the safe search path (`pg_catalog, pg_temp`) and is rolled back when the work
//! returns, as REFRESH MATERIALIZED VIEW and CREATE INDEX do around user code; an ERROR rolls it
//! back with its (sub)transaction.
//!
//! The administration functions (`wechat_postgrest_jwks`, the access-token tools, `wechat_expose`)
//! are not `SECURITY DEFINER`: they run as their caller, and check that the caller is a superuser
//! (`require_superuser`), even if someone grants them to another role.

use crate::error::AuthError;
use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{IntoDatum, PgLogLevel, PgSqlErrorCode};
use std::ffi::CStr;

/// The tables the extension reads and writes, in the extension's schema.
const TABLES: [&CStr; 6] =
    [c"users", c"identities", c"sessions", c"refresh_tokens", c"mfa_amr_claims", c"audit_log_entries"];

/// Refuses (`insufficient_privilege`) anyone but a superuser: for the administration functions,
/// which are granted to no one, in case someone grants one anyway.
pub fn require_superuser(function: &str) {
    // SAFETY: superuser() reads the current user's catalog row inside the call's transaction.
    if !unsafe { pg_sys::superuser() } {
        pgrx::ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("auth_wechat: only a superuser may call {function}")
        );
    }
}

/// The role the current statement runs as: inside `as_auth_owner`, the auth tables' owner.
pub fn current_user() -> pg_sys::Oid {
    // SAFETY: a plain read of the current user id.
    unsafe { pg_sys::GetUserId() }
}

/// Refuses a `role` claim that would give the token's bearer more than a user's rights through
/// PostgREST, which switches to the role a token names: a superuser, a role with BYPASSRLS,
/// CREATEROLE or REPLICATION, or a member of the auth tables' owner (the current user, inside
/// `as_auth_owner`). `auth.users.role` is writable by that owner's members, and the access token
/// hook chooses the claim too; GoTrue mints whatever they say. A role that does not exist gives
/// nothing (PostgREST refuses the token).
pub fn require_mintable_role(role: &str) -> Result<(), AuthError> {
    let Ok(name) = std::ffi::CString::new(role) else {
        return Ok(());
    };
    // SAFETY: catalog lookups inside the call's transaction; the syscache tuple is read and
    // released before anything else runs.
    let why = unsafe {
        let oid = pg_sys::get_role_oid(name.as_ptr(), true);
        if oid == pg_sys::InvalidOid {
            return Ok(());
        }
        let tuple = pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::AUTHOID as _, oid.into_datum().unwrap());
        if tuple.is_null() {
            return Ok(());
        }
        let authid = &*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_authid>(tuple);
        let why = if authid.rolsuper {
            Some("is a superuser")
        } else if authid.rolbypassrls {
            Some("bypasses row-level security")
        } else if authid.rolcreaterole {
            Some("may create roles")
        } else if authid.rolreplication {
            Some("may replicate")
        } else if pg_sys::is_member_of_role(oid, current_user()) {
            Some("is a member of the auth tables' owner")
        } else {
            None
        };
        pg_sys::ReleaseSysCache(tuple);
        why
    };
    match why {
        Some(why) => Err(AuthError::Misconfigured(format!(
            "the access token's role {role:?} {why}: auth_wechat mints no token for it (check auth.users.role and \
             the access token hook)"
        ))),
        None => Ok(()),
    }
}

/// The owner of the auth tables, found from `function` (the one being called) by OID, as the
/// module's notes say; refused when the function is not the extension's, when the schema named
/// `auth` is not the extension's, or when the owner is a superuser. Missing tables raise
/// `undefined_table`, naming them (the extension may be created before GoTrue makes its tables,
/// and a database may never get them).
fn auth_owner(function: pg_sys::Oid) -> Result<pg_sys::Oid, AuthError> {
    // SAFETY: catalog lookups by OID (and of the two fixed names in the extension's schema) inside
    // the call's transaction; the syscache tuple is read and released before anything else runs.
    unsafe {
        if pg_sys::getExtensionOfObject(pg_sys::ProcedureRelationId, function) == pg_sys::InvalidOid {
            return Err(AuthError::Misconfigured(
                "this function is not one of the extension auth_wechat's; refusing to run it".into(),
            ));
        }
        let schema = pg_sys::get_func_namespace(function);
        if pg_sys::get_namespace_oid(c"auth".as_ptr(), true) != schema {
            return Err(AuthError::Misconfigured(
                "the schema named auth is not the one auth_wechat was created in (was it renamed?): refusing to \
                 work on tables found by that name"
                    .into(),
            ));
        }
        if TABLES.iter().any(|table| pg_sys::get_relname_relid(table.as_ptr(), schema) == pg_sys::InvalidOid) {
            missing_tables(schema);
        }
        let users = pg_sys::get_relname_relid(c"users".as_ptr(), schema);
        let tuple = pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::RELOID as _, users.into_datum().unwrap());
        if tuple.is_null() {
            missing_tables(schema);
        }
        let owner = (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_class>(tuple)).relowner;
        pg_sys::ReleaseSysCache(tuple);
        if pg_sys::superuser_arg(owner) {
            let name = CStr::from_ptr(pg_sys::GetUserNameFromId(owner, true)).to_string_lossy();
            return Err(AuthError::Misconfigured(format!(
                "auth.users is owned by the superuser {name}; auth_wechat works with the rights of the auth \
                 tables' owner, which must not be a superuser (Supabase's is supabase_auth_admin): \
                 ALTER TABLE … OWNER TO such a role"
            )));
        }
        Ok(owner)
    }
}

/// Raises `undefined_table` naming every table of GoTrue's the extension's schema lacks.
///
/// # Safety
/// Inside a transaction.
unsafe fn missing_tables(schema: pg_sys::Oid) -> ! {
    let missing: Vec<String> = TABLES
        .iter()
        // SAFETY: per this function's contract; the names are static and NUL-terminated.
        .filter(|table| unsafe { pg_sys::get_relname_relid(table.as_ptr(), schema) } == pg_sys::InvalidOid)
        .map(|table| format!("auth.{}", table.to_string_lossy()))
        .collect();
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
        format!("auth_wechat needs Supabase Auth's schema; missing: {}", missing.join(", ")),
        "privilege::auth_owner",
    )
    .set_hint(
        "Run Supabase Auth (GoTrue) migrations first, or on plain PostgreSQL load sql/gotrue_schema.sql from the \
         auth_wechat repository.",
    )
    .report(PgLogLevel::ERROR);
    unreachable!("an ERROR does not return")
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

/// Runs `work`, a call of `function`, as the auth tables' owner, in a security-restricted
/// operation, inside a GUC nest level that starts from the safe search path and is rolled back
/// afterwards: no setting that the owner's code changes survives the work. Nothing but the
/// catalog reads of `auth_owner` comes before the step down.
pub fn as_auth_owner<T>(function: pg_sys::Oid, work: impl FnOnce() -> Result<T, AuthError>) -> Result<T, AuthError> {
    let owner = auth_owner(function)?;
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
    // SAFETY: per this function's contract.
    unsafe { crate::gucs::set_in_nest_level(c"search_path", c"pg_catalog, pg_temp") };
}
