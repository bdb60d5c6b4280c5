-- the floor: the same writes for the same user per client
\set r random(1, 9000000000000000)
BEGIN;
SELECT set_config('role', 'anon', true), set_config('request.jwt.claims', '{"role":"anon"}', true),
       set_config('request.headers', '{"user-agent":"pgbench"}', true);
SELECT bench.floor_sign_in('ofr:client_id');
COMMIT;
