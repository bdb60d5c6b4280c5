//! The mini-program login: a `wx.login()` code in, a GoTrue session out.

use crate::audit::{self, Action};
use crate::error::{AuthError, CodeKind};
use crate::hook::Method;
use crate::jsonb::Jsonb;
use crate::mint::{self, Assurance};
use crate::wechat::login;
use crate::{gucs, session, store};

/// Signs in (signing up on first visit) the WeChat user whose login code this is.
///
/// Order matters: the code is checked, then traded with WeChat while this transaction holds no
/// lock; only then are rows written, each statement short. Concurrent first sign-ins (and binds)
/// of one openid queue on a lock of that openid: one inserts, the others find its user.
pub fn sign_in(code: Option<&str>) -> Result<Jsonb, AuthError> {
    crate::spi::writable()?;
    crate::schema::ready();
    let code = login::validate_code(code, CodeKind::Login)?;
    // Fail on a missing signing secret before a single-use code is spent.
    crate::signing::ready()?;
    let app = crate::apps::resolve(None)?;
    let login = login::code_to_session(&app, code)?;
    let unionid = login.unionid.as_deref();
    let (user_id, name, actions): (_, _, &[Action]) = match store::sign_in_by_openid(&login.openid, unionid) {
        Some(found) if found.deleted => return Err(AuthError::UserDeleted),
        Some(found) if found.banned => return Err(AuthError::UserBanned),
        Some(found) => (found.id, found.name, &[Action::Login]),
        None if !gucs::allow_sign_up() => return Err(AuthError::SignupDisabled),
        None => {
            store::lock_value("openid", &login.openid);
            match store::create_user(crate::ids::new_uuid(), &login.openid, unionid) {
                // A new WeChat user has neither email nor phone: no audit name.
                Some(id) => (id, String::new(), &[Action::SignedUp, Action::Login]),
                None => match store::sign_in_by_openid(&login.openid, unionid) {
                    Some(found) => (found.id, found.name, &[Action::Login]),
                    None => pgrx::error!("auth_wechat: user for this openid vanished during sign-up"),
                },
            }
        }
    };
    audit::record(actions, user_id, &name, audit::wechat());
    let (session_id, refresh_token) = session::start(user_id, &login.openid, unionid);
    mint::session_json(user_id, session_id, &refresh_token, Method::Oauth, Assurance::Started)?
        .ok_or_else(|| pgrx::error!("auth_wechat: user row disappeared"))
}
