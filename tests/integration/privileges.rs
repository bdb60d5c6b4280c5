//! Supabase's role model: code that a non-superuser can create never runs with the extension
//! owner's (a superuser's) rights. `postgres` here is Supabase's: not a superuser, but a member of
//! `supabase_auth_admin`, which owns the auth schema and tables.

use crate::planted::spied;
use crate::{as_user, cluster, sign_in, token, trial};
use auth_wechat_tests::cluster::{GOTRUE_SCHEMA, SUPABASE_ROLES};
use auth_wechat_tests::rest::Caller;
use auth_wechat_tests::simstats::calls;
use auth_wechat_tests::{code, TestDb};
use libtest_mimic::Trial;
use postgres::Client;
use serde_json::json;
use std::time::Duration;

pub fn tests() -> Vec<Trial> {
    vec![
        trial("privileges::code_on_the_auth_tables_runs_as_their_owner", code_on_the_auth_tables_runs_as_their_owner),
        trial("privileges::install_calls_nothing_planted_in_auth", install_calls_nothing_planted_in_auth),
        trial("privileges::the_hook_checked_is_the_hook_called", the_hook_checked_is_the_hook_called),
        trial("privileges::a_hook_of_postgres_runs_as_the_tables_owner", a_hook_of_postgres_runs_as_the_tables_owner),
        trial("privileges::expose_replaces_nothing_slipped_in", expose_replaces_nothing_slipped_in),
        trial(
            "privileges::settings_changed_by_the_owners_code_do_not_outlive_it",
            settings_changed_by_the_owners_code_do_not_outlive_it,
        ),
        trial(
            "privileges::a_session_level_setting_never_reaches_the_next_request",
            a_session_level_setting_never_reaches_the_next_request,
        ),
    ]
}

fn is_superuser(db: &TestDb, role: &str) -> bool {
    db.superuser().query_one("SELECT rolsuper FROM pg_roles WHERE rolname = $1", &[&role]).unwrap().get(0)
}

/// What `postgres` plants: `public.spy(via)` records who runs it (and whether a superuser), then
/// tries to make `postgres` a superuser. The log is rolled back with its transaction; the two
/// sequences are not (a superuser's `COPY … TO PROGRAM` would not be either): `spy_runs` counts
/// every run, `spy_super_runs` those as a superuser.
pub const SPY: &str = "
    CREATE TABLE public.spy_log (who name, super boolean, via text);
    GRANT ALL ON public.spy_log TO PUBLIC;
    CREATE SEQUENCE public.spy_runs;
    CREATE SEQUENCE public.spy_super_runs;
    GRANT USAGE ON SEQUENCE public.spy_runs, public.spy_super_runs TO PUBLIC;
    CREATE FUNCTION public.spy(via text) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
    BEGIN
        PERFORM nextval('public.spy_runs');
        IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
            PERFORM nextval('public.spy_super_runs');
        END IF;
        INSERT INTO public.spy_log SELECT current_user, rolsuper, via FROM pg_roles WHERE rolname = current_user;
        BEGIN
            ALTER ROLE postgres SUPERUSER;
        EXCEPTION WHEN insufficient_privilege THEN NULL;
        END;
        RETURN via;
    END $$;
    CREATE FUNCTION public.spy_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM public.spy(TG_TABLE_NAME);
        RETURN NULL;
    END $$;
    -- Volatility is no barrier: an index expression may call a volatile function through an
    -- immutable one.
    CREATE FUNCTION public.spy_immutable(t text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
    BEGIN
        PERFORM public.spy('index');
        RETURN t;
    END $$;";

fn code_on_the_auth_tables_runs_as_their_owner() {
    let db = cluster().database(true);
    let mut postgres = db.postgres();
    assert!(!is_superuser(&db, "postgres"));
    postgres.batch_execute(SPY).unwrap();
    crate::planted::plant_on_the_tables(&db);
    postgres.batch_execute("DELETE FROM public.spy_log").unwrap();

    let mut rest = db.rest();
    let session = sign_in(&mut rest, &code("ok", "mallory")).unwrap();
    let refreshed =
        rest.rpc("wechat_refresh_session", json!({"refresh_token": token(&session)}), &Caller::Anon).unwrap();
    rest.rpc("wechat_bind_phone", json!({"code": code("phone.86.13700000099", "")}), &as_user(&refreshed)).unwrap();
    rest.rpc("wechat_sign_out", json!({"scope": "global"}), &as_user(&refreshed)).unwrap();

    assert!(!is_superuser(&db, "postgres"), "an anonymous sign-in made postgres a superuser");
    let runs: Vec<(String, bool, String)> = db
        .superuser()
        .query("SELECT who::text, super, via FROM public.spy_log", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let vias: std::collections::BTreeSet<&str> = runs.iter().map(|r| r.2.as_str()).collect();
    for via in ["users", "identities", "sessions", "refresh_tokens", "mfa_amr_claims", "audit_log_entries"]
        .into_iter()
        .chain(["default", "check", "index", "rule"])
    {
        assert!(vias.contains(via), "the planted code ran through {via}: {vias:?}");
    }
    for (who, superuser, via) in &runs {
        assert_eq!((who.as_str(), *superuser), ("supabase_auth_admin", false), "{via} ran as {who}");
    }
}

fn install_calls_nothing_planted_in_auth() {
    let db = cluster().database(false);
    let mut admin = db.superuser();
    admin.batch_execute(GOTRUE_SCHEMA).unwrap();
    admin.batch_execute(SUPABASE_ROLES).unwrap();
    // postgres may create functions in auth (it is a member of the schema's owner). Functions that
    // match the install script's calls better than pg_catalog's: format(text, text, text) beats
    // the variadic pg_catalog.format, and so on.
    let mut postgres = db.postgres();
    postgres.batch_execute(SPY).unwrap();
    postgres
        .batch_execute(
            "CREATE FUNCTION auth.format(a text, b text, c text) RETURNS text LANGUAGE plpgsql AS $$
             BEGIN PERFORM public.spy('format'); RETURN pg_catalog.format(a, b, c); END $$;
             CREATE FUNCTION auth.format(a text, b text) RETURNS text LANGUAGE plpgsql AS $$
             BEGIN PERFORM public.spy('format'); RETURN pg_catalog.format(a, b); END $$;
             CREATE FUNCTION auth.to_regclass(t character varying) RETURNS regclass LANGUAGE plpgsql AS $$
             BEGIN PERFORM public.spy('to_regclass'); RETURN pg_catalog.to_regclass(t::text); END $$;
             CREATE FUNCTION auth.unnest(a character varying[]) RETURNS SETOF text LANGUAGE plpgsql AS $$
             BEGIN PERFORM public.spy('unnest'); RETURN QUERY SELECT pg_catalog.unnest(a::text[]); END $$;
             CREATE FUNCTION auth.ne(a character varying, b character varying) RETURNS boolean LANGUAGE plpgsql
             IMMUTABLE AS $$ BEGIN PERFORM public.spy('operator'); RETURN a::text <> b::text; END $$;
             CREATE OPERATOR auth.<> (FUNCTION = auth.ne, LEFTARG = character varying, RIGHTARG = character varying);",
        )
        .unwrap();
    admin.batch_execute("CREATE EXTENSION auth_wechat").unwrap();
    let ran: i64 = admin.query_one("SELECT count(*) FROM public.spy_log", &[]).unwrap().get(0);
    assert_eq!(ran, 0, "CREATE EXTENSION called a function planted in schema auth");
    assert!(!is_superuser(&db, "postgres"));
    let index: String =
        admin.query_one("SELECT pg_get_indexdef('auth.users_wechat_id_key'::regclass)", &[]).unwrap().get(0);
    assert!(!index.contains("OPERATOR(auth."), "the index predicate uses a planted operator: {index}");
    // And the extension works, without the planted code ever running.
    sign_in(&mut db.rest(), &code("ok", "oscar")).unwrap();
    let ran: i64 = admin.query_one("SELECT count(*) FROM public.spy_log", &[]).unwrap().get(0);
    assert_eq!(ran, 0);
}

fn set_hook(db: &TestDb, name: &str) {
    db.set("auth_wechat.access_token_hook", name);
}

fn the_hook_checked_is_the_hook_called() {
    let db = cluster().database(true);
    // A superuser's hook, and another role's function whose name differs only in case.
    db.superuser()
        .batch_execute(
            r#"CREATE FUNCTION public.myhook(event jsonb) RETURNS jsonb LANGUAGE sql AS $$
                   SELECT jsonb_build_object('claims', event -> 'claims' || '{"hook": "superuser"}')
               $$;
               GRANT CREATE ON SCHEMA public TO plain_user;"#,
        )
        .unwrap();
    let mut plain = Client::connect(&db.conninfo("plain_user"), postgres::NoTls).unwrap();
    plain
        .batch_execute(
            r#"CREATE FUNCTION public."MyHook"(event jsonb) RETURNS jsonb LANGUAGE sql AS $$
                   SELECT jsonb_build_object('claims', event -> 'claims' || '{"hook": "plain_user"}')
               $$;"#,
        )
        .unwrap();

    set_hook(&db, "public.MyHook");
    let error = sign_in(&mut db.rest(), &code("ok", "peggy")).unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (500, "unexpected_failure"));
    assert!(error.message.contains("must be owned by"), "{}", error.message);

    set_hook(&db, "public.myhook");
    let session = sign_in(&mut db.rest(), &code("ok", "peggy")).unwrap();
    assert_eq!(crate::claims(&session)["hook"], "superuser");

    set_hook(&db, "public.MYHOOK");
    let error = sign_in(&mut db.rest(), &code("ok", "peggy")).unwrap_err();
    assert!(error.message.contains("does not exist"), "names are case-sensitive: {}", error.message);
}

fn a_hook_of_postgres_runs_as_the_tables_owner() {
    let db = cluster().database(true);
    // As Supabase's docs have it: postgres writes the hook and lets supabase_auth_admin run it.
    db.postgres()
        .batch_execute(
            r#"CREATE FUNCTION public.custom_access_token_hook(event jsonb) RETURNS jsonb LANGUAGE sql AS $$
                   SELECT jsonb_build_object('claims', event -> 'claims' || jsonb_build_object('ran_as', current_user))
               $$;
               REVOKE ALL ON FUNCTION public.custom_access_token_hook(jsonb) FROM PUBLIC;
               GRANT EXECUTE ON FUNCTION public.custom_access_token_hook(jsonb) TO supabase_auth_admin;"#,
        )
        .unwrap();
    set_hook(&db, "public.custom_access_token_hook");
    let session = sign_in(&mut db.rest(), &code("ok", "quinn")).unwrap();
    assert_eq!(crate::claims(&session)["ran_as"], "supabase_auth_admin");

    // Without EXECUTE for the tables' owner it is refused, as GoTrue would fail to call it.
    db.postgres()
        .batch_execute("REVOKE EXECUTE ON FUNCTION public.custom_access_token_hook(jsonb) FROM supabase_auth_admin")
        .unwrap();
    let error = sign_in(&mut db.rest(), &code("ok", "quinn")).unwrap_err();
    assert!(error.message.contains("not executable"), "{}", error.message);
}

/// `postgres` owns schema `public` (as on Supabase), so it may drop the wrapper that
/// `wechat_expose` made there and put its own in its place, while `wechat_expose` runs.
fn expose_replaces_nothing_slipped_in() {
    let db = cluster().database(true);
    let mut admin = db.superuser();
    admin.query("SELECT auth.wechat_expose()", &[]).unwrap();
    let mut attacker = db.postgres();
    let mut swap = attacker.transaction().unwrap();
    swap.batch_execute(
        "DROP FUNCTION public.wechat_sign_in(text, text);
         CREATE FUNCTION public.wechat_sign_in(code text, appid text DEFAULT NULL) RETURNS jsonb LANGUAGE sql
             AS 'SELECT ''{\"mine\": 1}''::jsonb';
         COMMENT ON FUNCTION public.wechat_sign_in(text, text) IS 'auth_wechat wrapper';",
    )
    .unwrap();
    let conninfo = db.conninfo(auth_wechat_tests::cluster::SUPERUSER);
    let expose = std::thread::spawn(move || {
        let mut admin = Client::connect(&conninfo, postgres::NoTls).unwrap();
        admin.query("SELECT auth.wechat_expose()", &[]).map(|rows| rows.len())
    });
    // Commit the swap once wechat_expose waits for it (on the row lock of the function).
    auth_wechat_tests::wait_until("wechat_expose to wait on the swap's lock", Duration::from_secs(20), || {
        admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%wechat_expose%' AND wait_event_type = 'Lock'
                    AND pid <> pg_backend_pid()",
                &[],
            )
            .unwrap()
            .get::<_, i64>(0)
            == 1
    });
    swap.commit().unwrap();
    let error = expose.join().unwrap().expect_err("wechat_expose went on over a swapped function");
    let message = error.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
    assert!(
        message.contains("tuple concurrently deleted") || message.contains("changed hands"),
        "refused for the swap, not for anything else: {error:?}"
    );
    let owner: String = admin
        .query_one(
            "SELECT proowner::regrole::text FROM pg_proc WHERE oid = 'public.wechat_sign_in(text, text)'::regprocedure",
            &[],
        )
        .unwrap()
        .get(0);
    let body: String = admin
        .query_one("SELECT prosrc FROM pg_proc WHERE oid = 'public.wechat_sign_in(text, text)'::regprocedure", &[])
        .unwrap()
        .get(0);
    assert_eq!(owner, "postgres");
    assert!(body.contains("mine"), "the swapped-in function was not rewritten under its owner: {body}");
    assert_eq!(calls(&db.sim_url(), "/sns/jscode2session"), 0);
}

/// What `postgres` plants to steer settings: `set_config` in `auth` and in `public`, which
/// record their caller and turn a `role` into `service_role`, and a trigger on `auth.sessions`
/// that moves the search path to put them first, locally or (`session`) for the connection.
fn plant_set_config(db: &TestDb, session: bool) {
    let mut postgres = db.postgres();
    postgres.batch_execute(SPY).unwrap();
    for schema in ["auth", "public"] {
        postgres
            .batch_execute(&format!(
                "CREATE FUNCTION {schema}.set_config(name text, value text, is_local boolean) RETURNS text
                     LANGUAGE plpgsql AS $$
                 BEGIN
                     PERFORM public.spy('{schema}.set_config');
                     IF name = 'role' THEN value := 'service_role'; END IF;
                     RETURN pg_catalog.set_config(name, value, is_local);
                 END $$;
                 GRANT EXECUTE ON FUNCTION {schema}.set_config(text, text, boolean) TO PUBLIC;"
            ))
            .unwrap();
    }
    let path = if session { "public, pg_catalog" } else { "auth, pg_catalog" };
    postgres
        .batch_execute(&format!(
            "CREATE FUNCTION public.poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 PERFORM pg_catalog.set_config('search_path', '{path}', {local});
                 PERFORM pg_catalog.set_config('request.jwt.claims', '{{\"role\": \"service_role\"}}', {local});
                 RETURN NULL;
             END $$;
             CREATE TRIGGER poison AFTER INSERT OR UPDATE OR DELETE ON auth.sessions
                 FOR EACH ROW EXECUTE FUNCTION public.poison();",
            local = !session
        ))
        .unwrap();
}

/// A trigger of `postgres` moves the search path during a call (locally, for the rest of the
/// transaction): the extension's statements after it, run as the function's owner (a superuser),
/// must not find a planted `auth.set_config`. The theft answer sets `response.status` right after
/// the session's DELETE fired the trigger.
fn settings_changed_by_the_owners_code_do_not_outlive_it() {
    let db = cluster().database(true);
    db.set("auth_wechat.refresh_token_reuse_interval", "0");
    plant_set_config(&db, false);
    let mut rest = db.rest();
    let session = sign_in(&mut rest, &code("ok", "trent")).unwrap();
    let refreshed = crate::refresh(&db, &token(&session)).unwrap();
    let refreshed = crate::refresh(&db, &token(&refreshed)).unwrap();
    rest.rpc("wechat_user", json!({}), &as_user(&refreshed)).unwrap();
    // Theft: the first token (two rotations old, past the reuse interval) ends the session (a
    // DELETE, which fires the trigger), and the answer goes out through `response.status`.
    let stolen =
        rest.rpc("wechat_refresh_session", json!({"refresh_token": token(&session)}), &Caller::Anon).unwrap_err();
    assert_eq!((stolen.status, stolen.error_code().as_str()), (400, "refresh_token_already_used"));
    // The caller's own settings are what they were: the trigger's changes ended with the call.
    let after: (String, Option<String>) = {
        let row = rest
            .client()
            .query_one("SELECT current_setting('search_path'), current_setting('request.jwt.claims', true)", &[])
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(after.0, "\"$user\", public", "the search path leaked out of the call");
    assert!(after.1.unwrap_or_default().is_empty(), "the claims leaked out of the call");
    assert!(!is_superuser(&db, "postgres"), "a planted set_config made postgres a superuser");
    assert_eq!(spied(&db), vec![], "a planted set_config ran");
}

/// The same trigger setting the search path for the whole session, behind a real PostgREST with
/// a single pooled connection: the next request on that connection (anonymous, to the
/// service-role-only QR function) must meet PostgREST's own settings, not the planted
/// `public.set_config` that would turn its role into `service_role`.
fn a_session_level_setting_never_reaches_the_next_request() {
    let db = cluster().database(true);
    plant_set_config(&db, true);
    db.superuser().batch_execute("SELECT auth.wechat_expose()").unwrap();
    let uri = format!("postgres://authenticator@127.0.0.1:{}/{}", cluster().port(), db.name);
    let rest = auth_wechat_tests::postgrest::PostgRest::start_with(
        &uri,
        auth_wechat_tests::JWT_SECRET,
        &[("PGRST_DB_POOL", "1")],
    );
    let signed_in = rest.post("/rpc/wechat_sign_in", &json!({"code": code("ok", "ursula")}), None);
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    for _ in 0..3 {
        let qr = rest.post("/rpc/wechat_unlimited_qrcode", &json!({"scene": "a=1"}), None);
        assert_eq!(qr.status, 401, "anon reached the service-role-only QR function: {}", qr.body);
    }
    assert_eq!(calls(&db.sim_url(), "/wxa/getwxacodeunlimit"), 0);
    assert_eq!(spied(&db), vec![], "a planted set_config ran");
    assert!(!is_superuser(&db, "postgres"));
}
