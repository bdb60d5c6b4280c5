//! Blocking HTTP calls to WeChat that a query cancel or `statement_timeout` can interrupt.
//!
//! Each backend keeps one `ureq` agent (keep-alive: one TCP connection serves every call of the
//! backend). A call runs on the backend's helper thread, which owns only Rust data and runs with
//! every signal blocked, so Postgres' signals keep reaching the backend thread; the backend thread
//! waits in short slices and checks for interrupts between them. On a cancel the backend raises
//! Postgres' own error at once; the helper finishes or times out on its own, and the next call
//! meanwhile gets a fresh helper.
//! No redirect is followed, no proxy from the environment is used, and bodies are size-bounded.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
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

type Job = Box<dyn FnOnce() + Send>;

/// The backend's helper thread: it runs one call at a time and lives as long as the backend.
struct Worker {
    jobs: mpsc::Sender<Job>,
    /// True while a call runs; a call cancelled on the backend side may still be running, and
    /// the next call then gets a new worker rather than queueing behind it.
    busy: Arc<AtomicBool>,
}

thread_local! {
    static WORKER: RefCell<Option<Worker>> = const { RefCell::new(None) };
}

/// Runs `work` on the helper thread, waiting for it in slices so that a pending cancel or
/// termination is raised by Postgres on this (the backend) thread.
fn run_interruptibly<T, F>(work: F) -> Result<T, Failure>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Failure> + Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel(1);
    // The worker is marked idle before the answer goes out, so the backend's next call finds it
    // idle and reuses it.
    submit(|busy| {
        Box::new(move || {
            let result = work();
            busy.store(false, Ordering::Release);
            let _ = tx.send(result);
        })
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

/// Hands a job (made with the worker's busy flag, which it must clear when done) to an idle
/// worker, starting one when there is none (replacing a busy one: its sender is dropped, so it
/// ends after its current call).
fn submit(make_job: impl FnOnce(Arc<AtomicBool>) -> Job) -> std::io::Result<()> {
    WORKER.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.as_ref().is_none_or(|w| w.busy.load(Ordering::Acquire)) {
            *slot = Some(start_worker()?);
        }
        let worker = slot.as_ref().expect("a worker was just ensured");
        worker.busy.store(true, Ordering::Release);
        worker
            .jobs
            .send(make_job(Arc::clone(&worker.busy)))
            .map_err(|_| std::io::Error::other("the HTTP worker is gone"))
    })
}

/// Starts a worker thread whose signal mask blocks everything, so Postgres' signals keep reaching
/// the backend thread: the mask is set on this thread around the spawn, so the child inherits it
/// from its first instruction, then restored.
fn start_worker() -> std::io::Result<Worker> {
    let (jobs, queue) = mpsc::channel::<Job>();
    // SAFETY: plain libc signal-mask calls on initialised sigset_t values.
    let spawned = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut previous);
        let spawned = std::thread::Builder::new().name("auth_wechat_http".into()).spawn(move || {
            for job in queue {
                job();
            }
        });
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
        spawned
    };
    spawned.map(|_| Worker { jobs, busy: Arc::new(AtomicBool::new(false)) })
}
