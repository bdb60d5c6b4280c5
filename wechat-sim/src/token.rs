//! Access tokens: `GET /cgi-bin/token` (classic: every call mints a new token and leaves the
//! previous one 300 s of grace) and `POST /cgi-bin/stable_token` (the same token until it nears
//! expiry; `force_refresh` revokes it at once, at most once per 30 s), plus the check every
//! `?access_token=` endpoint makes (41001 missing, 40001 unknown or revoked, 42001 expired).

use crate::http::{Request, Response};
use crate::{ids, wechat_error, State};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const JSON: &str = "application/json; encoding=utf-8";
const LIFETIME: Duration = Duration::from_secs(7200);
const GRACE: Duration = Duration::from_secs(300);
const FORCE_INTERVAL: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct Tokens {
    /// The stable token of each app, by appid.
    stable: BTreeMap<String, Issued>,
    classic: Vec<Issued>,
    /// When each app last forced a refresh, by appid.
    forced_at: BTreeMap<String, Instant>,
    /// Test hook: the next token check answers this errcode (e.g. 40014) whatever the token.
    fail_next_check: std::collections::VecDeque<i64>,
    /// Test hook: the `expires_in` every token answer claims from now on, whatever the truth (a
    /// hostile or broken WeChat).
    claimed_expires_in: Option<serde_json::Value>,
    serial: u64,
    /// Every token ever minted, for tests to look for in what must never show one.
    minted: Vec<String>,
    /// The user access tokens of web authorisation (`oauth`).
    user_tokens: Vec<crate::oauth::UserToken>,
}

#[derive(Clone)]
struct Issued {
    /// The app the token was issued to: a phone code of another app is refused with it.
    appid: String,
    token: String,
    expires: Instant,
    revoked: bool,
}

impl Tokens {
    fn mint(&mut self, appid: &str) -> Issued {
        self.serial += 1;
        let token = format!("{}_{}", 80 + self.serial, ids::token_text());
        self.minted.push(token.clone());
        Issued { appid: appid.to_string(), token, expires: Instant::now() + LIFETIME, revoked: false }
    }

    /// Every token minted so far.
    pub fn minted(&self) -> &[String] {
        &self.minted
    }

    /// Keeps a user access token (and counts it as minted, which must never show anywhere).
    pub fn issue_user_token(&mut self, issued: crate::oauth::UserToken) {
        self.minted.push(issued.token().to_string());
        self.user_tokens.push(issued);
    }

    pub fn user_token(&self, token: &str) -> Option<&crate::oauth::UserToken> {
        self.user_tokens.iter().find(|issued| issued.token() == token)
    }

    /// Test hook: every token issued so far stops working, as after a leak or a forced refresh
    /// elsewhere; the next stable_token call mints a new one.
    pub fn revoke_all(&mut self) {
        for issued in self.stable.values_mut().chain(self.classic.iter_mut()) {
            issued.revoked = true;
        }
    }

    /// The next token check answers `errcode`; called twice, the next two do, and so on.
    pub fn fail_next_check(&mut self, errcode: i64) {
        self.fail_next_check.push_back(errcode);
    }

    pub fn claim_expires_in(&mut self, expires_in: serde_json::Value) {
        self.claimed_expires_in = Some(expires_in);
    }

    fn answer(&self, issued: &Issued) -> Response {
        let expires_in = match &self.claimed_expires_in {
            Some(claimed) => claimed.clone(),
            None => json!(issued.expires.saturating_duration_since(Instant::now()).as_secs()),
        };
        Response::json(JSON, &json!({"access_token": issued.token, "expires_in": expires_in}))
    }
}

/// WeChat's credential checks, in its order.
fn check_credentials(
    state: &State,
    grant_type: Option<&str>,
    appid: Option<&str>,
    secret: Option<&str>,
) -> Option<Response> {
    if grant_type != Some("client_credential") {
        return Some(wechat_error(JSON, 40002, "invalid grant_type"));
    }
    state.config.check(appid, secret).map(|(errcode, errmsg)| wechat_error(JSON, errcode, errmsg))
}

pub fn classic(state: &State, req: &Request) -> Response {
    if let Some(refusal) = check_credentials(state, req.param("grant_type"), req.param("appid"), req.param("secret")) {
        return refusal;
    }
    let mut tokens = state.tokens.lock().unwrap();
    let grace_end = Instant::now() + GRACE;
    for old in tokens.classic.iter_mut() {
        old.expires = old.expires.min(grace_end);
    }
    let issued = tokens.mint(req.param("appid").unwrap_or_default());
    tokens.classic.push(issued.clone());
    tokens.answer(&issued)
}

pub fn stable(state: &State, req: &Request) -> Response {
    let Some(body) = req.json_body() else {
        return wechat_error(JSON, 47001, "data format error");
    };
    let text = |key: &str| body.get(key).and_then(|v| v.as_str());
    if let Some(refusal) = check_credentials(state, text("grant_type"), text("appid"), text("secret")) {
        return refusal;
    }
    let force = body.get("force_refresh").and_then(|v| v.as_bool()).unwrap_or(false);
    let appid = text("appid").unwrap_or_default().to_string();
    let mut tokens = state.tokens.lock().unwrap();
    let now = Instant::now();
    let usable = tokens.stable.get(&appid).is_some_and(|s| !s.revoked && s.expires > now + GRACE);
    let may_force = tokens.forced_at.get(&appid).is_none_or(|at| now.duration_since(*at) >= FORCE_INTERVAL);
    if usable && !(force && may_force) {
        return tokens.answer(&tokens.stable[&appid]);
    }
    if force {
        tokens.forced_at.insert(appid.clone(), now);
    }
    if let Some(old) = tokens.stable.get_mut(&appid) {
        old.revoked = true;
    }
    let issued = tokens.mint(&appid);
    tokens.stable.insert(appid, issued.clone());
    tokens.answer(&issued)
}

/// What every `?access_token=` endpoint with a JSON body checks first, in WeChat's order: the
/// token, then that the body is a JSON object (47001 otherwise). Answers the body and the app the
/// token belongs to.
pub fn checked_json_body(
    state: &State,
    req: &Request,
) -> Result<(serde_json::Map<String, serde_json::Value>, String), Response> {
    let appid = check(state, req)?;
    let body = req.json_body().ok_or_else(|| wechat_error(JSON, 47001, "data format error"))?;
    Ok((body, appid))
}

/// The check of `?access_token=`: the app the token belongs to, or the refusal.
pub fn check(state: &State, req: &Request) -> Result<String, Response> {
    let mut tokens = state.tokens.lock().unwrap();
    if let Some(errcode) = tokens.fail_next_check.pop_front() {
        return Err(wechat_error(JSON, errcode, "invalid access_token"));
    }
    let Some(token) = req.param("access_token").filter(|t| !t.is_empty()) else {
        return Err(wechat_error(JSON, 41001, "access_token missing"));
    };
    let issued = tokens.stable.values().chain(tokens.classic.iter()).find(|i| i.token == token);
    match issued {
        Some(i) if !i.revoked && i.expires > Instant::now() => Ok(i.appid.clone()),
        Some(i) if !i.revoked => Err(wechat_error(JSON, 42001, "access_token expired")),
        _ => Err(wechat_error(JSON, 40001, "invalid credential, access_token is invalid or not latest")),
    }
}
