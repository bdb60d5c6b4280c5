-- The two comparison points of the benchmark, in schema bench, called exactly like
-- auth.wechat_sign_in (SECURITY DEFINER, EXECUTE for anon):
--
--   bench.floor_sign_in(openid)  the floor: the same SQL reads and writes as the extension's
--                                sign-in, fed the openid WeChat would answer, with no HTTP and
--                                no JWT: what any implementation must at least spend;
--   bench.plpython_sign_in(code) the alternative a Supabase user would write: PL/Python with a
--                                kept-alive http.client connection, plans prepared once per
--                                backend, PyJWT, the same checks and rows;
--   bench.floor_refresh(token)   the floor of a refresh: the reads and writes of
--                                auth.wechat_refresh_session's v1 rotation, with no JWT.

CREATE SCHEMA bench;
-- The current refresh token of each pgbench client: the extension's sessions (case refresh) and
-- the floor's (case floor_refresh).
CREATE TABLE bench.tokens (client_id int PRIMARY KEY, token text NOT NULL);
CREATE TABLE bench.floor_tokens (client_id int PRIMARY KEY, token text NOT NULL);

CREATE FUNCTION bench.floor_sign_in(openid text) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid uuid;
    banned boolean;
    sid uuid := gen_random_uuid();
    token text := substr(md5(random()::text), 1, 12);
    headers jsonb := nullif(current_setting('request.headers', true), '')::jsonb;
    user_json jsonb;
BEGIN
    SELECT id, coalesce(banned_until > now(), false) INTO uid, banned
      FROM auth.users WHERE wechat_id = openid AND wechat_id <> '';
    IF uid IS NULL THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('auth_wechat:openid:' || openid, 0));
        INSERT INTO auth.users (instance_id, id, aud, role, email, encrypted_password, confirmation_token, recovery_token,
                                email_change_token_new, email_change, phone_change, phone_change_token,
                                email_change_token_current, reauthentication_token, raw_app_meta_data,
                                raw_user_meta_data, is_super_admin, is_sso_user, is_anonymous, created_at, updated_at,
                                wechat_id, wechat_unionid)
        VALUES ('00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated', 'authenticated', NULL,
                '', '', '', '', '', '', '', '', '', '{"provider":"wechat_mini","providers":["wechat_mini"]}', '{}',
                false, false, false, now(), now(), openid, '')
        ON CONFLICT (wechat_id) WHERE wechat_id <> '' DO NOTHING
        RETURNING id INTO uid;
        IF uid IS NULL THEN
            SELECT id INTO uid FROM auth.users WHERE wechat_id = openid AND wechat_id <> '';
        ELSE
            INSERT INTO auth.audit_log_entries (instance_id, id, payload, created_at, ip_address)
            VALUES ('00000000-0000-0000-0000-000000000000', gen_random_uuid(),
                    json_build_object('actor_id', uid, 'action', 'user_signedup', 'log_type', 'team'), now(), '');
        END IF;
    END IF;
    UPDATE auth.users SET last_sign_in_at = now() WHERE id = uid;
    INSERT INTO auth.identities AS i (provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at)
    VALUES (openid, uid, jsonb_build_object('sub', openid, 'openid', openid), 'wechat_mini', now(), now(), now())
    ON CONFLICT (provider_id, provider) DO UPDATE
       SET user_id = excluded.user_id, identity_data = i.identity_data || excluded.identity_data,
           last_sign_in_at = excluded.last_sign_in_at, updated_at = excluded.updated_at;
    INSERT INTO auth.audit_log_entries (instance_id, id, payload, created_at, ip_address)
    VALUES ('00000000-0000-0000-0000-000000000000', gen_random_uuid(),
            json_build_object('actor_id', uid, 'action', 'login', 'log_type', 'account'), now(), '');
    INSERT INTO auth.sessions (id, user_id, created_at, updated_at, aal, user_agent)
    VALUES (sid, uid, now(), now(), 'aal1', headers ->> 'user-agent');
    INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, session_id)
    VALUES ('00000000-0000-0000-0000-000000000000', token, uid::text, false, now(), now(), sid);
    INSERT INTO auth.mfa_amr_claims (id, session_id, created_at, updated_at, authentication_method)
    VALUES (gen_random_uuid(), sid, now(), now(), 'oauth');
    SELECT jsonb_build_object('id', u.id, 'aud', u.aud, 'role', u.role, 'email', coalesce(u.email, ''),
                              'phone', coalesce(u.phone, ''), 'app_metadata', u.raw_app_meta_data,
                              'user_metadata', u.raw_user_meta_data, 'wechat_id', u.wechat_id,
                              'identities', (SELECT jsonb_agg(to_jsonb(i)) FROM auth.identities i WHERE i.user_id = u.id),
                              'created_at', u.created_at, 'last_sign_in_at', u.last_sign_in_at)
      INTO user_json FROM auth.users u WHERE u.id = uid;
    RETURN jsonb_build_object('refresh_token', token, 'session_id', sid, 'user', user_json);
END
$$;

-- The floor of a refresh (v1 rotation, as auth.wechat_refresh_session does it): lock the session
-- the token names, read the token with its session and user, revoke it, issue a child in the same
-- session, move the session's refreshed_at/user_agent, two audit rows (token_refreshed,
-- token_revoked), read the user JSON. No JWT, no reuse/expiry logic beyond the revoked and banned
-- checks.
CREATE FUNCTION bench.floor_refresh(refresh_token text) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    sid uuid;
    uid uuid;
    tid bigint;
    is_revoked boolean;
    banned boolean;
    child text := substr(md5(random()::text), 1, 12);
    headers jsonb := nullif(current_setting('request.headers', true), '')::jsonb;
    user_json jsonb;
BEGIN
    SELECT s.id INTO sid FROM auth.refresh_tokens r JOIN auth.sessions s ON s.id = r.session_id
     WHERE r.token = refresh_token FOR UPDATE OF s;
    IF sid IS NULL THEN
        RAISE EXCEPTION 'refresh token not found' USING ERRCODE = 'PT400';
    END IF;
    SELECT r.id, coalesce(r.revoked, false), s.user_id, coalesce(u.banned_until > now(), false)
      INTO tid, is_revoked, uid, banned
      FROM auth.refresh_tokens r
      JOIN auth.sessions s ON s.id = r.session_id
      JOIN auth.users u ON u.id = s.user_id AND u.deleted_at IS NULL
     WHERE r.token = refresh_token;
    IF is_revoked OR banned THEN
        RAISE EXCEPTION 'refresh token revoked or user banned' USING ERRCODE = 'PT400';
    END IF;
    UPDATE auth.refresh_tokens SET revoked = true, updated_at = now() WHERE id = tid;
    INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, parent, session_id)
    VALUES ('00000000-0000-0000-0000-000000000000', child, uid::text, false, now(), now(), refresh_token, sid);
    UPDATE auth.sessions
       SET refreshed_at = timezone('utc', now()), updated_at = now(), user_agent = coalesce(headers ->> 'user-agent', user_agent)
     WHERE id = sid;
    INSERT INTO auth.audit_log_entries (instance_id, id, payload, created_at, ip_address)
    VALUES ('00000000-0000-0000-0000-000000000000', gen_random_uuid(),
            json_build_object('actor_id', uid, 'action', 'token_refreshed', 'log_type', 'token'), now(), ''),
           ('00000000-0000-0000-0000-000000000000', gen_random_uuid(),
            json_build_object('actor_id', uid, 'action', 'token_revoked', 'log_type', 'token'), now(), '');
    SELECT jsonb_build_object('id', u.id, 'aud', u.aud, 'role', u.role, 'email', coalesce(u.email, ''),
                              'phone', coalesce(u.phone, ''), 'app_metadata', u.raw_app_meta_data,
                              'user_metadata', u.raw_user_meta_data, 'wechat_id', u.wechat_id,
                              'identities', (SELECT jsonb_agg(to_jsonb(i)) FROM auth.identities i WHERE i.user_id = u.id),
                              'created_at', u.created_at, 'last_sign_in_at', u.last_sign_in_at)
      INTO user_json FROM auth.users u WHERE u.id = uid;
    RETURN jsonb_build_object('refresh_token', child, 'session_id', sid, 'user', user_json);
END
$$;

CREATE EXTENSION plpython3u;

CREATE FUNCTION bench.plpython_sign_in(code text) RETURNS jsonb
    LANGUAGE plpython3u SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
import http.client, json, secrets, time, urllib.parse, uuid
import jwt  # PyJWT, Debian's python3-jwt

if not code or len(code) > 128:
    plpy.error("invalid code", sqlstate="PT400")
if "cfg" not in GD:
    get = lambda n: plpy.execute("SELECT current_setting('%s') AS v" % n)[0]["v"]
    base = urllib.parse.urlsplit(get("auth_wechat.api_base"))
    GD["cfg"] = dict(host=base.hostname, port=base.port, appid=get("auth_wechat.appid"),
                     secret=get("auth_wechat.secret"), jwt_secret=get("auth_wechat.jwt_secret"))
cfg = GD["cfg"]
if "find" not in SD:
    SD["find"] = plpy.prepare("SELECT id, coalesce(banned_until > now(), false) AS banned FROM auth.users "
                              "WHERE wechat_id = $1 AND wechat_id <> ''", ["text"])
    SD["lock"] = plpy.prepare("SELECT pg_advisory_xact_lock(hashtextextended('auth_wechat:openid:' || $1, 0))", ["text"])
    SD["create"] = plpy.prepare(
        "INSERT INTO auth.users (instance_id, id, aud, role, encrypted_password, confirmation_token, recovery_token, "
        " email_change_token_new, email_change, phone_change, phone_change_token, email_change_token_current, "
        " reauthentication_token, raw_app_meta_data, raw_user_meta_data, is_super_admin, is_sso_user, is_anonymous, "
        " created_at, updated_at, wechat_id, wechat_unionid) "
        "VALUES ('00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated', 'authenticated', '', '', '', "
        " '', '', '', '', '', '', '{\"provider\":\"wechat_mini\",\"providers\":[\"wechat_mini\"]}', '{}', false, false, "
        " false, now(), now(), $1, coalesce($2, '')) "
        "ON CONFLICT (wechat_id) WHERE wechat_id <> '' DO NOTHING RETURNING id", ["text", "text"])
    SD["audit"] = plpy.prepare(
        "INSERT INTO auth.audit_log_entries (instance_id, id, payload, created_at, ip_address) "
        "VALUES ('00000000-0000-0000-0000-000000000000', gen_random_uuid(), "
        " json_build_object('actor_id', $1::uuid, 'action', $2::text, 'log_type', 'account'), now(), '')", ["uuid", "text"])
    SD["touch"] = plpy.prepare("UPDATE auth.users SET last_sign_in_at = now() WHERE id = $1", ["uuid"])
    SD["identity"] = plpy.prepare(
        "INSERT INTO auth.identities AS i (provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at) "
        "VALUES ($1, $2, jsonb_build_object('sub', $1, 'openid', $1), 'wechat_mini', now(), now(), now()) "
        "ON CONFLICT (provider_id, provider) DO UPDATE SET user_id = excluded.user_id, "
        " identity_data = i.identity_data || excluded.identity_data, last_sign_in_at = excluded.last_sign_in_at, "
        " updated_at = excluded.updated_at", ["text", "uuid"])
    SD["session"] = plpy.prepare(
        "WITH s AS (INSERT INTO auth.sessions (id, user_id, created_at, updated_at, aal) "
        "           VALUES ($1, $2, now(), now(), 'aal1') RETURNING id), "
        " r AS (INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, session_id) "
        "       SELECT '00000000-0000-0000-0000-000000000000', $3, $2::text, false, now(), now(), s.id FROM s) "
        "INSERT INTO auth.mfa_amr_claims (id, session_id, created_at, updated_at, authentication_method) "
        "SELECT gen_random_uuid(), s.id, now(), now(), 'oauth' FROM s", ["uuid", "uuid", "text"])
    SD["user"] = plpy.prepare(
        "SELECT jsonb_build_object('id', u.id, 'aud', u.aud, 'role', u.role, 'email', coalesce(u.email, ''), "
        " 'phone', coalesce(u.phone, ''), 'app_metadata', u.raw_app_meta_data, 'user_metadata', u.raw_user_meta_data, "
        " 'wechat_id', u.wechat_id, 'is_anonymous', u.is_anonymous, "
        " 'identities', (SELECT jsonb_agg(to_jsonb(i)) FROM auth.identities i WHERE i.user_id = u.id), "
        " 'created_at', u.created_at, 'last_sign_in_at', u.last_sign_in_at)::text AS u FROM auth.users u WHERE u.id = $1",
        ["uuid"])

query = urllib.parse.urlencode({"appid": cfg["appid"], "secret": cfg["secret"], "js_code": code,
                                "grant_type": "authorization_code"})
for attempt in (1, 2):  # a kept-alive connection the server closed is reopened once
    conn = GD.get("conn") or http.client.HTTPConnection(cfg["host"], cfg["port"], timeout=2.5)
    GD["conn"] = conn
    try:
        conn.request("GET", "/sns/jscode2session?" + query)
        response = conn.getresponse()
        body = response.read(16384)
        break
    except (http.client.HTTPException, OSError):
        conn.close()
        GD.pop("conn", None)
        if attempt == 2:
            plpy.error("wechat unreachable", sqlstate="PT502")
if response.status != 200:
    plpy.error("bad answer", sqlstate="PT502")
answer = json.loads(body)
if int(answer.get("errcode") or 0) != 0:
    plpy.error("wechat refused", sqlstate="PT400")
openid, unionid = answer["openid"], answer.get("unionid")

found = plpy.execute(SD["find"], [openid])
if found:
    uid = found[0]["id"]
else:
    plpy.execute(SD["lock"], [openid])
    created = plpy.execute(SD["create"], [openid, unionid])
    uid = created[0]["id"] if created else plpy.execute(SD["find"], [openid])[0]["id"]
    if created:
        plpy.execute(SD["audit"], [uid, "user_signedup"])
plpy.execute(SD["touch"], [uid])
plpy.execute(SD["identity"], [openid, uid])
plpy.execute(SD["audit"], [uid, "login"])
sid, token = str(uuid.uuid4()), "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(12))
plpy.execute(SD["session"], [sid, uid, token])
user = json.loads(plpy.execute(SD["user"], [uid])[0]["u"])
now = int(time.time())
claims = {"sub": uid, "aud": user["aud"], "exp": now + 3600, "iat": now, "email": user["email"], "phone": user["phone"],
          "app_metadata": user["app_metadata"], "user_metadata": user["user_metadata"], "role": user["role"],
          "aal": "aal1", "amr": [{"method": "oauth", "timestamp": now}], "session_id": sid,
          "is_anonymous": user["is_anonymous"]}
access = jwt.encode(claims, cfg["jwt_secret"], algorithm="HS256")
return json.dumps({"access_token": access, "token_type": "bearer", "expires_in": 3600, "expires_at": now + 3600,
                   "refresh_token": token, "user": user})
$$;

GRANT USAGE ON SCHEMA bench TO anon;
REVOKE ALL ON FUNCTION bench.floor_sign_in(text), bench.plpython_sign_in(text), bench.floor_refresh(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION bench.floor_sign_in(text), bench.plpython_sign_in(text), bench.floor_refresh(text) TO anon;
