-- What auth_wechat needs of Supabase Auth's schema, and the two columns it adds.
--
-- Nothing here is an extension member: the columns and the index stay with auth.users when the
-- extension is dropped, so DROP EXTENSION never deletes user data, and pg_dump keeps it all.

DO $require$
DECLARE
    missing text;
BEGIN
    SELECT string_agg(t, ', ') INTO missing
    FROM unnest(ARRAY['auth.users', 'auth.identities', 'auth.sessions', 'auth.refresh_tokens', 'auth.mfa_amr_claims',
                 'auth.audit_log_entries']) AS t
    WHERE to_regclass(t) IS NULL;
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
    IF NOT EXISTS (SELECT 1 FROM pg_attribute
                    WHERE attrelid = 'auth.users'::regclass AND attname = 'wechat_id' AND NOT attisdropped) THEN
        ALTER TABLE auth.users ADD COLUMN wechat_id varchar(255) DEFAULT '';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_attribute
                    WHERE attrelid = 'auth.users'::regclass AND attname = 'wechat_unionid' AND NOT attisdropped) THEN
        ALTER TABLE auth.users ADD COLUMN wechat_unionid varchar(255) DEFAULT '';
    END IF;
    IF to_regclass('auth.users_wechat_id_key') IS NULL THEN
        CREATE UNIQUE INDEX users_wechat_id_key ON auth.users (wechat_id) WHERE wechat_id <> '';
    END IF;
END
$columns$;
