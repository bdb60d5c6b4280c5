//! The statements of an import: who the database already has for a record (`matches`), and the
//! user's row written new (`insert_user`) or filled in (`fill_user`), with its email and phone
//! identities (`contact_identities`). The WeChat identities are written by `identity::attach`,
//! as sign-in writes them.
//!
//! Every value is a parameter, every table schema-qualified (see `spi`). Timestamps travel as
//! seconds since the epoch, read by `pg_catalog.to_timestamp`.

use super::record::{Banned, Contact, Password, Record};
use crate::identity::wechat_providers_sql;
use crate::ids;
use crate::spi::{latest_rows, write_row};
use crate::user::actor_name_sql;
use pgrx::{JsonB, Uuid};
use serde_json::Value;

/// How an existing user was found for a record.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Via {
    Openid,
    Unionid,
    /// MemFire's id, which the user keeps.
    Id,
    Email,
    Phone,
}

/// An existing user a record names.
pub struct Match {
    pub user_id: Uuid,
    pub via: Via,
    /// The openid, for a match by openid.
    pub openid: Option<String>,
    /// The user's `app_metadata.imported_from`, if an import made them.
    pub imported_from: Option<Value>,
    pub deleted: bool,
}

/// `matches`' statement (each branch an index scan: `provider_id = ANY` rather than a join with
/// the arrays, which the planner may answer with a scan of every identity): `$1`/`$2` the
/// record's providers and openids, `$3` its default-app
/// openid (MemFire's column), `$4` its unionid, `$5` the id it keeps, `$6` its email, `$7` its
/// phone.
const MATCHES_SQL: &str = concat!(
    "WITH m(user_id, via, openid) AS (
         SELECT i.user_id, 'openid', i.provider_id FROM auth.identities i
          WHERE i.provider_id = ANY ($2::text[])
            AND EXISTS (SELECT 1 FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) AS w(provider, openid)
                         WHERE w.provider = i.provider AND w.openid = i.provider_id)
         UNION ALL
         SELECT id, 'openid', wechat_id FROM auth.users WHERE wechat_id = $3 AND wechat_id <> ''
         UNION ALL
         SELECT user_id, 'unionid', NULL FROM auth.identities
          WHERE identity_data ->> 'unionid' = $4 AND provider = ANY (",
    wechat_providers_sql!(),
    ")
         UNION ALL
         SELECT id, 'unionid', NULL FROM auth.users WHERE wechat_unionid = $4 AND wechat_unionid <> ''
         UNION ALL
         SELECT id, 'id', NULL FROM auth.users WHERE id = $5
         UNION ALL
         SELECT id, 'email', NULL FROM auth.users WHERE email = $6 AND NOT is_sso_user
         UNION ALL
         SELECT id, 'phone', NULL FROM auth.users WHERE phone = $7
     )
     SELECT m.user_id, m.via, m.openid, u.raw_app_meta_data -> 'imported_from', u.deleted_at IS NOT NULL
       FROM m JOIN auth.users u ON u.id = m.user_id"
);

/// Every existing user the record's WeChat ids, kept id, email or phone name, as of now.
pub fn matches(record: &Record) -> Vec<Match> {
    let providers: Vec<&str> = record.wechat.iter().map(|(app, _)| app.kind.provider()).collect();
    let openids: Vec<&str> = record.wechat.iter().map(|(_, openid)| openid.as_str()).collect();
    let default_openid = record.wechat.iter().find(|(app, _)| app.default).map(|(_, openid)| openid.as_str());
    let args = [
        providers.into(),
        openids.into(),
        default_openid.into(),
        record.unionid.as_deref().into(),
        record.keep_id.into(),
        record.email.as_ref().map(|c| c.value.as_str()).into(),
        record.phone.as_ref().map(|c| c.value.as_str()).into(),
    ];
    latest_rows(MATCHES_SQL, &args, |table| {
        let mut found = Vec::new();
        if table.is_empty() {
            return Ok(found);
        }
        let mut row = table.first();
        loop {
            let via = match row.get::<String>(2)?.as_deref() {
                Some("openid") => Via::Openid,
                Some("unionid") => Via::Unionid,
                Some("id") => Via::Id,
                Some("email") => Via::Email,
                _ => Via::Phone,
            };
            if let Some(user_id) = row.get::<Uuid>(1)? {
                found.push(Match {
                    user_id,
                    via,
                    openid: row.get::<String>(3)?,
                    imported_from: row.get::<JsonB>(4)?.map(|JsonB(v)| v),
                    deleted: row.get::<bool>(5)?.unwrap_or(false),
                });
            }
            if row.next().is_none() {
                break;
            }
        }
        Ok(found)
    })
}

/// `$2`–`$6` and `$8`–`$11` of `insert_user` and `fill_user`: email and its confirmation, phone
/// and its, password hash, user metadata, creation time, ban (forever; until).
fn profile_args(record: &Record) -> [pgrx::datum::DatumWithOid<'static>; 9] {
    let contact = |c: &Option<Contact>| (c.as_ref().map(|c| c.value.clone()), c.as_ref().and_then(|c| c.confirmed_at));
    let (email, email_confirmed) = contact(&record.email);
    let (phone, phone_confirmed) = contact(&record.phone);
    let password = match &record.password {
        Password::Kept(hash) => Some(hash.clone()),
        Password::None | Password::NotImported => None,
    };
    let (forever, until) = match record.banned {
        Banned::No => (false, None),
        Banned::Forever => (true, None),
        Banned::Until(until) => (false, Some(until)),
    };
    [
        email.into(),
        email_confirmed.into(),
        phone.into(),
        phone_confirmed.into(),
        password.into(),
        JsonB(Value::Object(record.user_metadata.clone())).into(),
        record.created_at.into(),
        forever.into(),
        until.into(),
    ]
}

/// A user as GoTrue's admin API writes one, with the record's profile and `$7` its
/// `raw_app_meta_data`; `$1` the id, `$12` GoTrue's instance. A permanent ban is GoTrue's hundred
/// years. Returns the audit name.
const INSERT_USER_SQL: &str = concat!(
    "INSERT INTO auth.users AS u (
         instance_id, id, aud, role, email, email_confirmed_at, phone, phone_confirmed_at, encrypted_password,
         confirmation_token, recovery_token, email_change_token_new, email_change,
         phone_change, phone_change_token, email_change_token_current, reauthentication_token,
         raw_app_meta_data, raw_user_meta_data, is_super_admin, is_sso_user, is_anonymous,
         created_at, updated_at, banned_until)
     VALUES (
         $12::uuid, $1, 'authenticated', 'authenticated', $2, pg_catalog.to_timestamp($3), $4,
         pg_catalog.to_timestamp($5), coalesce($6, ''),
         '', '', '', '', '', '', '', '',
         $7, $8, false, false, false,
         coalesce(pg_catalog.to_timestamp($9), pg_catalog.now()), pg_catalog.now(),
         CASE WHEN $10 THEN pg_catalog.now() + interval '100 years' ELSE pg_catalog.to_timestamp($11) END)
     RETURNING ",
    actor_name_sql!()
);

/// Writes the record as a new user `user_id` whose `app_metadata` is `app_metadata`; returns the
/// audit name.
pub fn insert_user(record: &Record, user_id: Uuid, app_metadata: Value) -> String {
    let [a2, a3, a4, a5, a6, a8, a9, a10, a11] = profile_args(record);
    let args =
        [user_id.into(), a2, a3, a4, a5, a6, JsonB(app_metadata).into(), a8, a9, a10, a11, ids::INSTANCE_ID.into()];
    write_row(INSERT_USER_SQL, &args, |row| row.get_one::<String>())
        .flatten()
        .unwrap_or_else(|| pgrx::error!("auth_wechat: importing a user wrote no row"))
}

/// Fills in the user `$1` from another record of the same person: an email, phone or password
/// only where the user has none (another user may not hold them: `matches` saw to it), the
/// earlier creation time, the user's and app's metadata merged (`$8`, `$13`; the record's winning
/// when `$12`: it leads, see `import::leads`), the ban if the user is not banned now, and `$7` as
/// `imported_from`. No row unless something changed; then the audit name.
const FILL_USER_SQL: &str = concat!(
    "WITH n AS (
         SELECT u.id,
                coalesce(u.email, $2) AS email,
                CASE WHEN u.email IS NULL THEN pg_catalog.to_timestamp($3) ELSE u.email_confirmed_at END AS email_confirmed_at,
                coalesce(u.phone, $4) AS phone,
                CASE WHEN u.phone IS NULL THEN pg_catalog.to_timestamp($5) ELSE u.phone_confirmed_at END AS phone_confirmed_at,
                CASE WHEN coalesce(u.encrypted_password, '') = '' THEN coalesce($6, u.encrypted_password)
                     ELSE u.encrypted_password END AS encrypted_password,
                coalesce(LEAST(u.created_at, pg_catalog.to_timestamp($9)), u.created_at) AS created_at,
                CASE WHEN $12 THEN coalesce(u.raw_user_meta_data, '{}') || $8
                     ELSE $8 || coalesce(u.raw_user_meta_data, '{}') END AS raw_user_meta_data,
                pg_catalog.jsonb_set(CASE WHEN $12 THEN coalesce(u.raw_app_meta_data, '{}') || $13
                                          ELSE $13 || coalesce(u.raw_app_meta_data, '{}') END,
                                     '{imported_from}', $7) AS raw_app_meta_data,
                CASE WHEN $10 AND coalesce(u.banned_until, '-infinity') < pg_catalog.now()
                          THEN pg_catalog.now() + interval '100 years'
                     WHEN $11 IS NOT NULL AND coalesce(u.banned_until, '-infinity') < pg_catalog.to_timestamp($11)
                          THEN pg_catalog.to_timestamp($11)
                     ELSE u.banned_until END AS banned_until
           FROM auth.users u WHERE u.id = $1
     )
     UPDATE auth.users u
        SET email = n.email, email_confirmed_at = n.email_confirmed_at, phone = n.phone,
            phone_confirmed_at = n.phone_confirmed_at, encrypted_password = n.encrypted_password,
            created_at = n.created_at, raw_user_meta_data = n.raw_user_meta_data,
            raw_app_meta_data = n.raw_app_meta_data, banned_until = n.banned_until, updated_at = pg_catalog.now()
       FROM n
      WHERE u.id = n.id
        AND (u.email, u.email_confirmed_at, u.phone, u.phone_confirmed_at, u.encrypted_password, u.created_at,
             u.raw_user_meta_data, u.raw_app_meta_data, u.banned_until)
            IS DISTINCT FROM
            (n.email, n.email_confirmed_at, n.phone, n.phone_confirmed_at, n.encrypted_password, n.created_at,
             n.raw_user_meta_data, n.raw_app_meta_data, n.banned_until)
  RETURNING ",
    actor_name_sql!()
);

/// Fills in the user from the record (see `FILL_USER_SQL`), its metadata winning if it `leads`;
/// `Some(audit name)` if anything changed.
pub fn fill_user(record: &Record, user_id: Uuid, imported_from: Value, leads: bool) -> Option<String> {
    let [a2, a3, a4, a5, a6, a8, a9, a10, a11] = profile_args(record);
    let args = [
        user_id.into(),
        a2,
        a3,
        a4,
        a5,
        a6,
        JsonB(imported_from).into(),
        a8,
        a9,
        a10,
        a11,
        leads.into(),
        JsonB(Value::Object(record.app_metadata.clone())).into(),
    ];
    write_row(FILL_USER_SQL, &args, |row| row.get_one::<String>()).map(Option::unwrap_or_default)
}

/// The `email` and `phone` identities GoTrue keeps for a user with an email or a phone
/// (`provider_id` the user's id), made where missing, and their providers added to
/// `app_metadata` (the first one `provider` when there is none). A row when any was made.
const CONTACT_IDENTITIES_SQL: &str = "
    WITH c(provider, data) AS (
        SELECT 'email', pg_catalog.jsonb_build_object('sub', u.id::text, 'email', u.email,
                   'email_verified', u.email_confirmed_at IS NOT NULL, 'phone_verified', false)
          FROM auth.users u WHERE u.id = $1 AND coalesce(u.email, '') <> ''
        UNION ALL
        SELECT 'phone', pg_catalog.jsonb_build_object('sub', u.id::text, 'phone', u.phone,
                   'email_verified', false, 'phone_verified', u.phone_confirmed_at IS NOT NULL)
          FROM auth.users u WHERE u.id = $1 AND coalesce(u.phone, '') <> ''
    ), i AS (
        INSERT INTO auth.identities (provider_id, user_id, identity_data, provider, created_at, updated_at)
        SELECT $1::text, $1, c.data, c.provider, pg_catalog.now(), pg_catalog.now() FROM c
        ON CONFLICT (provider_id, provider) DO NOTHING
        RETURNING provider
    )
    UPDATE auth.users u
       SET raw_app_meta_data = coalesce(u.raw_app_meta_data, '{}') || pg_catalog.jsonb_build_object(
               'provider', coalesce(nullif(u.raw_app_meta_data ->> 'provider', ''), (SELECT pg_catalog.min(provider) FROM i)),
               'providers', coalesce(u.raw_app_meta_data -> 'providers', '[]')
                            || coalesce((SELECT pg_catalog.jsonb_agg(provider ORDER BY provider) FROM i
                                          WHERE NOT coalesce(u.raw_app_meta_data -> 'providers', '[]') ? provider), '[]'))
     WHERE u.id = $1 AND EXISTS (SELECT 1 FROM i)
 RETURNING true";

/// Makes the user's missing email and phone identities; whether any was made.
pub fn contact_identities(user_id: Uuid) -> bool {
    write_row(CONTACT_IDENTITIES_SQL, &[user_id.into()], |row| row.get_one::<bool>()).flatten().unwrap_or(false)
}
