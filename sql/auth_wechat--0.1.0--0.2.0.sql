-- auth_wechat 0.1.0 (commit 182df34) to 0.2.0: ALTER EXTENSION auth_wechat UPDATE.
--
-- The SQL surface that changed (the rest of 0.2.0 is in the library, which the server loads anew
-- at its restart; see CHANGELOG.md):
-- - auth.wechat_prepare_schema(), which the first call runs when GoTrue made its tables after the
--   extension (a restore, Supabase's start-up order); anyone may call it;
-- - auth.wechat_user() is STABLE: it writes nothing, so PostgREST may call it in a read-only
--   transaction (GET) and on a standby;
-- - auth.wechat_unlimited_qrcode_bytea names pg_catalog.decode;
-- - auth.wechat_postgrest_jwks(), superuser only: PostgREST's jwt-secret with the HS256 secrets;
-- - auth.wechat_unexpose() returns the dropped wrappers' signatures (it returned their OIDs).
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
       AND pg_catalog.to_regclass('auth.users_wechat_id_key') IS NOT NULL THEN
        RETURN;
    END IF;
    LOCK TABLE auth.users IN SHARE ROW EXCLUSIVE MODE;
    ALTER TABLE auth.users ADD COLUMN IF NOT EXISTS wechat_id varchar(255) DEFAULT '',
                           ADD COLUMN IF NOT EXISTS wechat_unionid varchar(255) DEFAULT '';
    IF pg_catalog.to_regclass('auth.users_wechat_id_key') IS NULL THEN
        CREATE UNIQUE INDEX users_wechat_id_key ON auth.users (wechat_id) WHERE wechat_id OPERATOR(pg_catalog.<>) '';
    END IF;
END
$$;
COMMENT ON FUNCTION auth.wechat_prepare_schema() IS
    'Adds auth_wechat''s columns (wechat_id, wechat_unionid) and index to auth.users; idempotent. The first call of the extension runs it.';

ALTER FUNCTION auth.wechat_user() STABLE;

CREATE OR REPLACE FUNCTION auth.wechat_unlimited_qrcode_bytea(
    scene text, page text DEFAULT NULL, check_path boolean DEFAULT true, env_version text DEFAULT 'release',
    width integer DEFAULT 430, auto_color boolean DEFAULT false, line_color jsonb DEFAULT NULL,
    is_hyaline boolean DEFAULT false) RETURNS bytea
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pg_catalog.decode(auth.wechat_unlimited_qrcode(
        scene, page, check_path, env_version, width, auto_color, line_color, is_hyaline) ->> 'imgBase64', 'base64');
END
$$;

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
