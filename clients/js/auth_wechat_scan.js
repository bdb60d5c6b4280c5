'use strict';
/**
 * auth_wechat_scan.js: scan-to-sign-in, a website's user signing in by scanning a code with WeChat
 * and confirming in your mini program (auth_wechat's `wechat_scan_*` functions, through the
 * wrappers `SELECT auth.wechat_expose()` makes).
 *
 * `client` is a supabase-js client (or MemFire's SDK's): the calls go through `client.rpc`.
 *
 * In the browser:
 *
 *   const started = await startScanSignIn(supabase);          // { ticket, pollSecret, image, expiresAt }
 *   img.src = started.image;                                   // a data: URL of the code
 *   const done = await waitForScanSignIn(supabase, started, { onStatus: (s) => show(s) });
 *   // done.status: 'signed_in' (the session is set: supabase.auth.setSession), or 'denied',
 *   // 'expired', 'gone' (someone else collected it, or the ticket was swept away)
 *
 * In the mini program, on the page the code opens (`auth_wechat.scan_page`):
 *
 *   onLoad(options) {
 *     const { ticket, fromImage } = scanTicketOf(options);     // fromImage: opened from a picture,
 *     const asked = await viewScanTicket(supabase, ticket);    //   not by the camera: warn (phishing)
 *     // show asked.user_agent, asked.client_address, asked.requested_at, then on the user's tap:
 *     await confirmScanTicket(supabase, ticket, true);          // or false to deny
 *   }
 *
 * Errors come back as the client's errors (`error.status`, and the extension's `error_code` in
 * `details`): thrown by the mini-program helpers and by `startScanSignIn`.
 *
 * CommonJS, no dependencies, ES2017: copy this one file into a mini program or a web bundle.
 */

/** WeChat's launch scenes for a mini-program code: scanned by the camera, or read from an image. */
var SCENE_CAMERA = 1047;
var SCENES_FROM_IMAGE = [1048, 1049]; // long-pressed in a chat or page; picked from the album

/** The error of a client call, thrown; its HTTP status kept as `status`. */
function raise(res) {
    var error = res.error;
    var thrown = error instanceof Error ? error : new Error(error && error.message ? error.message : 'request failed');
    if (!(error instanceof Error) && error) {
        Object.keys(error).forEach(function (key) { thrown[key] = error[key]; });
    }
    if (thrown.status == null && res.status != null) thrown.status = res.status;
    return thrown;
}

async function call(client, fn, args) {
    var res = await client.rpc(fn, args);
    if (res.error) throw raise(res);
    return res.data;
}

/**
 * Starts a ticket (`wechat_scan_start`, as the anonymous user): the code to show and the secret
 * only this browser holds.
 * @param {{rpc: Function}} client
 * @param {{appid?: string, page?: string}} [options]
 */
async function startScanSignIn(client, options) {
    options = options || {};
    var args = {};
    if (options.appid) args.appid = options.appid;
    if (options.page) args.page = options.page;
    var data = await call(client, 'wechat_scan_start', args);
    return {
        ticket: data.ticket,
        pollSecret: data.poll_secret,
        image: 'data:image/jpeg;base64,' + data.qrcode,
        expiresAt: data.expires_at,
        expiresIn: data.expires_in,
    };
}

function sleep(ms, signal) {
    return new Promise(function (resolve) {
        var timer = setTimeout(resolve, ms);
        if (signal) signal.addEventListener('abort', function () { clearTimeout(timer); resolve(); }, { once: true });
    });
}

/**
 * Polls the ticket (`wechat_scan_poll`, POST: the poll that gets the session writes it) every
 * `intervalMs` (1.5 s) until it is decided, backing off to `maxIntervalMs` (10 s) while the server
 * refuses (429, 5xx, no network). Once confirmed, sets the session on `client.auth`.
 * @param {{rpc: Function, auth: {setSession: Function}}} client
 * @param {{ticket: string, pollSecret: string}} started
 * @param {{intervalMs?: number, maxIntervalMs?: number, onStatus?: Function, signal?: AbortSignal}} [options]
 * @returns {Promise<{status: 'signed_in'|'denied'|'expired'|'gone'|'aborted', session?: object}>}
 */
async function waitForScanSignIn(client, started, options) {
    options = options || {};
    var base = options.intervalMs || 1500;
    var max = options.maxIntervalMs || 10000;
    var wait = base;
    var last = null;
    for (;;) {
        if (options.signal && options.signal.aborted) return { status: 'aborted' };
        var res = await client.rpc('wechat_scan_poll', { ticket: started.ticket, poll_secret: started.pollSecret });
        if (res.error) {
            if (res.status === 404) return { status: 'gone' };
            if (res.status && res.status < 500 && res.status !== 429) throw raise(res);
            wait = Math.min(max, wait * 2);
        } else if (res.data && res.data.access_token) {
            var set = await client.auth.setSession({ access_token: res.data.access_token, refresh_token: res.data.refresh_token });
            if (set.error) throw set.error;
            return { status: 'signed_in', session: set.data.session };
        } else {
            var status = res.data && res.data.status;
            if (status === 'denied' || status === 'expired') return { status: status };
            if (status !== last && options.onStatus) options.onStatus(status, res.data);
            last = status;
            wait = base;
        }
        await sleep(wait, options.signal);
    }
}

/**
 * The ticket a mini-program page was opened with (`options.scene`, which WeChat URL-encodes), and
 * whether it was opened from an image rather than by the camera: a code passed around as a
 * picture is how phishing pages relay a sign-in, so warn the user then.
 * @param {{scene?: string}} options the page's `onLoad` options
 * @param {number} [launchScene] the launch scene (default: `wx.getEnterOptionsSync().scene`)
 */
function scanTicketOf(options, launchScene) {
    var scene = options && options.scene ? decodeURIComponent(options.scene) : null;
    if (launchScene == null && typeof wx !== 'undefined' && wx.getEnterOptionsSync) {
        launchScene = wx.getEnterOptionsSync().scene;
    }
    var code = Number(launchScene);
    return { ticket: scene, launchScene: code, fromCamera: code === SCENE_CAMERA, fromImage: SCENES_FROM_IMAGE.indexOf(code) >= 0 };
}

/**
 * The signed-in user scanned the code (`wechat_scan_view`): the ticket becomes theirs; answers who
 * asked (`client_address`, `user_agent`, `requested_at`) and `expires_in`.
 */
function viewScanTicket(client, ticket) {
    return call(client, 'wechat_scan_view', { ticket: ticket });
}

/** The user's answer (`wechat_scan_confirm`): `{status: 'confirmed' | 'denied'}`. */
function confirmScanTicket(client, ticket, approve) {
    return call(client, 'wechat_scan_confirm', { ticket: ticket, approve: approve !== false });
}

module.exports = {
    startScanSignIn: startScanSignIn,
    waitForScanSignIn: waitForScanSignIn,
    scanTicketOf: scanTicketOf,
    viewScanTicket: viewScanTicket,
    confirmScanTicket: confirmScanTicket,
};
