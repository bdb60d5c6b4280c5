#!/usr/bin/env python3
"""The plan of every SQL statement the extension runs through SPI, and the indexes each uses.

The statements are read from the source (the string literals of src/store.rs, src/session.rs and
src/audit.rs that start with SELECT, WITH, INSERT, UPDATE or DELETE; `{EXPIRY}`-style constants and
the v1 variants of `format!` placeholders filled in), so the list follows the code. Each is
PREPAREd with the parameter types the Rust code binds (where this file knows them; otherwise
Postgres infers them) and EXPLAINed (plan only, no ANALYZE, nothing executed) twice:

- the generic plan (`plan_cache_mode = force_generic_plan`): the extension keeps one prepared
  plan per statement per backend, and the plan cache switches to the generic plan after five
  executions unless it costs more than the custom ones;
- a custom plan for representative values taken from the database (a user with an openid, a
  live refresh token and its session).

Usage: explain.py --psql PSQL --port PORT [--host H] [--user U] [--db DB] [--src DIR]
Prints the statements with both plans, then a summary table: statement, indexes used (generic
plan; custom plan if different), sequential scans. INSERT/UPDATE plans name only the index used
to find rows (and ON CONFLICT's arbiter index); every index of a written table is also updated.
"""
import argparse
import re
import subprocess
import sys
from pathlib import Path

SQL_START = re.compile(r"^\s*(SELECT|WITH|INSERT|UPDATE|DELETE)\b")
STRING = re.compile(r'"((?:[^"\\]|\\.)*)"', re.S)
CONST = re.compile(r'const\s+([A-Z_][A-Z0-9_]*)\s*:\s*&str\s*=\s*"((?:[^"\\]|\\.)*)"\s*;', re.S)
FN = re.compile(r"\bfn\s+([a-z_][a-z0-9_]*)")
# format! placeholders that are not constants: the values of a v1 session on a schema with GoTrue's
# v2 columns (sql/gotrue_schema.sql has them), i.e. the default refresh_token_algorithm.
PLACEHOLDERS = {
    "v2": "s.refresh_token_hmac_key, s.refresh_token_counter",
    "v2_columns": "",
    "v2_values": "",
}

# Parameter types (what the Rust arguments bind: Uuid -> uuid, &str/String/Option<&str> -> text,
# i32 -> int4, i64 -> int8) and representative values, per function (and statement number within
# it). Values name a sample (see SAMPLES) or are SQL literals.
INSTANCE = "'00000000-0000-0000-0000-000000000000'"
PARAMS = {
    ("has_v2_columns", 0): [],
    ("find_by_openid", 0): [("text", "openid")],
    ("create_user", 0): [("uuid", "gen_uuid"), ("text", "'onew-openid'"), ("text", "NULL"), ("text", INSTANCE),
                         ("text", "'wechat_mini'")],
    ("lock_value", 0): [("text", "'openid'"), ("text", "openid")],
    ("user_banned", 0): [("uuid", "uid")],
    ("lock_user", 0): [("uuid", "uid")],
    ("record_sign_in", 0): [("uuid", "uid"), ("text", "NULL")],
    ("bind_wechat", 0): [("uuid", "uid"), ("text", "openid"), ("text", "NULL"), ("text", "'wechat_mini'")],
    ("upsert_identity", 0): [("uuid", "uid"), ("text", "openid"), ("text", "NULL"), ("text", "'wechat_mini'")],
    ("phone_owner", 0): [("text", "'8613800138000'")],
    ("set_phone", 0): [("uuid", "uid"), ("text", "'8613800138000'")],
    ("user_json", 0): [("uuid", "uid")],
    ("record", 0): [("text", INSTANCE), ("uuid", "uid"), ("text", "'login'"), ("text", "'account'"),
                    ("jsonb", "'{\"provider\": \"wechat_mini\"}'"), ("text", "''")],
    ("start", 0): [("uuid", "gen_uuid"), ("uuid", "uid"), ("text", "'abcdefghijkl'"), ("text", INSTANCE),
                   ("text", "'oauth'"), ("text", "'bench'"), ("text", "NULL"), ("text", "NULL")],
    ("current", 0): [("uuid", "sid"), ("uuid", "uid")],
    ("find_refresh_token", 0): [("text", "token")],
    ("find_refresh_token", 1): [("text", "token"), ("int4", "10"), ("int4", "0"), ("int4", "0"), ("bool", "false")],
    ("rotate", 0): [("int8", "token_id"), ("text", "'abcdefghijkl'"), ("uuid", "sid"), ("uuid", "uid"),
                    ("text", INSTANCE), ("text", "token"), ("text", "'bench'"), ("text", "NULL")],
    ("find_v2_session", 0): [("uuid", "sid")],
    ("find_v2_session", 1): [("uuid", "sid"), ("int4", "10"), ("int4", "0"), ("int4", "0"), ("bool", "false")],
    ("advance_v2", 0): [("uuid", "sid"), ("int8", "1"), ("text", "'bench'"), ("text", "NULL")],
    ("end_sessions", 0): [("uuid", "uid"), ("uuid", "sid"), ("text", "'local'")],
    ("assurance", 0): [("uuid", "sid")],
}

SAMPLES_SQL = """
SELECT u.id, u.wechat_id, s.id, r.token, r.id, gen_random_uuid()
  FROM auth.refresh_tokens r
  JOIN auth.sessions s ON s.id = r.session_id
  JOIN auth.users u ON u.id = s.user_id
 WHERE NOT coalesce(r.revoked, false) AND u.wechat_id <> ''
 ORDER BY r.id
 LIMIT 1
"""
SAMPLE_NAMES = ["uid", "openid", "sid", "token", "token_id", "gen_uuid"]


def rust_unescape(text):
    text = re.sub(r"\\\n\s*", "", text)  # a backslash at the end of a line joins it with the next
    return text.replace('\\"', '"').replace("\\\\", "\\").replace("\\n", "\n").replace("\\t", "\t")


def statements(src_dir, files):
    found = []
    consts = {}
    sources = {f: (src_dir / f).read_text() for f in files}
    for text in sources.values():
        for name, value in CONST.findall(text):
            consts[name] = rust_unescape(value)
    for f, text in sources.items():
        per_fn = {}
        for m in STRING.finditer(text):
            body = rust_unescape(m.group(1))
            if not SQL_START.match(body):
                continue
            before = text[: m.start()]
            fns = FN.findall(before)
            fn = fns[-1] if fns else "?"
            # Is this literal the first argument of format!(...)? Then {x} are placeholders.
            is_format = re.search(r"format!\(\s*$", before) is not None
            if is_format:
                def fill(p):
                    name = p.group(1)
                    if name in consts:
                        return consts[name]
                    if name in PLACEHOLDERS:
                        return PLACEHOLDERS[name]
                    raise KeyError(name)
                try:
                    body = re.sub(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})", fill, body)
                except KeyError as e:
                    body = f"-- unknown format! placeholder {e}\n" + body
                body = body.replace("{{", "{").replace("}}", "}")
            n = per_fn.get(fn, 0)
            per_fn[fn] = n + 1
            line = text.count("\n", 0, m.start()) + 1
            found.append(dict(file=f, line=line, fn=fn, n=n, sql=body))
    return found


def run_psql(args, script):
    cmd = [args.psql, "-X", "-At", "-h", args.host, "-p", str(args.port), "-U", args.user, "-d", args.db]
    result = subprocess.run(cmd, input=script, capture_output=True, text=True)
    return result.stdout, result.stderr


def indexes_in(plan):
    names = []
    for line in plan.splitlines():
        for m in re.finditer(r"(?:Index Scan|Index Only Scan|Index Scan Backward|Index Only Scan Backward) using (\S+) on", line):
            names.append(m.group(1))
        for m in re.finditer(r"Bitmap Index Scan on (\S+)", line):
            names.append(m.group(1))
        m = re.search(r"Conflict Arbiter Indexes: (.*)", line)
        if m:
            names += [f"{n.strip()} (ON CONFLICT arbiter)" for n in m.group(1).split(",")]
    return list(dict.fromkeys(names))


def seq_scans(plan):
    return list(dict.fromkeys(re.findall(r"Seq Scan on (\S+)", plan)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--psql", default="psql")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", required=True)
    parser.add_argument("--user", default="postgres")
    parser.add_argument("--db", default="bench")
    parser.add_argument("--src", default="src")
    parser.add_argument("--files", default="store.rs,session.rs,audit.rs")
    args = parser.parse_args()

    out, err = run_psql(args, SAMPLES_SQL)
    row = out.strip().split("|")
    if len(row) != len(SAMPLE_NAMES):
        sys.exit(f"explain.py: no sample user with a live refresh token in the database ({err.strip()})")
    samples = dict(zip(SAMPLE_NAMES, row))
    counts, _ = run_psql(args, "SELECT (SELECT count(*) FROM auth.users) || ' users, ' || "
                               "(SELECT count(*) FROM auth.refresh_tokens) || ' refresh tokens, ' || "
                               "(SELECT count(*) FROM auth.audit_log_entries) || ' audit rows'")
    print(f"# Plans of auth_wechat's statements ({counts.strip()})")
    print(f"# samples: {samples}")
    print()

    def literal(value):
        if value in samples:
            return "'" + samples[value].replace("'", "''") + "'"
        return value

    summary = []
    for st in statements(Path(args.src), args.files.split(",")):
        nparams = max([int(x) for x in re.findall(r"\$(\d+)", st["sql"])] or [0])
        spec = PARAMS.get((st["fn"], st["n"]))
        note = ""
        if spec is None or len(spec) != nparams:
            note = (f"(no parameter list for {st['fn']}#{st['n']} with {nparams} parameters: types inferred, "
                    f"values NULL; the custom plan is not representative)")
            spec = [(None, "NULL")] * nparams
        types = ", ".join(t for t, _ in spec if t) if all(t for t, _ in spec) else None
        values = ", ".join(literal(v) for _, v in spec)
        prep = f"PREPARE s{'(' + types + ')' if types and spec else ''} AS {st['sql']};"
        execute = f"EXECUTE s({values})" if spec else "EXECUTE s"
        script = "\n".join([
            "BEGIN;",
            "SET LOCAL plan_cache_mode = force_generic_plan;",
            prep,
            f"EXPLAIN (COSTS OFF) {execute};",
            r"\echo ----custom----",
            "SET LOCAL plan_cache_mode = force_custom_plan;",
            f"EXPLAIN (COSTS OFF) {execute};",
            "ROLLBACK;",
        ])
        out, err = run_psql(args, script)
        out = "\n".join(l for l in out.splitlines() if l not in ("BEGIN", "SET", "PREPARE", "ROLLBACK"))
        generic, _, custom = out.partition("----custom----")
        generic, custom = generic.strip(), custom.strip()
        name = f"{st['file'].removesuffix('.rs')}::{st['fn']}" + (f" #{st['n'] + 1}" if st["n"] else "")
        print(f"## {name}  ({st['file']}:{st['line']})")
        if note:
            print(note)
        print(re.sub(r"\n\s*\n", "\n", st["sql"].strip()))
        if err.strip():
            print("ERROR: " + err.strip())
        print("-- generic plan:")
        print(generic)
        if custom != generic:
            print("-- custom plan (representative values):")
            print(custom)
        else:
            print("-- custom plan: the same")
        print()
        gi, ci = indexes_in(generic), indexes_in(custom)
        idx = ", ".join(gi) or "–"
        if ci != gi:
            idx += f" (custom plan: {', '.join(ci) or '–'})"
        seq = ", ".join(sorted(set(seq_scans(generic)) | set(seq_scans(custom)))) or "–"
        summary.append((name, idx, seq, "error" if err.strip() else ""))

    print("| statement | indexes (generic plan) | sequential scans |")
    print("|---|---|---|")
    for name, idx, seq, error in summary:
        print(f"| `{name}` | {idx} | {seq}{' ' + error if error else ''} |")


if __name__ == "__main__":
    main()
