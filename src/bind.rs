//! Linking a signed-in user's account: WeChat (`auth.wechat_bind_account`, `wechat_oauth_bind`)
//! and a phone number confirmed by WeChat's phone button (`auth.wechat_bind_phone`); and
//! unlinking one of their WeChat identities (`auth.wechat_unlink_identity`, GoTrue's
//! `DELETE /user/identities/{id}`). MemFire's word is "bind", GoTrue's "link"; which openid may
//! belong to whom is `identity`'s rule.
//!
//! Each checks the caller's session first, then trades the code with WeChat, with no lock held;
//! then it locks the caller's row (and `identity` the value being bound, so concurrent binders of
//! one openid or number queue and see each other's commits), checks for conflicts, writes, and
//! returns the user, as MemFire's API and GoTrue's `PUT /user` do. None mints a token: an access
//! token (which every API, proxy and log sees) must not buy a refresh token, nor a fresh access
//! token for a session past its limits.

use crate::apps;
use crate::audit::{self, Action};
use crate::error::{AuthError, CodeKind};
use crate::gucs::{self, PhoneFormat};
use crate::identity::{self, WechatIdentity};
use crate::jsonb::{Jsonb, Member};
use crate::request::Caller;
use crate::user;
use crate::wechat::{login, oauth, phone};
use crate::{session, store, token_cache};
use pgrx::Uuid;

/// What a change needs of the caller's session: how recent its latest sign-in must be.
#[derive(Clone, Copy)]
enum Change {
    /// A bind: within `auth_wechat.bind_requires_sign_in_within` (on by default; may be off).
    Bind,
    /// An unlink: within that setting, and within its default even when it is off. An unlink
    /// followed by a bind of the thief's own WeChat takes a user over for good, so a stolen
    /// access token must not buy it.
    Unlink,
}

/// Checks that come before spending a single-use code: who calls, with a session that refresh
/// would still accept, signed in recently enough for `change`.
fn preflight(change: Change) -> Result<Caller, AuthError> {
    session::recent_caller(match change {
        Change::Bind => gucs::bind_requires_sign_in_within(),
        Change::Unlink => Some(gucs::sign_in_within_always()),
    })
}

/// `auth.wechat_bind_account(code, appid)`: binds the caller to the WeChat user of a mini
/// program's `wx.login()` code (none: the default mini program); idempotent for the same openid.
pub fn bind_account(code: Option<&str>, appid: Option<&str>) -> Result<Jsonb, AuthError> {
    let code = login::validate_code(code, CodeKind::Login)?;
    let app = apps::mini_program(appid)?;
    let caller = preflight(Change::Bind)?;
    let wechat = login::code_to_session(&app, code)?;
    bind(&caller, &WechatIdentity::of(&app, &wechat.openid, wechat.unionid.as_deref(), None))
}

/// `auth.wechat_oauth_bind(code, appid)`: binds the caller to the WeChat user of a
/// web-authorisation code of an official account, a website or a mobile app.
pub fn oauth_bind(code: Option<&str>, appid: Option<&str>) -> Result<Jsonb, AuthError> {
    let code = login::validate_code(code, CodeKind::Authorization)?;
    let app = apps::web(appid)?;
    let caller = preflight(Change::Bind)?;
    let person = oauth::person(&app, code)?;
    bind(&caller, &WechatIdentity::of(&app, &person.openid, person.unionid.as_deref(), person.profile))
}

fn bind(caller: &Caller, person: &WechatIdentity) -> Result<Jsonb, AuthError> {
    identity::bind(person, caller.user_id)?;
    respond(caller)
}

/// `auth.wechat_bind_phone(code, appid)`: sets the caller's phone to the number WeChat confirmed
/// for a phone-button code of that mini program (none: the default one).
pub fn bind_phone(code: Option<&str>, appid: Option<&str>) -> Result<Jsonb, AuthError> {
    let code = login::validate_code(code, CodeKind::Phone)?;
    let app = apps::mini_program(appid)?;
    let caller = preflight(Change::Bind)?;
    let confirmed = token_cache::with_access_token(&app, |token| phone::phone_number(&app, code, token))?;
    let number = match gucs::phone_format() {
        PhoneFormat::E164 => format!("{}{}", confirmed.country_code, confirmed.national),
        PhoneFormat::National => confirmed.national,
    };
    store::lock_value("phone", &number);
    if !store::lock_user(caller.user_id) {
        return Err(AuthError::UserNotFound);
    }
    if store::phone_owner(&number).is_some_and(|owner| owner != caller.user_id) {
        return Err(AuthError::PhoneExists);
    }
    let name = store::set_phone(caller.user_id, &number);
    audit::record(&[Action::UserModified], caller.user_id, &name, Some(serde_json::json!({"provider": "phone"})));
    respond(&caller)
}

/// `auth.wechat_unlink_identity(identity_id)`: removes one of the caller's WeChat identities (see
/// `identity::unlink`). That app's openid then signs in as a new person.
pub fn unlink_identity(identity_id: Option<Uuid>) -> Result<Jsonb, AuthError> {
    let identity_id = identity_id.ok_or(AuthError::InvalidInput("identity_id is required"))?;
    let caller = preflight(Change::Unlink)?;
    if !store::lock_user(caller.user_id) {
        return Err(AuthError::UserNotFound);
    }
    identity::unlink(caller.user_id, identity_id)?;
    respond(&caller)
}

/// `auth.wechat_move_identity(identity_id, to_user_id)`, an administrator's: moves a WeChat
/// identity to another user (see `identity::move_to`) and answers both users.
pub fn move_identity(identity_id: Option<Uuid>, to: Option<Uuid>) -> Result<Jsonb, AuthError> {
    let identity_id = identity_id.ok_or(AuthError::InvalidInput("identity_id is required"))?;
    let to = to.ok_or(AuthError::InvalidInput("to_user_id is required"))?;
    let from = identity::move_to(identity_id, to)?;
    let (from, to) = (user::user(from), user::user(to).ok_or(AuthError::InvalidInput("to_user_id names no user"))?);
    Ok(Jsonb::object(&[
        ("from", from.as_ref().map_or(Member::Null, |from| Member::Object(from.members()))),
        ("to", Member::Object(to.members())),
    ]))
}

/// The caller's user as it is now, GoTrue's user JSON.
fn respond(caller: &Caller) -> Result<Jsonb, AuthError> {
    let user = user::user(caller.user_id).ok_or(AuthError::UserNotFound)?;
    Ok(Jsonb::object(&user.members()))
}
