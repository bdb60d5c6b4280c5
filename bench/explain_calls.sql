-- Calls of the extension that no benchmark case makes, so that bench/explain.py sees the plans of
-- their statements too: v2 refresh tokens, a v1 client retrying with its revoked token (the
-- session's current token is looked up), the current user and sign-out. Each repeated call runs
-- eight times, past the five after which a backend's plan cache settles on its kept plan.
DO $$
DECLARE
    session jsonb;
    token text;
    uid uuid;
BEGIN
    PERFORM set_config('auth_wechat.refresh_token_algorithm', 'v2', true);
    session := auth.wechat_sign_in('ok.explain.v2');
    token := session ->> 'refresh_token';
    FOR i IN 1..8 LOOP
        session := auth.wechat_refresh_session(token);
        token := session ->> 'refresh_token';
    END LOOP;
    uid := (session -> 'user' ->> 'id')::uuid;
    PERFORM set_config('request.jwt.claims', json_build_object(
        'sub', uid, 'role', 'authenticated',
        'session_id', (SELECT id FROM auth.sessions WHERE user_id = uid))::text, true);
    FOR i IN 1..8 LOOP
        PERFORM auth.wechat_user();
    END LOOP;
    PERFORM set_config('auth_wechat.refresh_token_algorithm', 'v1', true);
    token := auth.wechat_sign_in('ok.explain.v1') ->> 'refresh_token';
    FOR i IN 1..8 LOOP
        PERFORM auth.wechat_refresh_session(token);  -- rotates once, then retries within the reuse interval
    END LOOP;
    PERFORM auth.wechat_sign_out('global');
END
$$;
