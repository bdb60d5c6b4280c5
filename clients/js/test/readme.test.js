'use strict';
// The code of the documents (docs/clients.md, docs/api.md, clients/js/README.md, and README.md
// should it hold any), run as written: every fenced block marked
// `<!-- test: RUNNER -->` on the line before it is read from the Markdown (so the text cannot
// drift from what runs) and run by RUNNER:
//
// - `recipe`: the plain PostgreSQL + PostgREST recipe, its blocks in order in one bash, on a
//   cluster of its own (scripts/js_test.sh starts it bare: RECIPE_PGPORT); the last block starts
//   PostgREST in the foreground, which is waited for and stopped at the end;
// - `sh`: a shell command against the main stack through the gateway (SUPABASE_URL,
//   SUPABASE_ANON_KEY, SUPABASE_SERVICE_ROLE_KEY), in an empty directory; retried for a few
//   seconds (a schema reload may be on its way), and the JPEG files it writes must be JPEGs;
// - `node`: a Node script, `node <file> <code>` beside auth_wechat_fetch.js, against that PostgREST;
// - `mini-program`: a mini program's code, with what a mini program has: a `wx` (storage,
//   wx.request, wx.login giving a simulator code, wx.showToast failing the test) and the project's
//   SUPABASE_URL and ANON_KEY; it passes when the SDK has stored a session;
// - `psql`: psql as a superuser of the main stack, with `-v code=<a simulator code>`.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawn, execFileSync, execFile: execFileCallback } = require('node:child_process');
const execFile = require('node:util').promisify(execFileCallback);
const S = require('./support/stack.js');

const ROOT = path.resolve(__dirname, '../../..');
const ADAPTER_DIR = path.resolve(__dirname, '..');
// supabase-js wants a WebSocket: Node 22 has one, Node 20 behind a flag.
const NODE_FLAGS = Number(process.versions.node.split('.')[0]) >= 22 ? [] : ['--experimental-websocket'];

// The blocks of `file` marked `<!-- test: runner -->`: [{file, runner, code, line}].
function markedBlocks(file) {
    const lines = fs.readFileSync(path.join(ROOT, file), 'utf8').split('\n');
    const blocks = [];
    for (let i = 0; i + 1 < lines.length; i++) {
        const marker = lines[i].match(/^<!-- test: ([a-z-]+) -->$/);
        if (!marker) continue;
        assert.match(lines[i + 1], /^```[a-z]+$/, `${file}:${i + 1}: a marker must be followed by a fence`);
        const end = lines.indexOf('```', i + 2);
        assert.ok(end > i, `${file}:${i + 2}: the block is not closed`);
        blocks.push({ file, runner: marker[1], code: lines.slice(i + 2, end).join('\n') + '\n', line: i + 3 });
    }
    return blocks;
}

// The project's documents for users, with the adapter's README apart (its blocks are mini programs).
const readme = ['README.md', 'docs/clients.md', 'docs/api.md'].flatMap(markedBlocks);
const adapterReadme = markedBlocks('clients/js/README.md');

// Runs `code` as a script file beside auth_wechat_fetch.js (so `require('./auth_wechat_fetch')`
// resolves as in the README), with the test's packages on NODE_PATH; its output. Asynchronous: the
// gateway it talks to runs in this process.
async function runNode(code, args, env) {
    const file = path.join(ADAPTER_DIR, `.readme-${process.pid}-${Math.random().toString(36).slice(2)}.js`);
    fs.writeFileSync(file, code);
    try {
        const { stdout } = await execFile(process.execPath, [...NODE_FLAGS, file, ...args], {
            cwd: ADAPTER_DIR,
            env: { ...process.env, NODE_PATH: path.join(__dirname, 'node_modules'), ...env },
            timeout: 30000,
        });
        return stdout;
    } catch (e) {
        throw new Error(`the block failed (${e.code}): ${e.stderr}${e.stdout}`);
    } finally {
        fs.rmSync(file, { force: true });
    }
}

// What a mini program has around its code, and the check that its sign-in stored a session.
const MINI_PROGRAM_BEFORE = `
const wx = require('./test/support/wx.js').installWx();
wx.login = ({ success }) => success({ code: process.env.WECHAT_CODE });
wx.showToast = ({ title }) => { console.error('wx.showToast: ' + title); process.exit(1); };
const SUPABASE_URL = process.env.SUPABASE_URL;
const ANON_KEY = process.env.SUPABASE_ANON_KEY;
`;
const MINI_PROGRAM_AFTER = `
;(async () => {
    for (let i = 0; i < 200; i++) {
        const stored = [...wx.storage.values()].map((v) => JSON.stringify(v)).find((v) => v.includes('access_token'));
        if (stored) { console.log('session stored'); process.exit(0); }
        await new Promise((resolve) => setTimeout(resolve, 50));
    }
    console.error('no session stored within 10 s; storage: ' + JSON.stringify([...wx.storage.entries()]));
    process.exit(1);
})();
`;

describe('README code blocks, as written', { skip: S.skip }, () => {
    const ctx = S.gatewayHooks();

    test('the blocks are found: every runner in the documents, mini-program in clients/js', () => {
        assert.deepEqual([...new Set(readme.map((b) => b.runner))].sort(), ['mini-program', 'node', 'psql', 'recipe', 'sh']);
        assert.deepEqual(adapterReadme.map((b) => b.runner), ['mini-program', 'mini-program']);
    });

    for (const block of readme.filter((b) => b.runner === 'psql')) {
        test(`psql: ${block.file} line ${block.line}`, () => {
            const out = execFileSync(S.env.psql, ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-v', `code=${S.codes.login('readme-psql')}`, '-d', S.env.dbUri], {
                input: block.code,
                encoding: 'utf8',
            });
            if (!block.code.includes('wechat_sign_out')) return;
            const lines = out.trim().split('\n');
            assert.ok(lines.some((l) => l.includes('"sessions_ended"')), `no sign-out answer in:\n${out}`);
            const actions = lines.filter((l) => /^[a-z_]+\|[0-9.]*$/.test(l)).map((l) => l.split('|')[0]);
            // A new user: signed up and logged in; the refresh rotates (refreshed, revoked); then the logout.
            assert.deepEqual(actions, ['user_signedup', 'login', 'token_refreshed', 'token_revoked', 'logout'], out);
        });
    }

    for (const block of readme.filter((b) => b.runner === 'sh')) {
        test(`sh: ${block.file} line ${block.line}`, async () => {
            const dir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'auth_wechat_readme_'));
            const env = {
                ...process.env,
                SUPABASE_URL: ctx.gw.url,
                SUPABASE_ANON_KEY: S.env.anonKey,
                SUPABASE_SERVICE_ROLE_KEY: S.env.serviceRoleKey,
            };
            for (let attempt = 1; ; attempt++) {
                try {
                    await execFile('bash', ['-euo', 'pipefail', '-c', block.code], { cwd: dir, env, timeout: 20000 });
                    break;
                } catch (e) {
                    if (attempt === 20) throw new Error(`the block failed 20 times: ${e.stderr}${e.stdout}`);
                    await S.sleep(250);
                }
            }
            const files = fs.readdirSync(dir);
            assert.ok(files.length > 0 || !block.code.includes(' -o '), 'the file the block writes');
            for (const file of files.filter((f) => f.endsWith('.jpg'))) {
                const bytes = fs.readFileSync(path.join(dir, file));
                assert.deepEqual([...bytes.subarray(0, 3)], [0xff, 0xd8, 0xff], `${file} is a JPEG`);
            }
            fs.rmSync(dir, { recursive: true, force: true });
        });
    }

    for (const blocks of [readme, adapterReadme]) {
        for (const block of blocks.filter((b) => b.runner === 'mini-program')) {
            test(`mini program: ${block.file} line ${block.line}`, async () => {
                const out = await runNode(MINI_PROGRAM_BEFORE + block.code + MINI_PROGRAM_AFTER, [], {
                    SUPABASE_URL: ctx.gw.url,
                    SUPABASE_ANON_KEY: S.env.anonKey,
                    WECHAT_CODE: S.codes.login('readme-mini'),
                });
                assert.match(out, /session stored/);
            });
        }
    }

    describe('plain PostgreSQL + PostgREST, then supabase-js in Node', () => {
        let recipe;
        let output = '';
        const port = Number(process.env.RECIPE_POSTGREST_PORT);

        before(async () => {
            const script = ['set -euo pipefail', ...readme.filter((b) => b.runner === 'recipe').map((b) => b.code)].join('\n');
            recipe = spawn('bash', ['-c', script], {
                cwd: ROOT,
                detached: true,
                env: {
                    ...process.env,
                    PGHOST: '127.0.0.1',
                    PGPORT: process.env.RECIPE_PGPORT,
                    PGUSER: 'postgres',
                    // What a reader's shell has after scripts/setup.sh: psql, and no PostgREST on
                    // the PATH (the recipe names where setup put it).
                    PATH: `${path.dirname(S.env.psql)}:${process.env.PATH}`,
                    PGRST_SERVER_PORT: String(port),
                },
                stdio: ['ignore', 'pipe', 'pipe'],
            });
            recipe.stdout.on('data', (d) => { output += d; });
            recipe.stderr.on('data', (d) => { output += d; });
            // The keys come before PostgREST starts: until they are out, whatever answers on the
            // port is not the recipe's.
            await S.waitFor(async () => {
                assert.equal(recipe.exitCode, null, `the recipe stopped:\n${output}`);
                if (!output.includes('SUPABASE_SERVICE_ROLE_KEY=')) return false;
                return fetch(`http://127.0.0.1:${port}/`).then((r) => r.status === 200, () => false);
            }, { timeoutMs: 20000, what: `PostgREST of the recipe:\n${output}` });
        });
        after(() => {
            if (recipe && recipe.exitCode === null) process.kill(-recipe.pid, 'SIGTERM');
        });

        test('its API keys work, and the Node block signs in through it', async () => {
            const key = (name) => (output.match(new RegExp(`^${name}=(\\S+)$`, 'm')) || [])[1];
            const [anon, service] = [key('SUPABASE_ANON_KEY'), key('SUPABASE_SERVICE_ROLE_KEY')];
            assert.ok(anon && service, `no keys printed:\n${output}`);
            const jwks = await fetch(`http://127.0.0.1:${port}/rpc/wechat_jwks`, { headers: { Authorization: `Bearer ${service}` } });
            assert.equal(jwks.status, 200, 'the service key');
            const block = readme.find((b) => b.runner === 'node');
            const out = await runNode(block.code, [S.codes.login('readme-node')], {
                SUPABASE_URL: `http://127.0.0.1:${port}`,
                SUPABASE_ANON_KEY: anon,
            });
            assert.match(out, /^signed in as [0-9a-f-]{36}$/m);
            assert.match(out, /^WeChat openid \S+$/m);
        });
    });
});
