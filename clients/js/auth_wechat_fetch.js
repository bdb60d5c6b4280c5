'use strict';
/**
 * auth_wechat_fetch.js: Supabase's auth SDKs on PostgreSQL + PostgREST, without GoTrue.
 *
 * A fetch for supabase-js (`createClient(url, key, { global: { fetch } })`) and for MemFire's
 * `supabase-wechat-stable-v2` (`new SupabaseClient(url, key, { global: { fetch } })`). It answers
 * the SDKs' GoTrue requests (`{base}/auth/v1/...`) by calling the auth_wechat extension's
 * functions through PostgREST (`POST {base}/rest/v1/rpc/wechat_*`, after
 * `SELECT auth.wechat_expose()`), and passes every other request to the underlying fetch,
 * unchanged but for the PostgREST path: with `restPath` other than `/rest/v1` (`''` for a bare
 * PostgREST as the project URL), the SDK's `{base}/rest/v1/...` calls go to `{base}{restPath}/...`.
 * No request reaches `/auth/v1/`.
 *
 *   GET  auth/v1/wechat_mini/login?code=…         rpc wechat_sign_in            → the session
 *   POST auth/v1/token?grant_type=id_token        rpc wechat_sign_in            → the session
 *        {"provider": "wechat_mini", "id_token": code}   (supabase-js: signInWithIdToken)
 *   GET  auth/v1/wechat_mini/bind_account?code=…  rpc wechat_bind_account       → the user
 *   GET  auth/v1/wechat_mini/bind_phone?code=…    rpc wechat_bind_phone         → the user
 *   POST auth/v1/wechat_mini/unlimited_qrcode     rpc wechat_unlimited_qrcode   → {"imgBase64"}
 *   POST auth/v1/token?grant_type=refresh_token   rpc wechat_refresh_session    → the session
 *   GET  auth/v1/user                             rpc wechat_user               → the user
 *   POST auth/v1/logout?scope=local|global|others rpc wechat_sign_out           → 204
 *   DELETE auth/v1/user/identities/{id}           rpc wechat_unlink_identity    → {}
 *        (supabase-js: unlinkIdentity, for WeChat identities)
 *   GET  auth/v1/.well-known/jwks.json            rpc wechat_jwks               → {"keys": [...]}
 *        (supabase-js: getClaims, for ES256/RS256 tokens), cacheable for 10 minutes as GoTrue's
 *   any other auth/v1 request                     404, GoTrue's error body
 *
 * Errors come back as GoTrue's error body, `{"code": <HTTP status>, "error_code": "...",
 * "msg": "..."}`, with PostgREST's HTTP status, so both SDKs raise their AuthApiError with the
 * extension's message and stable error code.
 *
 * Responses come in the shape of the underlying fetch: a `Response` for the platform fetch, and
 * for MemFire's wx.request fetch (`dist/main/wefetch`) its plain object
 * `{data, status, ok, headers: Map, json()}`. With the wx shape, PostgREST errors of ordinary
 * `.from()`/`.rpc()` calls also get `message`, `code`, `details` and `hint` on the response
 * object, which MemFire's postgrest-js hands over as `error`: `error.message` is readable there
 * too. `shape: 'wx'` makes every response (passed-through ones included) wx-shaped, so MemFire's
 * SDK also runs on a platform fetch.
 *
 * CommonJS, no dependencies, ES2017: copy this one file into a mini program.
 */

var JSON_TYPE = 'application/json;charset=UTF-8';
var QR_ARGS = ['scene', 'page', 'check_path', 'env_version', 'width', 'auto_color', 'line_color', 'is_hyaline'];

/**
 * `appid`: the app this client runs in (a mini program of `auth_wechat.apps`; absent: the
 * database's default one), sent with every call that trades a code or spends the app's quota:
 * sign-in, account and phone binds, QR codes. WeChat refuses a code traded with another app's
 * credentials, so a client of a second mini program that left it out of a bind would be refused.
 *
 * @param {{fetch?: Function, restPath?: string, shape?: 'fetch'|'wx', appid?: string}} [options]
 * @returns {(input: any, init?: any) => Promise<any>}
 */
function createWechatAuthFetch(options) {
    options = options || {};
    var restTrimmed = String(options.restPath == null ? '/rest/v1' : options.restPath).replace(/^\/+|\/+$/g, '');
    var restPath = restTrimmed ? '/' + restTrimmed : ''; // '' or '/': PostgREST at the project URL itself
    var fixedShape = options.shape === 'wx' || options.shape === 'fetch' ? options.shape : null;
    if (options.shape != null && !fixedShape) {
        throw new TypeError("createWechatAuthFetch: shape must be 'fetch' or 'wx'");
    }
    var seenShape = null;
    // A call's arguments with the app, when one is named (absent: the SQL default, the default app).
    function withApp(args) {
        if (options.appid) args.appid = options.appid;
        return args;
    }

    function baseFetch() {
        var f = options.fetch || (typeof globalThis !== 'undefined' ? globalThis.fetch : undefined);
        if (typeof f !== 'function') {
            throw new TypeError('createWechatAuthFetch: no fetch; pass { fetch }');
        }
        return f;
    }

    function note(res) {
        var shape = isWxResponse(res) ? 'wx' : 'fetch';
        seenShape = shape;
        return shape;
    }

    function answerShape() {
        if (fixedShape) return fixedShape;
        if (seenShape) return seenShape;
        return typeof Response === 'function' ? 'fetch' : 'wx';
    }

    async function rpc(req, fn, args) {
        var headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
        var apikey = headerValue(req.headers, 'apikey');
        var authorization = headerValue(req.headers, 'authorization');
        if (apikey) headers.apikey = apikey;
        if (authorization) headers.Authorization = authorization;
        var res = await baseFetch()(req.base + restPath + '/rpc/' + fn, {
            method: 'POST',
            headers: headers,
            body: JSON.stringify(args || {}),
        });
        var shape = note(res);
        var body = await readBody(res, shape);
        var status = res.status;
        return { status: status, ok: status >= 200 && status < 300, body: body };
    }

    function answer(status, body, headers) {
        return makeResponse(answerShape(), status, body, headers);
    }

    function fail(result) {
        var error = goTrueError(result.status, result.body);
        return answer(error.code, error);
    }

    async function handleAuth(req) {
        var route = req.route;
        var method = req.method;
        var query = route.query;
        var result;

        if (route.path === 'wechat_mini/login' && (method === 'GET' || method === 'POST')) {
            var loginCode = query.code != null ? query.code : (await req.json()).code;
            result = await rpc(req, 'wechat_sign_in', withApp({ code: loginCode }));
            return result.ok ? answer(200, result.body) : fail(result);
        }

        if ((route.path === 'wechat_mini/bind_account' || route.path === 'wechat_mini/bind_phone') &&
                (method === 'GET' || method === 'POST')) {
            var bindCode = query.code != null ? query.code : (await req.json()).code;
            var fn = route.path === 'wechat_mini/bind_account' ? 'wechat_bind_account' : 'wechat_bind_phone';
            result = await rpc(req, fn, withApp({ code: bindCode }));
            // The function returns the user, as MemFire's API does: its SDK takes the body as the
            // user (`data.data ?? data`) and keeps its own session, whose access token stays valid.
            return result.ok ? answer(200, result.body) : fail(result);
        }

        if (route.path === 'wechat_mini/unlimited_qrcode' && method === 'POST') {
            var params = await req.json();
            var args = {};
            for (var i = 0; i < QR_ARGS.length; i++) {
                var value = params[QR_ARGS[i]];
                if (value !== undefined && value !== null) args[QR_ARGS[i]] = value; // absent: the SQL default
            }
            result = await rpc(req, 'wechat_unlimited_qrcode', withApp(args));
            return result.ok ? answer(200, result.body) : fail(result);
        }

        if (route.path === 'token' && method === 'POST' && query.grant_type === 'refresh_token') {
            var refreshBody = await req.json();
            result = await rpc(req, 'wechat_refresh_session', { refresh_token: refreshBody.refresh_token });
            return result.ok ? answer(200, result.body) : fail(result);
        }

        if (route.path === 'token' && method === 'POST' && query.grant_type === 'id_token') {
            var idBody = await req.json();
            if (idBody.provider === 'wechat_mini' || idBody.provider === 'wechat') {
                result = await rpc(req, 'wechat_sign_in', withApp({ code: idBody.id_token }));
                return result.ok ? answer(200, result.body) : fail(result);
            }
        }

        if (route.path === 'user' && method === 'GET') {
            result = await rpc(req, 'wechat_user', {});
            return result.ok ? answer(200, result.body) : fail(result);
        }

        var unlinking = route.path.match(/^user\/identities\/([^/]+)$/);
        if (unlinking && method === 'DELETE') {
            result = await rpc(req, 'wechat_unlink_identity', { identity_id: decodeURIComponent(unlinking[1]) });
            return result.ok ? answer(200, {}) : fail(result);
        }

        if (route.path === '.well-known/jwks.json' && method === 'GET') {
            result = await rpc(req, 'wechat_jwks', {});
            // GoTrue's caching: the keys change only in a roll-out, whose steps are longer.
            return result.ok ? answer(200, result.body, { 'Cache-Control': 'public, max-age=600' }) : fail(result);
        }

        if (route.path === 'logout' && method === 'POST') {
            result = await rpc(req, 'wechat_sign_out', { scope: query.scope || 'global' });
            if (result.ok) return answer(204, null);
            // The token's session is gone already (signed out, ended as stolen): nothing to end
            // with it. 401, which both SDKs take as "signed out here" (MemFire's ignores only
            // 401 and 404 and would otherwise keep the local session).
            var error = goTrueError(result.status, result.body);
            if (error.error_code === 'session_not_found') error.code = 401;
            return answer(error.code, error);
        }

        return answer(404, {
            code: 404,
            error_code: 'not_found',
            msg: 'auth_wechat: ' + method + ' /auth/v1/' + route.path + ' is not served without GoTrue',
        });
    }

    return async function wechatAuthFetch(input, init) {
        var req = describe(input, init);
        if (!req.route || req.route.service !== 'auth') {
            // The SDK's own PostgREST calls go to `/rest/v1`; with another restPath (a bare
            // PostgREST as the project URL: '') they are sent there instead.
            if (req.route && req.route.service === 'rest' && restPath !== '/rest/v1') {
                input = rewritten(input, req.route.base + restPath + req.route.rest);
            }
            var res = await baseFetch()(input, init);
            var shape = note(res);
            if (shape === 'fetch' && fixedShape === 'wx') return toWxResponse(res);
            if (shape === 'wx') explainWxError(res);
            return res;
        }
        req.base = req.route.base;
        return handleAuth(req);
    };
}

// --- requests -------------------------------------------------------------------------------

// `input` (a URL string, a URL or a Request) sent to `url` instead.
function rewritten(input, url) {
    if (typeof input === 'string' || !input || typeof input !== 'object') return url;
    if (input.href) return url;
    if (typeof Request === 'function' && input instanceof Request) return new Request(url, input);
    return url;
}

function describe(input, init) {
    init = init || {};
    var isRequest = input && typeof input === 'object' && typeof input.url === 'string' && !input.href;
    var url = typeof input === 'string' ? input : input && (input.href || input.url) ? String(input.href || input.url) : String(input);
    var method = String(init.method || (isRequest && input.method) || 'GET').toUpperCase();
    var headers = init.headers || (isRequest ? input.headers : undefined);
    var jsonPromise = null;
    return {
        url: url,
        method: method,
        headers: headers,
        route: matchService(url),
        json: function () {
            if (!jsonPromise) {
                jsonPromise = (async function () {
                    var body = init.body;
                    if (body == null && isRequest && typeof input.text === 'function') body = await input.text();
                    if (body == null || body === '') return {};
                    if (typeof body === 'object' && !(typeof ArrayBuffer !== 'undefined' && body instanceof ArrayBuffer)) return body;
                    try { return JSON.parse(typeof body === 'string' ? body : decodeUtf8(body)) || {}; } catch (e) { return {}; }
                })();
            }
            return jsonPromise;
        },
    };
}

// `{origin}{prefix}/{service}/v1/{path}?{query}`: the first `/<service>/v1` of the path, or null.
function matchService(url) {
    var cut = url.search(/[?#]/);
    var beforeQuery = cut < 0 ? url : url.slice(0, cut);
    var queryString = cut < 0 ? '' : url.slice(cut + 1).split('#')[0];
    if (url.charAt(cut) === '#') queryString = '';
    var origin = (beforeQuery.match(/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/]*/) || [''])[0];
    var segments = beforeQuery.slice(origin.length).split('/');
    for (var i = 1; i + 1 < segments.length; i++) {
        if (segments[i + 1] === 'v1' && segments[i] !== '') {
            return {
                service: segments[i],
                base: origin + segments.slice(0, i).join('/'),
                rest: url.slice(origin.length + segments.slice(0, i + 2).join('/').length),
                path: segments.slice(i + 2).join('/').replace(/\/+$/, ''),
                query: parseQuery(queryString),
            };
        }
    }
    return null;
}

function parseQuery(queryString) {
    var query = {};
    if (!queryString) return query;
    queryString.split('&').forEach(function (pair) {
        if (!pair) return;
        var eq = pair.indexOf('=');
        var key = eq < 0 ? pair : pair.slice(0, eq);
        var value = eq < 0 ? '' : pair.slice(eq + 1);
        // A '+' stays a '+': MemFire's SDK puts the code into the URL unencoded, and no value
        // read here (code, scope, grant_type) ever holds a space.
        try {
            query[decodeURIComponent(key)] = decodeURIComponent(value);
        } catch (e) {
            query[key] = value;
        }
    });
    return query;
}

// A header from a Headers, a Map (MemFire's postgrest fetch), an array of pairs or an object.
function headerValue(headers, name) {
    if (!headers) return undefined;
    name = name.toLowerCase();
    var found;
    if (typeof headers.forEach === 'function' && !Array.isArray(headers)) {
        headers.forEach(function (value, key) {
            if (found === undefined && String(key).toLowerCase() === name) found = value;
        });
        return found;
    }
    if (Array.isArray(headers)) {
        for (var i = 0; i < headers.length; i++) {
            if (String(headers[i][0]).toLowerCase() === name) return headers[i][1];
        }
        return undefined;
    }
    for (var key in headers) {
        if (Object.prototype.hasOwnProperty.call(headers, key) && key.toLowerCase() === name) return headers[key];
    }
    return undefined;
}

// --- responses ------------------------------------------------------------------------------

// MemFire's wefetch answers wx.request's object: parsed `data`, `status`, `ok`, `headers` as a
// Map, `json()`; no `text()`.
function isWxResponse(res) {
    return !!res && typeof res === 'object' && 'data' in res && typeof res.status === 'number' &&
        typeof res.text !== 'function';
}

async function readBody(res, shape) {
    if (shape === 'wx') {
        var data = res.data;
        if (typeof data === 'string') {
            if (data === '') return null;
            try { return JSON.parse(data); } catch (e) { return data; }
        }
        return data === undefined ? null : data;
    }
    var text = await res.text();
    if (!text) return null;
    try { return JSON.parse(text); } catch (e) { return text; }
}

// A response of `shape` with a JSON body and, besides Content-Type, `extraHeaders` (optional).
function makeResponse(shape, status, body, extraHeaders) {
    var headers = { 'Content-Type': JSON_TYPE };
    for (var name in extraHeaders || {}) headers[name] = extraHeaders[name];
    if (shape === 'wx') return wxResponse(status, body, headers);
    var text = body === null || body === undefined ? null : JSON.stringify(body);
    if (typeof Response === 'function') {
        return new Response(status === 204 ? null : text, { status: status, headers: headers });
    }
    var lower = new Map(Object.keys(headers).map(function (k) { return [k.toLowerCase(), headers[k]]; }));
    return {
        ok: status >= 200 && status < 300,
        status: status,
        statusText: '',
        headers: { get: function (name) { return lower.has(name.toLowerCase()) ? lower.get(name.toLowerCase()) : null; } },
        json: function () { return Promise.resolve(text === null ? null : JSON.parse(text)); },
        text: function () { return Promise.resolve(text === null ? '' : text); },
    };
}

function wxResponse(status, data, headers) {
    var res = {
        data: data === null || data === undefined ? '' : data,
        status: status,
        ok: status >= 200 && status < 300,
        headers: new Map(Object.keys(headers).map(function (k) { return [k.toLowerCase(), headers[k]]; })),
        errMsg: 'request:ok',
        json: function () { return Promise.resolve(res.data); },
    };
    if (!res.ok && data && typeof data === 'object') {
        // MemFire's gotrue-js builds its AuthApiError from the response object itself.
        if (typeof data.msg === 'string') res.msg = data.msg;
        if (typeof data.error_code === 'string') res.error_code = data.error_code;
        explainWxError(res);
    }
    return res;
}

// MemFire's postgrest-js returns the whole response object as `error`: put PostgREST's error
// fields on it so `error.message` (and code, details, hint) read as in supabase-js.
function explainWxError(res) {
    if (!res || res.ok || !res.data || typeof res.data !== 'object') return res;
    var data = res.data;
    var message = typeof data.message === 'string' ? data.message : typeof data.msg === 'string' ? data.msg : undefined;
    if (res.message === undefined && message !== undefined) res.message = message;
    if (res.code === undefined && data.code !== undefined) res.code = data.code;
    if (res.details === undefined && data.details !== undefined) res.details = data.details;
    if (res.hint === undefined && data.hint !== undefined) res.hint = data.hint;
    return res;
}

async function toWxResponse(res) {
    var headers = {};
    if (res.headers && typeof res.headers.forEach === 'function') {
        res.headers.forEach(function (value, key) { headers[key] = value; });
    }
    var data = await readBody(res, 'fetch');
    var wx = wxResponse(res.status, data, headers);
    if (!wx.ok) explainWxError(wx);
    return wx;
}

// PostgREST's error (`{"code": "PT403", "message", "details": "{\"error_code\": ...}", "hint"}`),
// or the extension's `{"code": "refresh_token_already_used", "message"}` answered through
// response.status, as GoTrue's error body.
function goTrueError(status, body) {
    var errorCode;
    var msg;
    if (body && typeof body === 'object') {
        if (typeof body.details === 'string' && body.details.charAt(0) === '{') {
            try {
                var details = JSON.parse(body.details);
                if (details && typeof details.error_code === 'string') errorCode = details.error_code;
            } catch (e) { /* not the extension's detail */ }
        }
        if (!errorCode && typeof body.error_code === 'string') errorCode = body.error_code;
        if (!errorCode && typeof body.code === 'string') {
            if (/^PGRST3/.test(body.code)) errorCode = 'bad_jwt';          // JWT missing, expired, invalid
            else if (body.code === '42501') errorCode = 'no_authorization'; // no right to the function
            else if (/^[a-z][a-z0-9_]*$/.test(body.code)) errorCode = body.code;
        }
        msg = [body.msg, body.message, body.error_description, body.error].filter(function (m) {
            return typeof m === 'string' && m !== '';
        })[0];
    } else if (typeof body === 'string' && body !== '') {
        msg = body;
    }
    return {
        code: status,
        error_code: errorCode || (status >= 500 ? 'unexpected_failure' : 'request_failed'),
        msg: msg || 'HTTP ' + status,
    };
}

function decodeUtf8(bytes) {
    if (typeof TextDecoder === 'function') return new TextDecoder().decode(bytes);
    return String(bytes);
}

/**
 * supabase-js has no signInWithWechat: this is one, on its public API. The code goes to
 * `auth.signInWithIdToken({ provider: 'wechat_mini', token: code })`, which this fetch answers
 * with `wechat_sign_in`; the SDK saves the session and fires SIGNED_IN. Also works on MemFire's
 * client (which has its own `auth.signInWithWechat`).
 */
function signInWithWechat(client, credentials) {
    return client.auth.signInWithIdToken({ provider: 'wechat_mini', token: credentials && credentials.code });
}

module.exports = { createWechatAuthFetch: createWechatAuthFetch, signInWithWechat: signInWithWechat, goTrueError: goTrueError };
