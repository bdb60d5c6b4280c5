//! WeChat's server API: what every endpoint shares (URLs, the `errcode` convention, error
//! classification) and one module per endpoint.
//!
//! Bodies are parsed from raw bytes whatever the Content-Type (jscode2session labels its JSON
//! `text/plain`), errors arrive as HTTP 200 with an `errcode` that may be a number or a numeric
//! string, and success may or may not carry `errcode: 0`.

pub mod login;
pub mod oauth;
pub mod phone;
pub mod qrcode;
pub mod token;

use crate::apps::App;
use crate::bulkhead::{self, Outcome};
use crate::error::{AuthError, Credentials, WechatAnswer};
use crate::{gucs, http};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::Value;

/// Largest JSON answer accepted from WeChat; real ones are well under 1 KiB.
const JSON_BODY_LIMIT: u64 = 16 * 1024;

/// `<api_base><path>?k=v&...` with every value percent-encoded.
fn url(path: &str, query: &[(&str, &str)]) -> Result<String, AuthError> {
    let mut url = format!("{}{path}", gucs::api_base()?);
    for (i, (key, value)) in query.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(key);
        url.push('=');
        url.extend(utf8_percent_encode(value, NON_ALPHANUMERIC));
    }
    Ok(url)
}

fn transport_error(failure: http::Failure) -> AuthError {
    match failure {
        http::Failure::Timeout => AuthError::WechatTimeout,
        http::Failure::Unreachable => AuthError::WechatUnreachable,
        http::Failure::TooLarge => AuthError::WechatBadResponse("an oversized body"),
        http::Failure::Protocol => AuthError::WechatBadResponse("a broken HTTP exchange"),
    }
}

/// The body of a 200 answer; any other status is not WeChat's API speaking.
fn ok_body(response: http::Response) -> Result<http::Response, AuthError> {
    match response.status {
        200 => Ok(response),
        300..=399 => Err(AuthError::WechatBadResponse("a redirect (not followed)")),
        _ => Err(AuthError::WechatBadResponse("an HTTP error status")),
    }
}

/// What the bulkhead and the breaker count calls of `app` under: the API and the app, since
/// WeChat limits and fails per app.
pub fn upstream(app: &App) -> Result<String, AuthError> {
    Ok(format!("{} {}", gucs::api_base()?, app.appid))
}

/// Makes one HTTP call for `app` to WeChat inside the bulkhead and circuit breaker (see
/// `bulkhead`).
fn send(app: &App, call: impl FnOnce() -> Result<http::Response, http::Failure>) -> Result<http::Response, AuthError> {
    let admission =
        bulkhead::admit(&gucs::api_base()?, &upstream(app)?, crate::request::rate_limit_client().as_deref())?;
    let result = call();
    admission.finish(match result {
        Err(http::Failure::Timeout | http::Failure::Unreachable) => Outcome::Failed,
        _ => Outcome::Answered,
    });
    result.map_err(transport_error)
}

fn get_json(app: &App, url: String) -> Result<Value, AuthError> {
    let response = send(app, || http::get(url, gucs::timeout(), JSON_BODY_LIMIT))?;
    parse_json(&ok_body(response)?.body)
}

fn post_json(app: &App, url: String, body: &Value) -> Result<http::Response, AuthError> {
    post_json_limited(app, url, body, JSON_BODY_LIMIT)
}

fn post_json_limited(app: &App, url: String, body: &Value, limit: u64) -> Result<http::Response, AuthError> {
    let body = body.to_string().into_bytes();
    let response = send(app, || http::post_json(url, body, gucs::timeout(), limit))?;
    ok_body(response)
}

fn parse_json(body: &[u8]) -> Result<Value, AuthError> {
    serde_json::from_slice(body).map_err(|_| AuthError::WechatBadResponse("a body that is not JSON"))
}

/// Splits WeChat's error convention off an answer: `Ok` when `errcode` is absent or 0.
fn check_errcode(answer: &Value, classify: fn(WechatAnswer) -> AuthError) -> Result<(), AuthError> {
    let errcode = match answer.get("errcode") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) => n.as_i64().ok_or(AuthError::WechatBadResponse("a non-integer errcode"))?,
        Some(Value::String(s)) => {
            s.trim().parse().map_err(|_| AuthError::WechatBadResponse("a non-numeric errcode"))?
        }
        Some(_) => return Err(AuthError::WechatBadResponse("an errcode of the wrong type")),
    };
    if errcode == 0 {
        return Ok(());
    }
    let rid = answer.get("errmsg").and_then(Value::as_str).and_then(rid);
    Err(classify(WechatAnswer { errcode, rid }))
}

/// What every endpoint's errcode means, when the endpoint gives it no meaning of its own.
fn classify_common(answer: WechatAnswer) -> AuthError {
    match answer.errcode {
        40226 => AuthError::WechatBlocked(answer),
        45009 | 45011 => AuthError::WechatRateLimited(answer),
        -1 => AuthError::WechatBusy(answer),
        40013 | 40125 | 40164 | 41002 | 41004 | 48001 => AuthError::WechatRejectedConfig(answer, Credentials::Default),
        40001 | 40014 | 42001 => AuthError::WechatTokenRejected(answer),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errcode_is_a_number_or_a_string_and_absent_means_success() {
        assert_eq!(check_errcode(&json!({"openid": "o"}), classify_common), Ok(()));
        assert_eq!(check_errcode(&json!({"errcode": 0, "errmsg": "ok"}), classify_common), Ok(()));
        let busy = check_errcode(&json!({"errcode": "-1", "errmsg": "system error, rid: ab-cd"}), classify_common);
        assert_eq!(busy, Err(AuthError::WechatBusy(WechatAnswer { errcode: -1, rid: Some("ab-cd".into()) })));
        assert!(matches!(
            check_errcode(&json!({"errcode": 42001}), classify_common),
            Err(AuthError::WechatTokenRejected(_))
        ));
        assert!(matches!(
            check_errcode(&json!({"errcode": [1]}), classify_common),
            Err(AuthError::WechatBadResponse(_))
        ));
    }

    #[test]
    fn rid_takes_only_the_trace_id() {
        assert_eq!(rid("invalid code, rid: 6380622c-50076416-224b40b0"), Some("6380622c-50076416-224b40b0".into()));
        assert_eq!(rid("invalid code rid: abc secret=xyz"), Some("abc".into()));
        assert_eq!(rid("invalid code"), None);
    }
}
