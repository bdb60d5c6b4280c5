//! `GET /sns/jscode2session`: WeChat's login-code exchange, with its quirks (errors as HTTP 200,
//! a `text/plain` JSON body, one-use codes, optional `unionid`).
//!
//! The behaviour is chosen by the code itself, as dot-separated words; the last word is a free
//! nonce that makes each code unique:
//!
//! | code                         | answer                                                  |
//! |------------------------------|---------------------------------------------------------|
//! | `ok.<user>.<nonce>`          | success; openid derived from (appid, user), no unionid  |
//! | `union.<user>.<nonce>`       | success with a unionid derived from user                |
//! | `okzero.<user>.<nonce>`      | success that also carries `"errcode":0,"errmsg":"ok"`  |
//! | `slow.<ms>.<user>.<nonce>`   | waits `ms` milliseconds, then success                   |
//! | `slowunion.<ms>.<user>.<nonce>` | waits `ms` milliseconds, then success with a unionid |
//! | `invalid.<nonce>`            | 40029 invalid code                                      |
//! | `used.<nonce>`               | 40163 code been used                                    |
//! | `busy.<nonce>`               | -1 system error                                         |
//! | `ratelimit.<nonce>`          | 45011 minute quota                                      |
//! | `risky.<nonce>`              | 40226 code blocked                                      |
//! | `strerr.<nonce>`             | 40029 with `errcode` as a JSON string                   |
//! | `http500.<nonce>`            | HTTP 500                                                |
//! | `garbage.<nonce>`            | HTTP 200 with an HTML body                              |
//! | `huge.<nonce>`               | HTTP 200 with a 2 MiB JSON body                         |
//! | `redirect.<nonce>`           | HTTP 302 to another host                                |
//! | anything else                | 40029 invalid code                                      |
//!
//! A code that succeeded once answers 40163 ever after, as WeChat's do. A code belongs to the app
//! that made it: one whose nonce ends in `~<appid>` answers 40029 to any other app's credentials
//! (`crate::made_by_another`).

use crate::http::{Request, Response};
use crate::{ids, wechat_error, State};
use serde_json::json;
use std::time::Duration;

/// jscode2session answers JSON labelled as plain text.
const CONTENT_TYPE: &str = "text/plain";

pub fn jscode2session(state: &State, req: &Request) -> Response {
    if let Some((errcode, errmsg)) = state.config.check(req.param("appid"), req.param("secret")) {
        return wechat_error(CONTENT_TYPE, errcode, errmsg);
    }
    let check = [
        (req.param("js_code").is_none_or(str::is_empty), 41008, "missing code"),
        (req.param("grant_type") != Some("authorization_code"), 40002, "invalid grant_type"),
    ];
    if let Some((_, errcode, errmsg)) = check.iter().find(|(failed, _, _)| *failed) {
        return wechat_error(CONTENT_TYPE, *errcode, errmsg);
    }
    let (appid, code) = (req.param("appid").unwrap_or_default(), req.param("js_code").unwrap_or_default());
    if crate::made_by_another(code, appid) {
        return wechat_error(CONTENT_TYPE, 40029, "invalid code");
    }
    let words: Vec<&str> = code.split('.').collect();
    match words.as_slice() {
        ["ok", user, _] => success(state, appid, code, user, false, false),
        ["union", user, _] => success(state, appid, code, user, true, false),
        ["okzero", user, _] => success(state, appid, code, user, false, true),
        [slow @ ("slow" | "slowunion"), ms, user, _] => {
            let ms: u64 = ms.parse().unwrap_or(0).min(60_000);
            std::thread::sleep(Duration::from_millis(ms));
            success(state, appid, code, user, *slow == "slowunion", false)
        }
        ["used", _] => wechat_error(CONTENT_TYPE, 40163, "code been used"),
        ["busy", _] => wechat_error(CONTENT_TYPE, -1, "system error"),
        ["ratelimit", _] => {
            wechat_error(CONTENT_TYPE, 45011, "api minute-quota reach limit, must slower, retry next minute")
        }
        ["risky", _] => wechat_error(CONTENT_TYPE, 40226, "code blocked"),
        ["strerr", _] => Response::json(
            CONTENT_TYPE,
            &json!({"errcode": "40029", "errmsg": format!("invalid code, rid: {}", ids::rid())}),
        ),
        ["http500", _] => Response::raw(500, "text/html", "<html><body>502 Bad Gateway</body></html>"),
        ["garbage", _] => Response::raw(200, "text/html", "<html><body>系统繁忙</body></html>"),
        ["huge", _] => {
            let padding = "x".repeat(2 * 1024 * 1024);
            Response::json(CONTENT_TYPE, &json!({"openid": "ohuge", "session_key": "k", "padding": padding}))
        }
        ["redirect", _] => {
            let mut response = Response::raw(302, "text/html", "");
            response.headers.push(("Location", "http://198.51.100.1/sns/jscode2session".to_string()));
            response
        }
        _ => wechat_error(CONTENT_TYPE, 40029, "invalid code"),
    }
}

fn success(state: &State, appid: &str, code: &str, user: &str, with_unionid: bool, with_errcode: bool) -> Response {
    if !state.used_codes.lock().unwrap().insert(code.to_string()) {
        return wechat_error(CONTENT_TYPE, 40163, "code been used");
    }
    let session_key = ids::session_key();
    state.session_keys.lock().unwrap().push(session_key.clone());
    let mut body = json!({
        "session_key": session_key,
        "openid": ids::openid(appid, user),
    });
    if with_unionid {
        body["unionid"] = json!(ids::unionid(user));
    }
    if with_errcode {
        body["errcode"] = json!(0);
        body["errmsg"] = json!("ok");
    }
    Response::json(CONTENT_TYPE, &body)
}
