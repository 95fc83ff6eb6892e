//! Helpers for the failover, breaker and retry tests: whole config text with
//! every `[server]` and `[health]` key under the test's control, tier
//! layouts, admin and metrics reads, and polling with a deadline.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use lifeline_mock::{Faults, MockHandle};
use reqwest::header::HeaderMap;
use tokio::time::Instant;

use crate::harness::{providers, Env};

/// The admin token of every config built here.
pub const ADMIN_TOKEN: &str = "admin-secret";

/// Path the mocks count chat completions under.
const CHAT_PATH: &str = "/v1/chat/completions";

fn keys(defaults: &[(&str, &str)], overrides: &[(&str, &str)]) -> String {
    let mut all: Vec<(String, String)> = defaults
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    for (k, v) in overrides {
        match all.iter_mut().find(|(name, _)| name == k) {
            Some(entry) => entry.1 = (*v).to_string(),
            None => all.push(((*k).to_string(), (*v).to_string())),
        }
    }
    all.iter().map(|(k, v)| format!("{k} = {v}\n")).collect()
}

/// A whole config over `mocks`: small timeouts and fast health timings by
/// default, each replaceable by `server` and `health` overrides (key, TOML
/// value), and the given `[[models]]` text.
pub fn cfg(
    mocks: &[MockHandle],
    server: &[(&str, &str)],
    health: &[(&str, &str)],
    models: &str,
) -> String {
    let server = keys(
        &[
            ("connect_timeout_ms", "300"),
            ("first_byte_timeout_ms", "1000"),
            ("stream_idle_timeout_ms", "1000"),
            ("request_timeout_ms", "10000"),
            ("backoff_base_ms", "5"),
            ("backoff_max_ms", "50"),
        ],
        server,
    );
    let health = keys(
        &[
            ("cooldown_ms", "1000"),
            ("probe_interval_ms", "100"),
            ("probe_timeout_ms", "500"),
        ],
        health,
    );
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nauth = \"none\"\nadmin_listen = \"127.0.0.1:0\"\n{server}\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n\n[health]\n{health}\n{}{}",
        providers(mocks),
        models
    )
}

/// Model `m` whose tiers are lists of mock indexes: `&[&[0], &[1]]` is p0
/// alone, then p1 as the fallback. Mock `i` serves upstream model `up-i`,
/// so its deployment id is `p{i}/up-{i}`.
pub fn layout(tiers: &[&[usize]]) -> String {
    let tiers: Vec<String> = tiers
        .iter()
        .map(|tier| {
            let members: Vec<String> = tier
                .iter()
                .map(|i| format!("{{ provider = \"p{i}\", model = \"up-{i}\" }}"))
                .collect();
            format!("[ {} ]", members.join(", "))
        })
        .collect();
    format!(
        "[[models]]\nname = \"m\"\ntiers = [ {} ]\n",
        tiers.join(", ")
    )
}

/// The deployment id of mock `i`.
pub fn dep(i: usize) -> String {
    format!("p{i}/up-{i}")
}

/// `x-lifeline-deployment` of a response.
pub fn deployment(h: &HeaderMap) -> String {
    h.get("x-lifeline-deployment")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// `x-lifeline-attempts` of a response.
pub fn attempts(h: &HeaderMap) -> u32 {
    h.get("x-lifeline-attempts")
        .expect("x-lifeline-attempts header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Chat completions a mock received (probes, which GET `/models`, excluded).
pub fn chat_requests(m: &MockHandle) -> u64 {
    m.stats().by_path.get(CHAT_PATH).copied().unwrap_or(0)
}

/// Every request answered with `status`.
pub fn failing(status: u16) -> Faults {
    Faults {
        error_rate: 1.0,
        error_status: status,
        ..Faults::default()
    }
}

/// `GET /admin/deployments`.
pub async fn admin_deployments(env: &Env) -> Vec<serde_json::Value> {
    let text = env
        .client
        .get(env.admin_url("/admin/deployments"))
        .bearer_auth(ADMIN_TOKEN)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("admin reachable")
        .text()
        .await
        .expect("admin body");
    let v: serde_json::Value = serde_json::from_str(&text).expect("admin JSON");
    v["deployments"].as_array().expect("deployments").clone()
}

/// The admin view of one deployment.
pub async fn admin_deployment(env: &Env, id: &str) -> serde_json::Value {
    admin_deployments(env)
        .await
        .into_iter()
        .find(|d| d["id"] == id)
        .unwrap_or_else(|| panic!("no deployment {id} in admin"))
}

/// The breaker state of one deployment (`closed`, `open`, `half_open`).
pub async fn breaker(env: &Env, id: &str) -> String {
    admin_deployment(env, id).await["breaker"]
        .as_str()
        .expect("breaker")
        .to_string()
}

/// `POST` to an admin path; returns status and body.
pub async fn admin_post(env: &Env, path: &str) -> (u16, String) {
    let resp = env
        .client
        .post(env.admin_url(path))
        .bearer_auth(ADMIN_TOKEN)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("admin reachable");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// `/metrics` on the admin listener.
pub async fn metrics(env: &Env) -> String {
    env.client
        .get(env.admin_url("/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("metrics reachable")
        .text()
        .await
        .expect("metrics body")
}

/// Polls `check` every 50 ms until it holds; panics after `within`.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
