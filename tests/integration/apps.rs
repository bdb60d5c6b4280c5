//! Several WeChat apps (`auth_wechat.apps`): the setting's checks.

use crate::{cluster, trial};
use auth_wechat_tests::code;
use auth_wechat_tests::simstats::calls;
use libtest_mimic::Trial;
use serde_json::{json, Value};

pub fn tests() -> Vec<Trial> {
    vec![trial(
        "apps::a_broken_setting_is_named_before_wechat_is_called",
        a_broken_setting_is_named_before_wechat_is_called,
    )]
}

/// A malformed array, an appid configured twice (the default's included) or an unknown type:
/// 500 `configuration_invalid` naming the setting and the app by position, never a secret, and
/// WeChat not called.
fn a_broken_setting_is_named_before_wechat_is_called() {
    let db = cluster().database(true);
    let mut admin = db.superuser();
    let default_appid: String = admin.query_one("SELECT current_setting('auth_wechat.appid')", &[]).unwrap().get(0);
    let secret = "a-secret-of-another-app";
    for (apps, expected) in [
        (json!({"appid": "wx1"}), "JSON array"),
        (json!([{"appid": default_appid, "secret": secret, "type": "miniprogram"}]), "app 1"),
        (
            json!([{"appid": "wx1", "secret": secret, "type": "website"}, {"appid": "wx1", "secret": secret, "type": "website"}]),
            "app 2 (wx1): the appid is configured twice",
        ),
        (json!([{"appid": "wx1", "secret": secret, "type": "game"}]), "app 1 (wx1): type must be"),
    ] {
        admin.execute("SELECT set_config('auth_wechat.apps', $1, false)", &[&apps.to_string()]).unwrap();
        let error = admin.query_one("SELECT auth.wechat_sign_in($1)", &[&code("ok", "apps")]).unwrap_err();
        let error = error.as_db_error().unwrap();
        assert_eq!(error.code().code(), "PT500", "{error:?}");
        let detail: Value = serde_json::from_str(error.detail().unwrap()).unwrap();
        assert_eq!(detail["error_code"], "configuration_invalid");
        assert!(
            error.message().contains("auth_wechat.apps") && error.message().contains(expected),
            "{}",
            error.message()
        );
        assert!(!format!("{error:?}").contains(secret), "{error:?}");
    }
    assert_eq!(calls(&db.sim_url(), "/sns/jscode2session"), 0, "refused before WeChat was called");
}
