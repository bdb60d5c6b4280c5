-- What auth_wechat needs of Supabase Auth's schema, and the two columns and three indexes it adds.
--
-- Nothing added here is an extension member: the columns and the indexes stay with the tables when
-- the extension is dropped, so DROP EXTENSION never deletes user data, and pg_dump keeps it all.
--
-- CREATE EXTENSION may run before GoTrue has made its tables: pg_dump writes the extension before
-- the tables (and a restore then brings the columns and the index with auth.users), and Supabase
-- creates extensions before GoTrue runs its migrations. So the install adds the columns only when
-- auth.users is there; otherwise auth.wechat_prepare_schema() does it at the extension's first
-- call, as the tables' owner, or when called.
--
-- Run as a superuser with schema auth on the search path, where non-superusers may create
-- functions and operators: everything used here is pg_catalog's, named so, and the search path is
-- pinned to pg_catalog besides (see sql/api.sql).
SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);

-- MemFire's layout: varchar columns holding '' for a user with no WeChat binding. One openid
-- belongs to at most one user; '' and NULL both mean unbound and may repeat. Idempotent, and a
-- no-op without a lock once all is there; only the owner of auth.users (or a superuser) can add
-- anything, so it may be granted to anyone. (A DO-style body rather than IF NOT EXISTS on the
-- index: two first calls at once would both pass that check; the table lock orders them.)
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

DO $prepare$
BEGIN
    IF pg_catalog.to_regclass('auth.users') IS NOT NULL THEN
        PERFORM auth.wechat_prepare_schema();
    ELSE
        RAISE NOTICE 'auth_wechat: auth.users is not there yet; its WeChat columns are added at the first call once GoTrue has made its tables';
    END IF;
END
$prepare$;
