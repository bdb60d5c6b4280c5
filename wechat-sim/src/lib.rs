//! A WeChat server API simulator for auth_wechat's tests and demo.
//!
//! It speaks WeChat's API on loopback with the quirks a client must survive (see `login` for
//! how a code chooses the answer) and counts what it sees, so tests can assert on the number of
//! calls per endpoint and of TCP connections that carried them: `GET /__sim/stats` answers
//! `{"connections": N, "calls": {"/sns/jscode2session": N, ...}}`.
//!
//! New endpoints slot into [`route`]: a handler takes the shared [`State`] and the request.

mod http;
mod ids;
mod login;
mod oauth;
mod phone;
mod qrcode;
mod token;

pub use ids::{openid, unionid};

use http::{Request, Response};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::io::{self, BufReader};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

/// The apps the simulator recognises: calls with another appid, or an app's wrong secret, get
/// WeChat's 40013/40125.
#[derive(Clone, Debug)]
pub struct Config {
    pub appid: String,
    pub secret: String,
    /// More apps, `(appid, secret)`: every endpoint serves them as it serves the first.
    pub more: Vec<(String, String)>,
}

impl Config {
    /// The secret of `appid`, if the simulator knows that app.
    pub fn secret_of(&self, appid: &str) -> Option<&str> {
        std::iter::once((&self.appid, &self.secret))
            .chain(self.more.iter().map(|(appid, secret)| (appid, secret)))
            .find(|(known, _)| known.as_str() == appid)
            .map(|(_, secret)| secret.as_str())
    }

    /// WeChat's complaint about `appid` and `secret` as a request gives them, if any: 41002/41004
    /// missing, 40013 an unknown app, 40125 the wrong secret.
    pub fn check(&self, appid: Option<&str>, secret: Option<&str>) -> Option<(i64, &'static str)> {
        let (appid, secret) = (appid.unwrap_or_default(), secret.unwrap_or_default());
        match self.secret_of(appid) {
            _ if appid.is_empty() => Some((41002, "appid missing")),
            _ if secret.is_empty() => Some((41004, "appsecret missing")),
            None => Some((40013, "invalid appid")),
            Some(known) if known != secret => Some((40125, "invalid appsecret")),
            Some(_) => None,
        }
    }
}

/// What all connections share.
pub struct State {
    config: Config,
    used_codes: Mutex<HashSet<String>>,
    /// Every `session_key` handed out, for tests to look for in what must never show one.
    session_keys: Mutex<Vec<String>>,
    tokens: Mutex<token::Tokens>,
    calls: Mutex<BTreeMap<String, u64>>,
    connections: AtomicU64,
    open_streams: Mutex<Vec<TcpStream>>,
    stopping: AtomicBool,
    /// Milliseconds an API call waits before its answer (`POST /__sim/latency?ms=N[&path=P]`), by
    /// path; the empty path is every call's.
    latency_ms: Mutex<BTreeMap<String, u64>>,
    /// Mini-program codes still allowed before `getwxacodeunlimit` answers 45009
    /// (`POST /__sim/qrcode_quota?n=N`); `None`: no quota.
    qrcode_quota: Mutex<Option<u64>>,
}

/// A running simulator; stops when dropped.
pub struct Simulator {
    config: Config,
    addr: SocketAddr,
    state: Arc<State>,
    acceptor: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Starts on a free loopback port.
    pub fn start(config: Config) -> io::Result<Simulator> {
        Simulator::start_on(config, 0)
    }

    /// Starts on `port` of 127.0.0.1 (0 for a free one).
    pub fn start_on(config: Config, port: u16) -> io::Result<Simulator> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            config,
            used_codes: Mutex::new(HashSet::new()),
            session_keys: Mutex::new(Vec::new()),
            tokens: Mutex::new(token::Tokens::default()),
            calls: Mutex::new(BTreeMap::new()),
            connections: AtomicU64::new(0),
            open_streams: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            latency_ms: Mutex::new(BTreeMap::new()),
            qrcode_quota: Mutex::new(None),
        });
        let accept_state = Arc::clone(&state);
        let acceptor = thread::Builder::new()
            .name("wechat-sim-accept".into())
            .spawn(move || accept_loop(listener, accept_state))?;
        Ok(Simulator { config: state.config.clone(), addr, state, acceptor: Some(acceptor) })
    }

    /// The base URL to give `auth_wechat.api_base`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Blocks until the simulator is stopped (for the command-line program).
    pub fn wait(mut self) {
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }

    /// Stops accepting and closes every open connection, as a crashed or restarted server would.
    /// Stopping twice is harmless.
    pub fn stop(&mut self) {
        let Some(acceptor) = self.acceptor.take() else { return };
        self.state.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        let _ = acceptor.join();
        for stream in self.state.open_streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Simulator {
    /// Stops and starts again on the same port with fresh state (used codes and issued tokens
    /// forgotten, counters zeroed), as a crashed and restarted WeChat front end would.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        *self = Simulator::start_on(self.config.clone(), self.addr.port())?;
        Ok(())
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: TcpListener, state: Arc<State>) {
    for stream in listener.incoming() {
        if state.stopping.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        if let Ok(clone) = stream.try_clone() {
            state.open_streams.lock().unwrap().push(clone);
        }
        let conn_state = Arc::clone(&state);
        let _ =
            thread::Builder::new().name("wechat-sim-conn".into()).spawn(move || serve_connection(stream, conn_state));
    }
}

fn serve_connection(stream: TcpStream, state: Arc<State>) {
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut counted = false;
    while let Ok(Some(request)) = http::read_request(&mut reader) {
        // Count connections that carry API calls, so reading the counters does not move them.
        if !counted && !request.path.starts_with(CONTROL_PREFIX) {
            state.connections.fetch_add(1, Ordering::SeqCst);
            counted = true;
        }
        let response = route(&state, &request);
        if http::write_response(&mut writer, &response).is_err() || request.close {
            break;
        }
    }
    forget_stream(&state, &writer);
}

fn forget_stream(state: &State, stream: &TcpStream) {
    let Ok(peer) = stream.peer_addr() else { return };
    state.open_streams.lock().unwrap().retain(|s| s.peer_addr().map(|p| p != peer).unwrap_or(false));
}

/// Paths under this prefix are the simulator's own test hooks, not WeChat's API.
const CONTROL_PREFIX: &str = "/__sim/";

/// Dispatches a request; WeChat answers unknown paths (wrong case included) with 40066.
fn route(state: &State, req: &Request) -> Response {
    if let Some(control) = req.path.strip_prefix(CONTROL_PREFIX) {
        return control_endpoint(state, control, req);
    }
    *state.calls.lock().unwrap().entry(req.path.clone()).or_insert(0) += 1;
    let latency = {
        let latencies = state.latency_ms.lock().unwrap();
        latencies.get(&req.path).or_else(|| latencies.get("")).copied().unwrap_or(0)
    };
    if latency > 0 {
        thread::sleep(std::time::Duration::from_millis(latency));
    }
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/sns/jscode2session") => login::jscode2session(state, req),
        ("GET", "/sns/oauth2/access_token") => oauth::access_token(state, req),
        ("GET", "/sns/userinfo") => oauth::userinfo(state, req),
        ("GET", "/cgi-bin/token") => token::classic(state, req),
        ("POST", "/cgi-bin/stable_token") => token::stable(state, req),
        ("POST", "/wxa/business/getuserphonenumber") => phone::get_user_phone_number(state, req),
        ("POST", "/wxa/getwxacodeunlimit") => qrcode::get_unlimited(state, req),
        _ => wechat_error("application/json; encoding=utf-8", 40066, "invalid url"),
    }
}

/// Test hooks: `stats` reads the counters, `secrets` lists every `session_key` and access token
/// handed out (what must never show anywhere), `reset` zeroes the counters, `revoke_tokens` makes every
/// issued access token invalid (40001), `fail_next_token_check?errcode=N` makes the next
/// token-checked call answer N once, `claim_expires_in?value=<JSON>` makes every later token
/// answer claim that `expires_in`, `latency?ms=N` makes every API call wait N ms first (a slow
/// WeChat, whatever the code), and `latency?ms=N&path=P` the calls of one endpoint only;
/// `qrcode_quota?n=N` lets N more mini-program codes through, then answers 45009 (no `n`: no quota).
fn control_endpoint(state: &State, name: &str, req: &Request) -> Response {
    match name {
        "stats" => {
            let calls = state.calls.lock().unwrap().clone();
            let connections = state.connections.load(Ordering::SeqCst);
            Response::json("application/json", &json!({"connections": connections, "calls": calls}))
        }
        "reset" => {
            state.calls.lock().unwrap().clear();
            state.connections.store(0, Ordering::SeqCst);
            Response::json("application/json", &json!({"ok": true}))
        }
        "revoke_tokens" => {
            state.tokens.lock().unwrap().revoke_all();
            Response::json("application/json", &json!({"ok": true}))
        }
        "fail_next_token_check" => {
            let errcode = req.param("errcode").and_then(|e| e.parse().ok()).unwrap_or(40014);
            state.tokens.lock().unwrap().fail_next_check(errcode);
            Response::json("application/json", &json!({"ok": true}))
        }
        "claim_expires_in" => {
            let claimed = req.param("value").and_then(|v| serde_json::from_str(v).ok()).unwrap_or(json!(7200));
            state.tokens.lock().unwrap().claim_expires_in(claimed);
            Response::json("application/json", &json!({"ok": true}))
        }
        "secrets" => {
            let session_keys = state.session_keys.lock().unwrap().clone();
            let access_tokens = state.tokens.lock().unwrap().minted().to_vec();
            Response::json("application/json", &json!({"session_keys": session_keys, "access_tokens": access_tokens}))
        }
        "latency" => {
            let ms = req.param("ms").and_then(|v| v.parse().ok()).unwrap_or(0);
            let path = req.param("path").unwrap_or_default().to_string();
            state.latency_ms.lock().unwrap().insert(path, ms);
            Response::json("application/json", &json!({"ok": true}))
        }
        "qrcode_quota" => {
            *state.qrcode_quota.lock().unwrap() = req.param("n").and_then(|v| v.parse().ok());
            Response::json("application/json", &json!({"ok": true}))
        }
        _ => Response::raw(404, "text/plain", "unknown simulator endpoint"),
    }
}

/// Whether `code` was made by another app than `appid`: a code belongs to the app that made it
/// (WeChat refuses it, 40029, with another app's credentials or token). A code names its app in
/// the end of its nonce, `…~<appid>` (the tests' `code_of`); one that names none is any app's.
pub(crate) fn made_by_another(code: &str, appid: &str) -> bool {
    code.rsplit_once('~').is_some_and(|(_, maker)| maker != appid)
}

/// Takes one mini-program code from the quota (`qrcode_quota`): false once it is spent.
pub(crate) fn take_qrcode(state: &State) -> bool {
    match &mut *state.qrcode_quota.lock().unwrap() {
        Some(0) => false,
        Some(left) => {
            *left -= 1;
            true
        }
        None => true,
    }
}

/// WeChat's error shape: HTTP 200, a numeric `errcode`, and an `errmsg` ending in a fresh rid.
pub(crate) fn wechat_error(content_type: &'static str, errcode: i64, errmsg: &str) -> Response {
    Response::json(content_type, &json!({"errcode": errcode, "errmsg": format!("{errmsg}, rid: {}", ids::rid())}))
}

#[cfg(test)]
mod tests {
    use super::made_by_another;

    #[test]
    fn a_code_belongs_to_the_app_that_made_it() {
        assert!(!made_by_another("ok.ann.n1~wx1111aaaa1111aaaa", "wx1111aaaa1111aaaa"));
        assert!(made_by_another("ok.ann.n1~wx1111aaaa1111aaaa", "wx5ba1c0ffee5ba1c0"));
        assert!(!made_by_another("ok.ann.n1", "wx5ba1c0ffee5ba1c0"), "a code that names no app is any app's");
    }
}
