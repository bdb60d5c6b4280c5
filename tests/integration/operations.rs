//! An operator's first week: read-only transactions and a hot standby, dump and restore, a
//! transaction pooler between PostgREST and the database.

use crate::{as_user, cluster, sign_in, trial};
use auth_wechat_tests::cluster::Owned;
use auth_wechat_tests::rest::{Caller, Rest};
use auth_wechat_tests::simstats::calls;
use auth_wechat_tests::{code, Cluster, RpcError};
use libtest_mimic::Trial;
use postgres::{Client, NoTls};
use serde_json::{json, Value};

pub fn tests() -> Vec<Trial> {
    vec![
        trial("operations::reads_take_no_transaction_id", reads_take_no_transaction_id),
        trial(
            "operations::a_standby_reads_and_refuses_writes_before_wechat",
            a_standby_reads_and_refuses_writes_before_wechat,
        ),
        trial("operations::dump_and_restore_in_one_pass", dump_and_restore_in_one_pass),
        trial("operations::behind_a_transaction_pooler", behind_a_transaction_pooler),
    ]
}

const LOGIN: &str = "/sns/jscode2session";
const PHONE: &str = "/wxa/business/getuserphonenumber";
const OAUTH: &str = "/sns/oauth2/access_token";

/// Every call that writes, each with what it needs to get as far as it can.
fn writing_calls(session: &Value) -> Vec<(&'static str, Value, Caller)> {
    vec![
        ("wechat_sign_in", json!({"code": code("ok", "reader")}), Caller::Anon),
        ("wechat_refresh_session", json!({"refresh_token": session["refresh_token"]}), Caller::Anon),
        ("wechat_bind_account", json!({"code": code("ok", "reader")}), as_user(session)),
        ("wechat_bind_phone", json!({"code": code("phone.86.13700000808", "")}), as_user(session)),
        ("wechat_sign_out", json!({}), as_user(session)),
        (
            "wechat_oauth_sign_in",
            json!({"code": code("userinfo", "reader"), "appid": auth_wechat_tests::OFFICIAL_ACCOUNT}),
            Caller::Anon,
        ),
        (
            "wechat_oauth_bind",
            json!({"code": code("userinfo", "reader"), "appid": auth_wechat_tests::OFFICIAL_ACCOUNT}),
            as_user(session),
        ),
        (
            "wechat_unlink_identity",
            json!({"identity_id": session["user"]["identities"][0]["identity_id"]}),
            as_user(session),
        ),
        (
            "wechat_move_identity",
            json!({"identity_id": session["user"]["identities"][0]["identity_id"], "to_user_id": session["user"]["id"]}),
            Caller::Claims(json!({"role": "service_role"})),
        ),
        (
            "wechat_import_users",
            json!({"source": "leancloud", "users": [{"objectId": "r1", "email": "reader@example.com"}]}),
            Caller::Claims(json!({"role": "service_role"})),
        ),
        ("wechat_scan_start", json!({}), Caller::Anon),
        ("wechat_scan_view", json!({"ticket": "A".repeat(22)}), as_user(session)),
        ("wechat_scan_confirm", json!({"ticket": "A".repeat(22)}), as_user(session)),
    ]
}

fn assert_read_only_refusal(function: &str, result: Result<Value, RpcError>) {
    let error = result.expect_err(function);
    assert_eq!(
        (error.status, error.sqlstate.as_str(), error.error_code().as_str()),
        (405, "25006", "read_only_transaction"),
        "{function}: {error:?}"
    );
}

/// In `BEGIN READ ONLY` (what PostgREST runs a GET in), `wechat_user` and `wechat_jwks` answer
/// without taking a transaction id; every call that writes is refused at once, before WeChat.
fn reads_take_no_transaction_id() {
    let db = cluster().database(true);
    let session = sign_in(&mut db.rest(), &code("ok", "reader")).unwrap();
    let mut client = Client::connect(&db.conninfo("authenticator"), NoTls).unwrap();
    let mut tx = client.build_transaction().read_only(true).start().unwrap();
    tx.execute(
        "SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', $1, true)",
        &[&crate::claims(&session).to_string()],
    )
    .unwrap();
    let user: Value = tx.query_one("SELECT auth.wechat_user()", &[]).unwrap().get(0);
    assert_eq!(user["id"], session["user"]["id"]);
    tx.query_one("SELECT auth.wechat_jwks()", &[]).unwrap();
    let xid: Option<String> = tx.query_one("SELECT pg_current_xact_id_if_assigned()::text", &[]).unwrap().get(0);
    assert_eq!(xid, None, "a read took a transaction id");
    tx.rollback().unwrap();

    let spent = calls(&db.sim_url(), LOGIN) + calls(&db.sim_url(), PHONE) + calls(&db.sim_url(), OAUTH);
    let mut rest = db.rest();
    rest.read_only();
    for (function, body, caller) in writing_calls(&session) {
        assert_read_only_refusal(function, rest.rpc(function, body, &caller));
    }
    let now = calls(&db.sim_url(), LOGIN) + calls(&db.sim_url(), PHONE) + calls(&db.sim_url(), OAUTH);
    assert_eq!(now, spent, "no code was spent");
}

/// A streaming replica of a cluster with users: `wechat_user` and `wechat_jwks` answer there as
/// on the primary; every call that writes answers 405 `read_only_transaction` before any WeChat
/// call, so a user's one-time code is not spent on a replica.
fn a_standby_reads_and_refuses_writes_before_wechat() {
    let primary = Owned::new(Cluster::start_with("primary", ""));
    let db = primary.0.database(true);
    let session = sign_in(&mut db.rest(), &code("ok", "replicated")).unwrap();
    let standby = Owned::new(primary.0.standby("standby"));
    let mut rest = Rest::connect(&standby.0.conninfo(&db.name, "authenticator"));
    // The standby has caught up once the session is there.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let user = loop {
        match rest.rpc("wechat_user", json!({}), &as_user(&session)) {
            Ok(user) => break user,
            Err(error) => assert!(std::time::Instant::now() < deadline, "the standby never answered: {error:?}"),
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(user, session["user"], "the same user JSON as on the primary");
    rest.rpc("wechat_jwks", json!({}), &Caller::Anon).expect("the JWKS on a standby");
    let spent = calls(&db.sim_url(), LOGIN) + calls(&db.sim_url(), PHONE) + calls(&db.sim_url(), OAUTH);
    for (function, body, caller) in writing_calls(&session) {
        assert_read_only_refusal(function, rest.rpc(function, body, &caller));
    }
    let now = calls(&db.sim_url(), LOGIN) + calls(&db.sim_url(), PHONE) + calls(&db.sim_url(), OAUTH);
    assert_eq!(now, spent, "no code was spent on the standby");
}

/// Runs one of PostgreSQL's client programs; its output, or a panic with its errors.
fn run(mut command: std::process::Command) -> Vec<u8> {
    let output = command.output().unwrap();
    assert!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// `pg_dump -Fc` restored by `pg_restore --exit-on-error`, and a plain dump through
/// `psql -v ON_ERROR_STOP=1 --single-transaction`, each into an empty database: both restore in
/// one pass (the dump creates the extension before GoTrue's tables), and there the restored
/// users sign in again as themselves and refresh tokens from before the dump still refresh.
fn dump_and_restore_in_one_pass() {
    let db = cluster().database(true);
    db.superuser().batch_execute("SELECT auth.wechat_expose()").unwrap();
    let ada = sign_in(&mut db.rest(), &code("ok", "ada")).unwrap();
    let ada = crate::refresh(&db, &crate::token(&ada)).unwrap();
    let bob = sign_in(&mut db.rest(), &code("union", "bob")).unwrap();
    let dir = std::env::temp_dir();
    let custom = dir.join(format!("auth_wechat_dump.{}.{}.custom", std::process::id(), db.name));
    let plain = dir.join(format!("auth_wechat_dump.{}.{}.sql", std::process::id(), db.name));
    let mut dump = db.cluster().client_program("pg_dump");
    dump.args(["-Fc", "-f"]).arg(&custom).args(["-d", &db.name]);
    run(dump);
    let mut dump = db.cluster().client_program("pg_dump");
    dump.arg("-f").arg(&plain).args(["-d", &db.name]);
    run(dump);

    for (how, file) in [("pg_restore", &custom), ("psql", &plain)] {
        let restored = cluster().database(false);
        let mut command = db.cluster().client_program(how);
        match how {
            "pg_restore" => command.args(["--exit-on-error", "-d", &restored.name]).arg(file),
            _ => command
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-d", &restored.name, "-f"])
                .arg(file),
        };
        run(command);
        let again = sign_in(&mut restored.rest(), &code("ok", "ada")).unwrap();
        assert_eq!(again["user"]["id"], ada["user"]["id"], "{how}: the same user for the same openid");
        assert_eq!(again["user"]["wechat_id"], ada["user"]["wechat_id"]);
        let refreshed = crate::refresh(&restored, &crate::token(&bob)).unwrap_or_else(|e| panic!("{how}: {e:?}"));
        assert_eq!(refreshed["user"]["id"], bob["user"]["id"], "{how}: a refresh token from before the dump");
        assert_eq!(refreshed["user"]["wechat_unionid"], bob["user"]["wechat_unionid"]);
        restored
            .rest()
            .rpc_in("public", "wechat_user", json!({}), &as_user(&refreshed))
            .expect("the wrappers came back");
    }
    let _ = std::fs::remove_file(&custom);
    let _ = std::fs::remove_file(&plain);
}

/// Behind PgBouncer in transaction mode (Supavisor's), PostgREST with `db-prepared-statements`
/// off: `NOTIFY pgrst` cannot reach PostgREST there (its LISTEN needs a session), so after
/// `wechat_expose` it learns of the functions only from SIGUSR1, as the README says; then eight
/// clients at once sign in, refresh, read themselves, bind a phone and sign out, five times each,
/// through three server connections, and every answer is the client's own.
fn behind_a_transaction_pooler() {
    use auth_wechat_tests::pgbouncer::PgBouncer;
    use auth_wechat_tests::postgrest::PostgRest;
    let db = cluster().database(true);
    let bouncer = PgBouncer::start(cluster().port(), &["authenticator"], 3);
    let uri = format!("postgres://authenticator@127.0.0.1:{}/{}", bouncer.port, db.name);
    let rest = std::sync::Arc::new(PostgRest::start_with(
        &uri,
        auth_wechat_tests::JWT_SECRET,
        &[("PGRST_DB_PREPARED_STATEMENTS", "false"), ("PGRST_DB_POOL", "8"), ("PGRST_DB_CHANNEL_ENABLED", "false")],
    ));
    db.superuser().batch_execute("SELECT auth.wechat_expose()").unwrap();
    let unknown = rest.post("/rpc/wechat_sign_in", &json!({"code": code("ok", "early")}), None);
    assert_eq!((unknown.status, &unknown.body["code"]), (404, &json!("PGRST202")), "{}", unknown.body);
    rest.reload_schema();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while rest.post("/rpc/wechat_jwks", &json!({}), None).status != 200 {
        assert!(std::time::Instant::now() < deadline, "PostgREST never reloaded: {}", rest.log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let clients: Vec<_> = (0..8)
        .map(|client| {
            let rest = std::sync::Arc::clone(&rest);
            std::thread::spawn(move || {
                let user = format!("pooled{client}");
                let mut user_id = Value::Null;
                for round in 0..5 {
                    let rpc = |function: &str, body: Value, token: Option<&str>| {
                        let answer = rest.post(&format!("/rpc/{function}"), &body, token);
                        assert_eq!(answer.status, 200, "{user} {function}: {}", answer.body);
                        answer.body
                    };
                    let session = rpc("wechat_sign_in", json!({"code": code("ok", &user)}), None);
                    assert_eq!(
                        session["user"]["wechat_id"],
                        wechat_sim::openid(auth_wechat_tests::APPID, &user).as_str()
                    );
                    if round == 0 {
                        user_id = session["user"]["id"].clone();
                    }
                    assert_eq!(session["user"]["id"], user_id, "{user}: always the same user");
                    let refreshed =
                        rpc("wechat_refresh_session", json!({"refresh_token": session["refresh_token"]}), None);
                    let token = refreshed["access_token"].as_str().unwrap().to_string();
                    assert_eq!(crate::claims(&refreshed)["sub"], user_id);
                    assert_eq!(rpc("wechat_user", json!({}), Some(&token))["id"], user_id);
                    let phone = format!("phone.86.137{client:04}{round:04}");
                    let bound = rpc("wechat_bind_phone", json!({"code": code(&phone, "")}), Some(&token));
                    assert_eq!(
                        (&bound["id"], bound["phone"].as_str()),
                        (&user_id, Some(format!("86137{client:04}{round:04}").as_str()))
                    );
                    assert_eq!(rpc("wechat_sign_out", json!({}), Some(&token))["sessions_ended"], 1);
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a client saw another's answer, or an error");
    }
    assert!(!bouncer.log().contains("ERROR"), "PgBouncer logged an error:\n{}", bouncer.log());
}
