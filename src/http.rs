//! Blocking HTTP calls to WeChat that a query cancel or `statement_timeout` can interrupt.
//!
//! Each backend keeps one `ureq` agent (keep-alive: one TCP connection serves every call of the
//! backend). A call runs on a short-lived helper thread that owns only Rust data and starts with
//! every signal blocked, so Postgres' signals keep reaching the backend thread; the backend thread
//! waits in short slices and checks for interrupts between them. On a cancel the backend raises
//! Postgres' own error at once; the helper finishes or times out on its own and is dropped.
//! No redirect is followed, no proxy from the environment is used, and bodies are size-bounded.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;
use ureq::Agent;

/// How often the waiting backend checks for a cancel.
const INTERRUPT_CHECK: Duration = Duration::from_millis(10);

pub struct Response {
    pub status: u16,
    /// The Content-Type header, lower-cased; only a hint, WeChat's labels are unreliable.
    pub content_type: String,
    pub body: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    Timeout,
    Unreachable,
    TooLarge,
    Protocol,
}

thread_local! {
    static AGENT: Agent = Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .user_agent("auth_wechat")
        .max_response_header_size(16 * 1024)
        .build()
        .into();
}

/// GETs `url`, waiting at most `timeout` in all; a 200 body is read up to `limit` bytes.
pub fn get(url: String, timeout: Duration, limit: u64) -> Result<Response, Failure> {
    let agent = AGENT.with(Agent::clone);
    run_interruptibly(move || {
        let response = agent.get(&url).config().timeout_global(Some(timeout)).build().call();
        read(response, limit)
    })
}

/// POSTs a JSON `body` to `url`, with the same bounds as [`get`].
pub fn post_json(url: String, body: Vec<u8>, timeout: Duration, limit: u64) -> Result<Response, Failure> {
    let agent = AGENT.with(Agent::clone);
    run_interruptibly(move || {
        let response = agent
            .post(&url)
            .header("Content-Type", "application/json")
            .config()
            .timeout_global(Some(timeout))
            .build()
            .send(&body[..]);
        read(response, limit)
    })
}

/// Reads the status, content type and (for a 200) the bounded body.
fn read(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>, limit: u64) -> Result<Response, Failure> {
    let mut response = response.map_err(classify)?;
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    if status != 200 {
        return Ok(Response { status, content_type, body: Vec::new() });
    }
    let body = response.body_mut().with_config().limit(limit).read_to_vec().map_err(classify)?;
    Ok(Response { status, content_type, body })
}

fn classify(error: ureq::Error) -> Failure {
    match error {
        ureq::Error::Timeout(_) => Failure::Timeout,
        ureq::Error::BodyExceedsLimit(_) => Failure::TooLarge,
        ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => Failure::Timeout,
        ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => Failure::Unreachable,
        _ => Failure::Protocol,
    }
}

/// Runs `work` on a helper thread with all signals blocked, waiting for it in slices so that a
/// pending cancel or termination is raised by Postgres on this (the backend) thread.
fn run_interruptibly<T, F>(work: F) -> Result<T, Failure>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Failure> + Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel(1);
    spawn_with_signals_blocked(move || {
        let _ = tx.send(work());
    })
    .map_err(|_| Failure::Protocol)?;
    loop {
        match rx.recv_timeout(INTERRUPT_CHECK) {
            Ok(result) => return result,
            Err(RecvTimeoutError::Timeout) => {
                pgrx::check_for_interrupts!();
            }
            Err(RecvTimeoutError::Disconnected) => return Err(Failure::Protocol),
        }
    }
}

/// Spawns a thread whose signal mask blocks everything: the mask is set on this thread around
/// the spawn, so the child inherits it from its first instruction, then restored.
fn spawn_with_signals_blocked(f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    // SAFETY: plain libc signal-mask calls on initialised sigset_t values.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut previous);
        let spawned = std::thread::Builder::new().name("auth_wechat_http".into()).spawn(f);
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
        spawned.map(|_| ())
    }
}
