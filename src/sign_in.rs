//! Sign-in: a WeChat code in, a GoTrue session out, for the person WeChat says it is.
//!
//! Mini programs trade a `wx.login()` code (`sign_in`); official accounts, websites and mobile
//! apps a web-authorisation code (`oauth_sign_in`), which with `snsapi_userinfo` or
//! `snsapi_login` also brings a profile, kept in the identity as GoTrue keeps an OAuth one. Which
//! user the person is, across apps, is `identity`'s rule; this flow trades the code, asks it, and
//! starts the session.
//!
//! Order matters: WeChat has answered before anything is written, and this transaction held no
//! lock while it waited; then each statement is short.

use crate::apps;
use crate::audit;
use crate::error::{AuthError, CodeKind};
use crate::hook::Method;
use crate::identity::{self, WechatIdentity};
use crate::jsonb::Jsonb;
use crate::mint::{self, Assurance};
use crate::session;
use crate::wechat::{login, oauth};

/// `auth.wechat_sign_in(code, appid)`: a mini program's `wx.login()` code (`appid` one of the
/// mini programs; none: the default one).
pub fn sign_in(code: Option<&str>, appid: Option<&str>) -> Result<Jsonb, AuthError> {
    let code = login::validate_code(code, CodeKind::Login)?;
    let app = apps::mini_program(appid)?;
    // Fail on a missing signing secret before a single-use code is spent.
    crate::signing::ready()?;
    let login = login::code_to_session(&app, code)?;
    start_session(&WechatIdentity::of(&app, &login.openid, login.unionid.as_deref(), None))
}

/// `auth.wechat_oauth_sign_in(code, appid)`: the code WeChat's web authorisation added to the
/// redirect URI of an official account's H5 page, a website's QR sign-in, or a mobile app.
pub fn oauth_sign_in(code: Option<&str>, appid: Option<&str>) -> Result<Jsonb, AuthError> {
    let code = login::validate_code(code, CodeKind::Authorization)?;
    let app = apps::web(appid)?;
    crate::signing::ready()?;
    let person = oauth::person(&app, code)?;
    start_session(&WechatIdentity::of(&app, &person.openid, person.unionid.as_deref(), person.profile))
}

/// Signs the person in (signing them up, or linking the app to them by unionid) and starts their
/// session.
fn start_session(person: &WechatIdentity) -> Result<Jsonb, AuthError> {
    let signed_in = identity::sign_in(person)?;
    audit::record(signed_in.actions, signed_in.user_id, &signed_in.name, audit::provider(person.provider));
    let (session_id, refresh_token) = session::start(signed_in.user_id);
    mint::session_json(signed_in.user_id, session_id, &refresh_token, Method::Oauth, Assurance::Started)?
        .ok_or_else(|| pgrx::error!("auth_wechat: user row disappeared"))
}
