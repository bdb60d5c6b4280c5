//! `POST /wxa/business/getuserphonenumber?access_token=`: the phone-button code exchange.
//!
//! Phone codes are their own namespace: `phone.<country code>.<number>.<nonce>` answers that
//! number once; anything else (a `wx.login()` code included), any reuse, and a code of another
//! app (a nonce `…~<appid>`, traded with a token of another appid: see `crate::made_by_another`)
//! answer 40029.

use crate::http::{Request, Response};
use crate::{token, wechat_error, State};
use serde_json::json;
use std::time::{SystemTime, UNIX_EPOCH};

const JSON: &str = "application/json; encoding=utf-8";

pub fn get_user_phone_number(state: &State, req: &Request) -> Response {
    let (body, appid) = match token::checked_json_body(state, req) {
        Ok(checked) => checked,
        Err(refusal) => return refusal,
    };
    let code = body.get("code").and_then(|c| c.as_str()).unwrap_or_default();
    if crate::made_by_another(code, &appid) {
        return wechat_error(JSON, 40029, "invalid code");
    }
    let words: Vec<&str> = code.split('.').collect();
    let ["phone", country, number, _] = words.as_slice() else {
        return wechat_error(JSON, 40029, "invalid code");
    };
    if !state.used_codes.lock().unwrap().insert(code.to_string()) {
        return wechat_error(JSON, 40029, "invalid code");
    }
    let full = if *country == "86" { number.to_string() } else { format!("+{country}{number}") };
    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    Response::json(
        JSON,
        &json!({
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                "phoneNumber": full,
                "purePhoneNumber": number,
                "countryCode": country,
                "watermark": {"timestamp": timestamp, "appid": appid},
            }
        }),
    )
}
