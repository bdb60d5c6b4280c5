//! The WeChat apps this database signs people in from: the default mini program
//! (`auth_wechat.appid` and `auth_wechat.secret`, as before there were several) and those of
//! `auth_wechat.apps`, a JSON array of `{"appid", "secret", "type"}` kept as secret as the
//! signing keys. A call names its app by appid (none: the default mini program); WeChat's answers
//! (openids, access tokens) are per app, and so are the access-token cache, the bulkhead and the
//! breaker.
//!
//! The array is parsed and checked once per backend and value, when an app is looked up: an error
//! names the setting and the app by position (and appid, which is public), never a secret. One bad
//! app does not stop the others: an entry that cannot be used refuses only the calls for its own
//! appid, a value that is not a JSON array refuses only the calls that name an app of the list, and
//! the default mini program never needs the list at all. As with the signing keys, nothing is
//! checked when the value is set (a setting's check failure makes PostgreSQL log the rejected
//! value): `auth.wechat_check_settings()` reports every problem at once (`problems`).

use crate::error::AuthError;
use crate::gucs;
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::ffi::CString;
use std::rc::Rc;

const SETTING: &str = "auth_wechat.apps";
/// appids are `wx` and 16 hexadecimal digits; undocumented, so allow room.
const MAX_APPID_LEN: usize = 64;

/// What kind of WeChat app, which decides how its codes are traded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `jscode2session` (`wx.login()`); identities `wechat_mini`.
    MiniProgram,
    /// An official account's web authorisation (H5 inside WeChat); `sns/oauth2/access_token`.
    OfficialAccount,
    /// A website's QR sign-in (Open Platform); `sns/oauth2/access_token`.
    Website,
    /// A mobile app's WeChat sign-in (Open Platform); `sns/oauth2/access_token`.
    MobileApp,
}

impl Kind {
    /// The provider of this kind's identities in `auth.identities` (and `app_metadata`): every mini
    /// program's is MemFire's `wechat_mini`; openids differ per app, so they never collide.
    pub fn provider(self) -> &'static str {
        match self {
            Kind::MiniProgram => "wechat_mini",
            Kind::OfficialAccount => "wechat_official",
            Kind::Website => "wechat_web",
            Kind::MobileApp => "wechat_app",
        }
    }

    fn parse(name: &str) -> Option<Kind> {
        match name {
            "miniprogram" => Some(Kind::MiniProgram),
            "official_account" => Some(Kind::OfficialAccount),
            "website" => Some(Kind::Website),
            "mobile_app" => Some(Kind::MobileApp),
            _ => None,
        }
    }
}

/// One app: its credentials and kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct App {
    pub appid: String,
    pub secret: String,
    pub kind: Kind,
    /// The default mini program (`auth_wechat.appid`), whose identity MemFire's `wechat_id` and
    /// `wechat_unionid` columns describe.
    pub default: bool,
}

/// What `auth_wechat.apps` holds: each entry as read, or why the value as a whole cannot be.
struct Listed {
    entries: Vec<Entry>,
    /// Why the value is not a JSON array of objects at all.
    unreadable: Option<String>,
}

/// One entry: a usable app, or why it is not (with its appid, when that much could be read).
enum Entry {
    App(App),
    Broken { appid: Option<String>, why: String },
}

thread_local! {
    static PARSED: RefCell<Option<(CString, Rc<Listed>)>> = const { RefCell::new(None) };
}

/// The app a call names: `None` is the default mini program; an appid must be the default's or one
/// of `auth_wechat.apps` (400 `validation_failed` otherwise, before WeChat is called). An app
/// whose entry cannot be used is refused (500 `configuration_invalid`, naming the entry), and so
/// is every app of the list when the value cannot be read at all; the default one never is.
pub fn resolve(appid: Option<&str>) -> Result<App, AuthError> {
    let default_appid = gucs::appid_if_set();
    let appid = match appid {
        None => return default(),
        Some(appid) if default_appid.as_deref() == Some(appid) => return default(),
        Some(appid) => appid,
    };
    let listed = configured();
    if let Some(why) = &listed.unreadable {
        return Err(invalid(why.clone()));
    }
    let mut unnamed = Vec::new();
    for entry in &listed.entries {
        match entry {
            Entry::App(app) if app.appid == appid => return Ok(app.clone()),
            Entry::Broken { appid: Some(broken), why } if broken == appid => return Err(invalid(why.clone())),
            Entry::Broken { appid: None, why } => unnamed.push(why.as_str()),
            _ => {}
        }
    }
    // It may be an app whose entry is too broken to name it.
    match unnamed.as_slice() {
        [] => Err(AuthError::InvalidInput("appid is not one of this database's WeChat apps")),
        whys => Err(invalid(whys.join("; "))),
    }
}

/// Every problem of `auth_wechat.apps` (none when it is unset or sound), as its errors word them.
pub fn problems() -> Vec<String> {
    let listed = configured();
    let entries = listed.entries.iter().filter_map(|entry| match entry {
        Entry::Broken { why, .. } => Some(why.clone()),
        Entry::App(_) => None,
    });
    listed.unreadable.iter().cloned().chain(entries).collect()
}

/// The mini program a call names (none: the default one); another kind of app is refused.
pub fn mini_program(appid: Option<&str>) -> Result<App, AuthError> {
    let app = resolve(appid)?;
    if app.kind != Kind::MiniProgram {
        return Err(AuthError::InvalidInput(
            "appid is not a mini program's (web authorisation: the wechat_oauth_ functions)",
        ));
    }
    Ok(app)
}

/// The app of a web-authorisation call (an official account, a website, a mobile app): named, and
/// not a mini program.
pub fn web(appid: Option<&str>) -> Result<App, AuthError> {
    let appid =
        appid.ok_or(AuthError::InvalidInput("appid is required: the official account, website or app of the code"))?;
    let app = resolve(Some(appid))?;
    if app.kind == Kind::MiniProgram {
        return Err(AuthError::InvalidInput(
            "appid is a mini program's (wx.login() codes: wechat_sign_in, wechat_bind_account)",
        ));
    }
    Ok(app)
}

/// The default mini program of `auth_wechat.appid` and `auth_wechat.secret`.
fn default() -> Result<App, AuthError> {
    Ok(App { appid: gucs::appid()?, secret: gucs::secret()?, kind: Kind::MiniProgram, default: true })
}

/// The entries of `auth_wechat.apps`, parsed and checked (none when it is not set).
fn configured() -> Rc<Listed> {
    let Some(value) = gucs::apps() else {
        return Rc::new(Listed { entries: Vec::new(), unreadable: None });
    };
    if let Some(cached) = PARSED.with(|p| p.borrow().as_ref().filter(|(v, _)| *v == value).map(|(_, a)| Rc::clone(a))) {
        return cached;
    }
    let parsed = Rc::new(match value.to_str() {
        Ok(text) => parse(text, gucs::appid_if_set().as_deref()),
        Err(_) => Listed { entries: Vec::new(), unreadable: Some("it is not UTF-8".into()) },
    });
    PARSED.with(|p| *p.borrow_mut() = Some((value, Rc::clone(&parsed))));
    parsed
}

fn invalid(why: impl Into<String>) -> AuthError {
    AuthError::InvalidSetting(SETTING, why.into())
}

/// Parses the array. `default_appid` (that of `auth_wechat.appid`) may not be listed again, nor
/// may any appid twice: each such entry is broken.
fn parse(value: &str, default_appid: Option<&str>) -> Listed {
    let Ok(items) = serde_json::from_str::<Vec<Value>>(value) else {
        return Listed {
            entries: Vec::new(),
            unreadable: Some("it must be a JSON array of {\"appid\", \"secret\", \"type\"} objects".into()),
        };
    };
    let appid_of =
        |item: &Value| item.get("appid").and_then(Value::as_str).filter(|a| !a.is_empty()).map(str::to_string);
    let entries = items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let appid = appid_of(item);
            let name = match &appid {
                Some(appid) => format!("app {} ({appid})", index + 1),
                None => format!("app {}", index + 1),
            };
            let twice = appid.as_deref().is_some_and(|appid| {
                default_appid == Some(appid)
                    || items.iter().filter(|other| appid_of(other).as_deref() == Some(appid)).count() > 1
            });
            let checked = match item.as_object() {
                _ if twice => Err("the appid is configured twice".to_string()),
                Some(entry) => parse_one(entry, appid.as_deref().unwrap_or_default()),
                None => Err("it must be a {\"appid\", \"secret\", \"type\"} object".to_string()),
            };
            match checked {
                Ok(app) => Entry::App(app),
                Err(why) => Entry::Broken { appid, why: format!("{name}: {why}") },
            }
        })
        .collect();
    Listed { entries, unreadable: None }
}

fn parse_one(entry: &Map<String, Value>, appid: &str) -> Result<App, String> {
    if appid.is_empty() || appid.len() > MAX_APPID_LEN || !appid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err("appid must be a WeChat appid (letters and digits)".into());
    }
    let secret = match entry.get("secret") {
        Some(Value::String(secret)) if !secret.is_empty() => secret.clone(),
        _ => return Err("secret must be a non-empty string".into()),
    };
    let kind = entry
        .get("type")
        .and_then(Value::as_str)
        .and_then(Kind::parse)
        .ok_or("type must be \"miniprogram\", \"official_account\", \"website\" or \"mobile_app\"")?;
    if let Some(unknown) = entry.keys().find(|key| !["appid", "secret", "type"].contains(&key.as_str())) {
        return Err(format!("{unknown:?} is not a member of an app"));
    }
    Ok(App { appid: appid.to_string(), secret, kind, default: false })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_provider_is_in_the_index_predicate() {
        let schema = include_str!("schema.rs");
        let listed = crate::identity::wechat_providers_sql!();
        assert!(schema.contains(listed), "src/schema.rs's index predicate is not {listed}");
        for kind in [Kind::MiniProgram, Kind::OfficialAccount, Kind::Website, Kind::MobileApp] {
            assert!(listed.contains(&format!("'{}'", kind.provider())), "{kind:?}");
        }
        assert_eq!(Kind::MiniProgram.provider(), crate::identity::PROVIDER);
    }

    #[test]
    fn parses_every_kind() {
        let value = json!([
            {"appid": "wx1", "secret": "s1", "type": "miniprogram"},
            {"appid": "wx2", "secret": "s2", "type": "official_account"},
            {"appid": "wx3", "secret": "s3", "type": "website"},
            {"appid": "wx4", "secret": "s4", "type": "mobile_app"},
        ]);
        let listed = parse(&value.to_string(), Some("wx0"));
        let apps: Vec<&App> = listed
            .entries
            .iter()
            .map(|entry| match entry {
                Entry::App(app) => app,
                Entry::Broken { why, .. } => panic!("{why}"),
            })
            .collect();
        let kinds: Vec<Kind> = apps.iter().map(|app| app.kind).collect();
        assert_eq!(kinds, [Kind::MiniProgram, Kind::OfficialAccount, Kind::Website, Kind::MobileApp]);
        assert!(apps.iter().all(|app| !app.default && app.secret.starts_with('s')));
    }

    #[test]
    fn a_bad_entry_refuses_only_its_own_app() {
        let value = json!([
            {"appid": "wx1", "secret": "s1", "type": "miniprogram"},
            {"appid": "wx2", "secret": "", "type": "website"},
            {"secret": "s3", "type": "website"},
        ]);
        let listed = parse(&value.to_string(), Some("wx0"));
        assert!(matches!(&listed.entries[0], Entry::App(app) if app.appid == "wx1"));
        assert!(matches!(&listed.entries[1], Entry::Broken { appid: Some(a), .. } if a == "wx2"));
        assert!(matches!(&listed.entries[2], Entry::Broken { appid: None, .. }));
        assert!(parse("[{\"appid\": \"wx1\"", None).unreadable.is_some(), "a truncated value");
    }

    #[test]
    fn errors_name_the_setting_and_the_app_never_a_secret() {
        let secret = "a-very-secret-value";
        for (value, expected) in [
            (json!({"appid": "wx1"}), "JSON array"),
            (
                json!([{"appid": "wx1", "secret": secret, "type": "miniprogram"}, {"appid": "wx1", "secret": secret, "type": "website"}]),
                "app 2 (wx1): the appid is configured twice",
            ),
            (
                json!([{"appid": "wx1", "secret": secret, "type": "miniprogram"}, {"appid": "wx1", "secret": secret, "type": "website"}]),
                "app 1 (wx1): the appid is configured twice",
            ),
            (
                json!([{"appid": "wx0", "secret": secret, "type": "miniprogram"}]),
                "app 1 (wx0): the appid is configured twice",
            ),
            (json!([{"appid": "wx1", "secret": secret, "type": "game"}]), "app 1 (wx1): type must be"),
            (json!([{"appid": "wx1", "secret": "", "type": "website"}]), "app 1 (wx1): secret must be"),
            (json!([{"secret": secret, "type": "website"}]), "app 1: appid must be"),
            (
                json!([{"appid": "wx1", "secret": secret, "type": "website", "token": secret}]),
                "\"token\" is not a member",
            ),
        ] {
            let listed = parse(&value.to_string(), Some("wx0"));
            let whys: Vec<String> = listed
                .unreadable
                .iter()
                .cloned()
                .chain(listed.entries.iter().filter_map(|entry| match entry {
                    Entry::Broken { why, .. } => Some(why.clone()),
                    Entry::App(_) => None,
                }))
                .collect();
            let message = invalid(whys.join("; ")).message();
            assert!(message.contains(SETTING) && message.contains(expected), "{message}");
            assert!(!message.contains(secret), "{message}");
        }
    }
}
