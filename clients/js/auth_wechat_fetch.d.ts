/**
 * auth_wechat_fetch: answers the Supabase auth SDKs' GoTrue requests (`{base}/auth/v1/...`) with
 * the auth_wechat extension's functions through PostgREST (`{base}{restPath}/rpc/wechat_*`), and
 * passes every other request to the underlying fetch (PostgREST's path moved to `restPath`).
 */

/** The fetch the SDKs call: the platform's signature, answered in the underlying fetch's shape. */
export type WechatAuthFetch = (input: any, init?: any) => Promise<any>;

export interface WechatAuthFetchOptions {
    /**
     * The fetch that reaches PostgREST: `globalThis.fetch` when absent (looked up per call), or
     * MemFire's wx.request fetch (`supabase-wechat-stable-v2/dist/main/wefetch`'s default export).
     */
    fetch?: (input: any, init?: any) => Promise<any>;
    /**
     * Where PostgREST is served below the project URL. Default `/rest/v1` (Supabase's gateway).
     * `''` when the project URL is a bare PostgREST: the SDK's own `/rest/v1/...` calls
     * (`.from()`, `.rpc()`) are then sent to `{base}{restPath}/...` too.
     */
    restPath?: string;
    /**
     * The shape of the answers: `'fetch'` a `Response`, `'wx'` the object of MemFire's wx fetch
     * (`{data, status, ok, headers: Map, json()}`). Default: the shape the underlying fetch
     * answers in. `'wx'` also converts passed-through responses, so MemFire's SDK runs on a
     * platform fetch.
     */
    shape?: 'fetch' | 'wx';
    /**
     * The app this client signs in to: a mini program listed in the database's
     * `auth_wechat.apps`. Absent: its default mini program (`auth_wechat.appid`).
     */
    appid?: string;
}

/** GoTrue's error body, as the adapter answers failures. */
export interface GoTrueErrorBody {
    /** The HTTP status. */
    code: number;
    /** The stable word: the extension's `error_code`, `bad_jwt`, `no_authorization`, ... */
    error_code: string;
    /** The message for people. */
    msg: string;
}

export function createWechatAuthFetch(options?: WechatAuthFetchOptions): WechatAuthFetch;

/**
 * supabase-js has no signInWithWechat: this calls
 * `client.auth.signInWithIdToken({ provider: 'wechat_mini', token: code })`, which the adapter
 * answers with `wechat_sign_in`; the SDK saves the session and fires SIGNED_IN.
 */
export function signInWithWechat<R = any>(
    client: { auth: { signInWithIdToken(credentials: { provider: string; token: string }): Promise<R> } },
    credentials: { code: string },
): Promise<R>;

/** PostgREST's error (or the extension's response.status body) as GoTrue's error body. */
export function goTrueError(status: number, body: unknown): GoTrueErrorBody;
