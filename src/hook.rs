//! GoTrue's custom access token hook: a Postgres function `(event jsonb) -> jsonb` that Supabase
//! users already have for roles, tenants and other custom claims. Set
//! `auth_wechat.access_token_hook` and every token minted here goes through it, with GoTrue's
//! event and GoTrue's checks of the output, so users carry the same claims whichever path
//! signed them in.
//!
//! The name is resolved once per token to one function (by OID), and that exact function is the
//! one checked and called: its name is taken case-sensitively, as GoTrue quotes the names of its
//! hook URI. It runs as GoTrue runs it, with the rights of the auth tables' owner (see
//! `privilege`); so it must be owned by a role that has those rights already (a superuser, or a
//! member of `supabase_auth_admin` such as Supabase's `postgres`), else whoever owns it could
//! rewrite it into code that acts as that owner.

use crate::error::AuthError;
use crate::ids;
use crate::spi::first_row;
use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::Uuid;
use pgrx::{FromDatum, IntoDatum, JsonB};
use serde_json::{json, Value};

/// How the session a token is minted for was authenticated, as GoTrue tells the hook.
#[derive(Clone, Copy)]
pub enum Method {
    /// A WeChat code (sign-in): GoTrue's name for third-party sign-ins.
    Oauth,
    TokenRefresh,
}

/// Claims a hook may change but not remove (GoTrue's required claims).
const REQUIRED: [&str; 10] =
    ["aud", "exp", "iat", "sub", "email", "phone", "role", "aal", "session_id", "is_anonymous"];

/// Runs the hook named `hook` (`schema.function`) on `claims` and returns the claims it answers.
pub fn apply(hook: &str, user_id: Uuid, claims: Value, method: Method) -> Result<Value, AuthError> {
    let (function, now) = resolve(hook)?;
    // GoTrue's hook metadata: a fresh id per call, when, which hook, and the client's address.
    let mut metadata = json!({"uuid": ids::uuid_text(ids::new_uuid()), "time": now, "name": "customize-access-token"});
    if let Some(ip) = crate::request::client().ip {
        metadata["ip_address"] = json!(ip.to_string());
    }
    let event = json!({
        "user_id": user_id.to_string(),
        "claims": claims,
        "authentication_method": match method {
            Method::Oauth => "oauth",
            Method::TokenRefresh => "token_refresh",
        },
        "metadata": metadata,
    });
    let output = call(function, event)
        .map_err(|why| AuthError::AccessTokenHook(format!("the access token hook {hook}(jsonb) failed: {why}")))?;
    checked_claims(output)
}

/// The OID of the one function `hook` names, after checking that it takes and returns `jsonb`,
/// that the current user (the tables' owner, see `privilege`) may execute it, and that its owner
/// already has the rights it will run with. Also answers the time now, in RFC 3339 (UTC), for the event.
fn resolve(hook: &str) -> Result<(pg_sys::Oid, String), AuthError> {
    let signature = quoted_name(hook).ok_or(AuthError::AccessTokenHook(
        "auth_wechat.access_token_hook must name a function as schema.function".into(),
    ))? + "(jsonb)";
    let found = first_row(
        "SELECT p.oid,
                p.prorettype = 'pg_catalog.jsonb'::pg_catalog.regtype AND p.prokind = 'f' AND NOT p.proretset,
                pg_catalog.has_function_privilege(p.oid, 'EXECUTE'),
                pg_catalog.pg_has_role(p.proowner, $2, 'USAGE'),
                pg_catalog.to_char(pg_catalog.timezone('UTC', pg_catalog.clock_timestamp()), 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
           FROM pg_catalog.pg_proc p
          WHERE p.oid = pg_catalog.to_regprocedure($1)",
        &[signature.clone().into(), crate::privilege::current_user().into()],
        |row| {
            Ok((
                row.get::<pg_sys::Oid>(1)?,
                row.get::<bool>(2)?,
                row.get::<bool>(3)?,
                row.get::<bool>(4)?,
                row.get::<String>(5)?.unwrap_or_default(),
            ))
        },
    );
    let refuse = |why: &str| Err(AuthError::AccessTokenHook(format!("the access token hook {hook}(jsonb) {why}")));
    match found {
        None => refuse("does not exist (the name is case-sensitive)"),
        Some((Some(oid), Some(true), Some(true), Some(true), now)) => Ok((oid, now)),
        Some((_, Some(false), _, _, _)) => refuse("must be a plain function returning jsonb"),
        Some((_, _, Some(false), _, _)) => refuse("is not executable by the auth tables' owner (GRANT EXECUTE to it)"),
        Some(_) => refuse(
            "must be owned by a superuser or a member of the auth tables' owner: it runs with that owner's rights",
        ),
    }
}

/// Calls exactly the function `oid` with `event`; a NULL answer is `Value::Null`. An ERROR the
/// hook raises comes back as its message: GoTrue answers a failing hook with 500, and so does
/// `apply` (the transaction is aborted by the error raised then, as after any ERROR).
fn call(oid: pg_sys::Oid, event: Value) -> Result<Value, String> {
    let argument = JsonB(event).into_datum().expect("jsonb is never NULL here");
    // SAFETY: the fmgr protocol for a one-argument call, as fmgr.c's OidFunctionCall1Coll does it,
    // but reading the answer's NULL flag instead of raising on it. The function was checked above
    // to take one jsonb and return a jsonb; the call may raise a Postgres ERROR, which the guard
    // turns into an unwind.
    unsafe {
        let mut flinfo = pg_sys::FmgrInfo::default();
        pg_sys::fmgr_info(oid, &mut flinfo);
        let size =
            std::mem::size_of::<pg_sys::FunctionCallInfoBaseData>() + std::mem::size_of::<pg_sys::NullableDatum>();
        let fcinfo = pg_sys::palloc0(size).cast::<pg_sys::FunctionCallInfoBaseData>();
        (*fcinfo).flinfo = &mut flinfo;
        (*fcinfo).fncollation = pg_sys::InvalidOid;
        (*fcinfo).nargs = 1;
        let args = (*fcinfo).args.as_mut_slice(1);
        args[0] = pg_sys::NullableDatum { value: argument, isnull: false };
        let function = flinfo.fn_addr.expect("fmgr_info sets the function address");
        let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pg_sys::ffi::pg_guard_ffi_boundary(|| function(fcinfo))
        }));
        let answer = match called {
            Ok(result) => Ok(JsonB::from_datum(result, (*fcinfo).isnull).map(|JsonB(v)| v).unwrap_or(Value::Null)),
            Err(payload) => match payload.downcast::<CaughtError>() {
                Ok(caught) => match *caught {
                    CaughtError::PostgresError(report) | CaughtError::ErrorReport(report) => {
                        Err(report.message().chars().take(500).collect())
                    }
                    other => std::panic::resume_unwind(Box::new(other)),
                },
                Err(payload) => std::panic::resume_unwind(payload),
            },
        };
        pg_sys::pfree(fcinfo.cast());
        answer
    }
}

/// GoTrue's checks of a hook's output: an `error` object refuses the sign-in with its status;
/// otherwise `claims` must be an object that still holds every required claim.
fn checked_claims(output: Value) -> Result<Value, AuthError> {
    if let Some(error) = output.get("error") {
        let status = error["http_code"].as_u64().filter(|s| (400..=599).contains(s)).unwrap_or(403) as u16;
        let message =
            error["message"].as_str().unwrap_or("refused by the access token hook").chars().take(500).collect();
        return Err(AuthError::HookRefused { status, message });
    }
    let claims = output
        .get("claims")
        .filter(|c| c.is_object())
        .cloned()
        .ok_or(AuthError::AccessTokenHook("the access token hook answered no claims object".into()))?;
    if let Some(missing) = REQUIRED.iter().find(|key| claims.get(**key).is_none_or(Value::is_null)) {
        return Err(AuthError::AccessTokenHook(format!("the access token hook removed the required claim {missing}")));
    }
    Ok(claims)
}

/// `"schema"."function"` for a `schema.function` made of plain identifier characters.
fn quoted_name(name: &str) -> Option<String> {
    let (schema, function) = name.split_once('.')?;
    let plain = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    (plain(schema) && plain(function)).then(|| format!("\"{schema}\".\"{function}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_claims() -> Value {
        json!({"aud": "authenticated", "exp": 2, "iat": 1, "sub": "u", "email": "", "phone": "", "role": "authenticated",
               "aal": "aal1", "session_id": "s", "is_anonymous": false, "app_metadata": {}})
    }

    #[test]
    fn keeps_added_claims_and_refuses_removed_required_ones() {
        let mut added = full_claims();
        added["tenant"] = json!("t1");
        assert_eq!(checked_claims(json!({"claims": added.clone()})).unwrap()["tenant"], "t1");
        let mut removed = full_claims();
        removed.as_object_mut().unwrap().remove("role");
        assert!(
            matches!(checked_claims(json!({"claims": removed})), Err(AuthError::AccessTokenHook(m)) if m.contains("role"))
        );
        assert!(matches!(checked_claims(json!({"claims": "x"})), Err(AuthError::AccessTokenHook(_))));
        assert!(matches!(checked_claims(Value::Null), Err(AuthError::AccessTokenHook(_))));
    }

    #[test]
    fn an_error_object_refuses_with_its_status() {
        let refused = checked_claims(json!({"error": {"http_code": 429, "message": "slow down"}}));
        assert_eq!(refused, Err(AuthError::HookRefused { status: 429, message: "slow down".into() }));
    }

    #[test]
    fn names_must_be_schema_qualified_identifiers() {
        assert_eq!(
            quoted_name("public.custom_access_token_hook").as_deref(),
            Some(r#""public"."custom_access_token_hook""#)
        );
        assert_eq!(quoted_name("custom_access_token_hook"), None);
        assert_eq!(quoted_name("public.x(); drop table y; --"), None);
    }
}
