#!/usr/bin/env python3
"""Turns the benchmark's raw results into the table of BENCHMARKS.md, with ratios and targets.

Input: the results directory of scripts/bench.sh: `runs.tsv` (case, clients, tps, sim connections
opened, WeChat calls) and pgbench's per-transaction logs `<case>_<clients>.*` (latency in µs is
the third field), plus `http.tsv` (the bare round trip) and `totals.tsv`.
"""
import glob
import statistics
import sys
from pathlib import Path


def percentile(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def latencies_ms(results, case, clients):
    values = []
    for log in glob.glob(str(results / f"{case}_{clients}.*")):
        with open(log) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 3 and fields[2].isdigit():
                    values.append(int(fields[2]) / 1000.0)
    return values


def main(results):
    results = Path(results)
    runs = {}
    for line in (results / "runs.tsv").read_text().splitlines():
        case, clients, tps, conns, calls = line.split("\t")
        lat = latencies_ms(results, case, clients)
        runs[(case, int(clients))] = dict(tps=float(tps), conns=int(conns), calls=int(calls),
                                          p50=percentile(lat, 0.5), p99=percentile(lat, 0.99), n=len(lat))
    http = [float(x) for x in (results / "http.tsv").read_text().split()]
    rtt_p50, rtt_p99 = http[0] / 1000.0, http[1] / 1000.0
    totals = dict(line.split("\t") for line in (results / "totals.tsv").read_text().splitlines())

    out = []
    out.append("| case | clients | tps | p50 ms | p99 ms | transactions | TCP conns to WeChat | WeChat calls |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for (case, clients), r in runs.items():
        out.append(f"| {case} | {clients} | {r['tps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['n']} | {r['conns']} | {r['calls']} |")
    out.append("")
    out.append(f"Bare HTTP round trip to the simulator (keep-alive, from outside the database): "
               f"p50 {rtt_p50:.3f} ms, p99 {rtt_p99:.3f} ms.")
    out.append(f"Access-token fetches for the whole run: {totals.get('token_fetches', '?')}; "
               f"TCP connections the simulator accepted for API calls in the whole run: {totals.get('connections', '?')}.")
    out.append("")
    out.append("| ratio | 1 client | 4 clients | 16 clients |")
    out.append("|---|---:|---:|---:|")
    for kind in ("new", "returning"):
        for peer in ("plpython", "floor"):
            cells = []
            for clients in (1, 4, 16):
                ext, other = runs.get((f"ext_{kind}", clients)), runs.get((f"{peer}_{kind}", clients))
                cells.append(f"{ext['tps'] / other['tps']:.2f}" if ext and other and other["tps"] else "–")
            out.append(f"| sign-in ({kind}) tps: extension ÷ {peer} | " + " | ".join(cells) + " |")
    out.append("")
    checks = []
    for kind in ("new", "returning"):
        ext4, py4, fl4 = runs.get((f"ext_{kind}", 4)), runs.get((f"plpython_{kind}", 4)), runs.get((f"floor_{kind}", 4))
        if ext4 and py4 and fl4:
            checks.append((f"sign-in ({kind}) at 4 clients ≥ 2× PL/Python", ext4["tps"] / py4["tps"], 2.0))
            checks.append((f"sign-in ({kind}) at 4 clients ≥ 0.9× floor", ext4["tps"] / fl4["tps"], 0.9))
        ext1, fl1 = runs.get((f"ext_{kind}", 1)), runs.get((f"floor_{kind}", 1))
        if ext1 and fl1:
            budget = fl1["p50"] + rtt_p50 + 0.2
            checks.append((f"sign-in ({kind}) p50 at 1 client ≤ floor p50 + round trip + 0.2 ms = {budget:.2f} ms",
                           budget / ext1["p50"], 1.0))
        ext16 = runs.get((f"ext_{kind}", 16))
        if ext16:
            checks.append((f"sign-in ({kind}) p99 ≤ 3× p50 at 16 clients (p99/p50 = {ext16['p99'] / ext16['p50']:.2f})",
                           3 * ext16["p50"] / ext16["p99"], 1.0))
    for case_clients, r in runs.items():
        if case_clients[0].startswith("ext_") or case_clients[0] in ("bind_account", "bind_phone", "refresh"):
            if r["calls"] and r["conns"] > case_clients[1]:
                checks.append((f"{case_clients[0]} at {case_clients[1]} clients: one TCP connection per backend "
                               f"({r['conns']} opened)", case_clients[1] / r["conns"], 1.0))
    checks.append((f"one access-token fetch for the whole run ({totals.get('token_fetches')})",
                   1.0 / max(1, int(totals.get("token_fetches", 1))), 1.0))
    out.append("| target | measured | met |")
    out.append("|---|---:|---|")
    for name, value, need in checks:
        out.append(f"| {name} | {value:.2f} (need ≥ {need}) | {'yes' if value >= need else 'NO'} |")
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1])
