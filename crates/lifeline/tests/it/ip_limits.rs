//! Per-client-IP limits and `[server] auth`, black box over real sockets:
//! brute force on keys from one address is refused with 429 and
//! `Retry-After` while another address is served; `X-Forwarded-For` counts
//! only from a trusted proxy; an open data plane (`auth = "none"`) is
//! limited per address, serves without a key and says so in its log; keys
//! with `auth = "none"` are a config error naming file, line and field;
//! IPv6 clients count per /64; refusals are not logged one line each;
//! wrong admin tokens lock an address out of the admin API.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::cli::{free_port, wait_for, Proc, BIN};
use crate::harness::{config, error_code, init, mocks, one_tier, Env};

/// `GET /v1/models` as the client at `xff` (sent as `X-Forwarded-For`)
/// with `key`: status, `Retry-After`, body.
async fn models(env: &Env, xff: &str, key: Option<&str>) -> (u16, Option<u64>, String) {
    let mut req = env
        .client
        .get(env.url("/v1/models"))
        .header("x-forwarded-for", xff)
        .timeout(Duration::from_secs(10));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (status, after, resp.text().await.unwrap())
}

async fn metrics(env: &Env) -> String {
    env.client
        .get(env.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn with_key(m: &[lifeline_mock::MockHandle], server: &str) -> String {
    let keys = "\n[[keys]]\nname = \"app\"\nkey = \"sk-good-client\"\n";
    config(m, &format!("auth = \"keys\"\n{server}"), &one_tier(m)) + keys
}

#[tokio::test]
async fn brute_force_from_one_address_is_refused_while_another_is_served() {
    let m = mocks(1).await;
    let toml = with_key(
        &m,
        "trusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1\"]\nip_auth_failures_per_minute = 3",
    );
    let env = Env::boot(&toml, m).await;
    let (attacker, other) = ("203.0.113.7", "198.51.100.9, 10.1.2.3");
    // A missing key is no guess: it never locks an address out.
    for _ in 0..5 {
        assert_eq!(models(&env, attacker, None).await.0, 401);
    }
    // Three wrong keys are answered 401; the third locks the address out.
    for i in 0..3 {
        let (status, _, body) = models(&env, attacker, Some(&format!("ll-guess-{i}"))).await;
        assert_eq!(status, 401, "{body}");
    }
    // Refused: 429 in OpenAI's shape with Retry-After (a minute / 3), even
    // with the right key, which is not checked.
    for key in ["ll-guess-4", "sk-good-client"] {
        let (status, after, body) = models(&env, attacker, Some(key)).await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(error_code(&body), "rate_limit_exceeded");
        assert!(after.is_some_and(|s| (1..=20).contains(&s)), "{after:?}");
    }
    // The data path too.
    let resp = env
        .client
        .post(env.url("/v1/chat/completions"))
        .header("x-forwarded-for", attacker)
        .bearer_auth("sk-good-client")
        .body(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    // Another client behind the same proxies is served.
    assert_eq!(models(&env, other, Some("sk-good-client")).await.0, 200);
    let (status, _, body) = env.chat(false).await;
    assert_eq!(status, 401, "{body}");
    let text = metrics(&env).await;
    assert!(text.contains("lifeline_auth_failures_total 3"), "{text}");
    assert!(
        text.contains("lifeline_ip_rate_limited_total{reason=\"auth_failures\"} 3"),
        "{text}"
    );
    for secret in [attacker, "198.51.100.9", "sk-good-client", "ll-guess"] {
        assert!(!text.contains(secret), "{secret} in metrics");
    }
    env.stop().await;
}

#[tokio::test]
async fn forwarded_for_is_ignored_from_an_untrusted_peer() {
    let m = mocks(1).await;
    let toml = with_key(&m, "ip_auth_failures_per_minute = 3");
    let env = Env::boot(&toml, m).await;
    // Each guess claims another address: all are counted under the peer's.
    for i in 0..3 {
        let xff = format!("203.0.113.{i}");
        assert_eq!(models(&env, &xff, Some("ll-guess")).await.0, 401);
    }
    let (status, after, _) = models(&env, "198.51.100.1", Some("sk-good-client")).await;
    assert_eq!(status, 429);
    assert!(after.is_some());
    env.stop().await;
}

#[tokio::test]
async fn an_open_data_plane_is_limited_per_address() {
    let m = mocks(1).await;
    let toml = config(
        &m,
        "trusted_proxies = [\"127.0.0.1\"]\nip_requests_per_minute = 2",
        &one_tier(&m),
    );
    let env = Env::boot(&toml, m).await;
    for _ in 0..2 {
        assert_eq!(models(&env, "203.0.113.7", None).await.0, 200);
    }
    let (status, after, body) = models(&env, "203.0.113.7", None).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(error_code(&body), "rate_limit_exceeded");
    assert!(after.is_some_and(|s| (1..=30).contains(&s)), "{after:?}");
    assert_eq!(models(&env, "198.51.100.9", None).await.0, 200);
    let text = metrics(&env).await;
    assert!(
        text.contains("lifeline_ip_rate_limited_total{reason=\"requests\"} 1"),
        "{text}"
    );
    env.stop().await;
}

#[tokio::test]
async fn auth_none_serves_without_a_key_and_says_so_and_refuses_keys() {
    init();
    let m = mocks(1).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nauth = \"none\"\n\n[[providers]]\nname = \"p0\"\nkind = \"openai-compatible\"\nbase_url = \"{}\"\n\n[[models]]\nname = \"m\"\ntiers = [ [ {{ provider = \"p0\", model = \"up-0\" }} ] ]\n\n[store]\nurl = \"sqlite://open.db\"\n",
        m[0].base_url()
    );
    std::fs::write(d.join("lifeline.toml"), &toml).unwrap();
    let _proc = Proc(
        Command::new(BIN)
            .args(["serve", "--config", "lifeline.toml"])
            .current_dir(d)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("serve.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/v1/models");
    let served = wait_for(&client, &url, Duration::from_secs(20), |r| {
        r.is_some_and(|(s, _)| *s == 200)
    })
    .await;
    let log = std::fs::read_to_string(d.join("serve.log")).unwrap();
    assert!(served, "{log}");
    assert!(log.contains("The data plane is open"), "{log}");

    // The same file with a key: an error on the auth line, naming the keys'.
    let bad = format!("{toml}\n[[keys]]\nname = \"app\"\nkey = \"sk-x\"\n");
    std::fs::write(d.join("bad.toml"), bad).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config", "bad.toml"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains(
            "bad.toml:3: server.auth: is \"none\", but [[keys]] are configured (line 17)"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn ipv6_guesses_count_per_slash_64_and_refusals_do_not_flood_the_log() {
    init();
    let m = mocks(1).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\ntrusted_proxies = [\"127.0.0.1\"]\nip_auth_failures_per_minute = 3\n\n[[providers]]\nname = \"p0\"\nkind = \"openai-compatible\"\nbase_url = \"{}\"\n\n[[models]]\nname = \"m\"\ntiers = [ [ {{ provider = \"p0\", model = \"up-0\" }} ] ]\n\n[[keys]]\nname = \"app\"\nkey = \"sk-good-client\"\n\n[store]\nurl = \"sqlite://guess.db\"\n",
        m[0].base_url()
    );
    std::fs::write(d.join("lifeline.toml"), &toml).unwrap();
    let mut proc = Proc(
        Command::new(BIN)
            .args(["serve", "--config", "lifeline.toml"])
            .current_dir(d)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("serve.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let log = || std::fs::read_to_string(d.join("serve.log")).unwrap_or_default();
    let up = wait_for(
        &client,
        &format!("{base}/healthz"),
        Duration::from_secs(20),
        |r| r.is_some_and(|(s, _)| *s == 200),
    )
    .await;
    assert!(up, "{}", log());
    let chat = |xff: String, key: &'static str| {
        client
            .post(format!("{base}/v1/chat/completions"))
            .header("x-forwarded-for", xff)
            .bearer_auth(key)
            .body(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#)
            .timeout(Duration::from_secs(10))
            .send()
    };
    // Every guess from a new address of one /64: one client all the same.
    let mut got = Vec::new();
    for i in 1..=20 {
        let resp = chat(format!("2001:db8:1:2::{i:x}"), "ll-guess")
            .await
            .unwrap();
        got.push(resp.status().as_u16());
    }
    assert_eq!(got[..3], [401, 401, 401], "{got:?}");
    assert!(got[3..].iter().all(|s| *s == 429), "{got:?}");
    // The next /64 is another client; so is an IPv4 address.
    let other = chat("2001:db8:1:3::1".into(), "sk-good-client")
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    let v4 = chat("203.0.113.9".into(), "ll-guess").await.unwrap();
    assert_eq!(v4.status(), 401);
    proc.0.kill().unwrap();
    proc.0.wait().unwrap();
    // 18 refusals, at the default level: no line each, one for the lockout.
    let text = log();
    assert!(!text.contains("Request rejected."), "{text}");
    assert_eq!(
        text.matches("Client address locked out").count(),
        1,
        "{text}"
    );
}

#[tokio::test]
async fn wrong_admin_tokens_lock_an_address_out_of_the_admin_api() {
    let m = mocks(1).await;
    let toml = config(
        &m,
        "trusted_proxies = [\"127.0.0.1\"]\nip_auth_failures_per_minute = 3",
        &one_tier(&m),
    );
    let env = Env::boot(&toml, m).await;
    let admin = |xff: &'static str, token: &'static str| {
        env.client
            .get(env.admin_url("/admin/deployments"))
            .header("x-forwarded-for", xff)
            .bearer_auth(token)
            .timeout(Duration::from_secs(10))
            .send()
    };
    let attacker = "203.0.113.7";
    for _ in 0..3 {
        assert_eq!(admin(attacker, "guess").await.unwrap().status(), 401);
    }
    // Locked out: even the right token is not checked.
    let resp = admin(attacker, "admin-secret").await.unwrap();
    assert_eq!(resp.status(), 429);
    let after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&after), "{after}");
    // Another address is served.
    let resp = admin("198.51.100.9", "admin-secret").await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = metrics(&env).await;
    assert!(
        text.contains("lifeline_admin_auth_failures_total 3"),
        "{text}"
    );
    assert!(
        text.contains("lifeline_ip_rate_limited_total{reason=\"admin_auth_failures\"} 1"),
        "{text}"
    );
    // The data plane's own count is apart.
    assert!(text.contains("lifeline_auth_failures_total 0"), "{text}");
    env.stop().await;
}
