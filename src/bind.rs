//! Linking a signed-in user's account: WeChat (`auth.wechat_bind_account`) and a phone number
//! confirmed by WeChat's phone button (`auth.wechat_bind_phone`).
//!
//! Both trade the code with WeChat first, with no lock held; then they lock the value being bound
//! (so concurrent binders of one openid or number queue and see each other's commits), lock the
//! caller's row, check for conflicts, write, and return a session with a fresh access token.

use crate::audit::{self, Action};
use crate::error::{AuthError, CodeKind};
use crate::gucs::{self, PhoneFormat};
use crate::jsonb::Jsonb;
use crate::request::{self, Caller};
use crate::wechat::{login, phone};
use crate::{session, store};

/// Checks that come before spending a single-use code: who calls, and can a token be signed.
fn preflight() -> Result<Caller, AuthError> {
    let caller = request::caller()?;
    match store::user_banned(caller.user_id) {
        None => return Err(AuthError::UserNotFound),
        Some(true) => return Err(AuthError::UserBanned),
        Some(false) => {}
    }
    session::current(&caller)?;
    crate::signing::ready()?;
    Ok(caller)
}

/// Binds the caller to the WeChat user of a `wx.login()` code; idempotent for the same openid.
pub fn bind_account(code: Option<&str>) -> Result<Jsonb, AuthError> {
    let code = login::validate_code(code, CodeKind::Login)?;
    let caller = preflight()?;
    let wechat = login::code_to_session(code)?;
    store::lock_value("openid", &wechat.openid);
    let bound = store::lock_user(caller.user_id).ok_or(AuthError::UserNotFound)?;
    // The audit name of a user who binds now; `None` when this openid was theirs already.
    let newly_bound = if bound != wechat.openid {
        if !bound.is_empty() {
            return Err(AuthError::WechatAlreadyBound);
        }
        if store::find_by_openid(&wechat.openid).is_some_and(|owner| owner.id != caller.user_id) {
            return Err(AuthError::IdentityAlreadyExists);
        }
        Some(store::bind_wechat(caller.user_id, &wechat.openid, wechat.unionid.as_deref()))
    } else {
        None
    };
    let identity = store::upsert_identity(caller.user_id, &wechat.openid, wechat.unionid.as_deref());
    if let Some(name) = newly_bound {
        audit::record(
            &[Action::IdentityLinked],
            caller.user_id,
            &name,
            audit::identity_linked(identity, &wechat.openid),
        );
    }
    respond(&caller)
}

/// Sets the caller's phone to the number WeChat confirmed for a phone-button code.
pub fn bind_phone(code: Option<&str>) -> Result<Jsonb, AuthError> {
    let code = login::validate_code(code, CodeKind::Phone)?;
    let caller = preflight()?;
    let confirmed = phone::phone_number(code)?;
    let number = match gucs::phone_format() {
        PhoneFormat::E164 => format!("{}{}", confirmed.country_code, confirmed.national),
        PhoneFormat::National => confirmed.national,
    };
    store::lock_value("phone", &number);
    store::lock_user(caller.user_id).ok_or(AuthError::UserNotFound)?;
    if store::phone_owner(&number).is_some_and(|owner| owner != caller.user_id) {
        return Err(AuthError::PhoneExists);
    }
    let name = store::set_phone(caller.user_id, &number);
    audit::record(&[Action::UserModified], caller.user_id, &name, Some(serde_json::json!({"provider": "phone"})));
    respond(&caller)
}

fn respond(caller: &Caller) -> Result<Jsonb, AuthError> {
    let (session_id, refresh_token) = session::current(caller)?;
    session::session_json(
        caller.user_id,
        session_id,
        &refresh_token,
        session::Method::Oauth,
        session::Assurance::Stored,
    )?
    .ok_or(AuthError::UserNotFound)
}
