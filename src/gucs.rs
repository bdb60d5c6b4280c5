//! The `auth_wechat.*` settings.
//!
//! Every one is `SUSET`: only a superuser may change it (`ALTER SYSTEM`, `ALTER DATABASE ... SET`,
//! postgresql.conf). Were `api_base` user-settable, any role could point it at its own server and
//! receive the app secret. The two secrets are also `SUPERUSER_ONLY | NO_SHOW_ALL`, which keeps
//! them out of `SHOW ALL`, `pg_settings` and `pg_show_all_settings()` for everyone; `SHOW` and
//! `current_setting()` still let members of `pg_read_all_settings` (and so `pg_monitor`) read a
//! `SUPERUSER_ONLY` setting, so a show hook masks them for anyone but a superuser. The secrets are
//! refused from `ALTER DATABASE/ROLE ... SET`, which would store them in `pg_db_role_setting`, a
//! catalog every role can read. Load the library through `shared_preload_libraries` so those
//! protections hold from a session's first statement (a setting is a readable placeholder until
//! the library that defines it is loaded).

use crate::error::AuthError;
use pgrx::pg_sys::{self, GucSource};
use pgrx::{pg_guard, GucContext, GucFlags, GucRegistry, GucSetting};
use std::ffi::{c_char, c_void, CStr, CString};

static APPID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static SECRET: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static API_BASE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"https://api.weixin.qq.com"));
static TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(2500);
static JWT_SECRET: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static JWT_KEYS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static APPS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static JWT_EXP: GucSetting<i32> = GucSetting::<i32>::new(3600);
static JWT_ISSUER: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c""));
static ALLOW_SIGN_UP: GucSetting<bool> = GucSetting::<bool>::new(true);
static LINK_BY_UNIONID: GucSetting<bool> = GucSetting::<bool>::new(true);
static AUDIT_LOG: GucSetting<bool> = GucSetting::<bool>::new(true);
static REUSE_INTERVAL: GucSetting<i32> = GucSetting::<i32>::new(10);
static SESSIONS_TIMEBOX: GucSetting<i32> = GucSetting::<i32>::new(0);
static SESSIONS_INACTIVITY_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(0);
static SESSIONS_SINGLE_PER_USER: GucSetting<bool> = GucSetting::<bool>::new(false);
static BIND_REQUIRES_SIGN_IN_WITHIN: GucSetting<i32> = GucSetting::<i32>::new(DEFAULT_SIGN_IN_WITHIN);
static RATE_LIMIT_TOKEN_REFRESH: GucSetting<i32> = GucSetting::<i32>::new(150);
static RATE_LIMIT_HEADER: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c""));
static RATE_LIMIT_HEADER_HOPS: GucSetting<i32> = GucSetting::<i32>::new(1);
static CLIENT_SHARE: GucSetting<f64> = GucSetting::<f64>::new(0.1);
static ACCESS_TOKEN_HOOK: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c""));
static MAX_CONCURRENT_REQUESTS: GucSetting<i32> = GucSetting::<i32>::new(5);
static BREAKER_FAILURES: GucSetting<i32> = GucSetting::<i32>::new(5);
static BREAKER_COOLDOWN_MS: GucSetting<i32> = GucSetting::<i32>::new(10_000);
static REFRESH_TOKEN_ALGORITHM: GucSetting<RefreshTokenAlgorithm> =
    GucSetting::<RefreshTokenAlgorithm>::new(RefreshTokenAlgorithm::V1);
static SCAN_TTL: GucSetting<i32> = GucSetting::<i32>::new(120);
static SCAN_PAGE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c""));
static SCAN_RATE_PER_CLIENT: GucSetting<i32> = GucSetting::<i32>::new(5);
static SCAN_RATE: GucSetting<i32> = GucSetting::<i32>::new(1000);
static SCAN_MAX_PENDING: GucSetting<i32> = GucSetting::<i32>::new(10_000);
static PHONE_FORMAT: GucSetting<PhoneFormat> = GucSetting::<PhoneFormat>::new(PhoneFormat::E164);

/// How `auth.wechat_bind_phone` stores a confirmed number.
#[derive(pgrx::PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum PhoneFormat {
    /// GoTrue's: country code and number, digits only (`8613800138000`).
    #[name = c"e164"]
    E164,
    /// MemFire-style data: the bare national number (`13800138000`).
    #[name = c"national"]
    National,
}

/// Which refresh tokens new sessions get; both kinds always refresh.
#[derive(pgrx::PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum RefreshTokenAlgorithm {
    /// GoTrue's original: 12 characters, a row in `auth.refresh_tokens` per token.
    #[name = c"v1"]
    V1,
    /// GoTrue's since 2025-10: HMAC-signed, a counter in `auth.sessions`, no token rows.
    #[name = c"v2"]
    V2,
}

/// The most `auth_wechat.max_concurrent_requests` may be: the bulkhead has that many places.
pub const MAX_CONCURRENT_REQUESTS_BOUND: i32 = 128;

/// What a secret reads as to anyone but a superuser.
pub const MASK: &CStr = c"********";

/// Supabase's older place for the JWT secret, used when `auth_wechat.jwt_secret` is unset.
const SUPABASE_JWT_SECRET: &CStr = c"app.settings.jwt_secret";

/// Registers the settings; called from `_PG_init`.
pub fn init() {
    GucRegistry::define_string_guc(
        c"auth_wechat.appid",
        c"WeChat Mini Program AppID.",
        c"",
        &APPID,
        GucContext::Suset,
        GucFlags::default(),
    );
    define_secret(c"auth_wechat.secret", c"WeChat Mini Program AppSecret (superuser only).", &SECRET, show_secret);
    define_secret(
        c"auth_wechat.apps",
        c"More WeChat apps as a JSON array of {\"appid\", \"secret\", \"type\"} (superuser only).",
        &APPS,
        show_apps,
    );
    GucRegistry::define_string_guc(
        c"auth_wechat.api_base",
        c"Base URL of WeChat's server API.",
        c"Point it at a simulator for tests; the app secret is sent there.",
        &API_BASE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"auth_wechat.timeout_ms",
        c"Whole-request time limit for each WeChat call, in milliseconds.",
        c"Keep it below the caller's statement_timeout so a slow WeChat gives a clean 504.",
        &TIMEOUT_MS,
        100,
        60_000,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    define_secret(
        c"auth_wechat.jwt_secret",
        c"HS256 secret for access tokens (superuser only); unset: app.settings.jwt_secret.",
        &JWT_SECRET,
        show_jwt_secret,
    );
    define_secret(
        c"auth_wechat.jwt_keys",
        c"Signing keys for access tokens as a JSON array of JWKs, GoTrue's GOTRUE_JWT_KEYS (superuser only).",
        &JWT_KEYS,
        show_jwt_keys,
    );
    GucRegistry::define_int_guc(
        c"auth_wechat.jwt_exp",
        c"Access token lifetime in seconds.",
        c"",
        &JWT_EXP,
        30,
        7 * 24 * 3600,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_string_guc(
        c"auth_wechat.jwt_issuer",
        c"The iss claim of access tokens, e.g. https://<project>/auth/v1; empty: no iss claim.",
        c"",
        &JWT_ISSUER,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"auth_wechat.allow_sign_up",
        c"Whether an unknown openid signs up a new user.",
        c"",
        &ALLOW_SIGN_UP,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"auth_wechat.link_by_unionid",
        c"Whether a new openid whose unionid belongs to exactly one user signs that user in.",
        c"Off: every app's openid stays its own person until bound explicitly.",
        &LINK_BY_UNIONID,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"auth_wechat.phone_format",
        c"How auth.wechat_bind_phone stores numbers: e164 (8613800138000) or national (13800138000).",
        c"",
        &PHONE_FORMAT,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"auth_wechat.audit_log",
        c"Whether sign-ups, sign-ins, binds, refreshes and sign-outs write auth.audit_log_entries rows.",
        c"",
        &AUDIT_LOG,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"auth_wechat.refresh_token_reuse_interval",
        c"Seconds a rotated refresh token may be presented again (a client retry) before it counts as stolen.",
        c"GoTrue's refresh_token_reuse_interval.",
        &REUSE_INTERVAL,
        0,
        3600,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_enum_guc(
        c"auth_wechat.refresh_token_algorithm",
        c"Refresh tokens for new sessions: v1 (12 characters, auth.refresh_tokens rows) or v2 (HMAC-signed).",
        c"GoTrue's GOTRUE_SECURITY_REFRESH_TOKEN_ALGORITHM_VERSION; v2 needs auth.sessions.refresh_token_hmac_key.",
        &REFRESH_TOKEN_ALGORITHM,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"auth_wechat.sessions_timebox",
        c"Longest a session lives from its start; past it, refresh fails. 0: no limit.",
        c"GoTrue's GOTRUE_SESSIONS_TIMEBOX.",
        &SESSIONS_TIMEBOX,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"auth_wechat.sessions_inactivity_timeout",
        c"Longest a session may go without a refresh; past it, refresh fails. 0: no limit.",
        c"GoTrue's GOTRUE_SESSIONS_INACTIVITY_TIMEOUT.",
        &SESSIONS_INACTIVITY_TIMEOUT,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_bool_guc(
        c"auth_wechat.sessions_single_per_user",
        c"Only the user's most recent session may refresh.",
        c"GoTrue's GOTRUE_SESSIONS_SINGLE_PER_USER.",
        &SESSIONS_SINGLE_PER_USER,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"auth_wechat.bind_requires_sign_in_within",
        c"Binds and unlinks need a session whose latest sign-in is at most this old. 0: any live session may bind.",
        c"GoTrue's reauthentication rule for sensitive changes (SECURITY_UPDATE_PASSWORD_REQUIRE_REAUTHENTICATION).",
        &BIND_REQUIRES_SIGN_IN_WITHIN,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"auth_wechat.rate_limit_token_refresh",
        c"Refreshes one session may make per 5 minutes (bursts of 30); past it, 429. 0: no limit.",
        c"GoTrue's GOTRUE_RATE_LIMIT_TOKEN_REFRESH, counted per session instead of per client address.",
        &RATE_LIMIT_TOKEN_REFRESH,
        0,
        1_000_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"auth_wechat.scan_ttl",
        c"Seconds a scan-to-sign-in code may be scanned and confirmed (auth.wechat_scan_start).",
        c"Authing keeps its codes 120 s.",
        &SCAN_TTL,
        1,
        3600,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_string_guc(
        c"auth_wechat.scan_page",
        c"The mini-program page a scan-to-sign-in code opens (pages/scan/scan, say); empty: the home page.",
        c"auth.wechat_scan_start's page argument overrides it.",
        &SCAN_PAGE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"auth_wechat.scan_rate_per_client",
        c"Scan-to-sign-in codes one client address may start per minute (bursts of 3), with rate_limit_header; 0: no limit.",
        c"Past it, 429 and WeChat is not called.",
        &SCAN_RATE_PER_CLIENT,
        0,
        1_000_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"auth_wechat.scan_rate",
        c"Scan-to-sign-in codes one mini program may start per minute (bursts of ten seconds' worth); 0: no limit.",
        c"WeChat allows an app 5000 codes a minute, for every use of them.",
        &SCAN_RATE,
        0,
        1_000_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"auth_wechat.scan_max_pending",
        c"Scan-to-sign-in tickets that may wait at once (not expired, not collected); past it, 429.",
        c"Bounds the ticket table whatever the rates.",
        &SCAN_MAX_PENDING,
        1,
        10_000_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"auth_wechat.access_token_hook",
        c"A function like GoTrue's custom_access_token_hook (jsonb event -> jsonb) every minted token goes through.",
        c"Schema-qualified name, e.g. public.custom_access_token_hook; empty: no hook.",
        &ACCESS_TOKEN_HOOK,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"auth_wechat.max_concurrent_requests",
        c"WeChat calls in flight at once, cluster-wide; one more is refused at once (503).",
        c"Keeps a slow WeChat from holding every pooled connection; the default suits a pool of 10.",
        &MAX_CONCURRENT_REQUESTS,
        1,
        MAX_CONCURRENT_REQUESTS_BOUND,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"auth_wechat.rate_limit_header",
        c"The request header that names the client (set by a trusted gateway) for the per-client share of WeChat calls.",
        c"GoTrue's GOTRUE_RATE_LIMIT_HEADER, e.g. x-real-ip; of a list, the value rate_limit_header_hops from the right. Empty: clients are not told apart.",
        &RATE_LIMIT_HEADER,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"auth_wechat.rate_limit_header_hops",
        c"Of a list in rate_limit_header, which value names the client, counted from the right (1: the last).",
        c"Gateways append the address they saw; what a client sent comes before. Count your own proxies.",
        &RATE_LIMIT_HEADER_HOPS,
        1,
        16,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"auth_wechat.client_share",
        c"The share of max_concurrent_requests one client may keep busy on average, with rate_limit_header set.",
        c"A client past it is refused (429) until its WeChat time drains; it may burst to two seconds of its share.",
        &CLIENT_SHARE,
        0.01,
        1.0,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"auth_wechat.breaker_failures",
        c"Timeouts or unreachable answers in a row after which WeChat calls fail fast for a cool-down.",
        c"",
        &BREAKER_FAILURES,
        1,
        1000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"auth_wechat.breaker_cooldown_ms",
        c"How long WeChat calls fail fast once the breaker opens; then one call probes.",
        c"",
        &BREAKER_COOLDOWN_MS,
        100,
        600_000,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    // SAFETY: from _PG_init, once the settings above are defined. A misspelt `auth_wechat.*` name
    // is an error from then on, not a silent placeholder.
    unsafe { pgrx::pg_sys::MarkGUCPrefixReserved(c"auth_wechat".as_ptr()) };
}

fn define_secret(
    name: &'static CStr,
    description: &'static CStr,
    setting: &'static GucSetting<Option<CString>>,
    show: unsafe extern "C-unwind" fn() -> *const c_char,
) {
    // SAFETY: the hooks are #[pg_guard] functions that only read their arguments and the setting.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            name,
            description,
            c"Set it with ALTER SYSTEM or in postgresql.conf.",
            setting,
            GucContext::Suset,
            GucFlags::SUPERUSER_ONLY | GucFlags::NO_SHOW_ALL,
            Some(refuse_readable_storage),
            None,
            Some(show),
        );
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn show_secret() -> *const c_char {
    shown_secret(&SECRET)
}

#[pg_guard]
unsafe extern "C-unwind" fn show_jwt_secret() -> *const c_char {
    shown_secret(&JWT_SECRET)
}

#[pg_guard]
unsafe extern "C-unwind" fn show_jwt_keys() -> *const c_char {
    shown_secret(&JWT_KEYS)
}

#[pg_guard]
unsafe extern "C-unwind" fn show_apps() -> *const c_char {
    shown_secret(&APPS)
}

/// What `SHOW`, `current_setting()` and the settings views get for a secret: the value for a
/// superuser, a mask for anyone else (PostgreSQL itself lets `pg_read_all_settings` through to
/// here) and outside a transaction, where no user can be checked. Not an ERROR: the views compute
/// every setting's text, hidden ones included, for every reader.
fn shown_secret(setting: &GucSetting<Option<CString>>) -> *const c_char {
    // SAFETY: IsTransactionState only reads backend state; superuser() needs a transaction, which
    // it is given; pstrdup copies into the caller's memory context, as Postgres expects of a show
    // hook's answer.
    unsafe {
        if !pg_sys::IsTransactionState() || !pg_sys::superuser() {
            return MASK.as_ptr();
        }
        match setting.get() {
            Some(value) => pg_sys::pstrdup(value.as_ptr()),
            None => c"".as_ptr(),
        }
    }
}

/// Check hook of the secrets: refuses values that come from, or are about to be stored in,
/// `pg_db_role_setting` or a function's `SET` clause (`pg_proc.proconfig`), both readable by every
/// role. `PGC_S_TEST` is how `ALTER DATABASE/ROLE ... SET` and `CREATE FUNCTION ... SET` validate.
#[pg_guard]
unsafe extern "C-unwind" fn refuse_readable_storage(
    _newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    source: GucSource::Type,
) -> bool {
    let readable = matches!(
        source,
        GucSource::PGC_S_TEST
            | GucSource::PGC_S_GLOBAL
            | GucSource::PGC_S_DATABASE
            | GucSource::PGC_S_USER
            | GucSource::PGC_S_DATABASE_USER
    );
    if readable {
        // SAFETY: Postgres reads these strings right after the hook returns false; pstrdup puts
        // them in the current memory context as GUC_check_errmsg() and the others would. A message
        // of our own: Postgres' default one would print the refused value, a secret.
        unsafe {
            pg_sys::GUC_check_errmsg_string =
                pg_sys::pstrdup(c"this auth_wechat setting is a secret and may not be stored in a catalog".as_ptr());
            pg_sys::GUC_check_errdetail_string = pg_sys::pstrdup(
                c"Per-database, per-role and per-function settings are stored in catalogs every role can read."
                    .as_ptr(),
            );
            pg_sys::GUC_check_errhint_string =
                pg_sys::pstrdup(c"Set it with ALTER SYSTEM or in postgresql.conf, then restart the server (a reload logs the new value).".as_ptr());
        }
    }
    !readable
}

fn required(setting: &GucSetting<Option<CString>>, name: &'static str) -> Result<String, AuthError> {
    match setting.get() {
        Some(value) if !value.as_bytes().is_empty() => Ok(value.to_string_lossy().into_owned()),
        _ => Err(AuthError::MissingSetting(name)),
    }
}

pub fn appid() -> Result<String, AuthError> {
    required(&APPID, "auth_wechat.appid")
}

pub fn secret() -> Result<String, AuthError> {
    required(&SECRET, "auth_wechat.secret")
}

/// `auth_wechat.appid` when it is set.
pub fn appid_if_set() -> Option<String> {
    appid().ok()
}

/// `auth_wechat.apps`, when set (not blank).
pub fn apps() -> Option<CString> {
    APPS.get().filter(|v| !v.as_bytes().iter().all(u8::is_ascii_whitespace))
}

pub fn api_base() -> Result<String, AuthError> {
    required(&API_BASE, "auth_wechat.api_base").map(|base| base.trim_end_matches('/').to_string())
}

pub fn timeout() -> std::time::Duration {
    std::time::Duration::from_millis(TIMEOUT_MS.get() as u64)
}

/// `auth_wechat.jwt_keys`, when set (not empty).
pub fn jwt_keys() -> Option<CString> {
    JWT_KEYS.get().filter(|v| !v.as_bytes().iter().all(u8::is_ascii_whitespace))
}

/// The access-token signing secret: `auth_wechat.jwt_secret`, else Supabase's
/// `app.settings.jwt_secret`.
pub fn jwt_secret() -> Result<Vec<u8>, AuthError> {
    if let Some(value) = JWT_SECRET.get().filter(|v| !v.as_bytes().is_empty()) {
        return Ok(value.into_bytes());
    }
    if let Some(fallback) = custom_setting(SUPABASE_JWT_SECRET).filter(|v| !v.is_empty()) {
        return Ok(fallback.into_bytes());
    }
    Err(AuthError::MissingSetting("auth_wechat.jwt_secret (nor Supabase's app.settings.jwt_secret)"))
}

/// A setting outside this extension's prefix (`app.settings.*`, PostgREST's `request.*`), if set.
pub fn custom_setting(name: &CStr) -> Option<String> {
    // SAFETY: GetConfigOption returns NULL or a NUL-terminated string owned by the GUC machinery;
    // it is copied at once, before any other GUC call could change it.
    let value = unsafe { pg_sys::GetConfigOption(name.as_ptr(), true, false) };
    (!value.is_null()).then(|| unsafe { CStr::from_ptr(value) }.to_string_lossy().into_owned())
}

pub fn max_concurrent_requests() -> usize {
    MAX_CONCURRENT_REQUESTS.get() as usize
}

pub fn breaker_failures() -> u32 {
    BREAKER_FAILURES.get() as u32
}

pub fn breaker_cooldown_ms() -> i64 {
    BREAKER_COOLDOWN_MS.get() as i64
}

pub fn jwt_exp() -> i64 {
    JWT_EXP.get() as i64
}

pub fn jwt_issuer() -> String {
    JWT_ISSUER.get().map(|v| v.to_string_lossy().into_owned()).unwrap_or_default()
}

pub fn allow_sign_up() -> bool {
    ALLOW_SIGN_UP.get()
}

pub fn link_by_unionid() -> bool {
    LINK_BY_UNIONID.get()
}

pub fn phone_format() -> PhoneFormat {
    PHONE_FORMAT.get()
}

pub fn audit_log() -> bool {
    AUDIT_LOG.get()
}

pub fn refresh_token_algorithm() -> RefreshTokenAlgorithm {
    REFRESH_TOKEN_ALGORITHM.get()
}

pub fn refresh_token_reuse_interval() -> i32 {
    REUSE_INTERVAL.get()
}

/// GoTrue's session limits, in seconds (0: none) and as a flag.
pub struct SessionLimits {
    pub timebox: i32,
    pub inactivity_timeout: i32,
    pub single_per_user: bool,
}

pub fn session_limits() -> SessionLimits {
    SessionLimits {
        timebox: SESSIONS_TIMEBOX.get(),
        inactivity_timeout: SESSIONS_INACTIVITY_TIMEOUT.get(),
        single_per_user: SESSIONS_SINGLE_PER_USER.get(),
    }
}

/// `auth_wechat.bind_requires_sign_in_within`'s default, in seconds: GoTrue's reauthentication
/// window is short, and a bind usually follows a sign-in in the app's own flow.
pub const DEFAULT_SIGN_IN_WITHIN: i32 = 600;

/// `auth_wechat.bind_requires_sign_in_within` in seconds, when on.
pub fn bind_requires_sign_in_within() -> Option<i64> {
    Some(BIND_REQUIRES_SIGN_IN_WITHIN.get() as i64).filter(|&seconds| seconds > 0)
}

/// How recent a sign-in must be for what a stolen access token must never buy (an unlink, which
/// opens the way to a takeover; a scan confirmation, which mints a session): the setting, or its
/// default when it is off.
pub fn sign_in_within_always() -> i64 {
    bind_requires_sign_in_within().unwrap_or(i64::from(DEFAULT_SIGN_IN_WITHIN))
}

/// `auth_wechat.rate_limit_token_refresh`: refreshes per session per 5 minutes; 0 for none.
pub fn rate_limit_token_refresh() -> u32 {
    RATE_LIMIT_TOKEN_REFRESH.get() as u32
}

/// Sets `name` to `value` in the innermost GUC nest level, which takes it back when it closes
/// (the one `privilege::as_auth_owner` opens around every call): as a function's `SET` clause.
///
/// # Safety
/// Inside a transaction, with a GUC nest level opened for it.
pub unsafe fn set_in_nest_level(name: &CStr, value: &CStr) {
    // SAFETY: per this function's contract; both strings are NUL-terminated.
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
    }
}

/// `auth_wechat.scan_ttl`, in seconds.
pub fn scan_ttl() -> i32 {
    SCAN_TTL.get()
}

/// `auth_wechat.scan_page`, when set.
pub fn scan_page() -> Option<String> {
    SCAN_PAGE.get().map(|v| v.to_string_lossy().trim().to_string()).filter(|v| !v.is_empty())
}

/// `auth_wechat.scan_rate_per_client`: codes per client address per minute; 0 for none.
pub fn scan_rate_per_client() -> u32 {
    SCAN_RATE_PER_CLIENT.get() as u32
}

/// `auth_wechat.scan_rate`: codes per app per minute; 0 for none.
pub fn scan_rate() -> u32 {
    SCAN_RATE.get() as u32
}

/// `auth_wechat.scan_max_pending`.
pub fn scan_max_pending() -> i64 {
    i64::from(SCAN_MAX_PENDING.get())
}

/// `auth_wechat.rate_limit_header`, lower case as PostgREST names headers, when set.
pub fn rate_limit_header() -> Option<String> {
    RATE_LIMIT_HEADER.get().map(|v| v.to_string_lossy().trim().to_ascii_lowercase()).filter(|v| !v.is_empty())
}

/// `auth_wechat.rate_limit_header_hops`.
pub fn rate_limit_header_hops() -> usize {
    RATE_LIMIT_HEADER_HOPS.get() as usize
}

/// `auth_wechat.client_share`.
pub fn client_share() -> f64 {
    CLIENT_SHARE.get()
}

/// The access-token hook's name, if one is set.
pub fn access_token_hook() -> Option<String> {
    ACCESS_TOKEN_HOOK.get().map(|v| v.to_string_lossy().trim().to_string()).filter(|v| !v.is_empty())
}
