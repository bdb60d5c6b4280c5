//! One user as an import source describes them, in the form every source is read into
//! (`Record`), and the rules for the values every source shares: phone numbers, emails,
//! timestamps and password hashes.
//!
//! Nothing here touches the database: a source's reader (`leancloud`, `uni_id`, `memfire`) turns
//! one exported record into a `Record` or the reason it cannot be imported, and `super` writes it.

use crate::apps::App;
use crate::gucs::PhoneFormat;
use serde_json::{Map, Value};

/// A user to import, in GoTrue's terms.
pub struct Record {
    /// The source's id of the record (LeanCloud's `objectId`, uni-id's `_id`, MemFire's `id`).
    pub source_id: String,
    /// The id the user must keep (MemFire's, which other tables refer to).
    pub keep_id: Option<pgrx::Uuid>,
    /// The person's openid of each mapped app.
    pub wechat: Vec<(App, String)>,
    pub unionid: Option<String>,
    /// The source's keys of WeChat apps `options.apps` does not map: reported, not imported.
    pub unmapped: Vec<String>,
    pub email: Option<Contact>,
    pub phone: Option<Contact>,
    /// Seconds since the Unix epoch.
    pub created_at: Option<f64>,
    pub banned: Banned,
    pub password: Password,
    /// What GoTrue keeps in `raw_user_meta_data` (`name` and `avatar_url` among it).
    pub user_metadata: Map<String, Value>,
    /// What the source had in `raw_app_meta_data` (MemFire's), or what grants rights (uni-id's
    /// `role` and the like, in `uni_id`).
    pub app_metadata: Map<String, Value>,
    /// Whether this record survives a merge with another of the same person (LeanCloud's
    /// `main_account`): its id becomes the user's `imported_from.id`, its profile wins.
    pub main: bool,
}

impl Record {
    /// A record with the source's id and nothing else yet.
    pub fn new(source_id: String) -> Record {
        Record {
            source_id,
            keep_id: None,
            wechat: Vec::new(),
            unionid: None,
            unmapped: Vec::new(),
            email: None,
            phone: None,
            created_at: None,
            banned: Banned::No,
            password: Password::None,
            user_metadata: Map::new(),
            app_metadata: Map::new(),
            main: false,
        }
    }

    /// Adds the unionid a source gives for the person; a second, different one is an error (a
    /// person has one).
    pub fn add_unionid(&mut self, unionid: Option<&str>) -> Result<(), Skip> {
        match (unionid.filter(|u| !u.is_empty()), &self.unionid) {
            (None, _) => Ok(()),
            (Some(new), Some(known)) if new != known => Err(Skip::Malformed("two different unionids".into())),
            (Some(new), _) => {
                self.unionid = Some(checked_wechat_id(new, "unionid")?.to_string());
                Ok(())
            }
        }
    }

    /// Adds the openid of an app key of the source: of the app `apps` maps it to, or reported as
    /// unmapped. The same app twice with two openids is an error.
    pub fn add_openid(&mut self, key: &str, app: Option<&App>, openid: &str) -> Result<(), Skip> {
        let openid = checked_wechat_id(openid, "openid")?;
        let Some(app) = app else {
            if !self.unmapped.iter().any(|k| k == key) {
                self.unmapped.push(key.to_string());
            }
            return Ok(());
        };
        match self.wechat.iter().find(|(known, _)| known.appid == app.appid) {
            Some((_, known)) if known != openid => Err(Skip::Malformed(format!("two openids of app {}", app.appid))),
            Some(_) => Ok(()),
            None => {
                self.wechat.push((app.clone(), openid.to_string()));
                Ok(())
            }
        }
    }

    /// Whether the record names the person at all: a WeChat openid, a phone or an email.
    pub fn has_identity(&self) -> bool {
        !self.wechat.is_empty() || self.email.is_some() || self.phone.is_some()
    }
}

/// A phone number or an email, and when it was confirmed (seconds since the epoch; `None`:
/// unconfirmed).
pub struct Contact {
    pub value: String,
    pub confirmed_at: Option<f64>,
}

/// Whether the user may sign in.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Banned {
    No,
    /// Banned with no end (uni-id's `status` 1): GoTrue's way, a ban a hundred years long.
    Forever,
    /// Until then (MemFire's `banned_until`), seconds since the epoch.
    Until(f64),
}

/// What becomes of the source's password.
#[derive(PartialEq, Debug)]
pub enum Password {
    None,
    /// A hash GoTrue verifies (bcrypt, argon2, Firebase scrypt), kept in `encrypted_password`.
    Kept(String),
    /// A hash GoTrue cannot verify (LeanCloud's SHA-512, uni-id's HMAC): the user is imported
    /// without it and must reset it.
    NotImported,
}

impl Password {
    /// A source's stored hash: kept if GoTrue can verify it.
    pub fn of_hash(hash: Option<&str>) -> Password {
        match hash.filter(|h| !h.is_empty()) {
            None => Password::None,
            Some(hash) if gotrue_verifies(hash) => Password::Kept(hash.to_string()),
            Some(_) => Password::NotImported,
        }
    }
}

/// Whether GoTrue's `crypto.CompareHashAndPassword` knows the hash's format: bcrypt (`$2a$`,
/// `$2b$`, `$2y$`), argon2 (`$argon2i$`, `$argon2id$`) and Firebase scrypt (`$fbscrypt$`).
fn gotrue_verifies(hash: &str) -> bool {
    ["$2a$", "$2b$", "$2y$", "$argon2i$", "$argon2id$", "$fbscrypt$"].iter().any(|p| hash.starts_with(p))
        && hash.len() <= 255
}

/// Why a record is not imported: a reason code and, for a malformed one, what is wrong.
#[derive(Debug, PartialEq)]
pub enum Skip {
    /// The record cannot be read: what is wrong with it.
    Malformed(String),
    /// No WeChat openid of a mapped app, no phone, no email.
    NoIdentity,
    /// The source says the account was closed (uni-id's `status` 4) or deleted (MemFire's
    /// `deleted_at`): its person signs up anew.
    Closed,
}

impl Skip {
    pub fn reason(&self) -> String {
        match self {
            Skip::Malformed(what) => format!("malformed: {what}"),
            Skip::NoIdentity => "no_identity".into(),
            Skip::Closed => "account_closed".into(),
        }
    }
}

/// An openid or unionid as WeChat writes them: 1 to 64 characters of base64url.
fn checked_wechat_id<'a>(id: &'a str, what: &str) -> Result<&'a str, Skip> {
    if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        Ok(id)
    } else {
        Err(Skip::Malformed(format!("{what} is not one")))
    }
}

/// A text member of an object, `None` when absent, null or empty; an error when of another type.
pub fn text<'a>(object: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, Skip> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Skip::Malformed(format!("{key} is not a string"))),
    }
}

/// A flag as sources write them: `true`, `"true"`, `1`.
pub fn flag(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true" || s == "1",
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}

/// An email as GoTrue keeps it: lower case, with one `@` and something either side.
pub fn email(value: &str, confirmed_at: Option<f64>) -> Result<Contact, Skip> {
    let value = value.trim().to_lowercase();
    match value.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && value.len() <= 255
                && !value.chars().any(char::is_whitespace) =>
        {
            Ok(Contact { value, confirmed_at })
        }
        _ => Err(Skip::Malformed("email is not an address".into())),
    }
}

/// A phone number in `format`, as `auth.wechat_bind_phone` stores one: sources write Chinese
/// mobile numbers bare (`13800138000`), with the country code (`8613800138000`) or as E.164
/// (`+86 138 0013 8000`). Another country's number keeps its country code either way.
pub fn phone(value: &str, confirmed_at: Option<f64>, format: PhoneFormat) -> Result<Contact, Skip> {
    let digits: String = value.chars().filter(|c| !matches!(c, ' ' | '-' | '(' | ')')).collect();
    let digits = digits.strip_prefix('+').unwrap_or(&digits);
    if !(5..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Skip::Malformed("phone is not a number".into()));
    }
    let chinese_mobile = |n: &str| n.len() == 11 && n.starts_with('1');
    let national =
        if chinese_mobile(digits) { Some(digits) } else { digits.strip_prefix("86").filter(|n| chinese_mobile(n)) };
    let value = match (national, format) {
        (Some(national), PhoneFormat::National) => national.to_string(),
        (Some(national), PhoneFormat::E164) => format!("86{national}"),
        (None, _) => digits.to_string(),
    };
    Ok(Contact { value, confirmed_at })
}

/// A timestamp as sources write them, in seconds since the Unix epoch: ISO 8601 (`2020-01-02T03:04:05.678Z`,
/// with `T` or a space, `Z` or an offset, as LeanCloud's export and Postgres' text write them) or
/// LeanCloud's `{"__type": "Date", "iso": …}`; uni-id's milliseconds are `millis`.
pub fn time(value: Option<&Value>, key: &str) -> Result<Option<f64>, Skip> {
    let text = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Object(o)) if o.get("__type").and_then(Value::as_str) == Some("Date") => {
            o.get("iso").and_then(Value::as_str).unwrap_or_default()
        }
        Some(_) => "",
    };
    parse_iso(text).map(Some).ok_or_else(|| Skip::Malformed(format!("{key} is not a timestamp")))
}

/// Milliseconds since the epoch (uni-id's dates), in seconds.
pub fn millis(value: Option<&Value>, key: &str) -> Result<Option<f64>, Skip> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|ms| (0.0..1e14).contains(ms))
            .map(|ms| Some(ms / 1000.0))
            .ok_or_else(|| Skip::Malformed(format!("{key} is not a date"))),
        Some(Value::Object(o)) if o.contains_key("$date") => match o.get("$date") {
            Some(Value::String(_)) => time(o.get("$date"), key),
            other => millis(other, key),
        },
        Some(_) => Err(Skip::Malformed(format!("{key} is not a date"))),
    }
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.fraction][Z|±HH[:MM]]` in seconds since the epoch.
fn parse_iso(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = text.get(from..from + len)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut fraction = 0.0;
    if let Some(after_dot) = rest.strip_prefix('.') {
        let len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return None;
        }
        fraction = format!("0.{}", &after_dot[..len]).parse().ok()?;
        rest = &after_dot[len..];
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let zone = rest[1..].replace(':', "");
            let (h, m) = match zone.len() {
                2 => (zone.parse::<i64>().ok()?, 0),
                4 => (zone[..2].parse::<i64>().ok()?, zone[2..].parse::<i64>().ok()?),
                _ => return None,
            };
            sign * (h * 3600 + m * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    Some((days * 86400 + hour * 3600 + minute * 60 + second - offset) as f64 + fraction)
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_as_sources_write_them() {
        assert_eq!(parse_iso("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_iso("2020-01-02T03:04:05.5Z"), Some(1_577_934_245.5));
        assert_eq!(parse_iso("2020-01-02 11:04:05+08"), Some(1_577_934_245.0));
        assert_eq!(parse_iso("2020-01-02T11:04:05+08:00"), Some(1_577_934_245.0));
        assert_eq!(parse_iso("2000-02-29T00:00:00Z"), Some(951_782_400.0));
        for bad in ["", "2020-13-01T00:00:00Z", "2020-01-02", "2020-01-02T03:04:05.Z", "2020-01-02T03:04:05 UTC"] {
            assert_eq!(parse_iso(bad), None, "{bad}");
        }
        let date = json!({"__type": "Date", "iso": "1970-01-01T00:00:01.000Z"});
        assert_eq!(time(Some(&date), "d"), Ok(Some(1.0)));
        assert_eq!(millis(Some(&json!(1500)), "d"), Ok(Some(1.5)));
        assert!(millis(Some(&json!("soon")), "d").is_err());
    }

    #[test]
    fn phones_in_either_format() {
        let p = |v, f| phone(v, None, f).map(|c| c.value);
        assert_eq!(p("13800138000", PhoneFormat::E164), Ok("8613800138000".into()));
        assert_eq!(p("+86 138-0013-8000", PhoneFormat::E164), Ok("8613800138000".into()));
        assert_eq!(p("8613800138000", PhoneFormat::National), Ok("13800138000".into()));
        assert_eq!(p("+14155550100", PhoneFormat::National), Ok("14155550100".into()));
        assert!(p("call me", PhoneFormat::E164).is_err());
    }

    #[test]
    fn only_hashes_gotrue_verifies_are_kept() {
        let bcrypt = "$2a$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234";
        assert_eq!(Password::of_hash(Some(bcrypt)), Password::Kept(bcrypt.into()));
        assert_eq!(
            Password::of_hash(Some("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")),
            Password::NotImported
        );
        assert_eq!(Password::of_hash(Some("")), Password::None);
        assert_eq!(email(" Ann@Example.COM ", None).map(|c| c.value), Ok("ann@example.com".into()));
        assert!(email("ann", None).is_err());
    }
}
