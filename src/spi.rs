//! The SPI runner every statement of the extension goes through: each statement planned once per
//! backend, reads run read-only (no transaction id, so they work in a read-only transaction and
//! on a hot standby), writes as writes, and any SPI failure an internal error.

use crate::error::AuthError;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::{self, PgOid};
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiResult, SpiTupleTable};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

thread_local! {
    /// Each statement is parsed and planned once per backend, then its plan is kept (Postgres
    /// re-plans it by itself when a table it reads changes shape). Statements are `'static`
    /// texts, so their address and length name them: no hashing of kilobytes of SQL per call.
    static PLANS: RefCell<HashMap<(usize, usize), Rc<OwnedPreparedStatement>>> = RefCell::new(HashMap::new());
}

/// Whether a statement changes anything: rows, or row locks (`FOR UPDATE`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// A plain read: run read-only, it takes no transaction id, so it works in a read-only
    /// transaction (PostgREST's GET) and on a hot standby.
    Reads,
    /// Takes the transaction's id, which a read-only transaction or a standby cannot give; every
    /// later statement of the transaction then sees what it did.
    Writes,
    /// A read that must see what other transactions committed while this call waited for a lock
    /// (`store::lock_value`): run as a write is, with a snapshot of its own. A plain read of a
    /// transaction that has written nothing sees the snapshot its calling statement started with.
    ReadsLatest,
}

/// Runs one reading statement and reads its first row with `read`; `None` when it returned no
/// row. SPI failures are bugs or broken schemas, not caller errors: they become internal errors.
pub fn first_row<T>(
    sql: &'static str,
    args: &[DatumWithOid],
    read: impl FnOnce(SpiTupleTable) -> SpiResult<T>,
) -> Option<T> {
    run(
        sql,
        args,
        Some(1),
        Effect::Reads,
        |table| if table.is_empty() { Ok(None) } else { read(table.first()).map(Some) },
    )
}

/// `first_row` for a statement that writes or locks rows.
pub fn write_row<T>(
    sql: &'static str,
    args: &[DatumWithOid],
    read: impl FnOnce(SpiTupleTable) -> SpiResult<T>,
) -> Option<T> {
    run(
        sql,
        args,
        Some(1),
        Effect::Writes,
        |table| if table.is_empty() { Ok(None) } else { read(table.first()).map(Some) },
    )
}

/// `first_row` for a read after a lock: it sees every commit up to now (`Effect::ReadsLatest`).
pub fn latest_row<T>(
    sql: &'static str,
    args: &[DatumWithOid],
    read: impl FnOnce(SpiTupleTable) -> SpiResult<T>,
) -> Option<T> {
    run(sql, args, Some(1), Effect::ReadsLatest, |table| {
        if table.is_empty() {
            Ok(None)
        } else {
            read(table.first()).map(Some)
        }
    })
}

/// `read_rows` for a read after a lock (`Effect::ReadsLatest`).
pub fn latest_rows<T>(sql: &'static str, args: &[DatumWithOid], read: impl FnOnce(SpiTupleTable) -> SpiResult<T>) -> T {
    run(sql, args, None, Effect::ReadsLatest, read)
}

/// Runs one writing statement to completion (every row of a multi-row `INSERT ... RETURNING`,
/// which `write_row`'s one-row limit would stop after the first); its rows are not read.
pub fn execute(sql: &'static str, args: &[DatumWithOid]) {
    run(sql, args, None, Effect::Writes, |_| Ok(()));
}

/// Runs one reading statement and hands all its rows to `read`.
pub fn read_rows<T>(sql: &'static str, args: &[DatumWithOid], read: impl FnOnce(SpiTupleTable) -> SpiResult<T>) -> T {
    run(sql, args, None, Effect::Reads, read)
}

/// For the rest of the call, every statement runs a generic plan made afresh for the tables as
/// they are now. For a batch that runs the same statements a thousand times: Postgres would plan
/// anew each time a statement whose arguments prune branches (an import's `matches`: 0.35 ms to
/// plan, 0.07 ms to run generically), while a generic plan kept from an earlier batch may have
/// been made when the tables it reads were empty (an import into a new project grows them from
/// nothing: a hash join over every user). The setting lives in the nest level
/// `privilege::as_auth_owner` opened for the call, and ends with it.
pub fn fresh_generic_plans() {
    PLANS.with(|plans| plans.borrow_mut().clear());
    // SAFETY: inside a transaction, in the call's GUC nest level (every entry point runs in one).
    unsafe { crate::gucs::set_in_nest_level(c"plan_cache_mode", c"force_generic_plan") };
}

/// Refuses a call that must write in a transaction that cannot (`BEGIN READ ONLY`, PostgREST's
/// GET, a hot standby): before anything else, so that no WeChat code is spent on it.
pub fn writable() -> Result<(), AuthError> {
    // SAFETY: a plain read of the transaction's read-only flag, which a standby always sets.
    if unsafe { pg_sys::XactReadOnly } {
        Err(AuthError::ReadOnlyTransaction)
    } else {
        Ok(())
    }
}

fn run<T>(
    sql: &'static str,
    args: &[DatumWithOid],
    limit: Option<libc::c_long>,
    effect: Effect,
    read: impl FnOnce(SpiTupleTable) -> SpiResult<T>,
) -> T {
    let result = Spi::connect_mut(|client| {
        let cached = PLANS.with(|plans| plans.borrow().get(&(sql.as_ptr() as usize, sql.len())).cloned());
        let plan = match cached {
            Some(plan) => plan,
            None => {
                let types: Vec<PgOid> = args.iter().map(|a| PgOid::from(a.oid())).collect();
                let prepared = match effect {
                    Effect::Reads => client.prepare(sql, &types)?,
                    Effect::Writes | Effect::ReadsLatest => client.prepare_mut(sql, &types)?,
                };
                let plan = Rc::new(prepared.keep());
                PLANS.with(|plans| plans.borrow_mut().insert((sql.as_ptr() as usize, sql.len()), Rc::clone(&plan)));
                plan
            }
        };
        // The map is not borrowed while the statement runs: it may call back into this code
        // (an access-token hook that signs users in, say). A read runs read-only while this
        // transaction has written nothing (pgrx's rule), so it neither takes a transaction id nor
        // misses an earlier write of this call.
        let table = match effect {
            Effect::Reads => client.select(&*plan, limit, args)?,
            Effect::Writes | Effect::ReadsLatest => client.update(&*plan, limit, args)?,
        };
        read(table)
    });
    result.unwrap_or_else(|e| pgrx::error!("auth_wechat: database access failed: {e}"))
}
