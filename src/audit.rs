//! `auth.audit_log_entries` rows shaped like GoTrue's, so its admin tools and the Supabase
//! dashboard show WeChat activity beside everything else. Off with `auth_wechat.audit_log`.

use crate::request;
use crate::store::{first_row, INSTANCE_ID};
use pgrx::{JsonB, Uuid};
use serde_json::{json, Value};

/// The GoTrue actions this extension performs, with GoTrue's log types.
#[derive(Clone, Copy, Debug)]
pub enum Action {
    SignedUp,
    Login,
    IdentityLinked,
    UserModified,
    TokenRefreshed,
    TokenRevoked,
    Logout,
}

impl Action {
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Action::SignedUp => ("user_signedup", "team"),
            Action::Login => ("login", "account"),
            Action::IdentityLinked => ("identity_linked", "account"),
            Action::UserModified => ("user_modified", "user"),
            Action::TokenRefreshed => ("token_refreshed", "token"),
            Action::TokenRevoked => ("token_revoked", "token"),
            Action::Logout => ("logout", "account"),
        }
    }
}

/// Records `action` by `actor` (their email or phone as `actor_username`), with the client IP
/// from PostgREST's `X-Forwarded-For`; `traits` such as `{"provider": "wechat_mini"}`.
pub fn record(action: Action, actor: Uuid, traits: Value) {
    if !crate::gucs::audit_log() {
        return;
    }
    let (name, log_type) = action.names();
    let ip = request::client().ip.map(|ip| ip.to_string()).unwrap_or_default();
    first_row(
        "INSERT INTO auth.audit_log_entries (instance_id, id, payload, created_at, ip_address)
         SELECT $1::uuid, gen_random_uuid(),
                json_build_object('actor_id', $2::uuid, 'actor_username', coalesce(
                                      (SELECT coalesce(nullif(u.email, ''), u.phone) FROM auth.users u WHERE u.id = $2), ''),
                                  'actor_via_sso', false, 'action', $3::text, 'log_type', $4::text, 'traits', $5::jsonb),
                now(), $6
      RETURNING 1",
        &[INSTANCE_ID.into(), actor.into(), name.into(), log_type.into(), JsonB(traits).into(), ip.into()],
        |row| row.get_one::<i32>(),
    );
}

/// The traits of a WeChat action.
pub fn wechat() -> Value {
    json!({"provider": crate::store::PROVIDER})
}
