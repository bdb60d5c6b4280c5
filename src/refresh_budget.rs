//! How fast refreshes may come: GoTrue's token-refresh rate limit, kept per session and per client
//! address.
//!
//! A refresh writes a refresh-token row and audit rows, so one client rotating a token in a loop
//! (measured: 878 rotations a second on one connection) fills the disk. GoTrue limits `/token` per
//! client address (`RATE_LIMIT_TOKEN_REFRESH`, 150 per 5 minutes, bursts of 30). Here every session
//! gets that budget of its own, and so does every client address when `auth_wechat.rate_limit_header`
//! names one (the address GoTrue would count): token buckets in shared memory. A real client
//! refreshes about once an hour, and every refresh within the budget, the first ones after a
//! sign-in included, rotates as before. Past either budget, the refresh answers GoTrue's 429
//! `over_request_rate_limit` with `Retry-After`, and writes nothing. The budget is spent when the
//! refresh is admitted, whatever its transaction does later.
//!
//! A budget is forgotten only once it has refilled, when forgetting it loses nothing; a part of the
//! table that holds only budgets still draining has no room, and a refresh that would need a place
//! there waits (429) rather than start from a full budget. Without `shared_preload_libraries`
//! there is no budget, and a refresh refuses (500 `configuration_missing`) rather than run without
//! one.

use crate::error::AuthError;
use crate::gucs;
use crate::shmem::{self, KeyMap};
// `pg_shmem_init!` names `pg_guard` and `pg_sys` unqualified.
use pgrx::{pg_guard, pg_shmem_init, pg_sys, PgLwLock, Uuid};

/// GoTrue's burst for its token limiter: refreshes a full bucket holds.
const BURST: f64 = 30.0;
/// The period `auth_wechat.rate_limit_token_refresh` counts over, as GoTrue's.
const PERIOD_MS: f64 = 5.0 * 60.0 * 1000.0;

/// What a session or client has spent of its bucket, as of `at_ms`; a new one has spent nothing.
#[derive(Copy, Clone, Default)]
struct Spent {
    refreshes: f64,
    at_ms: i64,
}

impl Spent {
    /// What is still spent at `now`, the bucket refilling at `per_ms`.
    fn at(&self, now: i64, per_ms: f64) -> f64 {
        (self.refreshes - (now - self.at_ms).max(0) as f64 * per_ms).max(0.0)
    }
}

#[derive(Copy, Clone, Default)]
struct Budgets {
    /// 16384 sessions (2048 buckets of 8).
    sessions: KeyMap<Spent, 2048>,
    /// 8192 client addresses (1024 buckets of 8).
    clients: KeyMap<Spent, 1024>,
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

/// The seconds until `needed` more refreshes fit a bucket that has `spent` at `per_ms`.
fn wait(spent: f64, per_ms: f64) -> u32 {
    let wait_ms = (spent + 1.0 - BURST) / per_ms;
    (wait_ms / 1000.0).ceil().max(1.0) as u32
}

/// Takes one refresh from `map`'s budget for `key`, or says how many seconds until one is back.
fn take<const N: usize>(map: &mut KeyMap<Spent, N>, key: &[u8; 16], now: i64, per_ms: f64) -> Result<(), u32> {
    let Some(spent) = map.entry(key, now, |other| other.at(now, per_ms) == 0.0) else {
        // No room: every budget there is still refilling. The soonest one refills after this.
        let soonest = map.bucket_of(key).iter().map(|(_, other)| other.at(now, per_ms)).fold(f64::MAX, f64::min);
        return Err(((soonest / per_ms) / 1000.0).ceil().max(1.0) as u32);
    };
    let refreshes = spent.at(now, per_ms);
    if refreshes + 1.0 > BURST {
        return Err(wait(refreshes, per_ms));
    }
    *spent = Spent { refreshes: refreshes + 1.0, at_ms: now };
    Ok(())
}

/// Spends one refresh of `session`'s budget and of `client`'s (the caller's address, when
/// `auth_wechat.rate_limit_header` names it), or refuses with the seconds until both have one.
pub fn spend(session: Uuid, client: Option<&str>) -> Result<(), AuthError> {
    if !shmem::preloaded() {
        return Err(AuthError::NotPreloaded);
    }
    let per_period = gucs::rate_limit_token_refresh();
    if per_period == 0 {
        return Ok(());
    }
    let per_ms = f64::from(per_period) / PERIOD_MS;
    let now = shmem::now_ms();
    let mut budgets = BUDGETS.exclusive();
    let refused = |retry_after| AuthError::RateLimited { retry_after };
    take(&mut budgets.sessions, session.as_bytes(), now, per_ms).map_err(refused)?;
    if let Some(client) = client {
        take(&mut budgets.clients, &shmem::key_of(client), now, per_ms).map_err(refused)?;
    }
    Ok(())
}
