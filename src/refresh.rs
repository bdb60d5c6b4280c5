//! Session refresh, sign-out and the current user in SQL, with GoTrue's semantics, so a mini
//! program can live on PostgREST alone: refresh every hour, sign out, read its user, and have a
//! stolen refresh token end its session.

use crate::audit::{self, Action};
use crate::error::AuthError;
use crate::hook::Method;
use crate::jsonb::Jsonb;
use crate::mint::{self, Assurance};
use crate::session::{self, Found, Presented, Scope};
use crate::{budget, gucs, request, revoked, token_v2};
use pgrx::Uuid;
use serde_json::{json, Value};

/// Trades a refresh token for a new session JSON (GoTrue's `grant_type=refresh_token`), v1 or
/// v2 as its length says, as GoTrue routes them; a token of neither shape is 400
/// `validation_failed` before any lookup.
pub fn refresh_session(token: Option<&str>) -> Result<Jsonb, AuthError> {
    let token = token.unwrap_or_default();
    let v2 = if token.len() > session::REFRESH_TOKEN_LEN { token_v2::parse(token) } else { None };
    if v2.is_none() && !session::is_refresh_token(token) {
        return Err(AuthError::InvalidInput("Refresh token is not valid"));
    }
    crate::signing::ready()?;
    match v2 {
        Some(parsed) => refresh_v2(&parsed),
        None => refresh_v1(token),
    }
}

/// Ends a session whose refresh token was stolen: in this transaction, and in shared memory,
/// which the caller cannot roll back (`revoked`). The answer commits the end (see
/// `AuthError::commits_writes`); as GoTrue, a failed refresh, theft included, writes no audit row.
fn end_as_stolen<T>(found: &Found) -> Result<T, AuthError> {
    session::end_sessions(found.user_id, Some(found.session_id), Scope::Local);
    revoked::remember(found.session_id, session::existing)?;
    Err(AuthError::RefreshTokenReused)
}

/// What every refresh checks once it has found the session, before judging the token: a session
/// ended as stolen ends again, whatever token is shown; the session's refresh budget; then, in
/// GoTrue's order, the user and the session's validity.
fn admit(found: &Found) -> Result<(), AuthError> {
    if revoked::stolen(found.session_id)? {
        return end_as_stolen(found);
    }
    budget::spend_refresh(found.session_id, request::rate_limit_client().as_deref())?;
    if found.user_banned {
        return Err(AuthError::RefreshUserBanned);
    }
    match found.expired {
        Some(why) => Err(AuthError::SessionExpired(why.message())),
        None => Ok(()),
    }
}

/// v1 (a row per token):
/// - an active token is rotated: revoked, and a child issued in the same session;
/// - a revoked token that is the parent of the session's current token, or was revoked less than
///   `auth_wechat.refresh_token_reuse_interval` ago, is a client retry: the current token is
///   returned, nothing rotates;
/// - any other revoked token is treated as stolen: the whole session ends (`end_as_stolen`).
fn refresh_v1(token: &str) -> Result<Jsonb, AuthError> {
    let found = session::find_v1(token, gucs::refresh_token_reuse_interval(), &gucs::session_limits())
        .ok_or(AuthError::RefreshTokenNotFound)?;
    admit(&found)?;
    let Presented::V1 { id, revoked } = found.presented else { unreachable!("find_v1 finds v1 tokens") };
    let refresh_token = if !revoked {
        let child = session::rotate(&found, id, token);
        audit::record(&[Action::TokenRefreshed, Action::TokenRevoked], found.user_id, &found.user_name, None);
        child
    } else {
        let active = session::active_token(found.session_id);
        let retry = found.recent || active.as_ref().is_some_and(|(_, parent)| parent.as_deref() == Some(token));
        match active {
            Some((active, _)) if retry => active,
            _ => return end_as_stolen(&found),
        }
    };
    respond(&found, refresh_token)
}

/// v2 (GoTrue's since 2025-10: a counter in the session, tokens signed with its key): only a
/// token the session's key signed is judged at all; the token of the session's counter moves it
/// on by one; the one before it (a client that did not save the answer), or any older one within
/// the reuse interval of the last refresh (concurrent refreshes), gets the current token again;
/// any other older one is stolen and ends the session; a newer one was not issued here.
fn refresh_v2(parsed: &token_v2::Parsed) -> Result<Jsonb, AuthError> {
    let found = session::find_v2(
        Uuid::from_bytes(parsed.session_id),
        gucs::refresh_token_reuse_interval(),
        &gucs::session_limits(),
    )
    .ok_or(AuthError::RefreshTokenNotFound)?;
    let Presented::V2 { key: Some(key), counter: Some(counter) } = &found.presented else {
        return Err(AuthError::RefreshTokenNotFound);
    };
    if !token_v2::verify(parsed, key) {
        return Err(AuthError::RefreshTokenNotFound);
    }
    admit(&found)?;
    let next = match counter.checked_sub(parsed.counter) {
        Some(0) => counter.saturating_add(1),
        Some(1) => *counter,
        Some(behind) if behind > 1 && found.recent => *counter,
        Some(behind) if behind > 1 => return end_as_stolen(&found),
        _ => return Err(AuthError::InvalidInput("Invalid Refresh Token: Not Issued By This Server")),
    };
    session::advance_v2(found.session_id, next);
    audit::record(&[Action::TokenRefreshed], found.user_id, &found.user_name, None);
    respond(&found, token_v2::encode(parsed.session_id, next, key))
}

fn respond(found: &Found, refresh_token: String) -> Result<Jsonb, AuthError> {
    mint::session_json(found.user_id, found.session_id, &refresh_token, Method::TokenRefresh, Assurance::Stored)?
        .ok_or(AuthError::RefreshTokenNotFound)
}

/// GoTrue's `GET /user`: the signed-in caller's user, while their session is one refresh would
/// still accept.
pub fn user() -> Result<Jsonb, AuthError> {
    let caller = request::caller()?;
    session::caller_session(&caller)?.valid()?;
    let user = crate::user::user(caller.user_id).ok_or(AuthError::UserNotFound)?;
    Ok(Jsonb::object(&user.members()))
}

/// Ends the caller's sessions: `local` (this one), `global` (all), `others` (all but this one).
pub fn sign_out(scope: &str) -> Result<Value, AuthError> {
    let scope = match scope {
        "local" => Scope::Local,
        "global" => Scope::Global,
        "others" => Scope::Others,
        _ => return Err(AuthError::InvalidInput("scope must be local, global or others")),
    };
    let caller = request::caller()?;
    // A session past its limits may still end itself (and others): it is refused only when it
    // is gone or its user is banned, as GoTrue's logout is.
    let session = session::caller_session(&caller)?;
    let ended = session::end_sessions(caller.user_id, Some(session.id), scope);
    audit::record(&[Action::Logout], caller.user_id, &crate::user::actor_name(caller.user_id), None);
    Ok(json!({ "sessions_ended": ended }))
}
