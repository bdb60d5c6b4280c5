'use strict';
// The adapter alone, on a recording fake fetch: the mapping, the error translation and both
// response shapes. Needs no stack.

const test = require('node:test');
const assert = require('node:assert/strict');
const { createWechatAuthFetch, goTrueError } = require('../auth_wechat_fetch.js');

const BASE = 'https://abc.example.co';
const SESSION = { access_token: 'a.b.c', token_type: 'bearer', expires_in: 3600, expires_at: 2, refresh_token: 'r', user: { id: 'u1' } };

// A platform-fetch fake: answers `routes[path]` = [status, body] (body JSON, or null for none).
function fakeFetch(routes) {
    const calls = [];
    const fetch = async (input, init = {}) => {
        const url = typeof input === 'string' ? input : input.url;
        calls.push({ url, init, body: init.body ? JSON.parse(init.body) : undefined });
        const path = url.slice(BASE.length);
        const [status, body] = routes[path] || [599, { message: `no fake for ${path}` }];
        return new Response(body === null ? null : JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
    };
    return { fetch, calls };
}

// MemFire's wefetch shape.
function fakeWxFetch(routes) {
    const calls = [];
    const fetch = async (url, init = {}) => {
        calls.push({ url, init, body: init.body ? JSON.parse(init.body) : undefined });
        const [status, body] = routes[url.slice(BASE.length).split('?')[0]] || [599, { message: 'no fake' }];
        const res = { data: body === null ? '' : body, status, ok: status >= 200 && status < 300, headers: new Map(), errMsg: 'request:ok' };
        res.json = () => Promise.resolve(res.data);
        return res;
    };
    return { fetch, calls };
}

const authHeaders = { apikey: 'anon-key', Authorization: 'Bearer user-token', 'X-Client-Info': 'x' };

test('sign-in: GET wechat_mini/login becomes rpc wechat_sign_in, keys forwarded, session answered', async () => {
    const { fetch, calls } = fakeFetch({ '/rest/v1/rpc/wechat_sign_in': [200, SESSION] });
    const res = await createWechatAuthFetch({ fetch })(`${BASE}/auth/v1/wechat_mini/login?code=ok.a.1`, { method: 'GET', headers: authHeaders });
    assert.ok(res instanceof Response);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), SESSION);
    assert.equal(calls.length, 1);
    assert.equal(calls[0].url, `${BASE}/rest/v1/rpc/wechat_sign_in`);
    assert.equal(calls[0].init.method, 'POST');
    assert.deepEqual(calls[0].body, { code: 'ok.a.1' });
    assert.equal(calls[0].init.headers.apikey, 'anon-key');
    assert.equal(calls[0].init.headers.Authorization, 'Bearer user-token');
    assert.equal(calls[0].init.headers['X-Client-Info'], undefined);
});

test('a base URL with a path prefix and a custom restPath', async () => {
    const { fetch, calls } = fakeFetch({ '/proj/api/rpc/wechat_user': [200, { id: 'u1' }] });
    const res = await createWechatAuthFetch({ fetch, restPath: 'api/' })(`${BASE}/proj/auth/v1/user`, { headers: new Headers(authHeaders) });
    assert.equal(res.status, 200);
    assert.equal(calls[0].url, `${BASE}/proj/api/rpc/wechat_user`);
    assert.deepEqual(calls[0].body, {});
    assert.equal(calls[0].init.headers.apikey, 'anon-key');
    await createWechatAuthFetch({ fetch, restPath: '/' })(`${BASE}/proj/auth/v1/user`);
    assert.equal(calls[1].url, `${BASE}/proj/rpc/wechat_user`);
});

test('refresh, sign-out scopes, id_token sign-in, QR code arguments', async () => {
    const { fetch, calls } = fakeFetch({
        '/rest/v1/rpc/wechat_refresh_session': [200, SESSION],
        '/rest/v1/rpc/wechat_sign_out': [200, { sessions_ended: 2 }],
        '/rest/v1/rpc/wechat_sign_in': [200, SESSION],
        '/rest/v1/rpc/wechat_unlimited_qrcode': [200, { imgBase64: '/9j/' }],
    });
    const f = createWechatAuthFetch({ fetch });
    const post = (path, body) => f(`${BASE}/auth/v1/${path}`, { method: 'POST', headers: authHeaders, body: JSON.stringify(body) });

    let res = await post('token?grant_type=refresh_token', { refresh_token: 'abc' });
    assert.deepEqual([res.status, calls.at(-1).body], [200, { refresh_token: 'abc' }]);
    for (const scope of ['local', 'global', 'others']) {
        res = await f(`${BASE}/auth/v1/logout?scope=${scope}`, { method: 'POST', headers: authHeaders });
        assert.equal(res.status, 204);
        assert.equal(await res.text(), '');
        assert.deepEqual(calls.at(-1).body, { scope });
    }
    res = await post('token?grant_type=id_token', { provider: 'wechat_mini', id_token: 'ok.x.1', nonce: undefined });
    assert.equal(res.status, 200);
    assert.deepEqual(calls.at(-1).body, { code: 'ok.x.1' });
    res = await post('wechat_mini/unlimited_qrcode', { scene: 'a=1', page: 'pages/index/index', width: 430, check_path: undefined, line_color: null });
    assert.deepEqual(await res.json(), { imgBase64: '/9j/' });
    assert.deepEqual(calls.at(-1).body, { scene: 'a=1', page: 'pages/index/index', width: 430 });
});

test('query values: an unencoded + or = stays, percent-escapes are decoded', async () => {
    const { fetch, calls } = fakeFetch({ '/rest/v1/rpc/wechat_sign_in': [200, SESSION] });
    const f = createWechatAuthFetch({ fetch });
    await f(`${BASE}/auth/v1/wechat_mini/login?code=a+b/c=d`);
    await f(`${BASE}/auth/v1/wechat_mini/login?x=1&code=${encodeURIComponent('a+b/c=')}#frag`);
    assert.deepEqual(calls.map((c) => c.body.code), ['a+b/c=d', 'a+b/c=']);
});

test('bind answers the user the function returns', async () => {
    const { fetch } = fakeFetch({ '/rest/v1/rpc/wechat_bind_phone': [200, SESSION.user] });
    const res = await createWechatAuthFetch({ fetch })(`${BASE}/auth/v1/wechat_mini/bind_phone?code=phone.86.1.x`, { headers: authHeaders });
    assert.deepEqual(await res.json(), { id: 'u1' });
});

test('the JWKS: GET .well-known/jwks.json from rpc wechat_jwks, cacheable as GoTrue\'s, in both shapes', async () => {
    const jwks = { keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y', kid: 'k1', alg: 'ES256', use: 'sig', key_ops: ['verify'] }] };
    const { fetch, calls } = fakeFetch({ '/rest/v1/rpc/wechat_jwks': [200, jwks] });
    const res = await createWechatAuthFetch({ fetch })(`${BASE}/auth/v1/.well-known/jwks.json`, { headers: { apikey: 'anon-key' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'public, max-age=600');
    assert.deepEqual(await res.json(), jwks);
    assert.deepEqual([calls[0].url, calls[0].body], [`${BASE}/rest/v1/rpc/wechat_jwks`, {}]);
    const wx = fakeWxFetch({ '/rest/v1/rpc/wechat_jwks': [200, jwks] });
    const answer = await createWechatAuthFetch({ fetch: wx.fetch })(`${BASE}/auth/v1/.well-known/jwks.json`, {});
    assert.deepEqual([answer.status, answer.headers.get('cache-control'), answer.data], [200, 'public, max-age=600', jwks]);
    const failing = fakeFetch({ '/rest/v1/rpc/wechat_jwks': [404, { code: 'PGRST202', message: 'no function' }] });
    const missing = await createWechatAuthFetch({ fetch: failing.fetch })(`${BASE}/auth/v1/.well-known/jwks.json`, {});
    assert.equal(missing.status, 404);
    assert.equal(missing.headers.get('cache-control'), null, 'an error is not cached');
});

test('appid: sent with every call that trades a code or spends the quota: sign-in, binds, QR codes', async () => {
    const { fetch, calls } = fakeFetch({
        '/rest/v1/rpc/wechat_bind_account': [200, SESSION.user],
        '/rest/v1/rpc/wechat_bind_phone': [200, SESSION.user],
        '/rest/v1/rpc/wechat_unlimited_qrcode': [200, { imgBase64: 'AA==' }],
    });
    const f = createWechatAuthFetch({ fetch, appid: 'wx1111aaaa1111aaaa' });
    await f(`${BASE}/auth/v1/wechat_mini/bind_account?code=ok.b.1`, { headers: authHeaders });
    await f(`${BASE}/auth/v1/wechat_mini/bind_phone?code=phone.86.1.1`, { headers: authHeaders });
    await f(`${BASE}/auth/v1/wechat_mini/unlimited_qrcode`, { method: 'POST', headers: authHeaders, body: JSON.stringify({ scene: 'a=1' }) });
    assert.deepEqual(calls.map((c) => c.body), [
        { code: 'ok.b.1', appid: 'wx1111aaaa1111aaaa' },
        { code: 'phone.86.1.1', appid: 'wx1111aaaa1111aaaa' },
        { scene: 'a=1', appid: 'wx1111aaaa1111aaaa' },
    ]);
});

test('appid: sent with every sign-in; unlinkIdentity becomes rpc wechat_unlink_identity answered {}', async () => {
    const { fetch, calls } = fakeFetch({ '/rest/v1/rpc/wechat_sign_in': [200, SESSION], '/rest/v1/rpc/wechat_unlink_identity': [200, SESSION.user] });
    const f = createWechatAuthFetch({ fetch, appid: 'wx1111aaaa1111aaaa' });
    await f(`${BASE}/auth/v1/wechat_mini/login?code=ok.a.1`, { headers: authHeaders });
    await f(`${BASE}/auth/v1/token?grant_type=id_token`, { method: 'POST', body: JSON.stringify({ provider: 'wechat_mini', id_token: 'ok.a.2' }) });
    assert.deepEqual(calls.map((c) => c.body), [{ code: 'ok.a.1', appid: 'wx1111aaaa1111aaaa' }, { code: 'ok.a.2', appid: 'wx1111aaaa1111aaaa' }]);
    const res = await f(`${BASE}/auth/v1/user/identities/9b2b1c5e-0000-4000-8000-000000000001`, { method: 'DELETE', headers: authHeaders });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {});
    assert.deepEqual(calls[2].body, { identity_id: '9b2b1c5e-0000-4000-8000-000000000001' });
    assert.equal(calls[2].init.headers.Authorization, 'Bearer user-token');
    // Without the option, a sign-in names no app (the database's default one).
    const plain = fakeFetch({ '/rest/v1/rpc/wechat_sign_in': [200, SESSION] });
    await createWechatAuthFetch({ fetch: plain.fetch })(`${BASE}/auth/v1/wechat_mini/login?code=ok.a.3`);
    assert.deepEqual(plain.calls[0].body, { code: 'ok.a.3' });
});

test('unmapped auth requests get a GoTrue 404 and never reach the network', async () => {
    const { fetch, calls } = fakeFetch({});
    const f = createWechatAuthFetch({ fetch });
    for (const [url, method] of [
        ['auth/v1/signup', 'POST'],
        ['auth/v1/token?grant_type=password', 'POST'],
        ['auth/v1/token?grant_type=id_token', 'POST'],
        ['auth/v1/user', 'PUT'],
        ['auth/v1/settings', 'GET'],
        ['auth/v1/.well-known/jwks.json', 'POST'],
        ['auth/v1', 'GET'],
    ]) {
        const res = await f(`${BASE}/${url}`, { method, body: '{"provider":"google"}' });
        assert.equal(res.status, 404, url);
        const body = await res.json();
        assert.equal(body.code, 404);
        assert.equal(body.error_code, 'not_found');
        assert.match(body.msg, /not served without GoTrue/);
    }
    assert.equal(calls.length, 0);
});

test("restPath '': a bare PostgREST as the project URL, the SDK's /rest/v1 calls moved there too", async () => {
    const { fetch, calls } = fakeFetch({ '/rpc/wechat_user': [200, { id: 'u1' }], '/notes?select=*': [200, []] });
    const f = createWechatAuthFetch({ fetch, restPath: '' });
    assert.equal((await f(`${BASE}/auth/v1/user`, { headers: authHeaders })).status, 200);
    const res = await f(`${BASE}/rest/v1/notes?select=*`, { method: 'GET', headers: authHeaders });
    assert.equal(res.status, 200);
    const request = await f(new Request(`${BASE}/rest/v1/notes?select=*`, { headers: authHeaders }));
    assert.equal(request.status, 200);
    assert.deepEqual(calls.map((c) => c.url), [`${BASE}/rpc/wechat_user`, `${BASE}/notes?select=*`, `${BASE}/notes?select=*`]);
    // With the default restPath, /rest/v1 stays as it is.
    const plain = fakeFetch({ '/rest/v1/notes': [200, []] });
    assert.equal((await createWechatAuthFetch({ fetch: plain.fetch })(`${BASE}/rest/v1/notes`)).status, 200);
});

test('other requests pass through unchanged', async () => {
    const seen = [];
    const answer = new Response('[]', { status: 200 });
    const fetch = async (input, init) => { seen.push([input, init]); return answer; };
    const f = createWechatAuthFetch({ fetch });
    const init = { method: 'GET', headers: new Headers(authHeaders) };
    for (const url of [`${BASE}/rest/v1/notes?select=*`, `${BASE}/storage/v1/object/auth/v1/x`, `${BASE}/functions/v1/hello`]) {
        assert.equal(await f(url, init), answer);
        assert.deepEqual(seen.at(-1), [url, init]);
    }
});

test('PostgREST errors become GoTrue error bodies with the same status', async () => {
    const pgrst = (code, message, errorCode) => ({
        code, message, hint: null, details: errorCode ? JSON.stringify({ error_code: errorCode, wechat_errcode: 40029 }) : null,
    });
    const { fetch } = fakeFetch({
        '/rest/v1/rpc/wechat_sign_in': [400, pgrst('PT400', 'WeChat refused the login code', 'invalid_credentials')],
        '/rest/v1/rpc/wechat_user': [401, pgrst('PGRST301', 'JWT expired')],
        '/rest/v1/rpc/wechat_refresh_session': [400, { code: 'refresh_token_already_used', message: 'Invalid Refresh Token: Already Used' }],
        '/rest/v1/rpc/wechat_bind_account': [401, pgrst('42501', 'permission denied for function wechat_bind_account')],
        '/rest/v1/rpc/wechat_sign_out': [403, pgrst('PT403', 'session not found', 'session_not_found')],
    });
    const f = createWechatAuthFetch({ fetch });
    const expect = async (res, status, error_code, msg) => {
        assert.equal(res.status, status);
        assert.deepEqual(await res.json(), { code: status, error_code, msg });
    };
    await expect(await f(`${BASE}/auth/v1/wechat_mini/login?code=invalid.1`), 400, 'invalid_credentials', 'WeChat refused the login code');
    await expect(await f(`${BASE}/auth/v1/user`), 401, 'bad_jwt', 'JWT expired');
    await expect(await f(`${BASE}/auth/v1/token?grant_type=refresh_token`, { method: 'POST', body: '{"refresh_token":"x"}' }),
        400, 'refresh_token_already_used', 'Invalid Refresh Token: Already Used');
    await expect(await f(`${BASE}/auth/v1/wechat_mini/bind_account?code=ok.a.1`), 401, 'no_authorization',
        'permission denied for function wechat_bind_account');
    // Signing out with a session that is gone: 401, which both SDKs take as signed out here.
    await expect(await f(`${BASE}/auth/v1/logout?scope=global`, { method: 'POST' }), 401, 'session_not_found', 'session not found');
    assert.deepEqual(goTrueError(502, 'Bad Gateway'), { code: 502, error_code: 'unexpected_failure', msg: 'Bad Gateway' });
    assert.deepEqual(goTrueError(500, null), { code: 500, error_code: 'unexpected_failure', msg: 'HTTP 500' });
});

test('wx shape: answers in the shape of MemFire\'s wefetch, errors readable on the response', async () => {
    const { fetch } = fakeWxFetch({
        '/rest/v1/rpc/wechat_sign_in': [200, SESSION],
        '/rest/v1/rpc/wechat_user': [403, { code: 'PT403', message: 'no live session', details: '{"error_code":"session_not_found"}', hint: null }],
        '/rest/v1/rpc/wechat_sign_out': [200, { sessions_ended: 1 }],
        '/rest/v1/notes': [401, { code: '42501', message: 'permission denied for table notes', details: null, hint: null }],
    });
    const f = createWechatAuthFetch({ fetch });
    let res = await f(`${BASE}/auth/v1/wechat_mini/login?code=ok.a.1`, { method: 'GET', headers: authHeaders });
    assert.equal(typeof res.text, 'undefined');
    assert.ok(res.headers instanceof Map);
    assert.deepEqual([res.status, res.ok, res.data], [200, true, SESSION]);
    assert.deepEqual(await res.json(), SESSION);

    res = await f(`${BASE}/auth/v1/user`, { method: 'GET', headers: authHeaders });
    assert.deepEqual([res.status, res.ok], [403, false]);
    assert.deepEqual(res.data, { code: 403, error_code: 'session_not_found', msg: 'no live session' });
    assert.equal(res.msg, 'no live session'); // MemFire's gotrue-js reads the message off the response
    assert.equal(res.message, 'no live session');

    res = await f(`${BASE}/auth/v1/logout?scope=local`, { method: 'POST', headers: authHeaders });
    assert.deepEqual([res.status, res.data], [204, '']);

    // An unmapped path before or after: answered in the shape seen.
    res = await f(`${BASE}/auth/v1/signup`, { method: 'POST' });
    assert.ok(res.headers instanceof Map);
    assert.equal(res.status, 404);

    // Passed-through PostgREST errors get message/code/details/hint (MemFire's postgrest-js
    // returns the response object as `error`).
    res = await f(`${BASE}/rest/v1/notes?select=*`, { method: 'GET', headers: new Map([['apikey', 'k']]) });
    assert.equal(res.status, 401);
    assert.equal(res.message, 'permission denied for table notes');
    assert.equal(res.code, '42501');
    assert.equal(res.details, null);
});

test("shape: 'wx' turns platform responses into wx ones (MemFire's SDK on a platform fetch)", async () => {
    const { fetch } = fakeFetch({
        '/rest/v1/rpc/wechat_sign_in': [200, SESSION],
        '/rest/v1/notes': [400, { code: '22P02', message: 'invalid input syntax', details: null, hint: null }],
    });
    const f = createWechatAuthFetch({ fetch, shape: 'wx' });
    let res = await f(`${BASE}/auth/v1/wechat_mini/login?code=ok.a.1`);
    assert.deepEqual(res.data, SESSION);
    assert.ok(res.headers instanceof Map);
    res = await f(`${BASE}/rest/v1/notes`);
    assert.deepEqual([res.status, res.ok, res.message, res.code], [400, false, 'invalid input syntax', '22P02']);
    assert.equal(res.headers.get('content-type'), 'application/json');
    assert.throws(() => createWechatAuthFetch({ shape: 'xml' }), /shape/);
});

test('the default fetch is globalThis.fetch, looked up per call', async () => {
    const saved = globalThis.fetch;
    const seen = [];
    globalThis.fetch = async (url) => { seen.push(url); return new Response(JSON.stringify({ id: 'u' }), { status: 200 }); };
    try {
        const f = createWechatAuthFetch();
        const res = await f(new URL(`${BASE}/auth/v1/user`), { headers: authHeaders });
        assert.deepEqual(await res.json(), { id: 'u' });
        assert.deepEqual(seen, [`${BASE}/rest/v1/rpc/wechat_user`]);
    } finally {
        globalThis.fetch = saved;
    }
});
