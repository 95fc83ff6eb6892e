//! Boots simulated providers and a gateway on loopback port 0, and talks to
//! them over real HTTP.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use lifeline_core::{Config, Gateway, Server};
use lifeline_mock::{MockConfig, MockHandle, MockServer};
use tokio_util::sync::CancellationToken;

/// A running gateway and the simulated providers behind it.
pub struct Env {
    pub gw: Gateway,
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    /// The status listener, when the config has `status_listen`.
    pub status: Option<SocketAddr>,
    pub mocks: Vec<MockHandle>,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// Installs the TLS crypto provider reqwest needs (once per process).
pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Starts `n` simulated providers named p0, p1, ... with fast defaults.
pub async fn mocks(n: usize) -> Vec<MockHandle> {
    let mut v = Vec::new();
    for i in 0..n {
        let cfg = MockConfig {
            name: format!("p{i}"),
            tokens_per_second: 0.0,
            ttft_ms: 0,
            completion_tokens: 5,
            ..MockConfig::default()
        };
        v.push(
            MockServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), cfg)
                .await
                .expect("mock starts"),
        );
    }
    v
}

/// `[[providers]]` entries p0..pn for the mocks, openai-compatible.
pub fn providers(mocks: &[MockHandle]) -> String {
    mocks
        .iter()
        .enumerate()
        .map(|(i, m)| format!("[[providers]]\nname = \"p{i}\"\nkind = \"openai-compatible\"\nbase_url = \"{}\"\napi_key = \"sk-upstream-{i}\"\n\n", m.base_url()))
        .collect()
}

/// A config with `[server]` on port 0, short health timings, the given
/// extra `[server]` lines, the providers, and `models` (TOML text). It runs
/// open (`auth = "none"`) unless `server_extra` sets `auth` itself (a test
/// with `[[keys]]` passes `auth = "keys"`).
pub fn config(mocks: &[MockHandle], server_extra: &str, models: &str) -> String {
    let auth = if server_extra.contains("auth =") {
        ""
    } else {
        "auth = \"none\"\n"
    };
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{auth}{server_extra}\n\n[admin]\ntoken = \"admin-secret\"\n\n[health]\ncooldown_ms = 1000\nprobe_interval_ms = 100\nprobe_timeout_ms = 500\n\n{}{models}",
        providers(mocks)
    )
}

/// One model `m` with one tier over all the mocks.
pub fn one_tier(mocks: &[MockHandle]) -> String {
    let members: Vec<String> = (0..mocks.len())
        .map(|i| format!("{{ provider = \"p{i}\", model = \"up-{i}\" }}"))
        .collect();
    format!(
        "[[models]]\nname = \"m\"\ntiers = [ [ {} ] ]\n",
        members.join(", ")
    )
}

impl Env {
    /// Boots a gateway from config text.
    pub async fn boot(toml: &str, mocks: Vec<MockHandle>) -> Env {
        init();
        let config =
            Config::parse(toml, "<test>").unwrap_or_else(|e| panic!("config:\n{e}\n{toml}"));
        let gw = Gateway::start(config).await.expect("gateway starts");
        let bound = Server::bind(gw.clone()).await.expect("binds");
        let (addr, admin, status) = (bound.data_addr, bound.admin_addr, bound.status_addr);
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(bound.run(shutdown.clone()));
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .expect("client");
        Env {
            gw,
            addr,
            admin,
            status,
            mocks,
            client,
            shutdown,
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin.expect("admin listener"))
    }

    /// POSTs a JSON body; returns status, headers and the whole body.
    pub async fn post(&self, path: &str, body: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let resp = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .expect("request sent");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp
            .text()
            .await
            .unwrap_or_else(|e| format!("<body error: {e}>"));
        (status, headers, text)
    }

    /// A chat completion for model `m`.
    pub async fn chat(&self, stream: bool) -> (u16, reqwest::header::HeaderMap, String) {
        let body = format!("{{\"model\":\"m\",\"stream\":{stream},\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}");
        self.post("/v1/chat/completions", &body).await
    }

    /// Stops the gateway (drains) and its background tasks.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(s) = self.server.take() {
            let _ = s.await;
        }
        self.gw.close().await;
    }
}

/// Parses an OpenAI error body and returns `error.code`.
pub fn error_code(body: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    assert!(
        v["error"]["message"].is_string(),
        "no error.message in {body}"
    );
    assert!(v["error"].get("type").is_some(), "no error.type in {body}");
    v["error"]["code"].as_str().unwrap_or("").to_string()
}
