//! The status side end to end: `lifeline serve` runs as a child process
//! over in-process simulated providers, and the tests talk to it the way
//! its users do: the public routes (the eight `/api/v2/*.json` documents,
//! the HTML page, the feeds, the badges; GET and HEAD), operators through
//! the `lifeline incident` and `lifeline maintenance` CLI and the admin API,
//! hostile text, `kill -9` durability, the static export, and an automatic
//! incident opened and resolved from real traffic (status clock at 60×).
//!
//! Every test has its own temporary directory (the working directory of the
//! process, and its store) and its own ports.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use lifeline_mock::{Faults, MockHandle};
use serde_json::Value;
use tokio::time::Instant;

use crate::cli::{free_port, wait_for, Proc, BIN};
use crate::harness::{init, mocks, providers};

const TOKEN: &str = "admin-secret";

/// The eight Statuspage documents and the top-level keys each must have.
const DOCUMENTS: [(&str, &[&str]); 8] = [
    (
        "summary.json",
        &[
            "page",
            "status",
            "components",
            "incidents",
            "scheduled_maintenances",
        ],
    ),
    ("status.json", &["page", "status"]),
    ("components.json", &["page", "components"]),
    ("incidents.json", &["page", "incidents"]),
    ("incidents/unresolved.json", &["page", "incidents"]),
    (
        "scheduled-maintenances.json",
        &["page", "scheduled_maintenances"],
    ),
    (
        "scheduled-maintenances/upcoming.json",
        &["page", "scheduled_maintenances"],
    ),
    (
        "scheduled-maintenances/active.json",
        &["page", "scheduled_maintenances"],
    ),
];

const COMPONENT_STATUSES: [&str; 5] = [
    "operational",
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
];
const INCIDENT_STATUSES: [&str; 5] = [
    "investigating",
    "identified",
    "monitoring",
    "resolved",
    "postmortem",
];
const IMPACTS: [&str; 4] = ["none", "minor", "major", "critical"];

/// A running `lifeline serve` and where it listens.
struct Serve {
    dir: PathBuf,
    data: String,
    admin: String,
    /// The status listener's base URL, when configured.
    status: Option<String>,
    proc: Proc,
    log: PathBuf,
    client: reqwest::Client,
}

/// Knobs of one test's config.
#[derive(Default)]
struct Options<'a> {
    /// Extra `[status]` lines.
    status: &'a str,
    /// Serve the page on its own listener.
    status_listen: bool,
}

impl Serve {
    /// Writes a config for `mocks` into `dir` and starts `lifeline serve`
    /// there (working directory `dir`, store `dir/status.db`); waits until
    /// the status page answers.
    async fn start(dir: &Path, mocks: &[MockHandle], opts: &Options<'_>) -> Serve {
        init();
        let (port, admin) = (free_port(), free_port());
        let status_port = opts.status_listen.then(free_port);
        let status_listen = status_port
            .map(|p| format!("status_listen = \"127.0.0.1:{p}\"\n"))
            .unwrap_or_default();
        let members: Vec<String> = (0..mocks.len())
            .map(|i| format!("{{ provider = \"p{i}\", model = \"up-{i}\" }}"))
            .collect();
        let toml = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin}\"\n{status_listen}\n\
             [admin]\ntoken = \"{TOKEN}\"\n\n\
             [health]\ncooldown_ms = 1000\nprobe_interval_ms = 200\nprobe_timeout_ms = 500\n\n\
             [store]\nurl = \"sqlite://status.db\"\n\n\
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
        let serve = Serve {
            dir: dir.to_path_buf(),
            data: format!("http://127.0.0.1:{port}"),
            admin: format!("http://127.0.0.1:{admin}"),
            status: status_port.map(|p| format!("http://127.0.0.1:{p}")),
            proc,
            log,
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        };
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

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET on the public side: status, headers, body.
    async fn get(&self, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let resp = self
            .client
            .get(format!("{}{path}", self.page()))
            .timeout(Duration::from_secs(5))
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
        let end = Instant::now() + limit;
        loop {
            let v = self.json(path).await;
            if ok(&v) {
                return v;
            }
            assert!(
                Instant::now() < end,
                "{path} never became as expected; last:\n{v:#}\nstderr:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls a public text document until `ok` accepts its body.
    async fn poll_text(&self, path: &str, limit: Duration, ok: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + limit;
        loop {
            let (status, _, body) = self.get(path).await;
            if status == 200 && ok(&body) {
                return body;
            }
            assert!(
                Instant::now() < end,
                "{path} never became as expected; last ({status}):\n{body}\nstderr:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An admin API request with the token: status and parsed body.
    async fn admin(&self, method: reqwest::Method, path: &str, body: &str) -> (u16, Value) {
        let resp = self
            .client
            .request(method, format!("{}{path}", self.admin))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body.to_string())
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap_or_else(|e| panic!("admin {path}: {e}\n{}", self.logs()));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("admin {path}: not JSON ({e}): {text}"));
        (status, v)
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
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
}

/// The incident with this title in a list of incidents, if any.
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

fn is_iso_time(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok())
}

/// A Statuspage component object, field by field.
fn check_component(c: &Value) {
    for key in [
        "id",
        "name",
        "status",
        "created_at",
        "updated_at",
        "position",
        "description",
        "showcase",
        "start_date",
        "group_id",
        "page_id",
        "group",
        "only_show_if_degraded",
    ] {
        assert!(c.get(key).is_some(), "component without `{key}`: {c:#}");
    }
    assert!(c["id"].is_string() && c["name"].is_string(), "{c:#}");
    let status = c["status"].as_str().unwrap_or("");
    assert!(COMPONENT_STATUSES.contains(&status), "{c:#}");
    assert!(
        is_iso_time(&c["created_at"]) && is_iso_time(&c["updated_at"]),
        "{c:#}"
    );
    assert!(c["position"].is_u64(), "{c:#}");
    assert!(
        c["group"].is_boolean() && c["showcase"].is_boolean(),
        "{c:#}"
    );
    if c["group"] == true {
        assert!(c["components"].is_array(), "group without children: {c:#}");
    }
}

/// A Statuspage incident object (with its updates), field by field.
fn check_incident(i: &Value) {
    for key in [
        "id",
        "name",
        "status",
        "impact",
        "created_at",
        "updated_at",
        "monitoring_at",
        "resolved_at",
        "started_at",
        "shortlink",
        "page_id",
        "incident_updates",
        "components",
    ] {
        assert!(i.get(key).is_some(), "incident without `{key}`: {i:#}");
    }
    assert!(i["id"].is_string(), "{i:#}");
    let status = i["status"].as_str().unwrap_or("");
    assert!(INCIDENT_STATUSES.contains(&status), "{i:#}");
    let impact = i["impact"].as_str().unwrap_or("");
    assert!(IMPACTS.contains(&impact), "{i:#}");
    for u in i["incident_updates"].as_array().unwrap() {
        for key in [
            "id",
            "status",
            "body",
            "incident_id",
            "created_at",
            "updated_at",
            "display_at",
            "affected_components",
        ] {
            assert!(u.get(key).is_some(), "update without `{key}`: {u:#}");
        }
        assert_eq!(u["incident_id"], i["id"], "{u:#}");
        assert!(
            INCIDENT_STATUSES.contains(&u["status"].as_str().unwrap_or("")),
            "{u:#}"
        );
    }
    for c in i["components"].as_array().unwrap() {
        check_component(c);
    }
}

/// One of the eight documents: its keys and every object in it.
fn check_document(path: &str, keys: &[&str], v: &Value) {
    for key in keys {
        assert!(v.get(*key).is_some(), "{path} without `{key}`: {v:#}");
    }
    let page = &v["page"];
    for key in ["id", "name", "url", "time_zone", "updated_at"] {
        assert!(page.get(key).is_some(), "{path}: page without `{key}`");
    }
    assert_eq!(page["name"], "Acme AI status", "{path}");
    assert!(is_iso_time(&page["updated_at"]), "{path}: {page}");
    if let Some(status) = v.get("status") {
        let indicator = status["indicator"].as_str().unwrap_or("");
        assert!(
            ["none", "minor", "major", "critical", "maintenance"].contains(&indicator),
            "{path}: {status}"
        );
        assert!(status["description"].is_string(), "{path}: {status}");
    }
    if let Some(list) = v.get("components") {
        for c in list.as_array().unwrap() {
            check_component(c);
        }
    }
    if let Some(list) = v.get("incidents") {
        for i in list.as_array().unwrap() {
            check_incident(i);
        }
    }
    if let Some(list) = v.get("scheduled_maintenances") {
        for m in list.as_array().unwrap() {
            assert!(is_iso_time(&m["scheduled_for"]), "{m:#}");
            assert!(is_iso_time(&m["scheduled_until"]), "{m:#}");
            assert!(
                ["scheduled", "in_progress", "verifying", "completed"]
                    .contains(&m["status"].as_str().unwrap_or("")),
                "{m:#}"
            );
        }
    }
}

fn atom(body: &str) -> atom_syndication::Feed {
    body.parse()
        .unwrap_or_else(|e| panic!("Atom does not parse ({e}):\n{body}"))
}

fn rss(body: &str) -> rss::Channel {
    body.parse()
        .unwrap_or_else(|e| panic!("RSS does not parse ({e}):\n{body}"))
}

/// Every tag of an HTML document (`<…>`), lower-cased; the source of a
/// `<script>` element is skipped.
fn tags(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let after = &rest[start..];
        let end = after.find('>').map_or(after.len(), |e| e + 1);
        let tag = after[..end].to_ascii_lowercase();
        rest = &after[end..];
        if tag.starts_with("<script") {
            let close = rest.find("</script>").unwrap_or(rest.len());
            rest = &rest[close..];
        }
        out.push(tag);
    }
    out
}

/// No markup in `html` can run script: no `<script>` but the page's own
/// (inline, allowed by its hash), no event-handler attribute, no
/// `javascript:` URL, no `<img>`.
fn assert_inert(what: &str, html: &str) {
    assert!(!html.contains("<script>alert"), "{what}: {html}");
    for tag in tags(html) {
        let handler = tag
            .trim_start_matches('<')
            .split(|c: char| c.is_ascii_whitespace())
            .skip(1)
            .filter_map(|a| a.split_once('=').map(|(name, _)| name))
            .find(|name| {
                name.len() > 2
                    && name.starts_with("on")
                    && name.chars().all(|c| c.is_ascii_lowercase())
            });
        assert!(handler.is_none(), "{what}: event handler in {tag}");
        assert!(!tag.contains("javascript:"), "{what}: script URL in {tag}");
        assert!(!tag.starts_with("<img"), "{what}: image tag {tag}");
        if tag.starts_with("<script") {
            assert_eq!(tag, "<script>", "{what}: a script with attributes");
        }
    }
}

// 1. The public documents.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_documents_have_statuspage_shapes_types_cors_and_head_lengths() {
    let m = mocks(1).await;
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(dir.path(), &m, &Options::default()).await;

    for (path, keys) in DOCUMENTS {
        let url = format!("/api/v2/{path}");
        let (status, headers, body) = s.get(&url).await;
        assert_eq!(status, 200, "{url}: {body}");
        assert_eq!(
            header(&headers, "content-type"),
            "application/json; charset=utf-8",
            "{url}"
        );
        assert_eq!(
            header(&headers, "access-control-allow-origin"),
            "*",
            "{url}"
        );
        let v: Value = serde_json::from_str(&body).unwrap();
        check_document(path, keys, &v);
    }
    let summary = s.json("/api/v2/summary.json").await;
    assert_eq!(summary["status"]["indicator"], "none", "{summary:#}");
    assert_eq!(summary["page"]["url"], s.data, "{summary:#}");
    let component = s.chat_component().await;

    // Every kind of document, GET then HEAD: HEAD has GET's head, with the
    // body's length, and no body.
    let documents = [
        ("/status", "text/html; charset=utf-8"),
        ("/status?lang=de", "text/html; charset=utf-8"),
        ("/api/v2/summary.json", "application/json; charset=utf-8"),
        ("/history.atom", "application/atom+xml; charset=utf-8"),
        ("/history.rss", "application/rss+xml; charset=utf-8"),
        (
            &format!("/badge/{component}.svg"),
            "image/svg+xml; charset=utf-8",
        ),
    ];
    for (path, content_type) in documents {
        let (status, headers, body) = s.get(path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(header(&headers, "content-type"), content_type, "{path}");
        assert!(!body.is_empty(), "{path}: empty body");
        let head = s
            .client
            .head(format!("{}{path}", s.page()))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200, "HEAD {path}");
        assert_eq!(
            header(head.headers(), "content-type"),
            content_type,
            "HEAD {path}"
        );
        assert_eq!(
            header(head.headers(), "content-length"),
            body.len().to_string(),
            "HEAD {path} does not carry the body's length"
        );
        assert!(
            head.bytes().await.unwrap().is_empty(),
            "HEAD {path} has a body"
        );
    }
    let (status, _, body) = s.get("/status").await;
    assert_eq!(status, 200);
    assert!(body.contains("Acme AI status"), "{body}");

    // The feeds parse with real feed parsers; the badge is SVG.
    let (_, _, body) = s.get("/history.atom").await;
    let feed = atom(&body);
    assert!(feed.title().contains("Acme AI status"), "{body}");
    let (_, _, body) = s.get("/history.rss").await;
    let channel = rss(&body);
    assert!(channel.title().contains("Acme AI status"), "{body}");
    let (_, _, body) = s.get(&format!("/badge/{component}.svg")).await;
    assert!(
        body.starts_with("<svg") && body.contains("</svg>"),
        "{body}"
    );

    // Unknown documents and components are the gateway's 404.
    let (status, _, _) = s.get("/api/v2/nope.json").await;
    assert_eq!(status, 404);
    let (status, _, _) = s.get("/badge/nope.svg").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_status_listen_the_page_is_served_there_and_not_on_the_data_listener() {
    let m = mocks(1).await;
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(
        dir.path(),
        &m,
        &Options {
            status_listen: true,
            ..Options::default()
        },
    )
    .await;
    let status_base = s.status.clone().unwrap();
    // Links point at the status listener (the default `page_url`).
    let summary = s.json("/api/v2/summary.json").await;
    assert_eq!(summary["page"]["url"], status_base, "{summary:#}");
    for (path, keys) in DOCUMENTS {
        let v = s.json(&format!("/api/v2/{path}")).await;
        check_document(path, keys, &v);
        let on_data = s
            .client
            .get(format!("{}/api/v2/{path}", s.data))
            .send()
            .await
            .unwrap();
        assert_eq!(on_data.status(), 404, "{path} is on the data listener");
    }
    for path in ["/status", "/history.atom", "/history.rss"] {
        let (status, _, _) = s.get(path).await;
        assert_eq!(status, 200, "{path} on {status_base}");
        let on_data = s
            .client
            .get(format!("{}{path}", s.data))
            .send()
            .await
            .unwrap();
        assert_eq!(on_data.status(), 404, "{path} is on the data listener");
    }
    // The data plane still answers on its own listener, and nothing of it
    // on the status listener.
    let models = s
        .client
        .get(format!("{}/v1/models", s.data))
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200);
    let (status, _, _) = s.get("/v1/models").await;
    assert_eq!(status, 404, "the data plane is on the status listener");
}

// 2. Operators through the CLI.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_open_update_resolve_and_schedule_through_the_cli() {
    let m = mocks(1).await;
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(dir.path(), &m, &Options::default()).await;
    let component = s.chat_component().await;
    let wait = Duration::from_secs(10);

    let out = s
        .cli(&[
            "incident",
            "open",
            "--title",
            "Elevated errors on chat",
            "--body",
            "We are looking into **elevated errors**.",
            "--impact",
            "major",
            "--component",
            &component,
        ])
        .await;
    let id = opened_id(&out);
    let v = s
        .poll_json("/api/v2/incidents/unresolved.json", wait, |v| {
            by_name(v, "incidents", "Elevated errors on chat").is_some()
        })
        .await;
    let i = by_name(&v, "incidents", "Elevated errors on chat").unwrap();
    check_incident(i);
    assert_eq!(i["id"], id.to_string(), "{i:#}");
    assert_eq!(i["status"], "investigating");
    assert_eq!(i["impact"], "major");
    assert_eq!(i["components"][0]["id"], component.as_str(), "{i:#}");
    s.poll_text("/status", wait, |b| {
        b.contains("Elevated errors on chat") && b.contains("<strong>elevated errors</strong>")
    })
    .await;

    s.cli(&[
        "incident",
        "update",
        &id.to_string(),
        "--status",
        "identified",
        "--body",
        "A provider fails; traffic moved.",
    ])
    .await;
    s.poll_text(&format!("/status/incidents/{id}"), wait, |b| {
        b.contains("A provider fails; traffic moved.") && b.contains("We are looking into")
    })
    .await;
    s.cli(&[
        "incident",
        "resolve",
        &id.to_string(),
        "--body",
        "All good again.",
    ])
    .await;
    let v = s
        .poll_json("/api/v2/incidents.json", wait, |v| {
            by_name(v, "incidents", "Elevated errors on chat")
                .is_some_and(|i| i["status"] == "resolved")
        })
        .await;
    let i = by_name(&v, "incidents", "Elevated errors on chat").unwrap();
    check_incident(i);
    assert!(is_iso_time(&i["resolved_at"]), "{i:#}");
    let timeline: Vec<&str> = i["incident_updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        timeline,
        ["resolved", "identified", "investigating"],
        "{i:#}"
    );
    let bodies: Vec<&str> = i["incident_updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            "All good again.",
            "A provider fails; traffic moved.",
            "We are looking into **elevated errors**."
        ]
    );
    let unresolved = s.json("/api/v2/incidents/unresolved.json").await;
    assert!(by_name(&unresolved, "incidents", "Elevated errors on chat").is_none());
    let list = s.cli(&["incident", "list"]).await;
    assert!(
        list.lines()
            .any(|l| l.contains("Elevated errors on chat") && l.contains("resolved")),
        "{list}"
    );

    // A draft stays off the page until published.
    let out = s
        .cli(&["incident", "open", "--title", "Quiet draft", "--draft"])
        .await;
    let draft = opened_id(&out);
    assert!(out.contains("draft"), "{out}");
    let list = s.cli(&["incident", "list", "--json"]).await;
    let list: Value = serde_json::from_str(&list).unwrap();
    let listed = by_name(&list, "incidents", "Quiet draft").expect("draft listed");
    assert_eq!(listed["draft"], true, "{listed:#}");
    // Give the page time to (wrongly) show it: a later change is rebuilt
    // after the draft's, so once that one is visible the draft would be too.
    s.cli(&["incident", "open", "--title", "Marker after the draft"])
        .await;
    s.poll_json("/api/v2/incidents.json", wait, |v| {
        by_name(v, "incidents", "Marker after the draft").is_some()
    })
    .await;
    let v = s.json("/api/v2/incidents.json").await;
    assert!(by_name(&v, "incidents", "Quiet draft").is_none(), "{v:#}");
    let (_, _, page) = s.get("/status").await;
    assert!(!page.contains("Quiet draft"), "draft on the page");
    let (status, _, _) = s.get(&format!("/status/incidents/{draft}")).await;
    assert_eq!(status, 404, "the draft's own page is public");
    let (status, published) = s
        .admin(
            reqwest::Method::POST,
            &format!("/admin/incidents/{draft}/publish"),
            "",
        )
        .await;
    assert_eq!(status, 200, "{published}");
    s.poll_json("/api/v2/incidents.json", wait, |v| {
        by_name(v, "incidents", "Quiet draft").is_some()
    })
    .await;
    s.poll_text("/status", wait, |b| b.contains("Quiet draft"))
        .await;

    // Maintenance: scheduled in an hour, upcoming; cancelled, gone.
    let out = s
        .cli(&[
            "maintenance",
            "schedule",
            "--title",
            "Provider migration",
            "--start",
            "+1h",
            "--end",
            "2h",
            "--component",
            &component,
            "--body",
            "Moving to a new region.",
        ])
        .await;
    let mid: i64 = out
        .trim()
        .strip_prefix("Scheduled maintenance ")
        .and_then(|r| r.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no maintenance id in {out:?}"));
    let v = s
        .poll_json("/api/v2/scheduled-maintenances/upcoming.json", wait, |v| {
            by_name(v, "scheduled_maintenances", "Provider migration").is_some()
        })
        .await;
    check_document(
        "scheduled-maintenances/upcoming.json",
        &["page", "scheduled_maintenances"],
        &v,
    );
    let w = by_name(&v, "scheduled_maintenances", "Provider migration").unwrap();
    assert_eq!(w["status"], "scheduled", "{w:#}");
    let from = chrono::DateTime::parse_from_rfc3339(w["scheduled_for"].as_str().unwrap()).unwrap();
    let until =
        chrono::DateTime::parse_from_rfc3339(w["scheduled_until"].as_str().unwrap()).unwrap();
    assert_eq!((until - from).num_minutes(), 120, "{w:#}");
    let active = s.json("/api/v2/scheduled-maintenances/active.json").await;
    assert!(by_name(&active, "scheduled_maintenances", "Provider migration").is_none());
    let list = s.cli(&["maintenance", "list"]).await;
    assert!(list.contains("Provider migration"), "{list}");
    s.cli(&["maintenance", "cancel", &mid.to_string()]).await;
    s.poll_json("/api/v2/scheduled-maintenances/upcoming.json", wait, |v| {
        by_name(v, "scheduled_maintenances", "Provider migration").is_none()
    })
    .await;
    let v = s.json("/api/v2/summary.json").await;
    assert!(
        by_name(&v, "scheduled_maintenances", "Provider migration").is_none(),
        "{v:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_admin_input_is_refused_with_a_message_and_writes_nothing() {
    let m = mocks(1).await;
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(dir.path(), &m, &Options::default()).await;
    let component = s.chat_component().await;
    let post = reqwest::Method::POST;
    let cases = [
        (
            "/admin/incidents",
            r#"{"name":"Ghost one","components":["no-such-component"]}"#.to_string(),
            "no-such-component",
        ),
        ("/admin/incidents", r#"{"name":""}"#.to_string(), "name"),
        ("/admin/incidents", r#"{"name":"   "}"#.to_string(), "name"),
        ("/admin/incidents", r#"{"name":"Ghost two""#.to_string(), "JSON"),
        ("/admin/incidents", "not json at all".to_string(), "JSON"),
        (
            "/admin/incidents",
            r#"{"name":"Ghost three","impact":"apocalyptic"}"#.to_string(),
            "apocalyptic",
        ),
        (
            "/admin/maintenances",
            format!(
                r#"{{"name":"Ghost window","scheduled_for":"soon","scheduled_until":"later","components":["{component}"]}}"#
            ),
            "scheduled_for",
        ),
        (
            "/admin/maintenances",
            r#"{"name":"Ghost window","scheduled_for":"2099-01-01T00:00:00Z","scheduled_until":"2099-01-01T01:00:00Z","components":["nope"]}"#.to_string(),
            "nope",
        ),
    ];
    for (path, body, mentions) in &cases {
        let (status, v) = s.admin(post.clone(), path, body).await;
        assert_eq!(status, 400, "{path} {body}: {v}");
        let msg = v["error"]["message"].as_str().unwrap_or("");
        assert!(
            msg.contains(mentions),
            "{path} {body}: message {msg:?} does not name {mentions}"
        );
    }
    // Also through the CLI: it fails and says why.
    let mut cmd = Command::new(BIN);
    cmd.args(["incident", "open", "--title", "Ghost four"])
        .args(["--component", "no-such-component"])
        .args(["--admin", &s.admin, "--token", TOKEN]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no-such-component"), "{stderr}");

    // Nothing was written: a good request after them is the first incident.
    let (status, ok) = s
        .admin(post, "/admin/incidents", r#"{"name":"Real one"}"#)
        .await;
    assert_eq!(status, 201, "{ok}");
    let (_, list) = s.admin(reqwest::Method::GET, "/admin/incidents", "").await;
    let names: Vec<&str> = list["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Real one"], "{list:#}");
    let (_, windows) = s
        .admin(reqwest::Method::GET, "/admin/maintenances", "")
        .await;
    assert_eq!(
        windows["scheduled_maintenances"].as_array().map(Vec::len),
        Some(0),
        "{windows:#}"
    );
    let v = s
        .poll_json("/api/v2/incidents.json", Duration::from_secs(10), |v| {
            by_name(v, "incidents", "Real one").is_some()
        })
        .await;
    assert_eq!(v["incidents"].as_array().unwrap().len(), 1, "{v:#}");
    let (_, _, page) = s.get("/status").await;
    assert!(!page.contains("Ghost"), "a refused incident is on the page");
}

// 3. Hostile text.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_text_is_data_in_json_and_inert_in_html_and_feeds() {
    let m = mocks(1).await;
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(dir.path(), &m, &Options::default()).await;
    let component = s.chat_component().await;
    let title = "<script>alert(1)</script>";
    let body = "See [x](javascript:alert(1)) and <img src=x onerror=alert(1)>\n\n<script>alert(2)</script>\n\n**still here**";
    let out = s
        .cli(&[
            "incident",
            "open",
            "--title",
            title,
            "--body",
            body,
            "--component",
            &component,
        ])
        .await;
    let id = opened_id(&out);
    let wait = Duration::from_secs(10);

    // JSON: the raw text, as data, in valid JSON.
    for path in [
        "/api/v2/incidents.json",
        "/api/v2/incidents/unresolved.json",
        "/api/v2/summary.json",
    ] {
        let v = s
            .poll_json(path, wait, |v| by_name(v, "incidents", title).is_some())
            .await;
        let i = by_name(&v, "incidents", title).unwrap();
        check_incident(i);
        assert_eq!(i["incident_updates"][0]["body"], body, "{path}");
    }

    // HTML: the status page, the incident's page, in every language.
    let page = s
        .poll_text("/status", wait, |b| b.contains("still here"))
        .await;
    for path in [
        "/status".to_string(),
        "/status?lang=de".to_string(),
        "/status?lang=zh".to_string(),
        format!("/status/incidents/{id}"),
        format!("/status/incidents/{id}?lang=de"),
    ] {
        let (status, _, html) = s.get(&path).await;
        assert_eq!(status, 200, "{path}");
        assert_inert(&path, &html);
        assert!(
            html.contains("&#60;script&#62;alert(1)") || html.contains("&lt;script&gt;alert(1)"),
            "{path}: the title is not shown escaped"
        );
    }
    assert!(page.contains("<strong>still here</strong>"), "{page}");

    // Feeds: well-formed, and their HTML content is inert too.
    let (_, _, body) = s.get("/history.atom").await;
    let feed = atom(&body);
    let entry = feed
        .entries()
        .iter()
        .find(|e| e.title().as_str() == title)
        .unwrap_or_else(|| panic!("no entry titled {title}:\n{body}"));
    let content = entry.content().and_then(|c| c.value()).unwrap_or_default();
    assert!(content.contains("still here"), "{content}");
    assert_inert("atom content", content);
    let (_, _, body) = s.get("/history.rss").await;
    let channel = rss(&body);
    let item = channel
        .items()
        .iter()
        .find(|i| i.title() == Some(title))
        .unwrap_or_else(|| panic!("no item titled {title}:\n{body}"));
    let description = item.description().unwrap_or_default();
    assert_inert("rss description", description);
    if let Some(content) = item.content() {
        assert_inert("rss content", content);
    }
}

// 4. Durability.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_incident_survives_kill_9() {
    let m = mocks(1).await;
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(dir.path(), &m, &Options::default()).await;
    let (status, v) = s
        .admin(
            reqwest::Method::POST,
            "/admin/incidents",
            r#"{"name":"Survives kill -9","body":"Written before the crash."}"#,
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_i64().unwrap_or_else(|| panic!("no id: {v}"));
    // At once, before any tick or flush could have run.
    let killed = Command::new("kill")
        .args(["-KILL", &s.proc.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let first_log = s.logs();
    drop(s);

    let s = Serve::start(dir.path(), &m, &Options::default()).await;
    let (status, v) = s
        .admin(reqwest::Method::GET, &format!("/admin/incidents/{id}"), "")
        .await;
    assert_eq!(status, 200, "{v}\nfirst run:\n{first_log}");
    assert_eq!(v["name"], "Survives kill -9", "{v:#}");
    assert_eq!(
        v["incident_updates"][0]["body"], "Written before the crash.",
        "{v:#}"
    );
    let v = s
        .poll_json("/api/v2/incidents.json", Duration::from_secs(10), |v| {
            by_name(v, "incidents", "Survives kill -9").is_some()
        })
        .await;
    assert_eq!(
        by_name(&v, "incidents", "Survives kill -9").unwrap()["id"],
        id.to_string()
    );
}

// 5. Static export.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_static_export_follows_the_page() {
    let m = mocks(1).await;
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    let status = format!("static_dir = \"{}\"", site.display());
    let s = Serve::start(
        dir.path(),
        &m,
        &Options {
            status: &status,
            ..Options::default()
        },
    )
    .await;
    let component = s.chat_component().await;
    let end = Instant::now() + Duration::from_secs(10);
    let files = [
        "status/index.html".to_string(),
        "api/v2/summary.json".to_string(),
        "api/v2/incidents/unresolved.json".to_string(),
        "history.atom".to_string(),
        "history.rss".to_string(),
        format!("badge/{component}.svg"),
    ];
    while files.iter().any(|f| !site.join(f).exists()) {
        assert!(
            Instant::now() < end,
            "missing {:?}; stderr:\n{}",
            files
                .iter()
                .filter(|f| !site.join(f).exists())
                .collect::<Vec<_>>(),
            s.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let read = |f: &str| std::fs::read_to_string(site.join(f)).unwrap();
    assert!(read("status/index.html").contains("Acme AI status"));
    atom(&read("history.atom"));
    rss(&read("history.rss"));
    let summary: Value = serde_json::from_str(&read("api/v2/summary.json")).unwrap();
    check_document("summary.json", DOCUMENTS[0].1, &summary);

    let out = s
        .cli(&[
            "incident",
            "open",
            "--title",
            "Exported incident",
            "--component",
            &component,
        ])
        .await;
    let id = opened_id(&out);
    // The export writes one file after the other (each atomically): wait
    // for all of them.
    let exported = [
        "api/v2/summary.json".to_string(),
        "status/index.html".to_string(),
        format!("status/incidents/{id}.html"),
        "history.atom".to_string(),
        "history.rss".to_string(),
    ];
    let end = Instant::now() + Duration::from_secs(10);
    let missing = |f: &String| {
        !std::fs::read_to_string(site.join(f)).is_ok_and(|t| t.contains("Exported incident"))
    };
    while exported.iter().any(missing) {
        assert!(
            Instant::now() < end,
            "the export never showed the incident in {:?}\nstderr:\n{}",
            exported.iter().filter(|f| missing(f)).collect::<Vec<_>>(),
            s.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let summary: Value = serde_json::from_str(&read("api/v2/summary.json")).unwrap();
    check_document("summary.json", DOCUMENTS[0].1, &summary);
    let i = by_name(&summary, "incidents", "Exported incident").unwrap();
    assert_eq!(i["id"], id.to_string(), "{i:#}");
    atom(&read("history.atom"));
    rss(&read("history.rss"));
}

// 6. An automatic incident from traffic.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_providers_open_an_automatic_incident_that_resolves_after_recovery() {
    let m = mocks(2).await;
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(
        dir.path(),
        &m,
        &Options {
            status: "clock_speed = 60\nopen_after_ms = 60000\nresolve_after_ms = 120000",
            ..Options::default()
        },
    )
    .await;
    let component = s.chat_component().await;
    let wait = Duration::from_secs(60);
    s.poll_json("/api/v2/components.json", wait, |v| {
        v["components"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == component.as_str() && c["status"] == "operational")
    })
    .await;

    // Steady traffic for the whole test.
    let traffic = {
        let url = format!("{}/v1/chat/completions", s.data);
        let client = s.client.clone();
        tokio::spawn(async move {
            loop {
                let _ = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#)
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    for mock in &m {
        mock.set_faults(Faults {
            error_rate: 1.0,
            ..Faults::default()
        });
    }
    let v = s
        .poll_json("/api/v2/incidents/unresolved.json", wait, |v| {
            v["incidents"].as_array().unwrap().iter().any(|i| {
                i["components"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["id"] == component.as_str())
            })
        })
        .await;
    let incident = v["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| {
            i["components"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["id"] == component.as_str())
        })
        .unwrap()
        .clone();
    check_incident(&incident);
    let name = incident["name"].as_str().unwrap();
    assert!(name.contains("Chat Completions"), "{incident:#}");
    assert!(name.contains("(m)"), "{incident:#}");
    assert!(
        ["major", "critical"].contains(&incident["impact"].as_str().unwrap()),
        "{incident:#}"
    );
    let first = incident["incident_updates"]
        .as_array()
        .unwrap()
        .last()
        .unwrap();
    let body = first["body"].as_str().unwrap();
    assert!(body.contains('%'), "no numbers in the body: {body}");
    assert!(body.chars().any(|c| c.is_ascii_digit()), "{body}");
    let summary = s.json("/api/v2/summary.json").await;
    assert_ne!(summary["status"]["indicator"], "none", "{summary:#}");
    let id = incident["id"].as_str().unwrap().to_string();

    for mock in &m {
        mock.set_faults(Faults::default());
    }
    let v = s
        .poll_json("/api/v2/incidents.json", wait, |v| {
            v["incidents"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["id"] == id.as_str() && i["status"] == "resolved")
        })
        .await;
    let resolved = v["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id.as_str())
        .unwrap();
    check_incident(resolved);
    assert!(is_iso_time(&resolved["resolved_at"]), "{resolved:#}");
    s.poll_json("/api/v2/components.json", wait, |v| {
        v["components"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == component.as_str() && c["status"] == "operational")
    })
    .await;
    let unresolved = s.json("/api/v2/incidents/unresolved.json").await;
    assert!(
        !unresolved["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == id.as_str()),
        "{unresolved:#}"
    );
    traffic.abort();
}
