//! Calls SQL functions the way PostgREST does for `POST /rpc/<fn>`: one READ COMMITTED
//! transaction on a connection of the `authenticator` role, `set_config(..., true)` of the
//! search path, role, JWT claims and request headers, then the call with arguments taken by name
//! from the JSON body, and COMMIT (or ROLLBACK on error). Like PostgREST 12, it applies the
//! impersonated role's own settings (`ALTER ROLE anon SET statement_timeout = '3s'`) to each
//! transaction. Errors are mapped to HTTP statuses with PostgREST's own table.

use postgres::{Client, NoTls};
use serde_json::{json, Value};

pub struct Rest {
    client: Client,
    /// Run calls in read-only transactions, as PostgREST runs a GET.
    read_only: bool,
    /// Each role's `ALTER ROLE ... SET` settings in this database, read once per connection.
    role_settings: std::collections::HashMap<String, Vec<(String, String)>>,
}

/// What every call's `request.headers` say about the client.
pub const USER_AGENT: &str = "integration-test";
pub const CLIENT_IP: &str = "203.0.113.7";

/// An error as a PostgREST client would see it.
#[derive(Debug, Clone)]
pub struct RpcError {
    pub status: u16,
    pub sqlstate: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// Response headers the error asks for (PostgREST's `PGRST` errors: `Retry-After`, say); a
    /// boxed slice, which keeps the error small.
    pub headers: Box<[(String, String)]>,
}

impl RpcError {
    /// The stable code in DETAIL's JSON (`error_code`).
    pub fn error_code(&self) -> String {
        self.detail_json()["error_code"].as_str().unwrap_or_default().to_string()
    }

    pub fn detail_json(&self) -> Value {
        self.detail.as_deref().and_then(|d| serde_json::from_str(d).ok()).unwrap_or(Value::Null)
    }

    /// The value of the response header `name` (lower case), if the error sets it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Every text field, for leak checks.
    pub fn all_text(&self) -> String {
        format!("{} {:?} {:?}", self.message, self.detail, self.hint)
    }
}

/// Who is calling: the anonymous role, or a signed-in user's claims.
#[derive(Clone)]
pub enum Caller {
    Anon,
    Claims(Value),
}

impl Rest {
    pub fn connect(conninfo: &str) -> Rest {
        Rest {
            client: Client::connect(conninfo, NoTls).expect("authenticator connects"),
            role_settings: Default::default(),
            read_only: false,
        }
    }

    /// From now on, calls run in read-only transactions, as PostgREST runs a GET.
    pub fn read_only(&mut self) {
        self.read_only = true;
    }

    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// `POST /rpc/<function>` of schema `auth` (`Content-Profile: auth`).
    pub fn rpc(&mut self, function: &str, body: Value, caller: &Caller) -> Result<Value, RpcError> {
        self.rpc_in("auth", function, body, caller)
    }

    /// `POST /rpc/<function>` of `schema`, from a client behind one proxy hop.
    pub fn rpc_in(&mut self, schema: &str, function: &str, body: Value, caller: &Caller) -> Result<Value, RpcError> {
        let headers = json!({"user-agent": USER_AGENT, "x-forwarded-for": format!("{CLIENT_IP}, 10.0.0.1")});
        self.rpc_with_headers(schema, function, body, caller, headers)
    }

    pub fn rpc_with_headers(
        &mut self,
        schema: &str,
        function: &str,
        body: Value,
        caller: &Caller,
        headers: Value,
    ) -> Result<Value, RpcError> {
        let (role, claims, had_jwt) = match caller {
            Caller::Anon => ("anon".to_string(), json!({"role": "anon"}), false),
            Caller::Claims(c) => (c["role"].as_str().unwrap_or("authenticated").to_string(), c.clone(), true),
        };
        // PostgREST types each argument from the function's signature; here too (the JSON value's
        // type for a name the signature does not have, which then finds no function, as there).
        let signature: std::collections::HashMap<String, String> = self
            .client
            .query(
                "SELECT a.name, pg_catalog.format_type(a.type, NULL)
                   FROM pg_catalog.pg_proc p, unnest(p.proargnames, p.proargtypes::oid[]) AS a(name, type)
                  WHERE p.pronamespace = to_regnamespace($1) AND p.proname = $2 AND a.name IS NOT NULL",
                &[&schema, &function],
            )
            .map(|rows| rows.iter().map(|row| (row.get(0), row.get(1))).collect())
            .unwrap_or_default();
        let args: Vec<(String, String)> = body
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(name, value)| {
                        (name.clone(), signature.get(name).cloned().unwrap_or_else(|| sql_type(value).to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let names: Vec<&String> = args.iter().map(|(n, _)| n).collect();
        let call_args = names.iter().map(|n| format!("\"{n}\" := pgrst_args.\"{n}\"")).collect::<Vec<_>>().join(", ");
        let record = args.iter().map(|(n, t)| format!("\"{n}\" {t}")).collect::<Vec<_>>().join(", ");
        // A scalar result comes back as PostgREST sends it: as JSON (a `text` one a string).
        let sql = if names.is_empty() {
            format!("SELECT pg_catalog.to_jsonb(\"{schema}\".\"{function}\"()) AS result")
        } else {
            format!(
                "SELECT pg_catalog.to_jsonb(\"{schema}\".\"{function}\"({call_args})) AS result \
                 FROM json_to_record($1::text::json) AS pgrst_args({record})"
            )
        };
        let settings = self.role_settings(&role);
        // Only a read-only transaction says so: `READ WRITE` is refused on a standby.
        let builder = self.client.build_transaction().isolation_level(postgres::IsolationLevel::ReadCommitted);
        let mut tx = if self.read_only { builder.read_only(true) } else { builder }.start().unwrap();
        let outcome = (|| {
            tx.execute(
                "SELECT set_config('search_path', 'public', true),
                        set_config('role', $1, true),
                        set_config('request.jwt.claims', $2, true),
                        set_config('request.method', 'POST', true),
                        set_config('request.path', $3, true),
                        set_config('request.headers', $4, true),
                        set_config('request.cookies', '{}', true)",
                &[&role, &claims.to_string(), &format!("/rpc/{function}"), &headers.to_string()],
            )?;
            for (name, value) in &settings {
                tx.execute("SELECT set_config($1, $2, true)", &[name, value])?;
            }
            let body_text = body.to_string();
            let row = if names.is_empty() { tx.query_one(&sql, &[])? } else { tx.query_one(&sql, &[&body_text])? };
            // Every function of the API answers a value: a NULL or an undecodable one is a bug to
            // report, not an empty answer.
            let result = row
                .try_get::<_, Option<Value>>(0)
                .unwrap_or_else(|e| panic!("{schema}.{function} answered something that is not JSON: {e}"))
                .unwrap_or_else(|| panic!("{schema}.{function} answered NULL"));
            let status: Option<String> = tx.query_one("SELECT current_setting('response.status', true)", &[])?.get(0);
            Ok::<_, postgres::Error>((result, status.filter(|s| !s.is_empty())))
        })();
        match outcome {
            Ok((value, None)) => {
                tx.commit().unwrap();
                Ok(value)
            }
            // The function chose the HTTP status (PostgREST's `response.status`) and committed.
            Ok((body, Some(status))) => {
                tx.commit().unwrap();
                Err(RpcError {
                    status: status.parse().unwrap_or(500),
                    sqlstate: String::new(),
                    message: body["message"].as_str().unwrap_or_default().to_string(),
                    detail: Some(json!({"error_code": body["code"]}).to_string()),
                    hint: None,
                    headers: Box::default(),
                })
            }
            Err(error) => {
                drop(tx);
                Err(to_rpc_error(&error, had_jwt))
            }
        }
    }
}

impl Rest {
    /// The role's settings as PostgREST 12 applies them: the role-wide ones, then those for this
    /// database, which win.
    fn role_settings(&mut self, role: &str) -> Vec<(String, String)> {
        if let Some(known) = self.role_settings.get(role) {
            return known.clone();
        }
        let settings: Vec<(String, String)> = self
            .client
            .query(
                "SELECT split_part(c, '=', 1), substr(c, strpos(c, '=') + 1)
                   FROM pg_db_role_setting s, unnest(s.setconfig) WITH ORDINALITY AS u(c, n)
                  WHERE s.setrole = (SELECT oid FROM pg_roles WHERE rolname = $1)
                    AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
                  ORDER BY s.setdatabase, n",
                &[&role],
            )
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        self.role_settings.insert(role.to_string(), settings.clone());
        settings
    }
}

/// The error a PostgREST client would get for this database error.
pub fn to_rpc_error(error: &postgres::Error, had_jwt: bool) -> RpcError {
    let db = error.as_db_error().unwrap_or_else(|| panic!("not a database error: {error}"));
    let sqlstate = db.code().code().to_string();
    if sqlstate == "PGRST" {
        return pgrst_error(db);
    }
    RpcError {
        status: http_status(&sqlstate, had_jwt),
        message: db.message().to_string(),
        detail: db.detail().map(str::to_string),
        hint: db.hint().map(str::to_string),
        headers: Box::default(),
        sqlstate,
    }
}

/// PostgREST's full-control error: the message is the body as JSON (`code`, `message`,
/// `details`, `hint`), DETAIL the status and headers. Anything else in those fields is a bug.
fn pgrst_error(db: &postgres::error::DbError) -> RpcError {
    let body: Value = serde_json::from_str(db.message()).expect("a PGRST error's message is JSON");
    let response: Value =
        serde_json::from_str(db.detail().expect("a PGRST error has a DETAIL")).expect("its DETAIL is JSON");
    let text = |value: &Value| value.as_str().map(str::to_string);
    RpcError {
        status: response["status"].as_u64().expect("DETAIL names a status") as u16,
        sqlstate: text(&body["code"]).expect("the body names a code"),
        message: text(&body["message"]).expect("the body has a message"),
        detail: text(&body["details"]),
        hint: text(&body["hint"]),
        headers: response["headers"]
            .as_object()
            .expect("DETAIL names the headers")
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.as_str().unwrap_or_default().to_string()))
            .collect(),
    }
}

fn sql_type(value: &Value) -> &'static str {
    match value {
        Value::Bool(_) => "boolean",
        Value::Number(_) => "integer",
        Value::Object(_) | Value::Array(_) => "jsonb",
        Value::String(_) | Value::Null => "text",
    }
}

/// PostgREST's SQLSTATE → HTTP status table (`mapSQLtoHTTP`).
pub fn http_status(sqlstate: &str, had_jwt: bool) -> u16 {
    if let Some(status) = sqlstate.strip_prefix("PT") {
        return status.parse().unwrap_or(500);
    }
    match sqlstate {
        "23503" | "23505" => 409,
        "25006" => 405,
        "21000" => 500,
        "22023" => 400,
        "42883" | "42P01" => 404,
        "42P17" => 500,
        "42501" => {
            if had_jwt {
                403
            } else {
                401
            }
        }
        "53400" => 500,
        "57P01" => 503,
        "P0001" => 400,
        _ => match &sqlstate[..2] {
            "08" | "53" => 503,
            "0L" | "0P" | "28" => 403,
            "09" | "25" | "2D" | "38" | "39" | "3B" | "40" | "54" | "55" | "57" | "58" | "F0" | "HV" | "P0" | "XX" => {
                500
            }
            _ => 400,
        },
    }
}
