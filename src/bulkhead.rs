//! Keeps a slow or failing WeChat from holding the database's connections.
//!
//! Every WeChat call holds a backend, and so one of the connection pool's connections, for as
//! long as WeChat takes. Three limits, in shared memory so that they hold across every backend and
//! database of the cluster:
//!
//! - a **bulkhead** per WeChat API base (`auth_wechat.api_base`), whatever app the call is for: at
//!   most `auth_wechat.max_concurrent_requests` calls in flight; one more is refused at once
//!   (429), without waiting and without calling WeChat, so the rest of the pool stays free for the
//!   requests that do not need WeChat. One cap for all apps: a slow WeChat slows them all, and
//!   three apps may not hold three times the pool;
//! - a **fair share** per client, when `auth_wechat.rate_limit_header` names the client: one
//!   client may keep WeChat busy `auth_wechat.client_share` of the bulkhead's places on average.
//!   Its WeChat time is counted (calls in flight included) and drains at that rate; past
//!   `SHARE_WINDOW_MS` of it, its calls are refused (429) until it is back under; and a client
//!   over half of that may not take the last free place. A few clients flooding with junk codes
//!   then cannot hold every place, however slow WeChat is;
//! - a **circuit breaker** per app (WeChat fails per app: its credentials, its quota): after
//!   `auth_wechat.breaker_failures` timeouts or unreachable answers in a row, that app's calls fail
//!   fast (502) for `auth_wechat.breaker_cooldown_ms`; then one call is let through as a probe, and
//!   its outcome closes the breaker or opens it for another cool-down.
//!
//! None of these refusals is a 503: PostgREST takes any 503 for a lost database and reconnects.
//! Each carries `Retry-After`.
//!
//! A call's place is held by the backend's pid and given back when the call ends, when an ERROR
//! unwinds it, and when the backend exits (a `before_shmem_exit` callback); a place whose backend
//! is gone without any of those (a crash restarts shared memory anyway) is taken back by the next
//! caller that finds its pid dead.

use crate::error::AuthError;
use crate::gucs;
use crate::shmem::{self, KeyMap};
use pgrx::{pg_guard, pg_shmem_init, pg_sys, PGRXSharedMemory, PgLwLock};
use std::sync::atomic::{AtomicBool, Ordering};

/// The places there are: as many as `auth_wechat.max_concurrent_requests` may allow.
const MAX_PLACES: usize = gucs::MAX_CONCURRENT_REQUESTS_BOUND as usize;
const UPSTREAMS: usize = 16;

#[derive(Copy, Clone, Default)]
struct Place {
    /// The API base the call goes to, whose cap it counts against (`key`).
    api: u64,
    /// The app's upstream (`key`), whose breaker the call's outcome goes to.
    upstream: u64,
    pid: i32,
    /// The client the call is for (see `client_key`); 0 when no client is told apart.
    client: u64,
    started_ms: i64,
}

/// A client's WeChat time still counted against it (place-milliseconds) as of `at_ms`.
#[derive(Copy, Clone, Default)]
struct ClientUse {
    busy_ms: f64,
    at_ms: i64,
}

/// How much WeChat time a client may have counted against it: `SHARE_WINDOW_MS` of its share,
/// i.e. its share held for two seconds (a burst above it, then the average): short, so that a
/// flood is held to its share within seconds.
const SHARE_WINDOW_MS: f64 = 2_000.0;

#[derive(Copy, Clone, Default)]
struct Breaker {
    upstream: u64,
    /// Timeouts and unreachable answers in a row.
    failures: u32,
    /// While open: calls fail fast until this time (ms since the epoch); 0 when closed.
    open_until: i64,
    /// The backend probing a half-open breaker; 0 when none.
    probe_pid: i32,
    last_used: i64,
}

#[derive(Copy, Clone)]
pub struct Limits {
    places: [Place; MAX_PLACES],
    breakers: [Breaker; UPSTREAMS],
    /// Per (API base, client): 2048 clients (256 buckets of 8); one is forgotten only once its
    /// time has drained, and a client with no room is refused until some has.
    clients: KeyMap<ClientUse, 256>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            places: [Place::default(); MAX_PLACES],
            breakers: [Breaker::default(); UPSTREAMS],
            clients: KeyMap::default(),
        }
    }
}

// SAFETY: plain old data, no pointers.
unsafe impl PGRXSharedMemory for Limits {}

// SAFETY (of the `unsafe` in the initialiser): `PgLwLock::new` only names the lock; pgrx sets it
// up in shared memory when `pg_shmem_init!` runs in the postmaster, before any backend uses it.
static LIMITS: PgLwLock<Limits> = unsafe { PgLwLock::new(c"auth_wechat_limits") };

/// Reserves the shared memory; called from `_PG_init`.
pub fn init() {
    shmem::reserve(|| {
        pg_shmem_init!(LIMITS);
    });
}

fn my_pid() -> i32 {
    // SAFETY: MyProcPid is set once at backend start.
    unsafe { pg_sys::MyProcPid }
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only asks whether the process exists.
    pid != 0
        && (unsafe { libc::kill(pid, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH))
}

/// What a call learned about WeChat's health.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// WeChat answered (whatever it said).
    Answered,
    /// A timeout or an unreachable API: what trips the breaker.
    Failed,
}

/// A call's place in the bulkhead; gives it back when dropped.
pub struct Admission {
    upstream: u64,
    probe: bool,
}

/// The share of WeChat time, in places, one client may use on average.
fn client_share_places() -> f64 {
    gucs::max_concurrent_requests() as f64 * gucs::client_share()
}

fn client_key(api: u64, client: u64) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&api.to_le_bytes());
    key[8..].copy_from_slice(&client.to_le_bytes());
    key
}

/// The client's WeChat time still counted at `now`: what it used, drained at its share.
fn counted(used: &ClientUse, now: i64, share: f64) -> f64 {
    (used.busy_ms - (now - used.at_ms).max(0) as f64 * share).max(0.0)
}

impl Admission {
    /// Records how the call went: the breaker counts failures in a row, and a probe's outcome
    /// closes or re-opens it.
    pub fn finish(self, outcome: Outcome) {
        let mut limits = LIMITS.exclusive();
        let breaker = breaker(&mut limits, self.upstream, shmem::now_ms());
        match outcome {
            Outcome::Answered => {
                breaker.failures = 0;
                breaker.open_until = 0;
            }
            Outcome::Failed => {
                breaker.failures = breaker.failures.saturating_add(1);
                if self.probe || breaker.failures >= gucs::breaker_failures() {
                    breaker.open_until = shmem::now_ms().saturating_add(gucs::breaker_cooldown_ms());
                }
            }
        }
        if self.probe {
            breaker.probe_pid = 0;
        }
        drop(limits);
        // Dropping `self` now gives the place back.
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut limits = LIMITS.exclusive();
        let (pid, now) = (my_pid(), shmem::now_ms());
        if let Some(place) = limits.places.iter_mut().find(|p| p.upstream == self.upstream && p.pid == pid) {
            let held = *place;
            *place = Place::default();
            if held.client != 0 {
                // The call's WeChat time goes on its client's account (whose place `admit` made).
                let share = client_share_places();
                if let Some(used) = limits.clients.entry(&client_key(held.api, held.client), now, |_| false) {
                    *used =
                        ClientUse { busy_ms: counted(used, now, share) + (now - held.started_ms) as f64, at_ms: now };
                }
            }
        }
        if self.probe {
            let breaker = breaker(&mut limits, self.upstream, now);
            if breaker.probe_pid == pid {
                // A probe that ended in an ERROR (a cancel, say) decided nothing: the next call
                // probes again.
                breaker.probe_pid = 0;
            }
        }
    }
}

/// The breaker of `upstream`, taking over the least recently used one if it has none.
fn breaker(limits: &mut Limits, upstream: u64, now: i64) -> &mut Breaker {
    let index = match limits.breakers.iter().position(|b| b.upstream == upstream) {
        Some(i) => i,
        None => {
            let i = (0..UPSTREAMS).min_by_key(|&i| limits.breakers[i].last_used).unwrap_or(0);
            limits.breakers[i] = Breaker { upstream, ..Breaker::default() };
            i
        }
    };
    let breaker = &mut limits.breakers[index];
    breaker.last_used = now;
    breaker
}

/// The key of an API base, an upstream or a client (never 0, which marks a free place or no
/// client).
fn key(name: &str) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&shmem::key_of(name)[..8]);
    u64::from_le_bytes(first) | 1
}

/// Takes `n` free places for calls to `api` in the name of `pid`, as calls in flight would.
#[cfg(any(test, feature = "pg_test"))]
pub fn occupy(api: &str, pid: i32, n: usize) {
    let api = key(api);
    let mut limits = LIMITS.exclusive();
    for place in limits.places.iter_mut().filter(|place| place.pid == 0).take(n) {
        *place = Place { api, pid, ..Place::default() };
    }
}

/// The calls in flight to one API base, and the first free place.
struct Places {
    in_flight: usize,
    free: Option<usize>,
}

fn count(limits: &Limits, api: u64) -> Places {
    let mut places = Places { in_flight: 0, free: None };
    for (i, place) in limits.places.iter().enumerate() {
        if place.pid == 0 {
            places.free.get_or_insert(i);
        } else if place.api == api {
            places.in_flight += 1;
        }
    }
    places
}

/// Admits one WeChat call to `api` (`auth_wechat.api_base`) for the app whose upstream is
/// `upstream` (`wechat::upstream`), for `client` (what `auth_wechat.rate_limit_header` says of
/// the caller, when that setting names a header), or refuses it at once.
pub fn admit(api: &str, upstream: &str, client: Option<&str>) -> Result<Admission, AuthError> {
    if !shmem::preloaded() {
        return Err(AuthError::NotPreloaded);
    }
    register_exit_callback();
    let (api, upstream) = (key(api), key(upstream));
    let client = client.map_or(0, key);
    let cap = gucs::max_concurrent_requests();
    let (now, pid) = (shmem::now_ms(), my_pid());
    let mut limits = LIMITS.exclusive();
    // Whether this client is a heavy user now (over half its allowance): it may not take the
    // bulkhead's last free place.
    let mut heavy = false;
    if client != 0 {
        let share = client_share_places();
        let in_flight: i64 = limits
            .places
            .iter()
            .filter(|p| p.pid != 0 && p.api == api && p.client == client)
            .map(|p| (now - p.started_ms).max(0))
            .sum();
        // The client's account, made now if it has none: in the place of a client whose time has
        // drained (forgetting it loses nothing); with no such place, wait until one has.
        let key = client_key(api, client);
        let Some(account) = limits.clients.entry(&key, now, |other| counted(other, now, share) == 0.0) else {
            let soonest =
                limits.clients.bucket_of(&key).iter().map(|(_, u)| counted(u, now, share)).fold(f64::MAX, f64::min);
            return Err(AuthError::RateLimited { retry_after: (soonest / share / 1000.0).ceil().max(1.0) as u32 });
        };
        let used = counted(account, now, share) + in_flight as f64;
        let allowance = share * SHARE_WINDOW_MS;
        if used >= allowance {
            let wait_ms = (used - allowance) / share;
            return Err(AuthError::RateLimited { retry_after: (wait_ms / 1000.0).ceil().max(1.0) as u32 });
        }
        heavy = used >= allowance / 2.0;
    }
    let probe = {
        let breaker = breaker(&mut limits, upstream, now);
        if breaker.open_until == 0 {
            false
        } else if now < breaker.open_until || (breaker.probe_pid != 0 && alive(breaker.probe_pid)) {
            let wait_ms = (breaker.open_until - now).max(0) as f64;
            return Err(AuthError::BreakerOpen { retry_after: (wait_ms / 1000.0).ceil().max(1.0) as u32 });
        } else {
            breaker.probe_pid = pid;
            true
        }
    };
    let mut places = count(&limits, api);
    if places.free.is_none() || places.in_flight >= cap {
        // Before refusing, reclaim the places of backends that died without giving theirs back
        // (their exit callback gives them back otherwise): a system call per place, so not on
        // every call, under the lock.
        for place in limits.places.iter_mut().filter(|place| place.pid != 0 && !alive(place.pid)) {
            *place = Place::default();
        }
        places = count(&limits, api);
    }
    // The last place stays for clients that call rarely: flooders held to their share still come
    // and go at random, and would otherwise fill every place now and then.
    let room = if heavy { cap - 1 } else { cap };
    match places.free.filter(|_| places.in_flight < room) {
        Some(i) => {
            limits.places[i] = Place { api, upstream, pid, client, started_ms: now };
            Ok(Admission { upstream, probe })
        }
        None => {
            if probe {
                breaker(&mut limits, upstream, now).probe_pid = 0;
            }
            Err(AuthError::TooManyInFlight)
        }
    }
}

/// Gives back every place this backend holds when it exits, however it exits.
fn register_exit_callback() {
    static REGISTERED: AtomicBool = AtomicBool::new(false);
    if !REGISTERED.swap(true, Ordering::SeqCst) {
        // SAFETY: registering a #[pg_guard] callback with no argument.
        unsafe { pg_sys::before_shmem_exit(Some(release_all), pg_sys::Datum::from(0)) }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn release_all(_code: i32, _arg: pg_sys::Datum) {
    let pid = my_pid();
    let mut limits = LIMITS.exclusive();
    for place in limits.places.iter_mut().filter(|p| p.pid == pid) {
        *place = Place::default();
    }
    for breaker in limits.breakers.iter_mut().filter(|b| b.probe_pid == pid) {
        breaker.probe_pid = 0;
    }
}
