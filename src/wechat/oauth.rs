//! Web authorisation (official accounts' H5 pages, websites' QR sign-in, mobile apps):
//! `sns/oauth2/access_token` trades a code for the user's openid, and `sns/userinfo` reads the
//! profile when the granted scope allows it. The user access token lives only for those two calls:
//! it is never stored, logged or returned.

use super::{check_errcode, classify_common, get_json, url};
use crate::apps::{App, Kind};
use crate::error::{AuthError, CodeKind, WechatAnswer};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::Value;

/// Who a web-authorisation code belongs to: openid, unionid (from the token answer or the
/// profile), and the profile as an OAuth identity's claims in GoTrue (`nickname` and `name`,
/// `avatar_url` and `picture`, each only when WeChat sent it) when the scope let it be read.
pub struct Person {
    pub openid: String,
    pub unionid: Option<String>,
    pub profile: Option<Value>,
}

/// Trades `code` and, when the granted scope allows it, reads the profile.
pub fn person(app: &App, code: &str) -> Result<Person, AuthError> {
    let authorized = authorize(app, code).map_err(|e| e.for_app(app.default))?;
    let profile = if authorized.may_read_profile {
        Some(profile(app, &authorized).map_err(|e| e.for_app(app.default))?)
    } else {
        None
    };
    let unionid = authorized.unionid.clone().or_else(|| profile.as_ref().and_then(|p| p.unionid.clone()));
    Ok(Person { openid: authorized.openid, unionid, profile: profile.map(Profile::claims) })
}

/// Who WeChat says the code belongs to, and the user token that may read their profile.
struct Authorized {
    openid: String,
    unionid: Option<String>,
    /// Whether the granted scope lets `sns/userinfo` answer (`snsapi_userinfo`, `snsapi_login`).
    may_read_profile: bool,
    access_token: String,
}

/// The profile of `sns/userinfo`, as far as it is used.
struct Profile {
    nickname: Option<String>,
    avatar_url: Option<String>,
    unionid: Option<String>,
}

impl Profile {
    fn claims(self) -> Value {
        let mut claims = serde_json::Map::new();
        if let Some(nickname) = self.nickname {
            claims.insert("nickname".into(), Value::from(nickname.clone()));
            claims.insert("name".into(), Value::from(nickname));
        }
        if let Some(avatar_url) = self.avatar_url {
            claims.insert("avatar_url".into(), Value::from(avatar_url.clone()));
            claims.insert("picture".into(), Value::from(avatar_url));
        }
        Value::Object(claims)
    }
}

/// Trades a web-authorisation code of `app` for the user's openid (and unionid, which WeChat
/// sends for `snsapi_userinfo` and `snsapi_login` when the app belongs to an Open Platform
/// account).
fn authorize(app: &App, code: &str) -> Result<Authorized, AuthError> {
    let url = url(
        "/sns/oauth2/access_token",
        &[("appid", &app.appid), ("secret", &app.secret), ("code", code), ("grant_type", "authorization_code")],
    )?;
    let answer = get_json(app, url)?;
    check_errcode(&answer, classify)?;
    let openid = wechat_id(&answer, "openid")?.ok_or(AuthError::WechatBadResponse("no usable openid"))?;
    let access_token = answer
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty() && t.len() <= super::token::MAX_TOKEN_LEN && t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or(AuthError::WechatBadResponse("no usable access_token"))?
        .to_string();
    let scope = answer.get("scope").and_then(Value::as_str).unwrap_or_default();
    let may_read_profile = scope.split(',').any(|s| s == "snsapi_userinfo" || s == "snsapi_login");
    Ok(Authorized { openid, unionid: wechat_id(&answer, "unionid")?, may_read_profile, access_token })
}

/// The profile of the authorised user.
fn profile(app: &App, authorized: &Authorized) -> Result<Profile, AuthError> {
    let url = url(
        "/sns/userinfo",
        &[("access_token", &authorized.access_token), ("openid", &authorized.openid), ("lang", "zh_CN")],
    )?;
    let answer = get_json(app, url)?;
    check_errcode(&answer, classify_common)?;
    if wechat_id(&answer, "openid")?.as_deref() != Some(authorized.openid.as_str()) {
        return Err(AuthError::WechatBadResponse("a profile of another openid"));
    }
    let text = |key: &str| {
        answer
            .get(key)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty() && v.len() <= MAX_PROFILE_LEN)
            .map(str::to_string)
    };
    let avatar_url = text("headimgurl").filter(|url| url.starts_with("https://") || url.starts_with("http://"));
    Ok(Profile { nickname: text("nickname"), avatar_url, unionid: wechat_id(&answer, "unionid")? })
}

/// Where a browser goes to authorise an official account (inside WeChat) and a website (a QR code
/// to scan); mobile apps authorise through WeChat's SDK instead.
const OFFICIAL_ACCOUNT_AUTHORIZE: &str = "https://open.weixin.qq.com/connect/oauth2/authorize";
const WEBSITE_AUTHORIZE: &str = "https://open.weixin.qq.com/connect/qrconnect";
/// WeChat's limit on `state`: 128 bytes of letters and digits.
const MAX_STATE_LEN: usize = 128;
/// Shortest `state` accepted: it is the CSRF check of the redirect, so it must not be guessable
/// (16 letters and digits are over 90 bits) and it must be there at all.
const MIN_STATE_LEN: usize = 16;
const MAX_REDIRECT_URI_LEN: usize = 1024;

/// The URL of WeChat's authorisation page for `app`, parameters in WeChat's order, the redirect
/// URI percent-encoded: an official account's `oauth2/authorize` (scope `snsapi_base` unless
/// `snsapi_userinfo` is asked for) or a website's `qrconnect` (`snsapi_login`). It holds no
/// secret. WeChat sends the browser back to `redirect_uri` with `code` and `state`.
/// Whether `uri` is a plain-HTTP URL of this machine (a developer's redirect): anything else must
/// be HTTPS, or the code WeChat sends back could be read on the way.
fn is_local_http(uri: &str) -> bool {
    let Some(rest) = uri.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(host, _port)| host),
    };
    matches!(host, "localhost" | "127.0.0.1" | "::1")
}

pub fn authorize_url(
    app: &App,
    redirect_uri: Option<&str>,
    state: Option<&str>,
    scope: Option<&str>,
) -> Result<String, AuthError> {
    let (page, scope) = match (app.kind, scope) {
        (Kind::OfficialAccount, None | Some("snsapi_base")) => (OFFICIAL_ACCOUNT_AUTHORIZE, "snsapi_base"),
        (Kind::OfficialAccount, Some("snsapi_userinfo")) => (OFFICIAL_ACCOUNT_AUTHORIZE, "snsapi_userinfo"),
        (Kind::OfficialAccount, Some(_)) => {
            return Err(AuthError::InvalidInput("scope must be snsapi_base or snsapi_userinfo for an official account"))
        }
        (Kind::Website, None | Some("snsapi_login")) => (WEBSITE_AUTHORIZE, "snsapi_login"),
        (Kind::Website, Some(_)) => return Err(AuthError::InvalidInput("scope must be snsapi_login for a website")),
        _ => {
            return Err(AuthError::InvalidInput(
                "appid is not an official account's or a website's (a mobile app authorises through WeChat's SDK)",
            ))
        }
    };
    let redirect_uri = redirect_uri
        .filter(|uri| uri.starts_with("https://") || is_local_http(uri))
        .filter(|uri| {
            uri.len() <= MAX_REDIRECT_URI_LEN && !uri.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        })
        .ok_or(AuthError::InvalidInput(
            "redirect_uri must be an https URL (http only for localhost) of at most 1024 characters",
        ))?;
    let state = state
        .filter(|state| {
            (MIN_STATE_LEN..=MAX_STATE_LEN).contains(&state.len()) && state.bytes().all(|b| b.is_ascii_alphanumeric())
        })
        .ok_or(AuthError::InvalidInput(
            "state must be 16 to 128 letters and digits: a one-time random value of the browser's session",
        ))?;
    Ok(format!(
        "{page}?appid={}&redirect_uri={}&response_type=code&scope={scope}&state={state}#wechat_redirect",
        app.appid,
        utf8_percent_encode(redirect_uri, NON_ALPHANUMERIC)
    ))
}

/// Longest nickname or avatar URL kept (WeChat's are far shorter).
const MAX_PROFILE_LEN: usize = 512;

/// An id member of an answer: absent is `None`, present and malformed an error.
fn wechat_id(answer: &Value, key: &str) -> Result<Option<String>, AuthError> {
    match answer.get(key) {
        None => Ok(None),
        Some(id) => match id.as_str().filter(|id| super::login::is_wechat_id(id)) {
            Some(id) => Ok(Some(id.to_string())),
            None => Err(AuthError::WechatBadResponse("an unusable openid or unionid")),
        },
    }
}

fn classify(answer: WechatAnswer) -> AuthError {
    match answer.errcode {
        40029 | 40163 | 41008 | 42003 => AuthError::InvalidCode(CodeKind::Authorization, answer),
        _ => classify_common(answer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refused_codes_are_the_callers_fault_and_the_rest_wechats() {
        let used = classify(WechatAnswer { errcode: 40163, rid: None });
        assert!(matches!(used, AuthError::InvalidCode(CodeKind::Authorization, _)));
        assert!(matches!(classify(WechatAnswer { errcode: 40125, rid: None }), AuthError::WechatRejectedConfig(..)));
    }

    /// A state of the shortest length accepted, and more.
    const STATE: &str = "0123456789abcdefXYZ";

    fn app(kind: Kind) -> App {
        App { appid: "wx2222bbbb2222bbbb".into(), secret: "s".into(), kind, default: false }
    }

    #[test]
    fn authorize_urls_are_wechats_in_its_order() {
        let oa =
            authorize_url(&app(Kind::OfficialAccount), Some("https://h5.example.com/cb?a=1&b=2"), Some(STATE), None);
        assert_eq!(
            oa.unwrap(),
            "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wx2222bbbb2222bbbb\
             &redirect_uri=https%3A%2F%2Fh5%2Eexample%2Ecom%2Fcb%3Fa%3D1%26b%3D2&response_type=code\
             &scope=snsapi_base&state=0123456789abcdefXYZ#wechat_redirect"
        );
        let userinfo =
            authorize_url(&app(Kind::OfficialAccount), Some("https://a.b/"), Some(STATE), Some("snsapi_userinfo"))
                .unwrap();
        assert!(userinfo.contains("&scope=snsapi_userinfo&"), "{userinfo}");
        let web = authorize_url(&app(Kind::Website), Some("https://www.example.com/wx"), Some(STATE), None).unwrap();
        assert!(web.starts_with("https://open.weixin.qq.com/connect/qrconnect?appid="), "{web}");
        assert!(web.ends_with(&format!("&scope=snsapi_login&state={STATE}#wechat_redirect")), "{web}");
        for local in ["http://localhost:3000/cb", "http://127.0.0.1/cb", "http://[::1]:8080/"] {
            assert!(authorize_url(&app(Kind::Website), Some(local), Some(STATE), None).is_ok(), "{local}");
        }
    }

    #[test]
    fn authorize_urls_refuse_what_wechat_would() {
        let oa = app(Kind::OfficialAccount);
        for (kind, uri, state, scope) in [
            (Kind::OfficialAccount, Some("https://a.b/"), Some(STATE), Some("snsapi_login")),
            (Kind::Website, Some("https://a.b/"), Some(STATE), Some("snsapi_base")),
            (Kind::MobileApp, Some("https://a.b/"), Some(STATE), None),
            (Kind::MiniProgram, Some("https://a.b/"), Some(STATE), None),
            (Kind::OfficialAccount, Some("javascript:alert(1)"), Some(STATE), None),
            (Kind::OfficialAccount, None, Some(STATE), None),
            (Kind::OfficialAccount, Some("https://a.b/"), Some("0123456789abcdef&b"), None),
            (Kind::OfficialAccount, Some("https://a.b/"), None, None),
            (Kind::OfficialAccount, Some("https://a.b/"), Some(""), None),
            (Kind::OfficialAccount, Some("https://a.b/"), Some("0123456789abcde"), None),
            (Kind::OfficialAccount, Some("http://h5.example.com/cb"), Some(STATE), None),
            (Kind::OfficialAccount, Some("http://localhost.example.com/cb"), Some(STATE), None),
            (Kind::OfficialAccount, Some("http://127.0.0.1.example.com/cb"), Some(STATE), None),
        ] {
            let refused = authorize_url(&App { kind, ..oa.clone() }, uri, state, scope);
            assert!(matches!(refused, Err(AuthError::InvalidInput(_))), "{kind:?} {uri:?} {state:?} {scope:?}");
        }
    }

    #[test]
    fn ids_are_checked() {
        assert_eq!(wechat_id(&json!({"openid": "oA_b-1"}), "openid").unwrap().as_deref(), Some("oA_b-1"));
        assert_eq!(wechat_id(&json!({}), "unionid").unwrap(), None);
        assert!(wechat_id(&json!({"openid": "o'; drop"}), "openid").is_err());
    }
}
