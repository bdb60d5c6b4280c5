//! A throw-away PostgreSQL 15 cluster on a free loopback port, run as the `postgres` OS user
//! (Postgres refuses root), with auth_wechat in `shared_preload_libraries` and its settings in
//! postgresql.conf. Each test gets its own database, copied from a template that holds the
//! GoTrue-compatible schema and the extension, and its own WeChat simulator.
//!
//! The roles are Supabase's: the bootstrap superuser is `supabase_admin` (who creates the
//! extension); the auth schema and tables belong to `supabase_auth_admin`, with row-level security
//! on; `postgres` is a login role that is **not** a superuser but is a member of
//! `supabase_auth_admin` and of the API roles, and owns schema `public`; `monitor` holds
//! `pg_monitor`; the API roles carry PostgREST's per-role `statement_timeout`.

use crate::rest::Rest;
use crate::{APPID, JWT_SECRET, SECRET};
use postgres::{Client, NoTls};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use wechat_sim::{Config, Simulator};

pub const TEMPLATE_DB: &str = "auth_template";
/// The superuser, named as on Supabase (not `postgres`).
pub const SUPERUSER: &str = "supabase_admin";
/// The repository's GoTrue-compatible schema, the same file users load on plain Postgres.
pub const GOTRUE_SCHEMA: &str = include_str!("../../sql/gotrue_schema.sql");
/// The rest of Supabase's role model, after [`GOTRUE_SCHEMA`]; roles are cluster-wide, so only
/// the per-database part repeats in a second database.
pub const SUPABASE_ROLES: &str = "
    DO $$
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'postgres') THEN
            CREATE ROLE authenticator LOGIN NOINHERIT;
            GRANT anon, authenticated, service_role TO authenticator;
            ALTER ROLE anon SET statement_timeout = '3s';
            ALTER ROLE authenticated SET statement_timeout = '8s';
            CREATE ROLE postgres LOGIN NOSUPERUSER CREATEROLE CREATEDB BYPASSRLS;
            GRANT supabase_auth_admin, anon, authenticated, service_role TO postgres;
            CREATE ROLE monitor LOGIN IN ROLE pg_monitor;
            CREATE ROLE plain_user LOGIN;
        END IF;
    END
    $$;
    ALTER SCHEMA public OWNER TO postgres;";

pub struct Cluster {
    dir: PathBuf,
    bindir: PathBuf,
    port: u16,
    next_db: AtomicU64,
}

impl Cluster {
    pub fn start() -> Cluster {
        Cluster::start_with("main", "")
    }

    /// A cluster whose postgresql.conf also holds `extra` (settings every backend must see from
    /// its start, such as signing keys); `name` tells its directory apart.
    pub fn start_with(name: &str, extra: &str) -> Cluster {
        let pg_config = std::env::var("PG_CONFIG").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin/pg_config".into());
        let bindir = PathBuf::from(command_output(Command::new(&pg_config).arg("--bindir")).trim());
        let dir = PathBuf::from(format!("/tmp/auth_wechat_it.{}.{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            run(Command::new("chown").arg("postgres").arg(&dir));
        }
        let port = free_port();
        let data = dir.join("data");
        run(as_postgres(&bindir.join("initdb"))
            .args(["-A", "trust", "-U", SUPERUSER, "--no-sync", "-E", "UTF8", "-D"])
            .arg(&data));
        // Settings go into postgresql.conf before the start: a reload that changes a setting
        // makes Postgres itself log "parameter ... changed to <value>", secrets included.
        let conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{dir}'\n\
             shared_preload_libraries = 'auth_wechat'\nmax_connections = 200\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n\
             auth_wechat.max_concurrent_requests = 64\n\
             auth_wechat.appid = '{APPID}'\nauth_wechat.secret = '{SECRET}'\nauth_wechat.apps = '{apps}'\n\
             auth_wechat.jwt_secret = '{JWT_SECRET}'\nauth_wechat.jwt_issuer = 'http://localhost/auth/v1'\n{extra}\n",
            dir = dir.display(),
            apps = crate::apps_setting(),
        );
        append(&data.join("postgresql.conf"), &conf);
        let cluster = Cluster { dir, bindir, port, next_db: AtomicU64::new(1) };
        cluster.pg_ctl_start();
        if let Err(panic) = std::panic::catch_unwind(|| cluster.prepare()) {
            eprintln!("--- server log ---\n{}", cluster.log());
            cluster.stop();
            std::panic::resume_unwind(panic);
        }
        cluster
    }

    /// Roles, settings and the template database every test database is copied from.
    fn prepare(&self) {
        let mut admin = self.connect("postgres", SUPERUSER);
        admin.batch_execute(&format!("CREATE DATABASE {TEMPLATE_DB}")).unwrap();
        let mut template = self.connect(TEMPLATE_DB, SUPERUSER);
        template.batch_execute(GOTRUE_SCHEMA).unwrap();
        template.batch_execute(SUPABASE_ROLES).unwrap();
        template.batch_execute("CREATE EXTENSION auth_wechat").unwrap();
    }

    /// A hot standby streaming from this cluster (`pg_basebackup -R`: a copy of it as it is now),
    /// on a port of its own; `name` tells its directory apart.
    pub fn standby(&self, name: &str) -> Cluster {
        let dir = PathBuf::from(format!("/tmp/auth_wechat_it.{}.{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            run(Command::new("chown").arg("postgres").arg(&dir));
        }
        let data = dir.join("data");
        run(as_postgres(&self.bindir.join("pg_basebackup"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", SUPERUSER])
            .args(["--write-recovery-conf", "--wal-method=stream", "--checkpoint=fast", "-D"])
            .arg(&data));
        let port = free_port();
        let conf = format!("\nport = {port}\nunix_socket_directories = '{}'\nhot_standby = on\n", dir.display());
        append(&data.join("postgresql.conf"), &conf);
        let standby = Cluster { dir, bindir: self.bindir.clone(), port, next_db: AtomicU64::new(1) };
        standby.pg_ctl_start();
        standby
    }

    fn pg_ctl_start(&self) {
        // The server runs with RUST_BACKTRACE=1, as on developer machines and some images: no
        // backtrace may reach a client whatever the environment.
        run(as_postgres(&self.bindir.join("pg_ctl"))
            .env("RUST_BACKTRACE", "1")
            .args(["-w", "-t", "60", "-l"])
            .arg(self.dir.join("server.log"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("start"));
    }

    /// Stops the server, adds `extra` to its postgresql.conf (later lines win) and starts it
    /// again: a restart, with everything it brings (a library loaded anew, say).
    pub fn restart_with(&self, extra: &str) {
        run(as_postgres(&self.bindir.join("pg_ctl"))
            .args(["-m", "fast", "-w", "-D"])
            .arg(self.dir.join("data"))
            .arg("stop"));
        append(&self.dir.join("data").join("postgresql.conf"), &format!("\n{extra}\n"));
        self.pg_ctl_start();
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn conninfo(&self, db: &str, user: &str) -> String {
        format!("host=127.0.0.1 port={} user={user} dbname={db} application_name=auth_wechat_it", self.port)
    }

    pub fn connect(&self, db: &str, user: &str) -> Client {
        Client::connect(&self.conninfo(db, user), NoTls).unwrap_or_else(|e| panic!("connect {db} as {user}: {e}"))
    }

    /// A fresh database (empty, or a copy of the template) and a simulator of its own. An empty
    /// one has no schema at all: load [`GOTRUE_SCHEMA`], then [`SUPABASE_ROLES`] (for `public`'s
    /// owner) before creating the extension.
    pub fn database(&'static self, from_template: bool) -> TestDb {
        let name = format!("t{}", self.next_db.fetch_add(1, Ordering::SeqCst));
        let more = crate::MORE_APPS.iter().map(|(appid, secret, _)| (appid.to_string(), secret.to_string())).collect();
        let sim = Simulator::start(Config { appid: APPID.into(), secret: SECRET.into(), more }).unwrap();
        let template = if from_template { format!("TEMPLATE {TEMPLATE_DB}") } else { String::new() };
        let mut admin = self.connect("postgres", SUPERUSER);
        admin.batch_execute(&format!("CREATE DATABASE {name} {template}")).unwrap();
        admin.batch_execute(&format!("ALTER DATABASE {name} SET auth_wechat.api_base = '{}'", sim.url())).unwrap();
        TestDb { name, sim, cluster: self }
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Runs one of PostgreSQL's client programs (pg_dump, ...) against this cluster.
    pub fn client_program(&self, program: &str) -> Command {
        let mut command = Command::new(self.bindir.join(program));
        command.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", SUPERUSER]);
        command
    }

    pub fn stop(&self) {
        let _ = as_postgres(&self.bindir.join("pg_ctl"))
            .args(["-m", "immediate", "-D"])
            .arg(self.dir.join("data"))
            .arg("stop")
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A cluster of one test's own, stopped (and its directory removed) when this is dropped, even
/// when the test fails.
pub struct Owned(pub &'static Cluster);

impl Owned {
    pub fn new(cluster: Cluster) -> Owned {
        Owned(Box::leak(Box::new(cluster)))
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// One test's database and simulator; the database is dropped with it.
pub struct TestDb {
    pub name: String,
    pub sim: Simulator,
    cluster: &'static Cluster,
}

impl TestDb {
    pub fn cluster(&self) -> &'static Cluster {
        self.cluster
    }

    pub fn superuser(&self) -> Client {
        self.cluster.connect(&self.name, SUPERUSER)
    }

    /// Supabase's `postgres`: a member of `supabase_auth_admin`, not a superuser.
    pub fn postgres(&self) -> Client {
        self.cluster.connect(&self.name, "postgres")
    }

    /// A PostgREST-style caller (a new connection as `authenticator`).
    pub fn rest(&self) -> Rest {
        Rest::connect(&self.cluster.conninfo(&self.name, "authenticator"))
    }

    pub fn conninfo(&self, user: &str) -> String {
        self.cluster.conninfo(&self.name, user)
    }

    /// `ALTER DATABASE ... SET`: seen by connections opened afterwards.
    pub fn set(&self, setting: &str, value: &str) {
        let value = value.replace('\'', "''");
        self.cluster
            .connect("postgres", SUPERUSER)
            .batch_execute(&format!("ALTER DATABASE {} SET {setting} = '{value}'", self.name))
            .unwrap();
    }

    pub fn sim_url(&self) -> String {
        self.sim.url()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = Client::connect(&self.cluster.conninfo("postgres", SUPERUSER), NoTls) {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Postgres will not run as root: when we are root, run its programs as `postgres`.
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn run(command: &mut Command) {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn command_output(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}
