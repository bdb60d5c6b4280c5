//! How fast requests may come, as token buckets in shared memory: refreshes (GoTrue's
//! token-refresh rate limit, kept per session and per client address) and the mini-program codes
//! of scan-to-sign-in (per client address and per app).
//!
//! A refresh writes a refresh-token row and audit rows, so one client rotating a token in a loop
//! (measured: 878 rotations a second on one connection) fills the disk. GoTrue limits `/token` per
//! client address (`RATE_LIMIT_TOKEN_REFRESH`, 150 per 5 minutes, bursts of 30). Here every session
//! gets that budget of its own, and so does every client address when `auth_wechat.rate_limit_header`
//! names one (the address GoTrue would count). A real client refreshes about once an hour, and
//! every refresh within the budget, the first ones after a sign-in included, rotates as before.
//!
//! A scan-to-sign-in start asks WeChat for a code (WeChat allows an app 5,000 a minute) and writes
//! a ticket, for anyone who calls: a person starts one, maybe a second, so a client address gets a
//! few a minute (`auth_wechat.scan_rate_per_client`, bursts of 3) and the app as a whole
//! `auth_wechat.scan_rate`.
//!
//! Past a budget the call answers GoTrue's 429 `over_request_rate_limit` with `Retry-After`, and
//! writes nothing. A budget is spent when the call is admitted, whatever its transaction does later.
//! A budget is forgotten only once it has refilled, when forgetting it loses nothing; a part of the
//! table that holds only budgets still draining has no room, and a call that would need a place
//! there waits (429) rather than start from a full budget. Without `shared_preload_libraries`
//! there is no budget, and the call refuses (500 `configuration_missing`) rather than run without
//! one.

use crate::error::AuthError;
use crate::gucs;
use crate::shmem::{self, KeyMap};
// `pg_shmem_init!` names `pg_guard` and `pg_sys` unqualified.
use pgrx::{pg_guard, pg_shmem_init, pg_sys, PgLwLock, Uuid};

/// GoTrue's burst for its token limiter: refreshes a full bucket holds.
const REFRESH_BURST: f64 = 30.0;
/// The period `auth_wechat.rate_limit_token_refresh` counts over, as GoTrue's.
const REFRESH_PERIOD_MS: f64 = 5.0 * 60.0 * 1000.0;
/// Scan codes a client address may start at once: a person's one, and a second.
const SCAN_CLIENT_BURST: f64 = 3.0;
/// The scan settings count per minute.
const MINUTE_MS: f64 = 60.0 * 1000.0;

/// A bucket's rule: at most `burst` at once, refilling at `per_ms`.
#[derive(Clone, Copy)]
struct Rate {
    burst: f64,
    per_ms: f64,
}

/// What a key has spent of its bucket, as of `at_ms`; a new one has spent nothing.
#[derive(Copy, Clone, Default)]
struct Spent {
    spent: f64,
    at_ms: i64,
}

impl Spent {
    /// What is still spent at `now`, the bucket refilling at `per_ms`.
    fn at(&self, now: i64, per_ms: f64) -> f64 {
        (self.spent - (now - self.at_ms).max(0) as f64 * per_ms).max(0.0)
    }
}

#[derive(Copy, Clone, Default)]
struct Budgets {
    /// Refreshes of 16384 sessions (2048 buckets of 8).
    sessions: KeyMap<Spent, 2048>,
    /// Refreshes of 8192 client addresses (1024 buckets of 8).
    clients: KeyMap<Spent, 1024>,
    /// Scan codes of 8192 client addresses.
    scan_clients: KeyMap<Spent, 1024>,
    /// Scan codes of 256 apps.
    scan_apps: KeyMap<Spent, 32>,
}

// SAFETY: plain old data, no pointers.
unsafe impl pgrx::PGRXSharedMemory for Budgets {}

// SAFETY (of the `unsafe` in the initialiser): `PgLwLock::new` only names the lock; pgrx sets it
// up in shared memory when `pg_shmem_init!` runs in the postmaster, before any backend uses it.
static BUDGETS: PgLwLock<Budgets> = unsafe { PgLwLock::new(c"auth_wechat_refresh_budgets") };

/// Reserves the shared memory; called from `_PG_init`.
pub fn init() {
    shmem::reserve(|| {
        pg_shmem_init!(BUDGETS);
    });
}

/// Whether `map`'s budget for `key` has one left, or how many seconds until it has; takes nothing.
fn check<const N: usize>(map: &KeyMap<Spent, N>, key: &[u8; 16], now: i64, rate: Rate) -> Result<(), u32> {
    let used = map.get(key).map_or(0.0, |spent| spent.at(now, rate.per_ms));
    if used + 1.0 > rate.burst {
        return Err(seconds((used + 1.0 - rate.burst) / rate.per_ms));
    }
    Ok(())
}

fn seconds(ms: f64) -> u32 {
    (ms / 1000.0).ceil().max(1.0) as u32
}

/// Takes one from `map`'s budget for `key`, or says how many seconds until one is back.
fn take<const N: usize>(map: &mut KeyMap<Spent, N>, key: &[u8; 16], now: i64, rate: Rate) -> Result<(), u32> {
    check(map, key, now, rate)?;
    let Some(spent) = map.entry(key, now, |other| other.at(now, rate.per_ms) == 0.0) else {
        // No room: every budget there is still refilling. The soonest one refills after this.
        let soonest = map.bucket_of(key).iter().map(|(_, other)| other.at(now, rate.per_ms)).fold(f64::MAX, f64::min);
        return Err(seconds(soonest / rate.per_ms));
    };
    *spent = Spent { spent: spent.at(now, rate.per_ms) + 1.0, at_ms: now };
    Ok(())
}

/// Refuses without the shared memory the budgets live in.
fn preloaded() -> Result<(), AuthError> {
    if shmem::preloaded() {
        Ok(())
    } else {
        Err(AuthError::NotPreloaded)
    }
}

/// Spends one refresh of `session`'s budget and of `client`'s (the caller's address, when
/// `auth_wechat.rate_limit_header` names it), or refuses with the seconds until both have one.
pub fn spend_refresh(session: Uuid, client: Option<&str>) -> Result<(), AuthError> {
    preloaded()?;
    let per_period = gucs::rate_limit_token_refresh();
    if per_period == 0 {
        return Ok(());
    }
    let rate = Rate { burst: REFRESH_BURST, per_ms: f64::from(per_period) / REFRESH_PERIOD_MS };
    let now = shmem::now_ms();
    let mut budgets = BUDGETS.exclusive();
    let refused = |retry_after| AuthError::RateLimited { retry_after };
    take(&mut budgets.sessions, session.as_bytes(), now, rate).map_err(refused)?;
    if let Some(client) = client {
        take(&mut budgets.clients, &shmem::key_of(client), now, rate).map_err(refused)?;
    }
    Ok(())
}

/// Spends one scan code of `client`'s budget (when `auth_wechat.rate_limit_header` names the
/// caller's address) and of the app `appid`'s, or refuses with the seconds until both have one.
/// A setting of 0 is no limit.
pub fn spend_scan(appid: &str, client: Option<&str>) -> Result<(), AuthError> {
    preloaded()?;
    let (per_client, per_app) = (gucs::scan_rate_per_client(), gucs::scan_rate());
    let now = shmem::now_ms();
    let mut budgets = BUDGETS.exclusive();
    let refused = |retry_after| AuthError::RateLimited { retry_after };
    let client = client.filter(|_| per_client > 0).map(|client| {
        (shmem::key_of(client), Rate { burst: SCAN_CLIENT_BURST, per_ms: f64::from(per_client) / MINUTE_MS })
    });
    // Ten seconds' worth at once.
    let app = (per_app > 0).then(|| {
        (
            shmem::key_of(appid),
            Rate { burst: (f64::from(per_app) / 6.0).ceil(), per_ms: f64::from(per_app) / MINUTE_MS },
        )
    });
    // Both are asked before either is spent: a refusal spends nothing.
    if let Some((key, rate)) = &client {
        check(&budgets.scan_clients, key, now, *rate).map_err(refused)?;
    }
    if let Some((key, rate)) = &app {
        check(&budgets.scan_apps, key, now, *rate).map_err(refused)?;
    }
    if let Some((key, rate)) = &client {
        take(&mut budgets.scan_clients, key, now, *rate).map_err(refused)?;
    }
    if let Some((key, rate)) = &app {
        take(&mut budgets.scan_apps, key, now, *rate).map_err(refused)?;
    }
    Ok(())
}
