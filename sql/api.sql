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

CREATE FUNCTION auth.wechat_bind_account(code text) RETURNS jsonb
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$ SELECT auth_wechat.unwrap(auth_wechat.bind_account(code)) $$;
COMMENT ON FUNCTION auth.wechat_bind_account(text) IS
    'Binds the signed-in user to the WeChat user of a wx.login() code; returns a session with a fresh access token.';

CREATE FUNCTION auth.wechat_bind_phone(code text) RETURNS jsonb
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$ SELECT auth_wechat.unwrap(auth_wechat.bind_phone(code)) $$;
COMMENT ON FUNCTION auth.wechat_bind_phone(text) IS
    'Sets the signed-in user''s phone to the number WeChat confirmed for a getPhoneNumber code; returns a session.';

CREATE FUNCTION auth.wechat_unlimited_qrcode(
    scene text, page text DEFAULT NULL, check_path boolean DEFAULT true, env_version text DEFAULT 'release',
    width integer DEFAULT 430, auto_color boolean DEFAULT false, line_color jsonb DEFAULT NULL,
    is_hyaline boolean DEFAULT false) RETURNS jsonb
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT auth_wechat.unwrap(auth_wechat.unlimited_qrcode(
        scene, page, check_path, env_version, width, auto_color, line_color, is_hyaline))
$$;
COMMENT ON FUNCTION auth.wechat_unlimited_qrcode(text, text, boolean, text, integer, boolean, jsonb, boolean) IS
    'An unlimited mini-program code (getwxacodeunlimit) as {"imgBase64": ...}.';

CREATE FUNCTION auth.wechat_unlimited_qrcode_bytea(
    scene text, page text DEFAULT NULL, check_path boolean DEFAULT true, env_version text DEFAULT 'release',
    width integer DEFAULT 430, auto_color boolean DEFAULT false, line_color jsonb DEFAULT NULL,
    is_hyaline boolean DEFAULT false) RETURNS bytea
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT decode(auth.wechat_unlimited_qrcode(
        scene, page, check_path, env_version, width, auto_color, line_color, is_hyaline) ->> 'imgBase64', 'base64')
$$;
COMMENT ON FUNCTION auth.wechat_unlimited_qrcode_bytea(text, text, boolean, text, integer, boolean, jsonb, boolean) IS
    'auth.wechat_unlimited_qrcode for server-side callers: the image bytes (JPEG, or PNG when is_hyaline).';

-- Superuser tools for the shared access token: SECURITY INVOKER over owner-only internals, so
-- only superusers get through. Neither ever shows the token itself.
CREATE FUNCTION auth.wechat_access_token_status() RETURNS jsonb
    LANGUAGE sql VOLATILE
AS $$ SELECT auth_wechat.unwrap(auth_wechat.access_token_status()) $$;
COMMENT ON FUNCTION auth.wechat_access_token_status() IS
    'Superuser only: whether the WeChat access token of the configured app is cached, and until when.';

CREATE FUNCTION auth.wechat_refresh_access_token(force boolean DEFAULT false) RETURNS jsonb
    LANGUAGE sql VOLATILE
AS $$ SELECT auth_wechat.unwrap(auth_wechat.refresh_access_token(force)) $$;
COMMENT ON FUNCTION auth.wechat_refresh_access_token(boolean) IS
    'Superuser only: fetch the WeChat access token now; force => WeChat revokes the old one (after a leak).';

REVOKE ALL ON FUNCTION auth.wechat_sign_in(text), auth.wechat_bind_account(text), auth.wechat_bind_phone(text),
    auth.wechat_unlimited_qrcode(text, text, boolean, text, integer, boolean, jsonb, boolean),
    auth.wechat_unlimited_qrcode_bytea(text, text, boolean, text, integer, boolean, jsonb, boolean),
    auth.wechat_access_token_status(), auth.wechat_refresh_access_token(boolean)
    FROM PUBLIC;

-- Who may call what, for the Supabase roles that exist here.
DO $grants$
DECLARE
    grant_to record;
BEGIN
    FOR grant_to IN
        SELECT * FROM (VALUES
            ('auth.wechat_sign_in(text)', 'anon'),
            ('auth.wechat_sign_in(text)', 'authenticated'),
            ('auth.wechat_bind_account(text)', 'authenticated'),
            ('auth.wechat_bind_phone(text)', 'authenticated'),
            ('auth.wechat_unlimited_qrcode(text, text, boolean, text, integer, boolean, jsonb, boolean)', 'service_role'),
            ('auth.wechat_unlimited_qrcode_bytea(text, text, boolean, text, integer, boolean, jsonb, boolean)', 'service_role')
        ) AS g(fn, role)
        WHERE EXISTS (SELECT 1 FROM pg_roles WHERE rolname = g.role)
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', grant_to.fn, grant_to.role);
    END LOOP;
END
$grants$;
