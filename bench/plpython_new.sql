-- PL/Python: sign-in of a new user each time
\set r random(1, 9000000000000000)
BEGIN;
SELECT set_config('role', 'anon', true), set_config('request.jwt.claims', '{"role":"anon"}', true),
       set_config('request.headers', '{"user-agent":"pgbench"}', true);
SELECT bench.plpython_sign_in('ok.p:client_id-:r.z');
COMMIT;
