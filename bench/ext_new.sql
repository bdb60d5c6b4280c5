-- the extension: sign-in of a new user (sign-up) each time
\set r random(1, 9000000000000000)
BEGIN;
SELECT set_config('role', 'anon', true), set_config('request.jwt.claims', '{"role":"anon"}', true),
       set_config('request.headers', '{"user-agent":"pgbench"}', true);
SELECT auth.wechat_sign_in('ok.n:client_id-:r.z');
COMMIT;
