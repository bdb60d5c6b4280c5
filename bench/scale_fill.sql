-- The tables of a project that has been live for a while, for the scale run of scripts/bench.sh
-- (BENCH_SCALE=1): WeChat users as the extension writes them (wechat_id set, a wechat_mini
-- identity each, every fifth with a phone), one session each with its amr claim, five refresh
-- tokens per session (a rotation chain: four revoked, the newest live) and audit rows. One
-- INSERT ... SELECT per table. Sizes are psql variables (defaults: 1 M users, 5 M refresh tokens
-- in 1 M sessions, 10 M audit rows):
--
--   psql -v users=1000000 -v tokens_per_session=5 -v audit=10000000 -f bench/scale_fill.sql
--
-- Indexes end up exactly as the schema has them: each table's indexes and unique/primary-key
-- constraints that no foreign key depends on are dropped before its INSERT and rebuilt after it
-- from their own definitions (pg_get_indexdef / pg_get_constraintdef, same names); the primary keys
-- of auth.users and auth.sessions, which foreign keys reference, stay and are filled row by row.
-- Foreign-key triggers are off during the load (session_replication_role = replica): the rows
-- reference each other by construction (ids are md5 of the row number).
\if :{?users}
\else
    \set users 1000000
\endif
\if :{?tokens_per_session}
\else
    \set tokens_per_session 5
\endif
\if :{?audit}
\else
    \set audit 10000000
\endif
\set ON_ERROR_STOP on
SET session_replication_role = replica;
SET maintenance_work_mem = '1GB';
SET synchronous_commit = off;

-- Drops T's droppable indexes and returns the statements that rebuild them.
CREATE FUNCTION pg_temp.drop_indexes(t regclass) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    rebuild text[] := '{}';
    ix record;
BEGIN
    FOR ix IN
        SELECT i.indexrelid::regclass AS index_name, c.conname,
               CASE WHEN c.oid IS NULL THEN pg_get_indexdef(i.indexrelid)
                    ELSE format('ALTER TABLE %s ADD CONSTRAINT %I %s', t, c.conname, pg_get_constraintdef(c.oid)) END AS def
          FROM pg_index i
          LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = t AND c.contype IN ('p', 'u')
         WHERE i.indrelid = t
           AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = i.indexrelid)
    LOOP
        IF ix.conname IS NULL THEN
            EXECUTE format('DROP INDEX %s', ix.index_name);
        ELSE
            EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', t, ix.conname);
        END IF;
        rebuild := rebuild || ix.def;
    END LOOP;
    RETURN rebuild;
END
$$;
CREATE FUNCTION pg_temp.rebuild(statements text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    s text;
BEGIN
    FOREACH s IN ARRAY statements LOOP
        EXECUTE s;
    END LOOP;
END
$$;

\timing on
\echo == auth.users
SELECT pg_temp.drop_indexes('auth.users') AS rebuild \gset
INSERT INTO auth.users (instance_id, id, aud, role, email, encrypted_password, confirmation_token, recovery_token,
                        email_change_token_new, email_change, phone_change, phone_change_token,
                        email_change_token_current, reauthentication_token, raw_app_meta_data, raw_user_meta_data,
                        is_super_admin, is_sso_user, is_anonymous, created_at, updated_at, last_sign_in_at,
                        phone, phone_confirmed_at, wechat_id, wechat_unionid)
SELECT '00000000-0000-0000-0000-000000000000', md5('u' || g)::uuid, 'authenticated', 'authenticated', NULL, '',
       '', '', '', '', '', '', '', '',
       CASE WHEN g % 5 = 0 THEN '{"provider": "wechat_mini", "providers": ["wechat_mini", "phone"]}'
            ELSE '{"provider": "wechat_mini", "providers": ["wechat_mini"]}' END::jsonb, '{}',
       false, false, false, t, t, t,
       CASE WHEN g % 5 = 0 THEN '8613' || lpad(g::text, 9, '0') END, CASE WHEN g % 5 = 0 THEN t END,
       'ofill' || g, ''
  FROM generate_series(1, :users) g, LATERAL (SELECT now() - (g % 8760) * interval '1 hour' AS t) x;
SELECT pg_temp.rebuild(:'rebuild') \g /dev/null

\echo == auth.identities
SELECT pg_temp.drop_indexes('auth.identities') AS rebuild \gset
INSERT INTO auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at, id)
SELECT 'ofill' || g, md5('u' || g)::uuid, jsonb_build_object('sub', 'ofill' || g, 'openid', 'ofill' || g),
       'wechat_mini', t, t, t, md5('i' || g)::uuid
  FROM generate_series(1, :users) g, LATERAL (SELECT now() - (g % 8760) * interval '1 hour' AS t) x;
SELECT pg_temp.rebuild(:'rebuild') \g /dev/null

\echo == auth.sessions
SELECT pg_temp.drop_indexes('auth.sessions') AS rebuild \gset
INSERT INTO auth.sessions (id, user_id, created_at, updated_at, aal, refreshed_at, user_agent)
SELECT md5('s' || g)::uuid, md5('u' || g)::uuid, t, t, 'aal1', (t AT TIME ZONE 'UTC') + interval '4 hours', 'fill'
  FROM generate_series(1, :users) g, LATERAL (SELECT now() - (g % 8760) * interval '1 hour' AS t) x;
SELECT pg_temp.rebuild(:'rebuild') \g /dev/null

\echo == auth.mfa_amr_claims
SELECT pg_temp.drop_indexes('auth.mfa_amr_claims') AS rebuild \gset
INSERT INTO auth.mfa_amr_claims (id, session_id, created_at, updated_at, authentication_method)
SELECT md5('c' || g)::uuid, md5('s' || g)::uuid, now(), now(), 'oauth'
  FROM generate_series(1, :users) g;
SELECT pg_temp.rebuild(:'rebuild') \g /dev/null

\echo == auth.refresh_tokens
-- Token n of session s is row (s - 1) * k + n; tokens are unique (a random-looking prefix and the
-- row number in hex, 12 characters), each one's parent is the one before it, all but the newest are revoked.
SELECT pg_temp.drop_indexes('auth.refresh_tokens') AS rebuild \gset
INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, parent, session_id)
SELECT '00000000-0000-0000-0000-000000000000', left(md5('t' || g), 5) || lpad(to_hex(g), 7, '0'), md5('u' || s)::uuid::text,
       n < :tokens_per_session, t, t,
       CASE WHEN n > 1 THEN left(md5('t' || (g - 1)), 5) || lpad(to_hex(g - 1), 7, '0') END, md5('s' || s)::uuid
  FROM generate_series(1, :users * :tokens_per_session) g,
       LATERAL (SELECT (g - 1) / :tokens_per_session + 1 AS s, (g - 1) % :tokens_per_session + 1 AS n) x,
       LATERAL (SELECT now() - (:tokens_per_session - n) * interval '1 hour' AS t) y;
SELECT pg_temp.rebuild(:'rebuild') \g /dev/null

\echo == auth.audit_log_entries
SELECT pg_temp.drop_indexes('auth.audit_log_entries') AS rebuild \gset
INSERT INTO auth.audit_log_entries (instance_id, id, payload, created_at, ip_address)
SELECT '00000000-0000-0000-0000-000000000000', md5('a' || g)::uuid,
       json_build_object('actor_id', md5('u' || (g % :users + 1))::uuid, 'actor_username', '', 'actor_via_sso', false,
                         'action', (ARRAY['login', 'token_refreshed', 'token_revoked', 'user_signedup'])[g % 4 + 1],
                         'log_type', (ARRAY['account', 'token', 'token', 'team'])[g % 4 + 1]),
       now() - (g % 8760) * interval '1 hour', ''
  FROM generate_series(1, :audit) g;
SELECT pg_temp.rebuild(:'rebuild') \g /dev/null
\timing off

RESET session_replication_role;
