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
