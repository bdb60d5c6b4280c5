-- the extension: a user (created in the same transaction, with a session: binds need a live one) confirms a new phone number
\set r random(1, 999999999999)
BEGIN;
WITH /* bench set-up */ u AS (
    INSERT INTO auth.users (instance_id, id, aud, role, raw_app_meta_data, raw_user_meta_data, created_at, updated_at,
                            confirmation_token, recovery_token, email_change_token_new, email_change)
    VALUES ('00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated', 'authenticated',
            '{"provider":"wechat_mini","providers":["wechat_mini"]}', '{}', now(), now(), '', '', '', '')
    RETURNING id
), s AS (
    INSERT INTO auth.sessions (id, user_id, created_at, updated_at, aal)
    SELECT gen_random_uuid(), id, now(), now(), 'aal1' FROM u
    RETURNING id, user_id
), t AS (
    INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, session_id)
    SELECT '00000000-0000-0000-0000-000000000000', substr(md5(random()::text), 1, 12), user_id::text, false, now(), now(), id
      FROM s
)
SELECT user_id AS uid, id AS sid FROM s \gset
SELECT set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', json_build_object('role', 'authenticated', 'sub', ':uid', 'session_id', ':sid')::text, true);
SELECT auth.wechat_bind_phone('phone.86.' || (10 + :client_id) || lpad(:r::text, 12, '0') || '.z');
COMMIT;
