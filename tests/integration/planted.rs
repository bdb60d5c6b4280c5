//! Least privilege by construction. `postgres` (Supabase's: not a superuser, but a member of
//! `supabase_auth_admin`, which owns the auth schema and tables) plants code everywhere it may —
//! triggers on every auth table, functions and operators named like what the extension calls in
//! `auth` and `public`, a renamed `auth.users`, schema `auth` renamed and made anew — and then every
//! entry point is called, anonymously, as a user, as `service_role` and by a superuser: the
//! planted code never runs as a superuser. And by the catalog: no function of the extension is
//! `SECURITY DEFINER` owned by a superuser. (The upgrade window is `upgrade`'s.)

use crate::privileges::SPY;
use crate::{as_user, cluster, sign_in, token, trial};
use auth_wechat_tests::rest::Caller;
use auth_wechat_tests::{code, made_by, TestDb, OFFICIAL_ACCOUNT};
use libtest_mimic::Trial;
use serde_json::{json, Value};

pub fn tests() -> Vec<Trial> {
    vec![
        trial(
            "planted::no_function_is_security_definer_of_a_superuser",
            no_function_is_security_definer_of_a_superuser,
        ),
        trial("planted::planted_code_never_runs_as_a_superuser", planted_code_never_runs_as_a_superuser),
        trial("planted::a_renamed_auth_users_is_never_a_superusers", a_renamed_auth_users_is_never_a_superusers),
        trial("planted::a_schema_auth_made_anew_is_refused", a_schema_auth_made_anew_is_refused),
    ]
}

/// The extension's functions that are `SECURITY DEFINER` owned by a superuser, and the owners of
/// the `SECURITY DEFINER` ones.
pub fn definer_owners(db: &TestDb) -> (Vec<String>, Vec<String>) {
    let rows = db
        .superuser()
        .query(
            "SELECT p.oid::regprocedure::text, r.rolname::text, r.rolsuper
               FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
               JOIN pg_roles r ON r.oid = p.proowner
              WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND p.prosecdef
                AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'auth_wechat')
              ORDER BY 1",
            &[],
        )
        .unwrap();
    let superusers = rows.iter().filter(|r| r.get::<_, bool>(2)).map(|r| r.get(0)).collect();
    let mut owners: Vec<String> = rows.iter().map(|r| r.get(1)).collect();
    owners.dedup();
    (superusers, owners)
}

fn no_function_is_security_definer_of_a_superuser() {
    let db = cluster().database(true);
    let (superusers, owners) = definer_owners(&db);
    assert_eq!(superusers, Vec::<String>::new(), "SECURITY DEFINER functions of a superuser");
    assert_eq!(owners, vec!["auth_wechat_definer"]);
    // That owner has no rights: no login, no attribute, no membership either way.
    let role: (bool, i64) = {
        let row = db
            .superuser()
            .query_one(
                "SELECT rolsuper OR rolcanlogin OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls,
                        (SELECT count(*) FROM pg_auth_members m WHERE m.roleid = r.oid OR m.member = r.oid)
                   FROM pg_roles r WHERE rolname = 'auth_wechat_definer'",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(role, (false, 0), "auth_wechat_definer has an attribute or a membership");
    // The administration functions run as their caller.
    let admin: Vec<(String, bool)> = db
        .superuser()
        .query(
            "SELECT proname::text, prosecdef FROM pg_proc
              WHERE proname IN ('wechat_postgrest_jwks', 'wechat_access_token_status', 'wechat_refresh_access_token',
                                'wechat_expose', 'wechat_unexpose', 'wechat_check_settings')
              ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(admin.len(), 6);
    assert!(admin.iter().all(|(_, definer)| !definer), "{admin:?}");
}

/// Who ran the planted code: `(role, superuser, via)` per run.
pub fn spied(db: &TestDb) -> Vec<(String, bool, String)> {
    db.superuser()
        .query("SELECT who::text, super, via FROM public.spy_log", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// How many times planted code ran, committed or not: `(all, as a superuser)`.
pub fn spy_runs(db: &TestDb) -> (i64, i64) {
    let row = db
        .superuser()
        .query_one(
            "SELECT (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM public.spy_runs),
                    (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM public.spy_super_runs)",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

/// Fails if any planted code ran as a superuser (even in a transaction that rolled back), or
/// made `postgres` one.
pub fn assert_never_superuser(db: &TestDb) {
    let runs = spied(db);
    let as_superuser: Vec<_> = runs.iter().filter(|run| run.1).collect();
    assert!(as_superuser.is_empty(), "planted code ran as a superuser: {as_superuser:?}");
    assert_eq!(spy_runs(db).1, 0, "planted code ran as a superuser in a transaction that rolled back");
    let postgres_super: bool =
        db.superuser().query_one("SELECT rolsuper FROM pg_roles WHERE rolname = 'postgres'", &[]).unwrap().get(0);
    assert!(!postgres_super, "postgres became a superuser");
}

/// A planted function `{schema}.{name}({args})` returning `{returns}` that spies, then does
/// `{body}` (a `RETURN …`); anyone may call it (PUBLIC's default).
fn spy_function(schema: &str, name: &str, args: &str, returns: &str, body: &str) -> String {
    format!(
        "CREATE FUNCTION {schema}.{name}({args}) RETURNS {returns} LANGUAGE plpgsql AS $$
         BEGIN PERFORM public.spy('{schema}.{name}'); {body} END $$;"
    )
}

/// Everything `postgres` may plant in `schema` that a statement of the extension could resolve to
/// if it were not pinned to pg_catalog: look-alikes of the functions and operators it calls, with
/// argument types that would match better, and of its own functions.
pub fn plant_lookalikes(db: &TestDb, schema: &str) {
    let mut sql = String::new();
    for (name, args, returns, body) in [
        ("now", "", "timestamptz", "RETURN pg_catalog.now();"),
        ("set_config", "a text, b text, c boolean", "text", "RETURN pg_catalog.set_config(a, b, c);"),
        ("gen_random_uuid", "", "uuid", "RETURN pg_catalog.gen_random_uuid();"),
        ("to_regclass", "t character varying", "regclass", "RETURN pg_catalog.to_regclass(t::text);"),
        ("format", "a text, b text, c text", "text", "RETURN pg_catalog.format(a, b, c);"),
        ("hashtextextended", "t character varying, s integer", "bigint", "RETURN pg_catalog.hashtextextended(t, s);"),
        ("pg_advisory_xact_lock", "k integer", "void", "PERFORM pg_catalog.pg_advisory_xact_lock(k);"),
        ("jsonb_build_object", "a text, b text", "jsonb", "RETURN pg_catalog.jsonb_build_object(a, b);"),
        ("jsonb_build_array", "a text", "jsonb", "RETURN pg_catalog.jsonb_build_array(a);"),
        ("clock_timestamp", "", "timestamptz", "RETURN pg_catalog.clock_timestamp();"),
        ("to_regprocedure", "t character varying", "regprocedure", "RETURN pg_catalog.to_regprocedure(t::text);"),
        // (Named unlike the extension's arguments, which a caller names.)
        ("wechat_prepare_schema", "x integer", "void", "RETURN;"),
        ("wechat_unlimited_qrcode", "x character varying", "jsonb", "RETURN '{}';"),
        ("wechat_sign_in", "x character varying", "jsonb", "RETURN '{}';"),
    ] {
        sql += &spy_function(schema, name, args, returns, body);
    }
    for (op, left, right, body) in [
        ("=", "uuid", "uuid", "RETURN a OPERATOR(pg_catalog.=) b;"),
        ("=", "text", "text", "RETURN a OPERATOR(pg_catalog.=) b;"),
        ("=", "character varying", "character varying", "RETURN a::text OPERATOR(pg_catalog.=) b::text;"),
        ("<>", "character varying", "character varying", "RETURN a::text OPERATOR(pg_catalog.<>) b::text;"),
        (">", "timestamptz", "timestamptz", "RETURN a OPERATOR(pg_catalog.>) b;"),
        ("?", "jsonb", "text", "RETURN a OPERATOR(pg_catalog.?) b;"),
    ] {
        let function =
            format!("op_{}_{}", op.bytes().map(|b| b.to_string()).collect::<String>(), left.replace(' ', "_"));
        sql += &format!(
            "CREATE FUNCTION {schema}.{function}(a {left}, b {right}) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
             BEGIN PERFORM public.spy('{schema}.{op}'); {body} END $$;
             CREATE OPERATOR {schema}.{op} (FUNCTION = {schema}.{function}, LEFTARG = {left}, RIGHTARG = {right});"
        );
    }
    db.postgres().batch_execute(&sql).unwrap_or_else(|e| panic!("planting in {schema}: {e}"));
}

/// Triggers on every auth table, and a default, a check, an index expression and a rule.
pub fn plant_on_the_tables(db: &TestDb) {
    let mut postgres = db.postgres();
    for table in ["users", "identities", "sessions", "refresh_tokens", "mfa_amr_claims", "audit_log_entries"] {
        postgres
            .batch_execute(&format!(
                "CREATE TRIGGER spy AFTER INSERT OR UPDATE OR DELETE ON auth.{table}
                     FOR EACH ROW EXECUTE FUNCTION public.spy_trigger()"
            ))
            .unwrap();
    }
    postgres
        .batch_execute(
            "ALTER TABLE auth.sessions ALTER COLUMN tag SET DEFAULT public.spy('default');
             ALTER TABLE auth.refresh_tokens ADD CONSTRAINT spy CHECK (public.spy('check') IS NOT NULL);
             CREATE INDEX spy ON auth.identities (public.spy_immutable(provider));
             CREATE RULE spy AS ON INSERT TO auth.audit_log_entries DO ALSO
                 INSERT INTO public.spy_log VALUES (current_user, false, public.spy('rule'));",
        )
        .unwrap();
}

/// Calls every entry point: the client ones through PostgREST's path (anonymous, a user,
/// `service_role`) and from a superuser's psql; the administration ones as a superuser. Returns
/// how many calls answered.
fn call_everything(db: &TestDb) -> usize {
    let mut rest = db.rest();
    let mut answered = 0;
    let mut count = |result: Result<Value, auth_wechat_tests::RpcError>| {
        if result.is_ok() {
            answered += 1;
        }
    };
    let session = sign_in(&mut rest, &code("union", "mallory"));
    let session = session.unwrap_or_else(|e| panic!("sign-in: {e:?}"));
    count(Ok(session.clone()));
    let user = as_user(&session);
    count(rest.rpc(
        "wechat_oauth_sign_in",
        json!({"code": made_by(&code("userinfo", "mallory"), OFFICIAL_ACCOUNT), "appid": OFFICIAL_ACCOUNT}),
        &Caller::Anon,
    ));
    count(rest.rpc(
        "wechat_authorize_url",
        json!({"appid": OFFICIAL_ACCOUNT, "redirect_uri": "https://example.com/cb", "state": "0123456789abcdef"}),
        &Caller::Anon,
    ));
    count(rest.rpc("wechat_jwks", json!({}), &Caller::Anon));
    count(rest.rpc("wechat_user", json!({}), &user));
    count(rest.rpc("wechat_bind_phone", json!({"code": code("phone.86.13700000123", "")}), &user));
    count(rest.rpc("wechat_bind_account", json!({"code": code("union", "mallory")}), &user));
    count(rest.rpc(
        "wechat_oauth_bind",
        json!({"code": made_by(&code("userinfo", "mallory"), OFFICIAL_ACCOUNT), "appid": OFFICIAL_ACCOUNT}),
        &user,
    ));
    let identity = db
        .superuser()
        .query_one(
            "SELECT id::text FROM auth.identities WHERE user_id = $1::text::uuid AND provider = 'wechat_official'",
            &[&session["user"]["id"].as_str().unwrap()],
        )
        .map(|row| row.get::<_, String>(0));
    if let Ok(identity) = identity {
        count(rest.rpc("wechat_unlink_identity", json!({"identity_id": identity}), &user));
    }
    let service = Caller::Claims(json!({"role": "service_role"}));
    count(rest.rpc("wechat_unlimited_qrcode", json!({"scene": "a=1"}), &service));
    count(rest.rpc("wechat_unlimited_qrcode_bytea", json!({"scene": "a=1"}), &service));
    let refreshed = rest.rpc("wechat_refresh_session", json!({"refresh_token": token(&session)}), &Caller::Anon);
    if let Ok(refreshed) = &refreshed {
        count(rest.rpc("wechat_sign_out", json!({"scope": "global"}), &as_user(refreshed)));
    }
    count(refreshed);

    // A superuser from psql, the client functions included.
    let mut admin = db.superuser();
    for sql in [
        format!("SELECT auth.wechat_sign_in('{}')::text", code("union", "mallory")),
        "SELECT auth.wechat_jwks()::text".into(),
        "SELECT auth.wechat_prepare_schema()::text".into(),
        "SELECT auth.wechat_unlimited_qrcode('a=2')::text".into(),
        "SELECT length(auth.wechat_unlimited_qrcode_bytea('a=3'))::text".into(),
        "SELECT auth.wechat_postgrest_jwks()::text".into(),
        "SELECT auth.wechat_access_token_status()::text".into(),
        "SELECT auth.wechat_refresh_access_token()::text".into(),
        "SELECT auth.wechat_check_settings()::text".into(),
        "SELECT string_agg(w, ',') FROM auth.wechat_expose() AS w".into(),
        "SELECT string_agg(w, ',') FROM auth.wechat_unexpose() AS w".into(),
    ] {
        if admin.query_one(sql.as_str(), &[]).is_ok() {
            answered += 1;
        }
    }
    answered
}

fn planted_code_never_runs_as_a_superuser() {
    let db = cluster().database(true);
    db.postgres().batch_execute(SPY).unwrap();
    plant_lookalikes(&db, "auth");
    plant_lookalikes(&db, "public");
    plant_on_the_tables(&db);
    let answered = call_everything(&db);
    assert!(answered >= 20, "the calls reached the extension: {answered} answered");
    assert_never_superuser(&db);
    // The plants on the tables did run, as the tables' owner: the test reached them.
    let runs = spied(&db);
    for via in ["users", "identities", "sessions", "refresh_tokens", "mfa_amr_claims", "audit_log_entries"] {
        assert!(runs.iter().any(|(_, _, v)| v == via), "nothing ran through {via}: {runs:?}");
    }
    assert!(runs.iter().all(|(who, _, _)| who == "supabase_auth_admin"), "{runs:?}");
}

/// `postgres` may rename `auth.users` (it owns it through `supabase_auth_admin`) and put a table of
/// its own under that name: the extension then works on that table with the rights of its owner,
/// `postgres` itself; and with no `auth.users` at all it refuses without calling anything.
fn a_renamed_auth_users_is_never_a_superusers() {
    let db = cluster().database(true);
    db.postgres().batch_execute(SPY).unwrap();
    plant_lookalikes(&db, "auth");
    let mut postgres = db.postgres();
    postgres.batch_execute("ALTER TABLE auth.users RENAME TO users_moved").unwrap();
    let missing = sign_in(&mut db.rest(), &code("ok", "nina")).unwrap_err();
    assert_eq!(missing.sqlstate, "42P01", "{missing:?}");
    assert!(missing.message.contains("missing: auth.users"), "{}", missing.message);
    let from_psql = db.superuser().query_one("SELECT auth.wechat_prepare_schema()::text", &[]).unwrap_err();
    assert_eq!(from_psql.code().map(|c| c.code()), Some("42P01"), "{from_psql:?}");

    postgres
        .batch_execute(
            "CREATE TABLE auth.users (LIKE auth.users_moved INCLUDING ALL);
             CREATE TRIGGER spy AFTER INSERT OR UPDATE ON auth.users FOR EACH ROW EXECUTE FUNCTION public.spy_trigger();",
        )
        .unwrap();
    // The identities still refer to the moved table, so these sign-ins fail, after the trigger
    // ran (as the new table's owner, postgres) and rolled back with them.
    let before = spy_runs(&db).0;
    let _ = sign_in(&mut db.rest(), &code("ok", "nina"));
    let _ = db.superuser().query_one(&format!("SELECT auth.wechat_sign_in('{}')::text", code("ok", "nina")), &[]);
    assert!(spy_runs(&db).0 >= before + 2, "the planted trigger ran: {:?}", spy_runs(&db));
    assert_never_superuser(&db);
}

/// With CREATE on the database (Supabase's `postgres` has it) and schema `auth` its own, `postgres`
/// renames `auth` and makes a new one, without tables, with a forwarding `wechat_sign_in` and a
/// planted `wechat_prepare_schema` (which 0.2.0 called as a superuser to add the missing
/// columns). The wrappers are bound to the extension's functions by OID; those refuse a schema
/// `auth` that is not theirs; and `wechat_expose` finds them by membership.
fn a_schema_auth_made_anew_is_refused() {
    let db = cluster().database(true);
    let mut admin = db.superuser();
    admin.batch_execute(&format!("GRANT CREATE ON DATABASE {} TO postgres", db.name)).unwrap();
    admin.query("SELECT auth.wechat_expose()", &[]).unwrap();
    let session = sign_in(&mut db.rest(), &code("ok", "olga")).unwrap();
    let mut postgres = db.postgres();
    postgres.batch_execute(SPY).unwrap();
    postgres
        .batch_execute(
            "ALTER SCHEMA auth RENAME TO auth_moved;
             CREATE SCHEMA auth;
             GRANT USAGE ON SCHEMA auth TO PUBLIC;",
        )
        .unwrap();
    plant_lookalikes(&db, "auth");
    postgres
        .batch_execute(&spy_function(
            "auth",
            "wechat_sign_in",
            "code text, appid text DEFAULT NULL",
            "jsonb",
            "RETURN auth_moved.wechat_sign_in(code, appid);",
        ))
        .unwrap();
    postgres.batch_execute(&spy_function("auth", "wechat_prepare_schema", "", "void", "RETURN;")).unwrap();

    let mut rest = db.rest();
    let wrapped = rest.rpc_in("public", "wechat_sign_in", json!({"code": code("ok", "olga")}), &Caller::Anon);
    let refused = wrapped.unwrap_err();
    assert_eq!((refused.status, refused.error_code().as_str()), (500, "configuration_invalid"), "{refused:?}");
    assert!(refused.message.contains("schema named auth"), "{}", refused.message);
    let user = rest.rpc_in("public", "wechat_user", json!({}), &as_user(&session)).unwrap_err();
    assert_eq!(user.error_code(), "configuration_invalid");
    // The forwarding function, called by name, runs as its caller and reaches the same refusal.
    let forwarded = rest.rpc("wechat_sign_in", json!({"code": code("ok", "olga")}), &Caller::Anon).unwrap_err();
    assert_eq!(forwarded.error_code(), "configuration_invalid");
    // A superuser's calls: through the wrapper, and the extension's own tools.
    let error = admin.query_one(&format!("SELECT public.wechat_sign_in('{}')::text", code("ok", "olga")), &[]);
    assert!(error.is_err(), "the wrapper reached something that signed in");
    admin.query_one("SELECT auth_moved.wechat_postgrest_jwks()::text", &[]).unwrap();
    let exposed: i64 = admin.query_one("SELECT count(*) FROM auth_moved.wechat_expose()", &[]).unwrap().get(0);
    assert!(exposed >= 13, "wechat_expose found the extension's functions by membership: {exposed}");
    let still_bound: String = admin
        .query_one(
            "SELECT string_agg(DISTINCT refobjid::regprocedure::text, ',') FROM pg_depend
              WHERE classid = 'pg_proc'::regclass AND objid = 'public.wechat_sign_in(text, text)'::regprocedure
                AND refclassid = 'pg_proc'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(still_bound, "auth_moved.wechat_sign_in(text,text)");
    assert_never_superuser(&db);
    let runs = spied(&db);
    assert!(runs.iter().all(|(_, _, via)| via == "auth.wechat_sign_in"), "only the forwarder ran: {runs:?}");
}
