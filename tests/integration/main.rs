//! auth_wechat's integration tests: real connections to a real cluster, calls made the way
//! PostgREST makes them, WeChat played by the simulator. One database and one simulator per test.

mod abuse;
mod apps;
mod bind;
mod docs;
mod errors;
mod http;
mod import;
mod memory;
mod operations;
mod person;
mod planted;
mod privileges;
mod qrcode;
mod refresh_v2;
mod scan;
mod schema;
mod security;
mod sessions;
mod sign_in;
mod signing;
mod soak;
mod upgrade;

use auth_wechat_tests::rest::Caller;
use auth_wechat_tests::{Cluster, Rest, RpcError};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{json, Value};
use std::sync::OnceLock;

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

pub fn cluster() -> &'static Cluster {
    CLUSTER.get().expect("the cluster is started before any test runs")
}

/// A named test whose panics are failures.
pub fn trial(name: &str, test: fn()) -> Trial {
    Trial::test(name, move || {
        std::panic::catch_unwind(test).map_err(|panic| {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "test panicked".into());
            Failed::from(message)
        })
    })
}

/// The verified claims of a session's access token.
pub fn claims(session: &Value) -> Value {
    auth_wechat_tests::jwt::verify_hs256(
        session["access_token"].as_str().unwrap(),
        auth_wechat_tests::JWT_SECRET.as_bytes(),
    )
    .expect("valid token")
    .1
}

/// PostgREST's caller for the holder of this session's access token.
pub fn as_user(session: &Value) -> Caller {
    Caller::Claims(claims(session))
}

/// The session's refresh token.
pub fn token(session: &Value) -> String {
    session["refresh_token"].as_str().unwrap().to_string()
}

/// `POST /rpc/wechat_refresh_session {"refresh_token": ...}` as the anonymous role.
pub fn refresh(db: &auth_wechat_tests::TestDb, token: &str) -> Result<Value, RpcError> {
    db.rest().rpc("wechat_refresh_session", json!({ "refresh_token": token }), &Caller::Anon)
}

/// `POST /rpc/wechat_sign_in {"code", "appid"}` as the anonymous role, the code made by that app.
pub fn sign_in_to(rest: &mut Rest, appid: &str, code: &str) -> Result<Value, RpcError> {
    let code = auth_wechat_tests::made_by(code, appid);
    rest.rpc("wechat_sign_in", json!({"code": code, "appid": appid}), &Caller::Anon)
}

/// `POST /rpc/wechat_oauth_sign_in {"code", "appid"}` as the anonymous role, the code made by that
/// app.
pub fn oauth_sign_in(rest: &mut Rest, appid: &str, code: &str) -> Result<Value, RpcError> {
    let code = auth_wechat_tests::made_by(code, appid);
    rest.rpc("wechat_oauth_sign_in", json!({"code": code, "appid": appid}), &Caller::Anon)
}

/// `POST /rpc/wechat_sign_in {"code": ...}` as the anonymous role.
pub fn sign_in(rest: &mut Rest, code: &str) -> Result<Value, RpcError> {
    rest.rpc("wechat_sign_in", json!({ "code": code }), &Caller::Anon)
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    trials.extend(sign_in::tests());
    trials.extend(abuse::tests());
    trials.extend(memory::tests());
    trials.extend(apps::tests());
    trials.extend(person::tests());
    trials.extend(import::tests());
    trials.extend(docs::tests());
    trials.extend(errors::tests());
    trials.extend(bind::tests());
    trials.extend(qrcode::tests());
    trials.extend(scan::tests());
    trials.extend(sessions::tests());
    trials.extend(refresh_v2::tests());
    trials.extend(soak::tests());
    trials.extend(security::tests());
    trials.extend(privileges::tests());
    trials.extend(planted::tests());
    trials.extend(schema::tests());
    trials.extend(signing::tests());
    trials.extend(http::tests());
    trials.extend(operations::tests());
    trials.extend(upgrade::tests());
    if !args.list {
        CLUSTER.set(Cluster::start()).ok().expect("cluster starts once");
    }
    let conclusion = libtest_mimic::run(&args, trials);
    if let Some(cluster) = CLUSTER.get() {
        if conclusion.has_failed() {
            eprintln!("--- server log ---\n{}", cluster.log());
        }
        cluster.stop();
    }
    conclusion.exit();
}
