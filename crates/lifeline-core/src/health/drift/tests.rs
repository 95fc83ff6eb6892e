//! The detector against synthetic series: steady climbs, noise, recovery.

use std::time::Duration;

use super::*;

fn cfg() -> EarlyWarningConfig {
    EarlyWarningConfig::default()
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut fastrand::Rng) -> f64 {
    let u = rng.f64().max(1e-12);
    let v = rng.f64();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// A binomial draw of `n` trials at rate `p`.
fn binomial(rng: &mut fastrand::Rng, n: u64, p: f64) -> u64 {
    (0..n).filter(|_| rng.f64() < p).count() as u64
}

/// `ms` with multiplicative noise of log-spread `sigma`.
fn noisy(rng: &mut fastrand::Rng, ms: f64, sigma: f64) -> f64 {
    ms * (sigma * normal(rng)).exp()
}

/// A detector warmed on `windows` of 100 ms ± 5 % with clean outcomes.
fn warmed(rng: &mut fastrand::Rng, windows: usize) -> Detector {
    let mut d = Detector::new(&cfg());
    for _ in 0..windows {
        let w = Window::default()
            .latency(noisy(rng, 100.0, 0.05), 20)
            .outcomes(20, 0, 0);
        assert_eq!(d.observe(&w), None, "a steady warm-up moves nothing");
    }
    d
}

#[test]
fn a_steady_climb_is_demoted_before_it_reaches_the_failure_threshold() {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut d = warmed(&mut rng, 60);
    // +3 % per window from 100 ms towards a 2 s first-byte timeout.
    let (mut ms, timeout) = (100.0, 2000.0);
    let mut demoted_at = None;
    let mut floor_at = None;
    let mut factors = vec![1.0];
    while ms < timeout {
        ms *= 1.03;
        let w = Window::default()
            .latency(noisy(&mut rng, ms, 0.05), 20)
            .outcomes(20, 0, 0);
        if let Some(step) = d.observe(&w) {
            if step.kind == Move::Demoted {
                demoted_at = Some(ms);
                let r = step.reading.unwrap();
                assert_eq!(r.signal, Signal::Latency);
                assert!(r.value > r.baseline * 1.1, "{r}");
            }
            factors.push(step.to);
        }
        if d.factor() <= cfg().min_factor && floor_at.is_none() {
            floor_at = Some(ms);
        }
    }
    let demoted_at = demoted_at.expect("demoted");
    let floor_at = floor_at.expect("down to the floor");
    assert!(demoted_at < 150.0, "demoted only at {demoted_at:.0} ms");
    assert!(floor_at < 250.0, "at the floor only at {floor_at:.0} ms");
    // Smoothly: in steps of DOWN, never below the floor.
    for pair in factors.windows(2) {
        let ratio = pair[1] / pair[0];
        assert!((DOWN - 1e-9..1.0).contains(&ratio), "{factors:?}");
    }
    assert!(factors.len() > 4, "{factors:?}");
    assert!((d.factor() - cfg().min_factor).abs() < 1e-9);
}

#[test]
fn a_slow_climb_is_caught_before_it_doubles() {
    let mut rng = fastrand::Rng::with_seed(11);
    let mut d = warmed(&mut rng, 60);
    let mut ms = 100.0;
    while d.factor() >= 1.0 {
        ms *= 1.01;
        assert!(ms < 200.0, "not demoted before twice as slow");
        let w = Window::default().latency(noisy(&mut rng, ms, 0.05), 20);
        d.observe(&w);
    }
}

#[test]
fn first_token_time_is_watched_too() {
    let mut rng = fastrand::Rng::with_seed(3);
    let mut d = Detector::new(&cfg());
    for _ in 0..40 {
        d.observe(&Window::default().first_token(noisy(&mut rng, 300.0, 0.05), 12));
    }
    let mut ms = 300.0;
    let step = loop {
        ms *= 1.05;
        let w = Window::default().first_token(noisy(&mut rng, ms, 0.05), 12);
        if let Some(step) = d.observe(&w) {
            break step;
        }
        assert!(ms < 600.0);
    };
    assert_eq!(step.kind, Move::Demoted);
    assert_eq!(step.reading.unwrap().signal, Signal::FirstToken);
}

#[test]
fn noisy_but_stable_series_are_never_demoted() {
    for seed in 0..2 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut d = Detector::new(&cfg());
        // Five and a half hours of one-second windows: ±25 % latency noise
        // with a rare spike, 5 % errors and 2 % 429s over 20 attempts.
        for i in 0..20_000 {
            let spike = if rng.f64() < 0.002 { 2.5 } else { 1.0 };
            let n = 20;
            let w = Window::default()
                .latency(noisy(&mut rng, 120.0, 0.25) * spike, n)
                .first_token(noisy(&mut rng, 400.0, 0.2), 10)
                .outcomes(n, binomial(&mut rng, n, 0.05), binomial(&mut rng, n, 0.02));
            assert_eq!(d.observe(&w), None, "seed {seed} window {i}: {w:?}");
        }
        assert_eq!(d.factor(), 1.0);
    }
}

#[test]
fn a_quiet_low_traffic_provider_is_not_demoted_for_an_odd_error() {
    for seed in 0..2 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut d = Detector::new(&cfg());
        for i in 0..20_000 {
            // The fewest attempts a window is judged with, at 1 % errors.
            let w = Window::default().outcomes(10, binomial(&mut rng, 10, 0.01), 0);
            assert_eq!(d.observe(&w), None, "seed {seed} window {i}: {w:?}");
        }
    }
}

#[test]
fn an_error_ratio_climbing_towards_the_breaker_is_demoted_before_it_opens() {
    let mut rng = fastrand::Rng::with_seed(9);
    let mut d = Detector::new(&cfg());
    for _ in 0..30 {
        d.observe(&Window::default().outcomes(20, binomial(&mut rng, 20, 0.01), 0));
    }
    // +2 points per window towards the breaker's 50 %.
    let mut p: f64 = 0.01;
    while d.factor() > cfg().min_factor {
        p += 0.02;
        assert!(
            p < 0.5,
            "not at the floor before the breaker's failure rate"
        );
        d.observe(&Window::default().outcomes(20, binomial(&mut rng, 20, p), 0));
    }
}

#[test]
fn a_429_storm_building_up_is_demoted() {
    let mut d = Detector::new(&cfg());
    for _ in 0..30 {
        d.observe(&Window::default().outcomes(40, 0, 0));
    }
    let mut demoted = None;
    for limited in 1..=40 {
        if let Some(step) = d.observe(&Window::default().outcomes(40, 0, limited)) {
            demoted.get_or_insert(step);
        }
    }
    let step = demoted.expect("demoted");
    assert_eq!(step.kind, Move::Demoted);
    assert_eq!(step.reading.unwrap().signal, Signal::RateLimited);
}

#[test]
fn recovery_promotes_back_smoothly() {
    let mut rng = fastrand::Rng::with_seed(1);
    let mut d = warmed(&mut rng, 40);
    for _ in 0..12 {
        d.observe(&Window::default().latency(noisy(&mut rng, 400.0, 0.05), 20));
    }
    assert!((d.factor() - cfg().min_factor).abs() < 1e-9);
    let mut steps = Vec::new();
    for _ in 0..30 {
        let w = Window::default().latency(noisy(&mut rng, 100.0, 0.05), 20);
        if let Some(step) = d.observe(&w) {
            steps.push(step);
        }
    }
    assert_eq!(d.factor(), 1.0);
    let last = steps.last().unwrap();
    assert_eq!(last.kind, Move::Promoted);
    assert!(steps[..steps.len() - 1]
        .iter()
        .all(|s| s.kind == Move::Raised && s.to / s.from <= 1.0 / UP + 1e-9));
    assert!(steps.len() >= 6, "smoothly, not at once: {steps:?}");
}

#[test]
fn a_demoted_deployment_without_traffic_is_tried_again() {
    let mut rng = fastrand::Rng::with_seed(2);
    let mut d = warmed(&mut rng, 40);
    for _ in 0..12 {
        d.observe(&Window::default().latency(400.0, 20));
    }
    let demoted = d.factor();
    assert!(demoted < 1.0);
    for _ in 0..QUIET_HOLD {
        d.observe(&Window::default());
    }
    assert_eq!(d.factor(), demoted, "held a while without evidence");
    for _ in 0..20 {
        d.observe(&Window::default());
    }
    assert_eq!(d.factor(), 1.0);
    // Still slow once it gets traffic again: demoted again.
    for _ in 0..3 {
        d.observe(&Window::default().latency(400.0, 20));
    }
    assert!(d.factor() < 1.0);
}

#[test]
fn a_lasting_new_level_is_relearnt() {
    let mut rng = fastrand::Rng::with_seed(4);
    let mut d = warmed(&mut rng, 40);
    let mut promoted_after = None;
    for i in 0..(RELEARN as usize + 60) {
        let w = Window::default().latency(noisy(&mut rng, 300.0, 0.05), 20);
        if let Some(Step {
            kind: Move::Promoted,
            ..
        }) = d.observe(&w)
        {
            promoted_after = Some(i);
        }
    }
    let i = promoted_after.expect("promoted once the level is the new normal");
    assert!(i >= RELEARN as usize, "{i}");
    assert_eq!(d.factor(), 1.0);
}

#[test]
fn getting_faster_or_failing_less_is_never_a_demotion() {
    let mut rng = fastrand::Rng::with_seed(6);
    let mut d = Detector::new(&cfg());
    for _ in 0..40 {
        d.observe(
            &Window::default()
                .latency(noisy(&mut rng, 300.0, 0.05), 20)
                .outcomes(20, 4, 2),
        );
    }
    for _ in 0..100 {
        let w = Window::default()
            .latency(noisy(&mut rng, 60.0, 0.05), 20)
            .outcomes(20, 0, 0);
        assert_eq!(d.observe(&w), None);
    }
}

#[test]
fn the_floor_and_band_are_the_configured_ones() {
    let c = EarlyWarningConfig {
        min_factor: 0.5,
        band: 50.0,
        ..cfg()
    };
    let mut d = Detector::new(&c);
    for _ in 0..20 {
        d.observe(&Window::default().latency(100.0, 20));
    }
    // 3× slower is within 50 spreads of 5 %.
    for _ in 0..5 {
        assert_eq!(d.observe(&Window::default().latency(300.0, 20)), None);
    }
    for _ in 0..10 {
        d.observe(&Window::default().latency(100_000.0, 20));
    }
    assert!((d.factor() - 0.5).abs() < 1e-9);
}

#[test]
fn the_tally_keeps_short_signals_for_the_next_window() {
    let t = Tally::default();
    for _ in 0..3 {
        t.latency(false, Duration::from_millis(100));
        t.outcome(false, false);
    }
    let w = t.take(5);
    assert_eq!(w, Window::default());
    for _ in 0..2 {
        t.latency(false, Duration::from_millis(400));
        t.latency(true, Duration::from_millis(50));
        t.outcome(true, false);
    }
    t.outcome(true, true);
    let w = t.take(5);
    let (mean, n) = w.latency_ms[0].unwrap();
    assert_eq!(n, 5);
    assert!((mean - 220.0).abs() < 1e-6, "{mean}");
    assert_eq!(w.latency_ms[1], None, "2 first tokens wait for more");
    assert_eq!(w.outcomes, Some((6, 2, 1)));
    assert_eq!(t.take(5), Window::default());
}

#[test]
fn readings_say_what_and_how_far() {
    let r = Reading {
        signal: Signal::Latency,
        value: 180.4,
        baseline: 52.0,
        z: 6.13,
        trend_z: 8.0,
    };
    assert_eq!(
        r.to_string(),
        "latency 180 ms against a baseline of 52 ms (6.1 spreads, trend 8.0)"
    );
    let labels: Vec<&str> = Signal::ALL.iter().map(|s| s.label()).collect();
    assert_eq!(
        labels,
        [
            "latency",
            "first_token",
            "error_ratio",
            "rate_limited_ratio"
        ]
    );
}
