-- The public SQL API in schema auth: C functions of the extension's library (src/api.rs), which
-- raise their errors themselves with PostgREST's PTxyz SQLSTATEs.
--
-- Nothing of the extension runs as a superuser (src/privilege.rs). The functions clients may be
-- granted are SECURITY DEFINER owned by auth_wechat_definer, a role with no login, no attributes
-- and no rights, and the library steps down from there to the auth tables' owner, found by OID,
-- before anything else. The administration functions run as their caller and refuse anyone but a
-- superuser.
--
-- This script runs as a superuser with schema auth (which the auth tables' owner, and so on
-- Supabase the non-superuser postgres, may create functions in) on the search path: every
-- function and operator it uses at install time is pg_catalog's, and the search path is pinned to
-- pg_catalog besides, so nothing planted in auth can be called here.
SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);

-- The extension's private helpers (auth_wechat.is_wrapper below).
CREATE SCHEMA auth_wechat;
REVOKE ALL ON SCHEMA auth_wechat FROM PUBLIC;

-- The owner of the SECURITY DEFINER functions: a role of the cluster (roles are not per database),
-- made by the first CREATE EXTENSION and kept by DROP EXTENSION (docs/operations.md). One that
-- exists already must be as made here: no login, no attributes, no members, member of nothing.
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

-- MemFire's columns and the indexes (src/schema.rs); also run at install, at the end.
CREATE FUNCTION auth.wechat_prepare_schema() RETURNS void
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_prepare_schema';
COMMENT ON FUNCTION auth.wechat_prepare_schema() IS
    'Adds auth_wechat''s columns (wechat_id, wechat_unionid) and indexes to auth.users and auth.identities, as the tables'' owner; idempotent. The first call of the extension runs it.';

CREATE FUNCTION auth.wechat_sign_in(code text, appid text DEFAULT NULL) RETURNS jsonb
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_sign_in';
COMMENT ON FUNCTION auth.wechat_sign_in(text, text) IS
    'WeChat Mini Program sign-in: trades a wx.login() code of the mini program appid (default: auth_wechat.appid) for a Supabase Auth session (signs up on first visit, or links by unionid).';

CREATE FUNCTION auth.wechat_oauth_sign_in(code text, appid text) RETURNS jsonb
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_oauth_sign_in';
COMMENT ON FUNCTION auth.wechat_oauth_sign_in(text, text) IS
    'WeChat web authorisation sign-in (official account H5, website QR, mobile app): trades the code for a Supabase Auth session (signs up on first visit, or links by unionid).';

CREATE FUNCTION auth.wechat_authorize_url(appid text, redirect_uri text, state text, scope text DEFAULT NULL)
    RETURNS text
    LANGUAGE c STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_authorize_url';
COMMENT ON FUNCTION auth.wechat_authorize_url(text, text, text, text) IS
    'The URL of WeChat''s authorisation page for an official account (oauth2/authorize) or a website (qrconnect); no secret in it.';

CREATE FUNCTION auth.wechat_bind_account(code text, appid text DEFAULT NULL) RETURNS jsonb
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_bind_account';
COMMENT ON FUNCTION auth.wechat_bind_account(text, text) IS
    'Binds the signed-in user to the WeChat user of a wx.login() code of the mini program appid (default: auth_wechat.appid); returns the user.';

CREATE FUNCTION auth.wechat_oauth_bind(code text, appid text) RETURNS jsonb
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_oauth_bind';
COMMENT ON FUNCTION auth.wechat_oauth_bind(text, text) IS
    'Binds the signed-in user to the WeChat user of a web-authorisation code of an official account, website or mobile app; returns the user.';

CREATE FUNCTION auth.wechat_unlink_identity(identity_id uuid) RETURNS jsonb
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_unlink_identity';
COMMENT ON FUNCTION auth.wechat_unlink_identity(uuid) IS
    'GoTrue''s DELETE /user/identities/{id} for WeChat identities: removes one of the signed-in user''s; returns the user.';

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

CREATE FUNCTION auth.wechat_bind_phone(code text, appid text DEFAULT NULL) RETURNS jsonb
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_bind_phone';
COMMENT ON FUNCTION auth.wechat_bind_phone(text, text) IS
    'Sets the signed-in user''s phone to the number WeChat confirmed for a getPhoneNumber code of the mini program appid; returns the user.';

CREATE FUNCTION auth.wechat_refresh_session(refresh_token text) RETURNS jsonb
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_refresh_session';
COMMENT ON FUNCTION auth.wechat_refresh_session(text) IS
    'Trades a refresh token for a new session with GoTrue''s rotation, reuse interval and theft detection.';

CREATE FUNCTION auth.wechat_sign_out(scope text DEFAULT 'local') RETURNS jsonb
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_sign_out';
COMMENT ON FUNCTION auth.wechat_sign_out(text) IS
    'Ends the caller''s session (local), all their sessions (global) or all but this one (others).';

CREATE FUNCTION auth.wechat_user() RETURNS jsonb
    LANGUAGE c STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_user';
COMMENT ON FUNCTION auth.wechat_user() IS
    'GoTrue''s GET /user: the signed-in caller''s user, for a live session of theirs.';

CREATE FUNCTION auth.wechat_jwks() RETURNS jsonb
    LANGUAGE c STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_jwks';
COMMENT ON FUNCTION auth.wechat_jwks() IS
    'GoTrue''s /.well-known/jwks.json: the public keys of auth_wechat.jwt_keys, for PostgREST''s jwt-secret and for clients.';

CREATE FUNCTION auth.wechat_unlimited_qrcode(
    scene text, page text DEFAULT NULL, check_path boolean DEFAULT true, env_version text DEFAULT 'release',
    width integer DEFAULT 430, auto_color boolean DEFAULT false, line_color jsonb DEFAULT NULL,
    is_hyaline boolean DEFAULT false, appid text DEFAULT NULL) RETURNS jsonb
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_unlimited_qrcode';
COMMENT ON FUNCTION auth.wechat_unlimited_qrcode(text, text, boolean, text, integer, boolean, jsonb, boolean, text) IS
    'An unlimited mini-program code (getwxacodeunlimit) of the mini program appid as {"imgBase64": ...}.';

CREATE FUNCTION auth.wechat_unlimited_qrcode_bytea(
    scene text, page text DEFAULT NULL, check_path boolean DEFAULT true, env_version text DEFAULT 'release',
    width integer DEFAULT 430, auto_color boolean DEFAULT false, line_color jsonb DEFAULT NULL,
    is_hyaline boolean DEFAULT false, appid text DEFAULT NULL) RETURNS bytea
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_unlimited_qrcode_bytea';
COMMENT ON FUNCTION auth.wechat_unlimited_qrcode_bytea(text, text, boolean, text, integer, boolean, jsonb, boolean, text) IS
    'auth.wechat_unlimited_qrcode for server-side callers: the image bytes (JPEG, or PNG when is_hyaline).';

-- Superuser tools: SECURITY INVOKER, granted to no one (below), and refusing anyone but a
-- superuser even if granted. The access token's never show the token itself; the JWKS for
-- PostgREST holds the HS256 secrets.
CREATE FUNCTION auth.wechat_postgrest_jwks() RETURNS jsonb
    LANGUAGE c STABLE
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_postgrest_jwks';
COMMENT ON FUNCTION auth.wechat_postgrest_jwks() IS
    'Superuser only: PostgREST''s jwt-secret, the public keys plus the HS256 secrets (legacy secret, oct keys) its tokens may carry.';

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

REVOKE ALL ON FUNCTION auth.wechat_sign_in(text, text), auth.wechat_oauth_sign_in(text, text), auth.wechat_unlink_identity(uuid),
    auth.wechat_move_identity(uuid, uuid), auth.wechat_import_users(text, jsonb, jsonb),
    auth.wechat_scan_start(text, text), auth.wechat_scan_view(text), auth.wechat_scan_confirm(text, boolean),
    auth.wechat_scan_poll(text, text),
    auth.wechat_authorize_url(text, text, text, text), auth.wechat_bind_account(text, text),
    auth.wechat_oauth_bind(text, text), auth.wechat_bind_phone(text, text),
    auth.wechat_refresh_session(text), auth.wechat_sign_out(text), auth.wechat_user(), auth.wechat_jwks(),
    auth.wechat_unlimited_qrcode(text, text, boolean, text, integer, boolean, jsonb, boolean, text),
    auth.wechat_unlimited_qrcode_bytea(text, text, boolean, text, integer, boolean, jsonb, boolean, text),
    auth.wechat_access_token_status(text), auth.wechat_refresh_access_token(boolean, text), auth.wechat_postgrest_jwks(),
    auth.wechat_check_settings()
    FROM PUBLIC;

-- Who may call what, for the Supabase roles that exist here.
DO $grants$
DECLARE
    grant_to record;
BEGIN
    FOR grant_to IN
        SELECT * FROM (VALUES
            ('auth.wechat_sign_in(text, text)', 'anon'),
            ('auth.wechat_sign_in(text, text)', 'authenticated'),
            ('auth.wechat_oauth_sign_in(text, text)', 'anon'),
            ('auth.wechat_oauth_sign_in(text, text)', 'authenticated'),
            ('auth.wechat_authorize_url(text, text, text, text)', 'anon'),
            ('auth.wechat_authorize_url(text, text, text, text)', 'authenticated'),
            ('auth.wechat_authorize_url(text, text, text, text)', 'service_role'),
            ('auth.wechat_bind_account(text, text)', 'authenticated'),
            ('auth.wechat_oauth_bind(text, text)', 'authenticated'),
            ('auth.wechat_bind_phone(text, text)', 'authenticated'),
            ('auth.wechat_unlink_identity(uuid)', 'authenticated'),
            ('auth.wechat_move_identity(uuid, uuid)', 'service_role'),
            ('auth.wechat_import_users(text, jsonb, jsonb)', 'service_role'),
            ('auth.wechat_scan_start(text, text)', 'anon'),
            ('auth.wechat_scan_start(text, text)', 'authenticated'),
            ('auth.wechat_scan_view(text)', 'authenticated'),
            ('auth.wechat_scan_confirm(text, boolean)', 'authenticated'),
            ('auth.wechat_scan_poll(text, text)', 'anon'),
            ('auth.wechat_scan_poll(text, text)', 'authenticated'),
            ('auth.wechat_refresh_session(text)', 'anon'),
            ('auth.wechat_refresh_session(text)', 'authenticated'),
            ('auth.wechat_sign_out(text)', 'authenticated'),
            ('auth.wechat_user()', 'authenticated'),
            ('auth.wechat_jwks()', 'anon'),
            ('auth.wechat_jwks()', 'authenticated'),
            ('auth.wechat_jwks()', 'service_role'),
            ('auth.wechat_unlimited_qrcode(text, text, boolean, text, integer, boolean, jsonb, boolean, text)', 'service_role'),
            ('auth.wechat_unlimited_qrcode_bytea(text, text, boolean, text, integer, boolean, jsonb, boolean, text)', 'service_role')
        ) AS g(fn, role)
        WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) g.role)
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %I', grant_to.fn, grant_to.role);
    END LOOP;
END
$grants$;

-- The SECURITY DEFINER functions belong to the role without rights (after the grants, which then
-- name it as their grantor, as after an update).
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

-- Exposure: Supabase's PostgREST serves only `public` (db-schemas). wechat_expose() creates thin
-- wrappers there (or in another schema) with the same names, arguments, defaults and grants.
-- They are SECURITY INVOKER: the caller needs the same EXECUTE as for the auth.* function itself,
-- so no grant widens. Their bodies are SQL-standard (BEGIN ATOMIC): the call in them is bound to
-- the extension's function by OID when the wrapper is made, so neither a function planted under
-- the same name nor a schema auth renamed and made anew can catch it later; and the wrapper
-- depends on that function (DROP EXTENSION refuses while wrappers exist: unexpose first).
-- Whether an existing function is a wrapper wechat_expose made: our comment, and our owner.
CREATE FUNCTION auth_wechat.is_wrapper(wrapper regprocedure) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT obj_description(wrapper, 'pg_proc') IS NOT DISTINCT FROM 'auth_wechat wrapper'
       AND (SELECT proowner FROM pg_proc WHERE oid = wrapper) = (SELECT oid FROM pg_roles WHERE rolname = current_user)
$$;
REVOKE ALL ON FUNCTION auth_wechat.is_wrapper(regprocedure) FROM PUBLIC;

-- Refuses anyone but a superuser, even if granted the calling function.
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

CREATE FUNCTION auth.wechat_expose(target_schema name DEFAULT 'public') RETURNS SETOF text
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
COMMENT ON FUNCTION auth.wechat_expose(name) IS
    'Superuser only: creates wrappers of the auth.wechat_* API in a schema PostgREST exposes (default public).';

CREATE FUNCTION auth.wechat_unexpose(target_schema name DEFAULT 'public') RETURNS SETOF text
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
COMMENT ON FUNCTION auth.wechat_unexpose(name) IS 'Superuser only: drops the wrappers auth.wechat_expose created.';
REVOKE ALL ON FUNCTION auth.wechat_expose(name), auth.wechat_unexpose(name) FROM PUBLIC;

-- The columns and indexes, when GoTrue's tables are there already (else the first call adds them).
-- Found in the extension's own schema; the function steps down to the tables' owner.
DO $prepare$
BEGIN
    IF EXISTS (SELECT FROM pg_class
                WHERE relname = 'users' AND relnamespace = (SELECT extnamespace FROM pg_extension WHERE extname = 'auth_wechat')) THEN
        PERFORM auth.wechat_prepare_schema();
    END IF;
END
$prepare$;
