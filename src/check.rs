//! `auth.wechat_check_settings()`: every problem of every setting, now, for an operator after a
//! change, instead of from the first call in production that needs the broken value. It reports
//! what the calls would answer (the same words), never a value.

use crate::error::AuthError;
use crate::{apps, gucs, shmem, signing};
use serde_json::{json, Value};

/// `{"ok": bool, "problems": [{"setting", "problem"}]}`.
pub fn settings() -> Value {
    let mut problems: Vec<(&str, String)> = Vec::new();
    let mut check = |setting: &'static str, result: Result<(), AuthError>| {
        if let Err(error) = result {
            problems.push((setting, error.message()));
        }
    };
    check("auth_wechat.appid", gucs::appid().map(drop));
    check("auth_wechat.secret", gucs::secret().map(drop));
    check("auth_wechat.api_base", gucs::api_base().map(drop));
    let signing_setting = if gucs::jwt_keys().is_some() { "auth_wechat.jwt_keys" } else { "auth_wechat.jwt_secret" };
    check(signing_setting, signing::ready());
    if let Some(page) = gucs::scan_page() {
        check("auth_wechat.scan_page", crate::wechat::qrcode::check_page(&page));
    }
    if !shmem::preloaded() {
        check("shared_preload_libraries", Err(AuthError::NotPreloaded));
    }
    problems.extend(
        apps::problems()
            .into_iter()
            .map(|why| ("auth_wechat.apps", format!("setting auth_wechat.apps is invalid: {why}"))),
    );
    json!({
        "ok": problems.is_empty(),
        "problems": problems.iter().map(|(setting, problem)| json!({"setting": setting, "problem": problem})).collect::<Vec<_>>(),
    })
}
