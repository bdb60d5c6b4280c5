//! The Rust entry points behind the SQL API. They live in the private schema `auth_wechat`
//! (EXECUTE for the owner only); the public `auth.wechat_*` wrappers in `sql/api.sql` call them
//! and raise the `{"error": ...}` they may answer as an ERROR with SQLSTATE `PTxyz`.

use crate::error::AuthError;
use serde_json::{json, Value};

/// A result as the SQL wrappers expect it: the value itself, or `{"error": report}`.
fn respond(result: Result<Value, AuthError>) -> pgrx::JsonB {
    pgrx::JsonB(match result {
        Ok(value) => value,
        Err(error) => json!({"error": error.to_report()}),
    })
}

#[pgrx::pg_schema]
mod auth_wechat {
    use pgrx::prelude::*;

    /// Behind `auth.wechat_sign_in(code)`.
    #[pg_extern(volatile, parallel_unsafe)]
    fn sign_in(code: Option<&str>) -> pgrx::JsonB {
        super::respond(crate::sign_in::sign_in(code))
    }
}
