//! GoTrue's custom access token hook: a Postgres function `(event jsonb) -> jsonb` that Supabase
//! users already have for roles, tenants and other custom claims. Set
//! `auth_wechat.access_token_hook` and every token minted here goes through it, with GoTrue's
//! event and GoTrue's checks of the output, so users carry the same claims whichever path
//! signed them in. The hook runs with the rights of the extension's owner, so it must be owned by
//! a superuser too.

use crate::error::AuthError;
use crate::session::Method;
use crate::store::first_row;
use pgrx::JsonB;
use serde_json::{json, Value};

/// Claims a hook may change but not remove (GoTrue's required claims).
const REQUIRED: [&str; 10] =
    ["aud", "exp", "iat", "sub", "email", "phone", "role", "aal", "session_id", "is_anonymous"];

/// Runs the hook named `hook` (`schema.function`) on `claims` and returns the claims it answers.
pub fn apply(hook: &str, user: &Value, claims: Value, method: Method) -> Result<Value, AuthError> {
    let function = quoted_name(hook).ok_or(AuthError::AccessTokenHook(
        "auth_wechat.access_token_hook must name a function as schema.function".into(),
    ))?;
    // The hook runs with the extension owner's (a superuser's) rights: a hook that a lesser role
    // owns, and so may rewrite, would hand that role those rights.
    let superuser_owned = first_row(
        "SELECT r.rolsuper FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_roles r ON r.oid = p.proowner
          WHERE p.oid = pg_catalog.to_regprocedure($1 || '(jsonb)')",
        &[hook.into()],
        |row| row.get_one::<bool>(),
    )
    .flatten();
    match superuser_owned {
        None => return Err(AuthError::AccessTokenHook(format!("the access token hook {hook}(jsonb) does not exist"))),
        Some(false) => {
            return Err(AuthError::AccessTokenHook(format!(
                "the access token hook {hook} must be owned by a superuser: it runs with the extension owner's rights"
            )))
        }
        Some(true) => {}
    }
    let event = json!({
        "user_id": user["id"],
        "claims": claims,
        "authentication_method": match method {
            Method::Oauth => "oauth",
            Method::TokenRefresh => "token_refresh",
        },
    });
    let output =
        first_row(&format!("SELECT {function}($1::jsonb)"), &[JsonB(event).into()], |row| row.get_one::<JsonB>())
            .flatten()
            .map(|JsonB(v)| v)
            .unwrap_or(Value::Null);
    checked_claims(output)
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
