//! The mini-program login: a `wx.login()` code in, a GoTrue session out.

use crate::audit::{self, Action};
use crate::error::{AuthError, CodeKind};
use crate::jsonb::Jsonb;
use crate::wechat::login;
use crate::{gucs, session, store};

/// Signs in (signing up on first visit) the WeChat user whose login code this is.
///
/// Order matters: the code is checked, then traded with WeChat while this transaction holds no
/// lock; only then are rows written, each statement short. Concurrent first sign-ins (and binds)
/// of one openid queue on a lock of that openid: one inserts, the others find its user.
pub fn sign_in(code: Option<&str>) -> Result<Jsonb, AuthError> {
    let code = login::validate_code(code, CodeKind::Login)?;
    // Fail on a missing signing secret before a single-use code is spent.
    crate::signing::ready()?;
    let login = login::code_to_session(code)?;
    let user_id = match store::find_by_openid(&login.openid) {
        Some(found) if found.deleted => return Err(AuthError::UserDeleted),
        Some(found) if found.banned => return Err(AuthError::UserBanned),
        Some(found) => found.id,
        None if !gucs::allow_sign_up() => return Err(AuthError::SignupDisabled),
        None => {
            store::lock_value("openid", &login.openid);
            match store::create_user(session::new_uuid(), &login.openid, login.unionid.as_deref()) {
                Some(id) => {
                    audit::record(&[Action::SignedUp], id, audit::wechat());
                    id
                }
                None => store::find_by_openid(&login.openid)
                    .map(|found| found.id)
                    .unwrap_or_else(|| pgrx::error!("auth_wechat: user for this openid vanished during sign-up")),
            }
        }
    };
    if !store::record_sign_in(user_id, login.unionid.as_deref()) {
        pgrx::error!("auth_wechat: user was deleted during sign-in");
    }
    store::upsert_identity(user_id, &login.openid, login.unionid.as_deref());
    audit::record(&[Action::Login], user_id, audit::wechat());
    let (session_id, refresh_token) = session::start(user_id);
    session::session_json(user_id, session_id, &refresh_token, session::Method::Oauth)?
        .ok_or_else(|| pgrx::error!("auth_wechat: user row disappeared"))
}
