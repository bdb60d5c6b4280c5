//! Minting a real GoTrue session: the `auth.sessions`, `auth.refresh_tokens` and
//! `auth.mfa_amr_claims` rows, and an access token with GoTrue's claims (signed by `signing`).

use crate::error::AuthError;
use crate::gucs::{RefreshTokenAlgorithm, SessionLimits};
use crate::hook::{self, Method};
use crate::jsonb::{Jsonb, Member};
use crate::request::{self, Caller};
use crate::store::{first_row, write_row, User, INSTANCE_ID};
use crate::{gucs, ids, store, token_v2};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::Uuid;
use serde::Serialize;
use serde_json::value::RawValue;
use std::sync::{LazyLock, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// GoTrue's v1 refresh tokens: 12 characters of the lower-case base32 alphabet. GoTrue routes
/// tokens by length, so any other shape would not be refreshable by GoTrue.
const REFRESH_TOKEN_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
const REFRESH_TOKEN_LEN: usize = 12;

/// The `amr` method GoTrue writes for a third-party (OAuth-like) sign-in; GoTrue only knows a
/// fixed list of names, and an unknown one breaks its refresh of the session.
pub const AMR_METHOD: &str = "oauth";

/// A fresh random refresh token from the OS CSPRNG.
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; REFRESH_TOKEN_LEN];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes.iter().map(|b| REFRESH_TOKEN_ALPHABET[(b & 31) as usize] as char).collect()
}

/// `start`'s statement, with and without the v2 columns; assembled once per backend. `$1`–`$4`
/// are the identity's (`store::identity_upsert_sql!`), then `$5` session, `$6` refresh token,
/// `$7` instance, `$8` amr method, `$9` user agent, `$10` IP, `$11` v2 key.
static START_V1: LazyLock<String> = LazyLock::new(|| start_sql("", ""));
static START_V2: LazyLock<String> =
    LazyLock::new(|| start_sql(", refresh_token_hmac_key, refresh_token_counter", ", $11, 0"));

fn start_sql(v2_columns: &str, v2_values: &str) -> String {
    format!(
        "WITH i AS (
             {identity}
         ), s AS (
             INSERT INTO auth.sessions (id, user_id, created_at, updated_at, aal, user_agent, ip{v2_columns})
             VALUES ($5, $1, pg_catalog.now(), pg_catalog.now(), 'aal1', $9, $10::inet{v2_values})
          RETURNING id
         ), r AS (
             INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, session_id)
             SELECT $7::uuid, $6, $1::text, false, pg_catalog.now(), pg_catalog.now(), s.id FROM s WHERE $11::text IS NULL
         ), a AS (
             INSERT INTO auth.mfa_amr_claims (id, session_id, created_at, updated_at, authentication_method)
             SELECT pg_catalog.gen_random_uuid(), s.id, pg_catalog.now(), pg_catalog.now(), $8 FROM s
         )
         SELECT id FROM s",
        identity = store::identity_upsert_sql!()
    )
}

/// Starts a session for a WeChat sign-in of `user_id`, in one statement: the user's `wechat_mini`
/// identity (created or refreshed), the session row, its `amr` claim row, and its first refresh
/// token (v1: a row of `auth.refresh_tokens`; v2: a key and counter 0 in the session row, see
/// `auth_wechat.refresh_token_algorithm`). Returns the session id and the refresh token.
pub fn start(user_id: Uuid, openid: &str, unionid: Option<&str>) -> (Uuid, String) {
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
            openid.into(),
            unionid.into(),
            store::PROVIDER.into(),
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
    if !live || crate::revoked::stolen(id) {
        return Err(AuthError::SessionNotFound);
    }
    Ok(CallerSession { id, expired, authenticated_ago })
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

/// A presented refresh token and what decides its fate, read with its session locked.
pub struct Presented {
    pub id: i64,
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub revoked: bool,
    /// Revoked less than the reuse interval ago.
    pub recent: bool,
    pub expired: Option<Expiry>,
    pub user_banned: bool,
    /// The user's audit name (`store::actor_name_sql!`).
    pub user_name: String,
}

/// A v1 session's last activity, GoTrue's `LastRefreshedAt`: `refreshed_at` (stored in UTC
/// without a zone), else the later of its start and the presented token's `updated_at`.
const LAST_V1: &str = "coalesce(s.refreshed_at AT TIME ZONE 'UTC', greatest(s.created_at, r.updated_at))";
static FIND_V1: ByLimits = ByLimits::new();

/// Looks up a refresh token after locking its session, so concurrent refreshes of one session
/// queue. The lock comes first, in a statement of its own: the read after it then sees what a
/// refresh that held the lock before us committed (a locking read of READ COMMITTED would
/// re-check only the locked row and keep the token's old state).
pub fn find_refresh_token(token: &str, reuse_interval_secs: i32, limits: &SessionLimits) -> Option<Presented> {
    write_row(
        "SELECT s.id FROM auth.refresh_tokens r JOIN auth.sessions s ON s.id = r.session_id
          WHERE r.token = $1 FOR UPDATE OF s",
        &[token.into()],
        |row| row.get_one::<Uuid>(),
    )?;
    let sql = FIND_V1.get(limits, || {
        format!(
            "SELECT r.id, s.id, s.user_id, coalesce(r.revoked, false),
                    coalesce(r.updated_at > pg_catalog.now() - pg_catalog.make_interval(secs => $2), false),
                    {expiry}, coalesce(u.banned_until > pg_catalog.now(), false), {name}
               FROM auth.refresh_tokens r
               JOIN auth.sessions s ON s.id = r.session_id
               JOIN auth.users u ON u.id = s.user_id AND u.deleted_at IS NULL
              WHERE r.token = $1",
            expiry = expiry_sql(limits, LAST_V1),
            name = store::actor_name_sql!()
        )
    });
    first_row(sql, &lookup_args(token.into(), reuse_interval_secs, limits), |row| {
        Ok(Presented {
            id: row.get::<i64>(1)?.unwrap_or_default(),
            session_id: row.get::<Uuid>(2)?.expect("sessions.id is a primary key"),
            user_id: row.get::<Uuid>(3)?.expect("sessions.user_id is not null"),
            revoked: row.get::<bool>(4)?.unwrap_or(false),
            recent: row.get::<bool>(5)?.unwrap_or(false),
            expired: row.get::<String>(6)?.as_deref().and_then(Expiry::from_sql),
            user_banned: row.get::<bool>(7)?.unwrap_or(false),
            user_name: row.get::<String>(8)?.unwrap_or_default(),
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
pub fn rotate(presented: &Presented, token: &str) -> String {
    let child = new_refresh_token();
    let client = request::client();
    // The session id is a parameter, not read through a CTE scan, which would cost its start-up
    // on every call: the session exists, as `find_refresh_token` holds its lock.
    store::execute(
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
            presented.id.into(),
            child.clone().into(),
            presented.session_id.into(),
            presented.user_id.into(),
            INSTANCE_ID.into(),
            token.into(),
            client.user_agent.into(),
            client.ip.map(|ip| ip.to_string()).into(),
        ],
    );
    child
}

/// A session named by a v2 refresh token, read with the session locked.
pub struct PresentedV2 {
    pub user_id: Uuid,
    /// The decoded `refresh_token_hmac_key`; `None` when unset or encrypted by GoTrue.
    pub key: Option<Vec<u8>>,
    /// `refresh_token_counter`: that of the last token issued.
    pub counter: Option<i64>,
    pub expired: Option<Expiry>,
    pub user_banned: bool,
    /// Refreshed (or started) less than the reuse interval ago: a concurrent refresh.
    pub recent: bool,
    /// The user's audit name (`store::actor_name_sql!`).
    pub user_name: String,
}

/// A v2 session's last activity: `refreshed_at` (UTC, without a zone), else its start.
const LAST_V2: &str = "coalesce(s.refreshed_at AT TIME ZONE 'UTC', s.created_at)";
static FIND_V2: ByLimits = ByLimits::new();

/// Locks and reads the session a v2 token names; `None` when there is none (or the schema has no
/// v2 columns, or its user was soft-deleted).
pub fn find_v2_session(session_id: Uuid, reuse_interval_secs: i32, limits: &SessionLimits) -> Option<PresentedV2> {
    if !crate::schema::has_v2_columns() {
        return None;
    }
    write_row("SELECT id FROM auth.sessions WHERE id = $1 FOR UPDATE", &[session_id.into()], |row| {
        row.get_one::<Uuid>()
    })?;
    let sql = FIND_V2.get(limits, || {
        format!(
            "SELECT s.user_id, s.refresh_token_hmac_key, s.refresh_token_counter,
                    {expiry}, coalesce(u.banned_until > pg_catalog.now(), false),
                    pg_catalog.abs(extract(epoch FROM pg_catalog.now() - {LAST_V2})) < $2, {name}
               FROM auth.sessions s
               JOIN auth.users u ON u.id = s.user_id AND u.deleted_at IS NULL
              WHERE s.id = $1",
            expiry = expiry_sql(limits, LAST_V2),
            name = store::actor_name_sql!()
        )
    });
    first_row(sql, &lookup_args(session_id.into(), reuse_interval_secs, limits), |row| {
        Ok(PresentedV2 {
            user_id: row.get::<Uuid>(1)?.expect("sessions.user_id is not null"),
            key: row.get::<String>(2)?.as_deref().and_then(token_v2::decode_key),
            counter: row.get::<i64>(3)?,
            expired: row.get::<String>(4)?.as_deref().and_then(Expiry::from_sql),
            user_banned: row.get::<bool>(5)?.unwrap_or(false),
            recent: row.get::<bool>(6)?.unwrap_or(false),
            user_name: row.get::<String>(7)?.unwrap_or_default(),
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
/// tokens and `amr` claims. Returns how many ended.
pub fn end_sessions(user_id: Uuid, current: Option<Uuid>, scope: Scope) -> i64 {
    let scope = match scope {
        Scope::Local => "local",
        Scope::Global => "global",
        Scope::Others => "others",
    };
    write_row(
        "WITH gone AS (
             DELETE FROM auth.sessions
              WHERE user_id = $1
                AND CASE $3 WHEN 'local' THEN id = $2
                            WHEN 'others' THEN id IS DISTINCT FROM $2
                            ELSE true END
          RETURNING 1)
         SELECT pg_catalog.count(*) FROM gone",
        &[user_id.into(), current.into(), scope.into()],
        |row| row.get_one::<i64>(),
    )
    .flatten()
    .unwrap_or(0)
}

/// `session_json`'s statement: the user (`store::user_rows_sql!`) and the session's assurance,
/// its `aal` from its `auth.sessions` row and its `amr` from its `auth.mfa_amr_claims` rows, so a
/// session that reached `aal2` (MFA through GoTrue, say) keeps `aal2` and its methods in every
/// token minted here. Each claim comes as one text, `method:unix seconds`, and unsorted: one
/// array and no sort node to start up per call (`read_assurance` splits and sorts them). `$1`
/// user, `$2` session.
const MINT_SQL: &str = store::user_rows_sql!(
    ", (SELECT s.aal::text FROM auth.sessions s WHERE s.id = $2),
       ARRAY(SELECT c.authentication_method || ':' || pg_catalog.floor(extract(epoch FROM c.updated_at))::bigint
               FROM auth.mfa_amr_claims c WHERE c.session_id = $2)"
);

/// How the session that a new access token names was authenticated: its `aal` and `amr` claims.
#[derive(Clone, Copy)]
pub enum Assurance {
    /// Started in this transaction by `start`: `aal1` and its one `amr` claim, as written there;
    /// nothing to read back.
    Started,
    /// An existing session: read from its rows, as it may have reached `aal2` since.
    Stored,
}

/// One `amr` claim: how and when (Unix seconds) the session was authenticated.
#[derive(Serialize)]
struct AmrClaim {
    method: String,
    timestamp: i64,
}

/// GoTrue's session JSON for the user and session, with a new access token; `None` when the user
/// is missing or soft-deleted.
pub fn session_json(
    user_id: Uuid,
    session_id: Uuid,
    refresh_token: &str,
    method: Method,
    assurance: Assurance,
) -> Result<Option<Jsonb>, AuthError> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let expires_in = gucs::jwt_exp();
    let found = match assurance {
        Assurance::Started => store::user(user_id).map(|user| (user, "aal1".to_string(), vec![started_amr()])),
        Assurance::Stored => read_assurance(user_id, session_id),
    };
    let Some((user, aal, amr)) = found else {
        return Ok(None);
    };
    let (app_metadata, user_metadata) = (user.app_metadata.to_raw_json(), user.user_metadata.to_raw_json());
    let session_id_text = ids::uuid_text(session_id);
    let issuer = gucs::jwt_issuer();
    let claims = Claims {
        sub: &user.id,
        aud: &user.aud,
        exp: now + expires_in,
        iat: now,
        email: &user.email,
        phone: &user.phone,
        app_metadata: &app_metadata,
        user_metadata: &user_metadata,
        role: &user.role,
        aal: &aal,
        amr: &amr,
        session_id: &session_id_text,
        is_anonymous: user.is_anonymous,
        iss: &issuer,
    };
    let access_token = match gucs::access_token_hook() {
        Some(hook) => {
            let claims = serde_json::to_value(&claims).expect("the claims serialise");
            crate::signing::sign(&hook::apply(&hook, user_id, claims, method)?)?
        }
        None => crate::signing::sign(&claims)?,
    };
    Ok(Some(Jsonb::object(&[
        ("access_token", Member::Text(&access_token)),
        ("token_type", Member::Text("bearer")),
        ("expires_in", Member::Int(expires_in)),
        ("expires_at", Member::Int(now + expires_in)),
        ("refresh_token", Member::Text(refresh_token)),
        ("user", Member::Object(user.members())),
    ])))
}

/// The `amr` claim of a session `start` wrote in this transaction: its one claim, whose
/// `updated_at` is the transaction's `pg_catalog.now()`.
fn started_amr() -> AmrClaim {
    /// Seconds from the Unix epoch to Postgres' (2000-01-01).
    const POSTGRES_EPOCH: i64 = 946_684_800;
    // SAFETY: a plain read of the current transaction's start time.
    let started = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    AmrClaim { method: AMR_METHOD.to_string(), timestamp: started.div_euclid(1_000_000) + POSTGRES_EPOCH }
}

/// The user, and the session's `aal` and `amr` from its rows (`MINT_SQL`), the claims newest
/// first as GoTrue lists them; `None` for a missing user. A missing session (ended by a
/// concurrent sign-out) reads as `aal1` without claims.
fn read_assurance(user_id: Uuid, session_id: Uuid) -> Option<(User, String, Vec<AmrClaim>)> {
    let first = User::COLUMNS;
    let (user, (aal, claims)) = User::read(MINT_SQL, &[user_id.into(), session_id.into()], |row| {
        Ok((row.get::<String>(first + 1)?, row.get::<Vec<String>>(first + 2)?.unwrap_or_default()))
    })?;
    let mut amr: Vec<AmrClaim> = claims
        .iter()
        .filter_map(|claim| {
            // The method is GoTrue's name; the part after the last colon is the number.
            let (method, timestamp) = claim.rsplit_once(':')?;
            Some(AmrClaim { method: method.to_string(), timestamp: timestamp.parse().ok()? })
        })
        .collect();
    amr.sort_by_key(|claim| std::cmp::Reverse(claim.timestamp));
    Some((user, aal.unwrap_or_else(|| "aal1".to_string()), amr))
}

/// GoTrue's access-token claims; `iss` only with an issuer. Serialised straight into the token.
#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    email: &'a str,
    phone: &'a str,
    app_metadata: &'a RawValue,
    user_metadata: &'a RawValue,
    role: &'a str,
    aal: &'a str,
    amr: &'a [AmrClaim],
    session_id: &'a str,
    is_anonymous: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    iss: &'a str,
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
