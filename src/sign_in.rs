//! Sign-in: a WeChat code in, a GoTrue session out, for the person WeChat says it is.
//!
//! A person has one openid per app and, when the apps share an Open Platform account, one unionid
//! across them. An openid this database knows signs its user in. A new one signs up a new user,
//! unless its unionid belongs to exactly one user (and `auth_wechat.link_by_unionid` is on): then
//! it is that user, and the app's identity is added to them. A unionid that two users hold names
//! no one: 409, nothing written. Nothing but the unionid ever links.
//!
//! Mini programs trade a `wx.login()` code (`sign_in`); official accounts, websites and mobile
//! apps a web-authorisation code (`oauth_sign_in`), which with `snsapi_userinfo` or
//! `snsapi_login` also brings a profile, kept in the identity as GoTrue keeps an OAuth one.

use crate::apps::{self, App};
use crate::audit::{self, Action};
use crate::error::{AuthError, CodeKind};
use crate::hook::Method;
use crate::jsonb::Jsonb;
use crate::mint::{self, Assurance};
use crate::store::{Found, WechatIdentity};
use crate::wechat::{login, oauth};
use crate::{gucs, session, store};
use pgrx::Uuid;
use serde_json::Value;

/// `auth.wechat_sign_in(code, appid)`: a mini program's `wx.login()` code (`appid` one of the
/// mini programs; none: the default one).
pub fn sign_in(code: Option<&str>, appid: Option<&str>) -> Result<Jsonb, AuthError> {
    crate::spi::writable()?;
    crate::schema::ready();
    let code = login::validate_code(code, CodeKind::Login)?;
    let app = apps::mini_program(appid)?;
    // Fail on a missing signing secret before a single-use code is spent.
    crate::signing::ready()?;
    let login = login::code_to_session(&app, code)?;
    let identity = WechatIdentity::of(&app, &login.openid, login.unionid.as_deref(), None);
    start_session(&app, &identity)
}

/// `auth.wechat_oauth_sign_in(code, appid)`: the code WeChat's web authorisation added to the
/// redirect URI of an official account's H5 page, a website's QR sign-in, or a mobile app.
pub fn oauth_sign_in(code: Option<&str>, appid: Option<&str>) -> Result<Jsonb, AuthError> {
    crate::spi::writable()?;
    crate::schema::ready();
    let code = login::validate_code(code, CodeKind::Authorization)?;
    let app = apps::web(appid)?;
    crate::signing::ready()?;
    let person = oauth::person(&app, code)?;
    let identity = WechatIdentity::of(&app, &person.openid, person.unionid.as_deref(), person.profile);
    start_session(&app, &identity)
}

/// Signs the person of `identity` in (signing them up, or linking the app to them by unionid)
/// and starts their session.
///
/// Order matters: WeChat has answered before anything here runs, and this transaction held no
/// lock while it waited; then each statement is short. Concurrent first sign-ins of one person
/// (from one app, or from two apps sharing a unionid) queue on a lock of the unionid and of the
/// openid: one writes, the others find what it wrote.
fn start_session(app: &App, identity: &WechatIdentity) -> Result<Jsonb, AuthError> {
    let (user_id, name, actions): (Uuid, String, &[Action]) = match known(app, identity) {
        Some(found) => (usable(&found)?.id, found.name, &[Action::Login]),
        None => {
            let by_unionid = identity.unionid.filter(|_| gucs::link_by_unionid());
            if let Some(unionid) = by_unionid {
                store::lock_value("unionid", unionid);
            }
            store::lock_value("openid", identity.openid);
            // What a concurrent sign-in of this person wrote while this one waited for the locks.
            // (The default app's openid alone needs no second look: a concurrent sign-up of it
            // meets this one at the unique index of `wechat_id`, see `sign_up`.)
            let raced = if app.default && by_unionid.is_none() { None } else { known(app, identity) };
            match raced {
                Some(found) => (usable(&found)?.id, found.name, &[Action::Login]),
                None => {
                    match by_unionid.map(|u| store::users_by_unionid(u, identity.openid)).unwrap_or_default().as_slice()
                    {
                        [] => sign_up(app, identity)?,
                        [one] => link(app, identity, usable(one)?.id)?,
                        _ => return Err(AuthError::UnionidConflict),
                    }
                }
            }
        }
    };
    audit::record(actions, user_id, &name, audit::provider(identity.provider));
    let (session_id, refresh_token) = session::start(user_id, identity);
    mint::session_json(user_id, session_id, &refresh_token, Method::Oauth, Assurance::Started)?
        .ok_or_else(|| pgrx::error!("auth_wechat: user row disappeared"))
}

/// The user of this app's openid, if any, with this sign-in recorded. The default mini program's
/// openid is MemFire's `auth.users.wechat_id`; another app's is its identity.
fn known(app: &App, identity: &WechatIdentity) -> Option<Found> {
    if app.default {
        store::sign_in_by_openid(identity.openid, identity.unionid)
    } else {
        store::sign_in_by_identity(identity.provider, identity.openid)
    }
}

/// The user, unless they may not sign in.
fn usable(found: &Found) -> Result<&Found, AuthError> {
    if found.deleted {
        Err(AuthError::UserDeleted)
    } else if found.banned {
        Err(AuthError::UserBanned)
    } else {
        Ok(found)
    }
}

/// A new user for a new person, or the user a concurrent sign-up of the default app's openid made
/// first.
fn sign_up(app: &App, identity: &WechatIdentity) -> Result<(Uuid, String, &'static [Action]), AuthError> {
    if !gucs::allow_sign_up() {
        return Err(AuthError::SignupDisabled);
    }
    let (wechat_id, wechat_unionid) = if app.default { (identity.openid, identity.unionid) } else { ("", None) };
    // GoTrue fills a new OAuth user's metadata from the profile.
    let metadata = identity.profile.as_ref().map(|profile| {
        let keep = |key: &str| profile.get(key).map(|value| (key.to_string(), value.clone()));
        Value::Object(["name", "avatar_url"].into_iter().filter_map(keep).collect())
    });
    match store::create_user(crate::ids::new_uuid(), identity.provider, wechat_id, wechat_unionid, metadata) {
        // A new WeChat user has neither email nor phone: no audit name.
        Some(id) => Ok((id, String::new(), &[Action::SignedUp, Action::Login])),
        None => match known(app, identity) {
            Some(found) => Ok((usable(&found)?.id, found.name, &[Action::Login])),
            None => pgrx::error!("auth_wechat: user for this openid vanished during sign-up"),
        },
    }
}

/// The app's identity added to the one user who holds its unionid.
fn link(app: &App, identity: &WechatIdentity, user_id: Uuid) -> Result<(Uuid, String, &'static [Action]), AuthError> {
    if app.default && store::lock_user(user_id).is_some_and(|openid| openid.is_empty()) {
        // The default mini program's openid also goes into MemFire's columns.
        store::bind_wechat(user_id, identity.openid, identity.unionid);
    }
    let name = store::link_provider(user_id, identity.provider);
    let identity_id = store::upsert_identity(user_id, identity);
    audit::record(
        &[Action::IdentityLinked],
        user_id,
        &name,
        audit::identity(identity_id, identity.provider, identity.openid),
    );
    Ok((user_id, name, &[Action::Login]))
}
