//! Linking a signed-in user's account: WeChat (`auth.wechat_bind_account`) and a phone number
//! confirmed by WeChat's phone button (`auth.wechat_bind_phone`); and unlinking one of their
//! WeChat identities (`auth.wechat_unlink_identity`, GoTrue's `DELETE /user/identities/{id}`).
//!
//! Both trade the code with WeChat first, with no lock held; then they lock the value being bound
//! (so concurrent binders of one openid or number queue and see each other's commits), lock the
//! caller's row, check for conflicts, write, and return the user, as MemFire's API and GoTrue's
//! `PUT /user` do. They mint no token: an access token (which every API, proxy and log sees) must
//! not buy a refresh token, nor a fresh access token for a session past its limits.

use crate::apps::{self, App};
use crate::audit::{self, Action};
use crate::error::{AuthError, CodeKind};
use crate::gucs::{self, PhoneFormat};
use crate::jsonb::Jsonb;
use crate::request::{self, Caller};
use crate::store::WechatIdentity;
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
/// would still accept, signed in recently enough for `change` (GoTrue's reauthentication rule
/// for sensitive changes; a refresh is not a sign-in).
fn preflight(change: Change) -> Result<Caller, AuthError> {
    let caller = request::caller()?;
    let session = session::caller_session(&caller)?.valid()?;
    let within = match change {
        Change::Bind => gucs::bind_requires_sign_in_within(),
        Change::Unlink => Some(gucs::bind_requires_sign_in_within().unwrap_or(i64::from(gucs::DEFAULT_SIGN_IN_WITHIN))),
    };
    if within.is_some_and(|within| session.authenticated_ago > within) {
        return Err(AuthError::ReauthenticationNeeded);
    }
    Ok(caller)
}

/// `auth.wechat_bind_account(code, appid)`: binds the caller to the WeChat user of a mini
/// program's `wx.login()` code (none: the default mini program); idempotent for the same openid.
pub fn bind_account(code: Option<&str>, appid: Option<&str>) -> Result<Jsonb, AuthError> {
    crate::spi::writable()?;
    crate::schema::ready();
    let code = login::validate_code(code, CodeKind::Login)?;
    let app = apps::mini_program(appid)?;
    let caller = preflight(Change::Bind)?;
    let wechat = login::code_to_session(&app, code)?;
    let identity = WechatIdentity::of(&app, &wechat.openid, wechat.unionid.as_deref(), None);
    bind(&caller, &app, &identity)
}

/// `auth.wechat_oauth_bind(code, appid)`: binds the caller to the WeChat user of a
/// web-authorisation code of an official account, a website or a mobile app.
pub fn oauth_bind(code: Option<&str>, appid: Option<&str>) -> Result<Jsonb, AuthError> {
    crate::spi::writable()?;
    crate::schema::ready();
    let code = login::validate_code(code, CodeKind::Authorization)?;
    let app = apps::web(appid)?;
    let caller = preflight(Change::Bind)?;
    let person = oauth::person(&app, code)?;
    let identity = WechatIdentity::of(&app, &person.openid, person.unionid.as_deref(), person.profile);
    bind(&caller, &app, &identity)
}

/// Adds `identity` to the caller: refused when the caller holds another openid of the app (422
/// `wechat_already_bound`) or another user holds this one (409 `identity_already_exists`). The
/// default mini program's openid also goes into MemFire's columns.
fn bind(caller: &Caller, app: &App, identity: &WechatIdentity) -> Result<Jsonb, AuthError> {
    store::lock_value("openid", identity.openid);
    let bound = store::lock_user(caller.user_id).ok_or(AuthError::UserNotFound)?;
    let other_openid = if app.default {
        !bound.is_empty() && bound != identity.openid
    } else {
        store::holds_other_openid_of(caller.user_id, &app.appid, identity.openid)
    };
    if other_openid {
        return Err(AuthError::WechatAlreadyBound);
    }
    let owner = if app.default {
        store::find_by_openid(identity.openid).map(|found| found.id)
    } else {
        store::identity_owner(identity.provider, identity.openid)
    };
    if owner.is_some_and(|owner| owner != caller.user_id) {
        return Err(AuthError::IdentityAlreadyExists);
    }
    // The audit name of a user who binds now; `None` when this openid was theirs already.
    let newly_bound = match owner {
        Some(_) => None,
        None if app.default => Some(store::bind_wechat(caller.user_id, identity.openid, identity.unionid)),
        None => Some(store::link_provider(caller.user_id, identity.provider)),
    };
    let identity_id = store::upsert_identity(caller.user_id, identity);
    store::forget_unlinked(caller.user_id, identity.openid);
    if let Some(name) = newly_bound {
        audit::record(
            &[Action::IdentityLinked],
            caller.user_id,
            &name,
            audit::identity(identity_id, identity.provider, identity.openid),
        );
    }
    respond(caller)
}

/// `auth.wechat_bind_phone(code, appid)`: sets the caller's phone to the number WeChat confirmed
/// for a phone-button code of that mini program (none: the default one).
pub fn bind_phone(code: Option<&str>, appid: Option<&str>) -> Result<Jsonb, AuthError> {
    crate::spi::writable()?;
    crate::schema::ready();
    let code = login::validate_code(code, CodeKind::Phone)?;
    let app = apps::mini_program(appid)?;
    let caller = preflight(Change::Bind)?;
    let confirmed = token_cache::with_access_token(&app, |token| phone::phone_number(&app, code, token))?;
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

/// Removes one of the caller's WeChat identities. Another user's identity (or one that is not a
/// WeChat identity) is not found; the user's last identity may not go. That app's openid then
/// signs in as a new person: it is not linked back by its unionid.
pub fn unlink_identity(identity_id: Option<Uuid>) -> Result<Jsonb, AuthError> {
    crate::spi::writable()?;
    crate::schema::ready();
    let identity_id = identity_id.ok_or(AuthError::InvalidInput("identity_id is required"))?;
    let caller = preflight(Change::Unlink)?;
    store::lock_user(caller.user_id).ok_or(AuthError::UserNotFound)?;
    let identity = store::wechat_identity_of(caller.user_id, identity_id).ok_or(AuthError::IdentityNotFound)?;
    if identity.identities <= 1 {
        return Err(AuthError::SingleIdentityNotDeletable);
    }
    let name = store::unlink_identity(caller.user_id, identity_id, &identity);
    audit::record(
        &[Action::IdentityUnlinked],
        caller.user_id,
        &name,
        audit::identity(identity_id, &identity.provider, &identity.openid),
    );
    respond(&caller)
}

/// The caller's user as it is now, GoTrue's user JSON.
fn respond(caller: &Caller) -> Result<Jsonb, AuthError> {
    let user = store::user(caller.user_id).ok_or(AuthError::UserNotFound)?;
    Ok(Jsonb::object(&user.members()))
}
