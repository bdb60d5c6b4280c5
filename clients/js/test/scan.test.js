'use strict';
// auth_wechat_scan.js: its helpers on fakes, then the whole scan-to-sign-in with supabase-js on
// the stack: a browser's client starts and waits, a mini program's signed-in client views and
// confirms, and the browser ends up signed in as that user.

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const { createWechatAuthFetch, signInWithWechat } = require('../auth_wechat_fetch.js');
const { startScanSignIn, waitForScanSignIn, scanTicketOf, viewScanTicket, confirmScanTicket } = require('../auth_wechat_scan.js');
const S = require('./support/stack.js');

// A client whose rpc answers `answers` in turn and records the calls.
function fakeClient(answers) {
    const calls = [];
    const sessions = [];
    return {
        calls,
        sessions,
        rpc: async (fn, args) => {
            calls.push({ fn, args, at: Date.now() });
            return answers.shift();
        },
        auth: {
            setSession: async (tokens) => {
                sessions.push(tokens);
                return { data: { session: { ...tokens, user: { id: 'u1' } } }, error: null };
            },
        },
    };
}

const started = { ticket: 'T'.repeat(22), pollSecret: 'S'.repeat(43) };

test('scanTicketOf: the scene decoded; a code read from an image is told apart from the camera', () => {
    assert.deepEqual(scanTicketOf({ scene: 'abc-_DEF' }, 1047), { ticket: 'abc-_DEF', launchScene: 1047, fromCamera: true, fromImage: false });
    assert.equal(scanTicketOf({ scene: 'a%3Db' }, 1048).ticket, 'a=b');
    assert.equal(scanTicketOf({ scene: 'x' }, 1048).fromImage, true, 'long-pressed in a chat');
    assert.equal(scanTicketOf({ scene: 'x' }, 1049).fromImage, true, 'picked from the album');
    assert.equal(scanTicketOf({}, 1001).ticket, null);
});

test('waitForScanSignIn: polls until confirmed, reports each new status once, sets the session', async () => {
    const session = { access_token: 'a.b.c', refresh_token: 'r1', user: { id: 'u1' } };
    const client = fakeClient([
        { data: { status: 'pending' }, error: null, status: 200 },
        { data: { status: 'pending' }, error: null, status: 200 },
        { data: { status: 'scanned' }, error: null, status: 200 },
        { data: session, error: null, status: 200 },
    ]);
    const seen = [];
    const done = await waitForScanSignIn(client, started, { intervalMs: 5, onStatus: (s, d) => seen.push([s, d.status]) });
    assert.equal(done.status, 'signed_in');
    assert.deepEqual(seen, [['pending', 'pending'], ['scanned', 'scanned']]);
    assert.deepEqual(client.sessions, [{ access_token: 'a.b.c', refresh_token: 'r1' }]);
    assert.deepEqual(client.calls[0], { fn: 'wechat_scan_poll', args: { ticket: started.ticket, poll_secret: started.pollSecret }, at: client.calls[0].at });
});

test('waitForScanSignIn: backs off while refused, stops on denied, expired and gone', async () => {
    const refused = { data: null, error: { message: 'Request rate limit reached' }, status: 429 };
    const client = fakeClient([refused, refused, { data: { status: 'denied' }, error: null, status: 200 }]);
    assert.deepEqual(await waitForScanSignIn(client, started, { intervalMs: 10, maxIntervalMs: 40 }), { status: 'denied' });
    const gaps = client.calls.slice(1).map((c, i) => c.at - client.calls[i].at);
    assert.ok(gaps[0] >= 18 && gaps[1] >= 36, `doubling waits: ${gaps}`);
    assert.deepEqual(await waitForScanSignIn(fakeClient([{ data: { status: 'expired' }, error: null, status: 200 }]), started), { status: 'expired' });
    const gone = { data: null, error: { message: 'no such scan ticket' }, status: 404 };
    assert.deepEqual(await waitForScanSignIn(fakeClient([gone]), started), { status: 'gone' });
    const forbidden = { data: null, error: { message: 'permission denied' }, status: 401 };
    await assert.rejects(waitForScanSignIn(fakeClient([forbidden]), started), (e) => e.status === 401);
});

describe('scan to sign in with supabase-js', { skip: S.skip }, () => {
    const ctx = S.gatewayHooks();

    function client() {
        // Required here: the helpers' own tests above run without the SDKs installed.
        const { createClient } = require('@supabase/supabase-js');
        const c = createClient(ctx.gw.url, S.env.anonKey, {
            global: { fetch: createWechatAuthFetch() },
            auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
        });
        ctx.clients.push(c);
        return c;
    }

    test('the browser starts and waits; the mini program views and confirms; the browser is that user', async () => {
        const browser = client();
        const shown = await startScanSignIn(browser);
        assert.match(shown.image, /^data:image\/jpeg;base64,\/9j\//);
        assert.equal(shown.ticket.length, 22);

        const mini = client();
        const { data, error } = await signInWithWechat(mini, { code: S.codes.login('scanner') });
        assert.equal(error, null);
        const statuses = [];
        const waiting = waitForScanSignIn(browser, shown, { intervalMs: 50, onStatus: (s) => statuses.push(s) });

        const { ticket, fromImage } = scanTicketOf({ scene: encodeURIComponent(shown.ticket) }, 1047);
        assert.equal(fromImage, false);
        const asked = await viewScanTicket(mini, ticket);
        assert.ok(asked.expires_in > 0 && asked.requested_at > 0, JSON.stringify(asked));
        await S.waitFor(() => statuses.includes('scanned'), { what: 'the browser sees the scan' });
        assert.deepEqual(await confirmScanTicket(mini, ticket), { status: 'confirmed' });

        const done = await waiting;
        assert.equal(done.status, 'signed_in');
        const me = await browser.auth.getUser();
        assert.equal(me.error, null);
        assert.equal(me.data.user.id, data.user.id, 'the browser is the user who confirmed');
        assert.notEqual(S.claimsOf(done.session.access_token).session_id, S.claimsOf(data.session.access_token).session_id);

        const again = await waitForScanSignIn(browser, shown);
        assert.deepEqual(again, { status: 'gone' }, 'the session is handed out once');
        await assert.rejects(confirmScanTicket(client(), ticket), (e) => e.status === 401, 'a confirm needs a signed-in user');
    });
});
