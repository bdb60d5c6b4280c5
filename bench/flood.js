#!/usr/bin/env node
// Load for scripts/bench_flood.sh, through PostgREST. Node 20, no packages. Two modes:
//
//   node bench/flood.js signins --url URL --seconds 20 --junk-clients 6 --warmup 10 --legit 30 --label L
//     --junk-clients clients each loop POST /rpc/wechat_sign_in with a well-formed code WeChat
//     refuses (`invalid.<n>`), each with its own X-Real-IP (10.0.0.<i>), as fast as answers come;
//     after --warmup seconds one more client (X-Real-IP 10.0.0.99) signs in --legit times, one
//     sign-in a second. Prints one JSON line: the legitimate client's answers by status and
//     error code, and the junk clients'.
//
//   node bench/flood.js refresh --url URL --seconds 10 --label L
//     One client signs in, then rotates its refresh token as fast as answers come (each refresh
//     with the token the last success returned). Prints the answers by status and the successes
//     per second.
'use strict';
const http = require('node:http');

const [mode, ...rest] = process.argv.slice(2);
const args = Object.fromEntries(
  rest.reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []),
);
const url = new URL(args.url);
const seconds = Number(args.seconds ?? 20);
const label = args.label ?? '';
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

function post(path, body, headers = {}) {
  return new Promise((resolve) => {
    const req = http.request(
      { host: url.hostname, port: url.port, method: 'POST', path, agent, timeout: 30000,
        headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...headers } },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
        res.on('error', (e) => resolve({ status: 0, body: String(e) }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', (e) => resolve({ status: 0, body: String(e) }));
    req.write(JSON.stringify(body));
    req.end();
  });
}

/// `<status> <error_code>` of an answer, or `200`.
function outcome(r) {
  if (r.status === 200) return '200';
  try {
    const e = JSON.parse(r.body);
    return `${r.status} ${(e.details && JSON.parse(e.details).error_code) || e.code || 'other'}`;
  } catch (_) {
    return `${r.status} unparsed`;
  }
}

const tally = (counts, key) => { counts[key] = (counts[key] || 0) + 1; };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function signins() {
  const junkClients = Number(args['junk-clients'] ?? 6);
  const warmup = Number(args.warmup ?? 10);
  const legitCount = Number(args.legit ?? 30);
  const deadline = Date.now() + seconds * 1000;
  const junk = {};
  const legit = {};
  const junkLoop = async (i) => {
    let n = 0;
    while (Date.now() < deadline) {
      const r = await post('/rpc/wechat_sign_in', { code: `invalid.j${i}x${process.pid}x${n++}` }, { 'X-Real-IP': `10.0.0.${i + 1}` });
      tally(junk, outcome(r));
    }
  };
  const legitRun = async () => {
    await sleep(warmup * 1000);
    for (let n = 0; n < legitCount; n++) {
      const r = await post('/rpc/wechat_sign_in', { code: `ok.legit.${process.pid}x${n}` }, { 'X-Real-IP': '10.0.0.99' });
      tally(legit, outcome(r));
      await sleep(1000);
    }
  };
  await Promise.all([legitRun(), ...Array.from({ length: junkClients }, (_, i) => junkLoop(i))]);
  console.log(JSON.stringify({ mode: 'signins', label, seconds, junk_clients: junkClients, legit, junk }));
}

async function refresh() {
  const signedIn = await post('/rpc/wechat_sign_in', { code: `ok.refresher.${process.pid}` });
  let token = JSON.parse(signedIn.body).refresh_token;
  const answers = {};
  const started = Date.now();
  const deadline = started + seconds * 1000;
  let ok = 0;
  while (Date.now() < deadline) {
    const r = await post('/rpc/wechat_refresh_session', { refresh_token: token });
    tally(answers, outcome(r));
    if (r.status === 200) {
      ok += 1;
      token = JSON.parse(r.body).refresh_token;
    }
  }
  const elapsed = (Date.now() - started) / 1000;
  console.log(JSON.stringify({ mode: 'refresh', label, seconds: elapsed, answers, rotations_per_s: Math.round((ok / elapsed) * 10) / 10 }));
}

(mode === 'refresh' ? refresh() : signins())
  .then(() => agent.destroy())
  .catch((e) => {
    console.error(e);
    process.exit(1);
  });
