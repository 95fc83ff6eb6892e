//! `POST .../images/generations`: `n` copies of a valid 1x1 PNG.
//!
//! A real (tiny) PNG lets clients that decode the image succeed; `url` answers
//! point back at this mock's `/_mock/image.png`, so URL downloads work too.

use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use crate::body::MockBody;
use crate::reply::{unix_now, Ctx};

/// A 1x1 transparent RGBA PNG, chunk CRCs checked.
pub(crate) const PNG_1X1: &[u8] = &[
    137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0,
    0, 0, 31, 21, 196, 137, 0, 0, 0, 13, 73, 68, 65, 84, 120, 218, 99, 100, 96, 248, 95, 15, 0, 2,
    135, 1, 128, 235, 71, 186, 146, 0, 0, 0, 0, 73, 69, 78, 68, 174, 66, 96, 130,
];

const MAX_IMAGES: u64 = 10;

pub(crate) fn answer(ctx: Ctx) -> Response<MockBody> {
    let n = ctx
        .json
        .get("n")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(1)
        .clamp(1, MAX_IMAGES);
    let as_url = ctx
        .json
        .get("response_format")
        .and_then(serde_json::Value::as_str)
        == Some("url");
    let prompt = ctx
        .json
        .get("prompt")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let image = if as_url {
        serde_json::json!({ "url": format!("{}/_mock/image.png", ctx.base), "revised_prompt": prompt })
    } else {
        let b64 = base64::engine::general_purpose::STANDARD.encode(PNG_1X1);
        serde_json::json!({ "b64_json": b64, "revised_prompt": prompt })
    };
    let data: Vec<serde_json::Value> = (0..n).map(|_| image.clone()).collect();
    let input_tokens = ctx.prompt_tokens();
    let body = serde_json::json!({
        "created": unix_now(),
        "data": data,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": n,
            "total_tokens": u64::from(input_tokens) + n,
        },
    });
    ctx.json_reply(StatusCode::OK, &body)
}

/// `GET /_mock/image.png`.
pub(crate) fn png_response() -> Response<MockBody> {
    let mut response = Response::new(MockBody::full(Bytes::from_static(PNG_1X1), None));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    response
}
