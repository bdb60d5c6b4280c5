//! The extension's additions to Supabase Auth's schema, and what this backend knows of that
//! schema, learnt once: that the WeChat columns and indexes are there, and whether
//! `auth.sessions` has GoTrue's v2 refresh-token columns.
//!
//! The additions: MemFire's columns on `auth.users` (`wechat_id`, `wechat_unionid`,
//! `varchar(255) DEFAULT ''`, `''` meaning unbound), the openids the user unlinked
//! (`wechat_unlinked text[]`, see `identity`), the unique index that gives an openid at most one
//! user, and the two indexes that find who holds a unionid. None is a member of the extension:
//! they stay with the tables when it is dropped, so DROP EXTENSION never deletes user data, and
//! pg_dump keeps them with the tables.
//!
//! The extension may have been created before GoTrue made its tables (a restore writes the
//! extension first; Supabase creates extensions before GoTrue's migrations run), so `prepare` runs
//! at install when the tables are there, and otherwise at the first call that finds the columns
//! missing; it is also `auth.wechat_prepare_schema()`. Like every call of the extension, it runs as
//! the tables' owner (`privilege`), which is also who may alter them.

use crate::error::AuthError;
use crate::spi::first_row;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode, Spi};
use std::cell::Cell;

thread_local! {
    /// Whether the WeChat columns and indexes were found; only a yes is kept (a backend serves
    /// one database, and nothing here is ever taken away by the extension).
    static READY: Cell<bool> = const { Cell::new(false) };
    /// Whether `auth.sessions` has the v2 columns; `None` until asked.
    static V2_COLUMNS: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Whether the columns and the three indexes are all there.
fn complete() -> bool {
    first_row(
        "SELECT (SELECT pg_catalog.count(*) FROM pg_catalog.pg_attribute
                  WHERE attrelid = 'auth.users'::pg_catalog.regclass AND NOT attisdropped
                    AND attname IN ('wechat_id', 'wechat_unionid', 'wechat_unlinked')) = 3
            AND pg_catalog.to_regclass('auth.users_wechat_id_key') IS NOT NULL
            AND pg_catalog.to_regclass('auth.users_wechat_unionid_idx') IS NOT NULL
            AND pg_catalog.to_regclass('auth.identities_wechat_unionid_idx') IS NOT NULL",
        &[],
        |row| row.get_one::<bool>(),
    )
    .flatten()
    .unwrap_or(false)
}

/// Adds what is missing of the columns and indexes, in this transaction; a no-op without a lock
/// once all is there. Concurrent first calls queue on the table lock, and the second finds what
/// the first made. Also moves the unlinked openids that 0.2.0 kept in the user's other
/// identities (`identity_data.unlinked_openids`) to the user's row.
pub fn prepare() {
    if complete() {
        return;
    }
    Spi::run(
        "LOCK TABLE auth.users IN SHARE ROW EXCLUSIVE MODE;
         ALTER TABLE auth.users ADD COLUMN IF NOT EXISTS wechat_id pg_catalog.varchar(255) DEFAULT '',
                                ADD COLUMN IF NOT EXISTS wechat_unionid pg_catalog.varchar(255) DEFAULT '',
                                ADD COLUMN IF NOT EXISTS wechat_unlinked pg_catalog.text[] DEFAULT '{}';
         UPDATE auth.users u SET wechat_unlinked = m.openids
           FROM (SELECT i.user_id, pg_catalog.array_agg(DISTINCT x.openid) AS openids
                   FROM auth.identities i,
                        pg_catalog.jsonb_array_elements_text(i.identity_data OPERATOR(pg_catalog.->) 'unlinked_openids') AS x(openid)
                  WHERE i.identity_data OPERATOR(pg_catalog.?) 'unlinked_openids'
                  GROUP BY i.user_id) m
          WHERE u.id OPERATOR(pg_catalog.=) m.user_id;
         UPDATE auth.identities SET identity_data = identity_data OPERATOR(pg_catalog.-) 'unlinked_openids'::pg_catalog.text
          WHERE identity_data OPERATOR(pg_catalog.?) 'unlinked_openids';
         CREATE UNIQUE INDEX IF NOT EXISTS users_wechat_id_key ON auth.users (wechat_id)
             WHERE wechat_id OPERATOR(pg_catalog.<>) '';
         CREATE INDEX IF NOT EXISTS users_wechat_unionid_idx ON auth.users (wechat_unionid)
             WHERE wechat_unionid OPERATOR(pg_catalog.<>) '';
         CREATE INDEX IF NOT EXISTS identities_wechat_unionid_idx
             ON auth.identities ((identity_data OPERATOR(pg_catalog.->>) 'unionid'))
             WHERE provider OPERATOR(pg_catalog.=) ANY (ARRAY['wechat_mini', 'wechat_official', 'wechat_web', 'wechat_app']);",
    )
    .unwrap_or_else(|e| pgrx::error!("auth_wechat: adding the WeChat columns failed: {e}"));
}

/// Makes sure the extension's columns and indexes are there, adding them (in this transaction, as
/// the tables' owner) if not. A read-only transaction cannot add them: it gets an error that says
/// how to.
fn ready() {
    if READY.with(Cell::get) {
        return;
    }
    if !complete() {
        // SAFETY: a plain read of the transaction's read-only flag.
        if unsafe { pgrx::pg_sys::XactReadOnly } {
            ErrorReport::new(
                PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                "auth_wechat: auth.users has no WeChat columns yet, and a read-only transaction cannot add them",
                "schema::ready",
            )
            .set_hint("Run SELECT auth.wechat_prepare_schema(); on the primary, or sign a user in there first.")
            .report(PgLogLevel::ERROR);
        }
        prepare();
    }
    READY.with(|ready| ready.set(true));
}

/// What a call needs before it does anything, above all before it spends a single-use WeChat code.
#[derive(Clone, Copy)]
pub enum Needs {
    /// To write the auth tables: a transaction that can write (not `BEGIN READ ONLY`, PostgREST's
    /// GET, nor a hot standby: 405 there, first) and the WeChat columns.
    Writes,
    /// To read them: the WeChat columns (in a read-only transaction, an error that says how to add
    /// them).
    Reads,
    /// Nothing of the auth tables.
    Nothing,
}

/// The one guard every entry point passes first (`api::client_entry!`), as `needs` says.
pub fn ready_for(needs: Needs) -> Result<(), AuthError> {
    match needs {
        Needs::Writes => {
            crate::spi::writable()?;
            ready();
        }
        Needs::Reads => ready(),
        Needs::Nothing => {}
    }
    Ok(())
}

/// Whether `auth.sessions` has `refresh_token_hmac_key` and `refresh_token_counter` (GoTrue's
/// migrations since 2025-10). Without them, v2 refresh tokens are neither issued nor accepted.
pub fn has_v2_columns() -> bool {
    if let Some(known) = V2_COLUMNS.with(Cell::get) {
        return known;
    }
    let found = first_row(
        "SELECT pg_catalog.count(*) = 2 FROM pg_catalog.pg_attribute
          WHERE attrelid = 'auth.sessions'::regclass AND NOT attisdropped
            AND attname IN ('refresh_token_hmac_key', 'refresh_token_counter')",
        &[],
        |row| row.get_one::<bool>(),
    )
    .flatten()
    .unwrap_or(false);
    V2_COLUMNS.with(|c| c.set(Some(found)));
    found
}
