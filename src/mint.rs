//! Minting the answer for a session: GoTrue's access-token claims (with the session's `aal` and
//! `amr` as stored), the access token hook, the signed token, and GoTrue's session JSON around the
//! user as `store` renders it.

use crate::error::AuthError;
use crate::hook::{self, Method};
use crate::jsonb::{Jsonb, Member};
use crate::privilege::require_mintable_role;
use crate::session::AMR_METHOD;
use crate::user::{self, User};
use crate::{gucs, ids};
use pgrx::pg_sys;
use pgrx::Uuid;
use serde::Serialize;
use serde_json::value::RawValue;
use std::time::{SystemTime, UNIX_EPOCH};

/// `session_json`'s statement: the user (`user::user_rows_sql!`) and the session's assurance,
/// its `aal` from its `auth.sessions` row and its `amr` from its `auth.mfa_amr_claims` rows, so a
/// session that reached `aal2` (MFA through GoTrue, say) keeps `aal2` and its methods in every
/// token minted here. Each claim comes as one text, `method:unix seconds`, and unsorted: one
/// array and no sort node to start up per call (`read_assurance` splits and sorts them). `$1`
/// user, `$2` session.
const MINT_SQL: &str = user::user_rows_sql!(
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
        Assurance::Started => user::user(user_id).map(|user| (user, "aal1".to_string(), vec![started_amr()])),
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
    // The role a token names is the one PostgREST becomes for its bearer (see
    // `privilege::require_mintable_role`), whether the user's row or the hook chose it.
    let access_token = match gucs::access_token_hook() {
        Some(hook) => {
            let claims = serde_json::to_value(&claims).expect("the claims serialise");
            let claims = hook::apply(&hook, user_id, claims, method)?;
            require_mintable_role(claims["role"].as_str().unwrap_or_default())?;
            crate::signing::sign(&claims)?
        }
        None => {
            require_mintable_role(claims.role)?;
            crate::signing::sign(&claims)?
        }
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
    let (aal_column, amr_column) = (user::column::EXTRA, user::column::EXTRA + 1);
    let (user, (aal, claims)) = User::read(MINT_SQL, &[user_id.into(), session_id.into()], |row| {
        Ok((row.get::<String>(aal_column)?, row.get::<Vec<String>>(amr_column)?.unwrap_or_default()))
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
