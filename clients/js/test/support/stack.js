'use strict';
// The stack the SDK tests run on, as scripts/js_test.sh starts it: PostgreSQL with auth_wechat,
// the WeChat simulator and PostgREST. Its coordinates come from the environment; without them
// the SDK tests are skipped (the adapter's own tests still run), except under scripts/js_test.sh.
//
// Each test file starts its own gateway, a path-prefix proxy like Supabase's Kong:
// `/rest/v1/*` → PostgREST, and everything else (notably `/auth/v1/*`) → 404; both recorded
// (`hits`), so the tests can assert that no request ever reached GoTrue's path, and which ones
// reached PostgREST.

const http = require('node:http');
const assert = require('node:assert/strict');
const { before, after, afterEach } = require('node:test');
const crypto = require('node:crypto');
const { execFileSync } = require('node:child_process');

const env = {
    restUrl: process.env.REST_URL,
    // A second stack whose access tokens are ES256 (scripts/js_test.sh), same keys and secret.
    restUrlEs256: process.env.REST_URL_ES256,
    // A second mini program of the stack (auth_wechat.apps), sharing unionids with the default one.
    liteAppid: process.env.LITE_APPID,
    anonKey: process.env.ANON_KEY,
    serviceRoleKey: process.env.SERVICE_ROLE_KEY,
    jwtSecret: process.env.JWT_SECRET,
    jwtExp: Number(process.env.JWT_EXP || 3600),
    psql: process.env.PSQL,
    dbUri: process.env.DB_URI,
};
const available = Boolean(env.restUrl && env.restUrlEs256 && env.liteAppid && env.anonKey && env.serviceRoleKey && env.jwtSecret);
// scripts/js_test.sh sets AUTH_WECHAT_REQUIRE_STACK: there a missing stack is a failure, not a skip.
if (!available && process.env.AUTH_WECHAT_REQUIRE_STACK === '1') {
    throw new Error('the SDK tests need the stack scripts/js_test.sh starts (REST_URL, ANON_KEY, ... unset)');
}
const skip = available ? false : 'no stack: run scripts/js_test.sh (REST_URL, ANON_KEY, ... unset)';

// A nonce per process, so reruns against the same stack make new users and unused codes.
const run = `${process.pid.toString(36)}${Date.now().toString(36)}`;
let next = 0;
const nonce = () => `n${run}x${++next}`;
const codes = {
    // `ok.<user>.<nonce>`: the simulator's success; the openid is stable per user name.
    login: (user) => `ok.${user}-${run}.${nonce()}`,
    // The same, with the person's unionid (the same in every app).
    union: (user) => `union.${user}-${run}.${nonce()}`,
    refused: () => `invalid.${nonce()}`,
    phone: (number) => `phone.86.${number}.${nonce()}`,
    // A code as made by the app `appid`: the simulator answers it to that app only (40029 to any
    // other's credentials or token), as WeChat does.
    madeBy: (code, appid) => `${code}~${appid}`,
};
// A fresh 11-digit mainland number per call.
let phoneSeq = Math.floor(Math.random() * 1e6);
const phoneNumber = () => `139${String(process.pid % 100).padStart(2, '0')}${String(++phoneSeq % 1e6).padStart(6, '0')}`;

// A gateway in front of the PostgREST at `restUrl` (the main stack's by default).
async function startGateway(restUrl = env.restUrl) {
    const target = new URL(restUrl);
    const hits = { auth: [], other: [], rest: [] };
    const server = http.createServer((req, res) => {
        if (req.url.startsWith('/rest/v1/') || req.url === '/rest/v1') {
            const path = req.url.slice('/rest/v1'.length) || '/';
            hits.rest.push(`${req.method} ${path}`);
            const headers = { ...req.headers, host: target.host };
            const upstream = http.request(
                { hostname: target.hostname, port: target.port, path, method: req.method, headers },
                (up) => {
                    res.writeHead(up.statusCode, up.headers);
                    up.pipe(res);
                },
            );
            upstream.on('error', (e) => {
                res.writeHead(502, { 'content-type': 'application/json' });
                res.end(JSON.stringify({ message: `gateway: ${e.message}` }));
            });
            req.pipe(upstream);
            return;
        }
        (req.url.startsWith('/auth/v1') ? hits.auth : hits.other).push(`${req.method} ${req.url}`);
        req.resume();
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ code: 404, error_code: 'gateway_no_route', msg: `gateway: no route for ${req.url}` }));
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    server.unref();
    return {
        url: `http://127.0.0.1:${server.address().port}`,
        hits,
        close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(() => resolve()); }),
    };
}

function b64url(data) {
    return Buffer.from(data).toString('base64url');
}

// An HS256 JWT signed with the project's secret (the API keys; a deliberately expired token).
function mintJwt(claims) {
    const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
    const body = b64url(JSON.stringify(claims));
    const sig = crypto.createHmac('sha256', env.jwtSecret).update(`${head}.${body}`).digest('base64url');
    return `${head}.${body}.${sig}`;
}

// `token` with its signature changed (its last four characters).
function forgeSignature(token) {
    return token.slice(0, -4) + (token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
}

function claimsOf(token) {
    return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

// SQL as the superuser, for what no API offers (turning a WeChat user into a "web" user, checks).
function sql(query) {
    if (!env.psql || !env.dbUri) throw new Error('PSQL and DB_URI are not set');
    return execFileSync(env.psql, ['-X', '-q', '-t', '-A', '-v', 'ON_ERROR_STOP=1', '-d', env.dbUri, '-c', query], {
        encoding: 'utf8',
    }).trim();
}

// Turns a user who signed in with WeChat into one who signed up on the web with phone + SMS and
// has no WeChat binding (their session stays): what wechatBindAccount is for.
function makeWebUser(userId, phone) {
    sql(`UPDATE auth.users SET wechat_id = '', wechat_unionid = '', phone = '${phone}', phone_confirmed_at = now(),
             raw_app_meta_data = '{"provider": "phone", "providers": ["phone"]}' WHERE id = '${userId}';
         DELETE FROM auth.identities WHERE user_id = '${userId}'`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(predicate, { timeoutMs = 5000, stepMs = 50, what = 'condition' } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const value = await predicate();
        if (value) return value;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await sleep(stepMs);
    }
}

// Records onAuthStateChange events: [{event, session}].
function recordEvents(auth) {
    const events = [];
    const { data } = auth.onAuthStateChange((event, session) => {
        events.push({ event, session });
    });
    events.names = () => events.map((e) => e.event);
    events.unsubscribe = () => data.subscription.unsubscribe();
    return events;
}

// The hooks of a test file's describe block: its gateway, started before the tests and closed
// after them; after each test, the check that nothing reached /auth/v1; the SDK clients it made
// (push them onto `clients`), whose auto-refresh is stopped at the end. `restUrl`: the PostgREST
// behind the gateway (the main stack's by default).
function gatewayHooks(restUrl = env.restUrl) {
    const ctx = { gw: null, clients: [] };
    before(async () => { ctx.gw = await startGateway(restUrl); });
    afterEach(() => assert.deepEqual(ctx.gw.hits.auth, [], 'no request may reach /auth/v1'));
    after(async () => {
        for (const c of ctx.clients) await c.auth.stopAutoRefresh();
        await ctx.gw?.close();
    });
    return ctx;
}

module.exports = {
    gatewayHooks, env, available, skip, codes, phoneNumber, startGateway, mintJwt, forgeSignature, claimsOf, sql, makeWebUser, sleep, waitFor, recordEvents, run,
};
