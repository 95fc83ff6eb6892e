//! `POST .../embeddings`: deterministic unit vectors.
//!
//! Each vector is seeded from its input, so the same text always embeds the
//! same way (tests can compare answers from two mocks, or before and after a
//! failover). Official SDKs ask for `encoding_format: "base64"` by default, so
//! that format (little-endian `f32`s) is supported as well as float arrays.

use base64::Engine as _;
use http::{Response, StatusCode};

use crate::body::MockBody;
use crate::reply::{error_response, Ctx};

const DEFAULT_DIMENSIONS: usize = 16;
const MAX_DIMENSIONS: usize = 65_536;

/// One input to embed: its seed text and its token count.
struct Input {
    seed: String,
    tokens: u64,
}

pub(crate) fn answer(ctx: Ctx) -> Response<MockBody> {
    let inputs = match parse_inputs(ctx.json.get("input")) {
        Some(inputs) => inputs,
        None => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "'input' must be a string, an array of strings, or an array of token arrays",
                "invalid_request_error",
                None,
                Some(ctx.guard),
            )
        }
    };
    let dimensions = ctx
        .json
        .get("dimensions")
        .and_then(serde_json::Value::as_u64)
        .map_or(DEFAULT_DIMENSIONS, |d| {
            (d as usize).clamp(1, MAX_DIMENSIONS)
        });
    let base64 = ctx
        .json
        .get("encoding_format")
        .and_then(serde_json::Value::as_str)
        == Some("base64");
    let mut prompt_tokens = 0u64;
    let data: Vec<serde_json::Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            prompt_tokens += input.tokens;
            let vector = embed(&input.seed, dimensions);
            let embedding = if base64 {
                serde_json::Value::String(encode_base64(&vector))
            } else {
                serde_json::json!(vector)
            };
            serde_json::json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    let body = serde_json::json!({
        "object": "list",
        "data": data,
        "model": ctx.model(),
        "usage": { "prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens },
    });
    ctx.json_reply(StatusCode::OK, &body)
}

fn parse_inputs(input: Option<&serde_json::Value>) -> Option<Vec<Input>> {
    use serde_json::Value;
    let text = |s: &str| Input {
        seed: s.to_owned(),
        tokens: (s.len() as u64 / 4).max(1),
    };
    let token_array = |items: &[Value]| -> Option<Input> {
        items.iter().all(Value::is_u64).then(|| Input {
            seed: Value::Array(items.to_vec()).to_string(),
            tokens: items.len() as u64,
        })
    };
    match input? {
        Value::String(s) => Some(vec![text(s)]),
        Value::Array(items) if items.is_empty() => None,
        Value::Array(items) if items.iter().all(Value::is_u64) => Some(vec![token_array(items)?]),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Some(text(s)),
                Value::Array(tokens) => token_array(tokens),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// A unit-length vector seeded from `seed` (FNV-1a of its bytes).
pub(crate) fn embed(seed: &str, dimensions: usize) -> Vec<f32> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in seed.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let mut rng = fastrand::Rng::with_seed(hash);
    let mut vector: Vec<f32> = (0..dimensions).map(|_| rng.f32() * 2.0 - 1.0).collect();
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in &mut vector {
            *x /= norm;
        }
    }
    vector
}

fn encode_base64(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
