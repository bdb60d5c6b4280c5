//! Reads the simulator's counters over HTTP, as any test client could.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;

/// `GET /__sim/stats`: `{"connections": N, "calls": {"/path": N}}`.
pub fn stats(base_url: &str) -> Value {
    let addr = base_url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).expect("simulator is reachable");
    write!(stream, "GET /__sim/stats HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    serde_json::from_str(body).expect("stats are JSON")
}

/// Calls of one endpoint so far.
pub fn calls(base_url: &str, path: &str) -> u64 {
    stats(base_url)["calls"][path].as_u64().unwrap_or(0)
}

/// TCP connections that carried WeChat API calls so far.
pub fn connections(base_url: &str) -> u64 {
    stats(base_url)["connections"].as_u64().unwrap_or(0)
}
