//! `auth.wechat_scan_tickets`: the tickets of scan-to-sign-in, one row per code shown in a
//! browser.
//!
//! The table is made by the first start (`ready`), as the auth tables' owner,
//! with row-level security on and no grants: only the extension's functions read it. Like the
//! extension's columns it is not a member of the extension, so it is never made inside
//! `CREATE EXTENSION` or an update (which would make it one): pg_dump keeps it with the auth
//! schema, and `DROP EXTENSION` leaves it.
//!
//! A ticket is `pending` until a signed-in user of the mini program views it (`scanned`, theirs
//! from then on), then `confirmed` or `denied` by that user, in one of their sessions. A
//! confirmed ticket is collected by deleting it, which hands its user to exactly one poll (and
//! `spent` to one poll even of transactions that roll back). The browser's poll secret is kept only
//! as its SHA-256 (the secret is 256 random bits: nothing to guess, nothing to salt). Rows stay
//! five minutes past their expiry (`keep_expired_sql!`), so that a late scan or poll hears
//! "expired" rather than "not found"; then a start sweeps them away.

use crate::error::AuthError;
use crate::privilege;
use crate::spi::{execute, first_row, write_row};
use pgrx::{Spi, Uuid};

/// Whether the table is there (as this transaction sees it: not remembered, since a transaction
/// that made it may still roll back). It is found by name, as it is no member of the extension:
/// a relation of that name is used only if it is what `ready` makes, a table of the auth tables'
/// owner (the current user) with row-level security on. Anything else under the name (made by a
/// member of that owner with grants or policies of its own, or a view) is refused, never used.
fn exists() -> Result<bool, AuthError> {
    let found = first_row(
        "SELECT c.relkind = 'r' AND c.relowner = $1 AND c.relrowsecurity
           FROM pg_catalog.pg_class c
          WHERE c.oid = pg_catalog.to_regclass('auth.wechat_scan_tickets')",
        &[privilege::current_user().into()],
        |row| row.get_one::<bool>(),
    )
    .flatten();
    match found {
        None => Ok(false),
        Some(true) => Ok(true),
        Some(false) => Err(AuthError::Misconfigured(
            "auth.wechat_scan_tickets is not the table auth_wechat makes (a table of the auth tables' owner with \
             row-level security on): drop it, and the next auth.wechat_scan_start makes it"
                .into(),
        )),
    }
}

/// Whether the table is there, making it if it is not and `make` (a start, once WeChat answered:
/// the other calls have no ticket to find without it). First makers queue on a lock of
/// `auth.users` (once per database), and the second finds what the first made.
pub fn ready(make: bool) -> Result<bool, AuthError> {
    if exists()? {
        return Ok(true);
    }
    if make {
        Spi::run(
            "LOCK TABLE auth.users IN SHARE ROW EXCLUSIVE MODE;
             CREATE TABLE IF NOT EXISTS auth.wechat_scan_tickets (
                 ticket pg_catalog.text PRIMARY KEY,
                 poll_hash pg_catalog.bytea NOT NULL,
                 appid pg_catalog.text NOT NULL,
                 client_address pg_catalog.text,
                 user_agent pg_catalog.text,
                 created_at pg_catalog.timestamptz NOT NULL,
                 expires_at pg_catalog.timestamptz NOT NULL,
                 status pg_catalog.text NOT NULL,
                 user_id pg_catalog.uuid REFERENCES auth.users (id) ON DELETE CASCADE,
                 session_id pg_catalog.uuid,
                 scanned_at pg_catalog.timestamptz,
                 decided_at pg_catalog.timestamptz);
             CREATE INDEX IF NOT EXISTS wechat_scan_tickets_expires_at_idx ON auth.wechat_scan_tickets (expires_at);
             ALTER TABLE auth.wechat_scan_tickets ENABLE ROW LEVEL SECURITY;
             REVOKE ALL ON auth.wechat_scan_tickets FROM PUBLIC;
             DO $revoke$
             DECLARE
                 api_role pg_catalog.name;
             BEGIN
                 FOR api_role IN SELECT rolname FROM pg_catalog.pg_roles
                                  WHERE rolname OPERATOR(pg_catalog.=) ANY (ARRAY['anon', 'authenticated', 'service_role']::pg_catalog.name[])
                 LOOP
                     EXECUTE pg_catalog.format('REVOKE ALL ON auth.wechat_scan_tickets FROM %I', api_role);
                 END LOOP;
             END
             $revoke$;
             COMMENT ON TABLE auth.wechat_scan_tickets IS
                 'auth_wechat: scan-to-sign-in tickets (auth.wechat_scan_start); read and written by its functions only.';",
        )
        .unwrap_or_else(|e| pgrx::error!("auth_wechat: making auth.wechat_scan_tickets failed: {e}"));
    }
    Ok(make)
}

/// How long an expired ticket is kept, answering "expired", before a call deletes it.
macro_rules! keep_expired_sql {
    () => {
        "interval '5 minutes'"
    };
}

/// Where a ticket is in the flow.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Status {
    Pending,
    Scanned,
    Confirmed,
    Denied,
}

impl Status {
    fn from_sql(text: &str) -> Status {
        match text {
            "scanned" => Status::Scanned,
            "confirmed" => Status::Confirmed,
            "denied" => Status::Denied,
            _ => Status::Pending,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Scanned => "scanned",
            Status::Confirmed => "confirmed",
            Status::Denied => "denied",
        }
    }
}

/// A ticket as its row has it now.
pub struct Ticket {
    pub status: Status,
    /// The user who scanned it.
    pub user_id: Option<Uuid>,
    /// The session they confirmed it with.
    pub session_id: Option<Uuid>,
    /// Whether its time to be scanned and confirmed is over.
    pub expired: bool,
    /// Who asked for it: the client address and user agent of the browser.
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
    /// Seconds since the Unix epoch.
    pub requested_at: i64,
    pub expires_at: i64,
    /// Seconds left until then (0 once expired).
    pub expires_in: i64,
}

/// A ticket's columns, as `read` takes them.
macro_rules! ticket_columns_sql {
    () => {
        "status, user_id, expires_at <= pg_catalog.now(), client_address, user_agent,
         extract(epoch FROM created_at)::bigint, extract(epoch FROM expires_at)::bigint,
         greatest(0, extract(epoch FROM expires_at - pg_catalog.now()))::bigint, session_id"
    };
}

fn read(row: pgrx::spi::SpiTupleTable) -> pgrx::spi::SpiResult<Ticket> {
    Ok(Ticket {
        status: Status::from_sql(&row.get::<String>(1)?.unwrap_or_default()),
        user_id: row.get::<Uuid>(2)?,
        expired: row.get::<bool>(3)?.unwrap_or(true),
        client_address: row.get::<String>(4)?,
        user_agent: row.get::<String>(5)?,
        requested_at: row.get::<i64>(6)?.unwrap_or(0),
        expires_at: row.get::<i64>(7)?.unwrap_or(0),
        expires_in: row.get::<i64>(8)?.unwrap_or(0),
        session_id: row.get::<Uuid>(9)?,
    })
}

/// Deletes the tickets past their keeping: the calls clean up after themselves, no cron needed.
pub fn sweep() {
    execute(
        concat!("DELETE FROM auth.wechat_scan_tickets WHERE expires_at < pg_catalog.now() - ", keep_expired_sql!()),
        &[],
    );
}

/// How many tickets may still be scanned or collected.
pub fn waiting() -> i64 {
    first_row(
        "SELECT pg_catalog.count(*) FROM auth.wechat_scan_tickets WHERE expires_at > pg_catalog.now()",
        &[],
        |row| row.get_one::<i64>(),
    )
    .flatten()
    .unwrap_or(0)
}

/// What a new ticket records.
pub struct New<'a> {
    pub ticket: &'a str,
    pub poll_hash: &'a [u8],
    pub appid: &'a str,
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
    pub ttl_seconds: i32,
}

/// Writes a new pending ticket; returns when it expires (seconds since the epoch).
pub fn insert(new: &New) -> i64 {
    write_row(
        "INSERT INTO auth.wechat_scan_tickets
             (ticket, poll_hash, appid, client_address, user_agent, created_at, expires_at, status)
         VALUES ($1, $2, $3, $4, $5, pg_catalog.now(), pg_catalog.now() + pg_catalog.make_interval(secs => $6), 'pending')
         RETURNING extract(epoch FROM expires_at)::bigint",
        &[
            new.ticket.into(),
            new.poll_hash.into(),
            new.appid.into(),
            new.client_address.clone().into(),
            new.user_agent.clone().into(),
            f64::from(new.ttl_seconds).into(),
        ],
        |row| row.get_one::<i64>(),
    )
    .flatten()
    .unwrap_or_else(|| pgrx::error!("auth_wechat: writing a scan ticket wrote no row"))
}

/// The ticket, locked until the transaction ends (a scanner's view and confirm queue behind
/// each other's); `None` if there is none.
pub fn lock(ticket: &str) -> Option<Ticket> {
    write_row(
        concat!("SELECT ", ticket_columns_sql!(), " FROM auth.wechat_scan_tickets WHERE ticket = $1 FOR UPDATE"),
        &[ticket.into()],
        read,
    )
}

/// Marks a locked pending ticket scanned by `user_id`.
pub fn mark_scanned(ticket: &str, user_id: Uuid) {
    execute(
        "UPDATE auth.wechat_scan_tickets SET status = 'scanned', user_id = $2, scanned_at = pg_catalog.now()
          WHERE ticket = $1",
        &[ticket.into(), user_id.into()],
    );
}

/// Records a locked scanned ticket's answer, given in the scanner's session `session_id`.
pub fn decide(ticket: &str, approve: bool, session_id: Option<Uuid>) {
    execute(
        "UPDATE auth.wechat_scan_tickets
            SET status = CASE WHEN $2 THEN 'confirmed' ELSE 'denied' END, decided_at = pg_catalog.now(),
                session_id = $3
          WHERE ticket = $1",
        &[ticket.into(), approve.into(), session_id.into()],
    );
}

/// The ticket, if `poll_hash` is its poll secret's; a plain read (a poll may be a GET).
pub fn polled(ticket: &str, poll_hash: &[u8]) -> Option<Ticket> {
    first_row(
        concat!(
            "SELECT ",
            ticket_columns_sql!(),
            " FROM auth.wechat_scan_tickets WHERE ticket = $1 AND poll_hash = $2"
        ),
        &[ticket.into(), poll_hash.into()],
        read,
    )
}

/// Deletes the confirmed ticket and sets its user's `last_sign_in_at` (a sign-in); returns until
/// when (milliseconds since the epoch) it could have been collected. Of concurrent polls, one
/// gets it and the others `None` (they wait for the row, then find it gone).
pub fn collect(ticket: &str, poll_hash: &[u8]) -> Option<i64> {
    write_row(
        concat!(
            "WITH t AS (
                 DELETE FROM auth.wechat_scan_tickets
                  WHERE ticket = $1 AND poll_hash = $2 AND status = 'confirmed'
                    AND expires_at > pg_catalog.now() - ",
            keep_expired_sql!(),
            "    RETURNING user_id, expires_at),
             u AS (UPDATE auth.users SET last_sign_in_at = pg_catalog.now() FROM t WHERE id = t.user_id)
             SELECT (extract(epoch FROM t.expires_at + ",
            keep_expired_sql!(),
            ") * 1000)::bigint FROM t"
        ),
        &[ticket.into(), poll_hash.into()],
        |row| row.get_one::<i64>(),
    )
    .flatten()
}
