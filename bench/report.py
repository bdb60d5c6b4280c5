#!/usr/bin/env python3
"""Turns the benchmark's raw results into the tables of BENCHMARKS.md, with ratios and targets.

Usage: report.py RESULTS [BASELINE]

Input: the results directory of scripts/bench.sh: `runs.tsv` (case, clients, tps, sim connections
opened, WeChat calls, then transactions, backend CPU and simulator CPU in clock ticks over the
run, and the round, with BENCH_ROUNDS) and pgbench's per-transaction logs `<case>_<clients>.*`
(latency in µs is the third field; every round's), plus `http.tsv` (the bare round trip) and
`totals.tsv` (clk_tck among them). With several rounds, a case's figures are the medians of its
rounds', and a ratio is the median of the ratios within each round (whose runs are adjacent in
time, so drifts of the machine cancel out).
With BASELINE (the
results directory of a normal run), a scale run is compared with it: per-call CPU within 15 %.
"""
import glob
import statistics
import sys
from pathlib import Path

CLIENTS = (1, 4, 16)
TARGET_CLIENTS = 4


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
        if log.endswith(".perf"):  # BENCH_PERF's profile, not a pgbench log
            continue
        with open(log) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 3 and fields[2].isdigit():
                    values.append(int(fields[2]) / 1000.0)
    return values


def load(results):
    """{(case, clients): figures}, each the median over the rounds, with `be_rounds`: {round: backend µs/call}."""
    results = Path(results)
    totals = {}
    if (results / "totals.tsv").exists():
        totals = dict(line.split("\t", 1) for line in (results / "totals.tsv").read_text().splitlines() if "\t" in line)
    clk = float(totals.get("clk_tck", 100))
    rounds = {}
    for line in (results / "runs.tsv").read_text().splitlines():
        fields = line.split("\t")
        case, clients, tps, conns, calls = fields[:5]
        one = dict(tps=float(tps), conns=int(conns), calls=int(calls), be=None, sim=None)
        if len(fields) >= 8 and fields[5] and int(fields[5]):
            txns = int(fields[5])
            one["be"] = int(fields[6]) * 1e6 / clk / txns
            one["sim"] = int(fields[7]) * 1e6 / clk / txns
        round_no = int(fields[8]) if len(fields) >= 9 else 1
        rounds.setdefault((case, int(clients)), {})[round_no] = one
    runs = {}
    for (case, clients), by_round in rounds.items():
        lat = latencies_ms(results, case, clients)
        bes = {n: r["be"] for n, r in by_round.items() if r["be"] is not None}
        sims = [r["sim"] for r in by_round.values() if r["sim"] is not None]
        runs[(case, clients)] = dict(
            tps=statistics.median(r["tps"] for r in by_round.values()),
            conns=max(r["conns"] for r in by_round.values()), calls=sum(r["calls"] for r in by_round.values()),
            p50=percentile(lat, 0.5), p99=percentile(lat, 0.99), n=len(lat), rounds=len(by_round),
            be=statistics.median(bes.values()) if bes else None, sim=statistics.median(sims) if sims else None,
            be_rounds=bes)
    return runs, totals


def paired(runs, a, b, clients, value=lambda r, n: r["be_rounds"].get(n)):
    """The median over the rounds of a's figure ÷ b's in the same round."""
    ra, rb = runs.get((a, clients)), runs.get((b, clients))
    if not ra or not rb:
        return None
    ratios = []
    for n in ra["be_rounds"]:
        x, y = value(ra, n), value(rb, n)
        if x is not None and y:
            ratios.append(x / y)
    return statistics.median(ratios) if ratios else None


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def fmt(x, digits=2):
    return "–" if x is None else f"{x:.{digits}f}"


def cpu_ratios(runs):
    """(name, {clients: ratio}, target op, target value) for the CPU comparisons."""
    def total(r, n):
        # The simulator's CPU is read per run too; its median stands in for each round's.
        return r["be_rounds"][n] + r["sim"] if n in r["be_rounds"] and r["sim"] is not None else None

    rows = []
    for kind in ("new", "returning"):
        rows.append((f"sign-in ({kind}) backend CPU: extension ÷ floor",
                     {c: paired(runs, f"ext_{kind}", f"floor_{kind}", c) for c in CLIENTS}, "≤", 1.2))
    rows.append(("refresh backend CPU: extension ÷ floor_refresh",
                 {c: paired(runs, "refresh", "floor_refresh", c) for c in CLIENTS}, "≤", 1.2))
    for kind in ("new", "returning"):
        rows.append((f"sign-in ({kind}) backend CPU: PL/Python ÷ extension",
                     {c: paired(runs, f"plpython_{kind}", f"ext_{kind}", c) for c in CLIENTS}, "≥", 1.5))
    for kind in ("new", "returning"):
        rows.append((f"sign-in ({kind}) backend + simulator CPU: PL/Python ÷ extension",
                     {c: paired(runs, f"plpython_{kind}", f"ext_{kind}", c, total) for c in CLIENTS}, None, None))
    return rows


def main(results, baseline=None):
    results = Path(results)
    runs, totals = load(results)
    http = [float(x) for x in (results / "http.tsv").read_text().split()]
    rtt_p50, rtt_p99 = http[0] / 1000.0, http[1] / 1000.0

    out = []
    out.append("| case | clients | tps | p50 ms | p99 ms | transactions | TCP conns to WeChat | WeChat calls "
               "| backend CPU µs/call | simulator CPU µs/call |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (case, clients), r in runs.items():
        out.append(f"| {case} | {clients} | {r['tps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['n']} | {r['conns']} "
                   f"| {r['calls']} | {fmt(r['be'], 0)} | {fmt(r['sim'], 0)} |")
    out.append("")
    out.append(f"Bare HTTP round trip to the simulator (keep-alive, from outside the database): "
               f"p50 {rtt_p50:.3f} ms, p99 {rtt_p99:.3f} ms.")
    out.append(f"Access-token fetches for the whole run: {totals.get('token_fetches', '?')}; "
               f"TCP connections the simulator accepted for API calls in the whole run: {totals.get('connections', '?')}.")
    out.append("")

    rounds = max((r["rounds"] for r in runs.values()), default=1)
    if rounds > 1:
        out.append(f"Each case ran in {rounds} rounds: the figures above are medians, each ratio below the median of the rounds' ratios.")
        out.append("")
    out.append("CPU per call (backends: the postmaster's reaped-children CPU over the run ÷ transactions):")
    out.append("")
    out.append("| ratio | 1 client | 4 clients | 16 clients |")
    out.append("|---|---:|---:|---:|")
    cpu = cpu_ratios(runs)
    for name, by_clients, _, _ in cpu:
        out.append(f"| {name} | " + " | ".join(fmt(by_clients.get(c)) for c in CLIENTS) + " |")
    out.append("")

    out.append("| ratio | 1 client | 4 clients | 16 clients |")
    out.append("|---|---:|---:|---:|")
    for kind in ("new", "returning"):
        for peer in ("plpython", "floor"):
            cells = []
            for clients in CLIENTS:
                ext, other = runs.get((f"ext_{kind}", clients)), runs.get((f"{peer}_{kind}", clients))
                cells.append(f"{ext['tps'] / other['tps']:.2f}" if ext and other and other["tps"] else "–")
            out.append(f"| sign-in ({kind}) tps: extension ÷ {peer} | " + " | ".join(cells) + " |")
    out.append("")

    # Targets: (name, measured, op, need).
    checks = []
    for name, by_clients, op, need in cpu:
        if op and by_clients.get(TARGET_CLIENTS) is not None:
            checks.append((f"{name} at {TARGET_CLIENTS} clients", by_clients[TARGET_CLIENTS], op, need))
    for kind in ("new", "returning"):
        ext4, py4, fl4 = (runs.get((f"{c}_{kind}", TARGET_CLIENTS)) for c in ("ext", "plpython", "floor"))
        if ext4 and py4 and fl4:
            checks.append((f"sign-in ({kind}) tps at 4 clients ≥ 2× PL/Python (earlier target)", ext4["tps"] / py4["tps"], "≥", 2.0))
            checks.append((f"sign-in ({kind}) tps at 4 clients ≥ 0.9× floor (earlier target)", ext4["tps"] / fl4["tps"], "≥", 0.9))
        ext1, fl1 = runs.get((f"ext_{kind}", 1)), runs.get((f"floor_{kind}", 1))
        if ext1 and fl1:
            budget = fl1["p50"] + rtt_p50 + 0.2
            checks.append((f"sign-in ({kind}) p50 at 1 client ÷ (floor p50 + round trip + 0.2 ms = {budget:.2f} ms)",
                           ext1["p50"] / budget, "≤", 1.0))
        ext16 = runs.get((f"ext_{kind}", 16))
        if ext16:
            checks.append((f"sign-in ({kind}) p99 ÷ p50 at 16 clients", ext16["p99"] / ext16["p50"], "≤", 3.0))
    for (case, clients), r in runs.items():
        if case.startswith("ext_") or case in ("bind_account", "bind_phone", "refresh"):
            if r["calls"] and r["conns"] > clients:
                checks.append((f"{case} at {clients} clients: TCP connections opened ÷ backends", r["conns"] / clients, "≤", 1.0))
    fetches = int(totals.get("token_fetches", 1) or 1)
    checks.append(("access-token fetches for the whole run", fetches, "≤", 1))
    out.append("| target | measured | need | met |")
    out.append("|---|---:|---:|---|")
    for name, value, op, need in checks:
        met = value <= need if op == "≤" else value >= need
        out.append(f"| {name} | {value:.2f} | {op} {need} | {'yes' if met else 'NO'} |")

    if baseline:
        out.append("")
        out += compare(runs, totals, Path(baseline), results)
    print("\n".join(out))


def compare(runs, totals, baseline, results):
    """A scale run beside a normal run: per-call CPU (backends, and backends + simulator) within 15 %."""
    base, _ = load(baseline)
    out = []
    scale = {}
    if (results / "scale.tsv").exists():
        scale = dict(line.split("\t", 1) for line in (results / "scale.tsv").read_text().splitlines() if "\t" in line)
    if scale:
        out.append("Scale run: " + ", ".join(f"{k} {v}" for k, v in scale.items()) + ".")
        out.append("")
    out.append(f"Scale run ({results}) ÷ empty tables ({baseline}):")
    out.append("")
    out.append("| case | clients | backend µs/call empty | at scale | ratio | backend + sim ratio | tps ratio | p99 ratio | within 15 % |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    worst = None
    for key, r in runs.items():
        b = base.get(key)
        if not b or b["be"] is None or r["be"] is None:
            continue
        rat = r["be"] / b["be"]
        tot = (r["be"] + r["sim"]) / (b["be"] + b["sim"])
        worst = rat if worst is None else max(worst, rat)
        out.append(f"| {key[0]} | {key[1]} | {b['be']:.0f} | {r['be']:.0f} | {rat:.2f} | {tot:.2f} "
                   f"| {r['tps'] / b['tps']:.2f} | {r['p99'] / b['p99']:.2f} | {'yes' if rat <= 1.15 else 'NO'} |")
    if worst is not None:
        out.append("")
        out.append(f"Largest backend CPU ratio, scale ÷ empty: {worst:.2f} (target ≤ 1.15).")
    return out


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
