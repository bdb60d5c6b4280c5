// Types of auth_wechat_scan.js: scan-to-sign-in helpers over a supabase-js (or MemFire SDK) client.

interface RpcClient {
    rpc(fn: string, args?: object): PromiseLike<{ data: any; error: any; status?: number }>;
}

interface SessionClient extends RpcClient {
    auth: { setSession(tokens: { access_token: string; refresh_token: string }): Promise<{ data: { session: any }; error: any }> };
}

export interface StartedScan {
    ticket: string;
    pollSecret: string;
    /** A `data:image/jpeg;base64,…` URL of the mini-program code. */
    image: string;
    expiresAt: number;
    expiresIn: number;
}

export function startScanSignIn(client: RpcClient, options?: { appid?: string; page?: string }): Promise<StartedScan>;

export function waitForScanSignIn(
    client: SessionClient,
    started: { ticket: string; pollSecret: string },
    options?: {
        intervalMs?: number;
        maxIntervalMs?: number;
        onStatus?: (status: 'pending' | 'scanned', data: { status: string }) => void;
        signal?: AbortSignal;
    },
): Promise<{ status: 'signed_in' | 'denied' | 'expired' | 'gone' | 'aborted'; session?: any }>;

export function scanTicketOf(
    options: { scene?: string },
    launchScene?: number,
): { ticket: string | null; launchScene: number; fromCamera: boolean; fromImage: boolean };

export function viewScanTicket(
    client: RpcClient,
    ticket: string,
): Promise<{ status: 'scanned'; requested_at: number; client_address: string | null; user_agent: string | null; expires_at: number; expires_in: number }>;

export function confirmScanTicket(client: RpcClient, ticket: string, approve?: boolean): Promise<{ status: 'confirmed' | 'denied' }>;
