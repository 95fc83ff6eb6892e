//! `lifeline chaos`, gateway-level scenarios, black box: short runs on the
//! built-in config pass, and their reports carry what each fault measured
//! (the abusive key's 429s, the restart's drain, the maintenance on the
//! page, the drill's records and recovery time, the store outage's
//! catch-up, the surge's refusals by priority).

use std::path::Path;
use std::process::Command;

use crate::cli::BIN;

/// Runs `lifeline chaos` with `scenarios` for `duration` seconds; the
/// report as JSON.
fn run(dir: &Path, scenarios: &[&str], duration: &str) -> serde_json::Value {
    let mut args = vec!["chaos", "--duration", duration, "--report", "out"];
    for s in scenarios {
        args.extend(["--scenario", s]);
    }
    let out = Command::new(BIN)
        .args(&args)
        .current_dir(dir)
        .output()
        .expect("lifeline chaos runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("out/report.json")).unwrap()).unwrap();
    assert_eq!(json["pass"], true, "{text}");
    json
}

/// The expectation named `name` of scenario `s`.
fn expectation<'a>(s: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    s["expectations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no expectation {name:?} in {s}"))
}

#[test]
fn abuse_restart_maintenance_and_recovery_pass() {
    let dir = tempfile::tempdir().unwrap();
    let json = run(
        dir.path(),
        &[
            "abusive-key",
            "gateway-restart",
            "maintenance-window",
            "disaster-recovery",
        ],
        "8",
    );
    let s = json["scenarios"].as_array().unwrap();
    assert!(s.iter().all(|s| s["verdict"] == "pass"), "{json}");

    let abuse = expectation(&s[0], "abusive key's requests answered 429");
    assert_eq!(abuse["pass"], true);
    assert!(s[0]["totals"]["http_429"].as_u64().unwrap() > 0, "{}", s[0]);

    let restart = expectation(&s[1], "gateway restarted");
    assert!(
        restart["measured"]
            .as_str()
            .unwrap()
            .starts_with("drained in"),
        "{restart}"
    );

    let shown = expectation(&s[2], "status page shows the maintenance");
    assert_eq!(shown["measured"], "shown");
    assert!(s[2]["windows"][0]["detected_after_s"].as_f64().is_some());

    let kept = expectation(
        &s[3],
        "records acknowledged before the backup, after the restore",
    );
    assert!(
        kept["measured"].as_str().unwrap().starts_with("2 of 2"),
        "{kept}"
    );
    let lost = expectation(&s[3], "lost: acknowledged after the backup");
    assert_eq!(
        lost["measured"],
        "Chaos drill: acknowledged after the backup"
    );
}

#[test]
fn surge_reload_and_store_outage_pass() {
    let dir = tempfile::tempdir().unwrap();
    let json = run(
        dir.path(),
        &["traffic-surge", "config-reload", "store-unavailable"],
        "8",
    );
    let s = json["scenarios"].as_array().unwrap();
    let critical = expectation(&s[0], "success ratio, critical");
    assert_eq!(critical["pass"], true, "{critical}");
    let reloads = expectation(&s[1], "config reloads applied");
    assert_eq!(reloads["pass"], true, "{reloads}");
    assert_eq!(
        expectation(&s[1], "success ratio")["measured"]
            .as_str()
            .unwrap()
            .split(' ')
            .next(),
        Some("100.00")
    );
    let stopped = expectation(
        &s[2],
        "status history written while the store was unavailable",
    );
    assert_eq!(stopped["measured"], "none");
    let caught_up = expectation(&s[2], "status history caught up after the store returned");
    assert_eq!(caught_up["pass"], true, "{caught_up}");
}

/// `--against`: a `lifeline serve` child whose three providers are
/// `lifeline mock` children (the built-in config's shape, written as a
/// staging config would be); the provider scenarios run with their faults
/// set through each mock's control API and pass, the gateway-level ones
/// are skipped (they need the gateway in hand), and the mocks are left
/// without faults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_running_gateway_with_mocks() {
    use crate::cli::{free_port, wait_for, Proc};
    use std::time::Duration;

    crate::harness::init();
    let dir = tempfile::tempdir().unwrap();
    let mut mocks = Vec::new();
    let mut ports = Vec::new();
    for name in ["mock-a", "mock-b", "mock-c"] {
        let port = free_port();
        mocks.push(Proc(
            Command::new(BIN)
                .args([
                    "mock",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--name",
                    name,
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        ));
        ports.push(port);
    }
    let gw = free_port();
    let config = format!(
        r#"[server]
listen = "127.0.0.1:{gw}"
auth = "none"

[status]
enabled = false

[[providers]]
name = "mock-a"
kind = "openai-compatible"
base_url = "http://127.0.0.1:{a}/v1"
api_key = "staging"

[[providers]]
name = "mock-b"
kind = "openai-compatible"
base_url = "http://127.0.0.1:{b}/v1"
api_key = "staging"

[[providers]]
name = "mock-c"
kind = "openai-compatible"
base_url = "http://127.0.0.1:{c}/v1"
api_key = "staging"

[[models]]
name = "demo"
tiers = [
  [ {{ provider = "mock-a", model = "demo-a", weight = 1 }},
    {{ provider = "mock-b", model = "demo-b", weight = 1 }} ],
  [ {{ provider = "mock-c", model = "demo-c" }} ],
]
"#,
        a = ports[0],
        b = ports[1],
        c = ports[2]
    );
    std::fs::write(dir.path().join("staging.toml"), config).unwrap();
    let _serve = Proc(
        Command::new(BIN)
            .args(["serve", "--config", "staging.toml"])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::new();
    let up = |url: String| {
        let client = client.clone();
        async move {
            wait_for(&client, &url, Duration::from_secs(20), |r| {
                r.is_some_and(|(s, _)| *s == 200)
            })
            .await
        }
    };
    for p in &ports {
        assert!(up(format!("http://127.0.0.1:{p}/_mock/stats")).await);
    }
    assert!(up(format!("http://127.0.0.1:{gw}/readyz")).await);

    let url = format!("http://127.0.0.1:{gw}");
    let mock_args: Vec<String> = ["mock-a", "mock-b", "mock-c"]
        .iter()
        .zip(&ports)
        .map(|(n, p)| format!("{n}=127.0.0.1:{p}"))
        .collect();
    let mut args = vec![
        "chaos".to_string(),
        "--config".into(),
        "staging.toml".into(),
        "--against".into(),
        url,
        "--duration".into(),
        "8".into(),
        "--report".into(),
        "out".into(),
    ];
    for s in ["provider-down", "rate-limit-storm", "traffic-surge"] {
        args.extend(["--scenario".to_string(), s.to_string()]);
    }
    for m in &mock_args {
        args.extend(["--mock".to_string(), m.clone()]);
    }
    let dir_path = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(&args)
            .current_dir(dir_path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/report.json")).unwrap())
            .unwrap();
    let s = json["scenarios"].as_array().unwrap();
    assert_eq!(s[0]["verdict"], "pass", "{text}");
    assert_eq!(s[1]["verdict"], "pass", "{text}");
    assert_eq!(s[2]["verdict"], "skipped", "{text}");
    // Detected from what the mocks received, without the gateway's breakers.
    assert!(
        s[0]["windows"][0]["detected_after_s"].as_f64().is_some(),
        "{}",
        s[0]
    );
    // The mock that went down took no requests while it was down, and every
    // fault was lifted at the end.
    for p in &ports {
        let faults = reqwest::get(format!("http://127.0.0.1:{p}/_mock/faults"))
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap();
        assert_eq!(faults["reset"], false, "{faults}");
        assert_eq!(faults["rate_limit_rate"], 0.0, "{faults}");
    }
}

/// `silent-clients`: connections that send nothing are closed at the
/// (shortened) idle timeout, streams never read are cut at the write-stall
/// timeout and their upstream requests cancelled, and the gateway's
/// in-flight count falls back to the steady clients' own.
#[test]
fn silent_clients_are_cut_and_released() {
    let dir = tempfile::tempdir().unwrap();
    let json = run(dir.path(), &["silent-clients"], "20");
    let s = &json["scenarios"][0];
    assert_eq!(s["verdict"], "pass", "{s}");
    for name in [
        "silent connections closed by the gateway",
        "never-read streams cut by the gateway",
        "requests in flight at the gateway after the cuts",
        "upstream requests of the cut streams cancelled",
    ] {
        assert_eq!(expectation(s, name)["pass"], true, "{name}: {s}");
    }
    let cut = expectation(s, "never-read streams cut by the gateway");
    assert!(
        cut["measured"].as_str().unwrap().starts_with("12 of 12"),
        "{cut}"
    );
}
