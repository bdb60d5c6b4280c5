//! The Rust entry points behind the SQL API. They live in the private schema `auth_wechat`
//! (EXECUTE for the owner only); the public `auth.wechat_*` wrappers in `sql/api.sql` call them
//! and raise the `{"error": ...}` they may answer as an ERROR with SQLSTATE `PTxyz`. Whatever
//! touches Supabase Auth's tables runs as their owner (see `privilege`).

use crate::error::AuthError;
use crate::jsonb::Jsonb;
use serde_json::json;

/// A result as the SQL wrappers expect it: the value itself, or `{"error": report}` for them to
/// raise. An error whose writes must be kept is not raised (that would roll them back): PostgREST
/// is asked for its status through `response.status` and gets GoTrue's error body.
fn respond(result: Result<impl Into<Jsonb>, AuthError>) -> Jsonb {
    match result {
        Ok(value) => value.into(),
        Err(error) if error.commits_writes() => {
            crate::request::set_response_status(error.http_status());
            json!({"code": error.code(), "message": error.message()}).into()
        }
        Err(error) => json!({"error": error.to_report()}).into(),
    }
}

#[pgrx::pg_schema]
mod auth_wechat {
    use crate::jsonb::Jsonb;
    use crate::privilege::as_auth_owner;
    use crate::wechat::qrcode;
    use crate::{bind, refresh, sign_in, token_cache};
    use base64::Engine;
    use pgrx::prelude::*;
    use pgrx::JsonB;

    /// Behind `auth.wechat_sign_in(code)`.
    #[pg_extern(volatile, parallel_unsafe)]
    fn sign_in(code: Option<&str>) -> Jsonb {
        super::respond(as_auth_owner(|| sign_in::sign_in(code)))
    }

    /// Behind `auth.wechat_bind_account(code)`.
    #[pg_extern(volatile, parallel_unsafe)]
    fn bind_account(code: Option<&str>) -> Jsonb {
        super::respond(as_auth_owner(|| bind::bind_account(code)))
    }

    /// Behind `auth.wechat_bind_phone(code)`.
    #[pg_extern(volatile, parallel_unsafe)]
    fn bind_phone(code: Option<&str>) -> Jsonb {
        super::respond(as_auth_owner(|| bind::bind_phone(code)))
    }

    /// Behind `auth.wechat_refresh_session(refresh_token)`.
    #[pg_extern(volatile, parallel_unsafe)]
    fn refresh_session(refresh_token: Option<&str>) -> Jsonb {
        super::respond(as_auth_owner(|| refresh::refresh_session(refresh_token)))
    }

    /// Behind `auth.wechat_sign_out(scope)`.
    #[pg_extern(volatile, parallel_unsafe)]
    fn sign_out(scope: Option<&str>) -> Jsonb {
        super::respond(as_auth_owner(|| refresh::sign_out(scope)))
    }

    /// Behind `auth.wechat_user()`.
    #[pg_extern(volatile, parallel_unsafe)]
    fn user() -> Jsonb {
        super::respond(as_auth_owner(refresh::user))
    }

    /// Behind `auth.wechat_unlimited_qrcode(...)` and its `bytea` twin: `{"imgBase64": ...}`.
    #[allow(clippy::too_many_arguments)]
    #[pg_extern(volatile, parallel_unsafe)]
    fn unlimited_qrcode(
        scene: Option<&str>,
        page: Option<&str>,
        check_path: Option<bool>,
        env_version: Option<&str>,
        width: Option<i32>,
        auto_color: Option<bool>,
        line_color: Option<JsonB>,
        is_hyaline: Option<bool>,
    ) -> Jsonb {
        let params = qrcode::Params {
            scene,
            page,
            check_path: check_path.unwrap_or(true),
            env_version: env_version.unwrap_or("release"),
            width: width.unwrap_or(430),
            auto_color: auto_color.unwrap_or(false),
            line_color: line_color.map(|JsonB(v)| v),
            is_hyaline: is_hyaline.unwrap_or(false),
        };
        super::respond(
            qrcode::request_body(&params)
                .and_then(|body| qrcode::unlimited(&body))
                .map(|image| serde_json::json!({"imgBase64": base64::engine::general_purpose::STANDARD.encode(image)})),
        )
    }

    /// Behind `auth.wechat_jwks()`: public keys only, so no owner switch is needed.
    #[pg_extern(stable, parallel_safe)]
    fn jwks() -> Jsonb {
        super::respond(crate::signing::jwks())
    }

    /// Behind `auth.wechat_access_token_status()`.
    #[pg_extern(volatile, parallel_unsafe)]
    fn access_token_status() -> Jsonb {
        super::respond(token_cache::status())
    }

    /// Behind `auth.wechat_refresh_access_token(force)`.
    #[pg_extern(volatile, parallel_unsafe)]
    fn refresh_access_token(force: Option<bool>) -> Jsonb {
        super::respond(token_cache::refresh(force.unwrap_or(false)))
    }
}
