//! One person, one user: which user a WeChat answer (an app's openid, and the person's unionid when
//! WeChat sends one) is, and what that writes.
//!
//! A person has one openid per app and, when the apps share an Open Platform account, one unionid
//! across them. Each app's openid is an identity of its user (`auth.identities`: `provider_id`
//! the openid, `identity_data.appid` the app). The default mini program's is also MemFire's
//! `auth.users.wechat_id` (with `wechat_unionid`), and a user that MemFire's data made may have
//! only that. The rules, all here:
//!
//! - an openid the database knows is its user's;
//! - a new openid whose unionid exactly one user holds (with `auth_wechat.link_by_unionid` on) is
//!   that user: the app's identity is added to them. Two holders name no one (409, nothing
//!   written). Anything else is a new user. Nothing but the unionid ever links;
//! - a unionid is recorded on a user only if no other user holds it: a second holder would make
//!   every later app of the person a conflict, for good;
//! - an openid its user unlinked is remembered with that user (`auth.users.wechat_unlinked`): its
//!   unionid does not link it back, and the new user made for it does not get the unionid;
//! - a bind attaches an openid to the signed-in user (refused when another user holds it, or the
//!   user holds another openid of the same app); an unlink removes one, never the last identity;
//!   an administrator moves one to another user, the remedy for a person split in two.
//!
//! Concurrent writers of one person queue on a lock of the openid and of the unionid
//! (`store::lock_value`), taken after WeChat has answered: each then finds what the others wrote.

use crate::apps::App;
use crate::audit::{self, Action};
use crate::error::AuthError;
use crate::spi::{latest_row, latest_rows, write_row};
use crate::user::actor_name_sql;
use crate::{gucs, ids, store};
use pgrx::spi::{SpiResult, SpiTupleTable};
use pgrx::{JsonB, Uuid};
use serde_json::Value;

/// The provider name MemFire uses for WeChat Mini Program identities (every mini program's).
pub const PROVIDER: &str = "wechat_mini";
/// Every provider of a WeChat identity, as a literal array for `concat!`: the same text as the
/// predicate of the index `auth.identities_wechat_unionid_idx` (src/schema.rs), so that the
/// planner can use it. `apps::Kind::provider` names one per kind of app.
macro_rules! wechat_providers_sql {
    () => {
        "ARRAY['wechat_mini', 'wechat_official', 'wechat_web', 'wechat_app']"
    };
}
pub(crate) use wechat_providers_sql;

/// One app's openid of a person, as WeChat answered for it.
pub struct WechatIdentity<'a> {
    pub provider: &'a str,
    pub appid: &'a str,
    pub openid: &'a str,
    pub unionid: Option<&'a str>,
    /// What WeChat's profile says (web authorisation with `snsapi_userinfo` or `snsapi_login`), as
    /// GoTrue keeps an OAuth identity's claims: `nickname`, `name`, `avatar_url`, `picture`.
    pub profile: Option<Value>,
    /// Whether the openid is also MemFire's `auth.users.wechat_id`: the default mini program's.
    pub memfire: bool,
}

impl<'a> WechatIdentity<'a> {
    /// The identity of `app`'s openid, as WeChat answered for it.
    pub fn of(app: &'a App, openid: &'a str, unionid: Option<&'a str>, profile: Option<Value>) -> Self {
        WechatIdentity {
            provider: app.kind.provider(),
            appid: &app.appid,
            openid,
            unionid,
            profile,
            memfire: app.default,
        }
    }

    /// `$1`–`$6` of the statements below: provider, openid, unionid, appid, profile, memfire.
    fn args(&self) -> [pgrx::datum::DatumWithOid<'_>; 6] {
        [
            self.provider.into(),
            self.openid.into(),
            self.unionid.into(),
            self.appid.into(),
            self.profile.clone().map(JsonB).into(),
            self.memfire.into(),
        ]
    }
}

/// The user whose app openid `$1`, `$2` is, when `$6` says the default app, by MemFire's column
/// too, a literal for `concat!`: at most one row, `id`.
macro_rules! holder_sql {
    () => {
        "(SELECT user_id AS id FROM auth.identities WHERE provider = $1 AND provider_id = $2
          UNION ALL
          SELECT id FROM auth.users WHERE $6 AND wechat_id = $2 AND wechat_id <> ''
          LIMIT 1)"
    };
}

/// The unionid `$3`, if it may be recorded on the user `$user` (a literal, for `concat!`): no
/// other user holds it, in an identity or in MemFire's column; else NULL.
macro_rules! recordable_unionid_sql {
    ($user:literal) => {
        concat!(
            "CASE WHEN $3::text IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM auth.identities x
                                    WHERE x.identity_data ->> 'unionid' = $3 AND x.provider = ANY (",
            wechat_providers_sql!(),
            ") AND x.user_id <> ",
            $user,
            ")
                   AND NOT EXISTS (SELECT 1 FROM auth.users y
                                    WHERE y.wechat_unionid = $3 AND y.wechat_unionid <> '' AND y.id <> ",
            $user,
            ")
              THEN $3::text END"
        )
    };
}

/// The upsert of the identity of `$1`–`$5` for the user `$user` with the unionid `$unionid` (both
/// expressions over the `FROM` item `$from`; literals for `concat!`): created on first use,
/// refreshed afterwards (its `identity_data` merged), moved to `$user` if it was someone else's.
/// Returns `id`.
macro_rules! identity_upsert_sql {
    ($user:literal, $unionid:literal, $from:literal) => {
        concat!(
            "INSERT INTO auth.identities AS i
                 (provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at)
             SELECT $2, ",
            $user,
            ", pg_catalog.jsonb_build_object('sub', $2::text, 'openid', $2::text, 'appid', $4::text)
                   || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('unionid', ",
            $unionid,
            "))
                   || coalesce($5::jsonb, '{}'),
                   $1, pg_catalog.now(), pg_catalog.now(), pg_catalog.now()
               FROM ",
            $from,
            "
             ON CONFLICT (provider_id, provider) DO UPDATE
                SET user_id = excluded.user_id,
                    identity_data = i.identity_data || excluded.identity_data,
                    last_sign_in_at = excluded.last_sign_in_at,
                    updated_at = excluded.updated_at
             RETURNING i.id"
        )
    };
}

/// `raw_app_meta_data` with the provider `$1` added to `providers`, and made the primary
/// `provider` only when there is none (a user who signed up by phone stays `phone`), as GoTrue
/// does when it links an identity.
macro_rules! app_metadata_with_provider_sql {
    () => {
        "pg_catalog.jsonb_set(
             coalesce(u.raw_app_meta_data, '{}')
               || CASE WHEN coalesce(u.raw_app_meta_data ->> 'provider', '') = ''
                       THEN pg_catalog.jsonb_build_object('provider', $1::text) ELSE '{}' END,
             '{providers}',
             CASE WHEN coalesce(u.raw_app_meta_data -> 'providers', '[]') ? $1::text
                  THEN u.raw_app_meta_data -> 'providers'
                  ELSE coalesce(u.raw_app_meta_data -> 'providers', '[]') || pg_catalog.jsonb_build_array($1::text) END)"
    };
}

/// The columns a statement returns for a found user: id, banned, soft-deleted, audit name.
macro_rules! found_columns_sql {
    () => {
        concat!(
            "u.id, coalesce(u.banned_until > pg_catalog.now(), false), u.deleted_at IS NOT NULL, ",
            actor_name_sql!()
        )
    };
}

/// A user found for a person.
struct Found {
    id: Uuid,
    banned: bool,
    /// Soft-deleted (`deleted_at` set): GoTrue's admin API keeps such rows, openid included.
    deleted: bool,
    /// GoTrue's `actor_username` for the audit log.
    name: String,
}

impl Found {
    fn read(row: &SpiTupleTable) -> SpiResult<Option<Found>> {
        let Some(id) = row.get::<Uuid>(1)? else {
            return Ok(None);
        };
        Ok(Some(Found {
            id,
            banned: row.get::<bool>(2)?.unwrap_or(false),
            deleted: row.get::<bool>(3)?.unwrap_or(false),
            name: row.get::<String>(4)?.unwrap_or_default(),
        }))
    }

    /// The user, unless they may not sign in.
    fn usable(self) -> Result<Found, AuthError> {
        if self.deleted {
            Err(AuthError::UserDeleted)
        } else if self.banned {
            Err(AuthError::UserBanned)
        } else {
            Ok(self)
        }
    }
}

/// Finds the user of a known openid and records this sign-in in one statement: the identity
/// (created for a user MemFire's columns alone knew; its unionid and profile refreshed), the
/// user's `last_sign_in_at`, and MemFire's `wechat_unionid` for the default app; a unionid only
/// where it may be recorded. A banned or soft-deleted user is recorded too, and the caller refuses
/// them: the refusal is an ERROR, which rolls the write back.
const KNOWN_SQL: &str = concat!(
    "WITH found AS ",
    holder_sql!(),
    ", r AS (
         SELECT found.id, ",
    recordable_unionid_sql!("found.id"),
    " AS unionid FROM found
     ), i AS (",
    identity_upsert_sql!("r.id", "r.unionid", "r"),
    ")
     UPDATE auth.users u
        SET last_sign_in_at = pg_catalog.now(),
            wechat_unionid = CASE WHEN $6 AND u.wechat_id = $2 THEN coalesce(r.unionid, u.wechat_unionid)
                                  ELSE u.wechat_unionid END
       FROM r
      WHERE u.id = r.id AND EXISTS (SELECT 1 FROM i)
  RETURNING ",
    found_columns_sql!()
);

fn known(person: &WechatIdentity) -> Option<Found> {
    write_row(KNOWN_SQL, &person.args(), |row| Found::read(&row)).flatten()
}

/// The users who hold the unionid `$3` (in an identity or in MemFire's column), those who did not
/// unlink the openid `$2` first, at most three: whether each unlinked it is the fifth column.
const HOLDERS_SQL: &str = concat!(
    "SELECT ",
    found_columns_sql!(),
    ", $2::text = ANY (coalesce(u.wechat_unlinked, '{}'))
       FROM auth.users u
      WHERE u.id IN (SELECT user_id FROM auth.identities
                      WHERE identity_data ->> 'unionid' = $3 AND provider = ANY (",
    wechat_providers_sql!(),
    ")
                     UNION
                     SELECT id FROM auth.users WHERE wechat_unionid = $3 AND wechat_unionid <> '')
      ORDER BY 5
      LIMIT 3"
);

/// Who holds `person`'s unionid: those who may be linked to it (not having unlinked its openid),
/// and whether anyone holds it at all. Read after the unionid's lock, so as of now.
fn holders(person: &WechatIdentity) -> (Vec<Found>, bool) {
    latest_rows(HOLDERS_SQL, &person.args(), |table| {
        let (mut linkable, mut any) = (Vec::new(), false);
        if table.is_empty() {
            return Ok((linkable, any));
        }
        let mut table = table.first();
        loop {
            any = true;
            if !table.get::<bool>(5)?.unwrap_or(false) {
                linkable.extend(Found::read(&table)?);
            }
            if table.next().is_none() {
                return Ok((linkable, any));
            }
        }
    })
}

/// A new WeChat user as GoTrue would write one, signing in now, with the person's provider as its
/// first provider, and their identity; MemFire's columns for the default app. `$7` the user, `$8`
/// its `user_metadata` (what GoTrue takes from a new OAuth user's profile), `$9` GoTrue's
/// instance, `$10` whether the unionid is recorded. No row when a concurrent sign-up of the same
/// default-app openid came first (its unique index).
const SIGN_UP_SQL: &str = concat!(
    "WITH u AS (
         INSERT INTO auth.users (
             instance_id, id, aud, role, email, encrypted_password,
             confirmation_token, recovery_token, email_change_token_new, email_change,
             phone_change, phone_change_token, email_change_token_current, reauthentication_token,
             raw_app_meta_data, raw_user_meta_data, is_super_admin, is_sso_user, is_anonymous,
             created_at, updated_at, last_sign_in_at, wechat_id, wechat_unionid)
         VALUES (
             $9::uuid, $7, 'authenticated', 'authenticated', NULL, '',
             '', '', '', '',
             '', '', '', '',
             pg_catalog.jsonb_build_object('provider', $1::text, 'providers', pg_catalog.jsonb_build_array($1::text)),
             coalesce($8::jsonb, '{}'), false, false, false,
             pg_catalog.now(), pg_catalog.now(), pg_catalog.now(),
             CASE WHEN $6 THEN $2 ELSE '' END, CASE WHEN $6 AND $10 THEN coalesce($3, '') ELSE '' END)
         ON CONFLICT (wechat_id) WHERE wechat_id <> '' DO NOTHING
         RETURNING id
     ), i AS (",
    identity_upsert_sql!("u.id", "CASE WHEN $10 THEN $3::text END", "u"),
    ")
     SELECT u.id FROM u WHERE EXISTS (SELECT 1 FROM i)"
);

/// Attaches the person's identity to the user `$7` (a link by unionid, a bind, a move): the
/// identity (its unionid where it may be recorded), the provider among the user's, MemFire's
/// columns for the default app if the user has none, and the openid out of the user's unlinked
/// ones; `last_sign_in_at` when `$8` (a sign-in). Returns the identity and the audit name.
const ATTACH_SQL: &str = concat!(
    "WITH r AS (
         SELECT $7::uuid AS id, ",
    recordable_unionid_sql!("$7"),
    " AS unionid
     ), i AS (",
    identity_upsert_sql!("r.id", "r.unionid", "r"),
    "), u AS (
         UPDATE auth.users u
            SET raw_app_meta_data = ",
    app_metadata_with_provider_sql!(),
    ",
                last_sign_in_at = CASE WHEN $8 THEN pg_catalog.now() ELSE u.last_sign_in_at END,
                updated_at = pg_catalog.now(),
                wechat_id = CASE WHEN $6 AND coalesce(u.wechat_id, '') = '' THEN $2 ELSE u.wechat_id END,
                wechat_unionid = CASE WHEN $6 AND coalesce(u.wechat_id, '') = ''
                                      THEN coalesce((SELECT unionid FROM r), u.wechat_unionid)
                                      ELSE u.wechat_unionid END,
                wechat_unlinked = pg_catalog.array_remove(u.wechat_unlinked, $2::text)
          WHERE u.id = $7
      RETURNING ",
    actor_name_sql!(),
    " AS name)
     SELECT (SELECT id FROM i), (SELECT name FROM u)"
);

pub fn attach(person: &WechatIdentity, user_id: Uuid, signing_in: bool) -> (Uuid, String) {
    let [a1, a2, a3, a4, a5, a6] = person.args();
    write_row(ATTACH_SQL, &[a1, a2, a3, a4, a5, a6, user_id.into(), signing_in.into()], |row| {
        Ok((row.get::<Uuid>(1)?, row.get::<String>(2)?.unwrap_or_default()))
    })
    .and_then(|(id, name)| id.map(|id| (id, name)))
    .unwrap_or_else(|| pgrx::error!("auth_wechat: attaching an identity wrote no row"))
}

/// What a sign-in resolved to: the user, their audit name, and the audit actions of the sign-in.
pub struct SignedIn {
    pub user_id: Uuid,
    pub name: String,
    pub actions: &'static [Action],
}

/// The user `person` is (see the module's notes), with this sign-in recorded; signing them up, or
/// linking the app to the one user who holds their unionid.
pub fn sign_in(person: &WechatIdentity) -> Result<SignedIn, AuthError> {
    let login =
        |found: Found| found.usable().map(|f| SignedIn { user_id: f.id, name: f.name, actions: &[Action::Login] });
    if let Some(found) = known(person) {
        return login(found);
    }
    let by_unionid = person.unionid.filter(|_| gucs::link_by_unionid());
    if let Some(unionid) = person.unionid {
        store::lock_value("unionid", unionid);
    }
    store::lock_value("openid", person.openid);
    // What a concurrent sign-in of this person wrote while this one waited for the locks.
    if let Some(found) = known(person) {
        return login(found);
    }
    let (mut linkable, held) = person.unionid.map(|_| holders(person)).unwrap_or_default();
    match (by_unionid.is_some(), linkable.len()) {
        (true, 2..) => Err(AuthError::UnionidConflict),
        (true, 1) => {
            let user = linkable.remove(0).usable()?;
            store::lock_user(user.id);
            let (identity_id, name) = attach(person, user.id, true);
            audit::record(
                &[Action::IdentityLinked],
                user.id,
                &name,
                audit::identity(identity_id, person.provider, person.openid),
            );
            Ok(SignedIn { user_id: user.id, name, actions: &[Action::Login] })
        }
        _ => sign_up(person, !held),
    }
}

/// A new user for a new person (the unionid recorded when `record_unionid`), or the user a
/// concurrent sign-up of the default app's openid made first.
fn sign_up(person: &WechatIdentity, record_unionid: bool) -> Result<SignedIn, AuthError> {
    if !gucs::allow_sign_up() {
        return Err(AuthError::SignupDisabled);
    }
    // GoTrue fills a new OAuth user's metadata from the profile.
    let metadata = person.profile.as_ref().map(|profile| {
        let keep = |key: &str| profile.get(key).map(|value| (key.to_string(), value.clone()));
        Value::Object(["name", "avatar_url"].into_iter().filter_map(keep).collect())
    });
    let [a1, a2, a3, a4, a5, a6] = person.args();
    let args = [
        a1,
        a2,
        a3,
        a4,
        a5,
        a6,
        ids::new_uuid().into(),
        metadata.map(JsonB).into(),
        ids::INSTANCE_ID.into(),
        record_unionid.into(),
    ];
    match write_row(SIGN_UP_SQL, &args, |row| row.get_one::<Uuid>()).flatten() {
        // A new WeChat user has neither email nor phone: no audit name.
        Some(id) => Ok(SignedIn { user_id: id, name: String::new(), actions: &[Action::SignedUp, Action::Login] }),
        None => match known(person) {
            Some(found) => found.usable().map(|f| SignedIn { user_id: f.id, name: f.name, actions: &[Action::Login] }),
            None => pgrx::error!("auth_wechat: user for this openid vanished during sign-up"),
        },
    }
}

/// The user who holds the person's openid, if any.
fn holder(person: &WechatIdentity) -> Option<Uuid> {
    latest_row(concat!("SELECT id FROM ", holder_sql!(), " h"), &person.args(), |row| row.get_one::<Uuid>()).flatten()
}

/// Whether `user_id` holds an openid of the person's app other than theirs (`$7` the user).
fn holds_another_openid(person: &WechatIdentity, user_id: Uuid) -> bool {
    let [a1, a2, a3, a4, a5, a6] = person.args();
    latest_row(
        "SELECT EXISTS (SELECT 1 FROM auth.identities
                         WHERE user_id = $7 AND identity_data ->> 'appid' = $4 AND provider_id <> $2
                           AND provider = $1)
             OR ($6 AND EXISTS (SELECT 1 FROM auth.users
                                 WHERE id = $7 AND coalesce(wechat_id, '') NOT IN ('', $2)))",
        &[a1, a2, a3, a4, a5, a6, user_id.into()],
        |row| row.get_one::<bool>(),
    )
    .flatten()
    .unwrap_or(false)
}

/// Binds `person` to the signed-in `user_id`: refused when the user holds another openid of the
/// app (422 `wechat_already_bound`) or another user holds this one (409
/// `identity_already_exists`); idempotent for the same openid; audited when new. Locks the openid,
/// then the user (the order of every writer here: the value first, then rows).
pub fn bind(person: &WechatIdentity, user_id: Uuid) -> Result<(), AuthError> {
    store::lock_value("openid", person.openid);
    if !store::lock_user(user_id) {
        return Err(AuthError::UserNotFound);
    }
    if holds_another_openid(person, user_id) {
        return Err(AuthError::WechatAlreadyBound);
    }
    let holder = holder(person);
    if holder.is_some_and(|holder| holder != user_id) {
        return Err(AuthError::IdentityAlreadyExists);
    }
    let (identity_id, name) = attach(person, user_id, false);
    if holder.is_none() {
        audit::record(
            &[Action::IdentityLinked],
            user_id,
            &name,
            audit::identity(identity_id, person.provider, person.openid),
        );
    }
    Ok(())
}

/// A WeChat identity: whose it is, its provider, openid and app, and how many identities its
/// user has in all.
struct Held {
    user_id: Uuid,
    provider: String,
    openid: String,
    appid: String,
    unionid: Option<String>,
    identities: i64,
}

fn wechat_identity(identity_id: Uuid) -> Option<Held> {
    latest_row(
        concat!(
            "SELECT user_id, provider, provider_id, identity_data ->> 'appid', identity_data ->> 'unionid',
                    (SELECT pg_catalog.count(*) FROM auth.identities o WHERE o.user_id = i.user_id)
               FROM auth.identities i
              WHERE id = $1 AND provider = ANY (",
            wechat_providers_sql!(),
            ")"
        ),
        &[identity_id.into()],
        |row| {
            Ok(row.get::<Uuid>(1)?.map(|user_id| -> SpiResult<Held> {
                Ok(Held {
                    user_id,
                    provider: row.get::<String>(2)?.unwrap_or_default(),
                    openid: row.get::<String>(3)?.unwrap_or_default(),
                    appid: row.get::<String>(4)?.unwrap_or_default(),
                    unionid: row.get::<String>(5)?,
                    identities: row.get::<i64>(6)?.unwrap_or(0),
                })
            }))
        },
    )
    .flatten()
    .transpose()
    .unwrap_or_else(|e| pgrx::error!("auth_wechat: reading an identity failed: {e}"))
}

/// Detaches the identity `$2` (provider `$3`, openid `$4`) from its user `$1`, as GoTrue's
/// `DELETE /user/identities/{id}` does: the row goes (with `$5`, an unlink; a move keeps it for
/// the user it goes to); `app_metadata.providers` loses the provider when no other identity of it
/// is left (and `provider` moves to the first one left); MemFire's columns are emptied when they
/// held this openid; with `$5`, the user remembers the openid (`wechat_unlinked`). Returns the
/// user's audit name.
const DETACH_SQL: &str = concat!(
    "WITH d AS (
         DELETE FROM auth.identities WHERE id = $2 AND user_id = $1 AND $5
     ), p AS (
         SELECT CASE WHEN EXISTS (SELECT 1 FROM auth.identities
                                   WHERE user_id = $1 AND id <> $2 AND provider = $3)
                     THEN coalesce(raw_app_meta_data -> 'providers', '[]')
                     ELSE coalesce(raw_app_meta_data -> 'providers', '[]') - $3::text END AS providers
           FROM auth.users WHERE id = $1
     )
     UPDATE auth.users u
        SET raw_app_meta_data = coalesce(u.raw_app_meta_data, '{}')
              || pg_catalog.jsonb_build_object('providers', p.providers)
              || CASE WHEN p.providers ? coalesce(u.raw_app_meta_data ->> 'provider', '') THEN '{}'::jsonb
                      ELSE pg_catalog.jsonb_build_object('provider', p.providers -> 0) END,
            wechat_id = CASE WHEN u.wechat_id = $4 THEN '' ELSE u.wechat_id END,
            wechat_unionid = CASE WHEN u.wechat_id = $4 THEN '' ELSE u.wechat_unionid END,
            wechat_unlinked = CASE WHEN NOT $5 OR $4::text = ANY (coalesce(u.wechat_unlinked, '{}')) THEN u.wechat_unlinked
                                   ELSE pg_catalog.array_append(coalesce(u.wechat_unlinked, '{}'), $4::text) END,
            updated_at = pg_catalog.now()
       FROM p
      WHERE u.id = $1
  RETURNING ",
    actor_name_sql!()
);

/// How an identity leaves its user.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Leaving {
    /// Unlinked: the row goes, and the user remembers the openid.
    Unlinked,
    /// Moved to another user: the row stays, to be attached there.
    Moved,
}

fn detach(identity_id: Uuid, held: &Held, leaving: Leaving) -> String {
    write_row(
        DETACH_SQL,
        &[
            held.user_id.into(),
            identity_id.into(),
            held.provider.as_str().into(),
            held.openid.as_str().into(),
            (leaving == Leaving::Unlinked).into(),
        ],
        |row| row.get_one::<String>(),
    )
    .flatten()
    .unwrap_or_default()
}

/// Removes one of `user_id`'s WeChat identities (GoTrue's `DELETE /user/identities/{id}`), whose
/// row the caller locked: another user's identity, or one that is not a WeChat identity, is not
/// found (404); the last one may not go (422). The user remembers the openid, which then signs in
/// as a new person. Audited.
pub fn unlink(user_id: Uuid, identity_id: Uuid) -> Result<(), AuthError> {
    let held =
        wechat_identity(identity_id).filter(|held| held.user_id == user_id).ok_or(AuthError::IdentityNotFound)?;
    if held.identities <= 1 {
        return Err(AuthError::SingleIdentityNotDeletable);
    }
    let name = detach(identity_id, &held, Leaving::Unlinked);
    audit::record(
        &[Action::IdentityUnlinked],
        user_id,
        &name,
        audit::identity(identity_id, &held.provider, &held.openid),
    );
    Ok(())
}

/// An administrator's remedy for a person split in two users (`auth.wechat_move_identity`): moves
/// the WeChat identity `identity_id` to the user `to`, with MemFire's columns for the default
/// app, the providers of both, and audit rows for both (`identity_unlinked`, `identity_linked`).
/// Refused when `to` holds another openid of that app (422). The user it leaves may be left with
/// no identity, for the administrator to delete. Returns the user it moved from.
pub fn move_to(identity_id: Uuid, to: Uuid) -> Result<Uuid, AuthError> {
    let held = wechat_identity(identity_id).ok_or(AuthError::IdentityNotFound)?;
    if held.user_id == to {
        return Ok(to);
    }
    // The openid first, as every writer here; then both users' rows, in a fixed order, so that
    // two moves between them cannot deadlock.
    store::lock_value("openid", &held.openid);
    let (first, second) = if held.user_id.as_bytes() < to.as_bytes() { (held.user_id, to) } else { (to, held.user_id) };
    for user in [first, second] {
        if !store::lock_user(user) && user == to {
            return Err(AuthError::InvalidInput("to_user_id names no user"));
        }
    }
    // The default mini program's (also those made before identities named their app).
    let default_appid = gucs::appid_if_set().unwrap_or_default();
    let memfire = held.provider == PROVIDER && (held.appid.is_empty() || held.appid == default_appid);
    let person = WechatIdentity {
        provider: &held.provider,
        appid: if held.appid.is_empty() { &default_appid } else { &held.appid },
        openid: &held.openid,
        unionid: held.unionid.as_deref(),
        profile: None,
        memfire,
    };
    if holds_another_openid(&person, to) {
        return Err(AuthError::WechatAlreadyBound);
    }
    // The user it leaves first (MemFire's column may hold the openid, which is unique); then the
    // row moves, its id kept.
    let from_name = detach(identity_id, &held, Leaving::Moved);
    let (moved, to_name) = attach(&person, to, false);
    audit::record(
        &[Action::IdentityUnlinked],
        held.user_id,
        &from_name,
        audit::identity(identity_id, &held.provider, &held.openid),
    );
    audit::record(&[Action::IdentityLinked], to, &to_name, audit::identity(moved, &held.provider, &held.openid));
    Ok(held.user_id)
}
