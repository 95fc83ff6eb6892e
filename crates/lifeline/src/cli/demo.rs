//! `lifeline demo`: three simulated providers, the gateway, mixed traffic and
//! an outage, with one line per second and a final report.
//!
//! Timeline (fractions of `--duration`, 30 s by default): at 15 % provider
//! `alpha` is killed hard (listener closed, every connection reset); at 35 %
//! `bravo` turns slow (2.5 s before answering, past the demo's 1 s
//! first-byte timeout); at 60 % `alpha` comes back; at 70 % `bravo` recovers.
//! Model `demo` has tier 1 = alpha + bravo and tier 2 = charlie, which speaks
//! Anthropic's protocol (OpenAI requests that reach it are translated both
//! ways), so the demo shows failover across providers and protocols,
//! breakers opening, the fallback tier serving, probes
//! half-opening and traffic returning. Streams cut when alpha dies are
//! continued from another deployment (the report counts them apart). Exit
//! status 0 only if every request succeeded.
//!
//! The status page runs too, at `http://<gateway>/status`, with its clock at
//! 60× (a status minute per second) and the "Upstream providers" group
//! shown: clients see no outage, so Chat Completions stays operational,
//! while the providers' own lines go down and come back, and the page opens
//! and resolves an incident for each on its own. The final report lists
//! those incidents. The store is a temporary file, removed at the end.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lifeline_core::{Config, Gateway, Server};
use lifeline_mock::{Faults, MockConfig, MockHandle, MockServer};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Flags of `lifeline demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Length of the run, in seconds (at least 10).
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Concurrent clients (half stream, half do not).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
}

#[derive(Default)]
struct Second {
    total: u64,
    ok: u64,
    micros: Vec<u32>,
}

#[derive(Default)]
struct Tally {
    seconds: Vec<Second>,
    failures: Vec<String>,
    /// Streams that broke mid-answer and were continued elsewhere.
    continued: u64,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let duration = Duration::from_secs(args.duration.max(10));
    let mut mocks = Vec::new();
    for name in ["alpha", "bravo", "charlie"] {
        let cfg = MockConfig {
            name: name.into(),
            // Streams last about 50 ms: when alpha dies, some are always
            // mid-answer (and are continued elsewhere).
            tokens_per_second: 500.0,
            ttft_ms: 2,
            completion_tokens: 24,
            ..MockConfig::default()
        };
        let h = MockServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), cfg)
            .await
            .context("starting a simulated provider")?;
        mocks.push(h);
    }
    let store = std::env::temp_dir().join(format!("lifeline-demo-{}.db", std::process::id()));
    let config = Config::parse(&demo_config(&mocks, &store), "<demo>")
        .map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
    let gw = Gateway::start(config.clone()).await?;
    let bound = Server::bind(gw.clone()).await?;
    let addr = bound.data_addr;
    let stop_server = CancellationToken::new();
    let server = tokio::spawn(bound.run(stop_server.clone()));
    let status = crate::status_side::StatusSide::start(&gw, &config)
        .await
        .context("starting the status page")?;

    let mut out = std::io::stdout().lock();
    writeln!(out, "Lifeline demo: gateway on http://{addr}/v1, model `demo` = tier 1 [alpha, bravo], tier 2 [charlie, which speaks Anthropic's protocol].")?;
    writeln!(out, "Status page: http://{addr}/status (JSON: http://{addr}/api/v2/summary.json); its clock runs 60x, a minute per second.")?;
    writeln!(out, "{} clients for {} s; alpha dies at {:.0}s, bravo turns slow at {:.0}s; both recover later.\n", args.concurrency, duration.as_secs(), secs(duration, 0.15), secs(duration, 0.35))?;
    drop(out);

    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(http);
    let mut workers = tokio::task::JoinSet::new();
    for i in 0..args.concurrency.max(1) {
        workers.spawn(worker(
            client.clone(),
            addr,
            i % 2 == 0,
            tally.clone(),
            stop.clone(),
            start,
        ));
    }
    let events = timeline(mocks.clone(), duration);
    let mut next = start + Duration::from_secs(1);
    let mut event_iter = events.into_iter().peekable();
    while next <= start + duration {
        tokio::time::sleep_until(next).await;
        let elapsed = next.duration_since(start);
        let mut notes = String::new();
        while let Some((at, _)) = event_iter.peek() {
            if *at > elapsed {
                break;
            }
            if let Some((_, ev)) = event_iter.next() {
                notes.push_str(&ev.fire().await);
            }
        }
        print_second(&gw, &tally, elapsed.as_secs() as usize, &notes)?;
        next += Duration::from_secs(1);
    }
    stop.store(true, Ordering::Relaxed);
    while workers.join_next().await.is_some() {}
    settle(&store).await;
    if let Some(s) = status {
        s.stop().await;
    }
    stop_server.cancel();
    let _ = server.await;
    gw.close().await;
    let code = report(&tally)?;
    report_incidents(&store)?;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", store.display()));
    }
    Ok(code)
}

/// Gives the status page up to 30 s more (probes still running, no client
/// traffic) to see the providers stable and resolve what it opened.
async fn settle(store: &std::path::Path) {
    use lifeline_store::Store;
    let open = |path: &std::path::Path| {
        lifeline_store::SqliteStore::open(path)
            .and_then(|s| s.list_unresolved())
            .map_or(0, |v| v.len())
    };
    let end = Instant::now() + Duration::from_secs(30);
    let mut said = false;
    while Instant::now() < end {
        let path = store.to_path_buf();
        let n = tokio::task::spawn_blocking(move || open(&path))
            .await
            .unwrap_or(0);
        if n == 0 {
            return;
        }
        if !said {
            println!("\nWaiting (up to 30 s) for the status page to see the providers stable and resolve {n} open incident(s)...");
            said = true;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The incidents the status page opened during the demo, from its store.
fn report_incidents(store: &std::path::Path) -> anyhow::Result<()> {
    use lifeline_store::Store;
    let s = lifeline_store::SqliteStore::open(store).context("reading the demo's status store")?;
    let incidents = s.list_incidents(20)?;
    let mut out = std::io::stdout().lock();
    if incidents.is_empty() {
        writeln!(out, "Status page: no incident was opened.")?;
        return Ok(());
    }
    writeln!(
        out,
        "Status page: {} incident(s) opened automatically (status-clock times):",
        incidents.len()
    )?;
    for i in incidents.iter().rev() {
        let updates = s.incident(i.id)?.map_or(0, |w| w.incident_updates.len());
        let fmt = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map_or_else(|| ms.to_string(), |d| d.format("%H:%M").to_string())
        };
        writeln!(
            out,
            "  #{} {} -- opened {}, {}, {} update(s): {}",
            i.id,
            i.status.as_str(),
            fmt(i.created_at),
            i.resolved_at.map_or_else(
                || "still open".to_string(),
                |r| format!("resolved {}", fmt(r))
            ),
            updates,
            i.name
        )?;
    }
    Ok(())
}

fn secs(d: Duration, f: f64) -> f64 {
    d.as_secs_f64() * f
}

fn demo_config(mocks: &[MockHandle], store: &std::path::Path) -> String {
    let names = ["alpha", "bravo", "charlie"];
    let mut s = String::from(
        "[server]\nlisten = \"127.0.0.1:0\"\nauth = \"none\"\nfirst_byte_timeout_ms = 1000\nstream_idle_timeout_ms = 1000\nrequest_timeout_ms = 10000\nretry_budget_ratio = 0.5\n\n[health]\ncooldown_ms = 2000\nprobe_interval_ms = 250\nprobe_timeout_ms = 500\n\n",
    );
    s.push_str(&format!(
        "[store]\nurl = \"sqlite://{}\"\n\n[status]\ntitle = \"Lifeline demo\"\nclock_speed = 60\nshow_providers = true\nopen_after_ms = 60000\nresolve_after_ms = 120000\n\n",
        store.display()
    ));
    for (name, m) in names.iter().zip(mocks) {
        if *name == "charlie" {
            // The fallback speaks Anthropic's protocol (the simulated
            // provider serves `/v1/messages` too): requests that reach it
            // are translated, and streams broken on tier 1 are continued
            // across protocols.
            let root = m.base_url();
            let root = root.strip_suffix("/v1").unwrap_or(&root);
            s.push_str(&format!(
                "[[providers]]\nname = \"{name}\"\nkind = \"anthropic\"\nbase_url = \"{root}\"\napi_key = \"demo\"\n\n"
            ));
            continue;
        }
        s.push_str(&format!(
            "[[providers]]\nname = \"{name}\"\nkind = \"openai-compatible\"\nbase_url = \"{}\"\n\n",
            m.base_url()
        ));
    }
    s.push_str("[[models]]\nname = \"demo\"\ntiers = [\n  [ { provider = \"alpha\", model = \"alpha-large\" }, { provider = \"bravo\", model = \"bravo-large\" } ],\n  [ { provider = \"charlie\", model = \"charlie-small\" } ],\n]\n");
    s
}

enum Event {
    Kill(MockHandle),
    Revive(MockHandle),
    Slow(MockHandle),
    Heal(MockHandle),
}

impl Event {
    async fn fire(self) -> String {
        match self {
            Self::Kill(m) => {
                m.kill();
                "  << alpha killed (connections reset, port closed)".into()
            }
            Self::Revive(m) => match m.revive().await {
                Ok(()) => "  << alpha back".into(),
                Err(e) => format!("  << alpha could not come back: {e}"),
            },
            Self::Slow(m) => {
                m.set_faults(Faults {
                    latency_ms: 2500,
                    ..Faults::default()
                });
                "  << bravo slow (2.5 s per answer)".into()
            }
            Self::Heal(m) => {
                m.clear_faults();
                "  << bravo healthy again".into()
            }
        }
    }
}

fn timeline(m: Vec<MockHandle>, d: Duration) -> Vec<(Duration, Event)> {
    let at = |f: f64| Duration::from_secs_f64(d.as_secs_f64() * f);
    vec![
        (at(0.15), Event::Kill(m[0].clone())),
        (at(0.35), Event::Slow(m[1].clone())),
        (at(0.60), Event::Revive(m[0].clone())),
        (at(0.70), Event::Heal(m[1].clone())),
    ]
}

async fn worker(
    client: HttpClient,
    addr: SocketAddr,
    stream: bool,
    tally: Arc<Mutex<Tally>>,
    stop: Arc<AtomicBool>,
    start: Instant,
) {
    let url = format!("http://{addr}/v1/chat/completions");
    let body = Bytes::from(format!(
        "{{\"model\":\"demo\",\"stream\":{stream},\"messages\":[{{\"role\":\"user\",\"content\":\"Say something reassuring.\"}}]}}"
    ));
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        let result = one_request(&client, &url, body.clone(), stream).await;
        let micros = t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        // Counted in the second it finished, so each printed second is complete.
        let sec = Instant::now().duration_since(start).as_secs() as usize;
        let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
        while t.seconds.len() <= sec {
            t.seconds.push(Second::default());
        }
        let s = &mut t.seconds[sec];
        s.total += 1;
        s.micros.push(micros);
        match result {
            Ok(continued) => {
                s.ok += 1;
                if continued {
                    t.continued += 1;
                }
            }
            Err(e) => t.failures.push(format!(
                "t={sec}s {}: {e}",
                if stream { "stream" } else { "non-stream" }
            )),
        }
    }
}

async fn one_request(
    client: &HttpClient,
    url: &str,
    body: Bytes,
    stream: bool,
) -> Result<bool, String> {
    let req = http::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .map_err(|_| "client timeout".to_string())?
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes)
                .chars()
                .take(200)
                .collect::<String>()
        ));
    }
    let text = String::from_utf8_lossy(&bytes);
    if stream && (!text.contains("data: [DONE]") || text.contains("event: error")) {
        return Err("stream ended without [DONE] (broken mid-answer)".into());
    }
    if !stream && !text.contains("\"choices\"") {
        return Err("answer without choices".into());
    }
    // A continued stream says so in a trailing SSE comment.
    Ok(stream && text.contains(": lifeline continued="))
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1000.0
}

fn print_second(
    gw: &Gateway,
    tally: &Arc<Mutex<Tally>>,
    sec: usize,
    notes: &str,
) -> std::io::Result<()> {
    let (total, ok, mut micros) = {
        let t = tally.lock().unwrap_or_else(|p| p.into_inner());
        match sec.checked_sub(1).and_then(|i| t.seconds.get(i)) {
            Some(s) => (s.total, s.ok, s.micros.clone()),
            None => (0, 0, Vec::new()),
        }
    };
    micros.sort_unstable();
    let pct = if total == 0 {
        100.0
    } else {
        ok as f64 * 100.0 / total as f64
    };
    let states: Vec<String> = gw
        .live()
        .deployments
        .iter()
        .map(|d| {
            let s = d.snapshot();
            format!("{} {:<9}", s.provider, s.breaker.as_str())
        })
        .collect();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "[{sec:>3}s] {total:>5} req/s  ok {pct:>6.2}%  p50 {:>7.1}ms  p99 {:>7.1}ms | {}{notes}",
        percentile(&micros, 0.5),
        percentile(&micros, 0.99),
        states.join(" ")
    )
}

fn report(tally: &Arc<Mutex<Tally>>) -> anyhow::Result<ExitCode> {
    let t = tally.lock().unwrap_or_else(|p| p.into_inner());
    let total: u64 = t.seconds.iter().map(|s| s.total).sum();
    let ok: u64 = t.seconds.iter().map(|s| s.ok).sum();
    let mut all: Vec<u32> = t
        .seconds
        .iter()
        .flat_map(|s| s.micros.iter().copied())
        .collect();
    all.sort_unstable();
    let pct = if total == 0 {
        0.0
    } else {
        ok as f64 * 100.0 / total as f64
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "\nReport: {total} requests, {ok} succeeded ({pct:.3}%), {} failed; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms.", total - ok, percentile(&all, 0.5), percentile(&all, 0.99), percentile(&all, 1.0))?;
    writeln!(out, "Continued: {} stream(s) broke mid-answer and were continued from another deployment (counted as succeeded).", t.continued)?;
    for f in t.failures.iter().take(10) {
        writeln!(out, "  failed: {f}")?;
    }
    if t.failures.len() > 10 {
        writeln!(out, "  ... and {} more", t.failures.len() - 10)?;
    }
    let pass = total > 0 && ok == total;
    writeln!(
        out,
        "{}",
        if pass {
            "PASS: every request succeeded through the outage."
        } else {
            "FAIL: some requests failed."
        }
    )?;
    Ok(if pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use lifeline_core::config::ProviderKind;

    /// The demo's fallback tier speaks Anthropic's protocol, at the
    /// simulated provider's root (Anthropic's base URL has no `/v1`); the
    /// first tier speaks OpenAI's.
    #[tokio::test]
    async fn the_demo_fails_over_across_protocols() {
        let mut mocks = Vec::new();
        for name in ["alpha", "bravo", "charlie"] {
            let cfg = MockConfig {
                name: name.into(),
                ..MockConfig::default()
            };
            let addr = SocketAddr::from(([127, 0, 0, 1], 0));
            mocks.push(MockServer::start(addr, cfg).await.unwrap());
        }
        let store = std::path::Path::new("/nonexistent/demo.db");
        let config = Config::parse(&demo_config(&mocks, store), "<demo>").unwrap();
        let kind = |name: &str| {
            let p = config.providers.iter().find(|p| p.name == name).unwrap();
            (p.kind, p.base_url.clone().unwrap_or_default())
        };
        assert_eq!(kind("alpha").0, ProviderKind::OpenAiCompatible);
        let (charlie, url) = kind("charlie");
        assert_eq!(charlie, ProviderKind::Anthropic);
        assert_eq!(format!("{url}/v1"), mocks[2].base_url());
    }
}
