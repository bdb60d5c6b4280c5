'use strict';
// The tests that wait: each SDK's own auto-refresh ticker (it ticks every 30 s and refreshes a
// token that expires within 3 ticks; js_test.sh makes tokens live JWT_EXP = 60 s), and a
// refresh token presented again after the reuse interval (10 s), which ends its session.
// They run concurrently.

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const S = require('./support/stack.js');
const { installWx } = require('./support/wx.js');

const wx = installWx();
const supabaseJs = require('@supabase/supabase-js');
const memfire = require('supabase-wechat-stable-v2');
const wefetch = require('supabase-wechat-stable-v2/dist/main/wefetch').default;
const { createWechatAuthFetch, signInWithWechat } = require('../auth_wechat_fetch.js');

describe('waiting on the clock', { skip: S.skip, concurrency: true }, () => {
    const ctx = S.gatewayHooks();
    const clients = ctx.clients;
    let keys = 0;

    const sdks = {
        'supabase-js': {
            client: (autoRefreshToken) => supabaseJs.createClient(ctx.gw.url, S.env.anonKey, {
                global: { fetch: createWechatAuthFetch() },
                auth: { persistSession: false, autoRefreshToken, detectSessionInUrl: false },
            }),
            signIn: (c, code) => signInWithWechat(c, { code }),
        },
        memfire: {
            client: (autoRefreshToken) => new memfire.SupabaseClient(ctx.gw.url, S.env.anonKey, {
                global: { fetch: createWechatAuthFetch({ fetch: wefetch }) },
                auth: { autoRefreshToken, storageKey: `sb-slow-${++keys}-auth-token` },
            }),
            signIn: (c, code) => c.auth.signInWithWechat({ code }),
        },
    };

    for (const [name, sdk] of Object.entries(sdks)) {
        test(`${name}: the SDK's own ticker refreshes the session (TOKEN_REFRESHED)`, { timeout: 90_000 }, async () => {
            assert.ok(S.env.jwtExp <= 120, 'tokens must expire within the ticker\'s 4 ticks (JWT_EXP <= 120)');
            const c = sdk.client(true);
            clients.push(c);
            const events = S.recordEvents(c.auth);
            const { data, error } = await sdk.signIn(c, S.codes.login(`auto-${name}`));
            assert.equal(error, null);
            const first = data.session;
            const refreshed = await S.waitFor(() => events.find((e) => e.event === 'TOKEN_REFRESHED'),
                { timeoutMs: 70_000, stepMs: 250, what: 'TOKEN_REFRESHED from the ticker' });
            assert.notEqual(refreshed.session.refresh_token, first.refresh_token);
            assert.equal(S.claimsOf(refreshed.session.access_token).session_id, S.claimsOf(first.access_token).session_id);
            const { data: user, error: userError } = await c.auth.getUser();
            assert.equal(userError, null);
            assert.equal(user.user.id, first.user.id);
        });

        test(`${name}: a refresh token used again later ends the session (refresh_token_already_used)`, { timeout: 60_000 }, async () => {
            const c = sdk.client(false);
            clients.push(c);
            const { data } = await sdk.signIn(c, S.codes.login(`stolen-${name}`));
            const r0 = data.session.refresh_token;
            assert.equal((await c.auth.refreshSession()).error, null);
            assert.equal((await c.auth.refreshSession()).error, null);
            await S.sleep(11_000); // past auth_wechat.refresh_token_reuse_interval (10 s)
            const thief = sdk.client(false);
            clients.push(thief);
            const stolen = await thief.auth.refreshSession({ refresh_token: r0 });
            assert.equal(stolen.error.status, 400);
            assert.match(stolen.error.message, /.+/);
            if (name === 'supabase-js') assert.equal(stolen.error.code, 'refresh_token_already_used');
            assert.equal(S.sql(`SELECT count(*) FROM auth.sessions WHERE user_id = '${data.user.id}'`), '0');
            // The owner's next refresh fails too. MemFire's SDK signs out at once; supabase-js
            // keeps the session while its access token is still valid (its own choice).
            const events = S.recordEvents(c.auth);
            const owner = await c.auth.refreshSession();
            assert.equal(owner.error.status, 400);
            if (name === 'supabase-js') assert.equal(owner.error.code, 'refresh_token_not_found');
            else await S.waitFor(() => events.names().includes('SIGNED_OUT'), { what: 'SIGNED_OUT' });
        });
    }
});

void wx;
