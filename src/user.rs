//! The user as GoTrue renders it (its JSON, plus MemFire's `wechat_id` and `wechat_unionid`),
//! read from its row and its identities' rows and rendered in Rust; and GoTrue's name for a user
//! in its audit log.

use crate::ids;
use crate::jsonb::{Jsonb, Member};
use crate::spi::{first_row, read_rows};
use pgrx::datum::DatumWithOid;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::spi::{SpiResult, SpiTupleTable};
use pgrx::Uuid;

/// GoTrue's name for a user in its audit log (`actor_username`): the email, else the phone, over
/// `auth.users u` (a literal, for `concat!`).
macro_rules! actor_name_sql {
    () => {
        "coalesce(nullif(u.email, ''), u.phone, '')"
    };
}
pub(crate) use actor_name_sql;

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
