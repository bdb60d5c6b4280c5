//! The error contract: every failure the SQL API reports on purpose, with its HTTP status
//! (through PostgREST), SQLSTATE and stable machine-readable code, and how it is raised.
//!
//! Two channels. An expected failure (bad input, a refused code, a conflict, a limit) is an
//! `AuthError`: one row of `parts()`, one row of the README's error table (a test keeps them
//! equal), raised by `api.rs` as `PT<status>`, which PostgREST turns into HTTP status `<status>`
//! (or `PGRST` when it carries a `Retry-After`, see `raised`; or Postgres' own code where one
//! fits, `42501` and `25006`). A broken invariant (a bug, a damaged schema) is not: it is a
//! `pgrx::error!` (`XX000`), or Postgres' own error with its own code (`undefined_table` for a
//! missing GoTrue table), and `api.rs` raises it as it is, with nothing of Rust's in it.
//!
//! The message is for people; DETAIL is a JSON object for programs:
//! `{"error_code": "<stable word>", "wechat_errcode": N, "wechat_rid": "..."}` (the WeChat
//! fields only when WeChat answered). No variant can carry the app secret, the JWT secret, a
//! `session_key` or the login code: they hold only static text and WeChat's numeric answer.

use serde_json::json;

/// What WeChat said when it refused: its errcode and, for support tickets, its request id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WechatAnswer {
    pub errcode: i64,
    pub rid: Option<String>,
}

/// Which of the mini program's single-use codes WeChat refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeKind {
    /// From `wx.login()`.
    Login,
    /// From the `getPhoneNumber` button.
    Phone,
    /// From web authorisation (an official account's H5 page, a website's QR code, an app).
    Authorization,
}

/// Whose credentials WeChat rejected, so that the message names the setting to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    /// The default mini program's: `auth_wechat.appid` and `auth_wechat.secret`.
    Default,
    /// An app of `auth_wechat.apps`.
    Listed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// The caller's input is unusable; checked before any network call.
    InvalidInput(&'static str),
    /// WeChat refused the code: unknown, expired, already used, or from another app.
    InvalidCode(CodeKind, WechatAnswer),
    /// No signed-in user (no `sub` in `request.jwt.claims`).
    NotSignedIn,
    /// The signed-in user no longer exists, or was soft-deleted (`deleted_at`).
    UserNotFound,
    /// The WeChat user's account was soft-deleted (`deleted_at`): no sign-in, and its openid
    /// stays taken.
    UserDeleted,
    SignupDisabled,
    UserBanned,
    /// A refresh for a banned user: GoTrue's token endpoint answers 400 where its user routes
    /// answer 403.
    RefreshUserBanned,
    /// The openid is bound to another user.
    IdentityAlreadyExists,
    /// A new openid's unionid belongs to more than one user: which one it is cannot be told.
    UnionidConflict,
    /// The identity to unlink is not one of the caller's WeChat identities.
    IdentityNotFound,
    /// Unlinking would leave the user without an identity.
    SingleIdentityNotDeletable,
    /// The caller is bound to a different openid.
    WechatAlreadyBound,
    /// The phone number belongs to another user.
    PhoneExists,
    /// WeChat flagged the user as high-risk (40226).
    WechatBlocked(WechatAnswer),
    WechatRateLimited(WechatAnswer),
    /// Refused by one of this extension's own rate limits (a session's refresh budget, a client's
    /// share of the WeChat calls); retry after that many seconds.
    RateLimited {
        retry_after: u32,
    },
    /// WeChat's "system busy" (-1): retry later.
    WechatBusy(WechatAnswer),
    /// Refused without calling WeChat: `auth_wechat.max_concurrent_requests` calls are in flight.
    TooManyInFlight,
    /// Refused without calling WeChat: the circuit breaker is open for that many more seconds.
    BreakerOpen {
        retry_after: u32,
    },
    /// WeChat rejected this server's credentials (wrong appid or secret, IP not allowed).
    WechatRejectedConfig(WechatAnswer, Credentials),
    /// WeChat refused the access token (40001/40014/42001) even after one refetch.
    WechatTokenRejected(WechatAnswer),
    /// WeChat refused the request's parameters (QR codes: scene, page, ...).
    WechatRejectedArgument(WechatAnswer),
    /// A WeChat errcode this extension does not expect from the endpoint.
    WechatError(WechatAnswer),
    /// An answer that is not WeChat's API: HTTP error, redirect, non-JSON, oversized.
    WechatBadResponse(&'static str),
    WechatUnreachable,
    WechatTimeout,
    /// A required setting is unset; names the setting.
    MissingSetting(&'static str),
    /// A setting's value is unusable: names the setting and why, never the value.
    InvalidSetting(&'static str, String),
    /// The database is set up in a way the extension refuses to work in (the auth tables owned by
    /// a superuser, schema `auth` not the extension's, a token's role with powers it must not
    /// have): says what and why.
    Misconfigured(String),
    /// The library was not preloaded: what lives in shared memory (the access-token cache, the
    /// limits on WeChat calls, the refresh budgets, the memory of stolen sessions) is missing.
    NotPreloaded,
    /// The refresh token is unknown (or not in GoTrue's format).
    RefreshTokenNotFound,
    /// A rotated refresh token came back after the reuse interval: treated as stolen, its session
    /// was ended. The only error whose writes must be kept (see `commits_writes`).
    RefreshTokenReused,
    /// The session is past its `not_after`, or one of GoTrue's session limits: the message
    /// says which, in GoTrue's words.
    SessionExpired(&'static str),
    /// The caller's token names a session that has ended (signed out, or ended as stolen).
    SessionNotFound,
    /// The caller's claims name no session at all (no `session_id`): not a token GoTrue (or this
    /// extension) issued for a sign-in.
    SessionClaimMissing,
    /// `auth_wechat.bind_requires_sign_in_within`: the session's latest sign-in is too old for a
    /// bind or an unlink.
    ReauthenticationNeeded,
    /// A call that writes, in a transaction that cannot: `BEGIN READ ONLY`, PostgREST's GET, or a
    /// hot standby.
    ReadOnlyTransaction,
    /// A scan-to-sign-in ticket that does not exist, or a poll secret that is not its own: one
    /// answer, so a poll reveals nothing.
    ScanTicketNotFound,
    /// A ticket past `auth_wechat.scan_ttl`: no longer viewed nor confirmed.
    ScanTicketExpired,
    /// Another user scanned the ticket first.
    ScanTicketClaimed,
    /// The ticket was confirmed or denied already.
    ScanTicketDecided,
    /// A confirmation by someone other than the user who scanned the ticket.
    ScanTicketNotScanner,
    /// The access-token hook is misconfigured or broke GoTrue's rules for its output.
    AccessTokenHook(String),
    /// The access-token hook refused the token, with the status it chose.
    HookRefused {
        status: u16,
        message: String,
    },
}

impl AuthError {
    /// HTTP status, stable code, and message.
    fn parts(&self) -> (u16, &'static str, String) {
        use AuthError::*;
        match self {
            InvalidInput(what) => (400, "validation_failed", (*what).to_string()),
            InvalidCode(CodeKind::Login, a) => (
                400,
                "invalid_credentials",
                match a.errcode {
                    40163 => "WeChat login code was already used; call wx.login() again".into(),
                    _ => "WeChat login code is invalid or expired; call wx.login() again".into(),
                },
            ),
            InvalidCode(CodeKind::Authorization, a) => (
                400,
                "invalid_credentials",
                match a.errcode {
                    40163 => "WeChat authorization code was already used; authorize again".into(),
                    _ => "WeChat authorization code is invalid or expired; authorize again".into(),
                },
            ),
            InvalidCode(CodeKind::Phone, _) => (
                400,
                "invalid_credentials",
                "WeChat phone code is invalid, expired or used; ask the user to tap the phone button again".into(),
            ),
            NotSignedIn => (401, "no_authorization", "sign in first: this call needs a signed-in user".into()),
            UserNotFound => (403, "user_not_found", "the signed-in user does not exist (deleted?)".into()),
            UserDeleted => (403, "user_not_found", "the user of this WeChat account was deleted".into()),
            IdentityAlreadyExists => {
                (409, "identity_already_exists", "this WeChat account is already bound to another user".into())
            }
            UnionidConflict => (
                409,
                "wechat_unionid_conflict",
                "this WeChat user's unionid belongs to more than one user; an administrator can move the identities of one \
                 to the other (auth.wechat_move_identity)"
                    .into(),
            ),
            IdentityNotFound => {
                (404, "identity_not_found", "no WeChat identity of the signed-in user has this id".into())
            }
            SingleIdentityNotDeletable => {
                (422, "single_identity_not_deletable", "User must have at least 1 identity after unlinking".into())
            }
            WechatAlreadyBound => {
                (422, "wechat_already_bound", "this user is already bound to a different WeChat account".into())
            }
            PhoneExists => (409, "phone_exists", "this phone number already belongs to another user".into()),
            SignupDisabled => {
                (403, "signup_disabled", "sign-ups are disabled (auth_wechat.allow_sign_up is off)".into())
            }
            UserBanned => (403, "user_banned", "user is banned".into()),
            RefreshUserBanned => (400, "user_banned", "Invalid Refresh Token: User Banned".into()),
            WechatBlocked(_) => (403, "wechat_user_blocked", "WeChat blocked this login as high-risk (40226)".into()),
            WechatRateLimited(_) => (429, "over_request_rate_limit", "WeChat rate limit reached; retry later".into()),
            RateLimited { .. } => (429, "over_request_rate_limit", "Request rate limit reached".into()),
            WechatBusy(_) => (502, "wechat_unavailable", "WeChat is busy; retry later".into()),
            TooManyInFlight => (
                429,
                "over_request_rate_limit",
                "too many WeChat calls in flight (auth_wechat.max_concurrent_requests); retry later".into(),
            ),
            BreakerOpen { .. } => {
                (502, "wechat_unavailable", "WeChat keeps failing; calls are refused for a cool-down".into())
            }
            WechatRejectedConfig(a, credentials) => (
                500,
                "wechat_config_rejected",
                format!(
                    "WeChat rejected the app credentials (errcode {}); check {}",
                    a.errcode,
                    match credentials {
                        Credentials::Default => "auth_wechat.appid and auth_wechat.secret",
                        Credentials::Listed => "the app's appid and secret in auth_wechat.apps",
                    }
                ),
            ),
            WechatTokenRejected(a) => {
                (502, "wechat_token_rejected", format!("WeChat refused a fresh access token (errcode {})", a.errcode))
            }
            WechatRejectedArgument(a) => {
                (400, "wechat_invalid_argument", format!("WeChat refused the parameters (errcode {})", a.errcode))
            }
            WechatError(a) => (502, "wechat_error", format!("WeChat answered with unexpected errcode {}", a.errcode)),
            WechatBadResponse(why) => (502, "wechat_bad_response", format!("unusable answer from WeChat: {why}")),
            WechatUnreachable => (502, "wechat_unreachable", "cannot reach WeChat's API (auth_wechat.api_base)".into()),
            WechatTimeout => (504, "request_timeout", "WeChat did not answer within auth_wechat.timeout_ms".into()),
            MissingSetting(name) => (500, "configuration_missing", format!("setting {name} is not set")),
            InvalidSetting(name, why) => (500, "configuration_invalid", format!("setting {name} is invalid: {why}")),
            Misconfigured(why) => (500, "configuration_invalid", format!("auth_wechat: {why}")),
            RefreshTokenNotFound => (400, "refresh_token_not_found", "refresh token not found".into()),
            RefreshTokenReused => (
                400,
                "refresh_token_already_used",
                "refresh token already used: its session has been ended as a precaution; sign in again".into(),
            ),
            SessionExpired(why) => (400, "session_expired", format!("Invalid Refresh Token: {why}; sign in again")),
            SessionNotFound => (403, "session_not_found", "the session of this token has ended; sign in again".into()),
            SessionClaimMissing => (
                403,
                "session_not_found",
                "the token's claims carry no session_id: use the access token of a sign-in".into(),
            ),
            ReadOnlyTransaction => (
                405,
                "read_only_transaction",
                "this call writes to the auth tables: it needs a read-write transaction on the primary \
                 (through PostgREST: POST)"
                    .into(),
            ),
            ReauthenticationNeeded => (
                400,
                "reauthentication_needed",
                "binding or unlinking needs a recent sign-in (auth_wechat.bind_requires_sign_in_within): sign in \
                 again, then retry"
                    .into(),
            ),
            ScanTicketNotFound => (404, "scan_ticket_not_found", "no such scan ticket (or not this poll secret's)".into()),
            ScanTicketExpired => {
                (410, "scan_ticket_expired", "this code has expired: ask the website for a new one".into())
            }
            ScanTicketClaimed => (409, "scan_ticket_claimed", "another user scanned this code first".into()),
            ScanTicketDecided => (409, "scan_ticket_decided", "this sign-in was already confirmed or denied".into()),
            ScanTicketNotScanner => {
                (403, "scan_ticket_not_scanner", "only the user who scanned this code may confirm it".into())
            }
            AccessTokenHook(why) => (500, "unexpected_failure", why.clone()),
            HookRefused { status, message } => (*status, "hook_refused", message.clone()),
            NotPreloaded => (
                500,
                "configuration_missing",
                "auth_wechat needs shared_preload_libraries = 'auth_wechat' (then a restart): its limits, its memory \
                 of stolen sessions and the WeChat access token live in shared memory"
                    .into(),
            ),
        }
    }

    fn wechat_answer(&self) -> Option<&WechatAnswer> {
        use AuthError::*;
        match self {
            InvalidCode(_, a)
            | WechatBlocked(a)
            | WechatRateLimited(a)
            | WechatBusy(a)
            | WechatRejectedConfig(a, _)
            | WechatTokenRejected(a)
            | WechatRejectedArgument(a)
            | WechatError(a) => Some(a),
            _ => None,
        }
    }

    /// The error as the call for an app answers it: credentials WeChat rejected are the default
    /// app's settings or the app's entry in `auth_wechat.apps`, as `default` says.
    pub fn for_app(self, default: bool) -> AuthError {
        match self {
            AuthError::WechatRejectedConfig(answer, _) if !default => {
                AuthError::WechatRejectedConfig(answer, Credentials::Listed)
            }
            other => other,
        }
    }

    /// Whether the transaction must commit despite the error: theft detection ends the session,
    /// and raising would roll that back.
    pub fn commits_writes(&self) -> bool {
        matches!(self, AuthError::RefreshTokenReused)
    }

    pub fn http_status(&self) -> u16 {
        self.parts().0
    }

    pub fn code(&self) -> &'static str {
        self.parts().1
    }

    pub fn message(&self) -> String {
        self.parts().2
    }

    /// For a refusal the caller should retry later: after how many seconds (`Retry-After`).
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            AuthError::RateLimited { retry_after } | AuthError::BreakerOpen { retry_after } => Some(*retry_after),
            AuthError::TooManyInFlight => Some(1),
            _ => None,
        }
    }

    /// The ERROR this error is raised as. Usually `PTxyz` with the message and the JSON DETAIL.
    /// A refusal with a `Retry-After` is raised as PostgREST's `PGRST`, whose message and DETAIL
    /// are JSON that PostgREST turns into the status, the headers and the body: the same body a
    /// `PTxyz` error gets (`code`, `message`, `details` with the `error_code`), plus the header.
    /// DETAIL keeps the `error_code` for other callers, which see the JSON as it is.
    pub fn raised(&self) -> Raised {
        match self.retry_after() {
            None => {
                Raised { sqlstate: pack_sqlstate(&self.sqlstate()), message: self.message(), detail: self.detail() }
            }
            Some(seconds) => Raised {
                sqlstate: pack_sqlstate("PGRST"),
                message:
                    json!({"code": self.sqlstate(), "message": self.message(), "details": self.detail(), "hint": null})
                        .to_string(),
                detail: json!({
                    "status": self.http_status(),
                    "headers": {"Retry-After": seconds.to_string()},
                    "error_code": self.code(),
                })
                .to_string(),
            },
        }
    }

    /// PostgREST's custom-status SQLSTATE; for a missing sign-in, the privilege error PostgREST
    /// itself answers an anonymous caller with (401).
    pub fn sqlstate(&self) -> String {
        match self {
            AuthError::NotSignedIn => "42501".into(),
            // Postgres' own read_only_sql_transaction, which PostgREST answers with 405.
            AuthError::ReadOnlyTransaction => "25006".into(),
            _ => format!("PT{}", self.http_status()),
        }
    }

    /// The ERROR's DETAIL: JSON text for programs, `{"error_code", "wechat_errcode", "wechat_rid"}`
    /// (the WeChat fields only when WeChat answered).
    pub fn detail(&self) -> String {
        let mut detail = json!({"error_code": self.code()});
        if let Some(answer) = self.wechat_answer() {
            detail["wechat_errcode"] = json!(answer.errcode);
            if let Some(rid) = &answer.rid {
                detail["wechat_rid"] = json!(rid);
            }
        }
        detail.to_string()
    }
}

/// An `AuthError` as an ERROR's fields.
pub struct Raised {
    /// Packed as Postgres' `MAKE_SQLSTATE` does.
    pub sqlstate: i32,
    pub message: String,
    pub detail: String,
}

/// Postgres' `MAKE_SQLSTATE`: six bits per character, the first in the lowest.
fn pack_sqlstate(sqlstate: &str) -> i32 {
    sqlstate.bytes().take(5).enumerate().map(|(i, c)| (i32::from(c.wrapping_sub(b'0')) & 0x3F) << (6 * i)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn answer(errcode: i64) -> WechatAnswer {
        WechatAnswer { errcode, rid: Some("0a-1b-2c".into()) }
    }

    /// Every variant, with its status and code: a new variant that is not here fails to compile
    /// (the match in `every_variant_is_listed`), and each must be a row of the README's table.
    fn every_variant() -> Vec<(AuthError, u16, &'static str)> {
        use AuthError::*;
        vec![
            (InvalidInput("x"), 400, "validation_failed"),
            (InvalidCode(CodeKind::Login, answer(40029)), 400, "invalid_credentials"),
            (InvalidCode(CodeKind::Phone, answer(40029)), 400, "invalid_credentials"),
            (InvalidCode(CodeKind::Authorization, answer(40029)), 400, "invalid_credentials"),
            (NotSignedIn, 401, "no_authorization"),
            (UserNotFound, 403, "user_not_found"),
            (UserDeleted, 403, "user_not_found"),
            (SignupDisabled, 403, "signup_disabled"),
            (UserBanned, 403, "user_banned"),
            (RefreshUserBanned, 400, "user_banned"),
            (IdentityAlreadyExists, 409, "identity_already_exists"),
            (UnionidConflict, 409, "wechat_unionid_conflict"),
            (IdentityNotFound, 404, "identity_not_found"),
            (SingleIdentityNotDeletable, 422, "single_identity_not_deletable"),
            (WechatAlreadyBound, 422, "wechat_already_bound"),
            (PhoneExists, 409, "phone_exists"),
            (WechatBlocked(answer(40226)), 403, "wechat_user_blocked"),
            (WechatRateLimited(answer(45011)), 429, "over_request_rate_limit"),
            (RateLimited { retry_after: 2 }, 429, "over_request_rate_limit"),
            (WechatBusy(answer(-1)), 502, "wechat_unavailable"),
            (TooManyInFlight, 429, "over_request_rate_limit"),
            (BreakerOpen { retry_after: 3 }, 502, "wechat_unavailable"),
            (WechatRejectedConfig(answer(40125), Credentials::Default), 500, "wechat_config_rejected"),
            (WechatRejectedConfig(answer(40125), Credentials::Listed), 500, "wechat_config_rejected"),
            (WechatTokenRejected(answer(40001)), 502, "wechat_token_rejected"),
            (WechatRejectedArgument(answer(41030)), 400, "wechat_invalid_argument"),
            (WechatError(answer(99999)), 502, "wechat_error"),
            (WechatBadResponse("x"), 502, "wechat_bad_response"),
            (WechatUnreachable, 502, "wechat_unreachable"),
            (WechatTimeout, 504, "request_timeout"),
            (MissingSetting("auth_wechat.appid"), 500, "configuration_missing"),
            (InvalidSetting("auth_wechat.jwt_keys", "x".into()), 500, "configuration_invalid"),
            (Misconfigured("x".into()), 500, "configuration_invalid"),
            (NotPreloaded, 500, "configuration_missing"),
            (RefreshTokenNotFound, 400, "refresh_token_not_found"),
            (RefreshTokenReused, 400, "refresh_token_already_used"),
            (SessionExpired("Session Expired"), 400, "session_expired"),
            (SessionNotFound, 403, "session_not_found"),
            (SessionClaimMissing, 403, "session_not_found"),
            (ReauthenticationNeeded, 400, "reauthentication_needed"),
            (ReadOnlyTransaction, 405, "read_only_transaction"),
            (ScanTicketNotFound, 404, "scan_ticket_not_found"),
            (ScanTicketExpired, 410, "scan_ticket_expired"),
            (ScanTicketClaimed, 409, "scan_ticket_claimed"),
            (ScanTicketDecided, 409, "scan_ticket_decided"),
            (ScanTicketNotScanner, 403, "scan_ticket_not_scanner"),
            (AccessTokenHook("x".into()), 500, "unexpected_failure"),
            (HookRefused { status: 418, message: "x".into() }, 418, "hook_refused"),
        ]
    }

    #[test]
    fn every_variant_is_listed() {
        for (error, _, _) in every_variant() {
            // Exhaustive on purpose: a variant added to the enum must be added to the list.
            match error {
                AuthError::InvalidInput(_)
                | AuthError::InvalidCode(..)
                | AuthError::NotSignedIn
                | AuthError::UserNotFound
                | AuthError::UserDeleted
                | AuthError::SignupDisabled
                | AuthError::UserBanned
                | AuthError::RefreshUserBanned
                | AuthError::IdentityAlreadyExists
                | AuthError::UnionidConflict
                | AuthError::IdentityNotFound
                | AuthError::SingleIdentityNotDeletable
                | AuthError::WechatAlreadyBound
                | AuthError::PhoneExists
                | AuthError::WechatBlocked(_)
                | AuthError::WechatRateLimited(_)
                | AuthError::RateLimited { .. }
                | AuthError::WechatBusy(_)
                | AuthError::TooManyInFlight
                | AuthError::BreakerOpen { .. }
                | AuthError::WechatRejectedConfig(..)
                | AuthError::WechatTokenRejected(_)
                | AuthError::WechatRejectedArgument(_)
                | AuthError::WechatError(_)
                | AuthError::WechatBadResponse(_)
                | AuthError::WechatUnreachable
                | AuthError::WechatTimeout
                | AuthError::MissingSetting(_)
                | AuthError::InvalidSetting(..)
                | AuthError::Misconfigured(_)
                | AuthError::NotPreloaded
                | AuthError::RefreshTokenNotFound
                | AuthError::RefreshTokenReused
                | AuthError::SessionExpired(_)
                | AuthError::SessionNotFound
                | AuthError::SessionClaimMissing
                | AuthError::ReauthenticationNeeded
                | AuthError::ReadOnlyTransaction
                | AuthError::ScanTicketNotFound
                | AuthError::ScanTicketExpired
                | AuthError::ScanTicketClaimed
                | AuthError::ScanTicketDecided
                | AuthError::ScanTicketNotScanner
                | AuthError::AccessTokenHook(_)
                | AuthError::HookRefused { .. } => {}
            }
        }
        assert_eq!(every_variant().len(), 48, "one row per variant (and three for InvalidCode's kinds)");
    }

    #[test]
    fn statuses_follow_the_error_table() {
        for (error, status, code) in every_variant() {
            assert_eq!((error.http_status(), error.code()), (status, code), "{error:?}");
            let expected = match &error {
                AuthError::NotSignedIn => "42501".to_string(),
                AuthError::ReadOnlyTransaction => "25006".to_string(),
                _ => format!("PT{status}"),
            };
            assert_eq!(error.sqlstate(), expected, "{error:?}");
            let detail: Value = serde_json::from_str(&error.detail()).unwrap();
            assert_eq!(detail["error_code"], code, "{error:?}");
        }
    }

    /// Each (status, SQLSTATE, code) an error can answer is a row of the README's error table,
    /// and each row of the table is answered by some variant (hooks choose their own status).
    #[test]
    fn the_readme_error_table_tells_the_truth() {
        let readme = include_str!("../README.md");
        let table: std::collections::BTreeSet<(String, String, String)> = readme
            .lines()
            .skip_while(|line| !line.starts_with("| HTTP | SQLSTATE | `error_code` |"))
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                (cells[1].to_string(), cells[2].trim_matches('`').to_string(), cells[3].trim_matches('`').to_string())
            })
            .collect();
        assert!(table.len() > 20, "the README's error table was not found");
        let mut answered = std::collections::BTreeSet::new();
        for (error, status, code) in every_variant() {
            let sqlstate = if error.retry_after().is_some() { "PGRST".to_string() } else { error.sqlstate() };
            let row = match &error {
                AuthError::HookRefused { .. } => ("4xx/5xx".to_string(), "PTxyz".to_string(), code.to_string()),
                AuthError::RefreshTokenReused => (status.to_string(), "(not raised)".to_string(), code.to_string()),
                _ => (status.to_string(), sqlstate, code.to_string()),
            };
            assert!(table.contains(&row), "{error:?}: no README row {row:?}");
            answered.insert(row);
        }
        let unanswered: Vec<_> = table.difference(&answered).collect();
        assert!(unanswered.is_empty(), "README rows no error answers: {unanswered:?}");
    }

    #[test]
    fn report_detail_carries_code_errcode_and_rid() {
        let error = AuthError::WechatRateLimited(answer(45011));
        assert_eq!(error.sqlstate(), "PT429");
        let detail: Value = serde_json::from_str(&error.detail()).unwrap();
        assert_eq!(
            detail,
            json!({"error_code": "over_request_rate_limit", "wechat_errcode": 45011, "wechat_rid": "0a-1b-2c"})
        );
    }

    #[test]
    fn sqlstates_are_packed_as_postgres_packs_them() {
        use pgrx::PgSqlErrorCode;
        assert_eq!(pack_sqlstate("42501"), PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE as i32);
        assert_eq!(pack_sqlstate("XX000"), PgSqlErrorCode::ERRCODE_INTERNAL_ERROR as i32);
        assert_eq!(pack_sqlstate("PT400"), 32 | 36 << 6 | 4 << 12);
    }

    #[test]
    fn a_refusal_with_retry_after_is_raised_for_postgrest_to_set_the_header() {
        let raised = AuthError::RateLimited { retry_after: 7 }.raised();
        assert_eq!(raised.sqlstate, pack_sqlstate("PGRST"));
        let message: Value = serde_json::from_str(&raised.message).unwrap();
        assert_eq!(message["code"], "PT429");
        assert_eq!(message["details"], json!({"error_code": "over_request_rate_limit"}).to_string());
        let detail: Value = serde_json::from_str(&raised.detail).unwrap();
        assert_eq!(
            detail,
            json!({"status": 429, "headers": {"Retry-After": "7"}, "error_code": "over_request_rate_limit"})
        );
        let plain = AuthError::SessionNotFound.raised();
        assert_eq!((plain.sqlstate, plain.detail), (pack_sqlstate("PT403"), AuthError::SessionNotFound.detail()));
    }

    #[test]
    fn rejected_credentials_name_the_apps_setting() {
        let rejected = AuthError::WechatRejectedConfig(answer(40125), Credentials::Default);
        assert!(rejected.clone().for_app(true).message().contains("auth_wechat.appid and auth_wechat.secret"));
        let listed = rejected.for_app(false);
        assert!(listed.message().contains("in auth_wechat.apps") && !listed.message().contains("auth_wechat.appid"));
        assert_eq!(AuthError::UserBanned.for_app(false), AuthError::UserBanned);
    }

    #[test]
    fn missing_setting_names_it() {
        assert!(AuthError::MissingSetting("auth_wechat.secret").message().contains("auth_wechat.secret"));
    }
}
