//! Blocking HTTP calls to WeChat that a query cancel or `statement_timeout` can interrupt.
//!
//! Each backend keeps one `ureq` agent (keep-alive: one TCP connection serves every call of the
//! backend), and calls run on the backend thread itself: no thread is started or woken per call.
//! Every wait for the network (connecting, reading an answer) is cut into slices of
//! `INTERRUPT_CHECK`, between which Postgres processes its pending interrupts: a cancel or a
//! `statement_timeout` raises Postgres' own error there and then, and the connection that was
//! cut off is dropped, not pooled.
//! Host names are resolved at most once a minute per backend (ureq's own resolver starts a
//! thread for every call that has a timeout); an address needs no lookup.
//! No redirect is followed, no proxy from the environment is used, and bodies are size-bounded.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, RustlsConnector, Transport,
};
use ureq::Agent;

/// How often a waiting backend processes its interrupts.
const INTERRUPT_CHECK: Duration = Duration::from_millis(10);
/// How long a host name's addresses are reused.
const RESOLVED_FOR: Duration = Duration::from_secs(60);

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
    static AGENT: Agent = {
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .user_agent("auth_wechat")
            .max_response_header_size(16 * 1024)
            .build();
        Agent::with_parts(config, InterruptibleTcp.chain(RustlsConnector::default()), CachingResolver::default())
    };
}

/// GETs `url`, waiting at most `timeout` in all; a 200 body is read up to `limit` bytes.
pub fn get(url: String, timeout: Duration, limit: u64) -> Result<Response, Failure> {
    let agent = AGENT.with(Agent::clone);
    let response = agent.get(&url).config().timeout_global(Some(timeout)).build().call();
    read(response, limit)
}

/// POSTs a JSON `body` to `url`, with the same bounds as [`get`].
pub fn post_json(url: String, body: Vec<u8>, timeout: Duration, limit: u64) -> Result<Response, Failure> {
    let agent = AGENT.with(Agent::clone);
    let response = agent
        .post(&url)
        .header("Content-Type", "application/json")
        .config()
        .timeout_global(Some(timeout))
        .build()
        .send(&body[..]);
    read(response, limit)
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

/// Processes Postgres' pending interrupts: returns when none ends the query, raises its ERROR
/// otherwise (unwinding through ureq, whose connection in use is then dropped).
fn process_interrupts() {
    pgrx::check_for_interrupts!();
}

/// Plain TCP, as ureq's own connector, but every wait is cut into slices between which
/// interrupts are processed: `connect` polls the handshake, the transport's reads time out per
/// slice. TLS, when the URL asks for it, is ureq's rustls on top.
#[derive(Debug)]
struct InterruptibleTcp;

impl Connector for InterruptibleTcp {
    type Out = Interruptible;

    fn connect(&self, details: &ConnectionDetails, _chained: Option<()>) -> Result<Option<Interruptible>, ureq::Error> {
        let deadline = deadline(details.timeout);
        let mut last_error = ureq::Error::HostNotFound;
        for addr in details.addrs.iter() {
            match connect(*addr, deadline) {
                Ok(stream) => {
                    stream.set_nodelay(details.config.no_delay())?;
                    let buffers =
                        LazyBuffers::new(details.config.input_buffer_size(), details.config.output_buffer_size());
                    return Ok(Some(Interruptible { stream, buffers, read_timeout: None }));
                }
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }
}

/// When a wait that may last `timeout` must end; `None` for no limit.
fn deadline(timeout: NextTimeout) -> Option<Instant> {
    timeout.not_zero().map(|left| Instant::now() + *left)
}

/// The next slice of a wait until `deadline`, and whether it is the last one; `Err` once the
/// deadline has passed.
fn slice(deadline: Option<Instant>) -> Result<(Duration, bool), ()> {
    match deadline.map(|d| d.saturating_duration_since(Instant::now())) {
        Some(left) if left.is_zero() => Err(()),
        Some(left) => Ok((left.min(INTERRUPT_CHECK), left <= INTERRUPT_CHECK)),
        None => Ok((INTERRUPT_CHECK, false)),
    }
}

/// A non-blocking connect, polled in slices until `deadline`.
fn connect(addr: SocketAddr, deadline: Option<Instant>) -> Result<TcpStream, ureq::Error> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::fd::AsRawFd;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => loop {
            let (wait, _) = slice(deadline).map_err(|()| ureq::Error::Timeout(ureq::Timeout::Connect))?;
            let mut fd = libc::pollfd { fd: socket.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
            // SAFETY: one valid pollfd, for a socket this function owns.
            let ready = unsafe { libc::poll(&mut fd, 1, wait.as_millis().max(1) as libc::c_int) };
            if ready > 0 {
                break;
            }
            let error = std::io::Error::last_os_error();
            if ready < 0 && error.kind() != ErrorKind::Interrupted {
                return Err(error.into());
            }
            process_interrupts();
        },
        Err(e) => return Err(e.into()),
    }
    if let Some(error) = socket.take_error()? {
        return Err(error.into());
    }
    socket.set_nonblocking(false)?;
    Ok(socket.into())
}

/// A TCP connection whose reads wait in slices, processing interrupts between them, until the
/// call's deadline.
#[derive(Debug)]
struct Interruptible {
    stream: TcpStream,
    buffers: LazyBuffers,
    /// The socket's read timeout as last set (a system call saved when it does not change).
    read_timeout: Option<Duration>,
}

impl Transport for Interruptible {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        // Requests are small: they fit the socket's buffer, so a write does not wait for WeChat.
        let timeout = timeout.for_write();
        self.stream.set_write_timeout(timeout.not_zero().map(|t| *t))?;
        match self.stream.write_all(&self.buffers.output()[..amount]) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err(ureq::Error::Timeout(timeout.reason))
            }
            other => Ok(other?),
        }
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let timeout = timeout.for_read();
        let deadline = deadline(timeout);
        loop {
            let (wait, last) = slice(deadline).map_err(|()| ureq::Error::Timeout(timeout.reason))?;
            if self.read_timeout != Some(wait) {
                self.stream.set_read_timeout(Some(wait))?;
                self.read_timeout = Some(wait);
            }
            match self.stream.read(self.buffers.input_append_buf()) {
                Ok(amount) => {
                    self.buffers.input_appended(amount);
                    return Ok(amount > 0);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => process_interrupts(),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if last {
                        return Err(ureq::Error::Timeout(timeout.reason));
                    }
                    process_interrupts();
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Whether a pooled connection can serve the next call: nothing unread, not closed.
    fn is_open(&mut self) -> bool {
        let mut byte = [0u8];
        if self.stream.set_nonblocking(true).is_err() {
            return false;
        }
        let open = matches!(self.stream.read(&mut byte), Err(e) if e.kind() == ErrorKind::WouldBlock);
        open && self.stream.set_nonblocking(false).is_ok()
    }
}

/// ureq's resolver, without a lookup for an address and with a host name's answer kept for
/// `RESOLVED_FOR` (the lookup itself runs with no lock held).
#[derive(Debug, Default)]
struct CachingResolver {
    resolved: Mutex<HashMap<String, (Instant, ResolvedSocketAddrs)>>,
}

impl Resolver for CachingResolver {
    fn resolve(&self, uri: &Uri, config: &Config, timeout: NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return DefaultResolver::default().resolve(uri, config, timeout);
        };
        // "host:port", the port made explicit; an address (IPv6 in brackets) parses as it is.
        let host_and_port = DefaultResolver::host_and_port(scheme, authority).unwrap_or_default();
        if let Ok(addr) = host_and_port.parse::<SocketAddr>() {
            let mut addrs = self.empty();
            addrs.push(addr);
            return Ok(addrs);
        }
        let cached = self.resolved.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&host_and_port).cloned();
        if let Some((_, addrs)) = cached.filter(|(at, _)| at.elapsed() < RESOLVED_FOR) {
            return Ok(addrs);
        }
        let addrs = DefaultResolver::default().resolve(uri, config, timeout)?;
        self.resolved
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(host_and_port, (Instant::now(), addrs.clone()));
        Ok(addrs)
    }
}
