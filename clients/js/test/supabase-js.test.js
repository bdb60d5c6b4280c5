'use strict';
// supabase-js (latest 2.x), unmodified: createClient(url, anonKey, { global: { fetch:
// createWechatAuthFetch() } }) against PostgREST + auth_wechat. No request reaches /auth/v1.

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const { createClient, isAuthApiError } = require('@supabase/supabase-js');
const { createWechatAuthFetch, signInWithWechat } = require('../auth_wechat_fetch.js');
const S = require('./support/stack.js');
const { installWx } = require('./support/wx.js');

describe('supabase-js through auth_wechat_fetch', { skip: S.skip }, () => {
    const ctx = S.gatewayHooks();
    const clients = ctx.clients;

    function client({ key = S.env.anonKey, storage, autoRefreshToken = false } = {}) {
        const c = createClient(ctx.gw.url, key, {
            global: { fetch: createWechatAuthFetch() },
            auth: storage
                ? { storage, persistSession: true, autoRefreshToken, detectSessionInUrl: false }
                : { persistSession: false, autoRefreshToken, detectSessionInUrl: false },
        });
        clients.push(c);
        return c;
    }

    async function signedIn(user, options) {
        const c = client(options);
        const events = S.recordEvents(c.auth);
        const { data, error } = await signInWithWechat(c, { code: S.codes.login(user) });
        assert.equal(error, null);
        return { c, events, session: data.session, user: data.user };
    }

    test('signInWithWechat (signInWithIdToken): session saved, SIGNED_IN fired', async () => {
        const { c, events, session, user } = await signedIn('alice');
        assert.equal(session.token_type, 'bearer');
        assert.ok(session.refresh_token && session.expires_at > Date.now() / 1000);
        assert.equal(user.app_metadata.provider, 'wechat_mini');
        assert.equal(user.identities[0].provider, 'wechat_mini');
        const claims = S.claimsOf(session.access_token);
        assert.equal(claims.sub, user.id);
        assert.equal(claims.role, 'authenticated');
        await S.waitFor(() => events.names().includes('SIGNED_IN'), { what: 'SIGNED_IN' });
        await S.waitFor(() => events.names().includes('INITIAL_SESSION'), { what: 'INITIAL_SESSION' });
        const { data } = await c.auth.getSession();
        assert.equal(data.session.user.id, user.id);
        assert.equal(S.claimsOf(data.session.access_token).session_id, claims.session_id);
    });

    test('the README path: rpc wechat_sign_in, then setSession', async () => {
        const c = client();
        const events = S.recordEvents(c.auth);
        const rpc = await c.rpc('wechat_sign_in', { code: S.codes.login('readme') });
        assert.equal(rpc.error, null);
        const { data, error } = await c.auth.setSession({ access_token: rpc.data.access_token, refresh_token: rpc.data.refresh_token });
        assert.equal(error, null);
        assert.equal(data.user.id, rpc.data.user.id);
        assert.ok(events.names().includes('SIGNED_IN'));
    });

    test('getUser: the user from wechat_user', async () => {
        const { c, user } = await signedIn('getuser');
        const { data, error } = await c.auth.getUser();
        assert.equal(error, null);
        assert.equal(data.user.id, user.id);
        assert.equal(data.user.wechat_id, user.wechat_id);
        assert.deepEqual(data.user.identities.map((i) => i.provider), ['wechat_mini']);
    });

    test('getClaims with an HS256 token: supabase-js checks it with getUser (wechat_user)', async () => {
        const { c, user, session } = await signedIn('claims-hs');
        assert.equal(JSON.parse(Buffer.from(session.access_token.split('.')[0], 'base64url')).alg, 'HS256');
        const before = ctx.gw.hits.rest.length;
        // The token given: getClaims() alone would refresh first (tokens here live 60 s, less than
        // supabase-js's refresh margin).
        const { data, error } = await c.auth.getClaims(session.access_token);
        assert.equal(error, null);
        assert.equal(data.claims.sub, user.id);
        assert.deepEqual(ctx.gw.hits.rest.slice(before), ['POST /rpc/wechat_user']);
        const forged = await c.auth.getClaims(S.forgeSignature(session.access_token));
        assert.ok(forged.error, 'a forged signature');
        assert.equal(forged.data, null);
    });

    test('one person in two mini programs: the appid option, getUserIdentities, unlinkIdentity', async () => {
        const main = client();
        const lite = createClient(ctx.gw.url, S.env.anonKey, {
            global: { fetch: createWechatAuthFetch({ appid: S.env.liteAppid }) },
            auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
        });
        clients.push(lite);
        const first = await signInWithWechat(main, { code: S.codes.union('twoapps') });
        assert.equal(first.error, null);
        const second = await signInWithWechat(lite, { code: S.codes.madeBy(S.codes.union('twoapps'), S.env.liteAppid) });
        assert.equal(second.error, null);
        assert.equal(second.data.user.id, first.data.user.id, 'one user, joined by the unionid');
        const { data: listed, error } = await lite.auth.getUserIdentities();
        assert.equal(error, null);
        assert.equal(listed.identities.length, 2);
        const liteIdentity = listed.identities.find((i) => i.identity_data.appid === S.env.liteAppid);
        assert.ok(liteIdentity, JSON.stringify(listed.identities));
        const unlinked = await lite.auth.unlinkIdentity(liteIdentity);
        assert.equal(unlinked.error, null);
        const { data } = await main.auth.getUser();
        assert.deepEqual(data.user.identities.map((i) => i.identity_data.appid), [first.data.user.identities[0].identity_data.appid]);
        const last = await main.auth.unlinkIdentity(data.user.identities[0]);
        assert.equal(last.error.status, 422);
        assert.equal(last.error.code, 'single_identity_not_deletable');
    });

    test('refreshSession: the refresh token rotates in the same session, TOKEN_REFRESHED', async () => {
        const { c, events, session } = await signedIn('refresh');
        const { data, error } = await c.auth.refreshSession();
        assert.equal(error, null);
        assert.notEqual(data.session.refresh_token, session.refresh_token);
        assert.equal(S.claimsOf(data.session.access_token).session_id, S.claimsOf(session.access_token).session_id);
        assert.ok(events.names().includes('TOKEN_REFRESHED'));
    });

    test('persistent storage on wx (a mini program): the session survives a new client', async () => {
        installWx();
        const storage = {
            getItem: (k) => wx.getStorageSync(k) || null,
            setItem: (k, v) => wx.setStorageSync(k, v),
            removeItem: (k) => wx.removeStorageSync(k),
        };
        const { user } = await signedIn('persist', { storage });
        assert.ok([...wx.storage.keys()].includes('sb-127-auth-token'), [...wx.storage.keys()].join());
        const again = client({ storage });
        const { data } = await again.auth.getUser();
        assert.equal(data.user.id, user.id);
    });

    test('.from() and .rpc() carry the user\'s token (RLS)', async () => {
        const alice = await signedIn('rls-alice');
        const bob = await signedIn('rls-bob');
        const ins = await alice.c.from('notes').insert({ body: 'from alice' }).select().single();
        assert.equal(ins.error, null);
        assert.equal(ins.data.user_id, alice.user.id);
        const mine = await alice.c.from('notes').select('body, user_id');
        assert.deepEqual(mine.data, [{ body: 'from alice', user_id: alice.user.id }]);
        const theirs = await bob.c.from('notes').select('*').eq('user_id', alice.user.id);
        assert.deepEqual(theirs.data, []);
        const who = await bob.c.rpc('whoami');
        assert.equal(who.data.uid, bob.user.id);
        assert.equal(who.data.role, 'authenticated');
        // The anon key alone: no grant on the table, a readable PostgREST error.
        const anon = await client().from('notes').select('*');
        assert.equal(anon.status, 401);
        assert.match(anon.error.message, /permission denied/);
        assert.equal((await client().rpc('whoami')).data.role, 'anon');
    });

    test('signOut scope others, then local', async () => {
        const code = 'so-local';
        const a = await signedIn(code);
        const b = await signedIn(code);
        assert.equal(a.user.id, b.user.id);
        assert.equal(S.sql(`SELECT count(*) FROM auth.sessions WHERE user_id = '${a.user.id}'`), '2');
        assert.equal((await a.c.auth.signOut({ scope: 'others' })).error, null);
        assert.ok(!a.events.names().includes('SIGNED_OUT'));
        assert.equal((await a.c.auth.getUser()).error, null);
        const gone = await b.c.auth.getUser();
        assert.ok(gone.error, 'the other session has ended');
        assert.equal((await b.c.auth.getSession()).data.session, null);
        assert.equal(S.sql(`SELECT count(*) FROM auth.sessions WHERE user_id = '${a.user.id}'`), '1');

        const { data: { session: last } } = await a.c.auth.getSession();
        assert.equal((await a.c.auth.signOut({ scope: 'local' })).error, null);
        assert.ok(a.events.names().includes('SIGNED_OUT'));
        assert.equal((await a.c.auth.getSession()).data.session, null);
        assert.equal(S.sql(`SELECT count(*) FROM auth.sessions WHERE user_id = '${a.user.id}'`), '0');
        const stale = await client().auth.refreshSession({ refresh_token: last.refresh_token });
        assert.equal(stale.error.code, 'refresh_token_not_found');
    });

    test('signOut scope global (the default)', async () => {
        const a = await signedIn('so-global');
        const b = await signedIn('so-global');
        assert.equal((await a.c.auth.signOut()).error, null);
        assert.deepEqual(a.events.names().filter((e) => e === 'SIGNED_OUT'), ['SIGNED_OUT']);
        assert.ok((await b.c.auth.getUser()).error);
        assert.equal(S.sql(`SELECT count(*) FROM auth.sessions WHERE user_id = '${a.user.id}'`), '0');
        assert.equal((await b.c.auth.getSession()).data.session, null);
    });

    test('errors: a refused code, a conflict, an expired token, an ended session', async () => {
        const c = client();
        const refused = await signInWithWechat(c, { code: S.codes.refused() });
        assert.ok(isAuthApiError(refused.error));
        assert.equal(refused.error.status, 400);
        assert.equal(refused.error.code, 'invalid_credentials');
        assert.ok(refused.error.message && !refused.error.message.startsWith('{'), refused.error.message);

        // Bob binds the WeChat account Alice signed in with: 409, through .rpc().
        const aliceCode = S.codes.login('conflict-alice');
        assert.equal((await signInWithWechat(client(), { code: aliceCode })).error, null);
        const bob = await signedIn('conflict-bob');
        S.makeWebUser(bob.user.id, `86${S.phoneNumber()}`);
        const bind = await bob.c.rpc('wechat_bind_account', { code: S.codes.login('conflict-alice') });
        assert.equal(bind.status, 409);
        assert.ok(bind.error.message);
        assert.equal(JSON.parse(bind.error.details).error_code, 'identity_already_exists');

        const expired = S.mintJwt({
            sub: bob.user.id, role: 'authenticated', aud: 'authenticated', session_id: S.claimsOf(bob.session.access_token).session_id,
            iat: Math.floor(Date.now() / 1000) - 120, exp: Math.floor(Date.now() / 1000) - 60,
        });
        const old = await c.auth.getUser(expired);
        assert.equal(old.error.status, 401);
        assert.equal(old.error.code, 'bad_jwt');
        assert.match(old.error.message, /JWT expired/i);

        await bob.c.auth.signOut();
        const ended = await c.auth.getUser(bob.session.access_token);
        assert.equal(ended.error.name, 'AuthSessionMissingError'); // 403 session_not_found, as from GoTrue
    });
});

describe('supabase-js getClaims with ES256 tokens (auth_wechat.jwt_keys)', { skip: S.skip }, () => {
    const ctx = S.gatewayHooks(S.env.restUrlEs256);

    test('verified against the JWKS the adapter serves, fetched once, then without a request', async () => {
        const c = createClient(ctx.gw.url, S.env.anonKey, {
            global: { fetch: createWechatAuthFetch() },
            auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
        });
        ctx.clients.push(c);
        const { data: signedIn, error } = await signInWithWechat(c, { code: S.codes.login('claims-es') });
        assert.equal(error, null);
        const token = signedIn.session.access_token;
        const header = JSON.parse(Buffer.from(token.split('.')[0], 'base64url'));
        assert.deepEqual([header.alg, header.kid], ['ES256', 'js-test-ec']);

        const before = ctx.gw.hits.rest.length;
        const first = await c.auth.getClaims(token); // given: see the HS256 test
        assert.equal(first.error, null);
        assert.equal(first.data.claims.sub, signedIn.user.id);
        assert.deepEqual(ctx.gw.hits.rest.slice(before), ['POST /rpc/wechat_jwks'], 'the JWKS, not wechat_user');
        const again = await c.auth.getClaims(token);
        assert.equal(again.error, null);
        assert.equal(ctx.gw.hits.rest.length, before + 1, 'the cached JWKS: no request');

        const forged = await c.auth.getClaims(S.forgeSignature(token));
        assert.match(forged.error?.message ?? '', /signature/i);
        assert.equal(forged.data, null);

        // PostgREST (jwt-secret: auth.wechat_postgrest_jwks()) takes the ES256 token, and the
        // anon key (HS256) that carried the sign-in.
        const who = await c.rpc('whoami');
        assert.equal(who.error, null);
        assert.deepEqual([who.data.uid, who.data.role], [signedIn.user.id, 'authenticated']);
    });
});
