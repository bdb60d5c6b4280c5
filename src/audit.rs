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
            Action::IdentityLinked => ("identity_linked", "user"),
            Action::UserModified => ("user_modified", "user"),
            Action::TokenRefreshed => ("token_refreshed", "token"),
            Action::TokenRevoked => ("token_revoked", "token"),
            Action::Logout => ("logout", "account"),
        }
    }
}

/// Records `action` by `actor` (their email or phone as `actor_username`), with the client IP
/// from PostgREST's `X-Forwarded-For`, and `traits` such as `{"provider": "wechat_mini"}` when
/// given. GoTrue's token rows carry neither traits nor an IP.
pub fn record(action: Action, actor: Uuid, traits: Option<Value>) {
    if !crate::gucs::audit_log() {
        return;
    }
    let (name, log_type) = action.names();
    let ip = match action {
        Action::TokenRefreshed | Action::TokenRevoked => String::new(),
        _ => request::client().ip.map(|ip| ip.to_string()).unwrap_or_default(),
    };
    first_row(
        "INSERT INTO auth.audit_log_entries (instance_id, id, payload, created_at, ip_address)
         SELECT $1::uuid, gen_random_uuid(),
                jsonb_build_object('actor_id', $2::uuid, 'actor_username', coalesce(
                                       (SELECT coalesce(nullif(u.email, ''), u.phone) FROM auth.users u WHERE u.id = $2), ''),
                                   'actor_via_sso', false, 'action', $3::text, 'log_type', $4::text)
                || CASE WHEN $5::jsonb IS NULL THEN '{}' ELSE jsonb_build_object('traits', $5::jsonb) END,
                now(), $6
      RETURNING 1",
        &[INSTANCE_ID.into(), actor.into(), name.into(), log_type.into(), traits.map(JsonB).into(), ip.into()],
        |row| row.get_one::<i32>(),
    );
}

/// The traits of a WeChat sign-up or sign-in.
pub fn wechat() -> Option<Value> {
    Some(json!({"provider": crate::store::PROVIDER}))
}

/// The traits of GoTrue's `identity_linked`.
pub fn identity_linked(identity_id: Uuid, openid: &str) -> Option<Value> {
    Some(json!({"identity_id": identity_id.to_string(), "provider": crate::store::PROVIDER, "provider_id": openid}))
}
