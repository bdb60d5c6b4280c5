//! Web authorisation, as official accounts (H5 inside WeChat), websites (QR sign-in) and mobile
//! apps use it: `GET /sns/oauth2/access_token` trades a code for the user's openid and a user
//! access token, and `GET /sns/userinfo` reads the profile with that token.
//!
//! The code chooses the granted scope, as dot-separated words with a free nonce last:
//!
//! | code                        | answer                                                    |
//! |-----------------------------|-----------------------------------------------------------|
//! | `base.<user>.<nonce>`       | `snsapi_base`: the openid only, no unionid                |
//! | `userinfo.<user>.<nonce>`   | `snsapi_userinfo`: openid and unionid; userinfo allowed   |
//! | `login.<user>.<nonce>`      | `snsapi_login` (websites): openid and unionid; userinfo   |
//! | `used.<nonce>` / `busy.<nonce>` | 40163 / -1                                            |
//! | anything else               | 40029 invalid code                                        |
//!
//! A code answers once; then 40163. The profile's nickname is `<user>`'s, its avatar a URL of it.

use crate::http::{Request, Response};
use crate::{ids, wechat_error, State};
use serde_json::json;

const JSON: &str = "application/json; encoding=utf-8";
/// A user access token's lifetime, as WeChat's.
const USER_TOKEN_SECONDS: u64 = 7200;

/// A user access token handed out: whose, for which app, with which scope.
#[derive(Clone)]
pub struct UserToken {
    token: String,
    appid: String,
    openid: String,
    user: String,
    scope: &'static str,
}

pub fn access_token(state: &State, req: &Request) -> Response {
    if let Some((errcode, errmsg)) = state.config.check(req.param("appid"), req.param("secret")) {
        return wechat_error(JSON, errcode, errmsg);
    }
    if req.param("grant_type") != Some("authorization_code") {
        return wechat_error(JSON, 40002, "invalid grant_type");
    }
    let (appid, code) = (req.param("appid").unwrap_or_default(), req.param("code").unwrap_or_default());
    if crate::made_by_another(code, appid) {
        return wechat_error(JSON, 40029, "invalid code");
    }
    let words: Vec<&str> = code.split('.').collect();
    let (scope, user) = match words.as_slice() {
        ["base", user, _] => ("snsapi_base", *user),
        ["userinfo", user, _] => ("snsapi_userinfo", *user),
        ["login", user, _] => ("snsapi_login", *user),
        ["busy", _] => return wechat_error(JSON, -1, "system error"),
        ["used", _] => return wechat_error(JSON, 40163, "code been used"),
        _ => return wechat_error(JSON, 40029, "invalid code"),
    };
    if !state.used_codes.lock().unwrap().insert(code.to_string()) {
        return wechat_error(JSON, 40163, "code been used");
    }
    let openid = ids::openid(appid, user);
    let token = format!("u{}", ids::token_text());
    let issued =
        UserToken { token: token.clone(), appid: appid.into(), openid: openid.clone(), user: user.into(), scope };
    state.tokens.lock().unwrap().issue_user_token(issued);
    let mut body = json!({
        "access_token": token,
        "expires_in": USER_TOKEN_SECONDS,
        "refresh_token": format!("r{}", ids::token_text()),
        "openid": openid,
        "scope": scope,
    });
    if scope != "snsapi_base" {
        body["unionid"] = json!(ids::unionid(user));
    }
    Response::json(JSON, &body)
}

pub fn userinfo(state: &State, req: &Request) -> Response {
    let tokens = state.tokens.lock().unwrap();
    let Some(issued) = req.param("access_token").and_then(|t| tokens.user_token(t)) else {
        return wechat_error(JSON, 40001, "invalid credential, access_token is invalid or not latest");
    };
    if req.param("openid") != Some(issued.openid.as_str()) {
        return wechat_error(JSON, 40003, "invalid openid");
    }
    if issued.scope == "snsapi_base" {
        return wechat_error(JSON, 48001, "api unauthorized");
    }
    Response::json(
        JSON,
        &json!({
            "openid": issued.openid,
            "nickname": format!("{} 微信", issued.user),
            "sex": 0,
            "province": "",
            "city": "",
            "country": "",
            "headimgurl": format!("https://thirdwx.qlogo.cn/mmopen/{}/{}/132", issued.appid, issued.user),
            "privilege": [],
            "unionid": ids::unionid(&issued.user),
        }),
    )
}

impl UserToken {
    pub fn token(&self) -> &str {
        &self.token
    }
}
