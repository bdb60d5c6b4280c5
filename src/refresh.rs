//! Session refresh, sign-out and the current user in SQL, with GoTrue's semantics, so a mini
//! program can live on PostgREST alone: refresh every hour, sign out, read its user, and have a
//! stolen refresh token end its session.

use crate::audit::{self, Action};
use crate::error::AuthError;
use crate::session::{self, Method, Scope};
use crate::{gucs, request, store};
use serde_json::{json, Value};

/// Trades a refresh token for a new session JSON (GoTrue's `grant_type=refresh_token`).
///
/// - an active token is rotated: revoked, and a child issued in the same session;
/// - a revoked token that is the parent of the session's current token, or was revoked less than
///   `auth_wechat.refresh_token_reuse_interval` ago, is a client retry: the current token is
///   returned, nothing rotates;
/// - any other revoked token is treated as stolen: the whole session ends (kept even though the
///   call fails, see `AuthError::commits_writes`).
pub fn refresh_session(token: Option<&str>) -> Result<Value, AuthError> {
    let token =
        token.filter(|t| session::is_refresh_token(t)).ok_or(AuthError::InvalidInput("Refresh token is not valid"))?;
    crate::signing::ready()?;
    let presented = session::find_refresh_token(token, gucs::refresh_token_reuse_interval(), &gucs::session_limits())
        .ok_or(AuthError::RefreshTokenNotFound)?;
    // GoTrue's order: the user, then the session's validity, then the token's own state.
    if presented.user_banned {
        return Err(AuthError::RefreshUserBanned);
    }
    if let Some(why) = presented.expired {
        return Err(AuthError::SessionExpired(why.message()));
    }
    let refresh_token = if !presented.revoked {
        let child = session::rotate(&presented, token);
        audit::record(Action::TokenRefreshed, presented.user_id, None);
        audit::record(Action::TokenRevoked, presented.user_id, None);
        child
    } else {
        let retry = presented.recent || presented.active_parent.as_deref() == Some(token);
        match presented.active.clone() {
            Some(active) if retry => active,
            _ => {
                // As GoTrue, a failed refresh (theft included) writes no audit row.
                session::end_sessions(presented.user_id, Some(presented.session_id), Scope::Local);
                return Err(AuthError::RefreshTokenReused);
            }
        }
    };
    let user = store::user_json(presented.user_id).ok_or(AuthError::RefreshTokenNotFound)?;
    session::session_json(user, presented.session_id, refresh_token, Method::TokenRefresh)
}

/// GoTrue's `GET /user`: the signed-in caller's user, while their session is live.
pub fn user() -> Result<Value, AuthError> {
    let caller = request::caller()?;
    let user = store::user_json(caller.user_id).ok_or(AuthError::UserNotFound)?;
    session::current(&caller)?;
    Ok(user)
}

/// Ends the caller's sessions: `local` (this one), `global` (all), `others` (all but this one).
pub fn sign_out(scope: Option<&str>) -> Result<Value, AuthError> {
    let scope = match scope.unwrap_or("local") {
        "local" => Scope::Local,
        "global" => Scope::Global,
        "others" => Scope::Others,
        _ => return Err(AuthError::InvalidInput("scope must be local, global or others")),
    };
    let caller = request::caller()?;
    session::current(&caller)?;
    let ended = session::end_sessions(caller.user_id, caller.session_id, scope);
    audit::record(Action::Logout, caller.user_id, None);
    Ok(json!({ "sessions_ended": ended }))
}
