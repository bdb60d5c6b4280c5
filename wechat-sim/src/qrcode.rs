//! `POST /wxa/getwxacodeunlimit?access_token=`: unlimited mini-program codes. Errors are JSON
//! with HTTP 200; success is raw image bytes: a JPEG, or with `is_hyaline` a PNG that is still
//! labelled `image/jpeg` (so clients must sniff the bytes). `X-Mock-Scene` echoes the scene.

use crate::http::{Request, Response};
use crate::{token, wechat_error, State};

const JSON: &str = "application/json; encoding=utf-8";
/// Pages the simulated app has released (what `check_path: true` accepts).
pub const RELEASED_PAGES: [&str; 2] = ["pages/index/index", "pages/user/user"];
const SCENE_PUNCTUATION: &str = "!#$&'()*+,/:;=?@-._~";

pub fn get_unlimited(state: &State, req: &Request) -> Response {
    let body = match token::checked_json_body(state, req) {
        Ok((body, _appid)) => body,
        Err(refusal) => return refusal,
    };
    let scene = body.get("scene").and_then(|v| v.as_str()).unwrap_or_default();
    if scene.is_empty() || scene.len() > 32 {
        return wechat_error(JSON, 40169, "invalid length for scene, or the data is not json string");
    }
    if !scene.chars().all(|c| c.is_ascii_alphanumeric() || SCENE_PUNCTUATION.contains(c)) {
        return wechat_error(JSON, 40129, "invalid scene");
    }
    let page = body.get("page").and_then(|v| v.as_str());
    if let Some(page) = page {
        if page.starts_with('/') || page.contains('?') {
            return wechat_error(JSON, 41030, "invalid page");
        }
        if page.contains("scancode_time") {
            return wechat_error(JSON, 85096, "scancode_time not allowed");
        }
        let check_path = body.get("check_path").and_then(|v| v.as_bool()).unwrap_or(true);
        if check_path && !RELEASED_PAGES.contains(&page) {
            return wechat_error(JSON, 41030, "invalid page");
        }
    }
    let env_ok =
        body.get("env_version").and_then(|v| v.as_str()).is_none_or(|e| ["release", "trial", "develop"].contains(&e));
    let width_ok = body.get("width").and_then(|v| v.as_i64()).is_none_or(|w| (280..=1280).contains(&w));
    if !env_ok || !width_ok {
        return wechat_error(JSON, 40097, "invalid args");
    }
    if !crate::take_qrcode(state) {
        return wechat_error(JSON, 45009, "reach max api daily quota limit");
    }
    let hyaline = body.get("is_hyaline").and_then(|v| v.as_bool()).unwrap_or(false);
    let mut image = if hyaline { PNG.to_vec() } else { JPEG.to_vec() };
    // Make each image depend on its request, so tests can tell two codes apart.
    image.splice(image.len() - 2..image.len() - 2, scene.bytes());
    let mut response = Response::raw(200, "image/jpeg", image);
    response.headers.push(("X-Mock-Scene", scene.to_string()));
    response
}

/// The start of a JFIF JPEG; the scene goes before the end-of-image marker.
const JPEG: [u8; 22] = [
    0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00,
    0x00, 0xFF, 0xD9,
];
/// A PNG signature and IHDR start, ending in two bytes the scene goes before.
const PNG: [u8; 18] =
    [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, b'I', b'H', b'D', b'R', 0x00, 0x00];
