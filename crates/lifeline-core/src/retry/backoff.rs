//! Exponential backoff with full jitter, and `Retry-After` parsing.
//!
//! Full jitter (a uniform draw in `[0, min(max, base × 2^n)]`) spreads
//! retries of many clients that failed together, which is what turns a blip
//! into a retry storm otherwise (AWS Architecture Blog, "Exponential Backoff
//! and Jitter").

use std::time::{Duration, SystemTime};

use http::HeaderMap;

/// The delay before retry number `n` (0-based) of the same deployment.
pub fn full_jitter(base: Duration, max: Duration, n: u32) -> Duration {
    let cap = base
        .saturating_mul(1u32.checked_shl(n.min(20)).unwrap_or(u32::MAX))
        .min(max);
    cap.mul_f64(fastrand::f64())
}

/// `Retry-After` as seconds or an HTTP date; `retry-after-ms` (OpenAI's) wins
/// when present. Capped at one hour so a bogus value cannot park a deployment.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    const CAP: Duration = Duration::from_secs(3600);
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
    {
        if ms.is_finite() && ms >= 0.0 {
            // Clamp before converting: a huge value would not fit a Duration.
            return Some(Duration::from_secs_f64(
                (ms / 1000.0).min(CAP.as_secs_f64()),
            ));
        }
    }
    let v = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(CAP));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO).min(CAP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_under_the_cap() {
        for n in 0..40 {
            let d = full_jitter(Duration::from_millis(50), Duration::from_secs(2), n);
            assert!(d <= Duration::from_secs(2));
            assert!(d <= Duration::from_millis(50) * 2u32.saturating_pow(n.min(20)));
        }
    }

    #[test]
    fn parses_seconds_dates_and_ms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            "7".parse().unwrap_or(http::HeaderValue::from_static("0")),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        h.insert(
            "retry-after",
            date.parse().unwrap_or(http::HeaderValue::from_static("0")),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert(
            "retry-after",
            "soon"
                .parse()
                .unwrap_or(http::HeaderValue::from_static("0")),
        );
        assert_eq!(retry_after(&h, now), None);
        h.insert(
            "retry-after-ms",
            "1500"
                .parse()
                .unwrap_or(http::HeaderValue::from_static("0")),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_millis(1500)));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            "999999"
                .parse()
                .unwrap_or(http::HeaderValue::from_static("0")),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(3600)));
    }
}
