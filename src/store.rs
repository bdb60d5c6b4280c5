//! The rows of `auth.users` that flows lock and change besides the WeChat identities
//! (`identity`): the locks that order concurrent writers, and the phone a bind confirms.
//!
//! Every table is schema-qualified and every value is a parameter (see `spi`). Statements run in
//! the caller's transaction, and only after WeChat has answered, so no row lock is ever held
//! across a network wait.

use crate::spi::{first_row, latest_row, write_row};
use crate::user::actor_name_sql;
use pgrx::Uuid;

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

/// Serialises, until the end of the transaction, every change of one user's identities or phone
/// (binds, unlinks, links, moves): each then sees the others' committed rows. An advisory lock,
/// not the row's: taken after the value locks (`lock_value`) and before any row is written, so
/// that every writer takes its locks in one order (unionid, openid, user, then rows) and none
/// waits for another in a circle. `false` if the user does not exist or was soft-deleted.
pub fn lock_user(user_id: Uuid) -> bool {
    latest_row(
        "SELECT EXISTS (SELECT 1 FROM auth.users WHERE id = $1 AND deleted_at IS NULL)
           FROM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('auth_wechat:user:' || $1::text, 0))",
        &[user_id.into()],
        |row| row.get_one::<bool>(),
    )
    .flatten()
    .unwrap_or(false)
}

/// The user holding `phone`, if any, as of now (read after the number's lock).
pub fn phone_owner(phone: &str) -> Option<Uuid> {
    latest_row("SELECT id FROM auth.users WHERE phone = $1", &[phone.into()], |row| row.get_one::<Uuid>()).flatten()
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
