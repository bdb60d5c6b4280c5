-- the extension: a user (created in the same transaction) confirms a new phone number
\set r random(1, 999999999999)
BEGIN;
INSERT INTO auth.users (instance_id, id, aud, role, raw_app_meta_data, raw_user_meta_data, created_at, updated_at,
                        confirmation_token, recovery_token, email_change_token_new, email_change)
VALUES ('00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated', 'authenticated',
        '{"provider":"wechat_mini","providers":["wechat_mini"]}', '{}', now(), now(), '', '', '', '')
RETURNING id AS uid \gset
SELECT set_config('role', 'authenticated', true),
       set_config('request.jwt.claims', json_build_object('role', 'authenticated', 'sub', ':uid')::text, true);
SELECT auth.wechat_bind_phone('phone.86.' || (10 + :client_id) || lpad(:r::text, 12, '0') || '.z');
COMMIT;
