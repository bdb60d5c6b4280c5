//! A real PostgREST (the static binary `scripts/setup.sh` installs) in front of a test database,
//! and a small HTTP client for it.

use crate::cluster::free_port;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where `scripts/setup.sh` puts PostgREST 12; `POSTGREST_BIN` overrides it.
const DEFAULT_BIN: &str = "/opt/auth_wechat/postgrest/postgrest";

pub struct PostgRest {
    pub url: String,
    child: Child,
    agent: ureq::Agent,
    /// Where PostgREST's output goes (`log`).
    log: std::path::PathBuf,
}

/// An HTTP answer: status, headers (names in lower case) and JSON body (`Value::Null` when empty
/// or not JSON).
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Answer {
    /// The value of the header `name` (lower case), if the answer has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

impl PostgRest {
    /// Serves schema `public` of the database at `conninfo` (as `authenticator`), with `anon` for
    /// requests without a token and `jwt_secret` (an HS256 secret or a JWKS) to verify tokens.
    pub fn start(db_uri: &str, jwt_secret: &str) -> PostgRest {
        PostgRest::start_with(db_uri, jwt_secret, &[])
    }

    /// `start`, with more `PGRST_*` settings (`("PGRST_DB_POOL", "1")`, say), which win.
    pub fn start_with(db_uri: &str, jwt_secret: &str, settings: &[(&str, &str)]) -> PostgRest {
        let bin = std::env::var("POSTGREST_BIN").unwrap_or_else(|_| DEFAULT_BIN.into());
        let (port, admin_port) = (free_port(), free_port());
        let log = std::env::temp_dir().join(format!("auth_wechat_postgrest.{}.{port}.log", std::process::id()));
        let output = std::fs::File::create(&log).expect("PostgREST's log file");
        let child = Command::new(&bin)
            .env_clear()
            .env("PGRST_DB_URI", db_uri)
            .env("PGRST_DB_SCHEMAS", "public")
            .env("PGRST_DB_ANON_ROLE", "anon")
            .env("PGRST_JWT_SECRET", jwt_secret)
            .env("PGRST_SERVER_HOST", "127.0.0.1")
            .env("PGRST_SERVER_PORT", port.to_string())
            .env("PGRST_DB_POOL", "4")
            .env("PGRST_ADMIN_SERVER_PORT", admin_port.to_string())
            .envs(settings.iter().copied())
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("a second handle of the log file"))
            .stderr(output)
            .spawn()
            .unwrap_or_else(|e| panic!("start PostgREST ({bin}; scripts/setup.sh installs it): {e}"));
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .new_agent();
        let rest = PostgRest { url: format!("http://127.0.0.1:{port}"), child, agent, log };
        // Ready when the admin server says so: a 503 from the API itself (asked before the schema
        // cache is loaded) would make PostgREST start over.
        let deadline = Instant::now() + Duration::from_secs(20);
        let ready = format!("http://127.0.0.1:{admin_port}/ready");
        while rest.agent.get(&ready).call().map(|r| r.status().as_u16() != 200).unwrap_or(true) {
            assert!(Instant::now() < deadline, "PostgREST did not come up on {}", rest.url);
            std::thread::sleep(Duration::from_millis(100));
        }
        rest
    }

    /// What PostgREST has logged so far (it logs its start, each connection attempt and each
    /// schema cache load).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Tells PostgREST to reload its schema cache (SIGUSR1), as an operator does when the
    /// `NOTIFY pgrst` of a change cannot reach it (behind a transaction pooler).
    pub fn reload_schema(&self) {
        // SAFETY: a signal to a child process this struct owns.
        assert_eq!(unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGUSR1) }, 0);
    }

    /// `GET path` with an optional bearer token.
    pub fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut request = self.agent.get(&format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        answer(request.call())
    }

    /// `POST path` with a JSON body and an optional bearer token.
    pub fn post(&self, path: &str, body: &Value, token: Option<&str>) -> Answer {
        self.post_with(path, body, token, &[])
    }

    /// `post` with more request headers (`("Prefer", "tx=rollback")`, say).
    pub fn post_with(&self, path: &str, body: &Value, token: Option<&str>, headers: &[(&str, &str)]) -> Answer {
        let mut request = self.agent.post(&format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        answer(request.send_json(body))
    }
}

fn answer(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut response = result.unwrap_or_else(|e| panic!("PostgREST request failed: {e}"));
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str().to_ascii_lowercase(), value.to_str().unwrap_or_default().to_string()))
        .collect();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    Answer { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null) }
}

impl Drop for PostgRest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
