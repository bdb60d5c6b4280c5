//! GoTrue's sessions in its tables: starting one (the `auth.sessions`, `auth.refresh_tokens` and
//! `auth.mfa_amr_claims` rows), finding the caller's, the refresh-token lookups and rotations (v1
//! rows, v2 counters), GoTrue's session limits, and ending sessions. The answer minted for a
//! session is `mint`'s.

use crate::error::AuthError;
use crate::gucs::{RefreshTokenAlgorithm, SessionLimits};
use crate::ids::INSTANCE_ID;
use crate::request::{self, Caller};
use crate::spi::{first_row, write_row};
use crate::{gucs, ids, token_v2};
use pgrx::datum::DatumWithOid;
use pgrx::spi::{SpiResult, SpiTupleTable};
use pgrx::Uuid;
use std::sync::{LazyLock, OnceLock};

/// GoTrue's v1 refresh tokens: 12 characters of the lower-case base32 alphabet. GoTrue routes
/// tokens by length, so any other shape would not be refreshable by GoTrue.
const REFRESH_TOKEN_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
pub const REFRESH_TOKEN_LEN: usize = 12;

/// The `amr` method GoTrue writes for a third-party (OAuth-like) sign-in; GoTrue only knows a
/// fixed list of names, and an unknown one breaks its refresh of the session.
pub const AMR_METHOD: &str = "oauth";

/// A fresh random refresh token from the OS CSPRNG.
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; REFRESH_TOKEN_LEN];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes.iter().map(|b| REFRESH_TOKEN_ALPHABET[(b & 31) as usize] as char).collect()
}

/// `start`'s statement, with and without the v2 columns; assembled once per backend. `$1` user,
/// `$2` session, `$3` refresh token, `$4` instance, `$5` amr method, `$6` user agent, `$7` IP,
/// `$8` v2 key.
static START_V1: LazyLock<String> = LazyLock::new(|| start_sql("", ""));
static START_V2: LazyLock<String> =
    LazyLock::new(|| start_sql(", refresh_token_hmac_key, refresh_token_counter", ", $8, 0"));

fn start_sql(v2_columns: &str, v2_values: &str) -> String {
    format!(
        "WITH s AS (
             INSERT INTO auth.sessions (id, user_id, created_at, updated_at, aal, user_agent, ip{v2_columns})
             VALUES ($2, $1, pg_catalog.now(), pg_catalog.now(), 'aal1', $6, $7::inet{v2_values})
          RETURNING id
         ), r AS (
             INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, session_id)
             SELECT $4::uuid, $3, $1::text, false, pg_catalog.now(), pg_catalog.now(), s.id FROM s WHERE $8::text IS NULL
         ), a AS (
             INSERT INTO auth.mfa_amr_claims (id, session_id, created_at, updated_at, authentication_method)
             SELECT pg_catalog.gen_random_uuid(), s.id, pg_catalog.now(), pg_catalog.now(), $5 FROM s
         )
         SELECT id FROM s"
    )
}

/// Starts a session for a sign-in of `user_id`, in one statement: the session row, its `amr`
/// claim row, and its first refresh token (v1: a row of `auth.refresh_tokens`; v2: a key and
/// counter 0 in the session row, see `auth_wechat.refresh_token_algorithm`). Returns the session
/// id and the refresh token.
pub fn start(user_id: Uuid) -> (Uuid, String) {
    let session_id = ids::new_uuid();
    let client = request::client();
    let v2_key = (gucs::refresh_token_algorithm() == RefreshTokenAlgorithm::V2 && crate::schema::has_v2_columns())
        .then(token_v2::new_key);
    let refresh_token = match &v2_key {
        Some(key) => token_v2::encode(*session_id.as_bytes(), 0, &token_v2::decode_key(key).expect("a fresh key")),
        None => new_refresh_token(),
    };
    write_row(
        if v2_key.is_some() { &START_V2 } else { &START_V1 },
        &[
            user_id.into(),
            session_id.into(),
            refresh_token.clone().into(),
            INSTANCE_ID.into(),
            AMR_METHOD.into(),
            client.user_agent.into(),
            client.ip.map(|ip| ip.to_string()).into(),
            v2_key.into(),
        ],
        |row| row.get_one::<Uuid>(),
    );
    (session_id, refresh_token)
}

/// What the claims of a signed-in caller name: their user and their session, as GoTrue's user
/// routes find them.
pub struct CallerSession {
    pub id: Uuid,
    /// Why the session may no longer refresh, if it may not (`Expiry`): `valid` refuses it.
    pub expired: Option<Expiry>,
    /// Seconds since the session's latest authentication: its start, or a later `amr` claim (a
    /// step-up through GoTrue, say).
    pub authenticated_ago: i64,
}

impl CallerSession {
    /// The session, if it may still be used as refresh would let it: within its `not_after` and
    /// GoTrue's session limits.
    pub fn valid(self) -> Result<CallerSession, AuthError> {
        match self.expired {
            Some(why) => Err(AuthError::SessionExpired(why.message())),
            None => Ok(self),
        }
    }
}

/// `caller_session`'s statement for each combination of session limits, without and with the
/// v2 columns: `$1` the session, `$3`, `$4` the limits (`expiry_sql`), `$5` the user.
static CALLER_V1: ByLimits = ByLimits::new();
static CALLER_V2: ByLimits = ByLimits::new();

fn caller_sql(limits: &SessionLimits, v2: bool) -> String {
    // A v2 session refreshes with its key and counter, a v1 session with a live token row.
    let v2_live = if v2 { " OR s.refresh_token_hmac_key IS NOT NULL" } else { "" };
    format!(
        "SELECT u.deleted_at IS NULL, coalesce(u.banned_until > pg_catalog.now(), false),
                s.id IS NOT NULL AND (EXISTS (
                    SELECT 1 FROM auth.refresh_tokens r WHERE r.session_id = s.id AND r.revoked = false){v2_live}),
                {expiry},
                pg_catalog.floor(extract(epoch FROM pg_catalog.now() - greatest(s.created_at,
                    (SELECT pg_catalog.max(c.updated_at) FROM auth.mfa_amr_claims c WHERE c.session_id = s.id))))::bigint
           FROM auth.users u
           LEFT JOIN auth.sessions s ON s.id = $1 AND s.user_id = u.id
          WHERE u.id = $5",
        expiry = expiry_sql(limits, LAST_V2)
    )
}

/// The caller's user and session, checked in GoTrue's order: the user exists and is not
/// soft-deleted (else `UserNotFound`) nor banned (`UserBanned`); the claims name a session
/// (`SessionClaimMissing`) of that user that still holds a live refresh token and was not ended
/// as stolen (else `SessionNotFound`). Whether the session is past a limit is told, not refused: see
/// `CallerSession::valid`.
///
/// `request.jwt.claims` is an ordinary setting that any SQL caller can write, so claims are not
/// credentials: they only select a session, which must exist, belong to the claims' user and be
/// refreshable. Nothing here mints a token, so a session whose tokens were all revoked stays ended.
pub fn caller_session(caller: &Caller) -> Result<CallerSession, AuthError> {
    let limits = gucs::session_limits();
    let v2 = crate::schema::has_v2_columns();
    let statements = if v2 { &CALLER_V2 } else { &CALLER_V1 };
    let sql = statements.get(&limits, || caller_sql(&limits, v2));
    let session_id = caller.session_id;
    let [key, reuse, timebox, inactivity] = lookup_args(session_id.into(), 0, &limits);
    let args = [key, reuse, timebox, inactivity, caller.user_id.into()];
    let (present, banned, live, expired, authenticated_ago) = first_row(sql, &args, |row| {
        Ok((
            row.get::<bool>(1)?.unwrap_or(false),
            row.get::<bool>(2)?.unwrap_or(false),
            row.get::<bool>(3)?.unwrap_or(false),
            row.get::<String>(4)?.as_deref().and_then(Expiry::from_sql),
            row.get::<i64>(5)?.unwrap_or(0),
        ))
    })
    .ok_or(AuthError::UserNotFound)?;
    if !present {
        return Err(AuthError::UserNotFound);
    }
    if banned {
        return Err(AuthError::UserBanned);
    }
    let id = session_id.ok_or(AuthError::SessionClaimMissing)?;
    if !live || crate::revoked::stolen(id)? {
        return Err(AuthError::SessionNotFound);
    }
    Ok(CallerSession { id, expired, authenticated_ago })
}

/// The signed-in caller, with a session refresh would still accept (`caller_session`, `valid`),
/// whose latest sign-in is at most `within` seconds old when given (GoTrue's reauthentication
/// rule for sensitive changes; a refresh is not a sign-in): 400 `reauthentication_needed` if not.
pub fn recent_caller(within: Option<i64>) -> Result<Caller, AuthError> {
    let caller = request::caller()?;
    let session = caller_session(&caller)?.valid()?;
    if within.is_some_and(|within| session.authenticated_ago > within) {
        return Err(AuthError::ReauthenticationNeeded);
    }
    Ok(caller)
}

/// Whether `token` passes GoTrue's check of a v1 refresh token (`^[a-z0-9]{12}$`); GoTrue
/// answers 400 `validation_failed` to any other before looking it up.
pub fn is_refresh_token(token: &str) -> bool {
    token.len() == REFRESH_TOKEN_LEN && token.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Why a session may no longer refresh: its `not_after`, or one of GoTrue's session limits
/// (`auth_wechat.sessions_*`), checked as GoTrue's `Session.CheckValidity` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    NotAfter,
    Timebox,
    Inactivity,
    /// `sessions_single_per_user`: another live session of the user was refreshed (or started)
    /// more recently.
    NewerLogin,
}

impl Expiry {
    fn from_sql(reason: &str) -> Option<Expiry> {
        match reason {
            "not_after" => Some(Expiry::NotAfter),
            "timebox" => Some(Expiry::Timebox),
            "inactivity" => Some(Expiry::Inactivity),
            "newer_login" => Some(Expiry::NewerLogin),
            _ => None,
        }
    }

    /// GoTrue's words for it.
    pub fn message(self) -> &'static str {
        match self {
            Expiry::NotAfter | Expiry::Timebox => "Session Expired",
            Expiry::Inactivity => "Session Expired (Inactivity)",
            Expiry::NewerLogin => "Session Expired (Revoked by Newer Login)",
        }
    }
}

/// Why a session `s` may not refresh (`Expiry`), as SQL, given the SQL of its last refresh
/// (`last`): GoTrue's `Session.CheckValidity`, and its single-session check over the user's other
/// valid sessions. Only the limits that are on are in it (`$3` time-box and `$4` inactivity
/// timeout in seconds; the single-session check), so that the default statement carries no
/// sub-plan it never runs.
fn expiry_sql(limits: &SessionLimits, last: &str) -> String {
    let mut case = String::from("CASE WHEN s.not_after <= pg_catalog.now() THEN 'not_after'");
    if limits.timebox > 0 {
        case.push_str(" WHEN pg_catalog.now() > s.created_at + pg_catalog.make_interval(secs => $3) THEN 'timebox'");
    }
    if limits.inactivity_timeout > 0 {
        case.push_str(&format!(
            " WHEN pg_catalog.now() > {last} + pg_catalog.make_interval(secs => $4) THEN 'inactivity'"
        ));
    }
    if limits.single_per_user {
        let other_last = "coalesce(o.refreshed_at AT TIME ZONE 'UTC', o.created_at)";
        case.push_str(&format!(
            " WHEN EXISTS (
                  SELECT 1 FROM auth.sessions o
                   WHERE o.user_id = s.user_id AND o.id <> s.id
                     AND (o.not_after IS NULL OR o.not_after > pg_catalog.now())
                     AND ($3 = 0 OR pg_catalog.now() <= o.created_at + pg_catalog.make_interval(secs => $3))
                     AND ($4 = 0 OR pg_catalog.now() <= {other_last} + pg_catalog.make_interval(secs => $4))
                     AND {other_last} > {last}) THEN 'newer_login'"
        ));
    }
    case + " END"
}

/// A lookup statement for each combination of session limits, assembled on first use by `build`
/// (with `expiry_sql` for those limits).
struct ByLimits([OnceLock<String>; 8]);

impl ByLimits {
    const fn new() -> ByLimits {
        ByLimits([const { OnceLock::new() }; 8])
    }

    fn get(&self, limits: &SessionLimits, build: impl FnOnce() -> String) -> &str {
        let variant = usize::from(limits.timebox > 0)
            | usize::from(limits.inactivity_timeout > 0) << 1
            | usize::from(limits.single_per_user) << 2;
        self.0[variant].get_or_init(build)
    }
}

/// The parameters of a refresh lookup: `$1` what names the session, `$2` the reuse interval, and
/// `$3`, `$4` the session limits that `expiry_sql` reads.
fn lookup_args<'a>(key: DatumWithOid<'a>, reuse_interval_secs: i32, limits: &SessionLimits) -> [DatumWithOid<'a>; 4] {
    [key, reuse_interval_secs.into(), limits.timebox.into(), limits.inactivity_timeout.into()]
}

/// What a refresh learns about the session its token names, read with that session locked: the
/// same for v1 and v2 tokens, but for how the token itself is judged (`Presented`).
pub struct Found {
    pub session_id: Uuid,
    pub user_id: Uuid,
    /// The user's audit name (`crate::user::actor_name_sql!`).
    pub user_name: String,
    pub user_banned: bool,
    pub expired: Option<Expiry>,
    /// Within the reuse interval: for v1 the token was revoked less than it ago, for v2 the
    /// session was refreshed (or started) less than it ago.
    pub recent: bool,
    pub presented: Presented,
}

/// The v1/v2 difference.
pub enum Presented {
    /// A row of `auth.refresh_tokens`.
    V1 { id: i64, revoked: bool },
    /// The session's key (decoded; `None` when unset, or encrypted by GoTrue) and the counter of
    /// the last token it issued.
    V2 { key: Option<Vec<u8>>, counter: Option<i64> },
}

/// The columns of both refresh lookups (`found_sql`), in their order.
mod found_column {
    pub const SESSION: usize = 1;
    pub const USER: usize = 2;
    pub const USER_NAME: usize = 3;
    pub const BANNED: usize = 4;
    pub const EXPIRED: usize = 5;
    pub const RECENT: usize = 6;
    /// Then the token's own two: v1 the row's id and whether it was revoked; v2 the session's key
    /// and counter.
    pub const OWN_FIRST: usize = 7;
    pub const OWN_SECOND: usize = 8;
}

/// A refresh lookup: the session `s` and its user `u` from `from`, with `recent` (the reuse
/// interval's test) and `own` (the token's two columns), after the columns `Found` shares.
fn found_sql(limits: &SessionLimits, last: &str, recent: &str, own: &str, from: &str) -> String {
    format!(
        "SELECT s.id, s.user_id, {name}, coalesce(u.banned_until > pg_catalog.now(), false), {expiry},
                {recent}, {own}
           {from}
           JOIN auth.users u ON u.id = s.user_id AND u.deleted_at IS NULL",
        name = crate::user::actor_name_sql!(),
        expiry = expiry_sql(limits, last)
    )
}

/// Reads a `found_sql` row; `own` reads the token's two columns.
fn read_found(row: &SpiTupleTable, own: impl FnOnce(&SpiTupleTable) -> SpiResult<Presented>) -> SpiResult<Found> {
    use found_column::*;
    Ok(Found {
        session_id: row.get::<Uuid>(SESSION)?.expect("sessions.id is a primary key"),
        user_id: row.get::<Uuid>(USER)?.expect("sessions.user_id is not null"),
        user_name: row.get::<String>(USER_NAME)?.unwrap_or_default(),
        user_banned: row.get::<bool>(BANNED)?.unwrap_or(false),
        expired: row.get::<String>(EXPIRED)?.as_deref().and_then(Expiry::from_sql),
        recent: row.get::<bool>(RECENT)?.unwrap_or(false),
        presented: own(row)?,
    })
}

/// A v1 session's last activity, GoTrue's `LastRefreshedAt`: `refreshed_at` (stored in UTC
/// without a zone), else the later of its start and the presented token's `updated_at`.
const LAST_V1: &str = "coalesce(s.refreshed_at AT TIME ZONE 'UTC', greatest(s.created_at, r.updated_at))";
static FIND_V1: ByLimits = ByLimits::new();

/// Looks up a v1 refresh token after locking its session, so concurrent refreshes of one session
/// queue. The lock comes first, in a statement of its own: the read after it then sees what a
/// refresh that held the lock before us committed (a locking read of READ COMMITTED would
/// re-check only the locked row and keep the token's old state).
pub fn find_v1(token: &str, reuse_interval_secs: i32, limits: &SessionLimits) -> Option<Found> {
    write_row(
        "SELECT s.id FROM auth.refresh_tokens r JOIN auth.sessions s ON s.id = r.session_id
          WHERE r.token = $1 FOR UPDATE OF s",
        &[token.into()],
        |row| row.get_one::<Uuid>(),
    )?;
    let sql = FIND_V1.get(limits, || {
        found_sql(
            limits,
            LAST_V1,
            "coalesce(r.updated_at > pg_catalog.now() - pg_catalog.make_interval(secs => $2), false)",
            "r.id, coalesce(r.revoked, false)",
            "FROM auth.refresh_tokens r JOIN auth.sessions s ON s.id = r.session_id AND r.token = $1",
        )
    });
    first_row(sql, &lookup_args(token.into(), reuse_interval_secs, limits), |row| {
        read_found(&row, |row| {
            Ok(Presented::V1 {
                id: row.get::<i64>(found_column::OWN_FIRST)?.unwrap_or_default(),
                revoked: row.get::<bool>(found_column::OWN_SECOND)?.unwrap_or(false),
            })
        })
    })
}

/// The session's current (newest unrevoked) refresh token and that token's parent: what a client
/// retrying with a revoked token may get back. A live token is `revoked = false` (GoTrue writes
/// false, never NULL): so the index on `(session_id, revoked)` finds it without reading the
/// session's whole history.
pub fn active_token(session_id: Uuid) -> Option<(String, Option<String>)> {
    first_row(
        "SELECT token, parent FROM auth.refresh_tokens
          WHERE session_id = $1 AND revoked = false
          ORDER BY id DESC LIMIT 1",
        &[session_id.into()],
        |row| Ok((row.get::<String>(1)?, row.get::<String>(2)?)),
    )
    .and_then(|(token, parent)| Some((token?, parent)))
}

/// GoTrue's rotation: the presented token is revoked and a child (`parent` = it) is issued in the
/// same session, whose `refreshed_at`, `user_agent` and `ip` move to this request. Returns the
/// child.
pub fn rotate(found: &Found, id: i64, token: &str) -> String {
    let child = new_refresh_token();
    let client = request::client();
    // The session id is a parameter, not read through a CTE scan, which would cost its start-up
    // on every call: the session exists, as `find_v1` holds its lock.
    crate::spi::execute(
        "WITH old AS (
             UPDATE auth.refresh_tokens SET revoked = true, updated_at = pg_catalog.now() WHERE id = $1
         ), s AS (
             UPDATE auth.sessions
                SET refreshed_at = pg_catalog.timezone('utc', pg_catalog.now()), updated_at = pg_catalog.now(),
                    user_agent = coalesce($7, user_agent), ip = coalesce($8::inet, ip)
              WHERE id = $3
         )
         INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, parent, session_id)
         VALUES ($5::uuid, $2, $4::text, false, pg_catalog.now(), pg_catalog.now(), $6, $3)",
        &[
            id.into(),
            child.clone().into(),
            found.session_id.into(),
            found.user_id.into(),
            INSTANCE_ID.into(),
            token.into(),
            client.user_agent.into(),
            client.ip.map(|ip| ip.to_string()).into(),
        ],
    );
    child
}

/// A v2 session's last activity: `refreshed_at` (UTC, without a zone), else its start.
const LAST_V2: &str = "coalesce(s.refreshed_at AT TIME ZONE 'UTC', s.created_at)";
static FIND_V2: ByLimits = ByLimits::new();

/// Locks and reads the session a v2 token names; `None` when there is none (or the schema has no
/// v2 columns, or its user was soft-deleted).
pub fn find_v2(session_id: Uuid, reuse_interval_secs: i32, limits: &SessionLimits) -> Option<Found> {
    if !crate::schema::has_v2_columns() {
        return None;
    }
    write_row("SELECT id FROM auth.sessions WHERE id = $1 FOR UPDATE", &[session_id.into()], |row| {
        row.get_one::<Uuid>()
    })?;
    let sql = FIND_V2.get(limits, || {
        found_sql(
            limits,
            LAST_V2,
            &format!("pg_catalog.abs(extract(epoch FROM pg_catalog.now() - {LAST_V2})) < $2"),
            "s.refresh_token_hmac_key, s.refresh_token_counter",
            "FROM auth.sessions s",
        ) + " WHERE s.id = $1"
    });
    first_row(sql, &lookup_args(session_id.into(), reuse_interval_secs, limits), |row| {
        read_found(&row, |row| {
            Ok(Presented::V2 {
                key: row.get::<String>(found_column::OWN_FIRST)?.as_deref().and_then(token_v2::decode_key),
                counter: row.get::<i64>(found_column::OWN_SECOND)?,
            })
        })
    })
}

/// A v2 refresh: the session's counter moves to `counter` (or stays, for an allowed reuse), and
/// its `refreshed_at`, `user_agent` and `ip` to this request, as GoTrue does.
pub fn advance_v2(session_id: Uuid, counter: i64) {
    let client = request::client();
    write_row(
        "UPDATE auth.sessions
            SET refresh_token_counter = $2, refreshed_at = pg_catalog.timezone('utc', pg_catalog.now()), updated_at = pg_catalog.now(),
                user_agent = coalesce($3, user_agent), ip = coalesce($4::inet, ip)
          WHERE id = $1
      RETURNING 1",
        &[session_id.into(), counter.into(), client.user_agent.into(), client.ip.map(|ip| ip.to_string()).into()],
        |row| row.get_one::<i32>(),
    );
}

/// Which of a user's sessions a sign-out ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The caller's own session.
    Local,
    /// All of the user's sessions.
    Global,
    /// All but the caller's.
    Others,
}

/// Ends sessions as GoTrue's logout does: the rows go, and with them (by cascade) their refresh
/// tokens and `amr` claims. Returns how many ended. The theft memory is told which, as this
/// transaction may still roll their end back (`revoked::ended_in_this_transaction`).
pub fn end_sessions(user_id: Uuid, current: Option<Uuid>, scope: Scope) -> usize {
    let scope = match scope {
        Scope::Local => "local",
        Scope::Global => "global",
        Scope::Others => "others",
    };
    let ended: Vec<Uuid> = write_row(
        "WITH gone AS (
             DELETE FROM auth.sessions
              WHERE user_id = $1
                AND CASE $3 WHEN 'local' THEN id = $2
                            WHEN 'others' THEN id IS DISTINCT FROM $2
                            ELSE true END
          RETURNING id)
         SELECT ARRAY(SELECT id FROM gone)",
        &[user_id.into(), current.into(), scope.into()],
        |row| row.get_one::<Vec<Uuid>>(),
    )
    .flatten()
    .unwrap_or_default();
    crate::revoked::ended_in_this_transaction(&ended);
    ended.len()
}

/// Which of `sessions` exist, as this transaction sees `auth.sessions`.
pub fn existing(sessions: &[Uuid]) -> Vec<Uuid> {
    first_row("SELECT ARRAY(SELECT id FROM auth.sessions WHERE id = ANY ($1))", &[sessions.to_vec().into()], |row| {
        row.get_one::<Vec<Uuid>>()
    })
    .flatten()
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_have_gotrue_v1_shape() {
        let token = new_refresh_token();
        assert_eq!(token.len(), 12);
        assert!(token.bytes().all(|b| REFRESH_TOKEN_ALPHABET.contains(&b)));
        assert_ne!(token, new_refresh_token());
    }
}
