//! PgBouncer (Debian's package, which `scripts/setup.sh` installs) in transaction mode in front
//! of a test cluster, as Supabase's Supavisor pools: a server connection is a client's for one
//! transaction only.

use crate::cluster::free_port;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = "/usr/sbin/pgbouncer";

pub struct PgBouncer {
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

impl PgBouncer {
    /// Pools every database of the server on `server_port` for `users` (trusted, as the test
    /// cluster is), `pool_size` server connections per database and user.
    pub fn start(server_port: u16, users: &[&str], pool_size: u32) -> PgBouncer {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("auth_wechat_pgbouncer.{}.{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let userlist: String = users.iter().map(|u| format!("\"{u}\" \"\"\n")).collect();
        std::fs::write(dir.join("userlist.txt"), userlist).unwrap();
        let config = format!(
            "[databases]\n* = host=127.0.0.1 port={server_port}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
             listen_port = {port}\nunix_socket_dir =\nauth_type = trust\nauth_file = {dir}/userlist.txt\n\
             pool_mode = transaction\ndefault_pool_size = {pool_size}\nmax_client_conn = 200\n\
             logfile = {dir}/pgbouncer.log\n",
            dir = dir.display()
        );
        std::fs::write(dir.join("pgbouncer.ini"), config).unwrap();
        // PgBouncer will not run as root: as the postgres user then, which must read its files.
        let mut command = if unsafe { libc::geteuid() } == 0 {
            let _ = Command::new("chown").arg("-R").arg("postgres").arg(&dir).status();
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--", BIN]);
            command
        } else {
            Command::new(BIN)
        };
        let child = command
            .arg(dir.join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {BIN} (scripts/setup.sh installs it): {e}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "PgBouncer did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        PgBouncer { port, dir, child }
    }

    /// What PgBouncer logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // runuser passes the signal on to PgBouncer.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("pkill").args(["-f", &self.dir.join("pgbouncer.ini").display().to_string()]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
