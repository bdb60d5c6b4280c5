-- the extension's refresh without its SQL wrapper: auth_wechat.refresh_session called directly
-- (by the superuser who owns it; the same statements as `refresh` otherwise), to measure what the
-- public PL/pgSQL wrapper (SECURITY DEFINER, its SET, unwrap) costs a call
BEGIN;
SELECT token AS t FROM bench.tokens WHERE client_id = :client_id \gset
SELECT set_config('role', 'postgres', true);
SELECT auth_wechat.refresh_session(':t') ->> 'refresh_token' AS n \gset
SELECT set_config('role', 'postgres', true);
UPDATE bench.tokens SET token = ':n' WHERE client_id = :client_id;
COMMIT;
