//! Request signing: HMAC-SHA256 over the timestamp and the exact body.
//!
//! Every delivery to a subscription with a secret (every one the admin API
//! creates has one; an empty secret means unsigned) carries two headers:
//!
//! ```text
//! X-Lifeline-Timestamp: 1787480640
//! X-Lifeline-Signature: sha256=5d0c…(64 lowercase hex digits)
//! ```
//!
//! The signature is `HMAC-SHA256(secret, "{timestamp}.{body}")`: the
//! timestamp header's decimal text, one `.`, then the request body's bytes
//! exactly as received (before any JSON parsing or re-encoding). The
//! timestamp is the Unix time in seconds when the attempt was sent; each
//! retry is signed afresh with its own timestamp, over the same body.
//!
//! A receiver verifies by:
//!
//! 1. reading both headers and the raw body;
//! 2. rejecting the request when the timestamp is more than a few minutes
//!    (Lifeline's [`verify`] uses the caller's tolerance, 5 minutes is usual)
//!    away from its own clock: a captured request cannot be replayed later,
//!    because changing the timestamp breaks the signature;
//! 3. computing `HMAC-SHA256(secret, timestamp + "." + body)`, hex-encoding
//!    it in lowercase and comparing it with the header's value after
//!    `sha256=` in constant time.
//!
//! Deliveries also carry `X-Lifeline-Delivery` (the delivery's id, the same
//! on every retry), so a receiver can drop duplicates.
//!
//! Secrets are [`Secret`]s: their `Debug` output is redacted, so they never
//! reach a log through a `{:?}`.

use hmac::digest::{Key, KeyInit};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Header with the Unix time (seconds) the attempt was signed at.
pub const TIMESTAMP_HEADER: &str = "x-lifeline-timestamp";

/// Header with `sha256=` and the hex HMAC-SHA256 of `"{timestamp}.{body}"`.
pub const SIGNATURE_HEADER: &str = "x-lifeline-signature";

/// Header with the delivery's id, the same on every retry.
pub const DELIVERY_HEADER: &str = "x-lifeline-delivery";

/// A subscription's signing secret. `Debug` prints `Secret(redacted)`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

fn mac(secret: &Secret, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    // RFC 2104's key preparation (a key longer than the block is hashed, a
    // shorter one zero-padded), done here so that construction cannot fail.
    let secret = secret.0.as_bytes();
    let mut key = Key::<Hmac<Sha256>>::default();
    if secret.len() > key.len() {
        let hashed = Sha256::digest(secret);
        key[..hashed.len()].copy_from_slice(&hashed);
    } else {
        key[..secret.len()].copy_from_slice(secret);
    }
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&key);
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-Lifeline-Signature` value for `body` sent at `timestamp_s`
/// (Unix seconds): `sha256=` and 64 lowercase hex digits.
pub fn signature(secret: &Secret, timestamp_s: i64, body: &[u8]) -> String {
    let tag = mac(secret, &timestamp_s.to_string(), body)
        .finalize()
        .into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for byte in tag {
        out.push(HEX[usize::from(byte >> 4)]);
        out.push(HEX[usize::from(byte & 0x0f)]);
    }
    out
}

const HEX: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'a', 'b', 'c', 'd', 'e', 'f',
];

/// Checks a received request the way the module docs describe: the
/// timestamp header is within `tolerance_s` seconds of `now_s`, and the
/// signature header matches the body (compared in constant time).
pub fn verify(
    secret: &Secret,
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now_s: i64,
    tolerance_s: i64,
) -> bool {
    let Ok(timestamp) = timestamp_header.parse::<i64>() else {
        return false;
    };
    if (now_s - timestamp).abs() > tolerance_s {
        return false;
    }
    let Some(hex) = signature_header.strip_prefix("sha256=") else {
        return false;
    };
    let Some(tag) = decode_hex(hex) else {
        return false;
    };
    mac(secret, timestamp_header, body)
        .verify_slice(&tag)
        .is_ok()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() & 1 == 1 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    hex.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}
