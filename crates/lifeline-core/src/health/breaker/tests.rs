//! The breaker's state machine, step by step, on paused time.

use super::*;

fn cfg() -> HealthConfig {
    HealthConfig::default()
}

fn fail() -> Outcome {
    Outcome::failure(Duration::from_millis(5))
}

fn ok() -> Outcome {
    Outcome::success(Duration::from_millis(5))
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_open_then_probe_half_opens_then_trials_close() {
    let cfg = cfg();
    let now = Instant::now();
    let mut r = HealthRecord::new(now, &cfg);
    for i in 0..cfg.consecutive_failures {
        let t = r.record(now, Ticket::Normal, fail(), &cfg);
        assert_eq!(t.is_some(), i + 1 == cfg.consecutive_failures);
    }
    assert_eq!(r.state(), BreakerState::Open);
    assert!(r.acquire(now, &cfg, true).is_none());
    assert!(
        !r.start_probe(now, &cfg),
        "no probe before the cooldown ends"
    );
    let later = now + cfg.cooldown;
    assert!(r.start_probe(later, &cfg));
    r.probe_result(later, true, &cfg);
    assert_eq!(r.state(), BreakerState::HalfOpen);
    let mut tickets = Vec::new();
    for _ in 0..cfg.half_open_requests {
        tickets.push(r.acquire(later, &cfg, true).map(|t| t.0));
    }
    assert!(r.acquire(later, &cfg, true).is_none(), "trials are limited");
    for t in tickets.into_iter().flatten() {
        r.record(later, t, ok(), &cfg);
    }
    assert_eq!(r.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn failure_rate_opens_with_minimum_volume() {
    let cfg = cfg();
    let now = Instant::now();
    let mut r = HealthRecord::new(now, &cfg);
    for i in 0..20 {
        let o = if i % 2 == 0 { fail() } else { ok() };
        r.record(now, Ticket::Normal, o, &cfg);
        if i < 9 {
            assert_eq!(r.state(), BreakerState::Closed, "at {i}");
        }
    }
    assert_eq!(r.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn cooldown_grows_on_reopening_and_retry_after_sets_it() {
    let cfg = cfg();
    let now = Instant::now();
    let mut r = HealthRecord::new(now, &cfg);
    let misconf = Outcome {
        misconfigured: true,
        ..fail()
    };
    r.record(now, Ticket::Normal, misconf, &cfg);
    assert_eq!(r.open_until(), Some(now + cfg.cooldown));
    let t1 = now + cfg.cooldown;
    assert!(r.start_probe(t1, &cfg));
    r.probe_result(t1, false, &cfg);
    assert_eq!(r.open_until(), Some(t1 + cfg.cooldown * 2));
    let mut r = HealthRecord::new(now, &cfg);
    let limited = Outcome {
        retry_after: Some(Duration::from_secs(42)),
        misconfigured: true,
        ..fail()
    };
    r.record(now, Ticket::Normal, limited, &cfg);
    assert_eq!(r.open_until(), Some(now + Duration::from_secs(42)));
    assert_eq!(r.not_before(), Some(now + Duration::from_secs(42)));
}

#[tokio::test(start_paused = true)]
async fn without_probes_the_first_request_after_cooldown_is_a_trial() {
    let cfg = cfg();
    let now = Instant::now();
    let mut r = HealthRecord::new(now, &cfg);
    r.record(
        now,
        Ticket::Normal,
        Outcome {
            misconfigured: true,
            ..fail()
        },
        &cfg,
    );
    assert!(r.acquire(now, &cfg, false).is_none());
    let later = now + cfg.cooldown;
    let (t, tr) = r
        .acquire(later, &cfg, false)
        .unwrap_or((Ticket::Normal, None));
    assert!(matches!(t, Ticket::Trial(_)));
    assert!(tr.is_some());
    assert!(r.record(later, t, fail(), &cfg).is_some());
    assert_eq!(r.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn trials_of_an_earlier_round_do_not_count_in_the_next() {
    let cfg = cfg();
    let now = Instant::now();
    let mut r = HealthRecord::new(now, &cfg);
    r.record(
        now,
        Ticket::Normal,
        Outcome {
            misconfigured: true,
            ..fail()
        },
        &cfg,
    );
    let t1 = now + cfg.cooldown;
    assert!(r.start_probe(t1, &cfg));
    r.probe_result(t1, true, &cfg);
    let old: Vec<Ticket> = (0..cfg.half_open_requests)
        .filter_map(|_| r.acquire(t1, &cfg, true).map(|t| t.0))
        .collect();
    // One trial fails: open again; the cooldown passes; a new round starts.
    let (first, rest) = old
        .split_first()
        .map(|(f, r)| (*f, r.to_vec()))
        .unwrap_or((Ticket::Normal, Vec::new()));
    r.record(t1, first, fail(), &cfg);
    let t2 = t1 + cfg.max_cooldown;
    assert!(r.start_probe(t2, &cfg));
    r.probe_result(t2, true, &cfg);
    assert_eq!(r.state(), BreakerState::HalfOpen);
    // The old round's trials finish well: they must not close the breaker.
    for t in rest {
        r.record(t2, t, ok(), &cfg);
    }
    assert_eq!(r.state(), BreakerState::HalfOpen);
    // The new round admits its full number of trials, and one success of
    // its own (with the old ones, enough to close if they counted) does
    // not close it.
    let fresh: Vec<Ticket> = (0..cfg.half_open_requests)
        .filter_map(|_| r.acquire(t2, &cfg, true).map(|t| t.0))
        .collect();
    assert_eq!(fresh.len() as u32, cfg.half_open_requests);
    r.record(t2, fresh[0], ok(), &cfg);
    assert_eq!(
        r.state(),
        BreakerState::HalfOpen,
        "old trials counted towards closing"
    );
}

#[tokio::test(start_paused = true)]
async fn an_idle_half_open_deployment_is_decided_by_probes() {
    let cfg = cfg();
    let now = Instant::now();
    let mut r = HealthRecord::new(now, &cfg);
    for _ in 0..cfg.consecutive_failures {
        r.record(now, Ticket::Normal, fail(), &cfg);
    }
    let t = now + cfg.cooldown.max(cfg.idle_probe_after);
    assert!(r.start_probe(t, &cfg));
    r.probe_result(t, true, &cfg);
    assert_eq!(r.state(), BreakerState::HalfOpen);
    assert!(
        !r.start_probe(t, &cfg),
        "the next probe waits a probe interval"
    );
    // No request comes: probes stand in for the trials.
    let mut at = t;
    for i in 0..cfg.half_open_requests {
        at += cfg.probe_interval;
        assert!(r.start_probe(at, &cfg), "probe {i}");
        r.probe_result(at, true, &cfg);
    }
    assert_eq!(r.state(), BreakerState::Closed);

    // On probation: the first failed request opens it again at once.
    let (ticket, _) = r.acquire(at, &cfg, true).unwrap();
    assert!(r.record(at, ticket, fail(), &cfg).is_some());
    assert_eq!(r.state(), BreakerState::Open);
    let mut at = at + cfg.max_cooldown;
    assert!(r.start_probe(at, &cfg));
    r.probe_result(at, true, &cfg);
    for _ in 0..cfg.half_open_requests {
        at += cfg.probe_interval;
        assert!(r.start_probe(at, &cfg));
        r.probe_result(at, true, &cfg);
    }
    assert_eq!(r.state(), BreakerState::Closed);
    // A successful request ends the probation: one failure is then only one.
    let (ticket, _) = r.acquire(at, &cfg, true).unwrap();
    r.record(at, ticket, ok(), &cfg);
    let (ticket, _) = r.acquire(at, &cfg, true).unwrap();
    assert!(r.record(at, ticket, fail(), &cfg).is_none());
    assert_eq!(r.state(), BreakerState::Closed);

    // A failed probe of the idle half-open deployment opens it again.
    for _ in 0..cfg.consecutive_failures {
        r.record(at, Ticket::Normal, fail(), &cfg);
    }
    let t = at + cfg.max_cooldown;
    assert!(r.start_probe(t, &cfg));
    r.probe_result(t, true, &cfg);
    let t = t + cfg.probe_interval;
    assert!(r.start_probe(t, &cfg));
    r.probe_result(t, false, &cfg);
    assert_eq!(r.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_half_open_deployment_with_traffic_is_left_to_its_trials() {
    let cfg = cfg();
    let now = Instant::now();
    let mut r = HealthRecord::new(now, &cfg);
    for _ in 0..cfg.consecutive_failures {
        r.record(now, Ticket::Normal, fail(), &cfg);
    }
    let t = now + cfg.cooldown.max(cfg.idle_probe_after);
    assert!(r.start_probe(t, &cfg));
    r.probe_result(t, true, &cfg);
    let (trial, _) = r.acquire(t, &cfg, true).unwrap();
    let later = t + cfg.idle_probe_after;
    assert!(!r.start_probe(later, &cfg), "a trial is in flight");
    r.record(later, trial, ok(), &cfg);
    // Another trial, answered at once: used recently, so no probe.
    let (trial, _) = r.acquire(later, &cfg, true).unwrap();
    r.record(later, trial, ok(), &cfg);
    assert!(
        !r.start_probe(later + cfg.probe_interval, &cfg),
        "used recently"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stale_probe_does_not_cut_the_cooldown() {
    let cfg = cfg();
    let now = Instant::now();
    let mut r = HealthRecord::new(now, &cfg);
    let idle = now + cfg.idle_probe_after;
    assert!(r.start_probe(idle, &cfg), "idle probe due");
    // Traffic opens the breaker while the idle probe is out.
    r.record(
        idle,
        Ticket::Normal,
        Outcome {
            misconfigured: true,
            ..fail()
        },
        &cfg,
    );
    assert!(r.probe_result(idle, true, &cfg).is_none());
    assert_eq!(r.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn neutral_outcomes_do_not_count() {
    let cfg = cfg();
    let now = Instant::now();
    let mut r = HealthRecord::new(now, &cfg);
    for _ in 0..100 {
        r.record(now, Ticket::Normal, Outcome::neutral(Duration::ZERO), &cfg);
    }
    assert_eq!(r.state(), BreakerState::Closed);
    assert_eq!(r.counts(now), (0, 0));
}

fn open_then_half_open(r: &mut HealthRecord, now: Instant, cfg: &HealthConfig) -> Instant {
    r.record(
        now,
        Ticket::Normal,
        Outcome {
            misconfigured: true,
            ..fail()
        },
        cfg,
    );
    let later = now + cfg.cooldown;
    assert!(r.start_probe(later, cfg));
    r.probe_result(later, true, cfg);
    assert_eq!(r.state(), BreakerState::HalfOpen);
    later
}

#[tokio::test(start_paused = true)]
async fn a_stream_trial_is_decided_at_its_first_content() {
    let cfg = cfg();
    let now = Instant::now();
    let mut r = HealthRecord::new(now, &cfg);
    let t = open_then_half_open(&mut r, now, &cfg);
    let trials: Vec<Ticket> = (0..cfg.half_open_requests)
        .filter_map(|_| r.acquire(t, &cfg, true).map(|a| a.0))
        .collect();
    assert_eq!(trials.len() as u32, cfg.half_open_requests);
    assert!(r.acquire(t, &cfg, true).is_none(), "trials are limited");
    // The streams reach their first content and go on: the trials are
    // decided, the breaker closes and everyone may use it at once.
    let mut ongoing = Vec::new();
    for (i, trial) in trials.into_iter().enumerate() {
        let (ticket, closed) = r.first_content(t, trial, &cfg);
        assert_eq!(ticket, Ticket::Normal);
        assert_eq!(closed.is_some(), i as u32 + 1 == cfg.half_open_requests);
        ongoing.push(ticket);
    }
    assert_eq!(r.state(), BreakerState::Closed);
    assert!(matches!(
        r.acquire(t, &cfg, true),
        Some((Ticket::Normal, None))
    ));
    // One of them breaks later: an ordinary failure, counted in the
    // window, not a failed trial that re-opens the breaker.
    let end = t + Duration::from_secs(30);
    assert!(r.record(end, ongoing[0], fail(), &cfg).is_none());
    assert_eq!(r.state(), BreakerState::Closed);
    assert_eq!(r.counts(end), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn a_trial_stream_that_fails_before_content_still_re_opens() {
    let cfg = cfg();
    let now = Instant::now();
    let mut r = HealthRecord::new(now, &cfg);
    let t = open_then_half_open(&mut r, now, &cfg);
    let trial = r.acquire(t, &cfg, true).map(|a| a.0);
    assert!(matches!(trial, Some(Ticket::Trial(_))));
    let trial = trial.unwrap_or(Ticket::Normal);
    assert!(r.record(t, trial, fail(), &cfg).is_some());
    assert_eq!(r.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn idle_probes_count_like_attempts_and_one_failure_does_not_open() {
    let cfg = cfg();
    let now = Instant::now();
    let mut r = HealthRecord::new(now, &cfg);
    let mut t = now + cfg.idle_probe_after;
    assert!(r.start_probe(t, &cfg), "idle probe due");
    assert!(
        r.probe_result(t, false, &cfg).is_none(),
        "one failed probe opened it"
    );
    assert_eq!(r.state(), BreakerState::Closed);
    assert_eq!(r.counts(t), (0, 1));
    // The follow-up comes at the probe interval, not after another idle period.
    assert!(!r.start_probe(t, &cfg));
    t += cfg.probe_interval;
    assert!(
        r.start_probe(t, &cfg),
        "no follow-up after a failed idle probe"
    );
    // It answers: the failure streak ends, and probes go back to the idle pace.
    assert!(r.probe_result(t, true, &cfg).is_none());
    assert_eq!(r.counts(t), (1, 1));
    t += cfg.probe_interval;
    assert!(!r.start_probe(t, &cfg));
    // A deployment that keeps failing its probes opens after
    // `consecutive_failures` of them.
    t += cfg.idle_probe_after;
    let mut opened = None;
    for i in 1..=cfg.consecutive_failures {
        assert!(r.start_probe(t, &cfg), "probe {i} not due");
        if let Some(tr) = r.probe_result(t, false, &cfg) {
            opened = Some((i, tr));
            break;
        }
        assert_eq!(r.state(), BreakerState::Closed);
        t += cfg.probe_interval;
    }
    let (i, tr) = opened.unwrap_or_else(|| panic!("never opened"));
    assert_eq!(i, cfg.consecutive_failures);
    assert_eq!(r.state(), BreakerState::Open);
    assert!(tr.reason.contains("idle probe"), "{}", tr.reason);
}

#[tokio::test(start_paused = true)]
async fn a_probe_from_before_a_reopening_does_not_half_open() {
    let cfg = cfg();
    let now = Instant::now();
    let mut r = HealthRecord::new(now, &cfg);
    let t = open_then_half_open(&mut r, now, &cfg);
    // Idle half-open: a probe stands in for a trial.
    let t0 = t + cfg.idle_probe_after;
    assert!(r.start_probe(t0, &cfg), "idle half-open probe due");
    // A trial request comes while the probe is out and fails with a 429
    // carrying a short Retry-After: the breaker re-opens for 1 s.
    let t1 = t0 + Duration::from_millis(100);
    let trial = r.acquire(t1, &cfg, true).map(|a| a.0);
    assert!(matches!(trial, Some(Ticket::Trial(_))));
    let limited = Outcome {
        retry_after: Some(Duration::from_secs(1)),
        ..fail()
    };
    assert!(r
        .record(t1, trial.unwrap_or(Ticket::Normal), limited, &cfg)
        .is_some());
    assert_eq!(r.state(), BreakerState::Open);
    // The probe (started before the failure) answers after the open period.
    let t2 = t0 + Duration::from_secs(2);
    assert!(
        r.probe_result(t2, true, &cfg).is_none(),
        "a pre-failure probe half-opened the re-opened breaker"
    );
    assert_eq!(r.state(), BreakerState::Open);
    // A fresh probe decides.
    assert!(
        r.start_probe(t2, &cfg),
        "no fresh probe after the stale one"
    );
    assert!(r.probe_result(t2, true, &cfg).is_some());
    assert_eq!(r.state(), BreakerState::HalfOpen);
    // A probe the prober joins may have begun before its `start_probe`:
    // its result, from an earlier epoch, is stale too.
    let began = r.epoch();
    let trial = r.acquire(t2, &cfg, true).map(|a| a.0);
    let limited = Outcome {
        retry_after: Some(Duration::from_secs(1)),
        ..fail()
    };
    assert!(r
        .record(t2, trial.unwrap_or(Ticket::Normal), limited, &cfg)
        .is_some());
    let t3 = t2 + Duration::from_secs(2);
    assert!(r.start_probe(t3, &cfg));
    assert!(r.probe_result_from(t3, true, began, &cfg).is_none());
    assert_eq!(r.state(), BreakerState::Open);
}
