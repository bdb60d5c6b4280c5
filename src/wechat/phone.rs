//! `getuserphonenumber`: trades the phone button's code for the user's confirmed number.

use super::{check_errcode, classify_common, parse_json, post_json, url};
use crate::apps::App;
use crate::error::{AuthError, CodeKind, WechatAnswer};
use serde_json::{json, Value};

/// A confirmed phone number as WeChat gives it: digits only.
#[derive(Debug, PartialEq, Eq)]
pub struct Phone {
    pub country_code: String,
    pub national: String,
}

/// The number of a phone-button `code`, asked with the app's access token.
pub fn phone_number(app: &App, code: &str, access_token: &str) -> Result<Phone, AuthError> {
    let url = url("/wxa/business/getuserphonenumber", &[("access_token", access_token)])?;
    let response = post_json(app, url, &json!({"code": code}))?;
    parse_json(&response.body).and_then(|answer| parse(&answer)).map_err(|e| e.for_app(app.default))
}

fn classify(answer: WechatAnswer) -> AuthError {
    match answer.errcode {
        40029 | 40163 => AuthError::InvalidCode(CodeKind::Phone, answer),
        _ => classify_common(answer),
    }
}

fn parse(answer: &Value) -> Result<Phone, AuthError> {
    check_errcode(answer, classify)?;
    let info = answer.get("phone_info").ok_or(AuthError::WechatBadResponse("no phone_info"))?;
    // countryCode is a string in answers and a number in the documentation.
    let country_code = match info.get("countryCode") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(AuthError::WechatBadResponse("no countryCode")),
    };
    let national = info.get("purePhoneNumber").and_then(Value::as_str).unwrap_or_default().to_string();
    let digits = |s: &str, max: usize| !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(&country_code, 4) || !digits(&national, 15) {
        return Err(AuthError::WechatBadResponse("an unusable phone number"));
    }
    Ok(Phone { country_code, national })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_number_with_a_string_or_numeric_country_code() {
        let info = |cc: Value| json!({"errcode": 0, "errmsg": "ok", "phone_info": {"phoneNumber": "13800138000", "purePhoneNumber": "13800138000", "countryCode": cc}});
        let expected = Phone { country_code: "86".into(), national: "13800138000".into() };
        assert_eq!(parse(&info(json!("86"))).unwrap(), expected);
        assert_eq!(parse(&info(json!(86))).unwrap(), expected);
        assert!(
            parse(&json!({"errcode": 0, "phone_info": {"purePhoneNumber": "+86 138", "countryCode": "86"}})).is_err()
        );
        assert!(matches!(
            parse(&json!({"errcode": 40029, "errmsg": "invalid code"})),
            Err(AuthError::InvalidCode(CodeKind::Phone, _))
        ));
    }
}
