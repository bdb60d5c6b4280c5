//! Reads and writes of Supabase Auth's users and identities (`auth.users`, `auth.identities`),
//! and the user as GoTrue renders it.
//!
//! Every table is schema-qualified and every value is a parameter (see `spi`). Statements run in
//! the caller's transaction, and only after WeChat has answered, so no row lock is ever held
//! across a network wait.

use crate::apps::App;
use crate::ids;
use crate::jsonb::{Jsonb, Member};
use crate::spi::{first_row, read_rows, write_row};
use pgrx::datum::DatumWithOid;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::spi::{SpiResult, SpiTupleTable};
use pgrx::Uuid;

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
#[cfg(test)]
pub(crate) use wechat_providers_sql;

/// One app's openid of a person: a row of `auth.identities` (`provider_id` the openid).
pub struct WechatIdentity<'a> {
    pub provider: &'static str,
    pub appid: &'a str,
    pub openid: &'a str,
    pub unionid: Option<&'a str>,
    /// What WeChat's profile says (web authorisation with `snsapi_userinfo` or `snsapi_login`), as
    /// GoTrue keeps an OAuth identity's claims: `nickname`, `name`, `avatar_url`, `picture`.
    pub profile: Option<serde_json::Value>,
}

impl<'a> WechatIdentity<'a> {
    /// The identity of `app`'s openid, as WeChat answered for it.
    pub fn of(app: &'a App, openid: &'a str, unionid: Option<&'a str>, profile: Option<serde_json::Value>) -> Self {
        WechatIdentity { provider: app.kind.provider(), appid: &app.appid, openid, unionid, profile }
    }
}
/// GoTrue's single-instance id: GoTrue does not see users with another one.
pub const INSTANCE_ID: &str = "00000000-0000-0000-0000-000000000000";

/// A user found by openid.
pub struct Found {
    pub id: Uuid,
    pub banned: bool,
    /// Soft-deleted (`deleted_at` set): GoTrue's admin API keeps such rows, openid included.
    pub deleted: bool,
    /// GoTrue's `actor_username` for the audit log (`actor_name_sql!`).
    pub name: String,
}

/// GoTrue's name for a user in its audit log (`actor_username`): the email, else the phone, over
/// `auth.users u` (a literal, for `concat!`).
macro_rules! actor_name_sql {
    () => {
        "coalesce(nullif(u.email, ''), u.phone, '')"
    };
}
pub(crate) use actor_name_sql;

pub fn find_by_openid(openid: &str) -> Option<Found> {
    // `wechat_id <> ''` lets the planner use the partial unique index.
    first_row(
        concat!(
            "SELECT id, coalesce(banned_until > pg_catalog.now(), false), deleted_at IS NOT NULL, ",
            actor_name_sql!(),
            " FROM auth.users u WHERE wechat_id = $1 AND wechat_id <> ''"
        ),
        &[openid.into()],
        found,
    )
    .flatten()
}

/// Finds the user of an openid and records this sign-in in the same statement:
/// `last_sign_in_at`, and the unionid when WeChat sent one. A banned or soft-deleted user is
/// recorded too, and the caller refuses them: the refusal is an ERROR, which rolls the write back.
pub fn sign_in_by_openid(openid: &str, unionid: Option<&str>) -> Option<Found> {
    write_row(
        concat!(
            "UPDATE auth.users u
                SET last_sign_in_at = pg_catalog.now(),
                    wechat_unionid = coalesce($2, wechat_unionid)
              WHERE wechat_id = $1 AND wechat_id <> ''
          RETURNING id, coalesce(banned_until > pg_catalog.now(), false), deleted_at IS NOT NULL, ",
            actor_name_sql!()
        ),
        &[openid.into(), unionid.into()],
        found,
    )
    .flatten()
}

/// Finds the user of an app's identity (an openid of an app other than the default mini program,
/// whose openid is `auth.users.wechat_id`) and records this sign-in: the user's and the identity's
/// `last_sign_in_at`.
pub fn sign_in_by_identity(provider: &str, openid: &str) -> Option<Found> {
    write_row(
        concat!(
            "WITH i AS (
                 UPDATE auth.identities SET last_sign_in_at = pg_catalog.now(), updated_at = pg_catalog.now()
                  WHERE provider = $1 AND provider_id = $2
              RETURNING user_id
             )
             UPDATE auth.users u SET last_sign_in_at = pg_catalog.now()
               FROM i
              WHERE u.id = i.user_id
          RETURNING u.id, coalesce(u.banned_until > pg_catalog.now(), false), u.deleted_at IS NOT NULL, ",
            actor_name_sql!()
        ),
        &[provider.into(), openid.into()],
        found,
    )
    .flatten()
}

/// The users (at most two: one is an answer, two a conflict) who hold `unionid`, in one of their
/// WeChat identities or in MemFire's `wechat_unionid` column; except those who unlinked
/// `openid` (`unlink_identity`), which then signs in as a new person.
pub fn users_by_unionid(unionid: &str, openid: &str) -> Vec<Found> {
    read_rows(
        concat!(
            "SELECT u.id, coalesce(u.banned_until > pg_catalog.now(), false), u.deleted_at IS NOT NULL, ",
            actor_name_sql!(),
            " FROM auth.users u
              WHERE u.id IN (SELECT user_id FROM auth.identities
                              WHERE identity_data ->> 'unionid' = $1 AND provider = ANY (",
            wechat_providers_sql!(),
            ")
                             UNION
                             SELECT id FROM auth.users WHERE wechat_unionid = $1 AND wechat_unionid <> '')
                AND NOT EXISTS (SELECT 1 FROM auth.identities x
                                 WHERE x.user_id = u.id AND x.identity_data -> 'unlinked_openids' ? $2)
              LIMIT 2"
        ),
        &[unionid.into(), openid.into()],
        |table| {
            let mut users = Vec::new();
            if table.is_empty() {
                return Ok(users);
            }
            let mut table = table.first();
            loop {
                users.extend(found_at(&table)?);
                if table.next().is_none() {
                    return Ok(users);
                }
            }
        },
    )
}

fn found(row: SpiTupleTable) -> SpiResult<Option<Found>> {
    found_at(&row)
}

fn found_at(row: &SpiTupleTable) -> SpiResult<Option<Found>> {
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

/// Creates a WeChat user as GoTrue would write one, signing in now, with `provider` as its first
/// provider; `wechat_id` and `wechat_unionid` are MemFire's columns, the default mini program's
/// openid and unionid (`''` and `None` for a user who came from another app), `user_metadata` what
/// GoTrue takes from a new OAuth user's profile (`name`, `avatar_url`). `None` when a
/// concurrent sign-in of the same default-app openid created it first (the caller then finds that
/// user).
pub fn create_user(
    id: Uuid,
    provider: &str,
    wechat_id: &str,
    wechat_unionid: Option<&str>,
    user_metadata: Option<serde_json::Value>,
) -> Option<Uuid> {
    write_row(
        "INSERT INTO auth.users (
                     instance_id, id, aud, role, email, encrypted_password,
                     confirmation_token, recovery_token, email_change_token_new, email_change,
                     phone_change, phone_change_token, email_change_token_current, reauthentication_token,
                     raw_app_meta_data, raw_user_meta_data, is_super_admin, is_sso_user, is_anonymous,
                     created_at, updated_at, last_sign_in_at, wechat_id, wechat_unionid)
                 VALUES (
                     $4::uuid, $1, 'authenticated', 'authenticated', NULL, '',
                     '', '', '', '',
                     '', '', '', '',
                     pg_catalog.jsonb_build_object('provider', $5::text, 'providers', pg_catalog.jsonb_build_array($5::text)), coalesce($6::jsonb, '{}'), false, false, false,
                     pg_catalog.now(), pg_catalog.now(), pg_catalog.now(), $2, coalesce($3, ''))
                 ON CONFLICT (wechat_id) WHERE wechat_id <> '' DO NOTHING
                 RETURNING id",
        &[id.into(), wechat_id.into(), wechat_unionid.into(), INSTANCE_ID.into(), provider.into(), user_metadata.map(pgrx::JsonB).into()],
        |row| row.get_one::<Uuid>(),
    )
    .flatten()
}

/// Serialises, until the end of the transaction, every writer of one WeChat openid or phone
/// number (sign-up, binding): each then sees the others' committed rows and answers a clean
/// conflict instead of tripping over the unique index. Taken only after WeChat has answered.
pub fn lock_value(kind: &str, value: &str) {
    first_row(
        "SELECT 1 FROM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('auth_wechat:' || $1 || ':' || $2, 0))",
        &[kind.into(), value.into()],
        |row| row.get_one::<i32>(),
    );
}

/// Locks the user's row for this transaction and returns its openid (`''` when unbound); `None`
/// if the user does not exist or was soft-deleted.
pub fn lock_user(user_id: Uuid) -> Option<String> {
    write_row(
        "SELECT coalesce(wechat_id, '') FROM auth.users WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
        &[user_id.into()],
        |row| row.get_one::<String>(),
    )
    .map(Option::unwrap_or_default)
}

/// `raw_app_meta_data` with the provider `$p` (a placeholder literal, for `concat!`) added to
/// `providers`, and made the primary `provider` only when there is none (a user who signed up by
/// phone stays `phone`), as GoTrue does when it links an identity.
macro_rules! app_metadata_with_provider_sql {
    ($p:literal) => {
        concat!(
            "pg_catalog.jsonb_set(
                 coalesce(raw_app_meta_data, '{}')
                   || CASE WHEN coalesce(raw_app_meta_data ->> 'provider', '') = ''
                           THEN pg_catalog.jsonb_build_object('provider', ",
            $p,
            "::text) ELSE '{}' END,
                 '{providers}',
                 CASE WHEN coalesce(raw_app_meta_data -> 'providers', '[]') ? ",
            $p,
            "::text
                      THEN raw_app_meta_data -> 'providers'
                      ELSE coalesce(raw_app_meta_data -> 'providers', '[]') || pg_catalog.jsonb_build_array(",
            $p,
            "::text) END)"
        )
    };
}

/// Binds the default mini program's openid to an existing user: MemFire's WeChat columns, and
/// `wechat_mini` among the user's providers. Returns the user's audit name (`actor_name_sql!`).
pub fn bind_wechat(user_id: Uuid, openid: &str, unionid: Option<&str>) -> String {
    write_row(
        concat!(
            "UPDATE auth.users u
            SET wechat_id = $2,
                wechat_unionid = coalesce($3, wechat_unionid),
                raw_app_meta_data = ",
            app_metadata_with_provider_sql!("$4"),
            ",
                updated_at = pg_catalog.now()
          WHERE id = $1
      RETURNING ",
            actor_name_sql!()
        ),
        &[user_id.into(), openid.into(), unionid.into(), PROVIDER.into()],
        |row| row.get_one::<String>(),
    )
    .flatten()
    .unwrap_or_default()
}

/// Records a sign-in of `user_id` through a newly linked app: `provider` among the user's
/// providers, and `last_sign_in_at`. Returns the user's audit name (`actor_name_sql!`).
pub fn link_provider(user_id: Uuid, provider: &str) -> String {
    write_row(
        concat!(
            "UPDATE auth.users u
            SET raw_app_meta_data = ",
            app_metadata_with_provider_sql!("$2"),
            ",
                last_sign_in_at = pg_catalog.now(),
                updated_at = pg_catalog.now()
          WHERE id = $1
      RETURNING ",
            actor_name_sql!()
        ),
        &[user_id.into(), provider.into()],
        |row| row.get_one::<String>(),
    )
    .flatten()
    .unwrap_or_default()
}

/// The upsert of a user's WeChat identity (`$1` user, `$2` openid, `$3` unionid, `$4` provider,
/// and the appid and profile at the placeholders `$appid` and `$profile`), as a literal for
/// `concat!`: created on first use, refreshed afterwards. Sign-in runs it inside its session
/// statement (`session::start`), binding on its own (`upsert_identity`).
macro_rules! identity_upsert_sql {
    ($appid:literal, $profile:literal) => {
        concat!(
            "INSERT INTO auth.identities AS i
                (provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at)
         VALUES ($2, $1,
                 pg_catalog.jsonb_build_object('sub', $2, 'openid', $2, 'appid', ",
            $appid,
            "::text)
                   || CASE WHEN $3::text IS NULL THEN '{}'::jsonb ELSE pg_catalog.jsonb_build_object('unionid', $3::text) END
                   || coalesce(",
            $profile,
            "::jsonb, '{}'),
                 $4, pg_catalog.now(), pg_catalog.now(), pg_catalog.now())
         ON CONFLICT (provider_id, provider) DO UPDATE
            SET user_id = excluded.user_id,
                identity_data = i.identity_data || excluded.identity_data,
                last_sign_in_at = excluded.last_sign_in_at,
                updated_at = excluded.updated_at"
        )
    };
}
pub(crate) use identity_upsert_sql;

/// The user's WeChat identity, created or refreshed (`identity_upsert_sql!`); returns its id.
pub fn upsert_identity(user_id: Uuid, identity: &WechatIdentity) -> Uuid {
    write_row(
        concat!(identity_upsert_sql!("$5", "$6"), " RETURNING i.id"),
        &[
            user_id.into(),
            identity.openid.into(),
            identity.unionid.into(),
            identity.provider.into(),
            identity.appid.into(),
            identity.profile.clone().map(pgrx::JsonB).into(),
        ],
        |row| row.get_one::<Uuid>(),
    )
    .flatten()
    .unwrap_or_else(|| pgrx::error!("auth_wechat: identity upsert returned no row"))
}

/// The user holding the identity of `provider` and `openid`, if any.
pub fn identity_owner(provider: &str, openid: &str) -> Option<Uuid> {
    first_row(
        "SELECT user_id FROM auth.identities WHERE provider = $1 AND provider_id = $2",
        &[provider.into(), openid.into()],
        |row| row.get_one::<Uuid>(),
    )
    .flatten()
}

/// Whether the user holds an identity of app `appid` with an openid other than `openid`.
pub fn holds_other_openid_of(user_id: Uuid, appid: &str, openid: &str) -> bool {
    first_row(
        "SELECT EXISTS (SELECT 1 FROM auth.identities
                         WHERE user_id = $1 AND identity_data ->> 'appid' = $2 AND provider_id <> $3)",
        &[user_id.into(), appid.into(), openid.into()],
        |row| row.get_one::<bool>(),
    )
    .flatten()
    .unwrap_or(false)
}

/// A WeChat identity of a user that may be unlinked: its provider and openid, and how many
/// identities the user has in all.
pub struct Unlinkable {
    pub provider: String,
    pub openid: String,
    pub identities: i64,
}

/// The user's WeChat identity `identity_id`, if it is one of theirs.
pub fn wechat_identity_of(user_id: Uuid, identity_id: Uuid) -> Option<Unlinkable> {
    first_row(
        concat!(
            "SELECT provider, provider_id, (SELECT pg_catalog.count(*) FROM auth.identities WHERE user_id = $1)
               FROM auth.identities
              WHERE id = $2 AND user_id = $1 AND provider = ANY (",
            wechat_providers_sql!(),
            ")"
        ),
        &[user_id.into(), identity_id.into()],
        |row| {
            Ok(Unlinkable {
                provider: row.get::<String>(1)?.unwrap_or_default(),
                openid: row.get::<String>(2)?.unwrap_or_default(),
                identities: row.get::<i64>(3)?.unwrap_or(0),
            })
        },
    )
}

/// Unlinks the user's identity `identity_id` (its provider and openid `identity`), as GoTrue's
/// `DELETE /user/identities/{id}` does: the row goes; `app_metadata.providers` loses the provider
/// when no other identity of it is left (and `provider` moves to the first one left); MemFire's
/// columns are emptied when they held this openid. The user's other WeChat identities remember
/// the openid (`unlinked_openids`), so that a sign-in of it is not linked back to them by its
/// unionid. Returns the user's audit name (`actor_name_sql!`).
pub fn unlink_identity(user_id: Uuid, identity_id: Uuid, identity: &Unlinkable) -> String {
    write_row(
        concat!(
            "WITH d AS (
                 DELETE FROM auth.identities WHERE id = $2 AND user_id = $1
             ), t AS (
                 UPDATE auth.identities
                    SET identity_data = identity_data || pg_catalog.jsonb_build_object('unlinked_openids',
                            coalesce(identity_data -> 'unlinked_openids', '[]') || pg_catalog.jsonb_build_array($4::text)),
                        updated_at = pg_catalog.now()
                  WHERE user_id = $1 AND id <> $2 AND provider = ANY (",
            wechat_providers_sql!(),
            ")
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
                    updated_at = pg_catalog.now()
               FROM p
              WHERE u.id = $1
          RETURNING ",
            actor_name_sql!()
        ),
        &[user_id.into(), identity_id.into(), identity.provider.as_str().into(), identity.openid.as_str().into()],
        |row| row.get_one::<String>(),
    )
    .flatten()
    .unwrap_or_default()
}

/// Forgets that the user unlinked `openid` (see `unlink_identity`): they are binding it again.
pub fn forget_unlinked(user_id: Uuid, openid: &str) {
    write_row(
        "UPDATE auth.identities
            SET identity_data = identity_data || pg_catalog.jsonb_build_object('unlinked_openids',
                    (identity_data -> 'unlinked_openids') - $2::text)
          WHERE user_id = $1 AND identity_data -> 'unlinked_openids' ? $2",
        &[user_id.into(), openid.into()],
        |_| Ok(()),
    );
}

/// The user holding `phone`, if any.
pub fn phone_owner(phone: &str) -> Option<Uuid> {
    first_row("SELECT id FROM auth.users WHERE phone = $1", &[phone.into()], |row| row.get_one::<Uuid>()).flatten()
}

/// Sets a number WeChat confirmed, and keeps the user's `phone` identity (if they signed up by
/// phone) in step, as GoTrue does when a phone change is confirmed. Returns the user's audit
/// name (`actor_name_sql!`), which the number may now be.
pub fn set_phone(user_id: Uuid, phone: &str) -> String {
    write_row(
        concat!(
            "WITH i AS (
                 UPDATE auth.identities SET identity_data = identity_data || pg_catalog.jsonb_build_object('phone', $2::text),
                                            updated_at = pg_catalog.now()
                  WHERE user_id = $1 AND provider = 'phone'
             )
             UPDATE auth.users u SET phone = $2, phone_confirmed_at = pg_catalog.now(), updated_at = pg_catalog.now() WHERE id = $1
          RETURNING ",
            actor_name_sql!()
        ),
        &[user_id.into(), phone.into()],
        |row| row.get_one::<String>(),
    )
    .flatten()
    .unwrap_or_default()
}

/// The user's audit name (`actor_name_sql!`), for a caller whose statements did not read it.
pub fn actor_name(user_id: Uuid) -> String {
    first_row(concat!("SELECT ", actor_name_sql!(), " FROM auth.users u WHERE id = $1"), &[user_id.into()], |row| {
        row.get_one::<String>()
    })
    .flatten()
    .unwrap_or_default()
}

/// The statement that reads a user as GoTrue renders it (`User`): the user's row with each of its
/// identities, one row per identity (one row with null identity columns when it has none). `$1`
/// is the user; `$columns` (a literal, for `concat!`) come after them, from `column::EXTRA` on. Rows
/// come unsorted: `User::read` puts the identities in GoTrue's order, which spares the statement
/// a sort node to start up on every call.
macro_rules! user_rows_sql {
    ($columns:literal) => {
        concat!(
            "SELECT u.id, u.aud, u.role, u.email, u.phone,
                    coalesce(u.raw_app_meta_data, '{}'), coalesce(u.raw_user_meta_data, '{}'),
                    u.created_at, u.updated_at, u.is_anonymous, u.wechat_id, u.wechat_unionid,
                    u.email_confirmed_at, u.phone_confirmed_at, u.confirmation_sent_at, u.confirmed_at,
                    u.last_sign_in_at, u.banned_until,
                    i.id, i.provider_id, i.user_id, i.identity_data, i.provider,
                    i.created_at, i.updated_at, i.last_sign_in_at, i.email",
            $columns,
            " FROM auth.users u
              LEFT JOIN auth.identities i ON i.user_id = u.id
             WHERE u.id = $1 AND u.deleted_at IS NULL"
        )
    };
}
pub(crate) use user_rows_sql;

/// The columns of `user_rows_sql!`, in its order: the user's, then one identity's, then the
/// statement's own.
pub mod column {
    pub const ID: usize = 1;
    pub const AUD: usize = 2;
    pub const ROLE: usize = 3;
    pub const EMAIL: usize = 4;
    pub const PHONE: usize = 5;
    pub const APP_METADATA: usize = 6;
    pub const USER_METADATA: usize = 7;
    pub const CREATED_AT: usize = 8;
    pub const UPDATED_AT: usize = 9;
    pub const IS_ANONYMOUS: usize = 10;
    pub const WECHAT_ID: usize = 11;
    pub const WECHAT_UNIONID: usize = 12;
    /// The six `omitempty` timestamps, in `OMITEMPTY_KEYS`' order.
    pub const OMITEMPTY: usize = 13;
    pub const IDENTITY_ID: usize = 19;
    pub const PROVIDER_ID: usize = 20;
    pub const IDENTITY_USER_ID: usize = 21;
    pub const IDENTITY_DATA: usize = 22;
    pub const PROVIDER: usize = 23;
    pub const IDENTITY_CREATED_AT: usize = 24;
    pub const IDENTITY_UPDATED_AT: usize = 25;
    pub const IDENTITY_LAST_SIGN_IN_AT: usize = 26;
    pub const IDENTITY_EMAIL: usize = 27;
    /// The first of the statement's own columns (`user_rows_sql!`'s argument).
    pub const EXTRA: usize = 28;
}

/// A user as GoTrue renders it (plus MemFire's `wechat_id` and `wechat_unionid`), read from its
/// row and its identities' rows (`user_rows_sql!`) and rendered in Rust: no JSON is built in SQL.
pub struct User {
    pub id: String,
    pub aud: String,
    pub role: String,
    pub email: String,
    pub phone: String,
    pub app_metadata: Jsonb,
    pub user_metadata: Jsonb,
    pub is_anonymous: bool,
    created_at: Option<TimestampWithTimeZone>,
    updated_at: Option<TimestampWithTimeZone>,
    wechat_id: String,
    wechat_unionid: String,
    /// GoTrue's `omitempty` timestamps, each left out while null: `email_confirmed_at`,
    /// `phone_confirmed_at`, `confirmation_sent_at`, `confirmed_at`, `last_sign_in_at`,
    /// `banned_until`.
    omitempty: [Option<TimestampWithTimeZone>; 6],
    identities: Vec<Identity>,
}

/// One of the user's identities, as GoTrue renders it.
struct Identity {
    identity_id: String,
    provider_id: String,
    user_id: String,
    identity_data: Jsonb,
    provider: String,
    created_at: Option<TimestampWithTimeZone>,
    updated_at: Option<TimestampWithTimeZone>,
    /// `omitempty` in GoTrue, as `email`.
    last_sign_in_at: Option<TimestampWithTimeZone>,
    email: Option<String>,
}

const OMITEMPTY_KEYS: [&str; 6] = [
    "email_confirmed_at",
    "phone_confirmed_at",
    "confirmation_sent_at",
    "confirmed_at",
    "last_sign_in_at",
    "banned_until",
];

impl User {
    /// Runs a `user_rows_sql!` statement: the user, and what `extra` reads from its first row
    /// (its own columns, from `column::EXTRA` on); `None` for a missing or soft-deleted user.
    pub fn read<E>(
        sql: &'static str,
        args: &[DatumWithOid],
        extra: impl FnOnce(&SpiTupleTable) -> SpiResult<E>,
    ) -> Option<(User, E)> {
        read_rows(sql, args, |table| {
            if table.is_empty() {
                return Ok(None);
            }
            let mut table = table.first();
            let mut user = User::from_row(&table)?;
            let extra = extra(&table)?;
            loop {
                user.identities.extend(Identity::from_row(&table)?);
                if table.next().is_none() {
                    break;
                }
            }
            user.identities.sort_by(|a, b| a.order().cmp(&b.order()));
            Ok(Some((user, extra)))
        })
    }

    fn from_row(row: &SpiTupleTable) -> SpiResult<User> {
        use column::*;
        let text = |n| row.get::<String>(n).map(Option::unwrap_or_default);
        let time = |n| row.get::<TimestampWithTimeZone>(n);
        Ok(User {
            id: row.get::<Uuid>(ID)?.map(ids::uuid_text).unwrap_or_default(),
            aud: text(AUD)?,
            role: text(ROLE)?,
            email: text(EMAIL)?,
            phone: text(PHONE)?,
            // SAFETY: inside the SPI connection that returned the row; the columns are jsonb.
            app_metadata: unsafe { jsonb_column(row, APP_METADATA)? },
            user_metadata: unsafe { jsonb_column(row, USER_METADATA)? },
            created_at: time(CREATED_AT)?,
            updated_at: time(UPDATED_AT)?,
            is_anonymous: row.get::<bool>(IS_ANONYMOUS)?.unwrap_or(false),
            wechat_id: text(WECHAT_ID)?,
            wechat_unionid: text(WECHAT_UNIONID)?,
            omitempty: [
                time(OMITEMPTY)?,
                time(OMITEMPTY + 1)?,
                time(OMITEMPTY + 2)?,
                time(OMITEMPTY + 3)?,
                time(OMITEMPTY + 4)?,
                time(OMITEMPTY + 5)?,
            ],
            identities: Vec::new(),
        })
    }

    /// GoTrue's user JSON, as the members of an object.
    pub fn members(&self) -> Vec<(&str, Member<'_>)> {
        let mut members = vec![
            ("id", Member::Text(&self.id)),
            ("aud", Member::Text(&self.aud)),
            ("role", Member::Text(&self.role)),
            ("email", Member::Text(&self.email)),
            ("phone", Member::Text(&self.phone)),
            ("app_metadata", Member::Jsonb(&self.app_metadata)),
            ("user_metadata", Member::Jsonb(&self.user_metadata)),
            ("identities", Member::Array(self.identities.iter().map(Identity::member).collect())),
            ("created_at", Member::timestamp_or_null(self.created_at)),
            ("updated_at", Member::timestamp_or_null(self.updated_at)),
            ("is_anonymous", Member::Bool(self.is_anonymous)),
            ("wechat_id", Member::Text(&self.wechat_id)),
            ("wechat_unionid", Member::Text(&self.wechat_unionid)),
        ];
        for (key, value) in OMITEMPTY_KEYS.into_iter().zip(self.omitempty) {
            members.extend(value.map(|t| (key, Member::Timestamp(t))));
        }
        members
    }
}

impl Identity {
    /// The identity of the row's identity columns; `None` on the row of a user without any.
    fn from_row(row: &SpiTupleTable) -> SpiResult<Option<Identity>> {
        use column::*;
        let Some(identity_id) = row.get::<Uuid>(IDENTITY_ID)? else {
            return Ok(None);
        };
        let text = |n| row.get::<String>(n).map(Option::unwrap_or_default);
        Ok(Some(Identity {
            identity_id: ids::uuid_text(identity_id),
            provider_id: text(PROVIDER_ID)?,
            user_id: row.get::<Uuid>(IDENTITY_USER_ID)?.map(ids::uuid_text).unwrap_or_default(),
            // SAFETY: inside the SPI connection that returned the row; the column is jsonb.
            identity_data: unsafe { jsonb_column(row, IDENTITY_DATA)? },
            provider: text(PROVIDER)?,
            created_at: row.get(IDENTITY_CREATED_AT)?,
            updated_at: row.get(IDENTITY_UPDATED_AT)?,
            last_sign_in_at: row.get(IDENTITY_LAST_SIGN_IN_AT)?,
            email: row.get(IDENTITY_EMAIL)?,
        }))
    }

    /// GoTrue's order of a user's identities, `ORDER BY created_at, id` (a null `created_at`
    /// last, as Postgres sorts it).
    fn order(&self) -> (bool, Option<pg_sys::TimestampTz>, &str) {
        let created_at = self.created_at.map(pg_sys::TimestampTz::from);
        (created_at.is_none(), created_at, &self.identity_id)
    }

    fn member(&self) -> Member<'_> {
        let mut members = vec![
            ("identity_id", Member::Text(&self.identity_id)),
            ("id", Member::Text(&self.provider_id)),
            ("user_id", Member::Text(&self.user_id)),
            ("identity_data", Member::Jsonb(&self.identity_data)),
            ("provider", Member::Text(&self.provider)),
            ("created_at", Member::timestamp_or_null(self.created_at)),
            ("updated_at", Member::timestamp_or_null(self.updated_at)),
        ];
        members.extend(self.last_sign_in_at.map(|t| ("last_sign_in_at", Member::Timestamp(t))));
        members.extend(self.email.as_deref().map(|email| ("email", Member::Text(email))));
        Member::Object(members)
    }
}

/// A `jsonb` column of the current row, copied out of SPI's memory; SQL `null` as `{}`.
///
/// # Safety
/// Inside the SPI connection that returned the row; column `n` is `jsonb`.
unsafe fn jsonb_column(row: &SpiTupleTable, n: usize) -> SpiResult<Jsonb> {
    Ok(match row.get_datum_by_ordinal(n)? {
        // SAFETY: per this function's contract.
        Some(datum) => unsafe { Jsonb::from_spi(datum) },
        None => Jsonb::object(&[]),
    })
}

/// `user`'s statement.
const USER_SQL: &str = user_rows_sql!("");

/// The user, as GoTrue renders it; `None` for a missing or soft-deleted user.
pub fn user(user_id: Uuid) -> Option<User> {
    User::read(USER_SQL, &[user_id.into()], |_| Ok(())).map(|(user, ())| user)
}
