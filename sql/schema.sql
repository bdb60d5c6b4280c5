-- What auth_wechat needs of Supabase Auth's schema, and the two columns it adds.
--
-- Nothing here is an extension member: the columns and the index stay with auth.users when the
-- extension is dropped, so DROP EXTENSION never deletes user data, and pg_dump keeps it all.
--
-- Run as a superuser with schema auth on the search path, where non-superusers may create
-- functions and operators: everything used here is pg_catalog's, named so, and the search path is
-- pinned to pg_catalog besides (see sql/api.sql).
SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);

DO $require$
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
END
$require$;

-- MemFire's layout: varchar columns holding '' for a user with no WeChat binding. One openid
-- belongs to at most one user; '' and NULL both mean unbound and may repeat. (DO blocks rather
-- than IF NOT EXISTS: an extension script may not skip creating an object it does not own.)
DO $columns$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                    WHERE attrelid OPERATOR(pg_catalog.=) 'auth.users'::pg_catalog.regclass
                      AND attname OPERATOR(pg_catalog.=) 'wechat_id' AND NOT attisdropped) THEN
        ALTER TABLE auth.users ADD COLUMN wechat_id varchar(255) DEFAULT '';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                    WHERE attrelid OPERATOR(pg_catalog.=) 'auth.users'::pg_catalog.regclass
                      AND attname OPERATOR(pg_catalog.=) 'wechat_unionid' AND NOT attisdropped) THEN
        ALTER TABLE auth.users ADD COLUMN wechat_unionid varchar(255) DEFAULT '';
    END IF;
    IF pg_catalog.to_regclass('auth.users_wechat_id_key') IS NULL THEN
        CREATE UNIQUE INDEX users_wechat_id_key ON auth.users (wechat_id) WHERE wechat_id OPERATOR(pg_catalog.<>) '';
    END IF;
END
$columns$;
