//! The C entry points of the SQL API (`auth.wechat_*`, declared in `sql/api.sql`).
//!
//! An error is raised as an ERROR with its own SQLSTATE (`PTxyz`, which PostgREST turns into
//! HTTP status xyz) straight from here: pgrx's error path carries only the SQLSTATEs of its list
//! and would turn these into `XX000`. So each entry point runs its Rust under `catch_unwind`,
//! brings an `AuthError` out of it as plain C data, and raises it with Postgres' `ereport` calls
//! only then, when no Rust frame is left holding anything that a long jump would skip.
//!
//! Errors that unwind instead (a Postgres ERROR inside SPI or the hook, which pgrx turns into a
//! panic; a `pgrx::error!`; a Rust panic) are caught the same way and raised again by this code,
//! not by pgrx's guard: pgrx appends a Rust backtrace to the DETAIL whenever `RUST_BACKTRACE` is
//! set in the server's environment, and PostgREST sends DETAIL to the client. A Postgres error
//! keeps its SQLSTATE, message, detail and hint; a Rust panic's text (Rust's words, the code's
//! location) goes to the server log only, and the client reads "internal error".
//!
//! Whose rights a body runs with is said where it is defined: `client_entry!` (what clients may
//! be granted) steps down to the auth tables' owner before anything else, `admin_entry!` checks
//! for a superuser caller (see `privilege`).

use crate::error::AuthError;
use crate::jsonb::Jsonb;
use crate::privilege::{as_auth_owner, require_superuser};
use crate::wechat::qrcode;
use crate::{bind, refresh, scan, sign_in, token_cache};
use base64::Engine;
use pgrx::fcinfo::pg_getarg;
use pgrx::pg_sys;
use pgrx::pg_sys::panic::{CaughtError, ErrorReport, ErrorReportWithLevel};
use pgrx::JsonB;
use serde_json::json;
use std::any::Any;
use std::ffi::{c_char, c_int, CStr, CString};

/// What a call answers, in C terms only (nothing to drop): a datum, or an error to raise (its
/// detail and hint may be null).
#[derive(Clone, Copy)]
enum Reply {
    Value(pg_sys::Datum),
    Raise { sqlstate: c_int, message: *const c_char, detail: *const c_char, hint: *const c_char },
}

/// What an entry point may return: `jsonb` (most), or `text` (a URL).
trait Answer {
    fn into_answer(self) -> pg_sys::Datum;
}

impl<T: Into<Jsonb>> Answer for T {
    fn into_answer(self) -> pg_sys::Datum {
        self.into().into_datum()
    }
}

/// A `text` result.
struct Text(String);

impl Answer for Text {
    fn into_answer(self) -> pg_sys::Datum {
        pgrx::IntoDatum::into_datum(self.0).expect("text is never null")
    }
}

/// A `bytea` result.
struct Bytes(Vec<u8>);

impl Answer for Bytes {
    fn into_answer(self) -> pg_sys::Datum {
        pgrx::IntoDatum::into_datum(self.0).expect("bytea is never null")
    }
}

/// A `void` result.
struct Void;

impl Answer for Void {
    fn into_answer(self) -> pg_sys::Datum {
        pg_sys::Datum::from(0)
    }
}

/// A result as PostgREST expects it. An error whose writes must be kept is not raised (that
/// would roll them back): PostgREST is asked for its status through `response.status` and gets
/// GoTrue's error body.
fn reply(result: Result<impl Answer, AuthError>) -> Reply {
    match result {
        Ok(value) => Reply::Value(value.into_answer()),
        Err(error) if error.commits_writes() => {
            crate::request::set_response_status(error.http_status());
            Reply::Value(Jsonb::from(json!({"code": error.code(), "message": error.message()})).into_datum())
        }
        Err(error) => {
            let raised = error.raised();
            Reply::Raise {
                sqlstate: raised.sqlstate,
                message: palloc_text(&raised.message),
                detail: palloc_text(&raised.detail),
                hint: std::ptr::null(),
            }
        }
    }
}

/// The ERROR to raise for what unwound out of a call (see the module's notes): a Postgres or
/// pgrx error as it was, without pgrx's backtrace; a Rust panic as an internal error, its text
/// logged for the server only.
fn unwound(entry: &CStr, payload: Box<dyn Any + Send>) -> Reply {
    let reported = |report: &ErrorReportWithLevel| Reply::Raise {
        sqlstate: report.sql_error_code() as c_int,
        message: palloc_text(report.message()),
        detail: report.detail().map_or(std::ptr::null(), palloc_text),
        hint: report.hint().map_or(std::ptr::null(), palloc_text),
    };
    let payload = match payload.downcast::<CaughtError>() {
        Ok(caught) => match *caught {
            CaughtError::PostgresError(report) | CaughtError::ErrorReport(report) => return reported(&report),
            CaughtError::RustPanic { ereport, .. } => {
                Box::new(format!("{} at {}:{}", ereport.message(), ereport.file(), ereport.line_number()))
            }
        },
        Err(payload) => payload,
    };
    // `pgrx::error!` unwinds with the report itself.
    let payload = match payload.downcast::<ErrorReportWithLevel>() {
        Ok(report) => return reported(&report),
        Err(payload) => payload,
    };
    let panicked = if let Some(report) = payload.downcast_ref::<ErrorReport>() {
        report.message().to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else if let Some(text) = payload.downcast_ref::<&str>() {
        text.to_string()
    } else {
        "a panic".into()
    };
    log_for_the_server(&format!("auth_wechat: {} failed: {panicked}", entry.to_string_lossy()));
    Reply::Raise {
        sqlstate: pgrx::PgSqlErrorCode::ERRCODE_INTERNAL_ERROR as c_int,
        message: palloc_text("auth_wechat: internal error (the server log has the details)"),
        detail: std::ptr::null(),
        hint: std::ptr::null(),
    }
}

// Postgres' error reporting (pgrx declares these privately, for the same use).
unsafe extern "C-unwind" {
    fn errstart(elevel: c_int, domain: *const c_char) -> bool;
    fn errcode(sqlerrcode: c_int) -> c_int;
    fn errmsg(fmt: *const c_char, ...) -> c_int;
    fn errdetail(fmt: *const c_char, ...) -> c_int;
    fn errhint(fmt: *const c_char, ...) -> c_int;
    fn errfinish(filename: *const c_char, lineno: c_int, funcname: *const c_char);
}

/// Writes `message` to the server log and never to the client (`LOG_SERVER_ONLY`), whatever
/// the session's `client_min_messages`.
fn log_for_the_server(message: &str) {
    let message = palloc_text(message);
    // SAFETY: the elog sequence of elog.h at a level below ERROR, which returns.
    unsafe {
        if errstart(pg_sys::LOG_SERVER_ONLY as c_int, std::ptr::null()) {
            errmsg(c"%s".as_ptr(), message);
            errfinish(c"api.rs".as_ptr(), line!() as c_int, c"auth_wechat".as_ptr());
        }
    }
}

/// `text` as a C string in the call's memory context, which outlives the raise.
fn palloc_text(text: &str) -> *const c_char {
    let text = CString::new(text.replace('\0', "")).expect("no NUL left");
    // SAFETY: pstrdup copies the NUL-terminated string into CurrentMemoryContext.
    unsafe { pg_sys::pstrdup(text.as_ptr()) }
}

/// Returns the value, or raises the error: called outside `catch_unwind`, from a frame that holds
/// only plain data. The server log names the entry point (`entry`) as the error's function.
///
/// # Safety
/// Called as the last step of a C entry point, with `fcinfo` the call's.
unsafe fn finish(fcinfo: pg_sys::FunctionCallInfo, entry: &CStr, reply: Reply) -> pg_sys::Datum {
    match reply {
        Reply::Value(datum) => {
            // SAFETY: per this function's contract.
            unsafe { (*fcinfo).isnull = false };
            datum
        }
        // SAFETY: the ereport sequence of elog.h; errfinish does not return at ERROR.
        Reply::Raise { sqlstate, message, detail, hint } => unsafe {
            if errstart(pg_sys::PGERROR as c_int, std::ptr::null()) {
                errcode(sqlstate);
                errmsg(c"%s".as_ptr(), message);
                if !detail.is_null() {
                    errdetail(c"%s".as_ptr(), detail);
                }
                if !hint.is_null() {
                    errhint(c"%s".as_ptr(), hint);
                }
                errfinish(c"api.rs".as_ptr(), line!() as c_int, entry.as_ptr());
            }
            unreachable!("an ERROR does not return")
        },
    }
}

/// Argument `num` of the call (`None` for SQL NULL), or `None` when the call has fewer arguments:
/// between installing a new build and `ALTER EXTENSION auth_wechat UPDATE`, the functions are still
/// declared as the older version had them, without the arguments added since, and a call of one
/// gets its new arguments' defaults.
///
/// # Safety
/// `fcinfo` is the call's, as Postgres passes it.
unsafe fn arg<T: pgrx::FromDatum>(fcinfo: pg_sys::FunctionCallInfo, num: usize) -> Option<T> {
    // SAFETY: per this function's contract; `nargs` bounds the arguments `pg_getarg` may read.
    unsafe {
        if num < (*fcinfo).nargs as usize {
            pg_getarg(fcinfo, num)
        } else {
            None
        }
    }
}

/// What an explicit NULL argument means where sql/api.sql declares a non-NULL DEFAULT: that
/// default, so that passing NULL and leaving the argument out are one call. The declaration is
/// the source of truth; a test holds these to its text. (`page` and `line_color` default to
/// NULL, which means "none".)
mod null_means {
    pub const SCOPE: &str = "local";
    pub const CHECK_PATH: bool = true;
    pub const ENV_VERSION: &str = "release";
    pub const WIDTH: i32 = 430;
    pub const AUTO_COLOR: bool = false;
    pub const IS_HYALINE: bool = false;
    pub const FORCE: bool = false;
    pub const APPROVE: bool = true;
}

/// Defines the C function `$name` (and its `pg_finfo_` record, as `PG_FUNCTION_INFO_V1` does):
/// `$body` runs under `catch_unwind` with `$fcinfo` in scope (its arguments read with `arg`,
/// `None` for SQL NULL) and gives a `Result` for `reply`. Use `client_entry!` or `admin_entry!`,
/// which say whose rights the body runs with.
macro_rules! c_function {
    ($(#[$doc:meta])* $name:ident, $finfo:ident, |$fcinfo:ident| $body:expr) => {
        $(#[$doc])*
        #[no_mangle]
        pub unsafe extern "C-unwind" fn $name($fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
            const ENTRY: &CStr = match CStr::from_bytes_with_nul(concat!(stringify!($name), "\0").as_bytes()) {
                Ok(name) => name,
                Err(_) => panic!("an entry point's name has no NUL"),
            };
            // The closure only reads `fcinfo` (through `arg`), which Postgres passes valid; whatever
            // unwinds out of it is raised again by `unwound`.
            let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reply($body)))
                .unwrap_or_else(|payload| unwound(ENTRY, payload));
            // SAFETY: the last step, once no frame of the call is left.
            unsafe { finish($fcinfo, ENTRY, reply) }
        }

        #[no_mangle]
        #[doc(hidden)]
        pub extern "C" fn $finfo() -> &'static pg_sys::Pg_finfo_record {
            const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }
    };
}

/// A function clients may be granted: before anything else it steps down to the auth tables'
/// owner, found from the called function's OID (`privilege::as_auth_owner`), then passes the
/// guard of what it `$needs` of the transaction and the schema (`schema::ready_for`: a call that
/// writes refuses a read-only transaction there, before any WeChat code is spent), and `$body`
/// runs with that owner's rights, never a superuser's.
macro_rules! client_entry {
    ($needs:ident, $(#[$doc:meta])* $name:ident, $finfo:ident, |$fcinfo:ident| $body:expr) => {
        c_function!($(#[$doc])* $name, $finfo, |$fcinfo| {
            // SAFETY: Postgres passes every C function its flinfo.
            let called = unsafe { (*(*$fcinfo).flinfo).fn_oid };
            as_auth_owner(called, || {
                crate::schema::ready_for(crate::schema::Needs::$needs)?;
                $body
            })
        });
    };
}

/// An administration function: granted to no one, it runs as its caller, who must be a superuser
/// even if someone granted it (`privilege::require_superuser`).
macro_rules! admin_entry {
    ($(#[$doc:meta])* $name:ident, $finfo:ident, |$fcinfo:ident| $body:expr) => {
        c_function!($(#[$doc])* $name, $finfo, |$fcinfo| {
            require_superuser(concat!("auth.", stringify!($name), "()"));
            $body
        });
    };
}

client_entry!(
    Writes,
    /// `auth.wechat_sign_in(code, appid)`.
    wechat_sign_in, pg_finfo_wechat_sign_in,
    |fcinfo| sign_in::sign_in(arg(fcinfo, 0), arg(fcinfo, 1))
);
client_entry!(
    Writes,
    /// `auth.wechat_oauth_sign_in(code, appid)`.
    wechat_oauth_sign_in, pg_finfo_wechat_oauth_sign_in,
    |fcinfo| sign_in::oauth_sign_in(arg(fcinfo, 0), arg(fcinfo, 1))
);
client_entry!(
    Nothing,
    /// `auth.wechat_authorize_url(appid, redirect_uri, state, scope)`.
    wechat_authorize_url, pg_finfo_wechat_authorize_url,
    |fcinfo| {
        crate::apps::web(arg(fcinfo, 0))
            .and_then(|app| {
                crate::wechat::oauth::authorize_url(&app, arg(fcinfo, 1), arg(fcinfo, 2), arg(fcinfo, 3))
            })
            .map(Text)
    }
);
client_entry!(
    Writes,
    /// `auth.wechat_bind_account(code, appid)`.
    wechat_bind_account, pg_finfo_wechat_bind_account,
    |fcinfo| bind::bind_account(arg(fcinfo, 0), arg(fcinfo, 1))
);
client_entry!(
    Writes,
    /// `auth.wechat_oauth_bind(code, appid)`.
    wechat_oauth_bind, pg_finfo_wechat_oauth_bind,
    |fcinfo| bind::oauth_bind(arg(fcinfo, 0), arg(fcinfo, 1))
);
client_entry!(
    Writes,
    /// `auth.wechat_unlink_identity(identity_id)`.
    wechat_unlink_identity, pg_finfo_wechat_unlink_identity,
    |fcinfo| bind::unlink_identity(arg::<pgrx::Uuid>(fcinfo, 0))
);
client_entry!(
    Writes,
    /// `auth.wechat_bind_phone(code, appid)`.
    wechat_bind_phone, pg_finfo_wechat_bind_phone,
    |fcinfo| bind::bind_phone(arg(fcinfo, 0), arg(fcinfo, 1))
);
client_entry!(
    Writes,
    /// `auth.wechat_refresh_session(refresh_token)`.
    wechat_refresh_session, pg_finfo_wechat_refresh_session,
    |fcinfo| refresh::refresh_session(arg(fcinfo, 0))
);
client_entry!(
    Writes,
    /// `auth.wechat_sign_out(scope)`.
    wechat_sign_out, pg_finfo_wechat_sign_out,
    |fcinfo| refresh::sign_out(arg(fcinfo, 0).unwrap_or(null_means::SCOPE))
);
client_entry!(
    Reads,
    /// `auth.wechat_user()`.
    wechat_user, pg_finfo_wechat_user,
    |_fcinfo| refresh::user()
);
client_entry!(
    Nothing,
    /// `auth.wechat_jwks()`: public keys only.
    wechat_jwks, pg_finfo_wechat_jwks,
    |_fcinfo| crate::signing::jwks()
);
client_entry!(
    Nothing,
    /// `auth.wechat_prepare_schema()`: the WeChat columns and indexes, if missing.
    wechat_prepare_schema, pg_finfo_wechat_prepare_schema,
    |_fcinfo| {
        crate::schema::prepare();
        Ok::<_, AuthError>(Void)
    }
);
client_entry!(
    Nothing,
    /// `auth.wechat_unlimited_qrcode(...)`: `{"imgBase64": ...}`.
    wechat_unlimited_qrcode, pg_finfo_wechat_unlimited_qrcode,
    |fcinfo| {
        unlimited_qrcode(fcinfo)
            .map(|image| json!({"imgBase64": base64::engine::general_purpose::STANDARD.encode(image)}))
    }
);
client_entry!(
    Nothing,
    /// `auth.wechat_unlimited_qrcode_bytea(...)`: the image bytes.
    wechat_unlimited_qrcode_bytea, pg_finfo_wechat_unlimited_qrcode_bytea,
    |fcinfo| unlimited_qrcode(fcinfo).map(Bytes)
);
client_entry!(
    Writes,
    /// `auth.wechat_move_identity(identity_id, to_user_id)`, for `service_role`.
    wechat_move_identity, pg_finfo_wechat_move_identity,
    |fcinfo| bind::move_identity(arg::<pgrx::Uuid>(fcinfo, 0), arg::<pgrx::Uuid>(fcinfo, 1))
);
client_entry!(
    Writes,
    /// `auth.wechat_import_users(source, users, options)`, for `service_role`.
    wechat_import_users, pg_finfo_wechat_import_users,
    |fcinfo| {
        let json = |n| arg::<JsonB>(fcinfo, n).map(|JsonB(value)| value);
        crate::import::import_users(arg(fcinfo, 0), json(1), json(2))
    }
);
client_entry!(
    Writes,
    /// `auth.wechat_scan_start(appid, page)`.
    wechat_scan_start, pg_finfo_wechat_scan_start,
    |fcinfo| scan::start(arg(fcinfo, 0), arg(fcinfo, 1))
);
client_entry!(
    Writes,
    /// `auth.wechat_scan_view(ticket)`.
    wechat_scan_view, pg_finfo_wechat_scan_view,
    |fcinfo| scan::view(arg(fcinfo, 0))
);
client_entry!(
    Writes,
    /// `auth.wechat_scan_confirm(ticket, approve)`.
    wechat_scan_confirm, pg_finfo_wechat_scan_confirm,
    |fcinfo| scan::confirm(arg(fcinfo, 0), arg(fcinfo, 1).unwrap_or(null_means::APPROVE))
);
client_entry!(
    Reads,
    /// `auth.wechat_scan_poll(ticket, poll_secret)`: a read until it makes the session.
    wechat_scan_poll, pg_finfo_wechat_scan_poll,
    |fcinfo| scan::poll(arg(fcinfo, 0), arg(fcinfo, 1))
);
admin_entry!(
    /// `auth.wechat_postgrest_jwks()`: it holds the HS256 secrets.
    wechat_postgrest_jwks, pg_finfo_wechat_postgrest_jwks,
    |_fcinfo| crate::signing::postgrest_jwks()
);
admin_entry!(
    /// `auth.wechat_access_token_status(appid)`.
    wechat_access_token_status, pg_finfo_wechat_access_token_status,
    |fcinfo| crate::apps::resolve(arg(fcinfo, 0)).and_then(|app| token_cache::status(&app))
);
admin_entry!(
    /// `auth.wechat_refresh_access_token(force, appid)`.
    wechat_refresh_access_token, pg_finfo_wechat_refresh_access_token,
    |fcinfo| {
        crate::apps::resolve(arg(fcinfo, 1))
            .and_then(|app| token_cache::refresh(&app, arg(fcinfo, 0).unwrap_or(null_means::FORCE)))
    }
);
admin_entry!(
    /// `auth.wechat_check_settings()`.
    wechat_check_settings, pg_finfo_wechat_check_settings,
    |_fcinfo| Ok::<_, AuthError>(crate::check::settings())
);

/// The image of `auth.wechat_unlimited_qrcode(...)` and its `_bytea` twin, whose arguments are the
/// same.
///
/// # Safety
/// `fcinfo` is the call's, as Postgres passes it.
unsafe fn unlimited_qrcode(fcinfo: pg_sys::FunctionCallInfo) -> Result<Vec<u8>, AuthError> {
    // SAFETY: per this function's contract.
    let params = unsafe {
        qrcode::Params {
            scene: arg(fcinfo, 0),
            page: arg(fcinfo, 1),
            check_path: arg(fcinfo, 2).unwrap_or(null_means::CHECK_PATH),
            env_version: arg(fcinfo, 3).unwrap_or(null_means::ENV_VERSION),
            width: arg(fcinfo, 4).unwrap_or(null_means::WIDTH),
            auto_color: arg(fcinfo, 5).unwrap_or(null_means::AUTO_COLOR),
            line_color: arg::<JsonB>(fcinfo, 6).map(|JsonB(v)| v),
            is_hyaline: arg(fcinfo, 7).unwrap_or(null_means::IS_HYALINE),
        }
    };
    // SAFETY: as above.
    let app = crate::apps::mini_program(unsafe { arg(fcinfo, 8) })?;
    let body = qrcode::request_body(&params)?;
    token_cache::with_access_token(&app, |token| qrcode::unlimited(&app, &body, token))
}

#[cfg(test)]
mod tests {
    use super::null_means;

    const API_SQL: &str = include_str!("../sql/api.sql");

    /// The text of `CREATE FUNCTION auth.<function>(` up to its `RETURNS`.
    fn declaration(function: &str) -> &'static str {
        let start = API_SQL.find(&format!("CREATE FUNCTION auth.{function}(")).expect(function);
        let end = start + API_SQL[start..].find("RETURNS").expect("RETURNS");
        &API_SQL[start..end]
    }

    #[test]
    fn every_entry_point_is_declared_and_every_declaration_has_one() {
        let source = include_str!("api.rs");
        let defined: std::collections::BTreeSet<&str> = source
            .lines()
            .filter_map(|line| line.trim().strip_suffix(','))
            .filter_map(|line| line.split_once(", pg_finfo_"))
            .filter(|(name, finfo)| name == finfo)
            .map(|(name, _)| name)
            .collect();
        let declared: std::collections::BTreeSet<&str> =
            API_SQL.split("AS 'MODULE_PATHNAME', '").skip(1).map(|rest| rest.split('\'').next().unwrap()).collect();
        assert!(defined.len() >= 10, "the entry points were not found: {defined:?}");
        assert_eq!(defined, declared);
    }

    /// `name(arguments) returns type`, lower case, white space folded, without `auth.`.
    fn normal(signature: &str) -> String {
        signature
            .to_lowercase()
            .replace("auth.", "")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace("( ", "(")
    }

    /// The README's table of functions is sql/api.sql's functions, signature for signature.
    #[test]
    fn the_readme_function_table_tells_the_truth() {
        let readme = include_str!("../README.md");
        let mut previous_arguments = String::new();
        let mut documented = std::collections::BTreeSet::new();
        for line in readme.lines().filter(|line| line.starts_with("| `auth.")) {
            let signature = line.trim_start_matches("| `").split('`').next().unwrap();
            let mut signature = signature.to_string();
            if line.contains("` same arguments `") {
                let name = signature.trim_end_matches('(');
                let returns = line.split("` same arguments `").nth(1).unwrap().split('`').next().unwrap();
                signature = format!("{name}({previous_arguments}{returns}");
            } else if let Some((arguments, _)) = signature.split_once(") returns") {
                previous_arguments = arguments.split_once('(').unwrap().1.to_string();
            }
            documented.insert(normal(&signature));
        }
        let declared: std::collections::BTreeSet<String> = API_SQL
            .split("CREATE FUNCTION auth.")
            .skip(1)
            .map(|rest| {
                let end = rest.find("LANGUAGE").unwrap();
                normal(&format!("auth.{}", &rest[..end]))
            })
            .collect();
        assert!(declared.len() > 15, "{declared:?}");
        assert_eq!(documented, declared);
    }

    #[test]
    fn a_null_argument_means_the_declared_default() {
        let quoted = |text: &str| format!("'{text}'");
        for (function, argument) in [
            ("wechat_sign_out", format!("scope text DEFAULT {}", quoted(null_means::SCOPE))),
            ("wechat_scan_confirm", format!("approve boolean DEFAULT {}", null_means::APPROVE)),
            ("wechat_unlimited_qrcode", format!("check_path boolean DEFAULT {}", null_means::CHECK_PATH)),
            ("wechat_unlimited_qrcode", format!("env_version text DEFAULT {}", quoted(null_means::ENV_VERSION))),
            ("wechat_unlimited_qrcode", format!("width integer DEFAULT {}", null_means::WIDTH)),
            ("wechat_unlimited_qrcode", format!("auto_color boolean DEFAULT {}", null_means::AUTO_COLOR)),
            ("wechat_unlimited_qrcode", format!("is_hyaline boolean DEFAULT {}", null_means::IS_HYALINE)),
            ("wechat_refresh_access_token", format!("force boolean DEFAULT {}", null_means::FORCE)),
        ] {
            assert!(declaration(function).contains(&argument), "{function}: {argument} in {}", declaration(function));
        }
    }
}
