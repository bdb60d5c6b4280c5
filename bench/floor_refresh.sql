-- the floor of a refresh: each client rotates its own session's token, the same reads and writes, no JWT
BEGIN;
SELECT token AS t FROM bench.floor_tokens WHERE client_id = :client_id \gset
SELECT set_config('role', 'anon', true);
SELECT bench.floor_refresh(':t') ->> 'refresh_token' AS n \gset
SELECT set_config('role', 'postgres', true);
UPDATE bench.floor_tokens SET token = ':n' WHERE client_id = :client_id;
COMMIT;
