//! The status page in a real browser (`tests/browser/status.mjs`: headless
//! Chromium from Debian's package, playwright-core, axe-core): all
//! operational; every simulated provider fails and the page shows the
//! component down and an automatic incident; they recover and the incident
//! is resolved. No console errors, no serious or critical accessibility
//! violation, screenshots under `target/browser/`.
//!
//! `lifeline serve` runs as a child process with the status clock at 60×
//! (`[status] clock_speed`), so minutes of hysteresis and incident timers
//! pass in seconds. Needs `/usr/bin/chromium` and `npm ci` in
//! `tests/browser`: `.ci/run` installs both; without them the test fails
//! under CI (`CI=true`) and is skipped, with a message, elsewhere.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::cli::{free_port, wait_for, Proc, BIN};
use crate::harness::{init, mocks, providers};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether the browser and the npm packages are there; under CI their
/// absence is a failure, elsewhere a skip.
fn prerequisites() -> Option<(PathBuf, PathBuf)> {
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let script_dir = repo_root().join("tests/browser");
    let have_node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let missing: Vec<&str> = [
        (!chromium.exists()).then_some("chromium (apt-get install chromium chromium-driver)"),
        (!have_node).then_some("node"),
        (!script_dir.join("node_modules/playwright-core").exists())
            .then_some("tests/browser/node_modules (npm ci in tests/browser)"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if missing.is_empty() {
        return Some((chromium, script_dir));
    }
    let msg = format!("browser test needs: {}", missing.join(", "));
    assert!(std::env::var("CI").is_err(), "{msg}");
    eprintln!("SKIPPED: {msg}");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_tells_the_truth_in_a_real_browser() {
    init();
    let Some((chromium, script_dir)) = prerequisites() else {
        return;
    };
    let m = mocks(2).await;
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nauth = \"none\"\nadmin_listen = \"127.0.0.1:{admin}\"\n\n\
         [admin]\ntoken = \"admin-secret\"\n\n\
         [health]\ncooldown_ms = 1000\nprobe_interval_ms = 200\nprobe_timeout_ms = 500\n\n\
         [store]\nurl = \"sqlite://status.db\"\n\n\
         [status]\ntitle = \"Acme AI status\"\nclock_speed = 60\nopen_after_ms = 60000\nresolve_after_ms = 120000\n\n\
         {}[[models]]\nname = \"m\"\ntiers = [ [ {{ provider = \"p0\", model = \"up-0\" }}, {{ provider = \"p1\", model = \"up-1\" }} ] ]\n",
        providers(&m)
    );
    std::fs::write(dir.path().join("lifeline.toml"), toml).unwrap();
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let _serve = Proc(
        Command::new(BIN)
            .args(["serve", "--config", "lifeline.toml"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("lifeline serve starts"),
    );
    let logs = || std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let up = wait_for(
        &client,
        &format!("{base}/status"),
        Duration::from_secs(30),
        |r| r.is_some_and(|(s, _)| *s == 200),
    )
    .await;
    assert!(up, "the status page never answered; stderr:\n{}", logs());

    let shots = repo_root().join("target/browser");
    let mocks_urls: Vec<String> = m
        .iter()
        .map(|h| h.base_url().trim_end_matches("/v1").to_string())
        .collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("status.mjs")
            .current_dir(&script_dir)
            .env("STATUS_URL", &base)
            .env("GATEWAY_URL", &base)
            .env("MODEL", "m")
            .env("MOCKS", mocks_urls.join(","))
            .env("SCREENSHOT_DIR", &shots)
            .env("CHROMIUM", &chromium)
            .env("WAIT_MS", "90000")
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test failed:\n{stdout}\n{stderr}\nlifeline stderr:\n{}",
        logs()
    );
    assert!(stdout.contains("[browser] ok"), "{stdout}");
}
