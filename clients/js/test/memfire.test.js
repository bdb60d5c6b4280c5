'use strict';
// MemFire's supabase-wechat-stable-v2 2.2.0, unmodified: new SupabaseClient(url, anonKey,
// { global: { fetch: createWechatAuthFetch({ fetch: <its wx.request fetch> }) } }) on a `wx` shim,
// against PostgREST + auth_wechat. No request reaches /auth/v1.

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const S = require('./support/stack.js');
const { installWx } = require('./support/wx.js');

const wx = installWx();
const { SupabaseClient, isAuthApiError } = require('supabase-wechat-stable-v2');
const wefetch = require('supabase-wechat-stable-v2/dist/main/wefetch').default;
const { createWechatAuthFetch } = require('../auth_wechat_fetch.js');

describe('MemFire supabase-wechat-stable-v2 through auth_wechat_fetch', { skip: S.skip }, () => {
    const ctx = S.gatewayHooks();
    const clients = ctx.clients;
    let keys = 0;

    // Each client its own storage key (they share one wx storage), except with defaultKey; `appid`:
    // a client of another mini program than the default one.
    function client({ key = S.env.anonKey, defaultKey = false, autoRefreshToken = false, appid } = {}) {
        const auth = { autoRefreshToken };
        if (!defaultKey) auth.storageKey = `sb-test-${++keys}-auth-token`;
        const fetch = createWechatAuthFetch({ fetch: wefetch, appid });
        const c = new SupabaseClient(ctx.gw.url, key, { global: { fetch }, auth });
        clients.push(c);
        return c;
    }

    async function signedIn(user, options) {
        const c = client(options);
        const events = S.recordEvents(c.auth);
        const { data, error } = await c.auth.signInWithWechat({ code: S.codes.login(user) });
        assert.equal(error, null);
        return { c, events, session: data.session, user: data.user };
    }

    const stored = (c) => JSON.parse(wx.getStorageSync(c.auth.storageKey) || 'null');
    const sessionsOf = (id) => S.sql(`SELECT count(*) FROM auth.sessions WHERE user_id = '${id}'`);

    test('signInWithWechat: session stored under sb-<host>-auth-token, SIGNED_IN fired', async () => {
        const { c, events, session, user } = await signedIn('alice', { defaultKey: true });
        assert.equal(c.auth.storageKey, 'sb-127-auth-token');
        assert.ok(session.access_token && session.refresh_token && session.expires_at);
        assert.equal(user.app_metadata.provider, 'wechat_mini');
        assert.equal(stored(c).access_token, session.access_token);
        await S.waitFor(() => events.names().includes('SIGNED_IN'), { what: 'SIGNED_IN' });
        assert.equal(events[0].event, 'INITIAL_SESSION');
        const { data } = await c.auth.getSession();
        assert.equal(data.session.access_token, session.access_token);
        assert.ok(wx.requests.every((r) => !r.url.includes('/auth/v1')));
    });

    test('setSession, getSession, getUser, refreshSession', async () => {
        const first = await signedIn('tokens');
        const c = client();
        const events = S.recordEvents(c.auth);
        const set = await c.auth.setSession({ access_token: first.session.access_token, refresh_token: first.session.refresh_token });
        assert.equal(set.error, null);
        assert.equal(set.data.user.id, first.user.id);
        assert.ok(events.names().includes('SIGNED_IN'));
        assert.equal((await c.auth.getSession()).data.session.refresh_token, first.session.refresh_token);

        const got = await c.auth.getUser();
        assert.equal(got.error, null);
        assert.equal(got.data.user.id, first.user.id);
        assert.deepEqual(got.data.user.identities.map((i) => i.provider), ['wechat_mini']);

        const refreshed = await c.auth.refreshSession();
        assert.equal(refreshed.error, null);
        assert.notEqual(refreshed.data.session.refresh_token, first.session.refresh_token);
        assert.equal(S.claimsOf(refreshed.data.session.access_token).session_id, S.claimsOf(first.session.access_token).session_id);
        assert.equal(stored(c).refresh_token, refreshed.data.session.refresh_token);
        await S.waitFor(() => events.names().includes('TOKEN_REFRESHED'), { what: 'TOKEN_REFRESHED' });
    });

    test('wechatBindAccount: a phone user links WeChat, the session stays', async () => {
        const { c, user } = await signedIn('web-user');
        // Make them a user who signed up with phone + SMS and has no WeChat yet.
        S.makeWebUser(user.id, `86${S.phoneNumber()}`);
        const before = stored(c);
        const { data, error } = await c.auth.wechatBindAccount({ code: S.codes.login('web-user-wechat') });
        assert.equal(error, null);
        assert.equal(data.user.id, user.id);
        assert.ok(data.user.wechat_id);
        assert.deepEqual(data.user.app_metadata.providers, ['phone', 'wechat_mini']);
        assert.deepEqual(data.user.identities.map((i) => i.provider), ['wechat_mini']);
        const after = stored(c);
        assert.equal(after.access_token, before.access_token);
        assert.equal(after.refresh_token, before.refresh_token);
        assert.deepEqual(after.user, data.user);
        assert.equal((await c.auth.getUser()).data.user.wechat_id, data.user.wechat_id);
        // The same WeChat account again: fine.
        assert.equal((await c.auth.wechatBindAccount({ code: S.codes.login('web-user-wechat') })).error, null);
    });

    test('wechatBindAccount conflicts: 409 identity_already_exists, 422 wechat_already_bound', async () => {
        await signedIn('taken');
        const { c, user } = await signedIn('binder');
        S.makeWebUser(user.id, `86${S.phoneNumber()}`);
        const conflict = await c.auth.wechatBindAccount({ code: S.codes.login('taken') });
        assert.ok(isAuthApiError(conflict.error));
        assert.equal(conflict.error.status, 409);
        assert.ok(conflict.error.message && !conflict.error.message.startsWith('{'), conflict.error.message);
        assert.equal(conflict.data.user, null);
        // Still signed in as before.
        assert.equal((await c.auth.getUser()).error, null);
        // A WeChat user binding another WeChat account.
        const { c: bound } = await signedIn('bound');
        const other = await bound.auth.wechatBindAccount({ code: S.codes.login('never-seen') });
        assert.equal(other.error.status, 422);
        assert.ok(other.error.message);
    });

    test('wechatBindPhone: the phone is confirmed, the session stays; a taken number is 409', async () => {
        const { c, user } = await signedIn('phone-owner');
        const number = S.phoneNumber();
        const before = stored(c);
        const { data, error } = await c.auth.wechatBindPhone({ code: S.codes.phone(number) });
        assert.equal(error, null);
        assert.equal(data.user.id, user.id);
        assert.equal(data.user.phone, `86${number}`);
        assert.ok(data.user.phone_confirmed_at);
        assert.equal(stored(c).access_token, before.access_token);
        assert.equal(stored(c).user.phone, `86${number}`);

        const { c: other } = await signedIn('phone-thief');
        const taken = await other.auth.wechatBindPhone({ code: S.codes.phone(number) });
        assert.equal(taken.error.status, 409);
        assert.ok(taken.error.message);
        const refused = await other.auth.wechatBindPhone({ code: `invalid.${S.run}` });
        assert.equal(refused.error.status, 400);
    });

    test('a second mini program: sign-in, wechatBindPhone, wechatBindAccount and QR codes name it', async () => {
        const lite = S.env.liteAppid;
        const made = (code) => S.codes.madeBy(code, lite);
        const c = client({ appid: lite });
        const signed = await c.auth.signInWithWechat({ code: made(S.codes.login('lite-user')) });
        assert.equal(signed.error, null);
        const number = S.phoneNumber();
        const phone = await c.auth.wechatBindPhone({ code: made(S.codes.phone(number)) });
        assert.equal(phone.error, null, phone.error && phone.error.message);
        assert.equal(phone.data.user.phone, `86${number}`);
        const again = await c.auth.wechatBindAccount({ code: made(S.codes.login('lite-user')) });
        assert.equal(again.error, null, again.error && again.error.message);
        assert.equal(again.data.user.id, signed.data.user.id, 'the same openid of that app: idempotent');
        // WeChat's rule, as the simulator keeps it: a code made by the lite app, traded as the
        // default app's, is refused.
        const wrongApp = await client().auth.signInWithWechat({ code: made(S.codes.login('lite-user')) });
        assert.equal(wrongApp.error.status, 400);
        const service = client({ key: S.env.serviceRoleKey, appid: lite });
        const qr = await service.auth.getUnlimitedQRCode({ scene: 'a=1' });
        assert.equal(qr.error, null, qr.error && qr.error.message);
    });

    test('getUnlimitedQRCode: with the service_role key an image; with the anon key a readable 401', async () => {
        const server = client({ key: S.env.serviceRoleKey });
        const { data, error } = await server.auth.getUnlimitedQRCode({ scene: 'a=1', page: 'pages/index/index', width: 430 });
        assert.equal(error, null);
        const bytes = Buffer.from(data.imgBase64, 'base64');
        assert.deepEqual([...bytes.subarray(0, 2)], [0xff, 0xd8]); // JPEG
        const png = await server.auth.getUnlimitedQRCode({ scene: 'b=2', is_hyaline: true, check_path: false, env_version: 'develop' });
        assert.deepEqual([...Buffer.from(png.data.imgBase64, 'base64').subarray(1, 4)], [...Buffer.from('PNG')]);

        const anon = await client().auth.getUnlimitedQRCode({ scene: 'a=1' });
        assert.equal(anon.data.imgBase64, null);
        assert.equal(anon.error.status, 401);
        assert.match(anon.error.message, /permission denied/);
        const bad = await server.auth.getUnlimitedQRCode({ scene: 'a=1', width: 5000 });
        assert.equal(bad.error.status, 400);
    });

    test('.from() and .rpc() carry the user\'s token (RLS); PostgREST errors readable', async () => {
        const alice = await signedIn('rls-alice');
        const bob = await signedIn('rls-bob');
        const ins = await alice.c.from('notes').insert({ body: 'from alice' }).select();
        assert.equal(ins.error, null);
        assert.equal(ins.data[0].user_id, alice.user.id);
        assert.deepEqual((await alice.c.from('notes').select('body')).data, [{ body: 'from alice' }]);
        assert.deepEqual((await bob.c.from('notes').select('*').eq('user_id', alice.user.id)).data, []);
        assert.equal((await bob.c.rpc('whoami')).data.uid, bob.user.id);

        const anon = await client().from('notes').select('*');
        assert.equal(anon.status, 401);
        assert.match(anon.error.message, /permission denied/);
        const refused = await client().rpc('wechat_sign_in', { code: S.codes.refused() });
        assert.equal(refused.status, 400);
        assert.ok(refused.error.message);
        assert.equal(refused.error.code, 'PT400');
        assert.equal(JSON.parse(refused.error.details).error_code, 'invalid_credentials');
    });

    test('signOut scope others, then local', async () => {
        const a = await signedIn('so-local');
        const b = await signedIn('so-local');
        assert.equal(sessionsOf(a.user.id), '2');
        assert.equal((await a.c.auth.signOut({ scope: 'others' })).error, null);
        assert.ok(stored(a.c));
        assert.equal(sessionsOf(a.user.id), '1');
        const gone = await b.c.auth.getUser();
        assert.equal(gone.error.status, 403);
        // The ended session's sign-out: signed out here, no error (the adapter answers 401).
        assert.equal((await b.c.auth.signOut({ scope: 'local' })).error, null);
        assert.equal(stored(b.c), null);
        assert.ok(b.events.names().includes('SIGNED_OUT'));

        assert.equal((await a.c.auth.signOut({ scope: 'local' })).error, null);
        assert.equal(stored(a.c), null);
        await S.waitFor(() => a.events.names().includes('SIGNED_OUT'), { what: 'SIGNED_OUT' });
        assert.equal(sessionsOf(a.user.id), '0');
    });

    test('signOut scope global (the default)', async () => {
        const a = await signedIn('so-global');
        const b = await signedIn('so-global');
        assert.equal((await a.c.auth.signOut()).error, null);
        assert.equal(sessionsOf(a.user.id), '0');
        const stale = await b.c.auth.refreshSession();
        assert.equal(stale.error.status, 400);
        assert.ok(stale.error.message);
    });

    test("on the platform fetch with shape: 'wx'", async () => {
        const c = new SupabaseClient(ctx.gw.url, S.env.anonKey, {
            global: { fetch: createWechatAuthFetch({ shape: 'wx' }) },
            auth: { autoRefreshToken: false, storageKey: `sb-test-${++keys}-auth-token` },
        });
        clients.push(c);
        const before = wx.requests.length;
        const { data, error } = await c.auth.signInWithWechat({ code: S.codes.login('platform') });
        assert.equal(error, null);
        assert.equal((await c.auth.getUser()).data.user.id, data.user.id);
        assert.equal((await c.rpc('whoami')).data.uid, data.user.id);
        const anon = await client().from('notes').select('*');
        assert.match(anon.error.message, /permission denied/);
        assert.equal(wx.requests.length, before + 1); // only the anon client's request went through wx
    });

    test('errors: a refused code, an expired token, an ended session', async () => {
        const c = client();
        const refused = await c.auth.signInWithWechat({ code: S.codes.refused() });
        assert.ok(isAuthApiError(refused.error));
        assert.equal(refused.error.status, 400);
        assert.ok(refused.error.message && !refused.error.message.startsWith('{'), refused.error.message);
        assert.equal(refused.data.session, null);

        const { c: u, user, session } = await signedIn('expired');
        const now = Math.floor(Date.now() / 1000);
        const expired = S.mintJwt({
            sub: user.id, role: 'authenticated', aud: 'authenticated', session_id: S.claimsOf(session.access_token).session_id,
            iat: now - 120, exp: now - 60,
        });
        const old = await c.auth.getUser(expired);
        assert.equal(old.error.status, 401);
        assert.match(old.error.message, /JWT expired/i);

        await u.auth.signOut();
        const ended = await c.auth.getUser(session.access_token);
        assert.equal(ended.error.status, 403);
        assert.ok(ended.error.message);
    });
});
