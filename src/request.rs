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

/// Who the caller is for the per-client limits (the share of WeChat calls, the refresh budget):
/// the address in the header `auth_wechat.rate_limit_header` names, set by the operator's gateway
/// (so trusted only behind one); `""` for a request without it, which all count as one client;
/// `None` when the setting is empty. See `client_of` for which value of a list counts.
pub fn rate_limit_client() -> Option<String> {
    let header = gucs::rate_limit_header()?;
    let headers = json_setting(c"request.headers");
    Some(client_of(headers[header.as_str()].as_str().unwrap_or_default(), gucs::rate_limit_header_hops()))
}

/// The client a header value names: of a list (`X-Forwarded-For: <what the client sent>, …, <what
/// the gateway saw>`), the value `hops` from the right, as gateways append the address they saw
/// to whatever the client sent (the first value of a shorter list); an IPv6 address stands for
/// its /64, which one subscriber usually holds whole.
fn client_of(value: &str, hops: usize) -> String {
    let values: Vec<&str> = value.split(',').map(str::trim).collect();
    let chosen = values.len().checked_sub(hops.max(1)).map_or(values[0], |i| values[i]);
    match chosen.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            format!("{}/64", std::net::Ipv6Addr::from(prefix))
        }
        Ok(IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(|v4| v4.to_string()).unwrap_or_default(),
        Ok(ip) => ip.to_string(),
        Err(_) => chosen.chars().take(64).collect(),
    }
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

#[cfg(test)]
mod tests {
    use super::client_of;

    #[test]
    fn the_client_is_counted_from_the_right() {
        // A client that prepends addresses of its own gets the gateway's view of it all the same.
        assert_eq!(client_of("198.51.100.9, 203.0.113.7", 1), "203.0.113.7");
        assert_eq!(client_of("1.2.3.4, 5.6.7.8, 203.0.113.7", 1), "203.0.113.7");
        assert_eq!(client_of("198.51.100.9, 203.0.113.7, 10.0.0.1", 2), "203.0.113.7");
        assert_eq!(client_of("203.0.113.7", 1), "203.0.113.7");
        assert_eq!(client_of("203.0.113.7", 3), "203.0.113.7", "a shorter list: its first value");
        assert_eq!(client_of("", 1), "");
    }

    #[test]
    fn an_ipv6_client_is_its_64() {
        assert_eq!(client_of("2001:db8:1:2:aaaa::1", 1), "2001:db8:1:2::/64");
        assert_eq!(client_of("2001:db8:1:2:bbbb:cccc:dddd:eeee", 1), "2001:db8:1:2::/64");
        assert_ne!(client_of("2001:db8:1:3::1", 1), client_of("2001:db8:1:2::1", 1));
        assert_eq!(client_of("::ffff:203.0.113.7", 1), "203.0.113.7");
        assert_eq!(client_of("not an address", 1), "not an address");
    }
}
