//! What PostgREST tells a function about the HTTP request: the caller's JWT claims
//! (`request.jwt.claims`, as `auth.uid()` reads them) and the headers (`request.headers`).

use crate::error::AuthError;
use crate::gucs;
use pgrx::Uuid;
use serde_json::Value;
use std::net::IpAddr;

/// The signed-in caller.
pub struct Caller {
    pub user_id: Uuid,
    /// The caller's session, when the token names one.
    pub session_id: Option<Uuid>,
}

/// The signed-in caller; `NotSignedIn` when the claims carry no user.
pub fn caller() -> Result<Caller, AuthError> {
    let claims = json_setting(c"request.jwt.claims");
    let sub = gucs::custom_setting(c"request.jwt.claim.sub")
        .filter(|s| !s.is_empty())
        .or_else(|| claims["sub"].as_str().map(str::to_string));
    let user_id = sub.as_deref().and_then(parse_uuid).ok_or(AuthError::NotSignedIn)?;
    let session_id = claims["session_id"].as_str().and_then(parse_uuid);
    Ok(Caller { user_id, session_id })
}

/// The client as GoTrue records it on sessions and in the audit log.
pub struct Client {
    pub user_agent: Option<String>,
    /// The first address of `X-Forwarded-For`, when it is one.
    pub ip: Option<IpAddr>,
}

pub fn client() -> Client {
    let headers = json_setting(c"request.headers");
    let user_agent =
        headers["user-agent"].as_str().filter(|ua| !ua.is_empty()).map(|ua| ua.chars().take(512).collect());
    let ip = headers["x-forwarded-for"]
        .as_str()
        .and_then(|list| list.split(',').next())
        .and_then(|ip| ip.trim().parse().ok());
    Client { user_agent, ip }
}

/// Who the caller is for the per-client share of WeChat calls: the first value of the header
/// `auth_wechat.rate_limit_header` names (set by the operator's gateway, so trusted only behind
/// one); `""` for a request without it, which all count as one client; `None` when the setting
/// is empty.
pub fn rate_limit_client() -> Option<String> {
    let header = gucs::rate_limit_header()?;
    let headers = json_setting(c"request.headers");
    let value = headers[header.as_str()].as_str().unwrap_or_default();
    Some(value.split(',').next().unwrap_or_default().trim().to_string())
}

/// Asks PostgREST to answer with `status` while still committing (its `response.status`).
pub fn set_response_status(status: u16) {
    crate::spi::first_row(
        "SELECT 1 FROM pg_catalog.set_config('response.status', $1, true)",
        &[status.to_string().into()],
        |row| row.get_one::<i32>(),
    );
}

fn json_setting(name: &std::ffi::CStr) -> Value {
    gucs::custom_setting(name)
        .filter(|v| !v.is_empty())
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or(Value::Null)
}

fn parse_uuid(text: &str) -> Option<Uuid> {
    uuid::Uuid::parse_str(text).ok().map(|u| Uuid::from_bytes(*u.as_bytes()))
}
