//! A soak with injected faults: several clients make thousands of mixed calls while WeChat (the
//! simulator) answers busy, slow past the timeout, 5xx, garbage and rate-limited, and is restarted
//! once mid-run. Then the invariants: one user per openid, no orphan rows, live backends, bounded
//! backend memory, and nothing secret in the server log.
//!
//! Seconds in the test suite; `AUTH_WECHAT_SOAK_SECONDS=180 scripts/soak.sh` for minutes.

use crate::{cluster, trial};
use auth_wechat_tests::rest::Caller;
use auth_wechat_tests::{code, Rest, RpcError, JWT_SECRET, SECRET};
use libtest_mimic::Trial;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

const CLIENTS: usize = 4;
const USERS: u64 = 40;
/// Anonymous memory a backend may gain between warm-up and the end of the run.
const MEMORY_GROWTH_LIMIT_KB: i64 = 64 * 1024;

pub fn tests() -> Vec<Trial> {
    vec![trial(
        "soak::mixed_calls_with_injected_faults_keep_the_invariants",
        mixed_calls_with_injected_faults_keep_the_invariants,
    )]
}

fn duration() -> Duration {
    let seconds = std::env::var("AUTH_WECHAT_SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(6);
    Duration::from_secs(seconds)
}

/// xorshift64*: reproducible per worker, no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// What one worker saw.
#[derive(Default)]
struct Tally {
    outcomes: BTreeMap<String, u64>,
    unexpected: Vec<String>,
    /// openid user name → user ids that signing in as it returned.
    users: HashMap<String, HashSet<String>>,
    /// Every code and refresh token sent: none may reach the server log.
    secrets: Vec<String>,
}

impl Tally {
    /// Counts an answer; an error not in `allowed` (nor, for a call that overlapped the
    /// simulator's restart, in `OVERLAPPED`) is unexpected.
    fn record(&mut self, op: &str, result: &Result<Value, RpcError>, allowed: Allowed, phase: Phase) {
        let outcome = match result {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("{} {}", e.status, e.error_code()),
        };
        if let Err(e) = result {
            let answer = (e.status, e.error_code());
            let known =
                |list: Allowed| list.iter().any(|&(status, code)| (status, code) == (answer.0, answer.1.as_str()));
            let overlapped = phase == Phase::Overlapped && known(OVERLAPPED);
            if !known(allowed) && !overlapped {
                self.unexpected.push(format!("{op} ({phase:?}): {e:?}"));
            }
        }
        *self.outcomes.entry(format!("{op}: {outcome}")).or_default() += 1;
    }
}

/// Whether a call overlapped the simulator's restart (for calls that reach WeChat; the others are
/// always `Apart`): in flight at any moment between its start and its end, as the worker saw the
/// restart's stage (`Stage`) when the call began and when it ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Apart,
    Overlapped,
}

/// The restart's stage, shared with the workers: before it, under way, done.
const STAGE_BEFORE: u8 = 0;
const STAGE_RESTARTING: u8 = 1;
const STAGE_DONE: u8 = 2;

/// The phase of a call that began in stage `began` and ended in stage `ended`.
fn phase(began: u8, ended: u8) -> Phase {
    if began != ended || began == STAGE_RESTARTING {
        Phase::Overlapped
    } else {
        Phase::Apart
    }
}

/// What an operation may answer besides success: (status, `error_code`).
type Allowed = &'static [(u16, &'static str)];

/// Any WeChat call may be refused at once by the bulkhead (three places for four clients) or by
/// an open breaker, which the injected timeouts open now and then.
macro_rules! refusals {
    ($($extra:expr),* $(,)?) => {
        &[(429, "over_request_rate_limit"), (502, "wechat_unavailable"), $($extra),*]
    };
}

/// A call that reaches no WeChat: nothing but success is expected.
const NO_WECHAT: Allowed = &[];
/// A call in flight while the simulator restarts has its connection closed under it. (This was
/// the soak's unexplained `wechat_unreachable`: the phase was taken when a call began, so calls
/// under way at the restart counted as "before" it.)
const OVERLAPPED: Allowed = &[(502, "wechat_unreachable")];

/// (simulator code kind, its answers) for the faults.
const FAULTS: [(&str, Allowed); 9] = [
    ("busy", refusals![]),
    ("ratelimit", refusals![]),
    ("http500", refusals![(502, "wechat_bad_response")]),
    ("garbage", refusals![(502, "wechat_bad_response")]),
    ("huge", refusals![(502, "wechat_bad_response"), (504, "request_timeout")]),
    ("redirect", refusals![(502, "wechat_bad_response")]),
    ("invalid", refusals![(400, "invalid_credentials")]),
    ("risky", refusals![(403, "wechat_user_blocked")]),
    ("slow.700", refusals![(504, "request_timeout")]),
];
/// A good code, and a phone bind (whose number may be another user's).
const SIGN_IN: Allowed = refusals![];
const BIND_PHONE: Allowed = refusals![(409, "phone_exists")];
/// A session refreshed many times in a row may reach its budget.
const REFRESH: Allowed = &[(429, "over_request_rate_limit")];
/// The breaker's cool-down in the soak: short, so that it opens and closes several times.
const BREAKER_COOLDOWN_MS: u64 = 300;

fn worker(conninfo: String, seed: u64, stop: Arc<AtomicBool>, stage: Arc<AtomicU8>) -> (Tally, i32, Rest) {
    let mut rest = Rest::connect(&conninfo);
    let pid: i32 = rest.client().query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let mut rng = Rng(seed);
    let mut tally = Tally::default();
    let mut last: Option<Value> = None;
    while !stop.load(Ordering::Relaxed) {
        let began = stage.load(Ordering::SeqCst);
        let phase = || phase(began, stage.load(Ordering::SeqCst));
        let dice = rng.below(100);
        if dice < 45 || last.is_none() {
            let user = format!("soak{}", rng.below(USERS));
            let kind = if rng.below(10) == 0 { "union" } else { "ok" };
            let code = code(kind, &user);
            tally.secrets.push(code.clone());
            let result = rest.rpc("wechat_sign_in", json!({ "code": code }), &Caller::Anon);
            tally.record("sign_in", &result, SIGN_IN, phase());
            if let Ok(session) = result {
                tally.users.entry(user).or_default().insert(session["user"]["id"].as_str().unwrap().to_string());
                tally.secrets.push(session["refresh_token"].as_str().unwrap().to_string());
                last = Some(session);
            }
        } else if dice < 70 {
            let (kind, allowed) = FAULTS[rng.below(FAULTS.len() as u64) as usize];
            let code = code(kind, if kind.starts_with("slow") { "soakslow" } else { "" });
            tally.secrets.push(code.clone());
            let result = rest.rpc("wechat_sign_in", json!({ "code": code }), &Caller::Anon);
            if result.is_ok() {
                tally.unexpected.push(format!("{kind} succeeded"));
            }
            tally.record(kind, &result, allowed, phase());
        } else if dice < 85 {
            let session = last.as_ref().unwrap();
            let result =
                rest.rpc("wechat_refresh_session", json!({"refresh_token": session["refresh_token"]}), &Caller::Anon);
            tally.record("refresh", &result, REFRESH, Phase::Apart);
            if let Ok(fresh) = result {
                tally.secrets.push(fresh["refresh_token"].as_str().unwrap().to_string());
                last = Some(fresh);
            }
        } else if dice < 92 {
            let session = last.take().unwrap();
            let claims =
                auth_wechat_tests::jwt::verify_hs256(session["access_token"].as_str().unwrap(), JWT_SECRET.as_bytes())
                    .unwrap()
                    .1;
            let result = rest.rpc("wechat_sign_out", json!({}), &Caller::Claims(claims));
            tally.record("sign_out", &result, NO_WECHAT, Phase::Apart);
        } else {
            let session = last.as_ref().unwrap();
            let claims =
                auth_wechat_tests::jwt::verify_hs256(session["access_token"].as_str().unwrap(), JWT_SECRET.as_bytes())
                    .unwrap()
                    .1;
            let code = code(&format!("phone.86.1{:010}", rng.below(10_000_000_000)), "");
            tally.secrets.push(code.clone());
            let result = rest.rpc("wechat_bind_phone", json!({ "code": code }), &Caller::Claims(claims));
            tally.record("bind_phone", &result, BIND_PHONE, phase());
        }
    }
    (tally, pid, rest)
}

/// Anonymous (heap) memory of a backend, in kB; a failure where it cannot be read (the bound would
/// hold on zeros).
fn anon_memory_kb(pid: i32) -> i64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("the memory of backend {pid} cannot be read: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no RssAnon for backend {pid}"))
}

fn mixed_calls_with_injected_faults_keep_the_invariants() {
    let mut db = cluster().database(true);
    db.set("auth_wechat.timeout_ms", "300");
    db.set("auth_wechat.max_concurrent_requests", &(CLIENTS - 1).to_string());
    db.set("auth_wechat.breaker_cooldown_ms", &BREAKER_COOLDOWN_MS.to_string());
    let run = duration();
    let stop = Arc::new(AtomicBool::new(false));
    let stage = Arc::new(AtomicU8::new(STAGE_BEFORE));
    let workers: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (conninfo, stop, stage) = (db.conninfo("authenticator"), Arc::clone(&stop), Arc::clone(&stage));
            std::thread::spawn(move || worker(conninfo, 0x9E37_79B9 + i as u64 * 7919, stop, stage))
        })
        .collect();
    // Warm-up memory sample of every soak backend, then the restart, then the rest of the run.
    std::thread::sleep(run / 4);
    let pids: Vec<i32> = db
        .superuser()
        .query("SELECT pid FROM pg_stat_activity WHERE usename = 'authenticator' AND datname = $1", &[&db.name])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let warm: Vec<i64> = pids.iter().map(|&p| anon_memory_kb(p)).collect();
    std::thread::sleep(run / 4);
    let mut handed_out = auth_wechat_tests::simstats::secrets(&db.sim_url());
    stage.store(STAGE_RESTARTING, Ordering::SeqCst);
    db.sim.restart().expect("the simulator restarts on its port");
    stage.store(STAGE_DONE, Ordering::SeqCst);
    std::thread::sleep(run / 2);
    stop.store(true, Ordering::Relaxed);
    let results: Vec<(Tally, i32, Rest)> = workers.into_iter().map(|w| w.join().expect("no worker panics")).collect();

    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut unexpected = Vec::new();
    let mut users: HashMap<String, HashSet<String>> = HashMap::new();
    let mut secrets = Vec::new();
    let mut rests = Vec::new();
    for (tally, _, rest) in results {
        for (k, v) in tally.outcomes {
            *outcomes.entry(k).or_default() += v;
        }
        unexpected.extend(tally.unexpected);
        for (user, ids) in tally.users {
            users.entry(user).or_default().extend(ids);
        }
        secrets.extend(tally.secrets);
        rests.push(rest);
    }
    let calls: u64 = outcomes.values().sum();
    eprintln!("soak: {calls} calls in {run:?}: {outcomes:#?}");
    assert!(unexpected.is_empty(), "unexpected answers: {unexpected:#?}");
    assert!(outcomes.get("sign_in: ok").copied().unwrap_or(0) > 0 && outcomes.keys().any(|k| k.starts_with("slow")));

    // One user per openid, as every successful sign-in saw it.
    for (user, ids) in &users {
        assert_eq!(ids.len(), 1, "{user} signed in as several users: {ids:?}");
    }
    let mut admin = db.superuser();
    let broken: i64 = admin
        .query_one(
            "SELECT (SELECT count(*) FROM (SELECT wechat_id FROM auth.users WHERE wechat_id <> ''
                                           GROUP BY wechat_id HAVING count(*) > 1) d)
                  + (SELECT count(*) FROM auth.sessions s WHERE NOT EXISTS (SELECT 1 FROM auth.users u WHERE u.id = s.user_id))
                  + (SELECT count(*) FROM auth.refresh_tokens r WHERE r.session_id IS NULL
                        OR NOT EXISTS (SELECT 1 FROM auth.sessions s WHERE s.id = r.session_id))
                  + (SELECT count(*) FROM auth.identities i WHERE NOT EXISTS (SELECT 1 FROM auth.users u WHERE u.id = i.user_id))
                  + (SELECT count(*) FROM auth.users WHERE wechat_id <> ''
                        AND NOT EXISTS (SELECT 1 FROM auth.identities i WHERE i.provider_id = wechat_id))",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(broken, 0, "duplicate openids or orphan rows");
    let signed_up: i64 = admin.query_one("SELECT count(*) FROM auth.users", &[]).unwrap().get(0);
    assert!(signed_up as u64 <= USERS, "{signed_up} users for {USERS} WeChat users");

    // The backends still answer (once a breaker the end of the run may have opened has cooled
    // down), and did not grow without bound.
    std::thread::sleep(Duration::from_millis(2 * BREAKER_COOLDOWN_MS));
    for rest in &mut rests {
        let session = crate::sign_in(rest, &code("ok", "soak0")).expect("a backend still signs users in");
        assert!(session["access_token"].is_string());
    }
    for (pid, warm) in pids.iter().zip(warm) {
        let end = anon_memory_kb(*pid);
        assert!(end - warm <= MEMORY_GROWTH_LIMIT_KB, "backend {pid} grew from {warm} kB to {end} kB");
    }

    // Nothing secret in the server log: the fixed secrets anywhere, and no code, refresh token,
    // session key or access token as a word of it (a set of the log's words keeps this linear for
    // the tens of thousands a long soak hands out).
    let log = db.cluster().log();
    handed_out.extend(auth_wechat_tests::simstats::secrets(&db.sim_url()));
    for needle in [SECRET, JWT_SECRET] {
        assert!(!log.contains(needle), "the server log holds {needle:?}");
    }
    let words: HashSet<&str> =
        log.split(|c: char| !(c.is_ascii_alphanumeric() || "._~+/=-".contains(c))).filter(|w| !w.is_empty()).collect();
    for needle in secrets.iter().chain(&handed_out) {
        assert!(!words.contains(needle.as_str()), "the server log holds {needle:?}");
    }
}
