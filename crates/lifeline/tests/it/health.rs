//! Health, over real sockets: a recovering deployment's trials are decided at
//! a stream's first content, waiting requests share one probe, an idle
//! backup is not opened by one failed probe (recorded once, not again by the
//! next prober round), and the health feed (a snapshot, then drains, breaker
//! transitions and reload changes, nothing from a deployment a reload
//! replaced; a fresh snapshot for a subscriber that fell behind).

use std::time::{Duration, SystemTime};

use futures::future::join_all;
use lifeline_core::gateway::{FeedItem, HealthFeed, HealthSnapshot};
use lifeline_core::health::{BreakerState, Change, HealthEvent};
use lifeline_core::Config;
use lifeline_mock::{Faults, MockHandle};

use crate::fo_support::{
    admin_deployment, admin_post, attempts, breaker, cfg, dep, deployment, eventually, failing,
    layout, metrics,
};
use crate::harness::{mocks, Env};
use crate::streaming::{pace, stream_body};

/// Requests a mock received on a path ending with `suffix`.
fn requests_to(m: &MockHandle, suffix: &str) -> usize {
    m.stats()
        .recent
        .iter()
        .filter(|r| r.path_and_query.ends_with(suffix))
        .count()
}

/// A model whose only deployment is recovering: its half-open trials are
/// streams, and each is decided when its first content arrives, so the
/// breaker closes while they are still streaming and other clients are
/// served at once (decided at the streams' end, every other client would get
/// a 503 for as long as the first streams last).
#[tokio::test]
async fn trial_streams_close_the_breaker_at_their_first_content() {
    let m = mocks(1).await;
    m[0].set_faults(failing(500));
    let health = [("consecutive_failures", "2"), ("half_open_requests", "3")];
    let server = [("stream_idle_timeout_ms", "5000")];
    let env = Env::boot(&cfg(&m, &server, &health, &layout(&[&[0]])), m).await;
    let e = &env;
    eventually("p0 opens", Duration::from_secs(10), move || async move {
        e.chat(false).await;
        breaker(e, &dep(0)).await == "open"
    })
    .await;
    env.mocks[0].clear_faults();
    // Long streams: 20 tokens at 5 per second.
    pace(&env.mocks[0], 5.0, 20);
    eventually(
        "p0 half-opens",
        Duration::from_secs(10),
        move || async move { breaker(e, &dep(0)).await == "half_open" },
    )
    .await;
    let mut trials = Vec::new();
    for _ in 0..3 {
        let mut resp = env
            .client
            .post(env.url("/v1/chat/completions"))
            .body(stream_body("m"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let first = resp.chunk().await.unwrap().expect("first content");
        trials.push((resp, first.to_vec()));
    }
    // The three trials are mid-stream, and the breaker is already closed.
    assert_eq!(breaker(&env, &dep(0)).await, "closed");
    let (status, h, body) = env.chat(true).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(deployment(&h), dep(0));
    for (mut resp, mut body) in trials {
        while let Some(c) = resp.chunk().await.unwrap() {
            body.extend_from_slice(&c);
        }
        let body = String::from_utf8(body).unwrap();
        assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    }
    env.stop().await;
}

/// Many requests waiting past the first-byte timeout on the only deployment
/// ask whether it is alive: one probe answers all of them.
#[tokio::test]
async fn waiting_requests_share_one_probe() {
    let m = mocks(1).await;
    // A non-streaming answer takes 800 ms, twice the first-byte timeout.
    pace(&m[0], 10.0, 8);
    let server = [("first_byte_timeout_ms", "400")];
    let health = [("probe_interval_ms", "1000")];
    let env = Env::boot(&cfg(&m, &server, &health, &layout(&[&[0]])), m).await;
    const WAITING: usize = 12;
    let answers = join_all((0..WAITING).map(|_| env.chat(false))).await;
    for (status, h, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(attempts(h), 1);
    }
    let probes = requests_to(&env.mocks[0], "/models");
    // One; two only if the requests were more than a second apart.
    assert!(
        (1..=2).contains(&probes),
        "{probes} probes for {WAITING} waiting requests"
    );
    env.stop().await;
}

/// The backup tier is idle by design. One failed idle probe (a passing 429)
/// leaves it closed, counted in its window; it then serves when the primary
/// fails.
#[tokio::test]
async fn one_failed_idle_probe_does_not_open_a_backup_tier() {
    let m = mocks(2).await;
    m[1].set_faults(Faults {
        rate_limit_rate: 1.0,
        ..Faults::default()
    });
    let health = [
        ("probe_interval_ms", "1000"),
        ("idle_probe_after_ms", "300"),
        ("consecutive_failures", "3"),
    ];
    let env = Env::boot(&cfg(&m, &[], &health, &layout(&[&[0], &[1]])), m).await;
    let e = &env;
    eventually(
        "p1's idle probe fails",
        Duration::from_secs(10),
        move || async move { admin_deployment(e, &dep(1)).await["window_failures"] == 1 },
    )
    .await;
    // The next probe is a probe interval (1 s) away.
    env.mocks[1].clear_faults();
    assert_eq!(breaker(&env, &dep(1)).await, "closed");
    eventually(
        "p1's next probe passes",
        Duration::from_secs(10),
        move || async move { admin_deployment(e, &dep(1)).await["window_successes"] == 1 },
    )
    .await;
    assert_eq!(breaker(&env, &dep(1)).await, "closed");
    env.mocks[0].set_faults(failing(500));
    let (status, h, body) = env.chat(false).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(deployment(&h), dep(1));
    env.stop().await;
}

/// The prober records each real probe once. After a failed idle probe the
/// follow-up is due one probe interval after it *started*, which is the next
/// prober round; that round must send a new probe, not take the failed one's
/// result again (which counted every real failure twice, so that with
/// `consecutive_failures = 2` one failed probe opened an idle deployment).
#[tokio::test]
async fn a_failed_idle_probe_is_recorded_once() {
    let m = mocks(1).await;
    // The first probe hangs until its timeout; the later ones pass.
    m[0].set_faults(Faults {
        hang: true,
        ..Faults::default()
    });
    let health = [
        ("probe_interval_ms", "600"),
        ("idle_probe_after_ms", "200"),
        ("probe_timeout_ms", "250"),
        ("consecutive_failures", "2"),
    ];
    let env = Env::boot(&cfg(&m, &[], &health, &layout(&[&[0]])), m).await;
    let e = &env;
    eventually(
        "the first idle probe reaches p0",
        Duration::from_secs(10),
        move || async move { requests_to(&e.mocks[0], "/models") >= 1 },
    )
    .await;
    // The next round is a probe interval (600 ms) after this one.
    env.mocks[0].clear_faults();
    // (Opened, a deployment is probed only until it half-opens.)
    eventually(
        "three probes reach p0, or it opens",
        Duration::from_secs(10),
        move || async move {
            requests_to(&e.mocks[0], "/models") >= 3 || breaker(e, &dep(0)).await != "closed"
        },
    )
    .await;
    let view = admin_deployment(&env, &dep(0)).await;
    let probes = requests_to(&env.mocks[0], "/models") as u64;
    assert_eq!(
        view["breaker"], "closed",
        "one failed probe opened it: {view}"
    );
    assert_eq!(view["window_failures"], 1, "{view}");
    // Each recorded probe result is one real probe (the last may be out).
    let recorded =
        view["window_failures"].as_u64().unwrap() + view["window_successes"].as_u64().unwrap();
    assert!(
        recorded <= probes && recorded + 1 >= probes,
        "{recorded} probe results recorded for {probes} probes: {view}"
    );
    env.stop().await;
}

/// A reload rebuilds a deployment while a stream on the old one is in
/// flight; the stream then breaks and trips the old record's breaker. The
/// old deployment is retired: no breaker event for its id after `Rebuilt`,
/// and the breaker gauge stays that of the new, closed deployment.
#[tokio::test]
async fn a_rebuilt_deployment_publishes_nothing_after_the_reload() {
    let m = mocks(1).await;
    // Two chunks, then silence until the stall timeout (1 s) breaks the stream.
    pace(&m[0], 10.0, 20);
    m[0].set_faults(Faults {
        stall_after_chunks: Some(2),
        ..Faults::default()
    });
    let health = [("consecutive_failures", "1")];
    let text = cfg(&m, &[], &health, &layout(&[&[0]]));
    let env = Env::boot(&text, m).await;
    let mut feed = env.gw.subscribe();
    snapshot(next(&mut feed).await);
    let old = env.gw.deployment(&dep(0)).unwrap();
    let mut resp = env
        .client
        .post(env.url("/v1/chat/completions"))
        .body(stream_body("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.chunk().await.unwrap().expect("first content").to_vec();

    // A rotated key rebuilds p0's deployment.
    let changed = text.replace("sk-upstream-0", "sk-rotated");
    env.gw
        .apply(Config::parse(&changed, "<test>").unwrap())
        .await
        .unwrap();
    let e = next_event(&mut feed).await;
    assert_eq!(&*e.deployment, dep(0));
    assert!(matches!(e.change, Change::Rebuilt(_)), "{e:?}");
    assert!(!std::sync::Arc::ptr_eq(
        &old,
        &env.gw.deployment(&dep(0)).unwrap()
    ));

    while let Some(c) = resp.chunk().await.unwrap() {
        body.extend_from_slice(&c);
    }
    let body = String::from_utf8(body).unwrap();
    assert!(
        body.contains("event: error"),
        "the stream did not break: {body}"
    );
    let old_ref = &old;
    eventually(
        "the old deployment's breaker opens",
        Duration::from_secs(5),
        move || async move { old_ref.is_open() },
    )
    .await;
    // A transition is published as it happens: any event is in the feed now.
    while let Ok(item) = tokio::time::timeout(Duration::from_millis(300), feed.next()).await {
        match item.expect("the feed ended") {
            FeedItem::Event(e) => assert!(
                e.breaker().is_none(),
                "the retired deployment published {e:?}"
            ),
            FeedItem::Snapshot(s) => panic!("unexpected snapshot {s:?}"),
        }
    }
    let text = metrics(&env).await;
    let line = format!("lifeline_breaker_state{{deployment=\"{}\"}} ", dep(0));
    let gauge: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix(&line)).collect();
    assert_eq!(gauge, ["0"], "{text}");
    assert_eq!(breaker(&env, &dep(0)).await, "closed");
    env.stop().await;
}

async fn next(feed: &mut HealthFeed) -> FeedItem {
    tokio::time::timeout(Duration::from_secs(5), feed.next())
        .await
        .expect("no health item within 5 s")
        .expect("the feed ended")
}

async fn next_event(feed: &mut HealthFeed) -> HealthEvent {
    match next(feed).await {
        FeedItem::Event(e) => e,
        FeedItem::Snapshot(s) => panic!("a snapshot instead of an event: {s:?}"),
    }
}

fn snapshot(item: FeedItem) -> HealthSnapshot {
    match item {
        FeedItem::Snapshot(s) => s,
        FeedItem::Event(e) => panic!("an event instead of a snapshot: {e:?}"),
    }
}

fn recent(t: SystemTime) -> bool {
    let now = SystemTime::now();
    t <= now && now.duration_since(t).unwrap() < Duration::from_secs(60)
}

/// The feed: a snapshot of every deployment, then an admin drain, a
/// reload's rebuilt, added and removed deployments, and a breaker
/// transition, each with its wall-clock time; it ends when the gateway does.
#[tokio::test]
async fn the_health_feed_is_a_snapshot_then_every_change() {
    let m = mocks(3).await;
    let text = cfg(&m, &[], &[], &layout(&[&[0, 1]]));
    let env = Env::boot(&text, m).await;
    let mut feed = env.gw.subscribe();
    let first = snapshot(next(&mut feed).await);
    let ids: Vec<&str> = first.deployments.iter().map(|d| &*d.id).collect();
    assert_eq!(ids, [dep(0), dep(1)]);
    for d in &first.deployments {
        assert_eq!((d.breaker, d.drained), (BreakerState::Closed, false));
        assert!(recent(d.since), "{d:?}");
        assert_eq!(&*d.provider, &d.id[..2]);
    }
    assert!(recent(first.at));

    let (status, body) = admin_post(&env, &format!("/admin/deployments/{}/drain", dep(0))).await;
    assert_eq!(status, 200, "{body}");
    let e = next_event(&mut feed).await;
    assert_eq!(&*e.deployment, dep(0));
    assert_eq!(e.change, Change::Drain { drained: true });
    assert!(recent(e.at) && e.at >= first.at);
    assert!(e.seq > first.seq);

    // Reload: p1's provider changes (rebuilt), p2 joins, p0 leaves.
    let changed =
        cfg(&env.mocks, &[], &[], &layout(&[&[1, 2]])).replace("sk-upstream-1", "sk-rotated");
    env.gw
        .apply(Config::parse(&changed, "<test>").unwrap())
        .await
        .unwrap();
    let mut changes = Vec::new();
    for _ in 0..3 {
        let e = next_event(&mut feed).await;
        changes.push((e.deployment.to_string(), e.change));
    }
    changes.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        matches!(&changes[0], (id, Change::Removed) if *id == dep(0)),
        "{changes:?}"
    );
    assert!(
        matches!(&changes[1], (id, Change::Rebuilt(s)) if *id == dep(1) && s.breaker == BreakerState::Closed && !s.drained),
        "{changes:?}"
    );
    assert!(
        matches!(&changes[2], (id, Change::Added(s)) if *id == dep(2) && &*s.provider == "p2" && s.model == "up-2"),
        "{changes:?}"
    );

    // A breaker transition: p2 rejects the deployment's credentials.
    env.mocks[2].set_faults(failing(401));
    env.mocks[1].set_faults(failing(401));
    let (status, _, body) = env.chat(false).await;
    assert_eq!(status, 503, "{body}");
    let mut opened = Vec::new();
    for _ in 0..2 {
        let e = next_event(&mut feed).await;
        let (from, to, reason) = e.breaker().unwrap();
        assert_eq!((from, to), (BreakerState::Closed, BreakerState::Open));
        assert!(reason.contains("401/403"), "{reason}");
        opened.push(e.deployment.to_string());
    }
    opened.sort();
    assert_eq!(opened, [dep(1), dep(2)]);
    // Later snapshots agree with snapshot + events.
    let now = snapshot(env.gw.subscribe().next().await.unwrap());
    let states: Vec<(&str, BreakerState)> = now
        .deployments
        .iter()
        .map(|d| (&*d.id, d.breaker))
        .collect();
    assert_eq!(
        states,
        [
            (&*dep(1), BreakerState::Open),
            (&*dep(2), BreakerState::Open)
        ]
    );
    env.stop().await;
    assert!(feed.next().await.is_none(), "the feed outlived the gateway");
}

/// A subscriber that falls behind by more than the channel holds gets a
/// fresh snapshot (with the latest state), then events again.
#[tokio::test]
async fn a_subscriber_that_falls_behind_gets_a_fresh_snapshot() {
    let m = mocks(1).await;
    let env = Env::boot(&cfg(&m, &[], &[], &layout(&[&[0]])), m).await;
    let mut feed = env.gw.subscribe();
    let first = snapshot(next(&mut feed).await);
    assert!(!first.deployments[0].drained);
    let d = env.gw.deployment(&dep(0)).unwrap();
    let flips = lifeline_core::health::CAPACITY + 101;
    for i in 0..flips {
        d.set_drained(i % 2 == 0);
    }
    let fresh = snapshot(next(&mut feed).await);
    assert!(
        fresh.seq >= first.seq + flips as u64,
        "{} {}",
        fresh.seq,
        first.seq
    );
    assert!(
        fresh.deployments[0].drained,
        "the snapshot is not the latest state"
    );
    d.set_drained(false);
    let e = next_event(&mut feed).await;
    assert_eq!(e.change, Change::Drain { drained: false });
    assert_eq!(e.seq, fresh.seq + 1);
    env.stop().await;
}
