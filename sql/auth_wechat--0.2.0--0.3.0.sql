-- auth_wechat 0.2.0 (commit f983b0c) to 0.3.0: ALTER EXTENSION auth_wechat UPDATE.
--
-- The SQL surface that changed (the rest of 0.3.0 is in the library, which the server loads anew
-- at its restart; see CHANGELOG.md):
-- - nothing of the extension runs as a superuser: the functions clients may be granted are owned
--   by auth_wechat_definer, a new role without login, attributes or rights (made here unless it
--   exists), and the library steps down from there to the auth tables' owner;
-- - auth.wechat_prepare_schema() and auth.wechat_unlimited_qrcode_bytea(...) are C functions of
--   the library (they were PL/pgSQL: the QR code's called auth.wechat_unlimited_qrcode by name as
--   a superuser). The schema step adds auth.users.wechat_unlinked and moves there the openids
--   users unlinked, which 0.2.0 kept in their other identities; it runs at the end, as the
--   tables' owner;
-- - auth.wechat_import_users(source, users, options), for service_role: users of LeanCloud,
--   uni-id or MemFire Cloud written into GoTrue's tables;
-- - scan-to-sign-in for websites: auth.wechat_scan_start(appid, page) and
--   auth.wechat_scan_poll(ticket, poll_secret) for the browser (anon), auth.wechat_scan_view(ticket)
--   and auth.wechat_scan_confirm(ticket, approve) for the mini program's user (authenticated); the
--   tickets' table auth.wechat_scan_tickets is made by the first start, as the tables' owner;
-- - auth.wechat_move_identity(identity_id, to_user_id), for service_role: the remedy for one
--   person split in two users;
-- - auth.wechat_access_token_status(appid) and auth.wechat_refresh_access_token(force, appid)
--   take the app (dropped and created again; granted to no one, as before), and
--   auth.wechat_check_settings() is new, all superuser only;
-- - auth.wechat_expose() finds the extension's functions by its members, not by name, and makes
--   wrappers whose call is bound to them by OID (SQL-standard bodies); run it again after this
--   update, as the wrappers of 0.2.0 call auth.* by name. It and auth.wechat_unexpose() refuse
--   anyone but a superuser even when granted.
--
-- Run as a superuser with schema auth on the search path: everything is pg_catalog's, and the
-- search path is pinned besides (see sql/api.sql).
\echo Use "ALTER EXTENSION auth_wechat UPDATE TO '0.3.0'" to load this file. \quit
SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);

DO $definer$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'auth_wechat_definer') THEN
        CREATE ROLE auth_wechat_definer NOLOGIN NOINHERIT;
    END IF;
    IF EXISTS (SELECT FROM pg_roles r WHERE r.rolname = 'auth_wechat_definer'
                  AND (r.rolsuper OR r.rolcanlogin OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication
                       OR r.rolbypassrls))
       OR EXISTS (SELECT FROM pg_auth_members m
                   WHERE m.roleid = 'auth_wechat_definer'::regrole OR m.member = 'auth_wechat_definer'::regrole) THEN
        RAISE EXCEPTION 'role auth_wechat_definer exists with rights, members or memberships'
            USING HINT = 'auth_wechat''s functions run as that role, which must have no rights at all: '
                         'ALTER ROLE auth_wechat_definer NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION '
                         'NOBYPASSRLS, and revoke its memberships, or drop it.';
    END IF;
END
$definer$;

CREATE OR REPLACE FUNCTION auth.wechat_prepare_schema() RETURNS void
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_prepare_schema';
COMMENT ON FUNCTION auth.wechat_prepare_schema() IS
    'Adds auth_wechat''s columns (wechat_id, wechat_unionid) and indexes to auth.users and auth.identities, as the tables'' owner; idempotent. The first call of the extension runs it.';

CREATE FUNCTION auth.wechat_move_identity(identity_id uuid, to_user_id uuid) RETURNS jsonb
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_move_identity';
COMMENT ON FUNCTION auth.wechat_move_identity(uuid, uuid) IS
    'For servers (service_role): moves a WeChat identity to another user, the remedy for one person split in two users; answers both users.';

CREATE FUNCTION auth.wechat_import_users(source text, users jsonb, options jsonb DEFAULT '{}') RETURNS jsonb
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_import_users';
COMMENT ON FUNCTION auth.wechat_import_users(text, jsonb, jsonb) IS
    'For servers (service_role): writes a batch of users exported from LeanCloud, uni-id or MemFire into GoTrue''s tables, each still themselves at their next WeChat sign-in; idempotent; options: apps, dry_run.';

CREATE FUNCTION auth.wechat_scan_start(appid text DEFAULT NULL, page text DEFAULT NULL) RETURNS jsonb
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_scan_start';
COMMENT ON FUNCTION auth.wechat_scan_start(text, text) IS
    'Scan-to-sign-in, for a website: a ticket, its poll secret (for this browser only) and the mini-program code of appid (default: auth_wechat.appid) whose scene is the ticket.';

CREATE FUNCTION auth.wechat_scan_view(ticket text) RETURNS jsonb
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_scan_view';
COMMENT ON FUNCTION auth.wechat_scan_view(text) IS
    'Scan-to-sign-in, in the mini program: the signed-in user scanned the code; the ticket becomes theirs, and they are told who asked for it.';

CREATE FUNCTION auth.wechat_scan_confirm(ticket text, approve boolean DEFAULT true) RETURNS jsonb
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_scan_confirm';
COMMENT ON FUNCTION auth.wechat_scan_confirm(text, boolean) IS
    'Scan-to-sign-in, in the mini program: the user who viewed the ticket confirms (or denies) the website''s sign-in, once.';

CREATE FUNCTION auth.wechat_scan_poll(ticket text, poll_secret text) RETURNS jsonb
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_scan_poll';
COMMENT ON FUNCTION auth.wechat_scan_poll(text, text) IS
    'Scan-to-sign-in, in the browser: where the ticket is (pending, scanned, denied, expired), then once a GoTrue session for the user who confirmed.';

REVOKE ALL ON FUNCTION auth.wechat_move_identity(uuid, uuid), auth.wechat_import_users(text, jsonb, jsonb),
    auth.wechat_scan_start(text, text), auth.wechat_scan_view(text), auth.wechat_scan_confirm(text, boolean),
    auth.wechat_scan_poll(text, text) FROM PUBLIC;
DO $grants$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT EXECUTE ON FUNCTION auth.wechat_move_identity(uuid, uuid) TO service_role;
        GRANT EXECUTE ON FUNCTION auth.wechat_import_users(text, jsonb, jsonb) TO service_role;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN
        GRANT EXECUTE ON FUNCTION auth.wechat_scan_start(text, text), auth.wechat_scan_poll(text, text) TO anon;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN
        GRANT EXECUTE ON FUNCTION auth.wechat_scan_start(text, text), auth.wechat_scan_view(text),
            auth.wechat_scan_confirm(text, boolean), auth.wechat_scan_poll(text, text) TO authenticated;
    END IF;
END
$grants$;

-- The access-token tools take the app (the default one when none is named): dropped and created
-- again, granted to no one as before; and the settings check is new.
DROP FUNCTION auth.wechat_access_token_status();
DROP FUNCTION auth.wechat_refresh_access_token(boolean);
CREATE FUNCTION auth.wechat_access_token_status(appid text DEFAULT NULL) RETURNS jsonb
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_access_token_status';
COMMENT ON FUNCTION auth.wechat_access_token_status(text) IS
    'Superuser only: whether the WeChat access token of the app appid (default: auth_wechat.appid) is cached, and until when.';

CREATE FUNCTION auth.wechat_refresh_access_token(force boolean DEFAULT false, appid text DEFAULT NULL) RETURNS jsonb
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_refresh_access_token';
COMMENT ON FUNCTION auth.wechat_refresh_access_token(boolean, text) IS
    'Superuser only: fetch the WeChat access token of the app appid now; force => WeChat revokes the old one (after a leak).';

CREATE FUNCTION auth.wechat_check_settings() RETURNS jsonb
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_check_settings';
COMMENT ON FUNCTION auth.wechat_check_settings() IS
    'Superuser only: every problem of every auth_wechat setting now (apps, keys, secrets, the preload), never a value.';

REVOKE ALL ON FUNCTION auth.wechat_access_token_status(text), auth.wechat_refresh_access_token(boolean, text),
    auth.wechat_check_settings() FROM PUBLIC;

CREATE OR REPLACE FUNCTION auth.wechat_unlimited_qrcode_bytea(
    scene text, page text DEFAULT NULL, check_path boolean DEFAULT true, env_version text DEFAULT 'release',
    width integer DEFAULT 430, auto_color boolean DEFAULT false, line_color jsonb DEFAULT NULL,
    is_hyaline boolean DEFAULT false, appid text DEFAULT NULL) RETURNS bytea
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_unlimited_qrcode_bytea';

CREATE FUNCTION auth_wechat.require_superuser(function_name text) RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = current_user AND rolsuper) THEN
        RAISE EXCEPTION 'auth_wechat: only a superuser may call %', function_name
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION auth_wechat.require_superuser(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION auth.wechat_expose(target_schema name DEFAULT 'public') RETURNS SETOF text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f record;
    grantee name;
    signature text;
    stale regprocedure;
BEGIN
    PERFORM auth_wechat.require_superuser('auth.wechat_expose()');
    -- The extension's own functions, by its members in pg_depend (not by name).
    FOR f IN
        SELECT p.oid, p.proname, p.proacl, p.proowner, p.pronamespace::regnamespace::text AS schema_name,
               pg_get_function_arguments(p.oid) AS args,
               oidvectortypes(p.proargtypes) AS identity_args,
               pg_get_function_result(p.oid) AS result,
               CASE p.provolatile WHEN 's' THEN 'STABLE' ELSE 'VOLATILE' END AS volatility,
               (SELECT string_agg(format('%I => %I', n, n), ', ') FROM unnest(p.proargnames) AS n) AS call_args
          FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
         WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
           AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'auth_wechat')
           AND p.proname IN ('wechat_sign_in', 'wechat_oauth_sign_in', 'wechat_authorize_url', 'wechat_bind_account',
                             'wechat_oauth_bind', 'wechat_unlink_identity', 'wechat_move_identity', 'wechat_import_users',
                             'wechat_scan_start', 'wechat_scan_view', 'wechat_scan_confirm', 'wechat_scan_poll',
                             'wechat_bind_phone',
                             'wechat_refresh_session',
                             'wechat_sign_out', 'wechat_user', 'wechat_jwks', 'wechat_unlimited_qrcode',
                             'wechat_unlimited_qrcode_bytea')
    LOOP
        signature := format('%I.%I(%s)', target_schema, f.proname, f.identity_args);
        -- Another function of this name would leave PostgREST unable to choose: a wrapper of ours
        -- with other arguments (of an earlier version, before an argument was added) goes; anyone
        -- else's is refused, as below.
        FOR stale IN
            SELECT p.oid::regprocedure FROM pg_proc p
             WHERE p.pronamespace = target_schema::regnamespace AND p.proname = f.proname
               AND p.oid <> coalesce(to_regprocedure(signature)::oid, 0)
        LOOP
            IF NOT auth_wechat.is_wrapper(stale) THEN
                RAISE EXCEPTION 'function % exists and is not an auth_wechat wrapper; not replacing it', stale;
            END IF;
            EXECUTE format('DROP FUNCTION %s', stale);
        END LOOP;
        -- Only our own wrappers are replaced. The comment alone could be forged by whoever may
        -- create functions in the schema, so the owner must be us as well; and it is checked
        -- again after CREATE OR REPLACE, which has locked the row by then: a function that someone
        -- slipped in between the first check and the replace (its owner stays theirs) rolls the
        -- whole call back.
        IF to_regprocedure(signature) IS NOT NULL AND NOT auth_wechat.is_wrapper(to_regprocedure(signature)) THEN
            RAISE EXCEPTION 'function % exists and is not an auth_wechat wrapper; not replacing it', signature;
        END IF;
        EXECUTE format('CREATE OR REPLACE FUNCTION %I.%I(%s) RETURNS %s LANGUAGE sql %s BEGIN ATOMIC SELECT %s.%I(%s); END',
                       target_schema, f.proname, f.args, f.result, f.volatility, f.schema_name, f.proname, f.call_args);
        IF (SELECT proowner FROM pg_proc WHERE oid = to_regprocedure(signature))
           <> (SELECT oid FROM pg_roles WHERE rolname = current_user) THEN
            RAISE EXCEPTION 'function % changed hands while being replaced; not replacing it', signature;
        END IF;
        -- The call was resolved by name once, now: it must be bound to the extension's function.
        IF NOT EXISTS (SELECT FROM pg_depend
                        WHERE classid = 'pg_proc'::regclass AND objid = to_regprocedure(signature)
                          AND refclassid = 'pg_proc'::regclass AND refobjid = f.oid) THEN
            RAISE EXCEPTION 'the wrapper % does not call auth_wechat''s function %; not creating it', signature, f.oid::regprocedure;
        END IF;
        EXECUTE format('COMMENT ON FUNCTION %s IS %L', signature, 'auth_wechat wrapper');
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', signature);
        FOR grantee IN
            SELECT r.rolname FROM aclexplode(f.proacl) AS a JOIN pg_roles AS r ON r.oid = a.grantee
             WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> f.proowner
        LOOP
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', signature, grantee);
        END LOOP;
        RETURN NEXT signature;
    END LOOP;
    NOTIFY pgrst, 'reload schema';
END
$$;

CREATE OR REPLACE FUNCTION auth.wechat_unexpose(target_schema name DEFAULT 'public') RETURNS SETOF text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    signature text;
BEGIN
    PERFORM auth_wechat.require_superuser('auth.wechat_unexpose()');
    -- The signatures as text before the drops: a dropped function's regprocedure prints its OID.
    FOR signature IN
        SELECT p.oid::regprocedure::text FROM pg_proc p
         WHERE p.pronamespace = target_schema::regnamespace AND auth_wechat.is_wrapper(p.oid)
    LOOP
        EXECUTE format('DROP FUNCTION %s', signature);
        RETURN NEXT signature;
    END LOOP;
    NOTIFY pgrst, 'reload schema';
END
$$;

DO $owners$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT p.oid FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
         WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND p.prosecdef
           AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'auth_wechat')
    LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO auth_wechat_definer', f);
    END LOOP;
END
$owners$;

DO $prepare$
BEGIN
    IF EXISTS (SELECT FROM pg_class
                WHERE relname = 'users' AND relnamespace = (SELECT extnamespace FROM pg_extension WHERE extname = 'auth_wechat')) THEN
        PERFORM auth.wechat_prepare_schema();
    END IF;
END
$prepare$;
