//! Rows of MemFire Cloud's `auth.users` (`SELECT row_to_json(u) FROM auth.users u`, one per
//! line): GoTrue's columns and MemFire's `wechat_id` (the default mini program's openid, unless
//! `options.apps` maps `wechat_id`) and `wechat_unionid`.
//!
//! The user keeps their id, so everything that refers to it stays valid; its bcrypt password,
//! confirmations, metadata and ban come along. A soft-deleted row is not imported.

use super::record::{self, Banned, Password, Record, Skip};
use super::Mapping;
use crate::gucs::PhoneFormat;
use serde_json::Value;

pub fn read(value: &Value, apps: &Mapping, phones: PhoneFormat) -> Result<Record, Skip> {
    let user = value.as_object().ok_or_else(|| Skip::Malformed("not a JSON object".into()))?;
    let id = record::text(user, "id")?.ok_or_else(|| Skip::Malformed("id is missing".into()))?;
    let uuid = uuid::Uuid::parse_str(id).map_err(|_| Skip::Malformed("id is not a uuid".into()))?;
    if record::time(user.get("deleted_at"), "deleted_at")?.is_some() {
        return Err(Skip::Closed);
    }
    let mut record = Record::new(uuid.hyphenated().to_string());
    record.keep_id = Some(pgrx::Uuid::from_bytes(*uuid.as_bytes()));
    record.created_at = record::time(user.get("created_at"), "created_at")?;
    if let Some(email) = record::text(user, "email")? {
        record.email = Some(record::email(email, record::time(user.get("email_confirmed_at"), "email_confirmed_at")?)?);
    }
    if let Some(phone) = record::text(user, "phone")? {
        record.phone =
            Some(record::phone(phone, record::time(user.get("phone_confirmed_at"), "phone_confirmed_at")?, phones)?);
    }
    record.password = Password::of_hash(record::text(user, "encrypted_password")?);
    if let Some(until) = record::time(user.get("banned_until"), "banned_until")? {
        record.banned = Banned::Until(until);
    }
    record.add_unionid(record::text(user, "wechat_unionid")?)?;
    if let Some(openid) = record::text(user, "wechat_id")? {
        record.add_openid("wechat_id", apps.get("wechat_id").or(apps.default()), openid)?;
    }
    for (key, into) in
        [("raw_user_meta_data", &mut record.user_metadata), ("raw_app_meta_data", &mut record.app_metadata)]
    {
        match user.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Object(members)) => into.extend(members.clone()),
            Some(_) => return Err(Skip::Malformed(format!("{key} is not an object"))),
        }
    }
    record.app_metadata.remove("imported_from");
    Ok(record)
}
