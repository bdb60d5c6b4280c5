//! `auth.wechat_import_users(source, users, options)`: users of another backend (LeanCloud,
//! uni-id, MemFire Cloud) written into GoTrue's tables, so that each person is still themselves
//! at their next `wx.login()` or web authorisation.
//!
//! A batch is one call in the caller's transaction. Each record is read into a `Record` by its
//! source's reader, then placed by the rules of one person, one user (`identity`'s):
//!
//! - a record whose openids, unionid and kept id name no one becomes a new user, with GoTrue's
//!   identities for its apps (as sign-in writes them), email and phone;
//! - a record that names a user this source's import made (`app_metadata.imported_from`) is
//!   merged into them: records of one person (a shared unionid, or an openid of one app) become
//!   one user; LeanCloud's `main_account` record gives the user its id and profile;
//! - a record that names a user made otherwise (signed up, another source), or two users, is a
//!   conflict: nothing of it is written. So is an email or phone another user holds: only WeChat's
//!   ids merge, as only the unionid links at sign-in;
//! - a record already imported, with nothing new, is `unchanged`: a batch may run again.
//!
//! No WeChat call is made. The batch holds `auth.identities` in SHARE ROW EXCLUSIVE mode: sign-ins
//! and binds (which write identities) wait for it, and so does another import, so none of them
//! can write one person twice meanwhile; reads and refreshes go on. `options.dry_run` does
//! everything in a subtransaction and rolls it back: the answer is the one a real run gives.

mod leancloud;
mod memfire;
mod record;
mod uni_id;
mod write;

use crate::apps::{self, App};
use crate::audit::{self, Action};
use crate::error::AuthError;
use crate::identity::{self, WechatIdentity};
use crate::{gucs, ids, spi, subxact};
use pgrx::Uuid;
use record::{Password, Record, Skip};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use write::{Match, Via};

/// The sources an import reads, by the name `source` gives.
#[derive(Clone, Copy)]
enum Source {
    LeanCloud,
    UniId,
    MemFire,
}

impl Source {
    fn parse(name: Option<&str>) -> Result<Source, AuthError> {
        match name {
            Some("leancloud") => Ok(Source::LeanCloud),
            Some("uni-id") => Ok(Source::UniId),
            Some("memfire") => Ok(Source::MemFire),
            _ => Err(AuthError::InvalidInput("source must be 'leancloud', 'uni-id' or 'memfire'")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Source::LeanCloud => "leancloud",
            Source::UniId => "uni-id",
            Source::MemFire => "memfire",
        }
    }

    fn read(self, value: &Value, apps: &Mapping) -> Result<Record, Skip> {
        let phones = gucs::phone_format();
        match self {
            Source::LeanCloud => leancloud::read(value, apps, phones),
            Source::UniId => uni_id::read(value, apps, phones),
            Source::MemFire => memfire::read(value, apps, phones),
        }
    }
}

/// Which app each of a source's app keys is: `options.apps`, then what a reader may infer
/// without guessing (the default mini program for a mini program's key; the app a key names).
pub struct Mapping {
    keys: HashMap<String, App>,
    default: Option<App>,
}

impl Mapping {
    /// `options.apps`: each key's appid must be one of this database's apps (400 otherwise).
    fn parse(apps: Option<&Value>) -> Result<Mapping, AuthError> {
        let mut keys = HashMap::new();
        match apps {
            None | Some(Value::Null) => {}
            Some(Value::Object(members)) => {
                for (key, appid) in members {
                    let appid = appid.as_str().ok_or(AuthError::InvalidInput("options.apps maps keys to appids"))?;
                    keys.insert(key.clone(), apps::resolve(Some(appid))?);
                }
            }
            Some(_) => return Err(AuthError::InvalidInput("options.apps must be an object of appids")),
        }
        Ok(Mapping { keys, default: apps::resolve(None).ok() })
    }

    /// The app `options.apps` maps `key` to.
    pub fn get(&self, key: &str) -> Option<&App> {
        self.keys.get(key)
    }

    /// The default mini program, when it is configured.
    pub fn default(&self) -> Option<&App> {
        self.default.as_ref()
    }

    /// The app of an appid a key names, if it is one of this database's apps.
    pub fn by_appid(&self, appid: &str) -> Option<App> {
        apps::resolve(Some(appid)).ok()
    }
}

/// Now, in seconds since the epoch: when a confirmation a source does not date took place.
pub fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// GoTrue's profile members in `user_metadata`: `name` from the first of `names` a record has,
/// `avatar_url` from the first of `avatars` (a URL, or a file object with `url`), unless set.
pub fn profile(metadata: &mut Map<String, Value>, names: &[&str], avatars: &[&str]) {
    let first = |keys: &[&str], metadata: &Map<String, Value>| {
        keys.iter().find_map(|key| match metadata.get(*key) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Object(file)) => file.get("url").and_then(Value::as_str).map(str::to_string),
            _ => None,
        })
    };
    for (member, keys) in [("name", names), ("avatar_url", avatars)] {
        if !metadata.contains_key(member) {
            if let Some(value) = first(keys, metadata) {
                metadata.insert(member.to_string(), Value::String(value));
            }
        }
    }
}

/// What became of a record that was written or found written.
enum Placed {
    /// A new user.
    Imported,
    /// Into a user of another record of the same person.
    Merged,
    /// Imported before; something new written now (an app mapped since, say).
    Updated,
    Unchanged,
}

/// Why a record was not written, and the user in the way.
struct Conflict {
    reason: &'static str,
    user_id: Uuid,
}

/// The answer of one call.
#[derive(Default)]
struct Report {
    imported: u64,
    merged: u64,
    updated: u64,
    unchanged: u64,
    conflicts: Vec<Value>,
    skipped: Vec<Value>,
    password_not_imported: u64,
    /// Keys of WeChat apps that `options.apps` did not map, and how many records had each.
    unmapped: BTreeMap<String, u64>,
}

/// `auth.wechat_import_users(source, users, options)`.
pub fn import_users(source: Option<&str>, users: Option<Value>, options: Option<Value>) -> Result<Value, AuthError> {
    let source = Source::parse(source)?;
    let Some(Value::Array(users)) = users else {
        return Err(AuthError::InvalidInput("users must be a JSON array of records"));
    };
    let options = match options {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(options)) => options,
        Some(_) => return Err(AuthError::InvalidInput("options must be a JSON object")),
    };
    if options.keys().any(|key| key != "apps" && key != "dry_run") {
        return Err(AuthError::InvalidInput("options takes apps and dry_run"));
    }
    let dry_run = match options.get("dry_run") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(AuthError::InvalidInput("options.dry_run must be a boolean")),
    };
    let apps = Mapping::parse(options.get("apps"))?;
    spi::execute("LOCK TABLE auth.identities IN SHARE ROW EXCLUSIVE MODE", &[]);
    spi::fresh_generic_plans();
    let run = || import_all(source, &users, &apps);
    let report = if dry_run { subxact::undone(run) } else { run() };
    Ok(json!({
        "imported": report.imported,
        "merged": report.merged,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "conflicts": report.conflicts,
        "skipped": report.skipped,
        "password_not_imported": report.password_not_imported,
        "unmapped": report.unmapped,
        "dry_run": dry_run,
    }))
}

fn import_all(source: Source, users: &[Value], apps: &Mapping) -> Report {
    let mut report = Report::default();
    for (index, user) in users.iter().enumerate() {
        let record = match source.read(user, apps) {
            Ok(record) => record,
            Err(skip) => {
                report.skipped.push(json!({"index": index, "reason": skip.reason()}));
                continue;
            }
        };
        for key in &record.unmapped {
            *report.unmapped.entry(key.clone()).or_default() += 1;
        }
        if !record.has_identity() {
            report.skipped.push(json!({"index": index, "reason": Skip::NoIdentity.reason()}));
            continue;
        }
        match place(source, &record) {
            Ok(placed) => {
                *match placed {
                    Placed::Imported => &mut report.imported,
                    Placed::Merged => &mut report.merged,
                    Placed::Updated => &mut report.updated,
                    Placed::Unchanged => &mut report.unchanged,
                } += 1;
                if record.password == Password::NotImported {
                    report.password_not_imported += 1;
                }
            }
            Err(conflict) => report.conflicts.push(json!({
                "index": index,
                "id": record.source_id,
                "reason": conflict.reason,
                "user_id": ids::uuid_text(conflict.user_id),
            })),
        }
    }
    report
}

/// The user a record is, by what the database has (see the module's notes): `None` for a new
/// one.
fn target(source: Source, record: &Record, matches: &[Match]) -> Result<Option<Uuid>, Conflict> {
    let conflict = |reason, user_id| Err(Conflict { reason, user_id });
    // Without linking by unionid, a unionid alone never joins a user (as at sign-in); the user's
    // own unionid, found again with their openid or kept id, is no conflict.
    let named_otherwise = |user| matches.iter().any(|m| matches!(m.via, Via::Openid | Via::Id) && m.user_id == user);
    let mut target = None;
    for found in matches.iter().filter(|m| matches!(m.via, Via::Openid | Via::Unionid | Via::Id)) {
        let held = match found.via {
            Via::Openid => "openid_held",
            Via::Unionid => "unionid_held",
            _ => "id_held",
        };
        if !imported_by(source, found) || found.deleted {
            return conflict(held, found.user_id);
        }
        if found.via == Via::Unionid && !gucs::link_by_unionid() && !named_otherwise(found.user_id) {
            return conflict(held, found.user_id);
        }
        match target {
            None => target = Some(found.user_id),
            Some(user) if user != found.user_id => return conflict("names_two_users", found.user_id),
            Some(_) => {}
        }
    }
    // A kept id (MemFire's) cannot merge into another user: what refers to it would break.
    if let (Some(keep), Some(user)) = (record.keep_id, target) {
        if keep != user {
            return conflict("unionid_held", user);
        }
    }
    for found in matches.iter().filter(|m| matches!(m.via, Via::Email | Via::Phone)) {
        let taken = if found.via == Via::Email { "email_taken" } else { "phone_taken" };
        match target {
            Some(user) if user == found.user_id => {}
            // A record with no WeChat id imported before: found again by its email or phone.
            None if imported_by(source, found) && imported_ids(found).contains(&record.source_id.as_str()) => {
                target = Some(found.user_id);
            }
            _ => return conflict(taken, found.user_id),
        }
    }
    Ok(target)
}

/// Whether this source's import made the user found.
fn imported_by(source: Source, found: &Match) -> bool {
    found.imported_from.as_ref().and_then(|from| from.get("source")).and_then(Value::as_str) == Some(source.name())
}

/// The source ids of the records a user was made from: `imported_from.id`, then `merged`.
fn imported_ids(found: &Match) -> Vec<&str> {
    let from = found.imported_from.as_ref();
    let id = from.and_then(|f| f.get("id")).and_then(Value::as_str);
    let merged = from.and_then(|f| f.get("merged")).and_then(Value::as_array).into_iter().flatten();
    id.into_iter().chain(merged.filter_map(Value::as_str)).collect()
}

/// Whether `record` leads the user made from `ids` (the surviving record's first): a main record
/// not merged before takes the lead; one merged before keeps its place, so that two main records
/// of one person do not take turns at every run.
fn leads(ids: &[&str], record: &Record) -> bool {
    record.main
        && ids.first().is_none_or(|first| *first == record.source_id || !ids.contains(&record.source_id.as_str()))
}

/// `imported_from` of a user made from `ids` and now `record` too: a record that `leads` becomes
/// the survivor; another keeps its place, or joins at the end.
fn imported_from(source: Source, ids: &[&str], record: &Record, leads: bool) -> Value {
    let mut ids: Vec<&str> = ids.to_vec();
    if leads {
        ids.retain(|id| *id != record.source_id);
        ids.insert(0, &record.source_id);
    } else if !ids.contains(&record.source_id.as_str()) {
        ids.push(&record.source_id);
    }
    let mut from = json!({"source": source.name(), "id": ids[0]});
    if ids.len() > 1 {
        from["merged"] = json!(ids[1..]);
    }
    from
}

/// Writes a record: a new user, or what it adds to the user it is.
fn place(source: Source, record: &Record) -> Result<Placed, Conflict> {
    let matches = write::matches(record);
    let target = target(source, record, &matches)?;
    let traits = Some(json!({"provider": "import", "source": source.name(), "id": record.source_id}));
    let Some(user_id) = target else {
        let user_id = record.keep_id.unwrap_or_else(ids::new_uuid);
        let mut app_metadata = record.app_metadata.clone();
        app_metadata.insert("imported_from".into(), imported_from(source, &[], record, record.main));
        let name = write::insert_user(record, user_id, Value::Object(app_metadata));
        write::contact_identities(user_id);
        for (app, openid) in &record.wechat {
            identity::attach(&WechatIdentity::of(app, openid, record.unionid.as_deref(), None), user_id, false);
        }
        audit::record(&[Action::SignedUp], user_id, &name, traits);
        return Ok(Placed::Imported);
    };
    let found = matches.iter().find(|m| m.user_id == user_id).expect("the target is one of the matches");
    let known_ids = imported_ids(found);
    let was_imported = known_ids.contains(&record.source_id.as_str());
    let leads = leads(&known_ids, record);
    let filled = write::fill_user(record, user_id, imported_from(source, &known_ids, record, leads), leads);
    let mut changed = filled.is_some() | write::contact_identities(user_id);
    for (app, openid) in &record.wechat {
        let held = matches.iter().any(|m| m.via == Via::Openid && m.openid.as_deref() == Some(openid.as_str()));
        if !held {
            identity::attach(&WechatIdentity::of(app, openid, record.unionid.as_deref(), None), user_id, false);
            changed = true;
        }
    }
    if changed {
        let name = filled.unwrap_or_else(|| crate::user::actor_name(user_id));
        audit::record(&[Action::UserModified], user_id, &name, traits);
    }
    Ok(match (was_imported, changed) {
        (false, _) => Placed::Merged,
        (true, true) => Placed::Updated,
        (true, false) => Placed::Unchanged,
    })
}
