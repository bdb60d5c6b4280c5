//! `auth-wechat-import`: streams a LeanCloud, uni-id or MemFire export (one JSON record per line)
//! through `auth.wechat_import_users`, a batch per transaction, with a progress line on stderr.
//! Conflicts and skipped records go to a report file (one JSON object per line, with the export's
//! line number); the totals are printed at the end.
//!
//! A batch that fails is not written (it was one transaction) and stops the run: every batch
//! before it was. The function is idempotent, so the remedy is to run the whole file again.

use postgres::{Client, Config};
use serde_json::{json, Map, Value};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: auth-wechat-import --from leancloud|uni-id|memfire --dsn CONNINFO [--apps APPS.json]
                          [--batch N] [--dry-run] [--role ROLE] [--ca-cert CA.pem] [--report FILE] EXPORT.jsonl

  --from      the source the export comes from
  --dsn       the database (libpq key=value or postgres:// URL); connect as a superuser or a
              member of service_role, or name one with --role
  --apps      a JSON object mapping the export's app keys to appids of auth_wechat.apps
  --batch     records per call and transaction (default 1000)
  --dry-run   answer what would be written, write nothing
  --role      SET ROLE to this role after connecting (service_role, say)
  --ca-cert   a PEM file of CA certificates the server's certificate is checked against, besides
              the public roots (Supabase signs its databases' certificates with its own CA)
  --report    where conflicts and skipped records go (default: EXPORT.jsonl.report.jsonl)";

struct Args {
    from: String,
    dsn: String,
    apps: Value,
    batch: usize,
    dry_run: bool,
    role: Option<String>,
    ca_cert: Option<String>,
    report: String,
    export: String,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut from, mut dsn, mut apps, mut batch, mut dry_run) = (None, None, Value::Object(Map::new()), 1000, false);
    let (mut role, mut ca_cert, mut report, mut export) = (None, None, None, None);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--from" => from = Some(value()?),
            "--dsn" => dsn = Some(value()?),
            "--apps" => {
                let path = value()?;
                let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
                apps = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
            }
            "--batch" => batch = value()?.parse().ok().filter(|n| *n > 0).ok_or("--batch takes a positive number")?,
            "--dry-run" => dry_run = true,
            "--role" => role = Some(value()?),
            "--ca-cert" => ca_cert = Some(value()?),
            "--report" => report = Some(value()?),
            "-h" | "--help" => return Err(String::new()),
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}")),
            _ if export.is_none() => export = Some(arg),
            _ => return Err("one export file only".into()),
        }
    }
    let export = export.ok_or("the export file is missing")?;
    Ok(Args {
        from: from.ok_or("--from is missing")?,
        dsn: dsn.ok_or("--dsn is missing")?,
        apps,
        batch,
        dry_run,
        role,
        ca_cert,
        report: report.unwrap_or_else(|| format!("{export}.report.jsonl")),
        export,
    })
}

/// A client that speaks TLS when the server offers it (`sslmode=prefer`, the default) or must
/// (`sslmode=require`), checking the certificate against the public roots and `ca_cert`.
fn connect(dsn: &str, ca_cert: Option<&str>) -> Result<Client, String> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
            let cert: rustls::pki_types::CertificateDer = cert.map_err(|e| format!("{path}: {e}"))?;
            roots.add(cert).map_err(|e| format!("{path}: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let config: Config = dsn.parse().map_err(|e| format!("--dsn: {e}"))?;
    config
        .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
        .map_err(|e| format!("connecting: {}", with_causes(&e)))
}

/// An error and what caused it, outermost first: "error performing TLS handshake" alone does not
/// say that the certificate's issuer is unknown (`--ca-cert`).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(&format!(": {inner}"));
        cause = inner.source();
    }
    text
}

/// The running totals of the answers.
#[derive(Default)]
struct Totals {
    counts: Map<String, Value>,
    unmapped: Map<String, Value>,
    conflicts: u64,
    skipped: u64,
}

impl Totals {
    fn add(&mut self, answer: &Value) {
        for key in ["imported", "merged", "updated", "unchanged", "password_not_imported"] {
            let sum = self.counts.get(key).and_then(Value::as_u64).unwrap_or(0) + answer[key].as_u64().unwrap_or(0);
            self.counts.insert(key.into(), sum.into());
        }
        for (key, n) in answer["unmapped"].as_object().into_iter().flatten() {
            let sum = self.unmapped.get(key).and_then(Value::as_u64).unwrap_or(0) + n.as_u64().unwrap_or(0);
            self.unmapped.insert(key.clone(), sum.into());
        }
    }
}

/// One batch: the records, and the export's line number of each.
#[derive(Default)]
struct Batch {
    records: Vec<Value>,
    lines: Vec<u64>,
}

struct Run {
    client: Client,
    statement: postgres::Statement,
    from: String,
    options: String,
    report: BufWriter<File>,
    totals: Totals,
    done: u64,
    total: u64,
    started: Instant,
    shown: Instant,
}

impl Run {
    fn send(&mut self, batch: &mut Batch) -> Result<(), String> {
        if batch.records.is_empty() {
            return Ok(());
        }
        let users = Value::Array(std::mem::take(&mut batch.records)).to_string();
        let lines = std::mem::take(&mut batch.lines);
        let answer: String = self
            .client
            .query_one(&self.statement, &[&self.from, &users, &self.options])
            .map_err(|e| {
                let detail = e.as_db_error().map_or_else(|| e.to_string(), |db| db.message().to_string());
                format!(
                    "the batch of lines {}-{} failed, and nothing of it was written: {detail}",
                    lines[0],
                    lines[lines.len() - 1]
                )
            })?
            .get(0);
        let answer: Value = serde_json::from_str(&answer).map_err(|e| e.to_string())?;
        self.totals.add(&answer);
        for (kind, entries) in [("conflict", &answer["conflicts"]), ("skipped", &answer["skipped"])] {
            for entry in entries.as_array().into_iter().flatten() {
                let mut entry = entry.clone();
                let index = entry["index"].as_u64().unwrap_or(0) as usize;
                if let Some(object) = entry.as_object_mut() {
                    object.remove("index");
                    object.insert("line".into(), lines.get(index).copied().unwrap_or(0).into());
                    object.insert("kind".into(), kind.into());
                }
                self.write_report(&entry)?;
                *if kind == "conflict" { &mut self.totals.conflicts } else { &mut self.totals.skipped } += 1;
            }
        }
        self.done += lines.len() as u64;
        self.progress(false);
        Ok(())
    }

    fn write_report(&mut self, entry: &Value) -> Result<(), String> {
        writeln!(self.report, "{entry}").map_err(|e| format!("the report: {e}"))
    }

    /// `records done/total, rate, time left`, at most five times a second.
    fn progress(&mut self, last: bool) {
        if !last && self.shown.elapsed() < Duration::from_millis(200) {
            return;
        }
        self.shown = Instant::now();
        let elapsed = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.done as f64 / elapsed;
        let left = if rate > 0.0 { (self.total.saturating_sub(self.done)) as f64 / rate } else { 0.0 };
        let width = 30;
        let filled = (self.done * width / self.total.max(1)).min(width) as usize;
        eprint!(
            "\r[{}{}] {}/{} records  {:.0}/s  {}:{:02} left ",
            "#".repeat(filled),
            " ".repeat(width as usize - filled),
            self.done,
            self.total,
            rate,
            left as u64 / 60,
            left as u64 % 60
        );
        if last {
            eprintln!();
        }
    }
}

/// The export's records: its non-blank lines.
fn count_records(path: &str) -> Result<u64, String> {
    let file = File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let mut n = 0;
    for line in BufReader::new(file).lines() {
        n += u64::from(!line.map_err(|e| format!("{path}: {e}"))?.trim().is_empty());
    }
    Ok(n)
}

fn run(args: Args) -> Result<Value, String> {
    let total = count_records(&args.export)?;
    let mut client = connect(&args.dsn, args.ca_cert.as_deref())?;
    if let Some(role) = &args.role {
        client
            .batch_execute(&format!("SET ROLE \"{}\"", role.replace('"', "\"\"")))
            .map_err(|e| format!("SET ROLE {role}: {e}"))?;
    }
    let statement = client
        .prepare("SELECT auth.wechat_import_users($1::text, $2::text::jsonb, $3::text::jsonb)::text")
        .map_err(|e| format!("preparing the call: {e}"))?;
    let report = File::create(&args.report).map_err(|e| format!("{}: {e}", args.report))?;
    let mut run = Run {
        client,
        statement,
        from: args.from.clone(),
        options: json!({"apps": args.apps, "dry_run": args.dry_run}).to_string(),
        report: BufWriter::new(report),
        totals: Totals::default(),
        done: 0,
        total,
        started: Instant::now(),
        shown: Instant::now(),
    };
    let file = File::open(&args.export).map_err(|e| format!("{}: {e}", args.export))?;
    let mut batch = Batch::default();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("{}: {e}", args.export))?;
        let number = n as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(&line) {
            Ok(record) => {
                batch.records.push(record);
                batch.lines.push(number);
            }
            Err(e) => {
                run.write_report(
                    &json!({"kind": "skipped", "line": number, "reason": format!("malformed: not JSON ({e})")}),
                )?;
                run.totals.skipped += 1;
                run.done += 1;
            }
        }
        if batch.records.len() == args.batch {
            run.send(&mut batch)?;
        }
    }
    run.send(&mut batch)?;
    run.progress(true);
    run.report.flush().map_err(|e| format!("the report: {e}"))?;
    let mut summary = run.totals.counts;
    summary.insert("conflicts".into(), run.totals.conflicts.into());
    summary.insert("skipped".into(), run.totals.skipped.into());
    summary.insert("unmapped".into(), Value::Object(run.totals.unmapped));
    summary.insert("records".into(), total.into());
    summary.insert("seconds".into(), json!((run.started.elapsed().as_secs_f64() * 10.0).round() / 10.0));
    summary.insert("dry_run".into(), args.dry_run.into());
    summary.insert("report".into(), args.report.into());
    Ok(Value::Object(summary))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(why) => {
            if !why.is_empty() {
                eprintln!("auth-wechat-import: {why}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(summary) => {
            println!("{}", serde_json::to_string_pretty(&summary).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("\nauth-wechat-import: {why}");
            eprintln!("Every batch before it was written; the import is idempotent: run the whole file again.");
            ExitCode::FAILURE
        }
    }
}
