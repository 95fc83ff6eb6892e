use super::*;

fn min(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

fn resolved(m: u64) -> Observed {
    Observed::Resolved(min(m))
}

fn open(m: u64) -> Observed {
    Observed::OpenFor(min(m))
}

fn past(component: &str, cause: &str, source: Source, observed: Observed) -> PastIncident {
    PastIncident {
        component: component.to_string(),
        cause: cause.to_string(),
        source,
        observed,
    }
}

/// `count` local incidents of `component`/`cause` resolved after
/// `first`, `first + 1`, … minutes.
fn resolved_run(
    component: &str,
    cause: &str,
    source: Source,
    first: u64,
    count: u64,
) -> Vec<PastIncident> {
    (first..first + count)
        .map(|m| past(component, cause, source, resolved(m)))
        .collect()
}

fn current(elapsed: Duration) -> Current<'static> {
    Current {
        component: "api",
        cause: "errors",
        elapsed,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// provider-status-and-eta.md §3(b), to the letter: 15, 25, 40, 40+, 60,
/// 90, 150+, 240 minutes.
#[test]
fn reference_worked_example() {
    let km = KaplanMeier::new([
        resolved(15),
        resolved(25),
        resolved(40),
        open(40),
        resolved(60),
        resolved(90),
        open(150),
        resolved(240),
    ]);
    // Ŝ = 0.875 (15), 0.75 (25), 0.625 (40; the 40+ stays at risk),
    // 0.469 (60), 0.3125 (90), 0 (240).
    assert!(close(km.survival(min(15)), 0.875));
    assert!(close(km.survival(min(25)), 0.75));
    assert!(close(km.survival(min(40)), 0.625));
    assert!(close(km.survival(min(60)), 0.46875));
    assert!(close(km.survival(min(90)), 0.3125));
    assert!(close(km.survival(min(150)), 0.3125));
    assert!(close(km.survival(min(240)), 0.0));
    assert!(close(km.survival(min(10)), 1.0));
    // Unconditional median: 60.
    assert_eq!(km.remaining_quantile(Duration::ZERO, 0.5), Some(min(60)));
    // At t = 30 (Ŝ = 0.75): median needs Ŝ ≤ 0.375, reached at 90, so 60
    // remain; p90 needs Ŝ ≤ 0.075, reached at 240, so 210 remain.
    assert!(close(km.survival(min(30)), 0.75));
    assert_eq!(km.remaining_quantile(min(30), 0.5), Some(min(60)));
    assert_eq!(km.remaining_quantile(min(30), 0.9), Some(min(210)));
    // Ignoring censoring leaves remaining times 10, 30, 60, 210 (median
    // 30–45): biased short.
    let finished_only = KaplanMeier::new([
        resolved(15),
        resolved(25),
        resolved(40),
        resolved(60),
        resolved(90),
        resolved(240),
    ]);
    assert_eq!(
        finished_only.remaining_quantile(min(30), 0.5),
        Some(min(30))
    );
    // Six incidents outlasted 30 minutes: too few to show anything.
    assert_eq!(km.at_risk_after(min(30)), 6);
}

/// A fixture computed by hand, with censored entries, where Kaplan–Meier and
/// the finished-only median differ.
///
/// Local incidents of api/errors, minutes (`+` = still open): 5, 8, 12, 15,
/// 20, 20+, 25+, 30, 30+, 35+, 40+, 45, 50+, 60. Current incident: 10
/// minutes old. Twelve lasted longer than 10 (all but 5 and 8), so n = 12:
/// a median (n ≥ 10), no p90 (n < 30).
///
/// Conditional survival from t = 10, at each resolution time, n at risk
/// just before it (time ≥ it), d resolved at it:
///
/// | u  | n  | d | Ŝ(u)/Ŝ(10)               |
/// |----|----|---|--------------------------|
/// | 12 | 12 | 1 | 11/12 = 0.917            |
/// | 15 | 11 | 1 | 10/12 = 0.833            |
/// | 20 | 10 | 1 | 9/12 = 0.75 (20+ stays)  |
/// | 30 | 7  | 1 | 0.75 · 6/7 = 0.643       |
/// | 45 | 3  | 1 | 0.643 · 2/3 = 0.429      |
///
/// (at 30 the at-risk set is 30, 30+, 35+, 40+, 45, 50+, 60; at 45 it is
/// 45, 50+, 60.) First value ≤ 0.5 is at 45: median remaining 45 − 10 = 35
/// minutes.
///
/// Finished only: survivors 12, 15, 20, 30, 45, 60 → remaining 2, 5, 10,
/// 20, 35, 50; their median is 10–20 (the Kaplan–Meier curve of those six
/// reaches 0.5 at the third, 20, so 10 remain). Censoring ignored says 10,
/// Kaplan–Meier says 35.
#[test]
fn hand_computed_fixture_with_censoring() {
    let observed = [
        resolved(5),
        resolved(8),
        resolved(12),
        resolved(15),
        resolved(20),
        open(20),
        open(25),
        resolved(30),
        open(30),
        open(35),
        open(40),
        resolved(45),
        open(50),
        resolved(60),
    ];
    let history: Vec<PastIncident> = observed
        .iter()
        .map(|&o| past("api", "errors", Source::Local, o))
        .collect();
    let eta = estimate(&history, &current(min(10)), None);
    assert_eq!(
        eta,
        Eta::Estimate {
            median: min(35),
            p90: None,
            basis: Basis {
                pool: Pool::ComponentAndCause,
                source: Source::Local,
                n: 12
            }
        }
    );
    let km = KaplanMeier::new(observed);
    assert!(close(
        km.survival(min(45)) / km.survival(min(10)),
        0.75 * 6.0 / 7.0 * 2.0 / 3.0
    ));

    let finished_only = KaplanMeier::new(
        observed
            .into_iter()
            .filter(|o| matches!(o, Observed::Resolved(_))),
    );
    assert_eq!(
        finished_only.remaining_quantile(min(10), 0.5),
        Some(min(10))
    );
}

#[test]
fn no_median_under_ten_comparable_incidents() {
    // 9 incidents lasted longer than 10 minutes (11..=19), plus short ones
    // that do not count.
    let mut history = resolved_run("api", "errors", Source::Local, 1, 5);
    history.extend(resolved_run("api", "errors", Source::Local, 11, 9));
    assert_eq!(
        estimate(&history, &current(min(10)), None),
        Eta::NotEnoughHistory
    );
    // A tenth: a median, still no p90. Survivors 11..=20: Ŝ ≤ 0.5 at the
    // fifth, 15, so 5 remain.
    history.extend(resolved_run("api", "errors", Source::Local, 20, 1));
    let Eta::Estimate { median, p90, basis } = estimate(&history, &current(min(10)), None) else {
        panic!("expected an estimate");
    };
    assert_eq!((median, p90, basis.n), (min(5), None, 10));
}

#[test]
fn no_p90_under_thirty_comparable_incidents() {
    // 29 survivors past 10 minutes: 11..=39.
    let mut history = resolved_run("api", "errors", Source::Local, 11, 29);
    let Eta::Estimate { p90, basis, .. } = estimate(&history, &current(min(10)), None) else {
        panic!("expected an estimate");
    };
    assert_eq!((p90, basis.n), (None, 29));
    // 30 survivors, 11..=40: Ŝ drops 1/30 per minute; Ŝ ≤ 0.1 at the 27th,
    // 37 minutes, so 27 remain; Ŝ ≤ 0.5 at the 15th, 25, so 15 remain.
    history.extend(resolved_run("api", "errors", Source::Local, 40, 1));
    let Eta::Estimate { median, p90, basis } = estimate(&history, &current(min(10)), None) else {
        panic!("expected an estimate");
    };
    assert_eq!((median, p90, basis.n), (min(15), Some(min(27)), 30));
}

#[test]
fn pools_go_from_narrow_to_broad_local_before_upstream() {
    let at = current(min(0));
    let basis_of = |history: &[PastIncident]| match estimate(history, &at, None) {
        Eta::Estimate { basis, .. } => Some((basis.pool, basis.source)),
        _ => None,
    };
    // Ten of the same component and cause: the narrowest pool.
    let mut history = resolved_run("api", "errors", Source::Local, 1, 10);
    history.extend(resolved_run("chat", "errors", Source::Local, 1, 20));
    history.extend(resolved_run("api", "latency", Source::Local, 1, 20));
    assert_eq!(
        basis_of(&history),
        Some((Pool::ComponentAndCause, Source::Local))
    );
    // Nine: the same cause on any component (9 + 20).
    history.remove(0);
    assert_eq!(basis_of(&history), Some((Pool::Cause, Source::Local)));
    let Eta::Estimate { basis, .. } = estimate(&history, &at, None) else {
        panic!("expected an estimate");
    };
    assert_eq!(basis.n, 29);
    // Too few of that cause anywhere: all local incidents.
    let mut history = resolved_run("api", "errors", Source::Local, 1, 3);
    history.extend(resolved_run("chat", "errors", Source::Local, 1, 3));
    history.extend(resolved_run("api", "latency", Source::Local, 1, 20));
    assert_eq!(basis_of(&history), Some((Pool::All, Source::Local)));
    // Too few local incidents at all: the provider's history, narrowest
    // pool first, never mixed with the local ones.
    let mut history = resolved_run("api", "errors", Source::Local, 1, 9);
    history.extend(resolved_run("api", "errors", Source::Upstream, 1, 10));
    assert_eq!(
        basis_of(&history),
        Some((Pool::ComponentAndCause, Source::Upstream))
    );
    let mut history = resolved_run("api", "errors", Source::Local, 1, 5);
    history.extend(resolved_run("api", "errors", Source::Upstream, 1, 5));
    assert_eq!(estimate(&history, &at, None), Eta::NotEnoughHistory);
    // Local history wins over the provider's, even a broader local pool.
    let mut history = resolved_run("chat", "latency", Source::Local, 1, 10);
    history.extend(resolved_run("api", "errors", Source::Upstream, 1, 50));
    assert_eq!(basis_of(&history), Some((Pool::All, Source::Local)));
}

#[test]
fn past_the_pools_p90_is_longer_than_most() {
    // 30 resolved after 1..=30 minutes: Ŝ ≤ 0.1 at 27.
    let history = resolved_run("api", "errors", Source::Local, 1, 30);
    let basis = Basis {
        pool: Pool::ComponentAndCause,
        source: Source::Local,
        n: 30,
    };
    for elapsed in [min(27), min(29), min(120)] {
        assert_eq!(
            estimate(&history, &current(elapsed), None),
            Eta::LongerThanMost {
                p90: min(27),
                basis
            }
        );
    }
    // Before it, an estimate: survivors 11..=30 (20), median at the 10th,
    // 20, so 10 remain.
    let Eta::Estimate { median, p90, basis } = estimate(&history, &current(min(10)), None) else {
        panic!("expected an estimate");
    };
    assert_eq!((median, p90, basis.n), (min(10), None, 20));
    // A pool under 30 has no p90 of its own to be past: not enough history.
    let small = resolved_run("api", "errors", Source::Local, 1, 29);
    assert_eq!(
        estimate(&small, &current(min(28)), None),
        Eta::NotEnoughHistory
    );
}

#[test]
fn operator_override_wins() {
    let remaining = min(45);
    let rich = resolved_run("api", "errors", Source::Local, 1, 100);
    for (history, elapsed) in [(vec![], min(5)), (rich.clone(), min(5)), (rich, min(500))] {
        assert_eq!(
            estimate(&history, &current(elapsed), Some(remaining)),
            Eta::Override { remaining }
        );
    }
}

#[test]
fn sentences() {
    let basis = Basis {
        pool: Pool::ComponentAndCause,
        source: Source::Local,
        n: 23,
    };
    let eta = Eta::Estimate {
        median: min(14),
        p90: Some(min(55)),
        basis,
    };
    assert_eq!(
        sentence(&eta, min(20)),
        "Incidents like this that lasted 20 minutes were resolved within a median of 14 more minutes, 90 % within 55; based on 23 incidents."
    );
    let eta = Eta::Estimate {
        median: min(35),
        p90: Some(min(190)),
        basis: Basis {
            pool: Pool::Cause,
            source: Source::Upstream,
            n: 41,
        },
    };
    assert_eq!(
        sentence(&eta, min(40)),
        "Incidents with the same cause that lasted 40 minutes were resolved within a median of 35 more minutes, 90 % within 3 h 10 min; based on 41 incidents the provider published."
    );
    let eta = Eta::Estimate {
        median: min(60),
        p90: None,
        basis: Basis {
            pool: Pool::All,
            source: Source::Local,
            n: 12,
        },
    };
    assert_eq!(
        sentence(&eta, Duration::from_secs(50)),
        "Past incidents that lasted 1 minute were resolved within a median of 1 h more; based on 12 incidents."
    );
    assert_eq!(
        sentence(&Eta::LongerThanMost { p90: min(27), basis: Basis { n: 30, ..basis } }, min(40)),
        "This has lasted longer than most similar incidents (90 % of 30 incidents were resolved within 27 minutes); no reliable estimate."
    );
    assert_eq!(
        sentence(&Eta::NotEnoughHistory, min(3)),
        "Not enough history of similar incidents for an estimate."
    );
    assert_eq!(
        sentence(&Eta::Override { remaining: min(30) }, min(3)),
        "The operator expects this to be resolved within 30 minutes."
    );
}

/// Without censoring, the Kaplan–Meier conditional quantile is the
/// nearest-rank quantile of the remaining times R_i = D_i − t over
/// D_i > t (§3(a)): the ⌈q·n⌉-th smallest. Checked over pseudo-random
/// histories with ties.
#[test]
fn without_censoring_matches_nearest_rank() {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |bound: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % bound
    };
    for _ in 0..200 {
        let len = 1 + next(60);
        let durations: Vec<u64> = (0..len).map(|_| 1 + next(120)).collect();
        let km = KaplanMeier::new(durations.iter().map(|&m| resolved(m)));
        let t = next(100);
        let mut remaining: Vec<u64> = durations
            .iter()
            .filter(|&&d| d > t)
            .map(|&d| d - t)
            .collect();
        remaining.sort_unstable();
        assert_eq!(km.at_risk_after(min(t)), remaining.len());
        for (q, tenths) in [(0.5, 5), (0.9, 9)] {
            let rank = (remaining.len() * tenths).div_ceil(10);
            let expected = rank.checked_sub(1).map(|i| min(remaining[i]));
            assert_eq!(
                km.remaining_quantile(min(t), q),
                expected,
                "{durations:?} at {t}, q {q}"
            );
        }
    }
}
