//! `POST /cgi-bin/stable_token`: the app's access token. Preferred over `/cgi-bin/token` because
//! it returns the same token while it is valid instead of invalidating the previous one on every
//! call, so a second fetch (another database, a takeover after a crash) breaks nothing.

use super::{check_errcode, classify_common, parse_json, post_json, url};
use crate::apps::App;
use crate::error::AuthError;
use serde_json::{json, Value};

/// WeChat advises reserving 512 characters for a token.
pub const MAX_TOKEN_LEN: usize = 512;
/// A token's lifetime as WeChat documents it; a longer one claimed by an answer is not believed
/// (a token cached for years on a hostile or broken answer would outlive its revocation).
pub const MAX_EXPIRES_IN: i64 = 7200;

/// A fetched token and its lifetime in seconds.
pub struct Fetched {
    pub token: String,
    /// Seconds, 1 to [`MAX_EXPIRES_IN`].
    pub expires_in: i64,
}

/// Fetches the token; `force` revokes the current one at WeChat (for use after a leak; WeChat
/// allows it 20 times a day, 30 s apart).
pub fn fetch(app: &App, force: bool) -> Result<Fetched, AuthError> {
    let body = json!({
        "grant_type": "client_credential",
        "appid": app.appid,
        "secret": app.secret,
        "force_refresh": force,
    });
    let response = post_json(app, url("/cgi-bin/stable_token", &[])?, &body)?;
    parse_json(&response.body).and_then(|answer| parse(&answer)).map_err(|e| e.for_app(app.default))
}

fn parse(answer: &Value) -> Result<Fetched, AuthError> {
    check_errcode(answer, classify_common)?;
    let token = answer
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_LEN && t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or(AuthError::WechatBadResponse("no usable access_token"))?;
    let expires_in = answer
        .get("expires_in")
        .and_then(Value::as_i64)
        .filter(|s| *s > 0)
        .ok_or(AuthError::WechatBadResponse("no usable expires_in"))?
        .min(MAX_EXPIRES_IN);
    Ok(Fetched { token: token.to_string(), expires_in })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_token_and_refuses_junk() {
        let ok = parse(&json!({"access_token": "85_abc", "expires_in": 7200})).unwrap();
        assert_eq!((ok.token.as_str(), ok.expires_in), ("85_abc", 7200));
        assert!(parse(&json!({"access_token": "85_abc"})).is_err());
        for hostile in [json!(0), json!(-7200), json!(1.5e300), json!("7200"), json!(u64::MAX)] {
            assert!(parse(&json!({"access_token": "85_abc", "expires_in": hostile})).is_err(), "{hostile}");
        }
        let long = parse(&json!({"access_token": "85_abc", "expires_in": i64::MAX})).unwrap();
        assert_eq!(long.expires_in, MAX_EXPIRES_IN, "capped at WeChat's documented lifetime");
        assert!(parse(&json!({"access_token": "x".repeat(513), "expires_in": 7200})).is_err());
        assert!(matches!(
            parse(&json!({"errcode": 40125, "errmsg": "invalid appsecret"})),
            Err(AuthError::WechatRejectedConfig(..))
        ));
    }
}
