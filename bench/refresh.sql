-- the extension: each client refreshes its own session, rotating its token every time
BEGIN;
SELECT token AS t FROM bench.tokens WHERE client_id = :client_id \gset
SELECT set_config('role', 'anon', true);
SELECT auth.wechat_refresh_session(':t') ->> 'refresh_token' AS n \gset
SELECT set_config('role', 'postgres', true);
UPDATE bench.tokens SET token = ':n' WHERE client_id = :client_id;
COMMIT;
