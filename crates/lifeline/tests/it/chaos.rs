//! `lifeline chaos`, black box: a short run of provider-fault scenarios on
//! the built-in config passes and writes `report.json` (every scenario's
//! samples, windows and verdicts) and a self-contained `report.html` (an
//! inline SVG timeline per scenario); a bound that is not met fails the
//! scorecard and exits non-zero, as a pipeline needs.

use std::path::Path;
use std::process::Command;

use crate::cli::BIN;

fn chaos(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .arg("chaos")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("lifeline chaos runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn a_short_run_passes_and_writes_both_reports() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text) = chaos(
        dir.path(),
        &[
            "--scenario",
            "provider-down",
            "--scenario",
            "streams-cut",
            "--duration",
            "10",
            "--report",
            "out",
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Scorecard"), "{text}");
    assert!(text.contains("PASS: 2 of 2 scenario(s) passed"), "{text}");

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/report.json")).unwrap())
            .unwrap();
    assert_eq!(json["pass"], true);
    let scenarios = json["scenarios"].as_array().unwrap();
    let names: Vec<&str> = scenarios
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["provider-down", "streams-cut"]);
    for s in scenarios {
        assert_eq!(s["verdict"], "pass", "{s}");
        assert!(s["samples"].as_array().unwrap().len() >= 10, "{s}");
        assert_eq!(s["windows"].as_array().unwrap().len(), 1);
        let expectations = s["expectations"].as_array().unwrap();
        assert!(expectations.iter().all(|e| e["pass"] == true));
        assert!(expectations
            .iter()
            .any(|e| e["name"] == "truncated answers shown as success" && e["measured"] == "0"));
    }
    let down = &scenarios[0];
    assert!(down["windows"][0]["detected_after_s"].as_f64().is_some());
    assert!(!down["incidents"].as_array().unwrap().is_empty(), "{down}");

    let html = std::fs::read_to_string(dir.path().join("out/report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 2, "one timeline per scenario");
    assert!(!html.contains("<script"), "no JavaScript");
    assert!(
        !html.contains("src=") && !html.contains("<link"),
        "no external assets"
    );
    assert!(html.contains("provider-down") && html.contains("streams-cut"));
}

/// A bound the run cannot meet (every request successful while every
/// provider is down for 3 s of 8) fails the expectation, the scenario and
/// the run: the scorecard says so and the exit status is 1.
#[test]
fn a_failing_expectation_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text) = chaos(
        dir.path(),
        &[
            "--scenario",
            "all-down",
            "--duration",
            "8",
            "--min-success",
            "99.9",
            "--report",
            "out",
        ],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("FAIL: 0 of 1 scenario(s) passed"), "{text}");
    assert!(text.contains("<-- FAILED"), "{text}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/report.json")).unwrap())
            .unwrap();
    assert_eq!(json["pass"], false);
    let s = &json["scenarios"][0];
    assert_eq!(s["verdict"], "fail");
    let expectations = s["expectations"].as_array().unwrap();
    let ratio = expectations
        .iter()
        .find(|e| e["name"] == "success ratio")
        .unwrap();
    assert_eq!(ratio["pass"], false, "{ratio}");
    assert_eq!(ratio["required"], ">= 99.9 %");
    // The others still hold: only the broken bound fails.
    let honest = expectations
        .iter()
        .find(|e| e["name"] == "fresh-looking successes, all down")
        .unwrap();
    assert_eq!(honest["pass"], true, "{honest}");
}

#[test]
fn unknown_scenarios_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text) = chaos(dir.path(), &["--scenario", "nope"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("no scenario \"nope\""), "{text}");
    assert!(text.contains("provider-down"), "{text}");
}
