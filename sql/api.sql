-- The public SQL API in schema auth: thin SECURITY DEFINER wrappers over the Rust functions in
-- the private schema auth_wechat, which answer either a result or {"error": {...}}; unwrap turns
-- the latter into an ERROR with PostgREST's PTxyz SQLSTATE (pgrx cannot raise custom SQLSTATEs).

REVOKE ALL ON SCHEMA auth_wechat FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA auth_wechat FROM PUBLIC;

CREATE FUNCTION auth_wechat.unwrap(result jsonb) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF result ? 'error' THEN
        RAISE EXCEPTION USING
            ERRCODE = result #>> '{error,sqlstate}',
            MESSAGE = result #>> '{error,message}',
            DETAIL = result #>> '{error,detail}';
    END IF;
    RETURN result;
END
$$;
REVOKE ALL ON FUNCTION auth_wechat.unwrap(jsonb) FROM PUBLIC;

CREATE FUNCTION auth.wechat_sign_in(code text) RETURNS jsonb
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$ SELECT auth_wechat.unwrap(auth_wechat.sign_in(code)) $$;
COMMENT ON FUNCTION auth.wechat_sign_in(text) IS
    'WeChat Mini Program sign-in: trades a wx.login() code for a Supabase Auth session (signs up on first visit).';

REVOKE ALL ON FUNCTION auth.wechat_sign_in(text) FROM PUBLIC;
DO $grants$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION auth.wechat_sign_in(text) TO %I', r);
        END IF;
    END LOOP;
END
$grants$;
