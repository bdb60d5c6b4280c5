//! uni-id's `uni-id-users` records, as uniCloud's export writes them (one JSON object per line,
//! `_id` possibly `{"$oid": …}`).
//!
//! `wx_unionid` is the person's unionid; `wx_openid` holds an openid per platform: `mp` (the mini
//! program; unmapped: the default one), `app`, `h5`, `web`, and per-app keys
//! `<platform>_<appid>`, which name their app when it is one of `auth_wechat.apps`. `status` 1 is
//! a ban, which stays; 4 a closed account, which is not imported. The password's HMAC cannot be
//! verified by GoTrue, and `token` and `third_party` (session keys, access tokens) are dropped.
//! What grants rights (`role`, `permission`, `dcloud_appid`, `realname_auth`) goes into
//! `app_metadata.uni_id`, which only the server writes: in `user_metadata` any user could give
//! themselves a role (`updateUser`). Every other field is kept in `user_metadata`.

use super::record::{self, Banned, Password, Record, Skip};
use super::Mapping;
use crate::gucs::PhoneFormat;
use serde_json::Value;

/// Fields that grant rights: kept in `app_metadata.uni_id`.
const GRANTS: [&str; 4] = ["role", "permission", "dcloud_appid", "realname_auth"];

/// Fields that are read into the user's columns, or are secrets: not copied into `user_metadata`.
const NOT_METADATA: [&str; 13] = [
    "_id",
    "wx_unionid",
    "wx_openid",
    "mobile",
    "mobile_confirmed",
    "email",
    "email_confirmed",
    "password",
    "password_secret_version",
    "token",
    "third_party",
    "register_date",
    "status",
];

pub fn read(value: &Value, apps: &Mapping, phones: PhoneFormat) -> Result<Record, Skip> {
    let user = value.as_object().ok_or_else(|| Skip::Malformed("not a JSON object".into()))?;
    let id = match user.get("_id") {
        Some(Value::String(id)) if !id.is_empty() => id.as_str(),
        Some(Value::Object(oid)) => oid.get("$oid").and_then(Value::as_str).unwrap_or_default(),
        _ => "",
    };
    if id.is_empty() {
        return Err(Skip::Malformed("_id is missing".into()));
    }
    let mut record = Record::new(id.to_string());
    match user.get("status").and_then(Value::as_i64) {
        Some(1) => record.banned = Banned::Forever,
        Some(4) => return Err(Skip::Closed),
        _ => {}
    }
    record.created_at = record::millis(user.get("register_date"), "register_date")?;
    let confirmed_at = |key| record::flag(user.get(key)).then(|| record.created_at.unwrap_or_else(super::now));
    let (email_confirmed, mobile_confirmed) = (confirmed_at("email_confirmed"), confirmed_at("mobile_confirmed"));
    if let Some(email) = record::text(user, "email")? {
        record.email = Some(record::email(email, email_confirmed)?);
    }
    if let Some(phone) = record::text(user, "mobile")? {
        record.phone = Some(record::phone(phone, mobile_confirmed, phones)?);
    }
    record.password = Password::of_hash(record::text(user, "password")?);
    record.add_unionid(record::text(user, "wx_unionid")?)?;
    match user.get("wx_openid") {
        None | Some(Value::Null) => {}
        Some(Value::Object(openids)) => {
            for (key, openid) in openids {
                let Some(openid) = openid.as_str().filter(|o| !o.is_empty()) else {
                    continue;
                };
                let app = apps.get(key).cloned().or_else(|| match key.split_once('_') {
                    Some((_, appid)) => apps.by_appid(appid),
                    None if key == "mp" => apps.default().cloned(),
                    None => None,
                });
                record.add_openid(key, app.as_ref(), openid)?;
            }
        }
        Some(_) => return Err(Skip::Malformed("wx_openid is not an object".into())),
    }
    let mut grants = serde_json::Map::new();
    for (key, value) in user {
        if GRANTS.contains(&key.as_str()) {
            grants.insert(key.clone(), value.clone());
        } else if !NOT_METADATA.contains(&key.as_str()) {
            record.user_metadata.insert(key.clone(), value.clone());
        }
    }
    if !grants.is_empty() {
        record.app_metadata.insert("uni_id".into(), Value::Object(grants));
    }
    super::profile(&mut record.user_metadata, &["nickname"], &["avatar", "avatar_file"]);
    Ok(record)
}
