//! LeanCloud's `_User` records, as its data export writes them (one JSON object per line).
//!
//! A record's WeChat identities are in `authData`:
//! - `lc_weapp` `{openid, unionid?, session_key}`: the mini program (unmapped: the default one);
//! - `lc_weapp_union` `{openid, uid}`: the older form of the same, `uid` the unionid;
//! - `weixin` `{openid, unionid?, access_token}`: the mobile app;
//! - a key of any name with `platform: "weixin"`: one app each, `main_account` marking the record
//!   that survives a merge;
//! - `_<name>_unionid` `{uid}`: the person's unionid.
//!
//! Other `authData` entries are other providers', and are left out. `session_key` and
//! `access_token` are dropped with `authData`; LeanCloud's own password hash (salted SHA-512)
//! cannot be verified by GoTrue. Every other field of the record is kept in `user_metadata`.

use super::record::{self, Password, Record, Skip};
use super::Mapping;
use crate::gucs::PhoneFormat;
use serde_json::{Map, Value};

/// Fields that are read into the user's columns, or are LeanCloud's bookkeeping or secrets: not
/// copied into `user_metadata`.
const NOT_METADATA: [&str; 12] = [
    "objectId",
    "createdAt",
    "updatedAt",
    "email",
    "emailVerified",
    "mobilePhoneNumber",
    "mobilePhoneVerified",
    "authData",
    "password",
    "salt",
    "sessionToken",
    "ACL",
];

pub fn read(value: &Value, apps: &Mapping, phones: PhoneFormat) -> Result<Record, Skip> {
    let user = value.as_object().ok_or_else(|| Skip::Malformed("not a JSON object".into()))?;
    let id = record::text(user, "objectId")?.ok_or_else(|| Skip::Malformed("objectId is missing".into()))?;
    let mut record = Record::new(id.to_string());
    record.created_at = record::time(user.get("createdAt"), "createdAt")?;
    let updated_at = record::time(user.get("updatedAt"), "updatedAt")?.or(record.created_at);
    let verified_at = |key| record::flag(user.get(key)).then(|| updated_at.unwrap_or_else(super::now));
    if let Some(email) = record::text(user, "email")? {
        record.email = Some(record::email(email, verified_at("emailVerified"))?);
    }
    if let Some(phone) = record::text(user, "mobilePhoneNumber")? {
        record.phone = Some(record::phone(phone, verified_at("mobilePhoneVerified"), phones)?);
    }
    if record::text(user, "password")?.is_some() || record::text(user, "salt")?.is_some() {
        record.password = Password::of_hash(record::text(user, "password")?);
    }
    match user.get("authData") {
        None | Some(Value::Null) => {}
        Some(Value::Object(auth_data)) => read_auth_data(&mut record, auth_data, apps)?,
        Some(_) => return Err(Skip::Malformed("authData is not an object".into())),
    }
    for (key, value) in user {
        if !NOT_METADATA.contains(&key.as_str()) {
            record.user_metadata.insert(key.clone(), value.clone());
        }
    }
    super::profile(&mut record.user_metadata, &["nickname", "nickName"], &["avatar", "avatarUrl"]);
    Ok(record)
}

fn read_auth_data(record: &mut Record, auth_data: &Map<String, Value>, apps: &Mapping) -> Result<(), Skip> {
    for (key, entry) in auth_data {
        let Some(entry) = entry.as_object() else {
            return Err(Skip::Malformed(format!("authData.{key} is not an object")));
        };
        if key.len() > "__unionid".len() && key.starts_with('_') && key.ends_with("_unionid") {
            record.add_unionid(record::text(entry, "uid")?)?;
            continue;
        }
        let app = match key.as_str() {
            "lc_weapp" => apps.get(key).or(apps.default()),
            "lc_weapp_union" => apps.get(key).or(apps.get("lc_weapp")).or(apps.default()),
            "weixin" => apps.get(key),
            _ if entry.get("platform").and_then(Value::as_str) == Some("weixin") => apps.get(key),
            _ => continue,
        };
        let unionid = match key.as_str() {
            "lc_weapp_union" => record::text(entry, "uid")?,
            _ => record::text(entry, "unionid")?,
        };
        record.add_unionid(unionid)?;
        let openid =
            record::text(entry, "openid")?.ok_or_else(|| Skip::Malformed(format!("authData.{key} has no openid")))?;
        record.add_openid(key, app, openid)?;
        record.main |= record::flag(entry.get("main_account"));
    }
    Ok(())
}
