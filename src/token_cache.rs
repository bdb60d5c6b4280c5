//! The app's WeChat access token, shared by every backend and database of the cluster.
//!
//! Shared memory rather than a table: a table is per database and transactional, so a token
//! fetched in a transaction that rolls back would be lost, other backends would not see it until
//! commit, and single flight would need a lock held across the network call. Shared memory is
//! cluster-wide and outside transactions; its LWLock is held only for a few memory reads and
//! writes, never during the fetch. The price: the library must be in `shared_preload_libraries`.
//!
//! One slot per (api_base, appid), so a cluster serving several apps (or tests with one simulator
//! each) keeps one token per app. Single flight: the first backend to find a slot cold marks it
//! "fetching" and fetches without holding the lock; the others poll the slot until the token
//! appears. A fetcher that died or was cancelled leaves a mark that goes stale after the HTTP
//! timeout, and the next backend takes over. A fetch that fails answers for those who waited on it:
//! they are refused at once with its error, instead of each fetching in turn (a stampede of
//! fetches, one after the other, on a WeChat that is already failing).

use crate::apps::App;
use crate::error::{AuthError, Credentials, WechatAnswer};
use crate::gucs;
use crate::shmem;
use crate::wechat::token::{self, MAX_TOKEN_LEN};
use pgrx::{pg_guard, pg_shmem_init, pg_sys, PGRXSharedMemory, PgLwLock};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SLOTS: usize = 16;
/// Refresh this long before WeChat's expiry; stable tokens overlap their successor by 300 s.
const REFRESH_AHEAD_SECS: i64 = 300;
/// How often a waiting backend looks again (and checks for a cancel).
const POLL: Duration = Duration::from_millis(5);

#[derive(Copy, Clone)]
struct Slot {
    key: u64,
    token: [u8; MAX_TOKEN_LEN],
    token_len: u16,
    expires_at: i64,
    fetched_at: i64,
    /// When the current fetch started, and by whom; 0 when none is under way.
    fetching_since: i64,
    fetcher_pid: i32,
    last_used: i64,
    /// The last fetch that failed, for the backends that waited on it.
    failure: Failure,
}

/// A failed fetch, as plain data: when (ms since the epoch) and its error (without WeChat's rid).
#[derive(Copy, Clone, Default)]
struct Failure {
    at_ms: i64,
    kind: u8,
    errcode: i64,
}

impl Failure {
    fn of(error: &AuthError, at_ms: i64) -> Failure {
        let (kind, errcode) = match error {
            AuthError::WechatRejectedConfig(answer, Credentials::Default) => (1, answer.errcode),
            AuthError::WechatRejectedConfig(answer, Credentials::Listed) => (2, answer.errcode),
            AuthError::WechatUnreachable => (3, 0),
            AuthError::WechatTimeout => (4, 0),
            AuthError::WechatBusy(answer) => (5, answer.errcode),
            AuthError::WechatError(answer) => (6, answer.errcode),
            _ => (7, 0),
        };
        Failure { at_ms, kind, errcode }
    }

    fn error(&self) -> AuthError {
        let answer = WechatAnswer { errcode: self.errcode, rid: None };
        match self.kind {
            1 => AuthError::WechatRejectedConfig(answer, Credentials::Default),
            2 => AuthError::WechatRejectedConfig(answer, Credentials::Listed),
            3 => AuthError::WechatUnreachable,
            4 => AuthError::WechatTimeout,
            5 => AuthError::WechatBusy(answer),
            6 => AuthError::WechatError(answer),
            _ => AuthError::WechatBadResponse("the access token's fetch failed"),
        }
    }
}

#[derive(Copy, Clone)]
pub struct Cache {
    slots: [Slot; SLOTS],
}

// SAFETY: plain old data, no pointers.
unsafe impl PGRXSharedMemory for Cache {}

impl Default for Cache {
    fn default() -> Self {
        let empty = Slot {
            key: 0,
            token: [0; MAX_TOKEN_LEN],
            token_len: 0,
            expires_at: 0,
            fetched_at: 0,
            fetching_since: 0,
            fetcher_pid: 0,
            last_used: 0,
            failure: Failure::default(),
        };
        Cache { slots: [empty; SLOTS] }
    }
}

impl Cache {
    /// The slot of `key`, taking over the least recently used one if `key` has none.
    fn slot(&mut self, key: u64, now: i64) -> &mut Slot {
        let index = match self.slots.iter().position(|s| s.key == key) {
            Some(i) => i,
            None => {
                let i = (0..SLOTS).min_by_key(|&i| self.slots[i].last_used).unwrap_or(0);
                self.slots[i] = Cache::default().slots[0];
                self.slots[i].key = key;
                i
            }
        };
        let slot = &mut self.slots[index];
        slot.last_used = now;
        slot
    }
}

impl Slot {
    fn token(&self) -> &[u8] {
        &self.token[..self.token_len as usize]
    }

    fn fresh(&self, now: i64) -> bool {
        self.token_len > 0 && self.expires_at - REFRESH_AHEAD_SECS > now
    }

    /// Still accepted by WeChat, though due for a refresh.
    fn usable(&self, now: i64) -> bool {
        self.token_len > 0 && self.expires_at > now
    }

    fn claim_fetch(&mut self, now: i64) {
        self.fetching_since = now;
        // SAFETY: MyProcPid is set once at backend start.
        self.fetcher_pid = unsafe { pg_sys::MyProcPid };
    }
}

// SAFETY (of the `unsafe` in the initialiser): `PgLwLock::new` only names the lock; pgrx sets it
// up in shared memory when `pg_shmem_init!` runs in the postmaster, before any backend uses it.
static CACHE: PgLwLock<Cache> = unsafe { PgLwLock::new(c"auth_wechat_access_token") };

/// Reserves the shared memory; called from `_PG_init`.
pub fn init() {
    shmem::reserve(|| {
        pg_shmem_init!(CACHE);
    });
}

fn cache() -> Result<&'static PgLwLock<Cache>, AuthError> {
    if shmem::preloaded() {
        Ok(&CACHE)
    } else {
        Err(AuthError::NotPreloaded)
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The slot key of `app`.
fn key(app: &App) -> Result<u64, AuthError> {
    let mut hasher = DefaultHasher::new();
    (gucs::api_base()?, &app.appid).hash(&mut hasher);
    Ok(hasher.finish() | 1)
}

enum Next {
    Use(String),
    /// Fetch a new token; the current one, if WeChat still accepts it, serves if the fetch fails.
    Fetch(Option<String>),
    Wait,
    /// The fetch this backend waited on failed: its error.
    Failed(AuthError),
}

/// The current access token of `app`, fetched (once for the whole cluster) when missing or near
/// expiry.
fn access_token(app: &App) -> Result<String, AuthError> {
    let cache = cache()?;
    let key = key(app)?;
    let stale_after = gucs::timeout().as_secs() as i64 + 2;
    let give_up = now() + 2 * stale_after;
    // Since when this backend waits on another's fetch.
    let mut waiting_since: Option<i64> = None;
    loop {
        let now = now();
        let next = {
            let mut guard = cache.exclusive();
            let slot = guard.slot(key, now);
            if waiting_since.is_some_and(|since| slot.failure.at_ms >= since) {
                Next::Failed(slot.failure.error())
            } else if slot.fresh(now) {
                Next::Use(String::from_utf8_lossy(slot.token()).into_owned())
            } else if slot.fetching_since == 0 || now - slot.fetching_since > stale_after {
                slot.claim_fetch(now);
                Next::Fetch(slot.usable(now).then(|| String::from_utf8_lossy(slot.token()).into_owned()))
            } else if slot.usable(now) {
                // Another backend is refreshing ahead of expiry; the current token still works.
                Next::Use(String::from_utf8_lossy(slot.token()).into_owned())
            } else {
                waiting_since.get_or_insert_with(shmem::now_ms);
                Next::Wait
            }
        };
        match next {
            Next::Use(token) => return Ok(token),
            // A refresh ahead of expiry that fails costs the caller nothing: the token it was to
            // replace still works.
            Next::Fetch(current) => return fetch_into(app, cache, key, false).or_else(|e| current.ok_or(e)),
            Next::Failed(error) => return Err(error),
            Next::Wait if now > give_up => return Err(AuthError::WechatTimeout),
            Next::Wait => {
                std::thread::sleep(POLL);
                pgrx::check_for_interrupts!();
            }
        }
    }
}

/// Fetches a token (no lock held) and publishes it; clears the fetching mark either way, unless
/// another backend has taken the fetch over meanwhile.
fn fetch_into(app: &App, cache: &PgLwLock<Cache>, key: u64, force: bool) -> Result<String, AuthError> {
    let fetched = token::fetch(app, force);
    let now = now();
    let mut guard = cache.exclusive();
    let slot = guard.slot(key, now);
    // SAFETY: MyProcPid is set once at backend start.
    if slot.fetcher_pid == unsafe { pg_sys::MyProcPid } {
        slot.fetching_since = 0;
    }
    if let Err(error) = &fetched {
        slot.failure = Failure::of(error, shmem::now_ms());
    }
    let fetched = fetched?;
    let bytes = fetched.token.as_bytes();
    slot.token[..bytes.len()].copy_from_slice(bytes);
    slot.token_len = bytes.len() as u16;
    slot.expires_at = now.saturating_add(fetched.expires_in);
    slot.fetched_at = now;
    Ok(fetched.token)
}

/// Runs a WeChat call that needs `app`'s access token, with the cached one. When WeChat says the
/// token is bad (40001/40014/42001), the cached token is dropped (only if it is still the one that
/// failed), one fresh token is fetched, and the call is retried once; a second refusal is
/// returned.
pub fn with_access_token<T>(app: &App, call: impl Fn(&str) -> Result<T, AuthError>) -> Result<T, AuthError> {
    let token = access_token(app)?;
    match call(&token) {
        Err(AuthError::WechatTokenRejected(_)) => {
            invalidate(app, &token)?;
            call(&access_token(app)?)
        }
        other => other,
    }
}

/// Drops the cached token if it is still `failed` (a concurrent caller may already have
/// replaced it, and that newer token must survive).
fn invalidate(app: &App, failed: &str) -> Result<(), AuthError> {
    let cache = cache()?;
    let key = key(app)?;
    let mut guard = cache.exclusive();
    let slot = guard.slot(key, now());
    if slot.token() == failed.as_bytes() {
        slot.token_len = 0;
        slot.expires_at = 0;
    }
    Ok(())
}

/// What a superuser may know of `app`'s token: never the token itself.
pub fn status(app: &App) -> Result<serde_json::Value, AuthError> {
    let cache = cache()?;
    let key = key(app)?;
    let now = now();
    let mut guard = cache.exclusive();
    let slot = guard.slot(key, now);
    Ok(serde_json::json!({
        "appid": app.appid,
        "api_base": gucs::api_base()?,
        "cached": slot.token_len > 0,
        "expires_at": (slot.token_len > 0).then_some(slot.expires_at),
        "fetched_at": (slot.token_len > 0).then_some(slot.fetched_at),
        "refresh_after": (slot.token_len > 0).then_some(slot.expires_at - REFRESH_AHEAD_SECS),
        "fetch_in_progress": slot.fetching_since != 0,
    }))
}

/// Fetches a new token now; with `force`, WeChat also revokes the old one (after a leak).
pub fn refresh(app: &App, force: bool) -> Result<serde_json::Value, AuthError> {
    let cache = cache()?;
    let key = key(app)?;
    cache.exclusive().slot(key, now()).claim_fetch(now());
    fetch_into(app, cache, key, force)?;
    status(app)
}
