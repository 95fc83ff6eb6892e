//! The status side end to end: `lifeline serve` runs as a child process
//! over in-process simulated providers, and the tests talk to it the way
//! its users do, over real sockets:
//!
//! - [`documents`]: the public routes (the eight `/api/v2/*.json`
//!   documents, the HTML page, the feeds, the badges; GET and HEAD), the
//!   page on its own `status_listen`, and the static export;
//! - [`operators`]: operators through the `lifeline incident` and
//!   `lifeline maintenance` CLI and the admin API, and bad input refused;
//! - [`incidents`]: hostile text, an incident that survives `kill -9`, and
//!   an automatic incident opened and resolved from real traffic;
//! - [`webhooks`]: signed deliveries, the delivery log and its retry;
//! - [`maintenance`]: a window that drains and gives back on time;
//! - [`store`]: a locked store, a store that cannot be opened, `lifeline
//!   backup` and `lifeline restore`.
//!
//! This module is their harness: [`Serve`] writes a config and runs the
//! binary, and reads the page and the admin API; [`shapes`] checks
//! Statuspage's documents field by field. Every test has its own temporary
//! directory (the working directory of the process, and its store) and its
//! own ports.

mod documents;
mod incidents;
mod maintenance;
mod operators;
mod shapes;
mod store;
mod webhooks;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use lifeline_mock::MockHandle;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::cli::{free_port, wait_for, Proc, BIN};
use crate::harness::{init, providers};

const TOKEN: &str = "admin-secret";

/// Knobs of one test's config.
#[derive(Default, Clone, Copy)]
struct Options<'a> {
    /// Extra `[status]` lines.
    status: &'a str,
    /// Serve the page on its own listener.
    status_listen: bool,
    /// The store's path, relative to the working directory (`status.db`
    /// when `None`).
    store: Option<&'a str>,
}

/// The status clock at 60×: a status minute per real second.
const FAST: Options<'static> = Options {
    status: "clock_speed = 60",
    status_listen: false,
    store: None,
};

/// A running `lifeline serve --config lifeline.toml` and where it listens.
struct Serve {
    dir: PathBuf,
    /// The data listener's base URL.
    data: String,
    /// The admin listener's base URL.
    admin: String,
    /// The status listener's base URL, when configured.
    status: Option<String>,
    /// The store's file.
    store: PathBuf,
    proc: Option<Proc>,
    log: PathBuf,
    client: reqwest::Client,
}

impl Serve {
    /// Writes `lifeline.toml` into `dir` and starts `lifeline serve` there
    /// (working directory `dir`): `[server]` on fresh ports, the admin
    /// token, quick health timings, the store, the page's title and
    /// `opts.status`, the mocks as p0..pn and model `m` over all of them in
    /// one tier. Returns at once.
    fn spawn(dir: &Path, mocks: &[MockHandle], opts: Options<'_>) -> Serve {
        init();
        let (port, admin) = (free_port(), free_port());
        let status_port = opts.status_listen.then(free_port);
        let status_listen = status_port
            .map(|p| format!("status_listen = \"127.0.0.1:{p}\"\n"))
            .unwrap_or_default();
        let store = opts.store.unwrap_or("status.db");
        let members: Vec<String> = (0..mocks.len())
            .map(|i| format!("{{ provider = \"p{i}\", model = \"up-{i}\" }}"))
            .collect();
        let toml = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nauth = \"none\"\nadmin_listen = \"127.0.0.1:{admin}\"\n{status_listen}drain_timeout_ms = 2000\n\n\
             [admin]\ntoken = \"{TOKEN}\"\n\n\
             [health]\ncooldown_ms = 1000\nprobe_interval_ms = 200\nprobe_timeout_ms = 500\n\n\
             [store]\nurl = \"sqlite://{store}\"\n\n\
             [status]\ntitle = \"Acme AI status\"\n{}\n\n\
             {}[[models]]\nname = \"m\"\ntiers = [ [ {} ] ]\n",
            opts.status,
            providers(mocks),
            members.join(", ")
        );
        std::fs::write(dir.join("lifeline.toml"), toml).unwrap();
        // A new log per start: a restarted process does not hide the first one's.
        let n = std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("serve"))
            })
            .count();
        let log = dir.join(format!("serve{n}.log"));
        let proc = Proc(
            Command::new(BIN)
                .args(["serve", "--config", "lifeline.toml"])
                .current_dir(dir)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("lifeline serve starts"),
        );
        Serve {
            dir: dir.to_path_buf(),
            data: format!("http://127.0.0.1:{port}"),
            admin: format!("http://127.0.0.1:{admin}"),
            status: status_port.map(|p| format!("http://127.0.0.1:{p}")),
            store: dir.join(store),
            proc: Some(proc),
            log,
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        }
    }

    /// [`Serve::spawn`], then waits until the status page and the admin
    /// listener answer.
    async fn start(dir: &Path, mocks: &[MockHandle], opts: Options<'_>) -> Serve {
        let serve = Serve::spawn(dir, mocks, opts);
        let page = format!("{}/status", serve.page());
        let up = wait_for(&serve.client, &page, Duration::from_secs(30), |r| {
            r.is_some_and(|(s, _)| *s == 200)
        })
        .await;
        assert!(
            up,
            "the status page never answered; stderr:\n{}",
            serve.logs()
        );
        let admin_up = wait_for(
            &serve.client,
            &format!("{}/healthz", serve.admin),
            Duration::from_secs(10),
            |r| r.is_some_and(|(s, _)| *s == 200),
        )
        .await;
        assert!(admin_up, "admin listener never answered:\n{}", serve.logs());
        serve
    }

    /// Where the public page is served.
    fn page(&self) -> &str {
        self.status.as_deref().unwrap_or(&self.data)
    }

    /// `path` on the data listener.
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.data)
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id of `lifeline serve`.
    fn pid(&self) -> u32 {
        self.proc.as_ref().expect("serve runs").0.id()
    }

    /// GET on the public side: status, headers, body.
    async fn get(&self, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let resp = self
            .client
            .get(format!("{}{path}", self.page()))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.logs()));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.text().await.unwrap())
    }

    /// A public JSON document, parsed.
    async fn json(&self, path: &str) -> Value {
        let (status, headers, body) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(
            header(&headers, "content-type"),
            "application/json; charset=utf-8",
            "{path}"
        );
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path} is not JSON ({e}): {body}"))
    }

    /// Polls a public JSON document until `ok` accepts it; panics with the
    /// last one after `limit`.
    async fn poll_json(&self, path: &str, limit: Duration, ok: impl Fn(&Value) -> bool) -> Value {
        let got = eventually(limit, || async {
            let v = self.json(path).await;
            ok(&v).then_some(v)
        })
        .await;
        match got {
            Some(v) => v,
            None => panic!(
                "{path} never became as expected; last:\n{:#}\nstderr:\n{}",
                self.json(path).await,
                self.logs()
            ),
        }
    }

    /// Polls a public text document until it answers 200 and `ok` accepts
    /// its body.
    async fn poll_text(&self, path: &str, limit: Duration, ok: impl Fn(&str) -> bool) -> String {
        let got = eventually(limit, || async {
            let (status, _, body) = self.get(path).await;
            (status == 200 && ok(&body)).then_some(body)
        })
        .await;
        match got {
            Some(body) => body,
            None => {
                let (status, _, body) = self.get(path).await;
                panic!(
                    "{path} never became as expected; last ({status}):\n{body}\nstderr:\n{}",
                    self.logs()
                )
            }
        }
    }

    /// An admin API call with the token and, when given, a JSON body:
    /// status and parsed answer.
    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.admin_request(method, path, body.map(|b| b.to_string()))
            .await
    }

    /// An admin API call with this body as is (it may be malformed on
    /// purpose), labelled JSON.
    async fn admin_text(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        self.admin_request(method, path, Some(body.to_string()))
            .await
    }

    async fn admin_request(&self, method: &str, path: &str, body: Option<String>) -> (u16, Value) {
        let mut req = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.admin))
            .bearer_auth(TOKEN)
            .timeout(Duration::from_secs(30));
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}; stderr:\n{}", self.logs()));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path} answered no JSON ({e}): {text}"));
        (status, value)
    }

    /// Opens an incident on `chat-m` through the admin API; returns it.
    async fn open_incident(&self, name: &str) -> Value {
        let (status, incident) = self
            .admin(
                "POST",
                "/admin/incidents",
                Some(json!({"name": name, "body": "We are looking into it.", "components": ["chat-m"], "impact": "major"})),
            )
            .await;
        assert_eq!(status, 201, "{incident}");
        incident
    }

    /// Runs `lifeline ARGS --admin … --token …`; returns its stdout, and
    /// fails the test if it fails.
    async fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .args(["--admin", &self.admin, "--token", TOKEN])
            .current_dir(&self.dir);
        let out = tokio::task::spawn_blocking(move || cmd.output().expect("lifeline runs"))
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "lifeline {args:?} failed:\n{stdout}{}\nserve stderr:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        stdout
    }

    /// The id of the component serving model `m` in the chat family, read
    /// from components.json.
    async fn chat_component(&self) -> String {
        let v = self.json("/api/v2/components.json").await;
        let c = v["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["group"] == false && c["name"] == "m")
            .unwrap_or_else(|| panic!("no component for model m: {v:#}"));
        c["id"].as_str().unwrap().to_string()
    }

    /// Every deployment's `drained` flag, by id.
    async fn drained(&self) -> Vec<(String, bool)> {
        let (status, v) = self.admin("GET", "/admin/deployments", None).await;
        assert_eq!(status, 200, "{v}");
        v["deployments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["id"].as_str().unwrap().to_string(),
                    d["drained"].as_bool().unwrap(),
                )
            })
            .collect()
    }

    /// SIGTERM, and the exit status 0 within 20 s.
    async fn stop(mut self) {
        let mut proc = self.proc.take().unwrap();
        let ok = Command::new("kill")
            .args(["-TERM", &proc.0.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let end = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = proc.0.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < end,
                "serve did not exit after SIGTERM; stderr:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            status.success(),
            "exit {status:?}; stderr:\n{}",
            self.logs()
        );
    }
}

/// Calls `f` every 50 ms until it returns `Some`, for at most `limit`.
async fn eventually<T, F, Fut>(limit: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
}

/// The incident (or window) with this title in a list of them, if any.
fn by_name<'a>(list: &'a Value, key: &str, name: &str) -> Option<&'a Value> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("no `{key}` array in {list:#}"))
        .iter()
        .find(|i| i["name"] == name)
}

/// "Opened incident 7." → 7.
fn opened_id(stdout: &str) -> i64 {
    stdout
        .trim()
        .strip_prefix("Opened incident ")
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no incident id in {stdout:?}"))
}

/// The status of component `id` in components.json (empty if it is not
/// there).
fn component_status(components: &Value, id: &str) -> String {
    components["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .map(|c| c["status"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

/// A chat completion for model `m` on the data listener at `base`.
fn chat_request(client: &reqwest::Client, base: &str) -> reqwest::RequestBuilder {
    client
        .post(format!("{base}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#)
        .timeout(Duration::from_secs(30))
}

/// A chat completion's status and body.
async fn chat(client: &reqwest::Client, base: &str) -> (u16, String) {
    let resp = chat_request(client, base).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}
