//! Support for auth_wechat's integration tests: a throw-away PostgreSQL cluster with the
//! extension loaded, one database and one WeChat simulator per test, and a caller that calls
//! functions exactly as PostgREST does.

pub mod cluster;
pub mod jwt;
pub mod pgbouncer;
pub mod postgrest;
pub mod rest;
pub mod simstats;
pub mod v2token;

pub use cluster::{Cluster, TestDb};
pub use rest::{http_status, Rest, RpcError};

/// The app credentials the simulator and the test cluster share.
pub const APPID: &str = "wx5ba1c0ffee5ba1c0";
pub const SECRET: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
pub const JWT_SECRET: &str = "test-jwt-secret-with-at-least-32-characters-x";

/// The apps of `auth_wechat.apps` besides the default mini program, which the simulator and the
/// test cluster share: `(appid, secret, type)`.
pub const MORE_APPS: [(&str, &str, &str); 4] = [
    (LITE, "1f2e3d4c5b6a79888978a6b5c4d3e2f1", "miniprogram"),
    (OFFICIAL_ACCOUNT, "2f3e4d5c6b7a89988978a6b5c4d3e2f2", "official_account"),
    (WEBSITE, "3f4e5d6c7b8a99a88978a6b5c4d3e2f3", "website"),
    (MOBILE_APP, "4f5e6d7c8b9aa9b88978a6b5c4d3e2f4", "mobile_app"),
];
/// A second ("lite") mini program.
pub const LITE: &str = "wx1111aaaa1111aaaa";
pub const OFFICIAL_ACCOUNT: &str = "wx2222bbbb2222bbbb";
pub const WEBSITE: &str = "wx3333cccc3333cccc";
pub const MOBILE_APP: &str = "wx4444dddd4444dddd";

/// `MORE_APPS` as the value of `auth_wechat.apps`.
pub fn apps_setting() -> String {
    let apps: Vec<serde_json::Value> = MORE_APPS
        .iter()
        .map(|(appid, secret, kind)| serde_json::json!({"appid": appid, "secret": secret, "type": kind}))
        .collect();
    serde_json::Value::Array(apps).to_string()
}

/// A code unique to this process and call: `<kind>.<user>.<nonce>` in the simulator's grammar.
pub fn code(kind: &str, user: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    if user.is_empty() {
        format!("{kind}.n{}x{n}", std::process::id())
    } else {
        format!("{kind}.{user}.n{}x{n}", std::process::id())
    }
}

/// `code` as made by the app `appid`: the simulator answers it only to that app's credentials or
/// token (40029 to any other's), as WeChat does, so a test that sends it finds out whether the
/// extension traded it with the right app.
pub fn made_by(code: &str, appid: &str) -> String {
    format!("{code}~{appid}")
}

/// Polls `done` every 10 ms until it holds; after `within`, fails naming `what`. Every wait of the
/// tests has a deadline: a regression fails the suite instead of hanging it.
pub fn wait_until(what: &str, within: std::time::Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !done() {
        assert!(std::time::Instant::now() < deadline, "waited {within:?} for {what}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Waits until the simulator has seen `n` calls of `path` (calls in flight included).
pub fn wait_for_calls(sim_url: &str, path: &str, n: u64) {
    wait_until(&format!("{n} calls of {path}"), std::time::Duration::from_secs(20), || {
        simstats::calls(sim_url, path) >= n
    });
}
