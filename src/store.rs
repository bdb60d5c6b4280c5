//! Reads and writes of Supabase Auth's tables (`auth.users`, `auth.identities`) through SPI.
//!
//! Every table is schema-qualified and every value is a parameter. Statements run in the
//! caller's transaction, and only after WeChat has answered, so no row lock is ever held across
//! a network wait.

use crate::jsonb::{Jsonb, OmitEmpty};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::PgOid;
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiResult, SpiTupleTable};
use pgrx::Uuid;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// The provider name MemFire uses for WeChat Mini Program identities.
pub const PROVIDER: &str = "wechat_mini";
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

thread_local! {
    /// Whether this database's `auth.sessions` has GoTrue's v2 refresh-token columns; read once
    /// per backend (a backend serves one database).
    static V2_COLUMNS: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
    /// Each statement is parsed and planned once per backend, then its plan is kept (Postgres
    /// re-plans it by itself when a table it reads changes shape). Statements are `'static`
    /// texts, so their address and length name them: no hashing of kilobytes of SQL per call.
    static PLANS: RefCell<HashMap<(usize, usize), Rc<OwnedPreparedStatement>>> = RefCell::new(HashMap::new());
}

/// Runs one statement and reads its first row with `read`; `None` when it returned no row.
/// SPI failures are bugs or broken schemas, not caller errors: they become internal errors.
pub fn first_row<T>(
    sql: &'static str,
    args: &[DatumWithOid],
    read: impl FnOnce(SpiTupleTable) -> SpiResult<T>,
) -> Option<T> {
    run(sql, args, Some(1), |table| if table.is_empty() { Ok(None) } else { read(table.first()).map(Some) })
}

/// Runs one statement to completion (every row of a multi-row `INSERT ... RETURNING`, which
/// `first_row`'s one-row limit would stop after the first); its rows are not read.
pub fn execute(sql: &'static str, args: &[DatumWithOid]) {
    run(sql, args, None, |_| Ok(()));
}

fn run<T>(
    sql: &'static str,
    args: &[DatumWithOid],
    limit: Option<libc::c_long>,
    read: impl FnOnce(SpiTupleTable) -> SpiResult<T>,
) -> T {
    let result = Spi::connect_mut(|client| {
        let cached = PLANS.with(|plans| plans.borrow().get(&(sql.as_ptr() as usize, sql.len())).cloned());
        let plan = match cached {
            Some(plan) => plan,
            None => {
                let types: Vec<PgOid> = args.iter().map(|a| PgOid::from(a.oid())).collect();
                let plan = Rc::new(client.prepare_mut(sql, &types)?.keep());
                PLANS.with(|plans| plans.borrow_mut().insert((sql.as_ptr() as usize, sql.len()), Rc::clone(&plan)));
                plan
            }
        };
        // The map is not borrowed while the statement runs: it may call back into this code
        // (an access-token hook that signs users in, say).
        read(client.update(&*plan, limit, args)?)
    });
    result.unwrap_or_else(|e| pgrx::error!("auth_wechat: database access failed: {e}"))
}

/// Whether `auth.sessions` has `refresh_token_hmac_key` and `refresh_token_counter` (GoTrue's
/// migrations since 2025-10). Without them, v2 refresh tokens are neither issued nor accepted.
pub fn has_v2_columns() -> bool {
    if let Some(known) = V2_COLUMNS.with(|c| c.get()) {
        return known;
    }
    let found = first_row(
        "SELECT count(*) = 2 FROM pg_catalog.pg_attribute
          WHERE attrelid = 'auth.sessions'::regclass AND NOT attisdropped
            AND attname IN ('refresh_token_hmac_key', 'refresh_token_counter')",
        &[],
        |row| row.get_one::<bool>(),
    )
    .flatten()
    .unwrap_or(false);
    V2_COLUMNS.with(|c| c.set(Some(found)));
    found
}

pub fn find_by_openid(openid: &str) -> Option<Found> {
    // `wechat_id <> ''` lets the planner use the partial unique index.
    first_row(
        concat!(
            "SELECT id, coalesce(banned_until > now(), false), deleted_at IS NOT NULL, ",
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
    first_row(
        concat!(
            "UPDATE auth.users u
                SET last_sign_in_at = now(),
                    wechat_unionid = coalesce($2, wechat_unionid)
              WHERE wechat_id = $1 AND wechat_id <> ''
          RETURNING id, coalesce(banned_until > now(), false), deleted_at IS NOT NULL, ",
            actor_name_sql!()
        ),
        &[openid.into(), unionid.into()],
        found,
    )
    .flatten()
}

fn found(row: SpiTupleTable) -> SpiResult<Option<Found>> {
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

/// Creates a WeChat user as GoTrue would write one, signing in now; `None` when a concurrent sign-in of the same
/// openid created it first (the caller then finds that user).
pub fn create_user(id: Uuid, openid: &str, unionid: Option<&str>) -> Option<Uuid> {
    first_row(
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
                     jsonb_build_object('provider', $5::text, 'providers', jsonb_build_array($5::text)), '{}', false, false, false,
                     now(), now(), now(), $2, coalesce($3, ''))
                 ON CONFLICT (wechat_id) WHERE wechat_id <> '' DO NOTHING
                 RETURNING id",
        &[id.into(), openid.into(), unionid.into(), INSTANCE_ID.into(), PROVIDER.into()],
        |row| row.get_one::<Uuid>(),
    )
    .flatten()
}

/// Serialises, until the end of the transaction, every writer of one WeChat openid or phone
/// number (sign-up, binding): each then sees the others' committed rows and answers a clean
/// conflict instead of tripping over the unique index. Taken only after WeChat has answered.
pub fn lock_value(kind: &str, value: &str) {
    first_row(
        "SELECT 1 FROM pg_advisory_xact_lock(hashtextextended('auth_wechat:' || $1 || ':' || $2, 0))",
        &[kind.into(), value.into()],
        |row| row.get_one::<i32>(),
    );
}

/// Whether the user is banned now; `None` when there is no such user, or it was soft-deleted.
pub fn user_banned(user_id: Uuid) -> Option<bool> {
    first_row(
        "SELECT coalesce(banned_until > now(), false) FROM auth.users WHERE id = $1 AND deleted_at IS NULL",
        &[user_id.into()],
        |row| row.get_one::<bool>(),
    )
    .map(|banned| banned.unwrap_or(false))
}

/// Locks the user's row for this transaction and returns its openid (`''` when unbound); `None`
/// if the user does not exist or was soft-deleted.
pub fn lock_user(user_id: Uuid) -> Option<String> {
    first_row(
        "SELECT coalesce(wechat_id, '') FROM auth.users WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
        &[user_id.into()],
        |row| row.get_one::<String>(),
    )
    .map(Option::unwrap_or_default)
}

/// Binds an openid to an existing user: the WeChat columns, and `wechat_mini` added to
/// `app_metadata.providers` while the primary `provider` (e.g. `phone`) stays. Returns the user's
/// audit name (`actor_name_sql!`).
pub fn bind_wechat(user_id: Uuid, openid: &str, unionid: Option<&str>) -> String {
    first_row(
        concat!(
            "UPDATE auth.users u
            SET wechat_id = $2,
                wechat_unionid = coalesce($3, wechat_unionid),
                raw_app_meta_data = jsonb_set(
                    coalesce(raw_app_meta_data, '{}')
                      || CASE WHEN coalesce(raw_app_meta_data ->> 'provider', '') = ''
                              THEN jsonb_build_object('provider', $4::text) ELSE '{}' END,
                    '{providers}',
                    CASE WHEN coalesce(raw_app_meta_data -> 'providers', '[]') ? $4::text
                         THEN raw_app_meta_data -> 'providers'
                         ELSE coalesce(raw_app_meta_data -> 'providers', '[]') || jsonb_build_array($4::text) END),
                updated_at = now()
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

/// The upsert of a user's `wechat_mini` identity (`$1` user, `$2` openid, `$3` unionid, `$4`
/// provider), as a literal for `concat!`: created on first use, refreshed afterwards. Sign-in runs
/// it inside its session statement (`session::start`), binding on its own (`upsert_identity`).
macro_rules! identity_upsert_sql {
    () => {
        "INSERT INTO auth.identities AS i
                (provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at)
         VALUES ($2, $1,
                 jsonb_build_object('sub', $2, 'openid', $2)
                   || CASE WHEN $3::text IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('unionid', $3::text) END,
                 $4, now(), now(), now())
         ON CONFLICT (provider_id, provider) DO UPDATE
            SET user_id = excluded.user_id,
                identity_data = i.identity_data || excluded.identity_data,
                last_sign_in_at = excluded.last_sign_in_at,
                updated_at = excluded.updated_at"
    };
}
pub(crate) use identity_upsert_sql;

/// The user's `wechat_mini` identity, created or refreshed (`identity_upsert_sql!`); returns its id.
pub fn upsert_identity(user_id: Uuid, openid: &str, unionid: Option<&str>) -> Uuid {
    first_row(
        concat!(identity_upsert_sql!(), " RETURNING i.id"),
        &[user_id.into(), openid.into(), unionid.into(), PROVIDER.into()],
        |row| row.get_one::<Uuid>(),
    )
    .flatten()
    .unwrap_or_else(|| pgrx::error!("auth_wechat: identity upsert returned no row"))
}

/// The user holding `phone`, if any.
pub fn phone_owner(phone: &str) -> Option<Uuid> {
    first_row("SELECT id FROM auth.users WHERE phone = $1", &[phone.into()], |row| row.get_one::<Uuid>()).flatten()
}

/// Sets a number WeChat confirmed, and keeps the user's `phone` identity (if they signed up by
/// phone) in step, as GoTrue does when a phone change is confirmed. Returns the user's audit
/// name (`actor_name_sql!`), which the number may now be.
pub fn set_phone(user_id: Uuid, phone: &str) -> String {
    first_row(
        concat!(
            "WITH i AS (
                 UPDATE auth.identities SET identity_data = identity_data || jsonb_build_object('phone', $2::text),
                                            updated_at = now()
                  WHERE user_id = $1 AND provider = 'phone'
             )
             UPDATE auth.users u SET phone = $2, phone_confirmed_at = now(), updated_at = now() WHERE id = $1
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

/// The user as GoTrue renders it, plus MemFire's `wechat_id`/`wechat_unionid`, as a SQL
/// expression over `auth.users u` (a literal, for `concat!`). GoTrue's `omitempty` members
/// (`OMIT_EMPTY`) are there even when null: they are left out as the value is copied into its
/// answer (`Member::OmitEmpty`, `Jsonb::omit_empty`).
macro_rules! user_json_sql {
    () => {
        "jsonb_build_object(
                    'id', u.id,
                    'aud', coalesce(u.aud, ''),
                    'role', coalesce(u.role, ''),
                    'email', coalesce(u.email, ''),
                    'phone', coalesce(u.phone, ''),
                    'app_metadata', coalesce(u.raw_app_meta_data, '{}'),
                    'user_metadata', coalesce(u.raw_user_meta_data, '{}'),
                    'identities', coalesce((
                        SELECT jsonb_agg(jsonb_build_object(
                                   'identity_id', i.id,
                                   'id', i.provider_id,
                                   'user_id', i.user_id,
                                   'identity_data', i.identity_data,
                                   'provider', i.provider,
                                   'created_at', i.created_at,
                                   'updated_at', i.updated_at,
                                   'last_sign_in_at', i.last_sign_in_at,
                                   'email', i.email)
                               ORDER BY i.created_at, i.id)
                          FROM auth.identities i
                         WHERE i.user_id = u.id), '[]'),
                    'created_at', u.created_at,
                    'updated_at', u.updated_at,
                    'is_anonymous', coalesce(u.is_anonymous, false),
                    'wechat_id', coalesce(u.wechat_id, ''),
                    'wechat_unionid', coalesce(u.wechat_unionid, ''),
                    'email_confirmed_at', u.email_confirmed_at,
                    'phone_confirmed_at', u.phone_confirmed_at,
                    'confirmation_sent_at', u.confirmation_sent_at,
                    'confirmed_at', u.confirmed_at,
                    'last_sign_in_at', u.last_sign_in_at,
                    'banned_until', u.banned_until)"
    };
}
pub(crate) use user_json_sql;

/// The members of `user_json_sql!` that GoTrue leaves out when null: the user's timestamps, and
/// an identity's last sign-in and email.
pub const OMIT_EMPTY: OmitEmpty = OmitEmpty {
    top: &[
        "email_confirmed_at",
        "phone_confirmed_at",
        "confirmation_sent_at",
        "confirmed_at",
        "last_sign_in_at",
        "banned_until",
    ],
    nested: ("identities", &["last_sign_in_at", "email"]),
};

/// The user as `user_json_sql!` builds it (null `omitempty` members still in); `None` for a
/// missing or soft-deleted user.
pub fn user_json(user_id: Uuid) -> Option<Jsonb> {
    first_row(
        concat!("SELECT ", user_json_sql!(), " FROM auth.users u WHERE u.id = $1 AND u.deleted_at IS NULL"),
        &[user_id.into()],
        // SAFETY: inside the SPI connection that returned the row; the column is jsonb.
        |row| Ok(row.get_datum_by_ordinal(1)?.map(|datum| unsafe { Jsonb::from_spi(datum) })),
    )
    .flatten()
}
