//! Reads the simulator's counters and pulls its test hooks over HTTP, as any test client could.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;

/// One request to the simulator's control endpoints (`/__sim/...`), answered as JSON.
fn control(base_url: &str, method: &str, path_and_query: &str) -> Value {
    let addr = base_url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).expect("simulator is reachable");
    write!(
        stream,
        "{method} /__sim/{path_and_query} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    serde_json::from_str(body).expect("the simulator answers JSON")
}

/// `GET /__sim/stats`: `{"connections": N, "calls": {"/path": N}}`.
pub fn stats(base_url: &str) -> Value {
    control(base_url, "GET", "stats")
}

/// Calls of one endpoint so far.
pub fn calls(base_url: &str, path: &str) -> u64 {
    stats(base_url)["calls"][path].as_u64().unwrap_or(0)
}

/// TCP connections that carried WeChat API calls so far.
pub fn connections(base_url: &str) -> u64 {
    stats(base_url)["connections"].as_u64().unwrap_or(0)
}

/// Every access token issued so far stops working (40001), as after a leak.
pub fn revoke_tokens(base_url: &str) {
    control(base_url, "POST", "revoke_tokens");
}

/// The next call that checks an access token answers `errcode` once.
pub fn fail_next_token_check(base_url: &str, errcode: i64) {
    control(base_url, "POST", &format!("fail_next_token_check?errcode={errcode}"));
}

/// Every later access-token answer claims `expires_in` = `value` (JSON text, e.g. a huge number).
pub fn claim_expires_in(base_url: &str, value: &str) {
    control(base_url, "POST", &format!("claim_expires_in?value={value}"));
}

/// Every WeChat API call waits `ms` milliseconds before its answer, whatever the code.
pub fn set_latency(base_url: &str, ms: u64) {
    control(base_url, "POST", &format!("latency?ms={ms}"));
}

/// Lets `n` more mini-program codes through, then `getwxacodeunlimit` answers 45009.
pub fn set_qrcode_quota(base_url: &str, n: u64) {
    control(base_url, "POST", &format!("qrcode_quota?n={n}"));
}

/// The calls of one endpoint (`/cgi-bin/stable_token`, say) wait `ms` milliseconds first.
pub fn set_path_latency(base_url: &str, path: &str, ms: u64) {
    control(base_url, "POST", &format!("latency?ms={ms}&path={path}"));
}

/// Every `session_key` and access token the simulator handed out: none may show anywhere.
pub fn secrets(base_url: &str) -> Vec<String> {
    let secrets = control(base_url, "GET", "secrets");
    ["session_keys", "access_tokens"]
        .iter()
        .flat_map(|kind| secrets[*kind].as_array().cloned().unwrap_or_default())
        .filter_map(|value| value.as_str().map(str::to_string))
        .collect()
}
