//! What this backend knows of Supabase Auth's schema, learnt once: that GoTrue's tables and the
//! extension's WeChat columns are there, and whether `auth.sessions` has GoTrue's v2
//! refresh-token columns.
//!
//! The extension may have been created before GoTrue made its tables (a restore writes the
//! extension first; Supabase creates extensions before GoTrue's migrations run), in which case
//! `auth.users` got no `wechat_id` column at install. The first call that finds them missing adds
//! them through `auth.wechat_prepare_schema()` (sql/schema.sql), as the tables' owner; a database
//! that never gets the tables answers that function's error, which names what is missing.

use crate::spi::{first_row, write_row};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};
use std::cell::Cell;

thread_local! {
    /// Whether the tables and the WeChat columns were found; only a yes is kept (a backend
    /// serves one database, and nothing here is ever taken away by the extension).
    static READY: Cell<bool> = const { Cell::new(false) };
    /// Whether `auth.sessions` has the v2 columns; `None` until asked.
    static V2_COLUMNS: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Makes sure GoTrue's tables and the extension's columns are there, adding the columns (in this
/// transaction, as its current user, the tables' owner) if only they are missing. A read-only
/// transaction cannot add them: it gets an error that says how to.
pub fn ready() {
    if READY.with(Cell::get) {
        return;
    }
    let prepared = first_row(
        "SELECT pg_catalog.to_regclass('auth.users_wechat_id_key') IS NOT NULL
            AND (SELECT pg_catalog.count(*) = 2 FROM pg_catalog.pg_attribute
                  WHERE attrelid = pg_catalog.to_regclass('auth.users') AND NOT attisdropped
                    AND attname IN ('wechat_id', 'wechat_unionid'))
            AND (SELECT pg_catalog.count(*) = 6 FROM pg_catalog.unnest(ARRAY['auth.users', 'auth.identities',
                    'auth.sessions', 'auth.refresh_tokens', 'auth.mfa_amr_claims', 'auth.audit_log_entries']) AS t
                  WHERE pg_catalog.to_regclass(t) IS NOT NULL)
            AND ((pg_catalog.to_regclass('auth.users_wechat_unionid_idx') IS NOT NULL
                  AND pg_catalog.to_regclass('auth.identities_wechat_unionid_idx') IS NOT NULL)
                 -- Declared as 0.1.0 had it, before ALTER EXTENSION UPDATE (which builds them):
                 -- the unionid indexes only speed up, and that version cannot add them.
                 OR pg_catalog.to_regprocedure('auth.wechat_prepare_schema()') IS NULL)",
        &[],
        |row| row.get_one::<bool>(),
    )
    .flatten()
    .unwrap_or(false);
    if !prepared {
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
        write_row("SELECT 1 FROM auth.wechat_prepare_schema()", &[], |row| row.get_one::<i32>());
    }
    READY.with(|ready| ready.set(true));
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
