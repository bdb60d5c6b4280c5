//! `auth.audit_log_entries` rows shaped like GoTrue's, so its admin tools and the Supabase
//! dashboard show WeChat activity beside everything else. Off with `auth_wechat.audit_log`.

use crate::request;
use crate::store::{execute, INSTANCE_ID};
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

/// Records `actions` by `actor` (their email or phone as `actor_username`), in one statement,
/// with the client IP from PostgREST's `X-Forwarded-For`, and `traits` such as
/// `{"provider": "wechat_mini"}` when given. GoTrue's token rows carry neither traits nor an IP.
pub fn record(actions: &[Action], actor: Uuid, traits: Option<Value>) {
    if !crate::gucs::audit_log() || actions.is_empty() {
        return;
    }
    let mut client_ip = None;
    let mut ip = |action: &Action| match action {
        Action::TokenRefreshed | Action::TokenRevoked => String::new(),
        _ => client_ip.get_or_insert_with(|| request::client().ip.map(|ip| ip.to_string()).unwrap_or_default()).clone(),
    };
    let names: Vec<&str> = actions.iter().map(|a| a.names().0).collect();
    let log_types: Vec<&str> = actions.iter().map(|a| a.names().1).collect();
    let ips: Vec<String> = actions.iter().map(&mut ip).collect();
    execute(
        "INSERT INTO auth.audit_log_entries (instance_id, id, payload, created_at, ip_address)
         SELECT $1::uuid, gen_random_uuid(),
                jsonb_build_object('actor_id', $2::uuid, 'actor_username', coalesce(
                                       (SELECT coalesce(nullif(u.email, ''), u.phone) FROM auth.users u WHERE u.id = $2), ''),
                                   'actor_via_sso', false, 'action', a.action, 'log_type', a.log_type)
                || CASE WHEN $5::jsonb IS NULL THEN '{}' ELSE jsonb_build_object('traits', $5::jsonb) END,
                now(), a.ip
           FROM unnest($3::text[], $4::text[], $6::text[]) WITH ORDINALITY AS a(action, log_type, ip, n)
          ORDER BY a.n
      RETURNING 1",
        &[INSTANCE_ID.into(), actor.into(), names.into(), log_types.into(), traits.map(JsonB).into(), ips.into()],
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
