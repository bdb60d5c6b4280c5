//! `auth.wechat_unlimited_qrcode` and its `bytea` twin.

use crate::{cluster, trial};
use auth_wechat_tests::rest::Caller;
use auth_wechat_tests::simstats::calls;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libtest_mimic::Trial;
use serde_json::{json, Value};

const QR: &str = "/wxa/getwxacodeunlimit";

pub fn tests() -> Vec<Trial> {
    vec![
        trial("qrcode::returns_the_image_as_base64", returns_the_image_as_base64),
        trial("qrcode::bad_parameters_never_reach_wechat", bad_parameters_never_reach_wechat),
        trial("qrcode::wechat_refusals_are_reported", wechat_refusals_are_reported),
        trial("qrcode::only_service_role_may_call", only_service_role_may_call),
    ]
}

fn service_role() -> Caller {
    Caller::Claims(json!({"role": "service_role"}))
}

fn returns_the_image_as_base64() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let answer = rest
        .rpc("wechat_unlimited_qrcode", json!({"scene": "a=1&b=2", "page": "pages/index/index"}), &service_role())
        .unwrap();
    let image = STANDARD.decode(answer["imgBase64"].as_str().unwrap()).unwrap();
    assert!(image.starts_with(&[0xFF, 0xD8, 0xFF]), "a JPEG");
    assert!(image.windows(7).any(|w| w == b"a=1&b=2"), "the simulator drew this scene");
    let hyaline = rest
        .rpc(
            "wechat_unlimited_qrcode",
            json!({"scene": "x", "is_hyaline": true, "line_color": {"r": 10, "g": 20, "b": 30}, "width": 280}),
            &service_role(),
        )
        .unwrap();
    let png = STANDARD.decode(hyaline["imgBase64"].as_str().unwrap()).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG labelled image/jpeg is still accepted");
    let bytes: Vec<u8> = db
        .superuser()
        .query_one(
            "SELECT auth.wechat_unlimited_qrcode_bytea('id=42', check_path => false, page => 'pages/new/new')",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(bytes.starts_with(&[0xFF, 0xD8, 0xFF]));
    assert_eq!(calls(&db.sim_url(), "/cgi-bin/stable_token"), 1);
}

fn bad_parameters_never_reach_wechat() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let bad: [Value; 9] = [
        json!({"scene": ""}),
        json!({"scene": "x".repeat(33)}),
        json!({"scene": "100%"}),
        json!({"scene": "a", "page": "/pages/index/index"}),
        json!({"scene": "a", "page": "pages/index/index?x=1"}),
        json!({"scene": "a", "width": 1281}),
        json!({"scene": "a", "env_version": "production"}),
        json!({"scene": "a", "line_color": {"r": 0, "g": 0, "b": 256}}),
        json!({"scene": "a", "line_color": {"r": 0}}),
    ];
    for body in bad {
        let error = rest.rpc("wechat_unlimited_qrcode", body.clone(), &service_role()).unwrap_err();
        assert_eq!((error.status, error.error_code().as_str()), (400, "validation_failed"), "{body}");
    }
    assert_eq!(calls(&db.sim_url(), QR) + calls(&db.sim_url(), "/cgi-bin/stable_token"), 0);
}

fn wechat_refusals_are_reported() {
    let db = cluster().database(true);
    let error = db
        .rest()
        .rpc("wechat_unlimited_qrcode", json!({"scene": "a", "page": "pages/unreleased/page"}), &service_role())
        .unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (400, "wechat_invalid_argument"));
    assert_eq!(error.detail_json()["wechat_errcode"], 41030);
}

fn only_service_role_may_call() {
    let db = cluster().database(true);
    let anon = db.rest().rpc("wechat_unlimited_qrcode", json!({"scene": "a"}), &Caller::Anon).unwrap_err();
    assert_eq!(anon.status, 401);
    let user = Caller::Claims(json!({"role": "authenticated", "sub": "00000000-0000-4000-8000-000000000001"}));
    let authenticated = db.rest().rpc("wechat_unlimited_qrcode", json!({"scene": "a"}), &user).unwrap_err();
    assert_eq!(authenticated.status, 403);
    assert!(db.rest().rpc("wechat_unlimited_qrcode", json!({"scene": "a"}), &service_role()).is_ok());
}
