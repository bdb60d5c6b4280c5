//! `auth.audit_log_entries` rows shaped like GoTrue's, so its admin tools and the Supabase
//! dashboard show WeChat activity beside everything else. Off with `auth_wechat.audit_log`.

use crate::request;
use crate::store::{execute, INSTANCE_ID};
use pgrx::datum::DatumWithOid;
use pgrx::Uuid;
use serde_json::{json, Value};
use std::sync::LazyLock;

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

/// `record`'s statement for one action and for two (a rotation writes two), assembled once:
/// the actions are a `VALUES` list, the payload is built as `json` (the column's type) with
/// GoTrue's keys in GoTrue's (alphabetical) order, and the actor's name is read once.
static ONE_ACTION: LazyLock<String> = LazyLock::new(|| record_sql(1));
static TWO_ACTIONS: LazyLock<String> = LazyLock::new(|| record_sql(2));

fn record_sql(actions: usize) -> String {
    let values: Vec<String> =
        (0..actions).map(|i| format!("(${}::text, ${}::text, ${}::text)", 4 + 3 * i, 5 + 3 * i, 6 + 3 * i)).collect();
    format!(
        "INSERT INTO auth.audit_log_entries (instance_id, id, payload, created_at, ip_address)
         SELECT $1::uuid, gen_random_uuid(),
                CASE WHEN $3::json IS NULL
                     THEN json_build_object('action', a.action, 'actor_id', $2::uuid, 'actor_username', n.name,
                                            'actor_via_sso', false, 'log_type', a.log_type)
                     ELSE json_build_object('action', a.action, 'actor_id', $2::uuid, 'actor_username', n.name,
                                            'actor_via_sso', false, 'log_type', a.log_type, 'traits', $3::json) END,
                now(), a.ip
           FROM (SELECT coalesce((SELECT coalesce(nullif(u.email, ''), u.phone) FROM auth.users u WHERE u.id = $2), '')
                        AS name) n,
                (VALUES {}) AS a(action, log_type, ip)",
        values.join(", ")
    )
}

/// Records `actions` (one or two) by `actor` (their email or phone as `actor_username`), in one
/// statement, with the client IP from PostgREST's `X-Forwarded-For`, and `traits` such as
/// `{"provider": "wechat_mini"}` when given. GoTrue's token rows carry neither traits nor an IP.
pub fn record(actions: &[Action], actor: Uuid, traits: Option<Value>) {
    if !crate::gucs::audit_log() || actions.is_empty() {
        return;
    }
    let sql = match actions.len() {
        1 => &ONE_ACTION,
        2 => &TWO_ACTIONS,
        n => pgrx::error!("auth_wechat: {n} audit actions in one call"),
    };
    let mut client_ip = None;
    let mut args: Vec<DatumWithOid> = vec![INSTANCE_ID.into(), actor.into(), traits.map(|t| t.to_string()).into()];
    for action in actions {
        let (name, log_type) = action.names();
        let ip = match action {
            Action::TokenRefreshed | Action::TokenRevoked => String::new(),
            _ => client_ip
                .get_or_insert_with(|| request::client().ip.map(|ip| ip.to_string()).unwrap_or_default())
                .clone(),
        };
        args.extend([name.into(), log_type.into(), ip.into()]);
    }
    execute(sql, &args);
}

/// The traits of a WeChat sign-up or sign-in.
pub fn wechat() -> Option<Value> {
    Some(json!({"provider": crate::store::PROVIDER}))
}

/// The traits of GoTrue's `identity_linked`.
pub fn identity_linked(identity_id: Uuid, openid: &str) -> Option<Value> {
    Some(json!({"identity_id": identity_id.to_string(), "provider": crate::store::PROVIDER, "provider_id": openid}))
}
