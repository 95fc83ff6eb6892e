//! Reloading the config through the admin API: a valid file takes effect, an
//! invalid one is refused with its errors while the running config keeps
//! serving, and a stream in flight during a reload finishes normally.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use lifeline_core::{Config, Gateway, Server};
use lifeline_mock::MockHandle;
use tokio_util::sync::CancellationToken;

use crate::harness::{config, init, mocks, one_tier};
use crate::streaming::{pace, stream_body};

/// A gateway started from a file (so `source` is set and reload works).
struct FileEnv {
    gw: Gateway,
    addr: SocketAddr,
    admin: SocketAddr,
    client: reqwest::Client,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<()>,
    _mocks: Vec<MockHandle>,
}

impl FileEnv {
    async fn boot(path: &Path, mocks: Vec<MockHandle>) -> FileEnv {
        init();
        let config = Config::load(path).unwrap_or_else(|e| panic!("config: {e}"));
        assert_eq!(config.source.as_deref(), Some(path));
        let gw = Gateway::start(config).await.expect("gateway starts");
        let bound = Server::bind(gw.clone()).await.expect("binds");
        let (addr, admin) = (bound.data_addr, bound.admin_addr.expect("admin"));
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(bound.run(shutdown.clone()));
        FileEnv {
            gw,
            addr,
            admin,
            client: reqwest::Client::new(),
            shutdown,
            server,
            _mocks: mocks,
        }
    }

    async fn chat(&self, model: &str) -> (u16, String) {
        let resp = self
            .client
            .post(format!("http://{}/v1/chat/completions", self.addr))
            .body(format!(
                r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#
            ))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    async fn reload(&self) -> (u16, String) {
        let resp = self
            .client
            .post(format!("http://{}/admin/reload", self.admin))
            .header("authorization", "Bearer admin-secret")
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
        self.gw.close().await;
    }
}

/// A second model `m2` on the same provider as `m`'s first deployment.
const M2: &str =
    "\n[[models]]\nname = \"m2\"\ntiers = [ [ { provider = \"p0\", model = \"up-two\" } ] ]\n";

#[tokio::test]
async fn admin_reload_applies_valid_and_refuses_invalid_config() {
    let m = mocks(1).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lifeline.toml");
    let base = config(&m, "", &one_tier(&m));
    std::fs::write(&path, &base).unwrap();
    let env = FileEnv::boot(&path, m).await;
    assert_eq!(env.chat("m").await.0, 200);
    let (status, body) = env.chat("m2").await;
    assert_eq!(status, 404, "{body}");

    std::fs::write(&path, format!("{base}{M2}")).unwrap();
    let (status, body) = env.reload().await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = env.chat("m2").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"model\":\"up-two\""), "{body}");

    // Unknown provider in a tier: refused, with the file, line and field.
    let bad = format!(
        "{base}\n[[models]]\nname = \"m3\"\ntiers = [ [ {{ provider = \"nope\", model = \"x\" }} ] ]\n"
    );
    std::fs::write(&path, bad).unwrap();
    let (status, body) = env.reload().await;
    assert_eq!(status, 422, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["reloaded"], false);
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("lifeline.toml:"), "{message}");
    assert!(message.contains("provider"), "{message}");
    assert!(message.contains("nope"), "{message}");
    // The running config (with m2) still serves; m3 never appeared.
    assert_eq!(env.chat("m").await.0, 200);
    assert_eq!(env.chat("m2").await.0, 200);
    assert_eq!(env.chat("m3").await.0, 404);

    // Not TOML at all.
    std::fs::write(&path, "[server\nlisten = ").unwrap();
    let (status, body) = env.reload().await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(env.chat("m2").await.0, 200);
    env.stop().await;
}

#[tokio::test]
async fn stream_started_before_reload_completes() {
    let m = mocks(1).await;
    pace(&m[0], 10.0, 15);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lifeline.toml");
    let base = config(&m, "", &one_tier(&m));
    std::fs::write(&path, &base).unwrap();
    let env = FileEnv::boot(&path, m).await;
    let mut resp = env
        .client
        .post(format!("http://{}/v1/chat/completions", env.addr))
        .body(stream_body("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.chunk().await.unwrap().expect("first chunk").to_vec();

    // Change the model's timeouts and add one: the model `m` is rebuilt.
    let changed = base
        .replace(
            "name = \"m\"\n",
            "name = \"m\"\nstream_idle_timeout_ms = 5000\n",
        )
        .replace("sk-upstream-0", "sk-rotated");
    assert_ne!(changed, base);
    std::fs::write(&path, format!("{changed}{M2}")).unwrap();
    let (status, text) = env.reload().await;
    assert_eq!(status, 200, "{text}");

    let rest = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(c) = resp.chunk().await.unwrap() {
            body.extend_from_slice(&c);
        }
    })
    .await;
    assert!(rest.is_ok(), "stream did not finish");
    let body = String::from_utf8(body).unwrap();
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    assert!(!body.contains("event: error"), "{body}");
    assert_eq!(
        body.matches("\"delta\":{\"content\":").count(),
        15,
        "{body}"
    );
    assert_eq!(env.chat("m2").await.0, 200);
    env.stop().await;
}

#[tokio::test]
async fn reload_applies_limits_and_rotated_keys() {
    let m = mocks(1).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lifeline.toml");
    let base = config(&m, "", &one_tier(&m));
    std::fs::write(&path, &base).unwrap();
    let env = FileEnv::boot(&path, m).await;
    let mock = env._mocks[0].clone();
    assert_eq!(env.chat("m").await.0, 200);
    let last_auth = || {
        mock.stats()
            .recent
            .iter()
            .rfind(|r| r.method == "POST")
            .and_then(|r| r.authorization.clone())
    };
    assert_eq!(
        last_auth().as_deref(),
        Some(lifeline_mock::redact("Bearer sk-upstream-0").as_str())
    );

    let changed = base
        .replace("sk-upstream-0", "sk-rotated")
        .replace("[server]\n", "[server]\nmax_body_bytes = 16\n");
    std::fs::write(&path, &changed).unwrap();
    let (status, body) = env.reload().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(env.chat("m").await.0, 413, "new body limit not applied");
    std::fs::write(&path, changed.replace("max_body_bytes = 16\n", "")).unwrap();
    assert_eq!(env.reload().await.0, 200);
    assert_eq!(env.chat("m").await.0, 200);
    assert_eq!(
        last_auth().as_deref(),
        Some(lifeline_mock::redact("Bearer sk-rotated").as_str())
    );

    // A missing environment variable is a config error; the key stays.
    let var = "LIFELINE_TEST_SURELY_UNSET_VAR_41";
    std::fs::write(
        &path,
        base.replace("\"sk-upstream-0\"", &format!("\"${{{var}}}\"")),
    )
    .unwrap();
    let (status, body) = env.reload().await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains(var), "{body}");
    assert!(!body.contains("sk-rotated"), "{body}");
    assert_eq!(env.chat("m").await.0, 200);
    assert_eq!(
        last_auth().as_deref(),
        Some(lifeline_mock::redact("Bearer sk-rotated").as_str())
    );
    env.stop().await;
}

#[tokio::test]
async fn reload_starts_and_stops_in_process_simulated_providers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lifeline.toml");
    let with = |names: &[&str]| {
        let mut t = String::from("[server]\nlisten = \"127.0.0.1:0\"\nauth = \"none\"\nadmin_listen = \"127.0.0.1:0\"\n[admin]\ntoken = \"admin-secret\"\n");
        for n in names {
            t.push_str(&format!("[[providers]]\nname = \"{n}\"\nkind = \"mock\"\n"));
        }
        let members: Vec<String> = names
            .iter()
            .map(|n| format!("{{ provider = \"{n}\", model = \"x\" }}"))
            .collect();
        t.push_str(&format!(
            "[[models]]\nname = \"m\"\ntiers = [ [ {} ] ]\n",
            members.join(", ")
        ));
        t
    };
    std::fs::write(&path, with(&["sim-a", "sim-b"])).unwrap();
    let env = FileEnv::boot(&path, Vec::new()).await;
    let b = env.gw.mock("sim-b").await.expect("sim-b runs");
    assert_eq!(env.chat("m").await.0, 200);
    std::fs::write(&path, with(&["sim-a", "sim-c"])).unwrap();
    assert_eq!(env.reload().await.0, 200);
    assert!(
        env.gw.mock("sim-b").await.is_none(),
        "sim-b still registered"
    );
    assert!(env.gw.mock("sim-c").await.is_some(), "sim-c not started");
    // The removed provider's port is closed: it was stopped, not leaked.
    let gone = tokio::net::TcpStream::connect(b.addr()).await;
    assert!(gone.is_err(), "sim-b still accepts connections");
    for _ in 0..5 {
        assert_eq!(env.chat("m").await.0, 200);
    }
    env.stop().await;
}

#[tokio::test]
async fn a_drain_survives_a_reload_that_rebuilds_the_deployment() {
    let m = mocks(2).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lifeline.toml");
    let text = config(&m, "", &one_tier(&m));
    std::fs::write(&path, &text).unwrap();
    let env = FileEnv::boot(&path, m).await;
    let drained = env.gw.deployment("p0/up-0").expect("p0");
    drained.set_drained(true);
    // New [health] settings rebuild every deployment (fresh breakers).
    std::fs::write(
        &path,
        text.replace("[health]\n", "[health]\nwindow_ms = 20000\n"),
    )
    .unwrap();
    assert_eq!(env.reload().await.0, 200);
    let rebuilt = env.gw.deployment("p0/up-0").expect("p0");
    assert!(
        !std::sync::Arc::ptr_eq(&drained, &rebuilt),
        "not rebuilt: the test proves nothing"
    );
    assert!(rebuilt.is_drained(), "the reload undrained p0");
    env.stop().await;
}

/// `x-lifeline-attempts` of a response.
fn attempts_of(resp: &reqwest::Response) -> u32 {
    resp.headers()["x-lifeline-attempts"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

impl FileEnv {
    /// A chat completion for `m`; status and attempts made.
    async fn attempts(&self) -> (u16, u32) {
        let resp = self
            .client
            .post(format!("http://{}/v1/chat/completions", self.addr))
            .body(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), attempts_of(&resp))
    }
}

/// A reload that leaves the retry budget's settings alone keeps the budget:
/// a reload during an outage does not hand out a fresh allowance of retries.
/// Changed settings start a new one.
#[tokio::test]
async fn a_reload_keeps_the_retry_budget_when_its_settings_stay() {
    use crate::fo_support::{cfg, failing, layout};
    let m = mocks(2).await;
    for mock in &m {
        mock.set_faults(failing(500));
    }
    // Ten retries per 10 s and no more; breakers that never open.
    let server = [
        ("max_attempts", "2"),
        ("retry_budget_ratio", "0.0"),
        ("retry_budget_min_per_sec", "1"),
    ];
    let health = [
        ("consecutive_failures", "100000"),
        ("min_requests", "100000"),
    ];
    let text = cfg(&m, &server, &health, &layout(&[&[0, 1]]));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lifeline.toml");
    std::fs::write(&path, &text).unwrap();
    let env = FileEnv::boot(&path, m).await;
    for _ in 0..10 {
        assert_eq!(env.attempts().await, (503, 2));
    }
    assert_eq!(env.attempts().await, (503, 1), "the budget is not spent");
    // An unrelated change: the spent budget stays spent.
    std::fs::write(
        &path,
        text.replace("[server]\n", "[server]\nmax_body_bytes = 100000\n"),
    )
    .unwrap();
    assert_eq!(env.reload().await.0, 200);
    assert_eq!(
        env.attempts().await,
        (503, 1),
        "the reload reset the budget"
    );
    // A new budget setting: a new budget.
    std::fs::write(
        &path,
        text.replace(
            "retry_budget_min_per_sec = 1",
            "retry_budget_min_per_sec = 2",
        ),
    )
    .unwrap();
    assert_eq!(env.reload().await.0, 200);
    assert_eq!(env.attempts().await, (503, 2));
    env.stop().await;
}

/// Highest `in_flight` a mock shows over `window`.
async fn peak_in_flight(mock: &MockHandle, window: Duration) -> u64 {
    let end = tokio::time::Instant::now() + window;
    let mut peak = 0;
    while tokio::time::Instant::now() < end {
        peak = peak.max(mock.stats().in_flight);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    peak
}

/// A reload that changes a provider (here its key) keeps its concurrency
/// cap: requests in flight hold slots of the same semaphore the new ones
/// wait on, so the cap is never exceeded; a changed cap resizes it.
#[tokio::test]
async fn a_reload_never_lets_more_than_max_concurrency_through() {
    let m = mocks(1).await;
    // Each answer takes 1.5 s.
    pace(&m[0], 10.0, 15);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lifeline.toml");
    let base = config(&m, "", &one_tier(&m)).replace(
        "api_key = \"sk-upstream-0\"\n",
        "api_key = \"sk-upstream-0\"\nmax_concurrency = 2\n",
    );
    assert!(base.contains("max_concurrency = 2"));
    std::fs::write(&path, &base).unwrap();
    let env = std::sync::Arc::new(FileEnv::boot(&path, m).await);
    let mock = env._mocks[0].clone();
    let spawn = |n: usize| -> Vec<tokio::task::JoinHandle<u16>> {
        (0..n)
            .map(|_| {
                let env = env.clone();
                tokio::spawn(async move { env.chat("m").await.0 })
            })
            .collect()
    };
    let mut running = spawn(2);
    let m2 = mock.clone();
    assert!(
        crate::streaming::eventually(Duration::from_secs(5), || m2.stats().in_flight == 2).await
    );
    std::fs::write(&path, base.replace("sk-upstream-0", "sk-rotated")).unwrap();
    assert_eq!(env.reload().await.0, 200);
    running.extend(spawn(2));
    let peak = peak_in_flight(&mock, Duration::from_millis(500)).await;
    assert_eq!(peak, 2, "the reload let more than max_concurrency through");
    for r in running.drain(..) {
        assert_eq!(r.await.unwrap(), 200);
    }
    // A larger cap: one more slot, not a whole new set.
    running.extend(spawn(2));
    assert!(
        crate::streaming::eventually(Duration::from_secs(5), || mock.stats().in_flight == 2).await
    );
    std::fs::write(
        &path,
        base.replace("max_concurrency = 2", "max_concurrency = 3"),
    )
    .unwrap();
    assert_eq!(env.reload().await.0, 200);
    running.extend(spawn(2));
    let peak = peak_in_flight(&mock, Duration::from_millis(500)).await;
    assert_eq!(peak, 3, "the resized cap is not 3");
    for r in running {
        assert_eq!(r.await.unwrap(), 200);
    }
    match std::sync::Arc::try_unwrap(env) {
        Ok(env) => env.stop().await,
        Err(_) => panic!("requests still hold the test environment"),
    }
}

#[tokio::test]
async fn a_removed_deployment_leaves_no_frozen_state_gauges() {
    let m = mocks(1).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lifeline.toml");
    let base = config(&m, "", &one_tier(&m));
    std::fs::write(&path, format!("{base}{M2}")).unwrap();
    let env = FileEnv::boot(&path, m).await;
    assert_eq!(env.chat("m2").await.0, 200);
    let breaker = r#"lifeline_breaker_state{deployment="p0/up-two"}"#;
    assert!(env.gw.metrics().encode().contains(breaker));
    // m2 goes, and with it its only deployment.
    std::fs::write(&path, &base).unwrap();
    let (status, body) = env.reload().await;
    assert_eq!(status, 200, "{body}");
    let text = env.gw.metrics().encode();
    assert!(
        !text.contains(breaker),
        "a removed deployment's breaker state is still exported"
    );
    // The deployment that stays keeps its series.
    assert!(text.contains(r#"lifeline_breaker_state{deployment="p0/up-0"}"#));
    env.stop().await;
}
