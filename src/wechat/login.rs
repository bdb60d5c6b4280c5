//! `jscode2session`: trades a `wx.login()` code for the user's openid (and unionid). The
//! `session_key` in the answer is never read: it is dropped with the raw body.

use super::{check_errcode, classify_common, get_json, url};
use crate::apps::App;
use crate::error::{AuthError, CodeKind, WechatAnswer};
use serde_json::Value;

/// WeChat's login codes are 32 characters; anything far longer is not one.
const MAX_CODE_LEN: usize = 128;
/// openids and unionids are 28 characters in practice; undocumented, so allow room.
const MAX_ID_LEN: usize = 64;

/// Who WeChat says the code belongs to.
#[derive(Debug, PartialEq, Eq)]
pub struct Login {
    pub openid: String,
    pub unionid: Option<String>,
}

/// Checks a WeChat code (`wx.login()`, the phone button, web authorisation) before it goes anywhere.
pub fn validate_code(code: Option<&str>, kind: CodeKind) -> Result<&str, AuthError> {
    let code = code.unwrap_or_default();
    if code.is_empty() {
        return Err(AuthError::InvalidInput(match kind {
            CodeKind::Login => "code is required (the code from wx.login())",
            CodeKind::Phone => "code is required (the code from the getPhoneNumber button)",
            CodeKind::Authorization => "code is required (the code WeChat adds to the redirect URI)",
        }));
    }
    if code.len() > MAX_CODE_LEN {
        return Err(AuthError::InvalidInput("code is too long to be a WeChat code"));
    }
    if !code.bytes().all(|b| b.is_ascii_alphanumeric() || b"._~+/=-".contains(&b)) {
        return Err(AuthError::InvalidInput("code has characters a WeChat code never has"));
    }
    Ok(code)
}

/// Trades a mini program's login code for the user's openid (and unionid when the app belongs to
/// an Open Platform account).
pub fn code_to_session(app: &App, code: &str) -> Result<Login, AuthError> {
    let url = url(
        "/sns/jscode2session",
        &[("appid", &app.appid), ("secret", &app.secret), ("js_code", code), ("grant_type", "authorization_code")],
    )?;
    get_json(app, url).and_then(|answer| parse(&answer)).map_err(|e| e.for_app(app.default))
}

fn classify(answer: WechatAnswer) -> AuthError {
    match answer.errcode {
        40029 | 40163 | 41008 | 42003 => AuthError::InvalidCode(CodeKind::Login, answer),
        _ => classify_common(answer),
    }
}

fn parse(answer: &Value) -> Result<Login, AuthError> {
    check_errcode(answer, classify)?;
    let id = |key: &str| answer.get(key).map(|v| v.as_str().filter(|id| is_wechat_id(id)).map(str::to_string));
    let openid = id("openid").flatten().ok_or(AuthError::WechatBadResponse("no usable openid"))?;
    let unionid = match id("unionid") {
        None => None,
        Some(Some(unionid)) => Some(unionid),
        Some(None) => return Err(AuthError::WechatBadResponse("an unusable unionid")),
    };
    Ok(Login { openid, unionid })
}

/// Whether `id` can be an openid or unionid: WeChat's alphabet, a sane length.
pub fn is_wechat_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(body: &str) -> Result<Login, AuthError> {
        match super::super::parse_json(body.as_bytes()) {
            Ok(value) => parse(&value),
            Err(e) => Err(e),
        }
    }

    #[test]
    fn accepts_success_with_and_without_errcode() {
        let plain = parse_text(r#"{"session_key":"tQY+38pdTVnAIWCBNiM1+A==","openid":"o--sB5rdWBfwTidbZzzn4FXfWpEg"}"#);
        assert_eq!(plain, Ok(Login { openid: "o--sB5rdWBfwTidbZzzn4FXfWpEg".into(), unionid: None }));
        let with_zero = parse_text(r#"{"openid":"oA","unionid":"oU","session_key":"k","errcode":0,"errmsg":"ok"}"#);
        assert_eq!(with_zero, Ok(Login { openid: "oA".into(), unionid: Some("oU".into()) }));
    }

    #[test]
    fn maps_errcodes() {
        let invalid = parse_text(r#"{"errcode":40029,"errmsg":"invalid code, rid: 6380622c-50076416-224b40b0"}"#);
        assert_eq!(
            invalid,
            Err(AuthError::InvalidCode(
                CodeKind::Login,
                WechatAnswer { errcode: 40029, rid: Some("6380622c-50076416-224b40b0".into()) }
            ))
        );
        assert!(matches!(parse_text(r#"{"errcode":"40163","errmsg":"x"}"#), Err(AuthError::InvalidCode(..))));
        assert!(matches!(parse_text(r#"{"errcode":-1,"errmsg":"system error"}"#), Err(AuthError::WechatBusy(_))));
        assert!(matches!(parse_text(r#"{"errcode":45011,"errmsg":"x"}"#), Err(AuthError::WechatRateLimited(_))));
        assert!(matches!(parse_text(r#"{"errcode":40226,"errmsg":"x"}"#), Err(AuthError::WechatBlocked(_))));
        assert!(matches!(parse_text(r#"{"errcode":40125,"errmsg":"x"}"#), Err(AuthError::WechatRejectedConfig(..))));
        assert!(matches!(parse_text(r#"{"errcode":48002,"errmsg":"x"}"#), Err(AuthError::WechatError(_))));
    }

    #[test]
    fn refuses_unusable_bodies() {
        assert!(matches!(parse_text("<html>busy</html>"), Err(AuthError::WechatBadResponse(_))));
        assert!(matches!(parse_text(r#"{"session_key":"k"}"#), Err(AuthError::WechatBadResponse(_))));
        assert!(matches!(parse_text(r#"{"openid":"o'; drop table"}"#), Err(AuthError::WechatBadResponse(_))));
        assert!(matches!(parse_text(r#"{"openid":"oA","unionid":""}"#), Err(AuthError::WechatBadResponse(_))));
    }

    #[test]
    fn validates_codes_before_any_call() {
        assert!(validate_code(Some("0a3KzVFa1ZEdpK0IIjHa1C3Qwe2KzVFp"), CodeKind::Login).is_ok());
        assert!(validate_code(None, CodeKind::Login).is_err());
        assert!(validate_code(Some(""), CodeKind::Phone).is_err());
        assert!(validate_code(Some(&"a".repeat(129)), CodeKind::Login).is_err());
        assert!(validate_code(Some("abc&secret=1"), CodeKind::Login).is_err());
        assert!(validate_code(Some("abc def"), CodeKind::Login).is_err());
    }
}
