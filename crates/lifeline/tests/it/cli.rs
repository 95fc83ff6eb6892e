//! The `lifeline` binary, black box: `check` explains errors with file, line
//! and field and sets its exit code; `serve` answers, reloads on SIGHUP, and
//! on SIGTERM stops taking new work while a stream in flight completes, then
//! exits 0.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use crate::harness::{init, mocks};
use crate::streaming::{pace, stream_body};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_lifeline");

/// A child process killed (by its own handle) if the test ends early.
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {sig} failed");
}

/// A port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

const BAD: &str = r#"[server]
listen = "127.0.0.1:0"

[[providers]]
name = "p0"
kind = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"

[[models]]
name = "m"
tiers = [ [ { provider = "nope", model = "x" } ] ]
"#;

fn check(dir: &Path, file: &str) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(["check", "--config", file])
        .current_dir(dir)
        .output()
        .expect("lifeline check runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn check_explains_errors_and_sets_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), BAD).unwrap();
    let (code, text) = check(dir.path(), "bad.toml");
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("bad.toml:11: models[0].tiers[0][0].provider:"),
        "{text}"
    );
    assert!(text.contains("nope"), "{text}");

    std::fs::write(
        dir.path().join("typed.toml"),
        "[server]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = \"big\"\n",
    )
    .unwrap();
    let (code, text) = check(dir.path(), "typed.toml");
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("typed.toml:3: server.max_body_bytes"),
        "{text}"
    );

    std::fs::write(
        dir.path().join("good.toml"),
        BAD.replace("\"nope\"", "\"p0\""),
    )
    .unwrap();
    let (code, text) = check(dir.path(), "good.toml");
    assert_eq!(code, Some(0), "{text}");

    let (code, text) = check(dir.path(), "missing.toml");
    assert_eq!(code, Some(1), "{text}");
}

fn serve_config(port: u16, admin: u16, mock: &lifeline_mock::MockHandle, extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nauth = \"none\"\nadmin_listen = \"127.0.0.1:{admin}\"\ndrain_timeout_ms = 10000\n\n[[providers]]\nname = \"p0\"\nkind = \"openai-compatible\"\nbase_url = \"{}\"\n\n[[models]]\nname = \"m\"\ntiers = [ [ {{ provider = \"p0\", model = \"up-0\" }} ] ]\n{extra}",
        mock.base_url()
    )
}

async fn get(client: &reqwest::Client, url: &str) -> Option<(u16, String)> {
    let resp = client
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.text().await.ok()?))
}

/// Polls `url` until `ok` accepts the answer, for at most `limit`.
pub(crate) async fn wait_for(
    client: &reqwest::Client,
    url: &str,
    limit: Duration,
    ok: impl Fn(Option<&(u16, String)>) -> bool,
) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if ok(get(client, url).await.as_ref()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn serve_answers_reloads_on_sighup_and_drains_on_sigterm() {
    init();
    let m = mocks(1).await;
    pace(&m[0], 10.0, 20);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lifeline.toml");
    let (port, admin) = (free_port(), free_port());
    std::fs::write(&path, serve_config(port, admin, &m[0], "")).unwrap();
    let log = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
    let mut proc = Proc(
        Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&path)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("lifeline serve starts"),
    );
    let logs = || std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
    let base = format!("http://127.0.0.1:{port}");
    // A fresh client per probe: no pooled connection outlives the listener.
    let fresh = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    };
    let up = wait_for(
        &fresh(),
        &format!("{base}/healthz"),
        Duration::from_secs(20),
        |r| r.is_some_and(|(s, _)| *s == 200),
    )
    .await;
    assert!(up, "serve never answered /healthz; stderr:\n{}", logs());
    assert!(logs().contains("Lifeline is serving."), "{}", logs());

    // SIGHUP with a changed file: the new model appears.
    let m2 =
        "\n[[models]]\nname = \"m2\"\ntiers = [ [ { provider = \"p0\", model = \"up-0\" } ] ]\n";
    std::fs::write(&path, serve_config(port, admin, &m[0], m2)).unwrap();
    signal(&proc.0, "-HUP");
    let reloaded = wait_for(
        &fresh(),
        &format!("{base}/v1/models"),
        Duration::from_secs(5),
        |r| r.is_some_and(|(s, b)| *s == 200 && b.contains("\"m2\"")),
    )
    .await;
    assert!(reloaded, "SIGHUP did not reload; stderr:\n{}", logs());

    // SIGTERM while a ~2 s stream is in flight.
    let client = fresh();
    let mut resp = client
        .post(format!("{base}/v1/chat/completions"))
        .body(stream_body("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.chunk().await.unwrap().expect("first chunk").to_vec();
    signal(&proc.0, "-TERM");
    let not_ready = wait_for(
        &fresh(),
        &format!("{base}/readyz"),
        Duration::from_secs(3),
        |r| r.is_none_or(|(s, _)| *s == 503),
    )
    .await;
    assert!(not_ready, "still ready after SIGTERM; stderr:\n{}", logs());
    let rest = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(c) = resp.chunk().await.expect("stream cut by shutdown") {
            body.extend_from_slice(&c);
        }
    })
    .await;
    assert!(rest.is_ok(), "stream did not finish");
    let body = String::from_utf8(body).unwrap();
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    assert_eq!(
        body.matches("\"delta\":{\"content\":").count(),
        20,
        "{body}"
    );

    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = proc.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "serve did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit {status:?}; stderr:\n{}", logs());
    // No upstream key was configured, but no prompt text should be logged either.
    assert!(!logs().contains("\"content\":\"hi\""), "prompt in logs");
}

#[tokio::test]
async fn mock_serve_status_and_drain_timeout() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let (mock_port, port, admin) = (free_port(), free_port(), free_port());
    let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
    let _mock = Proc(
        Command::new(BIN)
            .args(["mock", "--listen", &format!("127.0.0.1:{mock_port}")])
            .args(["--tokens-per-second", "5", "--completion-tokens", "50"])
            .stdout(Stdio::null())
            .stderr(log("mock.log"))
            .spawn()
            .expect("lifeline mock starts"),
    );
    // The status side is off: its store calls run on blocking threads, and
    // this test counts the process's threads.
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nauth = \"none\"\nadmin_listen = \"127.0.0.1:{admin}\"\ndrain_timeout_ms = 500\n\n[status]\nenabled = false\n\n[admin]\ntoken = \"admin-secret\"\n\n[[providers]]\nname = \"p0\"\nkind = \"openai-compatible\"\nbase_url = \"http://127.0.0.1:{mock_port}/v1\"\napi_key = \"sk-upstream-cli\"\n\n[[models]]\nname = \"m\"\ntiers = [ [ {{ provider = \"p0\", model = \"up-0\" }} ] ]\n"
    );
    let path = dir.path().join("lifeline.toml");
    std::fs::write(&path, toml).unwrap();
    let mut proc = Proc(
        Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&path)
            .current_dir(dir.path())
            // One worker: the single-threaded runtime serves, streams and drains.
            .env("LIFELINE_WORKER_THREADS", "1")
            .stdout(Stdio::null())
            .stderr(log("serve.log"))
            .spawn()
            .expect("lifeline serve starts"),
    );
    let logs = || std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mock_up = wait_for(
        &client,
        &format!("http://127.0.0.1:{mock_port}/v1/models"),
        Duration::from_secs(20),
        |r| r.is_some_and(|(s, _)| *s == 200),
    )
    .await;
    assert!(mock_up, "lifeline mock never answered");
    let base = format!("http://127.0.0.1:{port}");
    let up = wait_for(
        &client,
        &format!("{base}/readyz"),
        Duration::from_secs(20),
        |r| r.is_some_and(|(s, _)| *s == 200),
    )
    .await;
    assert!(up, "serve never ready; stderr:\n{}", logs());

    // A 10 s stream, then `lifeline status` while it runs.
    let mut resp = client
        .post(format!("{base}/v1/chat/completions"))
        .body(stream_body("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.chunk().await.unwrap().expect("first chunk").to_vec();
    let status = Command::new(BIN)
        .args(["status", "--admin", &format!("http://127.0.0.1:{admin}")])
        .args(["--token", "admin-secret"])
        .output()
        .expect("lifeline status runs");
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(out.contains("p0/up-0"), "{out}");
    assert!(!out.contains("sk-upstream-cli"), "{out}");
    let json = Command::new(BIN)
        .args([
            "status",
            "--json",
            "--admin",
            &format!("http://127.0.0.1:{admin}"),
        ])
        .args(["--token", "admin-secret"])
        .output()
        .expect("lifeline status --json runs");
    let v: serde_json::Value =
        serde_json::from_slice(&json.stdout).expect("status --json prints JSON");
    assert_eq!(v["deployments"][0]["id"], "p0/up-0", "{v}");
    assert_eq!(v["deployments"][0]["in_flight"], 1, "{v}");
    // Every thread but the blocking pool's (the status side's store calls;
    // `comm` is cut to 15 bytes): the main thread alone runs the runtime.
    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", proc.0.id()))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .filter(|c| c != &"lifeline-blocking"[..15])
        .collect();
    assert_eq!(
        threads.len(),
        1,
        "LIFELINE_WORKER_THREADS=1 did not give a single-threaded runtime: {threads:?}"
    );

    // SIGTERM: the stream cannot finish within the 500 ms drain timeout, so
    // the process exits anyway and the stream is not made to look complete.
    let t = Instant::now();
    signal(&proc.0, "-TERM");
    let end = Instant::now() + Duration::from_secs(8);
    let exit = loop {
        if let Some(s) = proc.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "serve ignored its drain timeout");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit {exit:?}; stderr:\n{}", logs());
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    while let Ok(Some(c)) = resp.chunk().await {
        body.extend_from_slice(&c);
    }
    let body = String::from_utf8_lossy(&body);
    assert!(
        !body.contains("[DONE]"),
        "cut stream looks complete: {body}"
    );
    assert!(logs().contains("Drain timeout reached"), "{}", logs());
    assert!(!logs().contains("sk-upstream-cli"), "key in logs");
}

/// `serve --print-example` writes a config that `check` accepts: the
/// starting point a newcomer copies is valid as printed.
#[test]
fn printed_example_is_a_valid_config() {
    let bin = env!("CARGO_BIN_EXE_lifeline");
    let out = std::process::Command::new(bin)
        .args(["serve", "--print-example"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("[[models]]") && text.contains("name = \"demo\""),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lifeline.toml");
    std::fs::write(&path, text).unwrap();
    let check = std::process::Command::new(bin)
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}
