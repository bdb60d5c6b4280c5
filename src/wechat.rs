//! WeChat's server API: the login-code exchange (`jscode2session`) and its error codes.
//!
//! Bodies are parsed from raw bytes whatever the Content-Type (jscode2session labels its JSON
//! `text/plain`), errors arrive as HTTP 200 with an `errcode` that may be a number or a numeric
//! string, and success may or may not carry `errcode: 0`. The `session_key` is never
//! deserialised: it is dropped with the raw body.

use crate::error::{AuthError, WechatAnswer};
use crate::{gucs, http};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Deserialize;
use serde_json::Value;

/// Longest body accepted from the login endpoint; its real answers are about 100 bytes.
const LOGIN_BODY_LIMIT: u64 = 16 * 1024;
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

#[derive(Deserialize)]
struct Code2Session {
    openid: Option<String>,
    unionid: Option<String>,
    errcode: Option<Value>,
    errmsg: Option<String>,
}

/// Checks a `wx.login()` code before it goes anywhere.
pub fn validate_code(code: Option<&str>) -> Result<&str, AuthError> {
    let code = code.unwrap_or_default();
    if code.is_empty() {
        return Err(AuthError::InvalidInput("code is required (the code from wx.login())"));
    }
    if code.len() > MAX_CODE_LEN {
        return Err(AuthError::InvalidInput("code is too long to be a wx.login() code"));
    }
    if !code.bytes().all(|b| b.is_ascii_alphanumeric() || b"._~+/=-".contains(&b)) {
        return Err(AuthError::InvalidInput("code has characters a wx.login() code never has"));
    }
    Ok(code)
}

/// Trades a login code for the user's openid (and unionid when the app has one).
pub fn code_to_session(code: &str) -> Result<Login, AuthError> {
    let appid = gucs::appid()?;
    let secret = gucs::secret()?;
    let url = format!(
        "{}/sns/jscode2session?appid={}&secret={}&js_code={}&grant_type=authorization_code",
        gucs::api_base()?,
        utf8_percent_encode(&appid, NON_ALPHANUMERIC),
        utf8_percent_encode(&secret, NON_ALPHANUMERIC),
        utf8_percent_encode(code, NON_ALPHANUMERIC),
    );
    let response = http::get(url, gucs::timeout(), LOGIN_BODY_LIMIT).map_err(transport_error)?;
    if response.status != 200 {
        return Err(AuthError::WechatBadResponse(if (300..400).contains(&response.status) {
            "a redirect (not followed)"
        } else {
            "an HTTP error status"
        }));
    }
    parse_code2session(&response.body)
}

fn transport_error(failure: http::Failure) -> AuthError {
    match failure {
        http::Failure::Timeout => AuthError::WechatTimeout,
        http::Failure::Unreachable => AuthError::WechatUnreachable,
        http::Failure::TooLarge => AuthError::WechatBadResponse("an oversized body"),
        http::Failure::Protocol => AuthError::WechatBadResponse("a broken HTTP exchange"),
    }
}

fn parse_code2session(body: &[u8]) -> Result<Login, AuthError> {
    let parsed: Code2Session =
        serde_json::from_slice(body).map_err(|_| AuthError::WechatBadResponse("a body that is not JSON"))?;
    let answer =
        WechatAnswer { errcode: errcode(parsed.errcode.as_ref())?, rid: parsed.errmsg.as_deref().and_then(rid) };
    if answer.errcode != 0 {
        return Err(classify(answer));
    }
    let openid = parsed.openid.filter(|id| is_wechat_id(id)).ok_or(AuthError::WechatBadResponse("no usable openid"))?;
    let unionid = match parsed.unionid {
        None => None,
        Some(id) if is_wechat_id(&id) => Some(id),
        Some(_) => return Err(AuthError::WechatBadResponse("an unusable unionid")),
    };
    Ok(Login { openid, unionid })
}

/// `errcode` is a number in real answers but a string in some documentation; absent means 0.
fn errcode(value: Option<&Value>) -> Result<i64, AuthError> {
    match value {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n.as_i64().ok_or(AuthError::WechatBadResponse("a non-integer errcode")),
        Some(Value::String(s)) => s.trim().parse().map_err(|_| AuthError::WechatBadResponse("a non-numeric errcode")),
        Some(_) => Err(AuthError::WechatBadResponse("an errcode of the wrong type")),
    }
}

/// Maps a WeChat error code to what the caller should be told.
fn classify(answer: WechatAnswer) -> AuthError {
    match answer.errcode {
        40029 | 40163 | 41008 | 42003 => AuthError::InvalidCode(answer),
        40226 => AuthError::WechatBlocked(answer),
        45009 | 45011 => AuthError::WechatRateLimited(answer),
        -1 => AuthError::WechatBusy(answer),
        40013 | 40125 | 40164 | 41002 | 41004 => AuthError::WechatRejectedConfig(answer),
        _ => AuthError::WechatError(answer),
    }
}

/// The request id at the end of an errmsg (`..., rid: 6380622c-50076416-224b40b0`), kept for
/// support tickets; only hex digits and dashes are taken, so nothing else of the text leaks.
fn rid(errmsg: &str) -> Option<String> {
    let start = errmsg.find("rid: ")? + "rid: ".len();
    let rid: String = errmsg[start..].chars().take_while(|c| c.is_ascii_hexdigit() || *c == '-').take(64).collect();
    (!rid.is_empty()).then_some(rid)
}

fn is_wechat_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Login, AuthError> {
        parse_code2session(body.as_bytes())
    }

    #[test]
    fn accepts_success_with_and_without_errcode() {
        let plain = parse(r#"{"session_key":"tQY+38pdTVnAIWCBNiM1+A==","openid":"o--sB5rdWBfwTidbZzzn4FXfWpEg"}"#);
        assert_eq!(plain, Ok(Login { openid: "o--sB5rdWBfwTidbZzzn4FXfWpEg".into(), unionid: None }));
        let with_zero = parse(r#"{"openid":"oA","unionid":"oU","session_key":"k","errcode":0,"errmsg":"ok"}"#);
        assert_eq!(with_zero, Ok(Login { openid: "oA".into(), unionid: Some("oU".into()) }));
    }

    #[test]
    fn maps_errcodes_number_or_string() {
        let invalid = parse(r#"{"errcode":40029,"errmsg":"invalid code, rid: 6380622c-50076416-224b40b0"}"#);
        assert_eq!(
            invalid,
            Err(AuthError::InvalidCode(WechatAnswer {
                errcode: 40029,
                rid: Some("6380622c-50076416-224b40b0".into())
            }))
        );
        assert!(matches!(parse(r#"{"errcode":"40163","errmsg":"code been used"}"#), Err(AuthError::InvalidCode(_))));
        assert!(matches!(parse(r#"{"errcode":-1,"errmsg":"system error"}"#), Err(AuthError::WechatBusy(_))));
        assert!(matches!(parse(r#"{"errcode":45011,"errmsg":"x"}"#), Err(AuthError::WechatRateLimited(_))));
        assert!(matches!(parse(r#"{"errcode":40226,"errmsg":"x"}"#), Err(AuthError::WechatBlocked(_))));
        assert!(matches!(parse(r#"{"errcode":40125,"errmsg":"x"}"#), Err(AuthError::WechatRejectedConfig(_))));
        assert!(matches!(parse(r#"{"errcode":48001,"errmsg":"x"}"#), Err(AuthError::WechatError(_))));
    }

    #[test]
    fn refuses_unusable_bodies() {
        assert!(matches!(parse("<html>busy</html>"), Err(AuthError::WechatBadResponse(_))));
        assert!(matches!(parse(r#"{"session_key":"k"}"#), Err(AuthError::WechatBadResponse(_))));
        assert!(matches!(parse(r#"{"openid":"o'; drop table"}"#), Err(AuthError::WechatBadResponse(_))));
        assert!(matches!(parse(r#"{"openid":"oA","unionid":""}"#), Err(AuthError::WechatBadResponse(_))));
    }

    #[test]
    fn rid_takes_only_the_trace_id() {
        assert_eq!(rid("invalid code, rid: 6380622c-50076416-224b40b0"), Some("6380622c-50076416-224b40b0".into()));
        assert_eq!(rid("invalid code rid: abc secret=xyz"), Some("abc".into()));
        assert_eq!(rid("invalid code"), None);
    }

    #[test]
    fn validates_codes_before_any_call() {
        assert!(validate_code(Some("0a3KzVFa1ZEdpK0IIjHa1C3Qwe2KzVFp")).is_ok());
        assert!(validate_code(None).is_err());
        assert!(validate_code(Some("")).is_err());
        assert!(validate_code(Some(&"a".repeat(129))).is_err());
        assert!(validate_code(Some("abc&secret=1")).is_err());
        assert!(validate_code(Some("abc def")).is_err());
    }
}
