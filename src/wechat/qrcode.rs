//! `getwxacodeunlimit`: unlimited mini-program codes. Parameters are checked here before any
//! call; the answer is told apart by its bytes (an image's magic number, or a JSON error),
//! not by its Content-Type alone.

use super::{check_errcode, classify_common, parse_json, post_json_limited, url};
use crate::apps::App;
use crate::error::{AuthError, WechatAnswer};
use serde_json::{json, Value};

/// WeChat's codes are tens of kilobytes; a 1280-pixel one stays far below this.
const IMAGE_LIMIT: u64 = 2 * 1024 * 1024;
const SCENE_PUNCTUATION: &[u8] = b"!#$&'()*+,/:;=?@-._~";

/// The request, as `auth.wechat_unlimited_qrcode` takes it.
pub struct Params<'a> {
    pub scene: Option<&'a str>,
    pub page: Option<&'a str>,
    pub check_path: bool,
    pub env_version: &'a str,
    pub width: i32,
    pub auto_color: bool,
    pub line_color: Option<Value>,
    pub is_hyaline: bool,
}

impl<'a> Params<'a> {
    /// A code of `scene` opening `page`, with WeChat's defaults for the rest (those
    /// `auth.wechat_unlimited_qrcode` declares).
    pub fn of(scene: &'a str, page: Option<&'a str>) -> Params<'a> {
        Params {
            scene: Some(scene),
            page,
            check_path: true,
            env_version: "release",
            width: 430,
            auto_color: false,
            line_color: None,
            is_hyaline: false,
        }
    }
}

/// The body WeChat expects, or why the parameters can never work.
pub fn request_body(p: &Params) -> Result<Value, AuthError> {
    let scene = p.scene.unwrap_or_default();
    if scene.is_empty()
        || scene.len() > 32
        || !scene.bytes().all(|b| b.is_ascii_alphanumeric() || SCENE_PUNCTUATION.contains(&b))
    {
        return Err(AuthError::InvalidInput(
            "scene must be 1 to 32 characters of 0-9 A-Z a-z and !#$&'()*+,/:;=?@-._~",
        ));
    }
    if let Some(page) = p.page {
        check_page(page)?;
    }
    if !["release", "trial", "develop"].contains(&p.env_version) {
        return Err(AuthError::InvalidInput("env_version must be release, trial or develop"));
    }
    if !(280..=1280).contains(&p.width) {
        return Err(AuthError::InvalidInput("width must be between 280 and 1280"));
    }
    let mut body = json!({
        "scene": scene,
        "check_path": p.check_path,
        "env_version": p.env_version,
        "width": p.width,
        "auto_color": p.auto_color,
        "is_hyaline": p.is_hyaline,
    });
    if let Some(page) = p.page {
        body["page"] = json!(page);
    }
    if let Some(color) = &p.line_color {
        body["line_color"] = line_color(color)?;
    }
    Ok(body)
}

/// A page as WeChat takes it: a path like `pages/index/index`, without a leading `/` or a query.
pub fn check_page(page: &str) -> Result<(), AuthError> {
    if page.is_empty() || page.starts_with('/') || page.contains('?') || page.len() > 256 {
        return Err(AuthError::InvalidInput("page must be a path like pages/index/index: no leading /, no query"));
    }
    Ok(())
}

/// `{"r": 0-255, "g": 0-255, "b": 0-255}`, sent as numbers.
fn line_color(color: &Value) -> Result<Value, AuthError> {
    const WHY: &str = "line_color must be {\"r\": 0-255, \"g\": 0-255, \"b\": 0-255}";
    let channel = |name: &str| {
        color.get(name).and_then(Value::as_i64).filter(|v| (0..=255).contains(v)).ok_or(AuthError::InvalidInput(WHY))
    };
    if color.as_object().is_none_or(|o| o.len() != 3) {
        return Err(AuthError::InvalidInput(WHY));
    }
    Ok(json!({"r": channel("r")?, "g": channel("g")?, "b": channel("b")?}))
}

/// Fetches the code's image bytes, asked with the app's access token.
pub fn unlimited(app: &App, body: &Value, access_token: &str) -> Result<Vec<u8>, AuthError> {
    let url = url("/wxa/getwxacodeunlimit", &[("access_token", access_token)])?;
    let response = post_json_limited(app, url, body, IMAGE_LIMIT)?;
    image_or_error(&response.content_type, response.body).map_err(|e| e.for_app(app.default))
}

fn classify(answer: WechatAnswer) -> AuthError {
    match answer.errcode {
        40129 | 40169 | 41030 | 85096 | 40097 | 47001 => AuthError::WechatRejectedArgument(answer),
        _ => classify_common(answer),
    }
}

/// A JPEG or PNG by its magic bytes; a JSON error by its first byte or its JSON label.
fn image_or_error(content_type: &str, body: Vec<u8>) -> Result<Vec<u8>, AuthError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if first == Some(b'{') || content_type.starts_with("application/json") || content_type.starts_with("text/") {
        let answer = parse_json(&body)?;
        check_errcode(&answer, classify)?;
        return Err(AuthError::WechatBadResponse("JSON without an image"));
    }
    if body.starts_with(&[0xFF, 0xD8, 0xFF]) || body.starts_with(&[0x89, b'P', b'N', b'G']) {
        Ok(body)
    } else {
        Err(AuthError::WechatBadResponse("a body that is neither an image nor JSON"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params<'a>() -> Params<'a> {
        Params::of("a=1", None)
    }

    #[test]
    fn builds_the_body_with_explicit_booleans() {
        let body = request_body(&Params { page: Some("pages/index/index"), check_path: false, ..params() }).unwrap();
        assert_eq!(body["check_path"], false);
        assert_eq!(body["page"], "pages/index/index");
        assert!(body.get("line_color").is_none());
        let colored =
            request_body(&Params { line_color: Some(json!({"r": 1, "g": 2, "b": 255})), ..params() }).unwrap();
        assert_eq!(colored["line_color"], json!({"r": 1, "g": 2, "b": 255}));
    }

    #[test]
    fn refuses_impossible_parameters() {
        let bad = [
            Params { scene: None, ..params() },
            Params { scene: Some(""), ..params() },
            Params { scene: Some(&"a".repeat(33)), ..params() },
            Params { scene: Some("a%20b"), ..params() },
            Params { scene: Some("中文"), ..params() },
            Params { page: Some("/pages/index/index"), ..params() },
            Params { page: Some("pages/index/index?a=1"), ..params() },
            Params { env_version: "prod", ..params() },
            Params { width: 279, ..params() },
            Params { width: 1281, ..params() },
            Params { line_color: Some(json!({"r": 256, "g": 0, "b": 0})), ..params() },
            Params { line_color: Some(json!({"r": 0, "g": 0})), ..params() },
            Params { line_color: Some(json!("red")), ..params() },
        ];
        for p in bad {
            assert!(matches!(request_body(&p), Err(AuthError::InvalidInput(_))));
        }
    }

    #[test]
    fn tells_images_from_errors_by_their_bytes() {
        let jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2];
        assert_eq!(image_or_error("image/jpeg", jpeg.clone()), Ok(jpeg));
        let png = vec![0x89, b'P', b'N', b'G', 0x0D];
        assert_eq!(image_or_error("image/jpeg", png.clone()), Ok(png), "a PNG labelled JPEG");
        let error = br#"{"errcode":41030,"errmsg":"invalid page"}"#.to_vec();
        assert!(matches!(image_or_error("image/jpeg", error), Err(AuthError::WechatRejectedArgument(_))));
        assert!(matches!(image_or_error("image/jpeg", b"GIF89a".to_vec()), Err(AuthError::WechatBadResponse(_))));
    }
}
