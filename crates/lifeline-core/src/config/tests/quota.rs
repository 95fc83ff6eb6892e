//! A provider's quotas: `rpm`, `tpm`, `quota_horizon_ms`, `quota_bucket_ms`.

use super::*;

#[test]
fn quotas_are_read_with_their_defaults() {
    let c = parse(&with_models(&[
        "[[providers]]",
        "name = \"a\"",
        "kind = \"mock\"",
        "rpm = 600",
        "[[providers]]",
        "name = \"b\"",
        "kind = \"mock\"",
        "tpm = 90000",
        "quota_horizon_ms = 60000",
        "quota_bucket_ms = 250",
    ]));
    let a = c.providers[0].quota.clone().unwrap();
    assert_eq!(
        a,
        QuotaConfig {
            rpm: Some(600),
            tpm: None,
            horizon: Duration::from_secs(15 * 60),
            bucket: Duration::from_secs(10),
        }
    );
    let b = c.providers[1].quota.clone().unwrap();
    assert_eq!((b.rpm, b.tpm), (None, Some(90_000)));
    assert_eq!(b.horizon, Duration::from_secs(60));
    assert_eq!(b.bucket, Duration::from_millis(250));
    // The tail's provider has none.
    assert_eq!(c.providers[2].quota, None);
}

#[test]
fn quotas_must_be_positive_and_their_timings_need_one() {
    let e = errors(&with_models(&[
        "[[providers]]",
        "name = \"a\"",
        "kind = \"mock\"",
        "rpm = 0",
        "tpm = 0",
        "[[providers]]",
        "name = \"b\"",
        "kind = \"mock\"",
        "rpm = 10",
        "quota_horizon_ms = 0",
        "quota_bucket_ms = 50",
        "[[providers]]",
        "name = \"c\"",
        "kind = \"mock\"",
        "quota_horizon_ms = 1000",
        "quota_bucket_ms = 1000",
    ]));
    assert_eq!(e.len(), 6, "{e:#?}");
    assert_has(&e, 4, "providers[0].rpm", "positive");
    assert_has(&e, 5, "providers[0].tpm", "positive");
    assert_has(&e, 10, "providers[1].quota_horizon_ms", "above 0");
    assert_has(
        &e,
        11,
        "providers[1].quota_bucket_ms",
        "between 100 and 60000",
    );
    assert_has(&e, 15, "providers[2].quota_horizon_ms", "rpm or tpm");
    assert_has(&e, 16, "providers[2].quota_bucket_ms", "rpm or tpm");
    // A negative number is not a count at all.
    let e = errors(&with_models(&[
        "[[providers]]",
        "name = \"a\"",
        "kind = \"mock\"",
        "rpm = -5",
    ]));
    assert!(!e.is_empty());
}
