//! Keys through the admin API and the audit log, black box: `lifeline
//! serve` with its store; keys created with `POST /admin/keys` work on the
//! data plane within about a second, are listed without secrets, and stop
//! working within about a second of `DELETE`; bad input gets a precise 400;
//! every admin write (API and CLI) and a drain land in the audit log with
//! the token's id and the caller's address, never a token or a key.
//! A reload on SIGHUP is audited too (actor `signal:SIGHUP`, source `local`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use crate::cli::{free_port, Proc, BIN};
use crate::harness::{init, mocks};

const TOKEN: &str = "admin-secret-for-keys";

struct Serve {
    _proc: Proc,
    dir: tempfile::TempDir,
    base: String,
    admin: String,
    client: reqwest::Client,
    _mocks: Vec<lifeline_mock::MockHandle>,
}

impl Serve {
    async fn start() -> Serve {
        init();
        let m = mocks(1).await;
        let dir = tempfile::tempdir().unwrap();
        let (port, admin) = (free_port(), free_port());
        let toml = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin}\"\n\n\
             [admin]\ntoken = \"{TOKEN}\"\n\n\
             [[providers]]\nname = \"p0\"\nkind = \"openai-compatible\"\nbase_url = \"{}\"\n\n\
             [[models]]\nname = \"m\"\ntiers = [ [ {{ provider = \"p0\", model = \"up-0\" }} ] ]\n\n\
             [store]\nurl = \"sqlite://admin.db\"\n",
            m[0].base_url()
        );
        std::fs::write(dir.path().join("lifeline.toml"), toml).unwrap();
        let proc = Proc(
            Command::new(BIN)
                .args(["serve", "--config", "lifeline.toml"])
                .current_dir(dir.path())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.path().join("serve.log")).unwrap())
                .spawn()
                .unwrap(),
        );
        let s = Serve {
            _proc: proc,
            dir,
            base: format!("http://127.0.0.1:{port}"),
            admin: format!("http://127.0.0.1:{admin}"),
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            _mocks: m,
        };
        // The admin routes of the store are there once the status side runs.
        let end = Instant::now() + Duration::from_secs(30);
        while s.api("GET", "/admin/keys", None).await.0 != 200 {
            assert!(Instant::now() < end, "never ready:\n{}", s.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        s
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// An admin request with a raw body; status and JSON (`Null` if none).
    async fn raw(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let mut req = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.admin))
            .bearer_auth(TOKEN)
            .timeout(Duration::from_secs(10));
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.raw(method, path, body.map(|b| b.to_string()).as_deref())
            .await
    }

    /// `GET /v1/models` with `key`.
    async fn data(&self, key: &str) -> u16 {
        self.client
            .get(format!("{}/v1/models", self.base))
            .bearer_auth(key)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_or(0, |r| r.status().as_u16())
    }

    /// How long until the data plane answers `want` to `key` (panics after 10 s).
    async fn until(&self, key: &str, want: u16) -> Duration {
        let start = Instant::now();
        while self.data(key).await != want {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "never {want}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        start.elapsed()
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(BIN)
            .args(args)
            .args(["--config", "lifeline.toml"])
            .current_dir(self.dir.path())
            .env("USER", "ops-alice")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_created_listed_and_revoked_through_the_admin_api() {
    let s = Serve::start().await;
    let (status, created) = s
        .api(
            "POST",
            "/admin/keys",
            Some(json!({"name": "tenant-a", "priority": "batch", "rpm": 600, "models": ["m"]})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_i64().unwrap();
    assert!(key.starts_with("ll-") && key.len() == 67, "{created}");
    assert_eq!(created["priority"], "batch");
    assert_eq!(created["rpm"], 600);
    // Accepted on the data plane within about a second (the store is read
    // every second; the bound is generous for a loaded machine).
    let took = s.until(&key, 200).await;
    assert!(took < Duration::from_secs(5), "{took:?}");

    let (status, list) = s.api("GET", "/admin/keys", None).await;
    assert_eq!(status, 200);
    let text = list.to_string();
    assert!(text.contains("tenant-a"), "{text}");
    assert!(!text.contains(&key) && !text.contains(&key[7..]), "{text}");
    assert!(
        !text.contains("sha256") && !text.contains("\"key\""),
        "{text}"
    );
    assert_eq!(list["keys"][0]["prefix"], &key[..7]);

    let (status, revoked) = s.api("DELETE", &format!("/admin/keys/{id}"), None).await;
    assert_eq!(status, 200, "{revoked}");
    assert!(revoked["revoked"]["revoked_at"].is_i64(), "{revoked}");
    let took = s.until(&key, 401).await;
    assert!(took < Duration::from_secs(5), "{took:?}");

    // Bad input: a precise 400, nothing written.
    let cases: [(&str, &str); 5] = [
        ("{\"name\": \"x\",", "Invalid JSON body"),
        (
            r#"{"name": "x", "priority": "urgent"}"#,
            "`priority` must be critical, standard or batch, got \"urgent\"",
        ),
        (r#"{"name": "x", "rpm": 0}"#, "`rpm` must be at least 1"),
        (
            r#"{"name": "x", "colour": "red"}"#,
            "unknown field `colour`",
        ),
        (r#"{"name": "x", "expires": "soon"}"#, "`expires`"),
    ];
    for (body, needle) in cases {
        let (status, answer) = s.raw("POST", "/admin/keys", Some(body)).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let msg = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{body}: {msg}");
    }
    assert_eq!(s.api("DELETE", "/admin/keys/999", None).await.0, 404);
    let (_, list) = s.api("GET", "/admin/keys", None).await;
    assert_eq!(list["keys"].as_array().unwrap().len(), 1, "{list}");
    assert!(!s.log().contains(&key), "the key is in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_actions_are_in_the_audit_log_with_token_id_and_source() {
    let s = Serve::start().await;
    // The token's id is keyed by the store's secret (made at the first start).
    let secret = {
        use lifeline_store::AuditStore;
        let store = lifeline_store::SqliteStore::open(s.dir().join("admin.db")).unwrap();
        store.actor_id_secret([0; 16]).unwrap()
    };
    assert_ne!(secret, [0; 16]);
    let token_id = lifeline_core::extension::token_id(&secret, TOKEN);
    assert!(token_id.starts_with("token:"), "{token_id}");
    let (_, created) = s
        .api("POST", "/admin/keys", Some(json!({"name": "via-api"})))
        .await;
    let (id, key) = (
        created["id"].as_i64().unwrap(),
        created["key"].as_str().unwrap().to_owned(),
    );
    assert_eq!(
        s.api("DELETE", &format!("/admin/keys/{id}"), None).await.0,
        200
    );
    let (status, drained) = s
        .api("POST", "/admin/deployments/p0/up-0/drain", None)
        .await;
    assert_eq!(status, 200, "{drained}");
    // A read is not an action.
    assert_eq!(s.api("GET", "/admin/keys", None).await.0, 200);
    // The drain is written off the request path: wait for it.
    let s = &s;
    let entries = |n: usize| async move {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, log) = s.api("GET", "/admin/audit?limit=10", None).await;
            assert_eq!(status, 200, "{log}");
            let entries = log["entries"].as_array().unwrap().clone();
            if entries.len() >= n || Instant::now() > end {
                break entries;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_eq!(entries(3).await.len(), 3);
    let cli = s.cli(&["keys", "create", "--name", "via-cli"]);
    let cli_key = cli.lines().last().unwrap().trim().to_owned();
    let entries = entries(4).await;
    let actions: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["target"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
            )
        })
        .collect();
    let (id_s, cli_id) = (id.to_string(), (id + 1).to_string());
    assert_eq!(
        actions,
        [
            ("key.create", cli_id.as_str(), "cli:ops-alice"),
            ("deployment.drain", "p0/up-0", token_id.as_str()),
            ("key.revoke", id_s.as_str(), token_id.as_str()),
            ("key.create", id_s.as_str(), token_id.as_str()),
        ],
        "{entries:?}"
    );
    for e in &entries[1..] {
        let source = e["source"].as_str().unwrap();
        assert!(source.starts_with("127.0.0.1:"), "{e}");
        assert!(e["at"].as_i64().unwrap() > 1_700_000_000_000, "{e}");
    }
    assert_eq!(entries[0]["source"], "local");
    // Paging: newest first, `before` continues.
    let (_, page) = s.api("GET", "/admin/audit?limit=2", None).await;
    let next = page["next_before"].as_i64().unwrap();
    let (_, rest) = s
        .api("GET", &format!("/admin/audit?limit=10&before={next}"), None)
        .await;
    assert_eq!(rest["entries"].as_array().unwrap().len(), 2, "{rest}");
    assert_eq!(rest["entries"][0]["action"], "key.revoke");
    assert_eq!(s.api("GET", "/admin/audit?before=x", None).await.0, 400);

    // The CLI shows the same, newest first.
    let out = s.cli(&["audit", "--limit", "3"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[1].contains("cli:ops-alice") && lines[1].contains("key.create"),
        "{out}"
    );
    assert!(
        lines[2].contains("deployment.drain") && lines[2].contains(&token_id),
        "{out}"
    );

    // No token and no key anywhere: not in the log, not in the store's file.
    let (_, all) = s.api("GET", "/admin/audit", None).await;
    let text = all.to_string() + &out + &s.log();
    for secret in [TOKEN, key.as_str(), cli_key.as_str()] {
        assert!(!text.contains(secret), "{secret} leaked");
    }
    let db = std::fs::read(s.dir().join("admin.db")).unwrap_or_default();
    let wal = std::fs::read(s.dir().join("admin.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
            "the token is in the store"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_stands_when_its_audit_entry_cannot_be_written() {
    let s = Serve::start().await;
    // Another writer holds the store's write lock past its busy timeout.
    let db = rusqlite::Connection::open(s.dir().join("admin.db")).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    let start = Instant::now();
    let (status, body) = s
        .api("POST", "/admin/deployments/p0/up-0/drain", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(body["drained"], true, "{body}");
    let end = Instant::now() + Duration::from_secs(20);
    while !s.log().contains("An audit log entry was lost") {
        assert!(Instant::now() < end, "no warning:\n{}", s.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    db.execute_batch("ROLLBACK").unwrap();
    // The store works again: the next action is recorded, the lost one is not.
    assert_eq!(
        s.api("POST", "/admin/deployments/p0/up-0/undrain", None)
            .await
            .0,
        200
    );
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, log) = s.api("GET", "/admin/audit", None).await;
        let actions: Vec<&str> = log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        if !actions.is_empty() {
            assert_eq!(actions, ["deployment.undrain"]);
            break;
        }
        assert!(Instant::now() < end, "never recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_reload_is_in_the_audit_log() {
    let s = Serve::start().await;
    let hup = || {
        let status = Command::new("kill")
            .args(["-HUP", &s._proc.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    let s = &s;
    // Written off the signal handler: wait for `n` entries.
    let entries = |n: usize| async move {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, log) = s.api("GET", "/admin/audit?limit=10", None).await;
            let entries = log["entries"].as_array().cloned().unwrap_or_default();
            if entries.len() >= n || Instant::now() > end {
                break entries;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    hup();
    let got = entries(1).await;
    assert_eq!(got.len(), 1, "{got:?}\n{}", s.log());
    assert_eq!(got[0]["action"], "config.reload", "{got:?}");
    assert_eq!(got[0]["actor"], "signal:SIGHUP", "{got:?}");
    assert_eq!(got[0]["source"], "local", "{got:?}");
    assert_eq!(got[0]["target"], "-", "{got:?}");
    // An invalid file is rejected, and that is recorded too.
    let path = s.dir().join("lifeline.toml");
    let mut toml = std::fs::read_to_string(&path).unwrap();
    toml.push_str("\n[nonsense\n");
    std::fs::write(&path, toml).unwrap();
    hup();
    let got = entries(2).await;
    assert_eq!(got.len(), 2, "{got:?}\n{}", s.log());
    assert_eq!(got[0]["action"], "config.reload_rejected", "{got:?}");
    assert_eq!(got[0]["actor"], "signal:SIGHUP", "{got:?}");
    assert_eq!(got[0]["source"], "local", "{got:?}");
}
