#!/usr/bin/env node
// Load for scripts/bench_flood.sh, through PostgREST. Node 20, no packages. Two modes:
//
//   node bench/flood.js signins --url URL --seconds 20 --junk-clients 6 --warmup 10 --legit 30 --label L
//     [--header x-forwarded-for] [--spoof 1] [--distinct 1]
//     --junk-clients clients each loop POST /rpc/wechat_sign_in with a well-formed code WeChat
//     refuses (`invalid.<n>`), each with its own address (10.0.0.<i>) in --header (X-Real-IP by
//     default), as fast as answers come; with --spoof, each puts a random address of its own
//     before the real one (`<random>, 10.0.0.<i>`), as a gateway that appends would pass it on.
//     After --warmup seconds legitimate sign-ins follow, --legit of them, one a second, from
//     10.0.0.99 (or with --distinct, each from an address of its own, 10.1.<n>.1). Prints one
//     JSON line: the legitimate answers by status and error code, and the junk clients'.
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
  const header = args.header ?? 'X-Real-IP';
  const spoof = args.spoof === '1';
  const distinct = args.distinct === '1';
  const randomAddress = () => Array.from({ length: 4 }, () => Math.floor(Math.random() * 256)).join('.');
  const junkLoop = async (i) => {
    let n = 0;
    while (Date.now() < deadline) {
      const real = `10.0.0.${i + 1}`;
      const address = spoof ? `${randomAddress()}, ${real}` : real;
      const r = await post('/rpc/wechat_sign_in', { code: `invalid.j${i}x${process.pid}x${n++}` }, { [header]: address });
      tally(junk, outcome(r));
    }
  };
  const legitRun = async () => {
    await sleep(warmup * 1000);
    for (let n = 0; n < legitCount; n++) {
      const address = distinct ? `10.1.${n}.1` : '10.0.0.99';
      const r = await post('/rpc/wechat_sign_in', { code: `ok.legit.${process.pid}x${n}` }, { [header]: address });
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
