//! Scan-to-sign-in: a website's user signs in by scanning a mini-program code with WeChat and
//! confirming in the mini program, where they are signed in already; the browser that showed the
//! code gets a GoTrue session of its own for that user.
//!
//! 1. The browser starts a ticket (`auth.wechat_scan_start`, as `anon`): a mini-program code whose
//!    `scene` is the ticket, and a poll secret that only this browser ever sees.
//! 2. The mini program opens with the scene; its signed-in user views the ticket
//!    (`auth.wechat_scan_view`), which makes it theirs and tells them who asked (address, user
//!    agent, time), then confirms or denies (`auth.wechat_scan_confirm`).
//! 3. The browser polls with the secret (`auth.wechat_scan_poll`) and, once confirmed, gets the
//!    session exactly once: the ticket is deleted as the session is made.
//!
//! The ticket in the code is no credential: anyone who sees the code may view it, first come. The
//! poll secret is: it alone collects the session, and an unknown ticket and a wrong secret answer
//! the same 404. Starting costs a WeChat call and a row, for anyone, so it is rate-limited per
//! client address and per app (`budget`), and the tickets waiting at once are bounded, all before
//! WeChat is called. The rows live in `scan_ticket`; the calls sweep expired ones away.

use crate::apps;
use crate::audit::{self, Action};
use crate::error::AuthError;
use crate::gucs;
use crate::hook::Method;
use crate::jsonb::Jsonb;
use crate::mint::{self, Assurance};
use crate::request::{self, Caller};
use crate::scan_ticket::{self, Status, Ticket};
use crate::session::{self, CallerSession};
use crate::wechat::qrcode;
use crate::{budget, spent, spi, token_cache, user};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64URL};
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};

/// A ticket: 128 random bits, 22 characters of base64url (WeChat's `scene` holds at most 32).
const TICKET_BYTES: usize = 16;
/// The poll secret: 256 random bits, 43 characters of base64url.
const SECRET_BYTES: usize = 32;
/// Seconds to wait when too many tickets wait already: about as long as a browser polls one.
const FULL_RETRY_AFTER: u32 = 10;

fn random_text<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    B64URL.encode(bytes)
}

/// A ticket as a client sends it, if it could be one (anything else is not found).
fn ticket_of(ticket: Option<&str>) -> Result<&str, AuthError> {
    ticket
        .filter(|t| t.len() == 22 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .ok_or(AuthError::ScanTicketNotFound)
}

fn poll_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// `auth.wechat_scan_start(appid, page)`: a new ticket and its mini-program code.
pub fn start(appid: Option<&str>, page: Option<&str>) -> Result<Jsonb, AuthError> {
    let app = apps::mini_program(appid)?;
    let page = page.map(str::to_string).or_else(gucs::scan_page);
    let ticket = random_text::<TICKET_BYTES>();
    let secret = random_text::<SECRET_BYTES>();
    // A page WeChat would refuse is refused before anything is spent.
    let body = qrcode::request_body(&qrcode::Params::of(&ticket, page.as_deref()))?;
    // Without the table there is nothing to sweep or count; it is made once WeChat answered, so
    // that the lock it takes is never held through the call.
    let made = scan_ticket::ready(false)?;
    if made {
        scan_ticket::sweep();
        if scan_ticket::waiting() >= gucs::scan_max_pending() {
            return Err(AuthError::RateLimited { retry_after: FULL_RETRY_AFTER });
        }
    }
    let client_address = request::rate_limit_client();
    budget::spend_scan(&app.appid, client_address.as_deref())?;
    let image = token_cache::with_access_token(&app, |token| qrcode::unlimited(&app, &body, token))?;
    if !made {
        scan_ticket::ready(true)?;
    }
    let ttl = gucs::scan_ttl();
    let expires_at = scan_ticket::insert(&scan_ticket::New {
        ticket: &ticket,
        poll_hash: &poll_hash(&secret),
        appid: &app.appid,
        // Only the gateway's word: X-Forwarded-For's first address is whatever the client wrote.
        client_address: client_address.filter(|a| !a.is_empty()),
        user_agent: request::client().user_agent,
        ttl_seconds: ttl,
    });
    Ok(json!({
        "ticket": ticket,
        "poll_secret": secret,
        "qrcode": STANDARD.encode(image),
        "expires_at": expires_at,
        "expires_in": ttl,
    })
    .into())
}

/// The locked ticket, if it may still be answered: 404 if there is none, 410 past its time.
fn live(ticket: &str) -> Result<Ticket, AuthError> {
    if !scan_ticket::ready(false)? {
        return Err(AuthError::ScanTicketNotFound);
    }
    let found = scan_ticket::lock(ticket).ok_or(AuthError::ScanTicketNotFound)?;
    if found.expired {
        return Err(AuthError::ScanTicketExpired);
    }
    Ok(found)
}

/// `auth.wechat_scan_view(ticket)`: the signed-in user of the mini program scanned the code. The
/// ticket becomes theirs (the first scanner's); they are told who asked for it.
pub fn view(ticket: Option<&str>) -> Result<Jsonb, AuthError> {
    let caller = session::recent_caller(None)?;
    let ticket = ticket_of(ticket)?;
    let found = live(ticket)?;
    match (found.status, found.user_id) {
        (Status::Pending, _) => scan_ticket::mark_scanned(ticket, caller.user_id),
        (Status::Scanned, Some(user)) if user == caller.user_id => {}
        (Status::Scanned, _) => return Err(AuthError::ScanTicketClaimed),
        (Status::Confirmed | Status::Denied, _) => return Err(AuthError::ScanTicketDecided),
    }
    Ok(json!({
        "status": Status::Scanned.as_str(),
        "requested_at": found.requested_at,
        "client_address": found.client_address,
        "user_agent": found.user_agent,
        "expires_at": found.expires_at,
        "expires_in": found.expires_in,
    })
    .into())
}

/// `auth.wechat_scan_confirm(ticket, approve)`: the scanner's answer, once. A confirmation mints
/// a session from the caller's claims, so it needs a sign-in as recent as an unlink does
/// (`gucs::sign_in_within_always`), and the session it is given in must still be live when the
/// browser collects.
pub fn confirm(ticket: Option<&str>, approve: bool) -> Result<Jsonb, AuthError> {
    let caller = session::recent_caller(approve.then(gucs::sign_in_within_always))?;
    let ticket = ticket_of(ticket)?;
    let found = live(ticket)?;
    match (found.status, found.user_id) {
        (Status::Scanned, Some(user)) if user == caller.user_id => {
            scan_ticket::decide(ticket, approve, caller.session_id)
        }
        (Status::Confirmed | Status::Denied, Some(user)) if user == caller.user_id => {
            return Err(AuthError::ScanTicketDecided)
        }
        _ => return Err(AuthError::ScanTicketNotScanner),
    }
    let status = if approve { Status::Confirmed } else { Status::Denied };
    Ok(json!({"status": status.as_str()}).into())
}

/// `auth.wechat_scan_poll(ticket, poll_secret)`: where the ticket is; once confirmed, the session,
/// once. A plain read until then (a GET may poll); making the session needs a read-write
/// transaction (405 before anything is written). Nothing of the scanner is told before they
/// confirm: a scan alone must not show a phishing page who scanned.
pub fn poll(ticket: Option<&str>, secret: Option<&str>) -> Result<Jsonb, AuthError> {
    let ticket = ticket_of(ticket)?;
    let hash = poll_hash(secret.ok_or(AuthError::ScanTicketNotFound)?);
    if !scan_ticket::ready(false)? {
        return Err(AuthError::ScanTicketNotFound);
    }
    let found = scan_ticket::polled(ticket, &hash).ok_or(AuthError::ScanTicketNotFound)?;
    let status = |status: Status| Ok(json!({"status": status.as_str()}).into());
    match (found.status, found.user_id) {
        (Status::Confirmed, Some(user_id)) => collect(ticket, &hash, Caller { user_id, session_id: found.session_id }),
        _ if found.expired => Ok(json!({"status": "expired"}).into()),
        (other, _) => status(other),
    }
}

/// The session of a confirmed ticket for the user who confirmed it, the ticket deleted as it is
/// made, and marked collected outside the transaction (`spent`): a sign-in as `wechat_sign_in`
/// makes one (the session row, `login` in the audit log, amr `oauth`). A confirmation whose
/// session has ended since (signed out, ended as stolen, past its limits) no longer stands: the
/// browser hears `denied`.
fn collect(ticket: &str, hash: &[u8], confirmer: Caller) -> Result<Jsonb, AuthError> {
    spi::writable()?;
    match session::caller_session(&confirmer).and_then(CallerSession::valid) {
        Err(AuthError::SessionNotFound | AuthError::SessionClaimMissing | AuthError::SessionExpired(_)) => {
            return Ok(json!({"status": Status::Denied.as_str()}).into())
        }
        other => other?,
    };
    // A concurrent poll that collected first leaves nothing here: this one is not found.
    let until_ms = scan_ticket::collect(ticket, hash).ok_or(AuthError::ScanTicketNotFound)?;
    if !spent::collect(ticket, until_ms)? {
        return Err(AuthError::ScanTicketNotFound);
    }
    let user_id = confirmer.user_id;
    audit::record(&[Action::Login], user_id, &user::actor_name(user_id), audit::provider("wechat_scan"));
    let (session_id, refresh_token) = session::start(user_id);
    mint::session_json(user_id, session_id, &refresh_token, Method::Oauth, Assurance::Started)?
        .ok_or(AuthError::UserNotFound)
}
