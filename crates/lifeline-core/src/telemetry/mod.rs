//! Observability: Prometheus metrics, the status page's SLI counters and
//! request ids.
//!
//! Metric names live in one place, [`Metrics`], so that dashboards have one
//! file to read. Label values are `Arc<str>` taken from the live config, so
//! recording a metric on the hot path allocates nothing. The SLI counters
//! ([`sli`]) are plain atomics the status side samples.

pub mod admission;
mod metrics;
pub mod quota;
pub mod sli;

pub use metrics::{AttemptLabels, KeyCounters, Metrics, ModelLabels, StreamLabels};
pub use sli::{
    DeploymentCounts, DeploymentSli, DeploymentTotals, FamilySli, ModelSli, ModelTotals, SliCounts,
    SliTotals, StreamEnding,
};

use http::{HeaderName, HeaderValue};

/// `x-request-id`, prebuilt: a header name given as a string is parsed on
/// every use, and these are used on every request.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `x-lifeline-deployment`: which deployment answered.
pub const X_LIFELINE_DEPLOYMENT: HeaderName = HeaderName::from_static("x-lifeline-deployment");
/// `x-lifeline-attempts`: how many attempts the answer took.
pub const X_LIFELINE_ATTEMPTS: HeaderName = HeaderName::from_static("x-lifeline-attempts");
/// `keep-alive`, a hop-by-hop header never relayed.
pub const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// The request's id: the client's `x-request-id` when it is sane (1 to 128
/// visible ASCII characters), otherwise a fresh random one.
pub fn request_id(given: Option<&HeaderValue>) -> HeaderValue {
    if let Some(v) = given {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic()) {
            return v.clone();
        }
    }
    // Hex by hand: this runs on every request, and `format!` costs more than
    // the rest of the id put together.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = *b"req_00000000000000000000000000000000";
    let n = fastrand::u128(..);
    for (i, b) in buf[4..].iter_mut().enumerate() {
        *b = HEX[((n >> (4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static("req_unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sane_ids_and_replaces_others() {
        let given = HeaderValue::from_static("abc-123");
        assert_eq!(request_id(Some(&given)), "abc-123");
        let bad = HeaderValue::from_static("has space");
        assert_ne!(request_id(Some(&bad)), "has space");
        let fresh = request_id(None);
        assert!(fresh.to_str().unwrap_or("").starts_with("req_"));
        assert_ne!(request_id(None), fresh);
    }
}
