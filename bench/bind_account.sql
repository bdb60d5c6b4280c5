-- the extension: a phone user (created in the same transaction) binds a new WeChat account
\set r random(1, 9000000000000000)
BEGIN;
INSERT INTO auth.users (instance_id, id, aud, role, raw_app_meta_data, raw_user_meta_data, created_at, updated_at,
                        confirmation_token, recovery_token, email_change_token_new, email_change)
VALUES ('00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated', 'authenticated',
        '{"provider":"phone","providers":["phone"]}', '{}', now(), now(), '', '', '', '')
RETURNING id AS uid \gset
SELECT set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', json_build_object('role', 'authenticated', 'sub', ':uid')::text, true);
SELECT auth.wechat_bind_account('ok.b' || :client_id || 'x' || :r || '.z');
COMMIT;
