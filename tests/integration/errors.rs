//! Every failure: its HTTP status through PostgREST, its stable code, WeChat's errcode in the
//! detail, and nothing secret in any of it.

use crate::{cluster, sign_in, trial};
use auth_wechat_tests::rest::{to_rpc_error, Caller};
use auth_wechat_tests::simstats::calls;
use auth_wechat_tests::TestDb;
use auth_wechat_tests::{code, RpcError, JWT_SECRET, SECRET};
use libtest_mimic::Trial;
use serde_json::{json, Value};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LOGIN: &str = "/sns/jscode2session";

pub fn tests() -> Vec<Trial> {
    vec![
        trial("errors::wechat_answers_map_to_http_statuses", wechat_answers_map_to_http_statuses),
        trial("errors::a_used_code_is_refused", a_used_code_is_refused),
        trial("errors::bad_input_never_reaches_wechat", bad_input_never_reaches_wechat),
        trial("errors::slow_wechat_gives_504", slow_wechat_gives_504),
        trial("errors::cancel_interrupts_the_wait", cancel_interrupts_the_wait),
        trial("errors::a_connect_that_hangs_times_out_and_cancels", a_connect_that_hangs_times_out_and_cancels),
        trial("errors::statement_timeout_interrupts_the_wait", statement_timeout_interrupts_the_wait),
        trial("errors::missing_setting_is_named", missing_setting_is_named),
        trial("errors::missing_jwt_secret_spends_no_code", missing_jwt_secret_spends_no_code),
        trial("errors::supabase_jwt_secret_is_the_fallback", supabase_jwt_secret_is_the_fallback),
        trial("errors::unreachable_wechat_gives_502", unreachable_wechat_gives_502),
        trial("errors::rejected_app_credentials_give_500", rejected_app_credentials_give_500),
        trial("errors::calls_over_the_cap_are_refused_at_once", calls_over_the_cap_are_refused_at_once),
        trial("errors::a_terminated_backend_gives_its_place_back", a_terminated_backend_gives_its_place_back),
        trial("errors::the_breaker_fails_fast_then_probes", the_breaker_fails_fast_then_probes),
        trial("errors::refused_codes_never_trip_the_breaker", refused_codes_never_trip_the_breaker),
        trial("errors::cancels_and_timeouts_give_their_places_back", cancels_and_timeouts_give_their_places_back),
        trial("errors::a_cut_probe_is_given_back", a_cut_probe_is_given_back),
        trial("errors::no_rust_internals_reach_the_client", no_rust_internals_reach_the_client),
    ]
}

/// Nothing secret in an error: not the app secret, the JWT secret, the code, nor any session key
/// or access token the simulator (`sim_url`) handed out.
fn assert_clean(error: &RpcError, code: &str, sim_url: &str) {
    let text = error.all_text();
    let handed_out = auth_wechat_tests::simstats::secrets(sim_url);
    for secret in [SECRET, JWT_SECRET, code].into_iter().chain(handed_out.iter().map(String::as_str)) {
        assert!(!text.contains(secret), "error text leaks {secret:?}: {text}");
    }
}

fn wechat_answers_map_to_http_statuses() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let table: [(&str, u16, &str, Option<i64>); 10] = [
        ("invalid", 400, "invalid_credentials", Some(40029)),
        ("used", 400, "invalid_credentials", Some(40163)),
        ("strerr", 400, "invalid_credentials", Some(40029)),
        ("risky", 403, "wechat_user_blocked", Some(40226)),
        ("ratelimit", 429, "over_request_rate_limit", Some(45011)),
        ("busy", 502, "wechat_unavailable", Some(-1)),
        ("http500", 502, "wechat_bad_response", None),
        ("garbage", 502, "wechat_bad_response", None),
        ("huge", 502, "wechat_bad_response", None),
        ("redirect", 502, "wechat_bad_response", None),
    ];
    for (kind, status, error_code, errcode) in table {
        let code = code(kind, "");
        let error = sign_in(&mut rest, &code).expect_err(kind);
        assert_eq!((error.status, error.error_code().as_str()), (status, error_code), "{kind}: {error:?}");
        assert_eq!(error.sqlstate, format!("PT{status}"));
        let detail = error.detail_json();
        assert_eq!(detail["wechat_errcode"].as_i64(), errcode, "{kind}: {detail}");
        if errcode.is_some() {
            assert!(detail["wechat_rid"].as_str().is_some_and(|rid| rid.len() == 26), "{kind}: rid kept: {detail}");
        }
        assert_clean(&error, &code, &db.sim_url());
    }
    assert_eq!(calls(&db.sim_url(), LOGIN), table.len() as u64);
    let users: i64 = db.superuser().query_one("SELECT count(*) FROM auth.users", &[]).unwrap().get(0);
    assert_eq!(users, 0, "no failure writes a row");
}

fn a_used_code_is_refused() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let code = code("ok", "lena");
    sign_in(&mut rest, &code).unwrap();
    let error = sign_in(&mut rest, &code).unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (400, "invalid_credentials"));
    assert_eq!(error.detail_json()["wechat_errcode"], 40163);
    assert_clean(&error, &code, &db.sim_url());
}

fn bad_input_never_reaches_wechat() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let long = "a".repeat(200);
    for body in [
        json!({"code": ""}),
        json!({"code": null}),
        json!({"code": long}),
        json!({"code": "a b"}),
        json!({"code": "x&secret=1"}),
    ] {
        let error = rest.rpc("wechat_sign_in", body.clone(), &Caller::Anon).unwrap_err();
        assert_eq!((error.status, error.error_code().as_str()), (400, "validation_failed"), "{body}");
    }
    assert_eq!(calls(&db.sim_url(), LOGIN), 0);
}

fn slow_wechat_gives_504() {
    let db = cluster().database(true);
    db.set("auth_wechat.timeout_ms", "300");
    let started = Instant::now();
    let code = code("slow.3000", "mona");
    let error = sign_in(&mut db.rest(), &code).unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (504, "request_timeout"));
    assert!(started.elapsed() < Duration::from_millis(2500), "timed out at {:?}", started.elapsed());
    assert_clean(&error, &code, &db.sim_url());
}

fn cancel_interrupts_the_wait() {
    let db = cluster().database(true);
    db.set("auth_wechat.timeout_ms", "20000");
    let mut rest = db.rest();
    let cancel = rest.client().cancel_token();
    let started = Instant::now();
    let call = std::thread::spawn(move || {
        let result = sign_in(&mut rest, &code("slow.8000", "nina"));
        (rest, result)
    });
    auth_wechat_tests::wait_for_calls(&db.sim_url(), LOGIN, 1);
    cancel.cancel_query(postgres::NoTls).unwrap();
    let (mut rest, result) = call.join().unwrap();
    let error = result.unwrap_err();
    assert_eq!(error.sqlstate, "57014", "query_canceled: {error:?}");
    assert_no_rust_internals(&error.all_text());
    assert!(started.elapsed() < Duration::from_millis(3000), "cancel took {:?}", started.elapsed());
    // Nothing of the call is left: no row, and the backend is back to its own user and settings.
    let (user, path): (String, String) = rest
        .client()
        .query_one("SELECT current_user::text, current_setting('search_path')", &[])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((user.as_str(), path.as_str()), ("authenticator", "\"$user\", public"));
    let users: i64 = db.superuser().query_one("SELECT count(*) FROM auth.users", &[]).unwrap().get(0);
    assert_eq!(users, 0, "no half-written sign-up");
    // The same backend calls WeChat again at once, on a new connection: the one cut off mid-answer
    // (whose late answer is another user's) is not reused.
    let connections = auth_wechat_tests::simstats::connections(&db.sim_url());
    let started = Instant::now();
    let next = sign_in(&mut rest, &code("ok", "nora")).expect("the next call of the cancelled backend succeeds");
    assert_eq!(
        next["user"]["wechat_id"],
        wechat_sim::openid(auth_wechat_tests::APPID, "nora").as_str(),
        "its own answer"
    );
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "it did not wait for the cut answer: {:?}",
        started.elapsed()
    );
    assert_eq!(auth_wechat_tests::simstats::connections(&db.sim_url()), connections + 1, "a new connection");
}

/// A loopback port where a connect hangs: a listener with a backlog of 0 whose accept queue is
/// filled and never drained, so Linux drops further SYNs. Returns the port and what must stay
/// open meanwhile.
fn port_where_connects_hang() -> (u16, Vec<std::net::TcpStream>, libc::c_int) {
    // SAFETY: plain socket calls on a socket this function owns; the address is initialised.
    let (fd, port) = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len), 0);
        assert_eq!(libc::listen(fd, 0), 0);
        let mut bound: libc::sockaddr_in = std::mem::zeroed();
        let mut bound_len = len;
        libc::getsockname(fd, &mut bound as *mut _ as *mut libc::sockaddr, &mut bound_len);
        (fd, u16::from_be(bound.sin_port))
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let fillers: Vec<_> =
        (0..3).filter_map(|_| std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()).collect();
    assert!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_err(),
        "the accept queue is full: a further connect hangs"
    );
    (port, fillers, fd)
}

fn a_connect_that_hangs_times_out_and_cancels() {
    let (port, _fillers, _listener) = port_where_connects_hang();
    let db = cluster().database(true);
    db.set("auth_wechat.api_base", &format!("http://127.0.0.1:{port}"));
    // The call's own time limit ends the connect: 504.
    db.set("auth_wechat.timeout_ms", "300");
    let started = Instant::now();
    let error = sign_in(&mut db.rest(), &code("ok", "quinn")).unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (504, "request_timeout"), "{error:?}");
    assert!(started.elapsed() < Duration::from_millis(2000), "timed out at {:?}", started.elapsed());
    // A cancel ends it too, long before the call's limit.
    db.set("auth_wechat.timeout_ms", "20000");
    let mut rest = db.rest();
    let cancel = rest.client().cancel_token();
    let started = Instant::now();
    let call = std::thread::spawn(move || sign_in(&mut rest, &code("ok", "quinn")));
    // It hangs in connect, where the simulator never sees it: give it a moment to get there.
    std::thread::sleep(Duration::from_millis(400));
    cancel.cancel_query(postgres::NoTls).unwrap();
    let error = call.join().unwrap().unwrap_err();
    assert_eq!(error.sqlstate, "57014", "query_canceled: {error:?}");
    assert!(started.elapsed() < Duration::from_millis(3000), "cancel took {:?}", started.elapsed());
}

fn statement_timeout_interrupts_the_wait() {
    let db = cluster().database(true);
    db.set("auth_wechat.timeout_ms", "20000");
    // As PostgREST applies it: the API role's own setting (anon's 3 s, here shortened).
    db.superuser()
        .batch_execute(&format!("ALTER ROLE anon IN DATABASE {} SET statement_timeout = '500ms'", db.name))
        .unwrap();
    let started = Instant::now();
    let error = sign_in(&mut db.rest(), &code("slow.8000", "olga")).unwrap_err();
    assert_eq!(error.sqlstate, "57014", "{error:?}");
    assert!(started.elapsed() < Duration::from_millis(3000), "statement_timeout took {:?}", started.elapsed());
}

fn missing_setting_is_named() {
    let db = cluster().database(true);
    db.set("auth_wechat.appid", "");
    let error = sign_in(&mut db.rest(), &code("ok", "paul")).unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (500, "configuration_missing"));
    assert!(error.message.contains("auth_wechat.appid"), "{}", error.message);
    assert_eq!(calls(&db.sim_url(), LOGIN), 0);
}

/// Signs in as `anon` on a superuser connection that first SETs `settings` for its session (the
/// secrets cannot be set per database: see security::secrets_refuse_catalog_storage).
fn sign_in_with_session_settings(db: &TestDb, settings: &str, code: &str) -> Result<Value, RpcError> {
    let mut client = db.superuser();
    client.batch_execute(settings).unwrap();
    let mut tx = client.transaction().unwrap();
    tx.execute("SELECT set_config('role', 'anon', true)", &[]).unwrap();
    let result = tx.query_one("SELECT auth.wechat_sign_in($1)", &[&code]).map(|row| row.get::<_, Value>(0));
    match result {
        Ok(session) => {
            tx.commit().unwrap();
            Ok(session)
        }
        Err(error) => Err(to_rpc_error(&error, false)),
    }
}

fn missing_jwt_secret_spends_no_code() {
    let db = cluster().database(true);
    let error =
        sign_in_with_session_settings(&db, "SET auth_wechat.jwt_secret = ''", &code("ok", "quinn")).unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (500, "configuration_missing"));
    assert!(error.message.contains("auth_wechat.jwt_secret"), "{}", error.message);
    assert_eq!(calls(&db.sim_url(), LOGIN), 0, "the single-use code is not spent");
}

fn supabase_jwt_secret_is_the_fallback() {
    let db = cluster().database(true);
    let fallback = "supabase-style-jwt-secret-of-32-chars-or-more";
    db.set("app.settings.jwt_secret", fallback);
    let session =
        sign_in_with_session_settings(&db, "SET auth_wechat.jwt_secret = ''", &code("ok", "rosa")).expect("signs in");
    let token = session["access_token"].as_str().unwrap();
    assert!(auth_wechat_tests::jwt::verify_hs256(token, fallback.as_bytes()).is_some());
}

fn unreachable_wechat_gives_502() {
    let db = cluster().database(true);
    let closed_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    db.set("auth_wechat.api_base", &format!("http://127.0.0.1:{closed_port}"));
    let code = code("ok", "sara");
    let error = sign_in(&mut db.rest(), &code).unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (502, "wechat_unreachable"));
    assert_clean(&error, &code, &db.sim_url());
}

fn rejected_app_credentials_give_500() {
    let db = cluster().database(true);
    let wrong = "ffffffffffffffffffffffffffffffff";
    let code = code("ok", "tina");
    let error = sign_in_with_session_settings(&db, &format!("SET auth_wechat.secret = '{wrong}'"), &code).unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (500, "wechat_config_rejected"));
    assert_eq!(error.detail_json()["wechat_errcode"], 40125);
    assert!(!error.all_text().contains(wrong));
    assert_clean(&error, &code, &db.sim_url());

    db.set("auth_wechat.appid", "wx0000000000000000");
    let error = sign_in(&mut db.rest(), &auth_wechat_tests::code("ok", "tina")).unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (500, "wechat_config_rejected"));
    assert_eq!(error.detail_json()["wechat_errcode"], 40013);
}

/// Sign-ins that hold WeChat's places: `n` calls that WeChat answers after `ms`, each on its own
/// connection, started before this returns.
fn slow_sign_ins(db: &Arc<TestDb>, n: usize, ms: u64) -> Vec<std::thread::JoinHandle<Result<Value, RpcError>>> {
    let started = Arc::new(std::sync::Barrier::new(n + 1));
    let calls = (0..n)
        .map(|i| {
            let (db, started) = (Arc::clone(db), Arc::clone(&started));
            std::thread::spawn(move || {
                let mut rest = db.rest();
                started.wait();
                sign_in(&mut rest, &code(&format!("slow.{ms}"), &format!("held{i}")))
            })
        })
        .collect();
    started.wait();
    // Let them reach WeChat.
    auth_wechat_tests::wait_for_calls(&db.sim_url(), LOGIN, n as u64);
    calls
}

fn calls_over_the_cap_are_refused_at_once() {
    let db = Arc::new(cluster().database(true));
    db.set("auth_wechat.max_concurrent_requests", "2");
    let held = slow_sign_ins(&db, 2, 2000);
    let error = sign_in(&mut db.rest(), &code("ok", "third")).unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (429, "over_request_rate_limit"), "{error:?}");
    assert_eq!(error.header("retry-after"), Some("1"), "{error:?}");
    assert!(error.message.contains("max_concurrent_requests"), "{}", error.message);
    assert!(held.iter().all(|h| !h.is_finished()), "refused while both places were still held, without waiting");
    assert_eq!(calls(&db.sim_url(), LOGIN), 2, "the refused call never reached WeChat");
    for call in held {
        call.join().unwrap().expect("the calls inside the cap succeed");
    }
    sign_in(&mut db.rest(), &code("ok", "third")).expect("places are given back");
}

fn a_terminated_backend_gives_its_place_back() {
    let db = Arc::new(cluster().database(true));
    db.set("auth_wechat.max_concurrent_requests", "1");
    let held = slow_sign_ins(&db, 1, 5000);
    let killed: bool = db
        .superuser()
        .query_one(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = current_database() AND query LIKE '%wechat_sign_in%' AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(killed);
    let _ = held.into_iter().next().unwrap().join();
    // Its place comes back when the backend exits (a moment after its client hears of it).
    auth_wechat_tests::wait_until("the terminated backend's place to be free again", Duration::from_secs(10), || {
        sign_in(&mut db.rest(), &code("ok", "after")).is_ok()
    });
}

/// A cancelled call, or one `statement_timeout` ends, gives its place back at once, in a backend
/// that lives on (PostgREST's do), at the default cap of five: six cancels and six timeouts in one
/// backend each, then five calls at once are all let in.
fn cancels_and_timeouts_give_their_places_back() {
    let db = Arc::new(cluster().database(true));
    db.set("auth_wechat.max_concurrent_requests", "5");
    db.set("auth_wechat.timeout_ms", "20000");
    let mut rest = db.rest();
    for round in 0..6u64 {
        let cancel = rest.client().cancel_token();
        let call = std::thread::spawn(move || {
            let result = sign_in(&mut rest, &code("slow.8000", "cancelled"));
            (rest, result)
        });
        auth_wechat_tests::wait_for_calls(&db.sim_url(), LOGIN, round + 1);
        cancel.cancel_query(postgres::NoTls).unwrap();
        let (back, result) = call.join().unwrap();
        assert_eq!(result.unwrap_err().sqlstate, "57014");
        rest = back;
    }
    db.superuser()
        .batch_execute(&format!("ALTER ROLE anon IN DATABASE {} SET statement_timeout = '300ms'", db.name))
        .unwrap();
    let mut timed = db.rest();
    for _ in 0..6 {
        assert_eq!(sign_in(&mut timed, &code("slow.8000", "timedout")).unwrap_err().sqlstate, "57014");
    }
    db.superuser().batch_execute(&format!("ALTER ROLE anon IN DATABASE {} RESET statement_timeout", db.name)).unwrap();
    let before = calls(&db.sim_url(), LOGIN);
    for held in slow_sign_ins(&db, 5, 1000) {
        held.join().unwrap().expect("every place is free again");
    }
    assert_eq!(calls(&db.sim_url(), LOGIN), before + 5);
    drop(rest);
}

/// A probe of a half-open breaker that a `statement_timeout` cuts short decides nothing: the
/// next call probes again (and closes the breaker), though the cut backend lives on.
fn a_cut_probe_is_given_back() {
    let db = cluster().database(true);
    db.set("auth_wechat.timeout_ms", "1000");
    db.set("auth_wechat.breaker_failures", "1");
    db.set("auth_wechat.breaker_cooldown_ms", "500");
    assert_eq!(sign_in(&mut db.rest(), &code("slow.3000", "opens")).unwrap_err().status, 504);
    std::thread::sleep(Duration::from_millis(600)); // past the cool-down: the next call probes
    db.superuser()
        .batch_execute(&format!("ALTER ROLE anon IN DATABASE {} SET statement_timeout = '200ms'", db.name))
        .unwrap();
    let mut cut = db.rest();
    assert_eq!(sign_in(&mut cut, &code("slow.3000", "probe")).unwrap_err().sqlstate, "57014", "the probe was cut");
    db.superuser().batch_execute(&format!("ALTER ROLE anon IN DATABASE {} RESET statement_timeout", db.name)).unwrap();
    sign_in(&mut db.rest(), &code("ok", "next")).expect("the next call probes, and WeChat closes the breaker");
    drop(cut);
}

/// Only timeouts and unreachable answers trip the breaker: WeChat refusing a code is WeChat
/// answering, and a code refused before any call is no WeChat call at all.
fn refused_codes_never_trip_the_breaker() {
    let db = cluster().database(true);
    db.set("auth_wechat.breaker_failures", "1");
    let mut rest = db.rest();
    for kind in ["invalid", "used", "strerr", "risky", "busy"] {
        sign_in(&mut rest, &code(kind, "")).unwrap_err();
    }
    for malformed in ["no spaces", "", &"x".repeat(200)] {
        sign_in(&mut rest, malformed).unwrap_err();
    }
    sign_in(&mut rest, &code("ok", "after")).expect("the breaker stayed closed");
}

/// What a client sees holds nothing of Rust's: no backtrace (pgrx appends one to DETAIL when
/// `RUST_BACKTRACE` is set, as the test cluster's server has it), no source path, no crate.
fn assert_no_rust_internals(text: &str) {
    for internal in
        ["backtrace", ".rs:", "pgrx", "core::", "std::", "rustc", "auth_wechat::", "panicked", "{{closure}}"]
    {
        assert!(!text.contains(internal), "{internal:?} reaches the client: {text}");
    }
}

/// Postgres' own errors that pass through the extension (a damaged schema: a column GoTrue's
/// tables should have is gone) keep their SQLSTATE and message and carry nothing of Rust, from
/// SQL and through a real PostgREST.
fn no_rust_internals_reach_the_client() {
    let db = cluster().database(true);
    let session = sign_in(&mut db.rest(), &code("ok", "damaged")).unwrap();
    db.superuser().batch_execute("ALTER TABLE auth.users RENAME COLUMN is_anonymous TO is_anon").unwrap();
    let sign_in_error = sign_in(&mut db.rest(), &code("ok", "damaged")).unwrap_err();
    let user_error = db.rest().rpc("wechat_user", json!({}), &crate::as_user(&session)).unwrap_err();
    for error in [&sign_in_error, &user_error] {
        assert_eq!(error.sqlstate, "42703", "{error:?}");
        assert!(error.message.contains("is_anonymous"), "Postgres' message: {}", error.message);
        assert_no_rust_internals(&error.all_text());
    }
    db.superuser().batch_execute("SELECT auth.wechat_expose()").unwrap();
    let uri = format!("postgres://authenticator@127.0.0.1:{}/{}", cluster().port(), db.name);
    let rest = auth_wechat_tests::postgrest::PostgRest::start(&uri, auth_wechat_tests::JWT_SECRET);
    let answer = rest.post("/rpc/wechat_sign_in", &json!({"code": code("ok", "damaged")}), None);
    assert_eq!((answer.status, &answer.body["code"]), (400, &json!("42703")), "{}", answer.body);
    assert_no_rust_internals(&answer.body.to_string());
}

fn the_breaker_fails_fast_then_probes() {
    let db = cluster().database(true);
    db.set("auth_wechat.timeout_ms", "200");
    db.set("auth_wechat.breaker_failures", "3");
    // A cool-down long enough that a call right after the breaker opens lands inside it, however
    // slow the machine; the waits for its end are that long too.
    db.set("auth_wechat.breaker_cooldown_ms", "3000");
    let attempt = |kind: &str| sign_in(&mut db.rest(), &code(kind, "brk"));
    for _ in 0..3 {
        assert_eq!(attempt("slow.1000").unwrap_err().status, 504);
    }
    let wechat_calls = calls(&db.sim_url(), LOGIN);
    let error = attempt("ok").unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (502, "wechat_unavailable"), "open: {error:?}");
    let left: u32 = error.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=3).contains(&left), "the cool-down left, rounded up: {left}");
    assert_eq!(calls(&db.sim_url(), LOGIN), wechat_calls, "an open breaker calls no one");

    std::thread::sleep(Duration::from_millis(3100));
    assert_eq!(attempt("slow.1000").unwrap_err().status, 504, "the probe goes through, and fails");
    assert_eq!(attempt("ok").unwrap_err().status, 502, "a failed probe opens the breaker again");
    assert_eq!(calls(&db.sim_url(), LOGIN), wechat_calls + 1);

    std::thread::sleep(Duration::from_millis(3100));
    attempt("ok").expect("a probe that WeChat answers closes the breaker");
    attempt("ok").expect("closed");
}
