#!/usr/bin/env python3
"""The plan of every SQL statement the extension ran, and the indexes each uses.

The plans are the ones the statements actually ran with, as auto_explain logged them
(`log_nested_statements`, JSON format): scripts/bench.sh turns auto_explain on after its measured
runs, runs each of the extension's cases for a few dozen calls plus bench/explain_calls.sql
(sign-out, the current user, v2 refresh tokens), then calls this script on the server log. A
statement's last logged plan is shown: after its first executions a backend runs the plan it
keeps (generic, unless custom plans are cheaper). Foreign-key checks (Postgres' own
`SELECT ... FROM ONLY ... FOR KEY SHARE`) and the callers' own statements are left out.

Usage: explain.py SERVER_LOG
Prints each statement with its plan (node, index, table), then a summary table: statement (its
first words), times logged, tables, indexes used, sequential scans. INSERT/UPDATE plans name only the
index used to find rows (and ON CONFLICT's arbiter index); every index of a written table is also
updated.
"""
import json
import re
import sys

# The callers' statements (pgbench scripts, the floors, explain_calls.sql) and Postgres' foreign-key checks.
NOT_THE_EXTENSION = re.compile(r"auth\.wechat_|bench[. ]|set_config|FROM ONLY|^\s*(BEGIN|COMMIT|SET|RESET)\b", re.I)


def logged_plans(log_text):
    """(query text, plan) of every auto_explain entry, in log order."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"duration: [\d.]+ ms  plan:\n", log_text):
        start = log_text.find("{", match.end())
        try:
            entry, _ = decoder.raw_decode(log_text, start)
        except json.JSONDecodeError:
            continue
        yield entry.get("Query Text", ""), entry.get("Plan", {})


def nodes(plan):
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def render(plan, depth=0):
    line = "  " * depth + plan.get("Node Type", "?")
    if "Operation" in plan and plan["Node Type"] == "ModifyTable":
        line = "  " * depth + plan["Operation"]
    if "Index Name" in plan:
        line += f" using {plan['Index Name']}"
    if "Relation Name" in plan:
        line += f" on {plan['Relation Name']}"
    if "Conflict Arbiter Indexes" in plan:
        line += f" (ON CONFLICT {plan.get('Conflict Resolution', '')} on {', '.join(plan['Conflict Arbiter Indexes'])})"
    if "Subplan Name" in plan:
        line += f"  [{plan['Subplan Name']}]"
    lines = [line]
    for child in plan.get("Plans", []):
        lines.append(render(child, depth + 1))
    return "\n".join(lines)


def indexes_in(plan):
    names = []
    for node in nodes(plan):
        if "Index Name" in node:
            names.append(node["Index Name"])
        names += [f"{n} (ON CONFLICT arbiter)" for n in node.get("Conflict Arbiter Indexes", [])]
    return list(dict.fromkeys(names))


def tables_in(plan):
    return list(dict.fromkeys(n["Relation Name"] for n in nodes(plan) if "Relation Name" in n))


def seq_scans(plan):
    return list(dict.fromkeys(n["Relation Name"] for n in nodes(plan) if n.get("Node Type") == "Seq Scan"))


def name_of(sql):
    words = re.sub(r"\s+", " ", sql).strip()
    return words[:90] + ("…" if len(words) > 90 else "")


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: explain.py SERVER_LOG")
    with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
        log_text = f.read()
    last, times = {}, {}
    for sql, plan in logged_plans(log_text):
        if NOT_THE_EXTENSION.search(sql):
            continue
        last[sql] = plan
        times[sql] = times.get(sql, 0) + 1
    print(f"# Plans of auth_wechat's statements, as auto_explain logged them ({len(last)} statements)")
    print()
    summary = []
    for sql, plan in last.items():
        name = name_of(sql)
        print(f"## {name}  ({times[sql]} logged)")
        print(re.sub(r"[ \t]+\n", "\n", sql.strip()))
        print("-- plan:")
        print(render(plan))
        print()
        summary.append((name[:60] + ("…" if len(name) > 60 else ""), times[sql], ", ".join(tables_in(plan)) or "–",
                        ", ".join(indexes_in(plan)) or "–", ", ".join(seq_scans(plan)) or "–"))
    print("| statement | logged | tables | indexes | sequential scans |")
    print("|---|---:|---|---|---|")
    for name, count, tables, idx, seq in summary:
        print(f"| `{name}` | {count} | {tables} | {idx} | {seq} |")


if __name__ == "__main__":
    main()
