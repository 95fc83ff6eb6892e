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
    assert_eq!(last_auth().as_deref(), Some("Bearer sk-upstream-0"));

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
    assert_eq!(last_auth().as_deref(), Some("Bearer sk-rotated"));

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
    assert_eq!(last_auth().as_deref(), Some("Bearer sk-rotated"));
    env.stop().await;
}

#[tokio::test]
async fn reload_starts_and_stops_in_process_simulated_providers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lifeline.toml");
    let with = |names: &[&str]| {
        let mut t = String::from("[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[admin]\ntoken = \"admin-secret\"\n");
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
