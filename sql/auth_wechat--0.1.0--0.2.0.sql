-- auth_wechat 0.1.0 (commit 182df34) to 0.2.0: ALTER EXTENSION auth_wechat UPDATE.
--
-- The SQL surface that changed (the rest of 0.2.0 is in the library, which the server loads anew
-- at its restart; see CHANGELOG.md):
-- - auth.wechat_prepare_schema(), which the first call runs when GoTrue made its tables after the
--   extension (a restore, Supabase's start-up order); anyone may call it. It also adds two
--   indexes for sign-ins from several apps (who holds a unionid), which this script builds at
--   once when the tables are there, rather than leave them to a first call under an API role's
--   statement_timeout;
-- - auth.wechat_user() is STABLE: it writes nothing, so PostgREST may call it in a read-only
--   transaction (GET) and on a standby;
-- - auth.wechat_postgrest_jwks(), superuser only: PostgREST's jwt-secret with the HS256 secrets;
-- - auth.wechat_unexpose() returns the dropped wrappers' signatures (it returned their OIDs);
-- - auth.wechat_oauth_sign_in(code, appid) and auth.wechat_authorize_url(appid, redirect_uri,
--   state, scope): official accounts, websites and mobile apps;
-- - auth.wechat_unlink_identity(identity_id): GoTrue's DELETE /user/identities/{id};
-- - auth.wechat_bind_account, wechat_bind_phone, wechat_unlimited_qrcode(_bytea) take an appid
--   (DEFAULT NULL, the default mini program), and auth.wechat_oauth_bind(code, appid) is new. The
--   changed ones are dropped and created again, with the install's grants: grants added by hand
--   (the QR code to authenticated, say) must be given again;
-- - auth.wechat_sign_in(code, appid DEFAULT NULL): the mini program to sign in to. Dropped and
--   created again, so its grants are given again here, as at install; a wrapper in public keeps
--   working (it names the code only) until auth.wechat_expose() replaces it with one taking the
--   appid, dropping the old one (wechat_expose now drops its own wrappers whose arguments changed).
--
-- Run as a superuser with schema auth on the search path: everything is pg_catalog's, named so,
-- and the search path is pinned besides (see sql/api.sql).
\echo Use "ALTER EXTENSION auth_wechat UPDATE TO '0.2.0'" to load this file. \quit
SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);

CREATE FUNCTION auth.wechat_prepare_schema() RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    missing text;
BEGIN
    SELECT pg_catalog.string_agg(t, ', ') INTO missing
    FROM pg_catalog.unnest(ARRAY['auth.users', 'auth.identities', 'auth.sessions', 'auth.refresh_tokens',
                 'auth.mfa_amr_claims', 'auth.audit_log_entries']) AS t
    WHERE pg_catalog.to_regclass(t) IS NULL;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'auth_wechat needs Supabase Auth''s schema; missing: %', missing
            USING ERRCODE = 'undefined_table',
                  HINT = 'Run Supabase Auth (GoTrue) migrations first, or on plain PostgreSQL load sql/gotrue_schema.sql from the auth_wechat repository.';
    END IF;
    IF (SELECT pg_catalog.count(*) FROM pg_catalog.pg_attribute
         WHERE attrelid OPERATOR(pg_catalog.=) 'auth.users'::pg_catalog.regclass AND NOT attisdropped
           AND attname OPERATOR(pg_catalog.=) ANY (ARRAY['wechat_id', 'wechat_unionid']::pg_catalog.name[])) OPERATOR(pg_catalog.=) 2
       AND pg_catalog.to_regclass('auth.users_wechat_id_key') IS NOT NULL
       AND pg_catalog.to_regclass('auth.users_wechat_unionid_idx') IS NOT NULL
       AND pg_catalog.to_regclass('auth.identities_wechat_unionid_idx') IS NOT NULL THEN
        RETURN;
    END IF;
    LOCK TABLE auth.users IN SHARE ROW EXCLUSIVE MODE;
    ALTER TABLE auth.users ADD COLUMN IF NOT EXISTS wechat_id varchar(255) DEFAULT '',
                           ADD COLUMN IF NOT EXISTS wechat_unionid varchar(255) DEFAULT '';
    IF pg_catalog.to_regclass('auth.users_wechat_id_key') IS NULL THEN
        CREATE UNIQUE INDEX users_wechat_id_key ON auth.users (wechat_id) WHERE wechat_id OPERATOR(pg_catalog.<>) '';
    END IF;
    -- Who holds a unionid, for a sign-in from an app whose openid is new (see src/store.rs).
    IF pg_catalog.to_regclass('auth.users_wechat_unionid_idx') IS NULL THEN
        CREATE INDEX users_wechat_unionid_idx ON auth.users (wechat_unionid) WHERE wechat_unionid OPERATOR(pg_catalog.<>) '';
    END IF;
    IF pg_catalog.to_regclass('auth.identities_wechat_unionid_idx') IS NULL THEN
        CREATE INDEX identities_wechat_unionid_idx ON auth.identities ((identity_data OPERATOR(pg_catalog.->>) 'unionid'))
            WHERE provider OPERATOR(pg_catalog.=) ANY (ARRAY['wechat_mini', 'wechat_official', 'wechat_web', 'wechat_app']);
    END IF;
END
$$;
COMMENT ON FUNCTION auth.wechat_prepare_schema() IS
    'Adds auth_wechat''s columns (wechat_id, wechat_unionid) and indexes to auth.users and auth.identities; idempotent. The first call of the extension runs it.';

ALTER FUNCTION auth.wechat_user() STABLE;

CREATE FUNCTION auth.wechat_postgrest_jwks() RETURNS jsonb
    LANGUAGE c STABLE
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_postgrest_jwks';
COMMENT ON FUNCTION auth.wechat_postgrest_jwks() IS
    'Superuser only: PostgREST''s jwt-secret, the public keys plus the HS256 secrets (legacy secret, oct keys) its tokens may carry.';
REVOKE ALL ON FUNCTION auth.wechat_postgrest_jwks() FROM PUBLIC;

CREATE OR REPLACE FUNCTION auth.wechat_unexpose(target_schema name DEFAULT 'public') RETURNS SETOF text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    signature text;
BEGIN
    -- The signatures as text before the drops: a dropped function's regprocedure prints its OID.
    FOR signature IN
        SELECT p.oid::regprocedure::text FROM pg_proc p
         WHERE p.pronamespace = target_schema::regnamespace
           AND obj_description(p.oid, 'pg_proc') = 'auth_wechat wrapper'
    LOOP
        EXECUTE format('DROP FUNCTION %s', signature);
        RETURN NEXT signature;
    END LOOP;
    NOTIFY pgrst, 'reload schema';
END
$$;

DO $prepare$
BEGIN
    IF pg_catalog.to_regclass('auth.users') IS NOT NULL THEN
        PERFORM auth.wechat_prepare_schema();
    END IF;
END
$prepare$;

DROP FUNCTION auth.wechat_sign_in(text);
CREATE FUNCTION auth.wechat_sign_in(code text, appid text DEFAULT NULL) RETURNS jsonb
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_sign_in';
COMMENT ON FUNCTION auth.wechat_sign_in(text, text) IS
    'WeChat Mini Program sign-in: trades a wx.login() code of the mini program appid (default: auth_wechat.appid) for a Supabase Auth session (signs up on first visit, or links by unionid).';
REVOKE ALL ON FUNCTION auth.wechat_sign_in(text, text) FROM PUBLIC;

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
    FOR f IN
        SELECT p.oid, p.proname, p.proacl, p.proowner,
               pg_get_function_arguments(p.oid) AS args,
               oidvectortypes(p.proargtypes) AS identity_args,
               pg_get_function_result(p.oid) AS result,
               CASE p.provolatile WHEN 's' THEN 'STABLE' ELSE 'VOLATILE' END AS volatility,
               (SELECT string_agg(format('%I => %I', n, n), ', ') FROM unnest(p.proargnames) AS n) AS call_args
          FROM pg_proc p
         WHERE p.pronamespace = 'auth'::regnamespace
           AND p.proname IN ('wechat_sign_in', 'wechat_oauth_sign_in', 'wechat_authorize_url', 'wechat_bind_account', 'wechat_oauth_bind', 'wechat_unlink_identity', 'wechat_bind_phone', 'wechat_refresh_session',
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
        EXECUTE format('CREATE OR REPLACE FUNCTION %I.%I(%s) RETURNS %s LANGUAGE plpgsql %s AS %L',
                       target_schema, f.proname, f.args, f.result, f.volatility,
                       format('BEGIN RETURN auth.%I(%s); END', f.proname, f.call_args));
        IF (SELECT proowner FROM pg_proc WHERE oid = to_regprocedure(signature))
           <> (SELECT oid FROM pg_roles WHERE rolname = current_user) THEN
            RAISE EXCEPTION 'function % changed hands while being replaced; not replacing it', signature;
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

REVOKE ALL ON FUNCTION auth.wechat_oauth_sign_in(text, text), auth.wechat_authorize_url(text, text, text, text)
    FROM PUBLIC;

CREATE FUNCTION auth.wechat_unlink_identity(identity_id uuid) RETURNS jsonb
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_unlink_identity';
COMMENT ON FUNCTION auth.wechat_unlink_identity(uuid) IS
    'GoTrue''s DELETE /user/identities/{id} for WeChat identities: removes one of the signed-in user''s; returns the user.';

REVOKE ALL ON FUNCTION auth.wechat_unlink_identity(uuid) FROM PUBLIC;

DROP FUNCTION auth.wechat_bind_account(text);
DROP FUNCTION auth.wechat_bind_phone(text);
DROP FUNCTION auth.wechat_unlimited_qrcode_bytea(text, text, boolean, text, integer, boolean, jsonb, boolean);
DROP FUNCTION auth.wechat_unlimited_qrcode(text, text, boolean, text, integer, boolean, jsonb, boolean);
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

CREATE FUNCTION auth.wechat_bind_phone(code text, appid text DEFAULT NULL) RETURNS jsonb
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'wechat_bind_phone';
COMMENT ON FUNCTION auth.wechat_bind_phone(text, text) IS
    'Sets the signed-in user''s phone to the number WeChat confirmed for a getPhoneNumber code of the mini program appid; returns the user.';

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
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pg_catalog.decode(auth.wechat_unlimited_qrcode(
        scene, page, check_path, env_version, width, auto_color, line_color, is_hyaline, appid) ->> 'imgBase64', 'base64');
END
$$;
COMMENT ON FUNCTION auth.wechat_unlimited_qrcode_bytea(text, text, boolean, text, integer, boolean, jsonb, boolean, text) IS
    'auth.wechat_unlimited_qrcode for server-side callers: the image bytes (JPEG, or PNG when is_hyaline).';

REVOKE ALL ON FUNCTION auth.wechat_bind_account(text, text), auth.wechat_oauth_bind(text, text),
    auth.wechat_bind_phone(text, text), auth.wechat_unlimited_qrcode(text, text, boolean, text, integer, boolean, jsonb, boolean, text),
    auth.wechat_unlimited_qrcode_bytea(text, text, boolean, text, integer, boolean, jsonb, boolean, text) FROM PUBLIC;
-- The new and re-created functions' grants, as the install gives them (sql/api.sql).
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
            ('auth.wechat_unlink_identity(uuid)', 'authenticated'),
            ('auth.wechat_bind_account(text, text)', 'authenticated'),
            ('auth.wechat_oauth_bind(text, text)', 'authenticated'),
            ('auth.wechat_bind_phone(text, text)', 'authenticated'),
            ('auth.wechat_unlimited_qrcode(text, text, boolean, text, integer, boolean, jsonb, boolean, text)', 'service_role'),
            ('auth.wechat_unlimited_qrcode_bytea(text, text, boolean, text, integer, boolean, jsonb, boolean, text)', 'service_role')
        ) AS g(fn, role)
        WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) g.role)
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %I', grant_to.fn, grant_to.role);
    END LOOP;
END
$grants$;
