//! `auth.audit_log_entries` rows shaped like GoTrue's, so its admin tools and the Supabase
//! dashboard show WeChat activity beside everything else. Off with `auth_wechat.audit_log`.

use crate::ids::uuid_text;
use crate::ids::INSTANCE_ID;
use crate::request;
use crate::spi::execute;
use pgrx::datum::DatumWithOid;
use pgrx::datum::JsonString;
use pgrx::Uuid;
use serde::Serialize;
use serde_json::{json, Value};

/// The GoTrue actions this extension performs, with GoTrue's log types.
#[derive(Clone, Copy, Debug)]
pub enum Action {
    SignedUp,
    Login,
    IdentityLinked,
    IdentityUnlinked,
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
            Action::IdentityUnlinked => ("identity_unlinked", "user"),
            Action::UserModified => ("user_modified", "user"),
            Action::TokenRefreshed => ("token_refreshed", "token"),
            Action::TokenRevoked => ("token_revoked", "token"),
            Action::Logout => ("logout", "account"),
        }
    }
}

/// `record`'s statements: one row, or two (a rotation writes two). The payload arrives built
/// (`payload`), so a row costs no more than its insert.
const ONE_ACTION: &str = "INSERT INTO auth.audit_log_entries (instance_id, id, payload, created_at, ip_address)
                          VALUES ($1::uuid, pg_catalog.gen_random_uuid(), $2, pg_catalog.now(), $3)";
const TWO_ACTIONS: &str = "INSERT INTO auth.audit_log_entries (instance_id, id, payload, created_at, ip_address)
                           VALUES ($1::uuid, pg_catalog.gen_random_uuid(), $2, pg_catalog.now(), $3),
                                  ($1::uuid, pg_catalog.gen_random_uuid(), $4, pg_catalog.now(), $5)";

/// GoTrue's audit payload, its keys in GoTrue's (alphabetical) order, serialised as declared.
#[derive(Serialize)]
struct Payload<'a> {
    action: &'static str,
    actor_id: &'a str,
    actor_username: &'a str,
    actor_via_sso: bool,
    log_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    traits: Option<&'a Value>,
}

fn payload(action: Action, actor_id: &str, actor_name: &str, traits: Option<&Value>) -> JsonString {
    let (action, log_type) = action.names();
    let payload = Payload { action, actor_id, actor_username: actor_name, actor_via_sso: false, log_type, traits };
    JsonString(serde_json::to_string(&payload).expect("the payload serialises"))
}

/// Records `actions` (one or two) by `actor`, in one statement, with the client IP from
/// PostgREST's `X-Forwarded-For`, and `traits` such as `{"provider": "wechat_mini"}` when given.
/// `actor_name` is GoTrue's `actor_username`, the user's email or else phone
/// (`user::actor_name_sql!`), as the caller's statements read it. GoTrue's token rows carry
/// neither traits nor an IP.
pub fn record(actions: &[Action], actor: Uuid, actor_name: &str, traits: Option<Value>) {
    if !crate::gucs::audit_log() || actions.is_empty() {
        return;
    }
    let sql = match actions.len() {
        1 => ONE_ACTION,
        2 => TWO_ACTIONS,
        n => pgrx::error!("auth_wechat: {n} audit actions in one call"),
    };
    let actor_id = uuid_text(actor);
    let mut client_ip = None;
    let mut args: Vec<DatumWithOid> = vec![INSTANCE_ID.into()];
    for &action in actions {
        let ip = match action {
            Action::TokenRefreshed | Action::TokenRevoked => String::new(),
            _ => client_ip
                .get_or_insert_with(|| request::client().ip.map(|ip| ip.to_string()).unwrap_or_default())
                .clone(),
        };
        args.extend([payload(action, &actor_id, actor_name, traits.as_ref()).into(), ip.into()]);
    }
    execute(sql, &args);
}

/// The traits of a sign-up or sign-in through `provider`.
pub fn provider(provider: &str) -> Option<Value> {
    Some(json!({ "provider": provider }))
}

/// The traits of GoTrue's `identity_linked` and `identity_unlinked`.
pub fn identity(identity_id: Uuid, provider: &str, openid: &str) -> Option<Value> {
    Some(json!({"identity_id": uuid_text(identity_id), "provider": provider, "provider_id": openid}))
}
