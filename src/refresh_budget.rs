//! How fast one session may refresh: GoTrue's token-refresh rate limit, kept per session.
//!
//! A refresh writes a refresh-token row and audit rows, so one client rotating a token in a loop
//! (measured: 878 rotations a second on one connection) fills the disk. GoTrue limits
//! `/token` per client address (`RATE_LIMIT_TOKEN_REFRESH`, 150 per 5 minutes, bursts of 30);
//! here every session gets that budget of its own, a token bucket in shared memory: a real client
//! refreshes about once an hour, and every refresh within the budget, the first ones after a
//! sign-in included, rotates as before. Past it, the refresh answers GoTrue's 429
//! `over_request_rate_limit` with `Retry-After`, and writes nothing. The budget is spent when the
//! refresh is admitted, whatever its transaction does later. Without `shared_preload_libraries`
//! there is no budget, and a refresh refuses (500 `configuration_missing`) rather than run
//! without one.

use crate::error::AuthError;
use crate::gucs;
use crate::shmem::{self, KeyMap};
// `pg_shmem_init!` names `pg_guard` and `pg_sys` unqualified.
use pgrx::{pg_guard, pg_shmem_init, pg_sys, PgLwLock, Uuid};

/// GoTrue's burst for its token limiter: refreshes a full bucket holds.
const BURST: f64 = 30.0;
/// The period `auth_wechat.rate_limit_token_refresh` counts over, as GoTrue's.
const PERIOD_MS: f64 = 5.0 * 60.0 * 1000.0;

/// What a session has spent of its bucket, as of `at_ms`; a new session has spent nothing.
#[derive(Copy, Clone, Default)]
struct Spent {
    refreshes: f64,
    at_ms: i64,
}

static BUDGETS: PgLwLock<KeyMap<Spent, 2048>> = unsafe { PgLwLock::new(c"auth_wechat_refresh_budgets") };

/// Reserves the shared memory; called from `_PG_init`.
pub fn init() {
    shmem::reserve(|| {
        pg_shmem_init!(BUDGETS);
    });
}

/// Spends one refresh of `session`'s budget, or refuses with the seconds until one is back.
pub fn spend(session: Uuid) -> Result<(), AuthError> {
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
    let spent = budgets.entry(session.as_bytes(), now);
    let refreshes = (spent.refreshes - (now - spent.at_ms).max(0) as f64 * per_ms).max(0.0);
    if refreshes + 1.0 > BURST {
        let wait_ms = (refreshes + 1.0 - BURST) / per_ms;
        return Err(AuthError::RateLimited { retry_after: (wait_ms / 1000.0).ceil().max(1.0) as u32 });
    }
    *spent = Spent { refreshes: refreshes + 1.0, at_ms: now };
    Ok(())
}
