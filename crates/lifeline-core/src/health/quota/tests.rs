use std::time::Duration;

use super::*;

const BUCKET: Duration = Duration::from_secs(10);
const HORIZON: Duration = Duration::from_secs(15 * 60);

fn settings(rpm: Option<u64>, tpm: Option<u64>) -> QuotaSettings {
    QuotaSettings {
        rpm,
        tpm,
        horizon: HORIZON,
        bucket: BUCKET,
    }
}

/// Requests per bucket for a rate per minute.
fn per_bucket(rpm: f64) -> u64 {
    (rpm * BUCKET.as_secs_f64() / 60.0).round() as u64
}

/// A deterministic jitter in [-1, 1).
struct Jitter(u64);

impl Jitter {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
}

#[test]
fn a_straight_line_is_fitted_exactly() {
    let mut t = Trend::default();
    for i in 0..20 {
        t.push(100.0 + 5.0 * f64::from(i));
    }
    for i in 20..30 {
        t.push(100.0 + 5.0 * f64::from(i));
    }
    // The window holds the last 24: 130 ..= 245.
    let fit = t.fit();
    assert!((fit.level - 245.0).abs() < 1e-9, "{fit:?}");
    assert!((fit.slope - 5.0).abs() < 1e-9, "{fit:?}");
    assert!((fit.rising - 5.0).abs() < 1e-9, "{fit:?}");
}

#[test]
fn too_few_buckets_give_no_slope() {
    let mut t = Trend::default();
    t.push(100.0);
    t.push(200.0);
    assert_eq!(
        t.fit(),
        Fit {
            level: 150.0,
            slope: 0.0,
            rising: 0.0
        }
    );
    assert_eq!(Trend::default().fit().level, 0.0);
}

#[test]
fn seconds_to_quota_follows_the_line() {
    let rising = Fit {
        level: 300.0,
        slope: 7.0,
        rising: 6.0,
    };
    // (600 - 300) / 6 = 50 buckets of 10 s.
    assert_eq!(seconds_to_quota(rising, 600.0, BUCKET), Some(500.0));
    let over = Fit {
        level: 700.0,
        slope: -1.0,
        rising: 0.0,
    };
    assert_eq!(seconds_to_quota(over, 600.0, BUCKET), Some(0.0));
    let flat = Fit {
        level: 300.0,
        slope: 0.0,
        rising: 0.0,
    };
    assert_eq!(seconds_to_quota(flat, 600.0, BUCKET), None);
}

/// A steady ramp (with a little jitter): the forecast names the time the
/// ramp reaches the quota, within a bucket or two, and warns once that
/// time is under the horizon.
#[test]
fn a_steady_ramp_is_forecast_and_warns_under_the_horizon() {
    let mut f = Forecaster::new(settings(Some(6000), None));
    let mut jitter = Jitter(7);
    // From 600 rpm, +30 rpm per bucket (180 rpm a minute): 6000 rpm after
    // 180 buckets, 30 minutes.
    let rate = |b: u32| 600.0 + 30.0 * f64::from(b);
    let mut warned_at = None;
    for b in 0..150u32 {
        let n = (per_bucket(rate(b)) as f64 + jitter.next()).max(0.0) as u64;
        let step = f.close([n, 0], BUCKET);
        let k = step.kinds[0].unwrap_or_else(|| panic!("no forecast at bucket {b}"));
        if b >= 20 {
            let truth = (180.0 - f64::from(b)) * BUCKET.as_secs_f64();
            let got = k
                .seconds_to_quota
                .unwrap_or_else(|| panic!("no forecast at bucket {b}: {k:?}"));
            assert!(
                (got - truth).abs() <= 0.1 * truth + 30.0,
                "bucket {b}: forecast {got} s, truth {truth} s"
            );
        }
        if step.changed == Some(true) {
            warned_at.get_or_insert(b);
        }
        // Far from the quota, no warning yet.
        if b < 60 {
            assert!(!step.warning, "warned at bucket {b}: {step:?}");
        }
    }
    // 15 minutes before bucket 180 is bucket 90.
    let at = warned_at.unwrap_or_else(|| panic!("never warned"));
    assert!((80..=100).contains(&at), "warned at bucket {at}");
}

/// Flat traffic under the quota, however it jitters: no forecast, no
/// warning, no steering.
#[test]
fn flat_traffic_under_the_quota_never_warns() {
    let mut f = Forecaster::new(settings(Some(600), Some(800_000)));
    let mut jitter = Jitter(42);
    for b in 0..2000 {
        // 420 rpm (70 a bucket) ± 15, ~1000 tokens each ± 10 %.
        let n = (70.0 + 15.0 * jitter.next()) as u64;
        let tokens = n * (1000.0 + 100.0 * jitter.next()) as u64;
        let step = f.close([n, tokens], BUCKET);
        assert!(!step.warning, "bucket {b}: {step:?}");
        assert_eq!(step.factor, 1.0, "bucket {b}: {step:?}");
    }
}

/// Traffic that climbs past the headroom, then falls: the factor drops
/// while it climbs and is back at 1 after it fell; the warning starts and
/// ends.
#[test]
fn a_falling_trend_recovers() {
    let mut f = Forecaster::new(settings(Some(600), None));
    let mut changes = Vec::new();
    let mut lowest: f64 = 1.0;
    // Up from 100 to 700 rpm over 60 buckets, down to 100 over 60.
    for b in 0..200i32 {
        let rpm = match b {
            0..60 => 100.0 + 10.0 * f64::from(b),
            60..120 => 700.0 - 10.0 * f64::from(b - 60),
            _ => 100.0,
        };
        let step = f.close([per_bucket(rpm), 0], BUCKET);
        lowest = lowest.min(step.factor);
        if let Some(c) = step.changed {
            changes.push((b, c));
        }
    }
    assert!(lowest < 0.9, "the factor never fell: {lowest}");
    assert_eq!(f.factor(), 1.0);
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(changes[0].1 && !changes[1].1, "{changes:?}");
    assert!(changes[0].0 < 50, "warned late: {changes:?}");
}

/// Steering in a loop: the provider gets `factor` of a demand that climbs
/// past its quota (the balancer's share, simplified to proportional). The
/// rate it sees stays under its quota, near the headroom, and it gets the
/// whole demand back when the demand falls.
#[test]
fn steering_keeps_the_rate_under_the_quota() {
    let mut f = Forecaster::new(settings(Some(600), None));
    let mut factor = 1.0;
    for b in 0..400i32 {
        let demand = match b {
            0..100 => 200.0 + 8.0 * f64::from(b),
            100..200 => 1000.0,
            200..300 => 1000.0 - 8.0 * f64::from(b - 200),
            _ => 200.0,
        };
        let sent = demand * factor;
        assert!(
            sent < 600.0,
            "bucket {b}: {sent} rpm sent at factor {factor}"
        );
        let step = f.close([per_bucket(sent), 0], BUCKET);
        factor = step.factor;
        if (150..200).contains(&b) {
            assert!(
                sent > 0.7 * 600.0,
                "bucket {b}: only {sent} rpm, steered too far"
            );
        }
    }
    assert_eq!(factor, 1.0);
}

/// A token quota is forecast like a request quota, and a kind without a
/// quota forecasts nothing.
#[test]
fn the_token_quota_is_forecast_alone() {
    let mut f = Forecaster::new(settings(None, Some(100_000)));
    let mut last = None;
    for b in 0..40u64 {
        // 1000 tokens a request, +1 request a bucket.
        let n = 10 + b;
        last = Some(f.close([n, n * 1000], BUCKET));
    }
    let step = last.unwrap_or_else(|| panic!("no step"));
    assert!(step.kinds[0].is_none());
    let k = step.kinds[1].unwrap_or_else(|| panic!("no token forecast"));
    assert_eq!(k.kind, QuotaKind::Tokens);
    assert_eq!(step.nearest(), Some(k));
    // 49 a bucket (294 000 tokens a minute) is over the quota already.
    assert_eq!(k.seconds_to_quota, Some(0.0));
    assert!(step.warning && step.factor < 1.0, "{step:?}");
}

#[tokio::test(start_paused = true)]
async fn the_meter_closes_a_bucket_once_it_is_due() {
    let s = settings(Some(60), None);
    let m = QuotaMeter::new(s, Instant::now());
    assert_eq!(m.factor(), 1.0);
    assert_eq!(m.settings(), s);
    for _ in 0..30 {
        m.sent(100);
    }
    tokio::time::advance(BUCKET / 2).await;
    assert!(m.poll(Instant::now()).is_none());
    tokio::time::advance(BUCKET / 2).await;
    let due = m.due();
    let step = m
        .poll(Instant::now())
        .unwrap_or_else(|| panic!("the bucket is due"));
    // 30 requests in 10 s: 180 a minute, three times the quota.
    let k = step.kinds[0].unwrap_or_else(|| panic!("no forecast"));
    assert!((k.rate - 180.0).abs() < 1e-9, "{k:?}");
    assert_eq!(k.seconds_to_quota, Some(0.0));
    assert!(step.warning);
    assert_eq!(m.factor(), step.factor);
    assert!(m.factor() < 1.0);
    // The counters started again, and the next bucket is due a bucket on.
    assert!(m.due() > due);
    assert!(m.poll(Instant::now()).is_none());
    m.reconfigure(settings(Some(600), None));
    assert_eq!(m.settings().rpm, Some(600));
}

/// A Poisson draw of mean `mean` (Knuth's method; means here are small).
fn poisson(rng: &mut Jitter, mean: f64) -> u64 {
    let limit = (-mean).exp();
    let mut p = 1.0;
    let mut n = 0;
    loop {
        p *= (rng.next() + 1.0) / 2.0;
        if p <= limit {
            return n;
        }
        n += 1;
    }
}

/// Random (Poisson) traffic at 10 to 50 % of a small request quota, with
/// short and default buckets: one request in a short bucket reads as a
/// rate far over the quota, but steering reads the steady rate (at least a
/// minute) and never moves traffic, over hours.
#[test]
fn low_rpm_noisy_traffic_is_never_steered() {
    let cases = [
        // (rpm, bucket ms, minutes run)
        (60, 100, 30),
        (10, 10_000, 600),
        (30, 10_000, 600),
        (120, 1_000, 120),
        (600, 100, 30),
    ];
    for (rpm, bucket_ms, minutes) in cases {
        let bucket = Duration::from_millis(bucket_ms);
        for share in [0.1, 0.3, 0.5] {
            let mut f = Forecaster::new(QuotaSettings {
                rpm: Some(rpm),
                tpm: Some(rpm * 2000),
                horizon: HORIZON,
                bucket,
            });
            let mut rng = Jitter(rpm ^ bucket_ms ^ (share * 100.0) as u64);
            let mean = rpm as f64 * share * bucket.as_secs_f64() / 60.0;
            let buckets = minutes * 60_000 / bucket_ms;
            for b in 0..buckets {
                let n = poisson(&mut rng, mean);
                let tokens = n * (1000.0 + 500.0 * rng.next()) as u64;
                let step = f.close([n, tokens], bucket);
                assert_eq!(
                    step.factor, 1.0,
                    "rpm {rpm}, bucket {bucket_ms} ms, {share} of the quota: steered at bucket {b}: {step:?}"
                );
            }
        }
    }
}

/// The same small quota is still defended: traffic at twice the quota is
/// steered within a minute, even with 100 ms buckets.
#[test]
fn low_rpm_traffic_over_the_quota_is_steered() {
    let bucket = Duration::from_millis(100);
    let mut f = Forecaster::new(QuotaSettings {
        rpm: Some(60),
        tpm: None,
        horizon: HORIZON,
        bucket,
    });
    let mut rng = Jitter(3);
    let mut steered = None;
    for b in 0..1200u32 {
        // 120 a minute: 0.2 a bucket.
        let step = f.close([poisson(&mut rng, 0.2), 0], bucket);
        if step.factor < 1.0 {
            steered.get_or_insert(b);
        }
    }
    let at = steered.unwrap_or_else(|| panic!("never steered"));
    assert!(at <= 600, "steered only at bucket {at}");
    assert!(f.factor() < 0.5, "{}", f.factor());
}

/// Tokens counted at the request's allowance are corrected by what the
/// answer used: in the open bucket, or carried into the next one when the
/// bucket closed meanwhile.
#[tokio::test(start_paused = true)]
async fn the_meter_takes_the_unused_allowance_back() {
    let m = QuotaMeter::new(settings(None, Some(100_000)), Instant::now());
    // 20 requests at a 64 000-token allowance that used 2 000 each.
    for _ in 0..20 {
        m.sent(64_000);
        m.used(64_000, 2_000);
    }
    // One more still running when the bucket closes.
    m.sent(64_000);
    tokio::time::advance(BUCKET).await;
    let step = m.poll(Instant::now()).unwrap_or_else(|| panic!("due"));
    let k = step.kinds[1].unwrap_or_else(|| panic!("no token forecast"));
    // 40 000 + 64 000 tokens in 10 s.
    assert!((k.recent - 104_000.0 * 6.0).abs() < 1e-6, "{k:?}");
    // It ends, having used 1 000: 63 000 come off the next bucket.
    m.used(64_000, 1_000);
    m.sent(64_000);
    m.used(64_000, 3_000);
    tokio::time::advance(BUCKET).await;
    let step = m.poll(Instant::now()).unwrap_or_else(|| panic!("due"));
    let k = step.kinds[1].unwrap_or_else(|| panic!("no token forecast"));
    // 3 000 − 63 000 < 0: the bucket counts 0 and the rest carries on.
    assert_eq!(k.recent, 0.5 * 104_000.0 * 6.0, "{k:?}");
    tokio::time::advance(BUCKET).await;
    m.sent(10_000);
    let step = m.poll(Instant::now()).unwrap_or_else(|| panic!("due"));
    let k = step.kinds[1].unwrap_or_else(|| panic!("no token forecast"));
    // 10 000 − 60 000 < 0 again.
    assert_eq!(k.recent, 0.25 * 104_000.0 * 6.0, "{k:?}");
    // A use over the estimate is not charged (the allowance bounds it).
    m.used(100, 5_000);
}
