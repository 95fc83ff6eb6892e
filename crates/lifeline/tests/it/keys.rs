//! Virtual keys, black box: `lifeline keys create|list|revoke` write the
//! config's store while `lifeline serve` runs; the gateway picks a new key
//! up, and drops a revoked one, within a few seconds; the key is shown once
//! and never appears in `keys list` nor in the gateway's log; keys survive
//! a restart (and are in force before the first request after it).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use crate::cli::{free_port, Proc, BIN};
use crate::harness::{init, mocks};

fn config(port: u16, mock: &lifeline_mock::MockHandle) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[[providers]]\nname = \"p0\"\nkind = \"openai-compatible\"\nbase_url = \"{}\"\n\n[[models]]\nname = \"m\"\ntiers = [ [ {{ provider = \"p0\", model = \"up-0\" }} ] ]\n\n[store]\nurl = \"sqlite://keys.db\"\n",
        mock.base_url()
    )
}

/// Runs `lifeline keys ARGS --config lifeline.toml` in `dir`; its stdout.
fn keys(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("keys")
        .args(args)
        .args(["--config", "lifeline.toml"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keys {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `keys create`: the key's id and the key.
fn create(dir: &Path, args: &[&str]) -> (i64, String) {
    let mut all = vec!["create"];
    all.extend_from_slice(args);
    let out = keys(dir, &all);
    let id = out.split_whitespace().nth(2).unwrap().parse().unwrap();
    let key = out.lines().last().unwrap().trim().to_owned();
    assert!(key.starts_with("ll-") && key.len() == 67, "{out}");
    assert!(key[3..].bytes().all(|b| b.is_ascii_hexdigit()), "{out}");
    (id, key)
}

fn serve(dir: &Path, log: &str) -> Proc {
    Proc(
        Command::new(BIN)
            .args(["serve", "--config", "lifeline.toml"])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(log)).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// `GET /v1/models` with `key` (none: no header); the status.
async fn status(base: &str, key: Option<&str>) -> u16 {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut req = client
        .get(format!("{base}/v1/models"))
        .timeout(Duration::from_secs(2));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req.send().await.map_or(0, |r| r.status().as_u16())
}

/// Polls until `GET /v1/models` with `key` answers `want`, for at most
/// `limit`.
async fn until(base: &str, key: Option<&str>, want: u16, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if status(base, key).await == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn stored_keys_are_accepted_revoked_and_survive_a_restart() {
    init();
    let m = mocks(1).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    std::fs::write(d.join("lifeline.toml"), config(port, &m[0])).unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let logs = |name: &str| std::fs::read_to_string(d.join(name)).unwrap_or_default();

    let mut proc = serve(d, "serve-1.log");
    // auth = "keys" (the default) and no key in the config nor in the
    // store: every request is refused, with the way out in the answer and
    // in the startup log.
    assert!(
        until(&base, None, 401, Duration::from_secs(20)).await,
        "serve never answered; stderr:\n{}",
        logs("serve-1.log")
    );
    let refused = reqwest::get(format!("{base}/v1/models")).await.unwrap();
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["type"], "authentication_error", "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("lifeline keys create") && msg.contains("auth = \"none\""),
        "{msg}"
    );
    assert!(
        logs("serve-1.log").contains("No client key exists"),
        "{}",
        logs("serve-1.log")
    );

    let (a_id, a) = create(
        d,
        &[
            "--name",
            "tenant-a",
            "--priority",
            "batch",
            "--rpm",
            "120",
            "--models",
            "m,other",
        ],
    );
    let (_, b) = create(d, &["--name", "tenant-b"]);
    assert!(
        until(&base, Some(&a), 200, Duration::from_secs(10)).await,
        "stderr:\n{}",
        logs("serve-1.log")
    );
    // With a stored key: none, or a wrong one, is still refused.
    assert!(until(&base, None, 401, Duration::from_secs(10)).await);
    assert_eq!(status(&base, Some("ll-0000")).await, 401);
    assert_eq!(status(&base, Some(&b)).await, 200);
    // The data path too.
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(&a)
        .json(&serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // The list shows what was stored, never a key.
    let list = keys(d, &["list"]);
    for want in [
        "tenant-a",
        "tenant-b",
        &a[..7],
        "batch",
        "standard",
        "120",
        "m,other",
        "all",
    ] {
        assert!(list.contains(want), "{want} in\n{list}");
    }
    assert!(!list.contains(&a[7..]) && !list.contains(&b[7..]), "{list}");

    // Use is recorded: tenant-b's "last used" fills in.
    let end = Instant::now() + Duration::from_secs(10);
    let b_used = loop {
        let list = keys(d, &["list"]);
        let row = list
            .lines()
            .find(|l| l.contains("tenant-b"))
            .unwrap()
            .to_owned();
        // Created and last used are times; expires and revoked are "-".
        if row.matches('Z').count() == 2 || Instant::now() > end {
            break row;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(b_used.trim_end().ends_with('Z'), "last used in {b_used}");

    // A revoked key stops working; the other one goes on.
    let revoked = keys(d, &["revoke", &a_id.to_string()]);
    assert!(revoked.contains("Revoked key"), "{revoked}");
    assert!(
        until(&base, Some(&a), 401, Duration::from_secs(10)).await,
        "the revoked key still works"
    );
    assert_eq!(status(&base, Some(&b)).await, 200);
    let list = keys(d, &["list"]);
    let a_row = list.lines().find(|l| l.contains("tenant-a")).unwrap();
    assert!(a_row.matches('Z').count() >= 2, "revoked time in {a_row}");

    // A restart: the stored keys are in force from the first answer on.
    drop(proc);
    proc = serve(d, "serve-2.log");
    let end = Instant::now() + Duration::from_secs(20);
    let first = loop {
        let s = status(&base, None).await;
        if s != 0 || Instant::now() > end {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(first, 401, "stderr:\n{}", logs("serve-2.log"));
    assert_eq!(status(&base, Some(&b)).await, 200);
    assert_eq!(status(&base, Some(&a)).await, 401);
    drop(proc);

    // No key in any log line.
    for log in ["serve-1.log", "serve-2.log"] {
        let text = logs(log);
        assert!(
            text.contains("Client keys from the store installed."),
            "{text}"
        );
        for key in [&a, &b] {
            assert!(!text.contains(&key[7..]), "a key in {log}:\n{text}");
        }
    }
}
