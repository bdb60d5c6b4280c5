//! `auth.audit_log_entries` rows shaped like GoTrue's, so its admin tools and the Supabase
//! dashboard show WeChat activity beside everything else. Off with `auth_wechat.audit_log`.

use crate::request;
use crate::store::{execute, uuid_text, INSTANCE_ID};
use pgrx::datum::DatumWithOid;
use pgrx::Uuid;
use serde_json::{json, Map, Value};

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

/// `record`'s statements: one row, or two (a rotation writes two). The payload arrives built
/// (`payload`), so a row costs no more than its insert.
const ONE_ACTION: &str = "INSERT INTO auth.audit_log_entries (instance_id, id, payload, created_at, ip_address)
                          VALUES ($1::uuid, gen_random_uuid(), $2, now(), $3)";
const TWO_ACTIONS: &str = "INSERT INTO auth.audit_log_entries (instance_id, id, payload, created_at, ip_address)
                           VALUES ($1::uuid, gen_random_uuid(), $2, now(), $3),
                                  ($1::uuid, gen_random_uuid(), $4, now(), $5)";

/// GoTrue's audit payload, its keys in GoTrue's (alphabetical) order whichever way serde_json
/// keeps maps.
fn payload(action: Action, actor: Uuid, actor_name: &str, traits: Option<&Value>) -> pgrx::Json {
    let (name, log_type) = action.names();
    let mut payload = Map::new();
    payload.insert("action".into(), name.into());
    payload.insert("actor_id".into(), uuid_text(actor).into());
    payload.insert("actor_username".into(), actor_name.into());
    payload.insert("actor_via_sso".into(), false.into());
    payload.insert("log_type".into(), log_type.into());
    if let Some(traits) = traits {
        payload.insert("traits".into(), traits.clone());
    }
    pgrx::Json(Value::Object(payload))
}

/// Records `actions` (one or two) by `actor`, in one statement, with the client IP from
/// PostgREST's `X-Forwarded-For`, and `traits` such as `{"provider": "wechat_mini"}` when given.
/// `actor_name` is GoTrue's `actor_username`, the user's email or else phone
/// (`store::actor_name_sql!`), as the caller's statements read it. GoTrue's token rows carry
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
    let mut client_ip = None;
    let mut args: Vec<DatumWithOid> = vec![INSTANCE_ID.into()];
    for &action in actions {
        let ip = match action {
            Action::TokenRefreshed | Action::TokenRevoked => String::new(),
            _ => client_ip
                .get_or_insert_with(|| request::client().ip.map(|ip| ip.to_string()).unwrap_or_default())
                .clone(),
        };
        args.extend([payload(action, actor, actor_name, traits.as_ref()).into(), ip.into()]);
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
