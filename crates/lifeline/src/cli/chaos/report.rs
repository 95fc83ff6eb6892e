//! What a run reports: the serde types of `report.json`, the scorecard
//! table printed at the end, and the files `--report DIR` writes
//! (`report.json`, and `report.html` from [`super::html`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// The whole run.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Report {
    /// The config file, or `<built-in>`.
    pub config: String,
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    /// Each scenario's fault schedule length, in seconds.
    pub duration_s: u64,
    /// Concurrent clients.
    pub concurrency: usize,
    /// Every scenario that ran passed.
    pub pass: bool,
    /// One per scenario, in run order.
    pub scenarios: Vec<ScenarioResult>,
}

/// One scenario's measurements and verdict.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ScenarioResult {
    /// Its name.
    pub name: String,
    /// What happens in it.
    pub description: String,
    /// `pass`, `fail`, or `skipped` (with the reason in `skipped_because`).
    pub verdict: String,
    /// Why it did not run, when skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_because: Option<String>,
    /// Seconds it ran, settling included.
    pub ran_s: f64,
    /// Its fault windows.
    pub windows: Vec<WindowReport>,
    /// Each expectation, measured.
    pub expectations: Vec<ExpectationResult>,
    /// Requests by outcome kind (`ok`, `stale`, `http_5xx`, `truncated`, ...).
    pub totals: BTreeMap<String, u64>,
    /// One example message per failure kind.
    pub examples: BTreeMap<String, String>,
    /// Incidents the status page opened, with when they were seen opened
    /// and resolved (seconds since the scenario started).
    pub incidents: Vec<IncidentSeen>,
    /// One sample per second.
    pub samples: Vec<Sample>,
}

/// One fault window.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct WindowReport {
    /// Start, seconds since the scenario started.
    pub start_s: f64,
    /// End, seconds since the scenario started.
    pub end_s: f64,
    /// The target, in words.
    pub target: String,
    /// The providers it hit.
    pub providers: Vec<String>,
    /// The fault, in words.
    pub fault: String,
    /// Seconds from the start until it was noticed (by the scenario's
    /// detection signal), if it was.
    #[serde(default)]
    pub detected_after_s: Option<f64>,
    /// Seconds from the end until traffic was back, if it was.
    #[serde(default)]
    pub recovered_after_s: Option<f64>,
}

/// One expectation and its verdict.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ExpectationResult {
    /// What is expected, e.g. `success ratio`.
    pub name: String,
    /// The bound, in words (`>= 99.0 %`).
    pub required: String,
    /// What was measured, in words.
    pub measured: String,
    /// Whether it held.
    pub pass: bool,
}

/// An incident the status page opened during a scenario.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct IncidentSeen {
    /// The store's id.
    pub id: i64,
    /// Its title.
    pub name: String,
    /// Seconds since the scenario started when it was first seen.
    pub opened_s: f64,
    /// When it was first seen resolved.
    pub resolved_s: Option<f64>,
}

/// One second of a scenario.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// The second (requests finished in `[t_s, t_s + 1)`).
    pub t_s: u32,
    /// Requests finished.
    pub requests: u64,
    /// Of which successes (stale included).
    pub successes: u64,
    /// Of which stale answers.
    pub stale: u64,
    /// Failures by kind.
    pub failures: BTreeMap<String, u64>,
    /// successes / requests (1 when none finished).
    pub success_ratio: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// 99th percentile latency by priority, ms.
    pub p99_by_priority_ms: BTreeMap<String, f64>,
    /// Each deployment's worst breaker state in the second.
    pub breakers: BTreeMap<String, String>,
    /// Requests each simulated provider received in the second.
    pub received: BTreeMap<String, u64>,
    /// Incidents open on the status page at the end of the second.
    pub incidents_open: u32,
}

impl ScenarioResult {
    /// Whether it failed (a skipped scenario did not).
    pub fn failed(&self) -> bool {
        self.verdict == "fail"
    }
}

/// Prints the scorecard: one row per expectation, grouped by scenario.
pub fn print_scorecard(report: &Report) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "\nScorecard")?;
    writeln!(
        out,
        "{:<24} {:<8} {:<34} {:<24} measured",
        "scenario", "verdict", "expectation", "required"
    )?;
    writeln!(out, "{}", "-".repeat(120))?;
    for s in &report.scenarios {
        let verdict = s.verdict.to_uppercase();
        if let Some(why) = &s.skipped_because {
            writeln!(out, "{:<24} {:<8} {why}", s.name, verdict)?;
            continue;
        }
        for (i, e) in s.expectations.iter().enumerate() {
            let (name, v) = if i == 0 {
                (s.name.as_str(), verdict.as_str())
            } else {
                ("", "")
            };
            writeln!(
                out,
                "{name:<24} {v:<8} {:<34} {:<24} {}{}",
                e.name,
                e.required,
                e.measured,
                if e.pass { "" } else { "   <-- FAILED" }
            )?;
        }
    }
    let failed = report.scenarios.iter().filter(|s| s.failed()).count();
    let ran = report
        .scenarios
        .iter()
        .filter(|s| s.skipped_because.is_none())
        .count();
    writeln!(
        out,
        "\n{}: {} of {ran} scenario(s) passed{}.",
        if report.pass { "PASS" } else { "FAIL" },
        ran - failed,
        match report.scenarios.len() - ran {
            0 => String::new(),
            n => format!(", {n} skipped"),
        }
    )
}

/// Writes `report.json` and `report.html` into `dir` (created if needed).
pub fn write(report: &Report, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_vec_pretty(report).context("serializing the report")?;
    let path = dir.join("report.json");
    std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
    let path = dir.join("report.html");
    std::fs::write(&path, super::html::render(report))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
