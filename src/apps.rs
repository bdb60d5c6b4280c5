//! The WeChat apps this database signs people in from: the default mini program
//! (`auth_wechat.appid` and `auth_wechat.secret`, as before there were several) and those of
//! `auth_wechat.apps`, a JSON array of `{"appid", "secret", "type"}` kept as secret as the
//! signing keys. A call names its app by appid (none: the default mini program); WeChat's answers
//! (openids, access tokens) are per app, and so are the access-token cache, the bulkhead and the
//! breaker.
//!
//! The array is parsed and checked once per backend and value, when an app is looked up: an error
//! names the setting and the app by position (and appid, which is public), never a secret. As with
//! the signing keys, nothing is checked when the value is set: a setting's check failure makes
//! PostgreSQL log the rejected value.

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

thread_local! {
    static PARSED: RefCell<Option<(CString, Rc<Vec<App>>)>> = const { RefCell::new(None) };
}

/// The app a call names: `None` is the default mini program; an appid must be the default's or one
/// of `auth_wechat.apps` (400 `validation_failed` otherwise, before WeChat is called).
pub fn resolve(appid: Option<&str>) -> Result<App, AuthError> {
    let configured = configured()?;
    let default_appid = gucs::appid_if_set();
    match appid {
        None => default(),
        Some(appid) if default_appid.as_deref() == Some(appid) => default(),
        Some(appid) => configured
            .iter()
            .find(|app| app.appid == appid)
            .cloned()
            .ok_or(AuthError::InvalidInput("appid is not one of this database's WeChat apps")),
    }
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

/// The apps of `auth_wechat.apps`, parsed and checked (an empty list when it is not set).
fn configured() -> Result<Rc<Vec<App>>, AuthError> {
    let Some(value) = gucs::apps() else {
        return Ok(Rc::new(Vec::new()));
    };
    if let Some(cached) = PARSED.with(|p| p.borrow().as_ref().filter(|(v, _)| *v == value).map(|(_, a)| Rc::clone(a))) {
        return Ok(cached);
    }
    let text = value.to_str().map_err(|_| invalid("it is not UTF-8"))?;
    let parsed = Rc::new(parse(text, gucs::appid_if_set().as_deref())?);
    PARSED.with(|p| *p.borrow_mut() = Some((value, Rc::clone(&parsed))));
    Ok(parsed)
}

fn invalid(why: impl Into<String>) -> AuthError {
    AuthError::InvalidSetting(SETTING, why.into())
}

/// Parses the array. `default_appid` (that of `auth_wechat.appid`) may not be listed again.
fn parse(value: &str, default_appid: Option<&str>) -> Result<Vec<App>, AuthError> {
    let entries: Vec<Map<String, Value>> = serde_json::from_str(value)
        .map_err(|_| invalid("it must be a JSON array of {\"appid\", \"secret\", \"type\"} objects"))?;
    let mut apps: Vec<App> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let appid = entry.get("appid").and_then(Value::as_str).unwrap_or_default();
        let name = if appid.is_empty() { format!("app {}", index + 1) } else { format!("app {} ({appid})", index + 1) };
        let app = parse_one(entry, appid).map_err(|why| invalid(format!("{name}: {why}")))?;
        if default_appid == Some(app.appid.as_str()) || apps.iter().any(|other| other.appid == app.appid) {
            return Err(invalid(format!("{name}: the appid is configured twice")));
        }
        apps.push(app);
    }
    Ok(apps)
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
        let apps = parse(&value.to_string(), Some("wx0")).unwrap();
        let kinds: Vec<Kind> = apps.iter().map(|app| app.kind).collect();
        assert_eq!(kinds, [Kind::MiniProgram, Kind::OfficialAccount, Kind::Website, Kind::MobileApp]);
        assert!(apps.iter().all(|app| !app.default && app.secret.starts_with('s')));
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
            let message = parse(&value.to_string(), Some("wx0")).expect_err(expected).message();
            assert!(message.contains(SETTING) && message.contains(expected), "{message}");
            assert!(!message.contains(secret), "{message}");
        }
    }
}
