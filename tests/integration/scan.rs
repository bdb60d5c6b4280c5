//! Scan-to-sign-in: a browser starts a ticket, the mini program's user views and confirms it, the
//! browser collects a session of its own, once.

use crate::{as_user, claims, cluster, sign_in, trial};
use auth_wechat_tests::postgrest::PostgRest;
use auth_wechat_tests::rest::Caller;
use auth_wechat_tests::simstats::{calls, set_qrcode_quota};
use auth_wechat_tests::{code, Rest, RpcError, TestDb, JWT_SECRET, LITE};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libtest_mimic::Trial;
use serde_json::{json, Value};

const QR: &str = "/wxa/getwxacodeunlimit";

pub fn tests() -> Vec<Trial> {
    vec![
        trial("scan::a_browser_signs_in_through_the_mini_program", a_browser_signs_in_through_the_mini_program),
        trial("scan::denied_and_expired_tickets", denied_and_expired_tickets),
        trial("scan::a_flood_of_starts_never_reaches_wechat", a_flood_of_starts_never_reaches_wechat),
        trial("scan::read_only_transactions_refuse_all_but_waiting", read_only_transactions_refuse_all_but_waiting),
        trial("scan::the_tickets_are_nobody_elses", the_tickets_are_nobody_elses),
        trial("scan::a_page_wechat_would_refuse_is_refused_first", a_page_wechat_would_refuse_is_refused_first),
        trial("scan::racing_scanners_and_pollers_get_one_answer_each", racing_scanners_and_pollers_get_one_answer_each),
        trial("scan::a_rolled_back_collect_stays_spent", a_rolled_back_collect_stays_spent),
        trial("scan::collected_tickets_free_their_marks", collected_tickets_free_their_marks),
        trial("scan::a_planted_ticket_table_is_refused", a_planted_ticket_table_is_refused),
    ]
}

fn start(rest: &mut Rest) -> Result<Value, RpcError> {
    rest.rpc("wechat_scan_start", json!({}), &Caller::Anon)
}

fn poll(rest: &mut Rest, started: &Value) -> Result<Value, RpcError> {
    rest.rpc(
        "wechat_scan_poll",
        json!({"ticket": started["ticket"], "poll_secret": started["poll_secret"]}),
        &Caller::Anon,
    )
}

fn view(rest: &mut Rest, started: &Value, caller: &Caller) -> Result<Value, RpcError> {
    rest.rpc("wechat_scan_view", json!({"ticket": started["ticket"]}), caller)
}

fn confirm(rest: &mut Rest, started: &Value, approve: bool, caller: &Caller) -> Result<Value, RpcError> {
    rest.rpc("wechat_scan_confirm", json!({"ticket": started["ticket"], "approve": approve}), caller)
}

fn status_of(error: RpcError) -> (u16, String) {
    (error.status, error.error_code())
}

fn count(db: &TestDb, sql: &str) -> i64 {
    db.superuser().query_one(sql, &[]).unwrap().get(0)
}

fn postgrest_uri(db: &TestDb) -> String {
    format!("postgres://authenticator@127.0.0.1:{}/{}", cluster().port(), db.name)
}

/// Through a real PostgREST: a browser's ticket, two users of the mini program (the first to
/// view it makes it theirs), the confirmation, and the browser's session, handed out once.
fn a_browser_signs_in_through_the_mini_program() {
    let db = cluster().database(true);
    db.superuser().batch_execute("SELECT auth.wechat_expose()").unwrap();
    // The gateway's header names the browser (the last address of the list: what it appended).
    db.set("auth_wechat.rate_limit_header", "x-forwarded-for");
    let rest = PostgRest::start(&postgrest_uri(&db), JWT_SECRET);
    let browser = [("User-Agent", "Mozilla/5.0 Chrome/131"), ("X-Forwarded-For", "198.51.100.66, 203.0.113.7")];
    let started = rest.post_with("/rpc/wechat_scan_start", &json!({}), None, &browser);
    assert_eq!(started.status, 200, "{}", started.body);
    let started = started.body;
    let ticket = started["ticket"].as_str().unwrap();
    let secret = started["poll_secret"].as_str().unwrap();
    assert_eq!(ticket.len(), 22, "128 bits of base64url");
    assert!(ticket.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{ticket}");
    assert_ne!(ticket, secret);
    assert_eq!(started["expires_in"], 120);
    let image = STANDARD.decode(started["qrcode"].as_str().unwrap()).unwrap();
    assert!(image.starts_with(&[0xFF, 0xD8, 0xFF]), "a JPEG");
    assert!(image.windows(22).any(|w| w == ticket.as_bytes()), "the code's scene is the ticket");
    assert!(!image.windows(secret.len()).any(|w| w == secret.as_bytes()), "the secret is in no code");
    let poll_body = json!({"ticket": ticket, "poll_secret": secret});
    let polled = rest.get(&format!("/rpc/wechat_scan_poll?ticket={ticket}&poll_secret={secret}"), None);
    assert_eq!((polled.status, polled.body["status"].as_str()), (200, Some("pending")), "a GET may poll");

    let signed_in = |user: &str| {
        let answer = rest.post("/rpc/wechat_sign_in", &json!({"code": code("ok", user)}), None);
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.body
    };
    let (ann, bob) = (signed_in("ann"), signed_in("bob"));
    let bearer = |session: &Value| session["access_token"].as_str().unwrap().to_string();
    let ticket_body = json!({"ticket": ticket});

    let viewed = rest.post("/rpc/wechat_scan_view", &ticket_body, Some(&bearer(&ann)));
    assert_eq!(viewed.status, 200, "{}", viewed.body);
    assert_eq!(viewed.body["client_address"], "203.0.113.7", "who asked: {}", viewed.body);
    assert_eq!(viewed.body["user_agent"], "Mozilla/5.0 Chrome/131");
    assert!(viewed.body["expires_in"].as_i64().is_some_and(|s| (100..=120).contains(&s)), "{}", viewed.body);
    let again = rest.post("/rpc/wechat_scan_view", &ticket_body, Some(&bearer(&ann)));
    assert_eq!(again.status, 200, "the scanner may view it again: {}", again.body);
    let polled = rest.post("/rpc/wechat_scan_poll", &poll_body, None);
    assert_eq!(polled.body, json!({"status": "scanned"}), "nothing of the scanner before they confirm");

    let error_code = |answer: &auth_wechat_tests::postgrest::Answer| {
        let details: Value = serde_json::from_str(answer.body["details"].as_str().unwrap_or("{}")).unwrap();
        (answer.status, details["error_code"].as_str().unwrap_or_default().to_string())
    };
    let taken = rest.post("/rpc/wechat_scan_view", &ticket_body, Some(&bearer(&bob)));
    assert_eq!(error_code(&taken), (409, "scan_ticket_claimed".into()), "{}", taken.body);
    let not_his = rest.post("/rpc/wechat_scan_confirm", &ticket_body, Some(&bearer(&bob)));
    assert_eq!(error_code(&not_his), (403, "scan_ticket_not_scanner".into()), "{}", not_his.body);
    let anonymous = rest.post("/rpc/wechat_scan_confirm", &ticket_body, None);
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    let wrong = rest.post("/rpc/wechat_scan_poll", &json!({"ticket": ticket, "poll_secret": "x".repeat(43)}), None);
    assert_eq!(error_code(&wrong), (404, "scan_ticket_not_found".into()), "{}", wrong.body);

    let confirmed = rest.post("/rpc/wechat_scan_confirm", &ticket_body, Some(&bearer(&ann)));
    assert_eq!((confirmed.status, &confirmed.body), (200, &json!({"status": "confirmed"})));
    let twice = rest.post("/rpc/wechat_scan_confirm", &ticket_body, Some(&bearer(&ann)));
    assert_eq!(error_code(&twice), (409, "scan_ticket_decided".into()), "{}", twice.body);
    let unknown = rest.post("/rpc/wechat_scan_poll", &json!({"ticket": "A".repeat(22), "poll_secret": secret}), None);
    assert_eq!(error_code(&unknown), error_code(&wrong), "an unknown ticket answers as a wrong secret does");

    let sessions_before = count(&db, "SELECT count(*) FROM auth.sessions");
    let session = rest.post("/rpc/wechat_scan_poll", &poll_body, None);
    assert_eq!(session.status, 200, "{}", session.body);
    let session = session.body;
    assert_eq!(session["user"]["id"], ann["user"]["id"], "the user who confirmed");
    assert_eq!(session["token_type"], "bearer");
    let minted = claims(&session);
    assert_eq!(minted["amr"][0]["method"], "oauth");
    assert_ne!(minted["session_id"], claims(&ann)["session_id"], "the browser's own session");
    assert_eq!(count(&db, "SELECT count(*) FROM auth.sessions"), sessions_before + 1);
    let logins = count(
        &db,
        &format!(
            "SELECT count(*) FROM auth.audit_log_entries WHERE payload ->> 'action' = 'login'
                AND payload ->> 'actor_id' = '{}' AND payload -> 'traits' ->> 'provider' = 'wechat_scan'",
            ann["user"]["id"].as_str().unwrap()
        ),
    );
    assert_eq!(logins, 1);
    let refreshed = rest.post("/rpc/wechat_refresh_session", &json!({"refresh_token": session["refresh_token"]}), None);
    assert_eq!(refreshed.status, 200, "an ordinary session: {}", refreshed.body);

    let replayed = rest.post("/rpc/wechat_scan_poll", &poll_body, None);
    assert_eq!(error_code(&replayed), (404, "scan_ticket_not_found".into()), "once: {}", replayed.body);
    assert_eq!(count(&db, "SELECT count(*) FROM auth.sessions"), sessions_before + 1);
}

/// A denied ticket stays denied; an expired one can be neither viewed nor confirmed, and its
/// poll says so; expired rows are swept by later starts.
fn denied_and_expired_tickets() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let ann = as_user(&sign_in(&mut rest, &code("ok", "ann")).unwrap());
    let started = start(&mut rest).unwrap();
    view(&mut rest, &started, &ann).unwrap();
    assert_eq!(confirm(&mut rest, &started, false, &ann).unwrap(), json!({"status": "denied"}));
    assert_eq!(poll(&mut rest, &started).unwrap(), json!({"status": "denied"}));
    assert_eq!(status_of(confirm(&mut rest, &started, true, &ann).unwrap_err()), (409, "scan_ticket_decided".into()));
    assert_eq!(status_of(view(&mut rest, &started, &ann).unwrap_err()), (409, "scan_ticket_decided".into()));

    // A confirmation stands only while the session it was given in lives: signed out, it is
    // withdrawn.
    let started = start(&mut rest).unwrap();
    view(&mut rest, &started, &ann).unwrap();
    confirm(&mut rest, &started, true, &ann).unwrap();
    rest.rpc("wechat_sign_out", json!({}), &ann).unwrap();
    assert_eq!(poll(&mut rest, &started).unwrap(), json!({"status": "denied"}));
    assert_eq!(poll(&mut rest, &started).unwrap(), json!({"status": "denied"}), "and stays so");

    // Confirming mints a session from claims: it needs a sign-in within 10 minutes even with
    // bind_requires_sign_in_within off; denying does not.
    db.set("auth_wechat.bind_requires_sign_in_within", "0");
    let mut rest = db.rest();
    let old = as_user(&sign_in(&mut rest, &code("ok", "old")).unwrap());
    db.superuser()
        .batch_execute(
            "UPDATE auth.sessions SET created_at = created_at - interval '11 minutes';
             UPDATE auth.mfa_amr_claims SET updated_at = updated_at - interval '11 minutes'",
        )
        .unwrap();
    let started = start(&mut rest).unwrap();
    view(&mut rest, &started, &old).expect("any live session may view");
    let stale = confirm(&mut rest, &started, true, &old).unwrap_err();
    assert_eq!(status_of(stale), (400, "reauthentication_needed".into()));
    assert_eq!(confirm(&mut rest, &started, false, &old).unwrap(), json!({"status": "denied"}));

    db.set("auth_wechat.scan_ttl", "1");
    let mut rest = db.rest();
    let ann = as_user(&sign_in(&mut rest, &code("ok", "ann")).unwrap());
    let short = start(&mut rest).unwrap();
    let viewed = start(&mut rest).unwrap();
    view(&mut rest, &viewed, &ann).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(status_of(view(&mut rest, &short, &ann).unwrap_err()), (410, "scan_ticket_expired".into()));
    assert_eq!(status_of(confirm(&mut rest, &viewed, true, &ann).unwrap_err()), (410, "scan_ticket_expired".into()));
    assert_eq!(poll(&mut rest, &short).unwrap(), json!({"status": "expired"}));
    assert_eq!(poll(&mut rest, &viewed).unwrap(), json!({"status": "expired"}));

    // Five minutes past their expiry, a start sweeps them away.
    db.superuser()
        .batch_execute("UPDATE auth.wechat_scan_tickets SET expires_at = now() - interval '6 minutes'")
        .unwrap();
    start(&mut rest).unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM auth.wechat_scan_tickets"), 1, "only the new ticket is left");
    assert_eq!(status_of(poll(&mut rest, &short).unwrap_err()), (404, "scan_ticket_not_found".into()));
}

fn start_from(db: &TestDb, client: &str) -> Result<Value, RpcError> {
    start_for(db, client, None)
}

/// A start by `client` for the mini program `appid` (none: the default one).
fn start_for(db: &TestDb, client: &str, appid: Option<&str>) -> Result<Value, RpcError> {
    let headers = json!({"user-agent": "flood", "x-real-ip": client});
    db.rest().rpc_with_headers("auth", "wechat_scan_start", json!({"appid": appid}), &Caller::Anon, headers)
}

/// Starts past a client's budget, the app's, or the bound on waiting tickets are refused with 429
/// and `Retry-After` before WeChat is called; WeChat's own quota answers 429 too.
fn a_flood_of_starts_never_reaches_wechat() {
    let db = cluster().database(true);
    db.set("auth_wechat.rate_limit_header", "x-real-ip");
    for _ in 0..3 {
        start_from(&db, "198.51.100.1").expect("a burst of 3");
    }
    let made = calls(&db.sim_url(), QR);
    let refused = start_from(&db, "198.51.100.1").unwrap_err();
    assert_eq!((refused.status, refused.error_code().as_str()), (429, "over_request_rate_limit"), "{refused:?}");
    let retry_after: u32 = refused.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=12).contains(&retry_after), "a code every 12 s at 5 a minute: {retry_after}");
    assert_eq!(calls(&db.sim_url(), QR), made, "refused before WeChat");
    start_from(&db, "198.51.100.2").expect("another client has its own budget");

    // The app's budget is the cluster's (WeChat's quota is the app's): a mini program no other
    // test starts tickets for.
    db.set("auth_wechat.scan_rate_per_client", "0");
    db.set("auth_wechat.scan_rate", "12");
    start_for(&db, "198.51.100.3", Some(LITE)).expect("two at once for the app");
    start_for(&db, "198.51.100.4", Some(LITE)).expect("two at once for the app");
    let made = calls(&db.sim_url(), QR);
    let refused = start_for(&db, "198.51.100.5", Some(LITE)).unwrap_err();
    assert_eq!(refused.status, 429, "the app's budget: {refused:?}");
    assert_eq!(calls(&db.sim_url(), QR), made);

    db.set("auth_wechat.scan_rate", "0");
    let waiting = count(&db, "SELECT count(*) FROM auth.wechat_scan_tickets");
    db.set("auth_wechat.scan_max_pending", &waiting.to_string());
    let refused = start_from(&db, "198.51.100.6").unwrap_err();
    assert_eq!(refused.status, 429, "the bound on waiting tickets: {refused:?}");
    assert!(refused.header("retry-after").is_some());
    assert_eq!(calls(&db.sim_url(), QR), made);
    assert_eq!(count(&db, "SELECT count(*) FROM auth.wechat_scan_tickets"), waiting, "nothing written");

    db.set("auth_wechat.scan_max_pending", "10000");
    set_qrcode_quota(&db.sim_url(), 0);
    let refused = start_from(&db, "198.51.100.7").unwrap_err();
    assert_eq!((refused.status, refused.error_code().as_str()), (429, "over_request_rate_limit"), "{refused:?}");
    assert_eq!(refused.detail_json()["wechat_errcode"], 45009);
    assert_eq!(count(&db, "SELECT count(*) FROM auth.wechat_scan_tickets"), waiting, "no ticket without a code");
}

/// PostgREST's GET (a read-only transaction) refuses start, view and confirm before anything is
/// spent; a poll reads, until it would make the session.
fn read_only_transactions_refuse_all_but_waiting() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let ann = as_user(&sign_in(&mut rest, &code("ok", "ann")).unwrap());
    let started = start(&mut rest).unwrap();
    let made = calls(&db.sim_url(), QR);
    let mut get = db.rest();
    get.read_only();
    let read_only = (405, "read_only_transaction".to_string());
    assert_eq!(status_of(start(&mut get).unwrap_err()), read_only);
    assert_eq!(calls(&db.sim_url(), QR), made, "no code asked for");
    assert_eq!(status_of(view(&mut get, &started, &ann).unwrap_err()), read_only);
    assert_eq!(poll(&mut get, &started).unwrap(), json!({"status": "pending"}));
    view(&mut rest, &started, &ann).unwrap();
    assert_eq!(status_of(confirm(&mut get, &started, true, &ann).unwrap_err()), read_only);
    confirm(&mut rest, &started, true, &ann).unwrap();
    assert_eq!(status_of(poll(&mut get, &started).unwrap_err()), read_only, "making the session writes");
    let session = poll(&mut rest, &started).unwrap();
    assert!(session["access_token"].is_string(), "{session}");
}

/// Only the extension's functions read the tickets: the API roles cannot, even the service
/// role; nothing of a poll secret is stored but its hash. The table is the auth schema's, like
/// the extension's columns.
fn the_tickets_are_nobody_elses() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let started = start(&mut rest).unwrap();
    let secret = started["poll_secret"].as_str().unwrap();
    for role in ["anon", "authenticated", "service_role"] {
        let mut client = db.rest();
        let denied = client
            .client()
            .batch_execute(&format!("SET ROLE {role}; SELECT * FROM auth.wechat_scan_tickets"))
            .unwrap_err();
        let message = denied.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
        assert!(message.contains("permission denied"), "{role}: {denied:?}");
    }
    let stored: String =
        db.superuser().query_one("SELECT t::text FROM auth.wechat_scan_tickets t", &[]).unwrap().get(0);
    assert!(!stored.contains(secret), "the secret is stored only as a hash: {stored}");
    let log = cluster().log();
    assert!(!log.contains(secret), "nor logged");
    let members: i64 = count(
        &db,
        "SELECT count(*) FROM pg_depend WHERE classid = 'pg_class'::regclass
            AND objid = 'auth.wechat_scan_tickets'::regclass AND deptype = 'e'",
    );
    assert_eq!(members, 0, "not the extension's member: DROP EXTENSION leaves it, pg_dump keeps it");
}

/// `auth_wechat.scan_page` and `page` are checked as WeChat would, before anything is spent; the
/// settings check names a bad `scan_page`; a page WeChat does not know is WeChat's 400.
fn a_page_wechat_would_refuse_is_refused_first() {
    let db = cluster().database(true);
    db.set("auth_wechat.scan_page", "/pages/scan/scan");
    let report: Value = db.superuser().query_one("SELECT auth.wechat_check_settings()", &[]).unwrap().get(0);
    assert!(report["problems"].as_array().unwrap().iter().any(|p| p["setting"] == "auth_wechat.scan_page"), "{report}");
    let mut rest = db.rest();
    assert_eq!(status_of(start(&mut rest).unwrap_err()), (400, "validation_failed".into()));
    assert_eq!(calls(&db.sim_url(), QR), 0, "refused before WeChat");
    let page = rest.rpc("wechat_scan_start", json!({"page": "pages/index/index"}), &Caller::Anon).unwrap();
    assert!(page["ticket"].is_string(), "the argument wins over the setting");
    let unknown = rest.rpc("wechat_scan_start", json!({"page": "pages/unreleased/unreleased"}), &Caller::Anon);
    assert_eq!(status_of(unknown.unwrap_err()), (400, "wechat_invalid_argument".into()));
}

/// A poll that collects in a transaction its caller rolls back puts the ticket back, but not the
/// session: the ticket was handed out once, and the next poll finds nothing.
fn a_rolled_back_collect_stays_spent() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let ann = as_user(&sign_in(&mut rest, &code("ok", "ann")).unwrap());
    let started = start(&mut rest).unwrap();
    view(&mut rest, &started, &ann).unwrap();
    confirm(&mut rest, &started, true, &ann).unwrap();
    let mut client = db.rest();
    let mut tx = client.client().transaction().unwrap();
    tx.batch_execute("SET LOCAL ROLE anon").unwrap();
    let session: Value = tx
        .query_one(
            "SELECT auth.wechat_scan_poll($1, $2)",
            &[&started["ticket"].as_str().unwrap(), &started["poll_secret"].as_str().unwrap()],
        )
        .unwrap()
        .get(0);
    assert!(session["access_token"].is_string(), "{session}");
    tx.rollback().unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM auth.wechat_scan_tickets"), 1, "the row came back");
    assert_eq!(status_of(poll(&mut rest, &started).unwrap_err()), (404, "scan_ticket_not_found".into()));

    // A savepoint rolled back in a transaction that commits puts the row back too.
    let started = start(&mut rest).unwrap();
    view(&mut rest, &started, &ann).unwrap();
    confirm(&mut rest, &started, true, &ann).unwrap();
    let mut tx = client.client().transaction().unwrap();
    tx.batch_execute("SET LOCAL ROLE anon; SAVEPOINT before_poll").unwrap();
    let args = [&started["ticket"].as_str().unwrap(), &started["poll_secret"].as_str().unwrap()];
    let session: Value = tx.query_one("SELECT auth.wechat_scan_poll($1, $2)", &[args[0], args[1]]).unwrap().get(0);
    assert!(session["access_token"].is_string(), "{session}");
    tx.batch_execute("ROLLBACK TO SAVEPOINT before_poll").unwrap();
    tx.commit().unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM auth.wechat_scan_tickets"), 2, "the row came back");
    assert_eq!(status_of(poll(&mut rest, &started).unwrap_err()), (404, "scan_ticket_not_found".into()));
}

/// A collect that commits needs its mark no longer: more tickets than the 4096 marks shared
/// memory holds are collected one after another, each in a transaction of its own. (Kept until
/// their tickets expired, the marks filled their buckets and polls were refused with 429.) The
/// tickets are written straight into the table, confirmed by one signed-in user.
fn collected_tickets_free_their_marks() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let ann = sign_in(&mut rest, &code("ok", "ann")).unwrap();
    start(&mut rest).unwrap();
    let tickets = 4200;
    db.superuser()
        .execute(
            "INSERT INTO auth.wechat_scan_tickets
                 (ticket, poll_hash, appid, created_at, expires_at, status, user_id, session_id, scanned_at, decided_at)
             SELECT pg_catalog.lpad(i::text, 22, 'T'), sha256(convert_to('secret-' || i, 'UTF8')), 'wx', now(),
                    now() + interval '10 minutes', 'confirmed', $1::text::uuid, $2::text::uuid, now(), now()
               FROM generate_series(1, $3::int) i",
            &[&ann["user"]["id"].as_str().unwrap(), &claims(&ann)["session_id"].as_str().unwrap(), &tickets],
        )
        .unwrap();
    let mut client = db.rest();
    client.client().batch_execute("SET ROLE anon").unwrap();
    for i in 1..=tickets {
        let ticket = format!("{i:T>22}");
        let session: Value = client
            .client()
            .query_one("SELECT auth.wechat_scan_poll($1, $2)", &[&ticket, &format!("secret-{i}")])
            .unwrap_or_else(|e| panic!("collect {i}: {e:?}"))
            .get(0);
        assert!(session["access_token"].is_string(), "collect {i}: {session}");
    }
    assert_eq!(count(&db, "SELECT count(*) FROM auth.wechat_scan_tickets WHERE status = 'confirmed'"), 0);
}

/// A relation planted under the tickets' name before the first start (here by `postgres`, a
/// member of the auth tables' owner, open to every user) is refused, not used.
fn a_planted_ticket_table_is_refused() {
    let db = cluster().database(true);
    db.postgres()
        .batch_execute(
            "CREATE TABLE auth.wechat_scan_tickets (ticket text PRIMARY KEY, poll_hash bytea, appid text,
                 client_address text, user_agent text, created_at timestamptz, expires_at timestamptz, status text,
                 user_id uuid, session_id uuid, scanned_at timestamptz, decided_at timestamptz);
             GRANT ALL ON auth.wechat_scan_tickets TO authenticated;",
        )
        .unwrap();
    let mut rest = db.rest();
    let refused = start(&mut rest).unwrap_err();
    assert_eq!(status_of(refused.clone()), (500, "configuration_invalid".into()), "{refused:?}");
    assert!(refused.all_text().contains("auth.wechat_scan_tickets"), "{refused:?}");
    assert_eq!(calls(&db.sim_url(), QR), 0, "refused before WeChat");
    db.superuser().batch_execute("DROP TABLE auth.wechat_scan_tickets").unwrap();
    assert!(start(&mut rest).unwrap()["ticket"].is_string(), "made anew once dropped");
}

/// A call made on a connection of its own, in a race with another.
type Racer = Box<dyn FnOnce(&mut Rest) -> Result<Value, RpcError> + Send>;

/// Two users viewing one ticket at once: one makes it theirs, the other hears 409. Two polls of a
/// confirmed ticket at once: one session, one 404. Each round on fresh connections, released
/// together.
fn racing_scanners_and_pollers_get_one_answer_each() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let ann = as_user(&sign_in(&mut rest, &code("ok", "ann")).unwrap());
    let bob = as_user(&sign_in(&mut rest, &code("ok", "bob")).unwrap());
    for _ in 0..5 {
        let started = start(&mut rest).unwrap();
        let race = |calls: [Racer; 2]| {
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
            let handles: Vec<_> = calls
                .into_iter()
                .map(|call| {
                    let (barrier, mut rest) = (barrier.clone(), db.rest());
                    std::thread::spawn(move || {
                        barrier.wait();
                        call(&mut rest)
                    })
                })
                .collect();
            let mut results: Vec<Result<Value, RpcError>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            results.sort_by_key(|r| r.is_err());
            results
        };
        let (s1, s2, a, b) = (started.clone(), started.clone(), ann.clone(), bob.clone());
        let viewed = race([Box::new(move |r| view(r, &s1, &a)), Box::new(move |r| view(r, &s2, &b))]);
        assert!(viewed[0].is_ok(), "{viewed:?}");
        let loser = viewed[1].as_ref().unwrap_err();
        assert_eq!((loser.status, loser.error_code().as_str()), (409, "scan_ticket_claimed"));
        let scanner = [&ann, &bob].into_iter().find(|c| confirm(&mut rest, &started, true, c).is_ok()).cloned();
        assert!(scanner.is_some(), "the scanner confirms");
        let (p1, p2) = (started.clone(), started.clone());
        let polled = race([Box::new(move |r| poll(r, &p1)), Box::new(move |r| poll(r, &p2))]);
        assert!(polled[0].as_ref().is_ok_and(|s| s["access_token"].is_string()), "{polled:?}");
        let loser = polled[1].as_ref().unwrap_err();
        assert_eq!((loser.status, loser.error_code().as_str()), (404, "scan_ticket_not_found"), "once");
    }
}
