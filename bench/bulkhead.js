#!/usr/bin/env node
// Load for scripts/bench_bulkhead.sh: N clients signing in through PostgREST with codes WeChat
// answers slowly, while one client reads a plain table at a steady rate. Node 20, no packages.
//
//   node bench/bulkhead.js --url http://127.0.0.1:3000 --seconds 20 --signin-clients 50 \
//        --slow-ms 2000 --read-rate 20 --retry-ms 100 --label "max 5"
//
// Sign-in clients: each loops POST /rpc/wechat_sign_in {"code": "slow.<ms>.<user>.<nonce>"};
// after an answer other than 200 it waits --retry-ms before the next (a client's retry delay).
// Reads: GET /items fired open-loop every 1000/rate ms (a late answer does not delay the next
// request, so queueing shows in the latency), latency from send to the last byte.
// Stops starting requests after --seconds, waits for those in flight, prints one JSON line.
'use strict';
const http = require('node:http');

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []),
);
const url = new URL(args.url);
const seconds = Number(args.seconds ?? 20);
const signinClients = Number(args['signin-clients'] ?? 50);
const slowMs = Number(args['slow-ms'] ?? 2000);
const readRate = Number(args['read-rate'] ?? 20);
const retryMs = Number(args['retry-ms'] ?? 100);
const label = args.label ?? '';

const signinAgent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
const readAgent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

function request(agent, method, path, body) {
  return new Promise((resolve) => {
    const start = process.hrtime.bigint();
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const req = http.request(
      { host: url.hostname, port: url.port, method, path, agent, headers, timeout: 30000 },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString(), ms: Number(process.hrtime.bigint() - start) / 1e6 }),
        );
        res.on('error', (e) => resolve({ status: 0, body: String(e), ms: Number(process.hrtime.bigint() - start) / 1e6 }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', (e) => resolve({ status: 0, body: String(e), ms: Number(process.hrtime.bigint() - start) / 1e6 }));
    if (body !== undefined) req.write(JSON.stringify(body));
    req.end();
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const percentile = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] : null);

async function main() {
  const deadline = Date.now() + seconds * 1000;
  const signins = { statuses: {}, codes: {}, ok_ms: [] };
  const reads = { ms: [], errors: 0, statuses: {} };

  const signinLoop = async (client) => {
    let n = 0;
    while (Date.now() < deadline) {
      const code = `slow.${slowMs}.bh${client}.${process.pid}x${n++}`;
      const r = await request(signinAgent, 'POST', '/rpc/wechat_sign_in', { code });
      signins.statuses[r.status] = (signins.statuses[r.status] || 0) + 1;
      if (r.status === 200) {
        signins.ok_ms.push(r.ms);
      } else {
        let code = 'other';
        try {
          const e = JSON.parse(r.body);
          code = (e.details && JSON.parse(e.details).error_code) || e.code || e.message || 'other';
        } catch (_) {
          code = r.status === 0 ? r.body.slice(0, 60) : 'unparsed';
        }
        const key = `${r.status} ${code}`;
        signins.codes[key] = (signins.codes[key] || 0) + 1;
        await sleep(retryMs);
      }
    }
  };

  const readLoop = async () => {
    const inflight = [];
    const interval = 1000 / readRate;
    let next = Date.now();
    while (next < deadline) {
      const wait = next - Date.now();
      if (wait > 0) await sleep(wait);
      inflight.push(
        request(readAgent, 'GET', '/items?select=id,name').then((r) => {
          reads.statuses[r.status] = (reads.statuses[r.status] || 0) + 1;
          if (r.status === 200) reads.ms.push(r.ms);
          else reads.errors += 1;
        }),
      );
      next += interval;
    }
    await Promise.all(inflight);
  };

  await Promise.all([readLoop(), ...Array.from({ length: signinClients }, (_, i) => signinLoop(i))]);
  const readMs = reads.ms.slice().sort((a, b) => a - b);
  const okMs = signins.ok_ms.slice().sort((a, b) => a - b);
  const r3 = (x) => (x === null ? null : Math.round(x * 1000) / 1000);
  console.log(
    JSON.stringify({
      label,
      seconds,
      signin_clients: signinClients,
      slow_ms: slowMs,
      retry_ms: retryMs,
      reads: {
        sent: readMs.length + reads.errors,
        ok: readMs.length,
        errors: reads.errors,
        statuses: reads.statuses,
        p50_ms: r3(percentile(readMs, 0.5)),
        p99_ms: r3(percentile(readMs, 0.99)),
        max_ms: r3(readMs.length ? readMs[readMs.length - 1] : null),
      },
      signins: {
        statuses: signins.statuses,
        errors: signins.codes,
        ok_p50_ms: r3(percentile(okMs, 0.5)),
        ok_p99_ms: r3(percentile(okMs, 0.99)),
      },
    }),
  );
  signinAgent.destroy();
  readAgent.destroy();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
