//! Global admission and the memory budget, over real sockets: a surge of
//! ten times the gateway's capacity keeps critical traffic succeeding while
//! batch traffic is shed at once with 503 and `Retry-After`; a stream holds
//! its slot to its end; a flood of maximum-size bodies (over HTTP/1.1
//! connections, then as HTTP/2 streams of one connection) cannot push the
//! real binary past its memory budget; clients that declare large bodies
//! and send nothing hold none of it, while critical traffic succeeds; a
//! key flooding the gateway with long requests is held to its share of
//! the slots, and another key of the same priority keeps succeeding.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lifeline_mock::Faults;
use tokio::time::Instant;

use crate::cli::{free_port, wait_for, Proc, BIN};
use crate::harness::{config, error_code, init, mocks, one_tier, Env};

const CRITICAL: &str = "sk-critical-key";
const BATCH: &str = "sk-batch-key";

fn keys() -> String {
    format!(
        "\n[[keys]]\nname = \"frontend\"\nkey = \"{CRITICAL}\"\npriority = \"critical\"\n\n[[keys]]\nname = \"nightly\"\nkey = \"{BATCH}\"\npriority = \"batch\"\n"
    )
}

/// What one client saw.
#[derive(Default)]
struct Tally {
    ok: usize,
    other: Vec<String>,
    shed: usize,
    /// The longest time a 503 took.
    slowest_shed: Duration,
}

/// Sends chat requests with `key` in a loop until `stop`; after a 503 it
/// pauses briefly (a real client would honour `Retry-After`; a short pause
/// keeps the pressure on without spinning the test machine).
async fn client(env: Arc<Env>, key: &'static str, stop: Arc<AtomicBool>) -> Tally {
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let mut t = Tally::default();
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        let resp = env
            .client
            .post(env.url("/v1/chat/completions"))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .expect("request sent");
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get("retry-after").cloned();
        let text = resp.text().await.unwrap_or_default();
        match status {
            200 => t.ok += 1,
            503 => {
                assert_eq!(error_code(&text), "overloaded", "{text}");
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["error"]["type"], "server_error", "{text}");
                let secs: u64 = retry_after
                    .expect("a 503 carries Retry-After")
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(secs >= 1, "{secs}");
                t.shed += 1;
                t.slowest_shed = t.slowest_shed.max(sent.elapsed());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => t.other.push(format!("{status}: {text}")),
        }
    }
    t
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenfold_surge_keeps_critical_traffic_and_sheds_batch_at_once() {
    let m = mocks(1).await;
    m[0].set_faults(Faults {
        latency_ms: 100,
        ..Faults::default()
    });
    // Capacity: 4 requests at once. Critical traffic needs 2 of them;
    // batch traffic offers 38 more: ten times capacity in all. Priority
    // shedding alone: without the per-key share, which would refuse the
    // batch key's requests beyond 2 slots before they queue (see
    // `a_flooding_key_is_held_to_its_share_and_another_key_keeps_succeeding`).
    let admission = "\n[admission]\nmax_in_flight = 4\nmax_queue = 16\nqueue_timeout_ms = 20000\ntarget_delay_ms = 20\ninterval_ms = 200\nkey_share_percent = 100\n";
    let toml = config(
        &m,
        "auth = \"keys\"\nrequest_timeout_ms = 30000",
        &one_tier(&m),
    ) + &keys()
        + admission;
    let env = Arc::new(Env::boot(&toml, m).await);
    let stop = Arc::new(AtomicBool::new(false));
    let critical: Vec<_> = (0..2)
        .map(|_| tokio::spawn(client(env.clone(), CRITICAL, stop.clone())))
        .collect();
    let batch: Vec<_> = (0..38)
        .map(|_| tokio::spawn(client(env.clone(), BATCH, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let mut crit = Tally::default();
    for h in critical {
        let t = h.await.unwrap();
        crit.ok += t.ok;
        crit.shed += t.shed;
        crit.other.extend(t.other);
    }
    let mut bat = Tally::default();
    for h in batch {
        let t = h.await.unwrap();
        bat.ok += t.ok;
        bat.shed += t.shed;
        bat.other.extend(t.other);
        bat.slowest_shed = bat.slowest_shed.max(t.slowest_shed);
    }
    let crit_total = crit.ok + crit.shed + crit.other.len();
    eprintln!(
        "surge: critical {}/{crit_total} ok; batch {} ok, {} shed (slowest 503 {:?})",
        crit.ok, bat.ok, bat.shed, bat.slowest_shed
    );
    assert!(crit_total >= 10, "too few critical requests: {crit_total}");
    assert!(
        crit.ok as f64 >= 0.99 * crit_total as f64,
        "critical success {}/{crit_total}; shed {}, other {:?}",
        crit.ok,
        crit.shed,
        crit.other
    );
    assert!(bat.other.is_empty(), "{:?}", bat.other);
    assert!(bat.shed > 0, "no batch request was shed ({} ok)", bat.ok);
    // Shed at once: far below the 30 s request deadline (and the 20 s
    // queue timeout), however long the surge lasts.
    assert!(
        bat.slowest_shed < Duration::from_secs(5),
        "a batch request waited {:?} for its 503",
        bat.slowest_shed
    );
    let text = env
        .client
        .get(env.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let shed_overload = metric(
        &text,
        "lifeline_admission_shed_total{priority=\"batch\",reason=\"overload\"}",
    );
    let shed_full = metric(
        &text,
        "lifeline_admission_shed_total{priority=\"batch\",reason=\"queue_full\"}",
    );
    assert!(shed_overload + shed_full > 0.0, "{text}");
    assert!(
        metric(
            &text,
            "lifeline_admission_admitted_total{priority=\"critical\"}"
        ) >= crit.ok as f64
    );
    assert!(text.contains("lifeline_admission_queue_wait_seconds_bucket"));
    assert_eq!(metric(&text, "lifeline_admission_limit"), 4.0);
    // Every slot came back when the surge ended (streams and answers
    // release theirs as their bodies end).
    let idle = async {
        while env.gw.admission().in_flight() > 0 || env.gw.admission().queued() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), idle)
        .await
        .expect("slots released");
    assert_eq!(env.gw.admission().memory_used(), 0);
    Arc::into_inner(env).expect("clients done").stop().await;
}

#[tokio::test]
async fn a_stream_holds_its_slot_until_it_ends() {
    let m = mocks(1).await;
    crate::streaming::pace(&m[0], 10.0, 20);
    let admission = "\n[admission]\nmax_in_flight = 1\nmax_queue = 0\n";
    let toml = config(&m, "", &one_tier(&m)) + admission;
    let env = Env::boot(&toml, m).await;
    let mut stream = env
        .client
        .post(env.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(crate::streaming::stream_body("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    // The answer's head is out, the stream is still running: the only slot
    // is taken, and with no queue a second request is refused at once.
    assert_eq!(env.gw.admission().in_flight(), 1);
    let (status, headers, body) = env.chat(false).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(error_code(&body), "overloaded");
    assert!(headers.contains_key("retry-after"));
    while stream.chunk().await.unwrap().is_some() {}
    // Released with the end of the stream.
    let released = async {
        while env.gw.admission().in_flight() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), released)
        .await
        .expect("the stream's slot is released");
    let (status, _, body) = env.chat(false).await;
    assert_eq!(status, 200, "{body}");
    env.stop().await;
}

/// `VmHWM` (peak resident set) of process `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_maximum_size_bodies_stays_within_the_memory_budget() {
    init();
    let m = mocks(1).await;
    // Upstream answers take a while: bodies that got in stay buffered.
    m[0].set_faults(Faults {
        latency_ms: 500,
        ..Faults::default()
    });
    const MIB: u64 = 1 << 20;
    let (max_body, budget) = (4 * MIB, 16 * MIB);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lifeline.toml");
    let port = free_port();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nauth = \"none\"\nmax_body_bytes = {max_body}\n\n[admission]\nmemory_budget_bytes = {budget}\n\n[[providers]]\nname = \"p0\"\nkind = \"openai-compatible\"\nbase_url = \"{}\"\n\n[[models]]\nname = \"m\"\ntiers = [ [ {{ provider = \"p0\", model = \"up-0\" }} ] ]\n",
        m[0].base_url()
    );
    std::fs::write(&path, toml).unwrap();
    let log = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
    let proc = Proc(
        Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&path)
            .current_dir(dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("lifeline serve starts"),
    );
    let logs = || std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let up = wait_for(
        &client,
        &format!("{base}/healthz"),
        Duration::from_secs(20),
        |r| r.is_some_and(|(s, _)| *s == 200),
    )
    .await;
    assert!(up, "serve never answered /healthz; stderr:\n{}", logs());
    // A body just under the limit: a chat request with a huge message.
    let filler = "x".repeat(usize::try_from(max_body).unwrap() - 100);
    let big = bytes::Bytes::from(format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"{filler}"}}]}}"#
    ));
    // Warm up (one big request alone fits the budget), then the baseline.
    let warm = client
        .post(format!("{base}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        warm.status(),
        200,
        "{}",
        warm.text().await.unwrap_or_default()
    );
    let baseline = peak_rss(proc.0.id());
    // 64 bodies of 4 MiB at once: 256 MiB offered against a 16 MiB budget.
    let flood = (0..64).map(|_| {
        let client = client.clone();
        let url = format!("{base}/v1/chat/completions");
        let big = big.clone();
        async move {
            match client
                .post(url)
                .header("content-type", "application/json")
                .body(big)
                .timeout(Duration::from_secs(60))
                .send()
                .await
            {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let text = resp.text().await.unwrap_or_default();
                    (status, text)
                }
                // Refused early, the gateway may close before the whole
                // body is sent.
                Err(e) => (0, e.to_string()),
            }
        }
    });
    let answers = futures::future::join_all(flood).await;
    let peak = peak_rss(proc.0.id());
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    let shed: Vec<_> = answers.iter().filter(|(s, _)| *s == 503).collect();
    let grown = peak.saturating_sub(baseline);
    eprintln!(
        "memory flood: {ok} served, {} shed, {} refused mid-send; peak RSS {} MiB, baseline {} MiB",
        shed.len(),
        answers.iter().filter(|(s, _)| *s == 0).count(),
        peak / MIB,
        baseline / MIB
    );
    for (_, body) in &shed {
        assert_eq!(error_code(body), "overloaded", "{body}");
    }
    assert!(
        answers.iter().all(|(s, _)| matches!(s, 0 | 200 | 503)),
        "{:?}",
        answers
            .iter()
            .map(|(s, b)| format!("{s} {}", &b[..b.len().min(200)]))
            .collect::<Vec<_>>()
    );
    assert!(!shed.is_empty(), "nothing was shed ({ok} ok)");
    assert!(ok > 0, "nothing was served");
    // The budget plus a generous margin for connection buffers and the
    // allocator; without the budget the flood buffers 256 MiB (twice over:
    // the body and its upstream copy).
    assert!(
        grown < budget + 48 * MIB,
        "peak RSS grew by {} MiB (baseline {} MiB, budget {} MiB)",
        grown / MIB,
        baseline / MIB,
        budget / MIB
    );
    // The same flood as HTTP/2 streams on one connection (up to 256 may be
    // open at once on it).
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (tx, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("h2 handshake");
    let conn = tokio::spawn(conn);
    let streams = (0..64).map(|_| {
        let mut tx = tx.clone();
        let req = http::Request::post(format!("{base}/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(big.clone()))
            .unwrap();
        async move {
            match tx.send_request(req).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body = http_body_util::BodyExt::collect(resp.into_body()).await;
                    let text = body
                        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                        .unwrap_or_default();
                    (status, text)
                }
                Err(e) => (0, e.to_string()),
            }
        }
    });
    let h2 = futures::future::join_all(streams).await;
    drop(tx);
    conn.abort();
    let peak = peak_rss(proc.0.id());
    let h2_ok = h2.iter().filter(|(s, _)| *s == 200).count();
    let h2_shed = h2.iter().filter(|(s, _)| *s == 503).count();
    eprintln!(
        "memory flood over HTTP/2: {h2_ok} served, {h2_shed} shed; peak RSS {} MiB",
        peak / MIB
    );
    assert!(
        h2.iter().all(|(s, _)| matches!(s, 0 | 200 | 503)),
        "{:?}",
        h2.iter()
            .map(|(s, b)| format!("{s} {}", &b[..b.len().min(200)]))
            .collect::<Vec<_>>()
    );
    assert!(h2_shed > 0, "nothing was shed over HTTP/2 ({h2_ok} ok)");
    let grown = peak.saturating_sub(baseline);
    // A wider margin than over HTTP/1.1: this peak is the process's highest
    // since it started (the HTTP/1.1 flood's included), and the allocator
    // keeps some of what that flood freed (one loaded CI run measured 65 MiB
    // here). Without the budget the flood holds 256 MiB twice over.
    assert!(
        grown < budget + 64 * MIB,
        "peak RSS grew by {} MiB over HTTP/2 (baseline {} MiB, budget {} MiB)",
        grown / MIB,
        baseline / MIB,
        budget / MIB
    );
    // Still healthy, and serving.
    let (status, _) = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 200);
    let small = client
        .post(format!("{base}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), 200);
    drop(proc);
}

/// Admission's limit follows the deployments' own: the sum of their
/// in-flight limits (here their providers' `max_concurrency`), without the
/// drained ones, under `max_in_flight`; and only `max_in_flight` with
/// `follow_deployments = false`.
#[tokio::test]
async fn the_admission_limit_follows_the_deployments() {
    init();
    let limit_within = |env: &Env, want: usize| {
        let gw = env.gw.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            while gw.admission().limit() != want && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            gw.admission().limit()
        }
    };
    for (follow, want, drained) in [(true, 7, 3), (false, 1024, 1024)] {
        let m = mocks(2).await;
        let models = "[[models]]\nname = \"m\"\ntiers = [ [ { provider = \"p0\", model = \"up-0\" }, { provider = \"p1\", model = \"up-1\" } ] ]\n";
        let toml = config(&m, "", models)
            .replace(
                "sk-upstream-0\"\n",
                "sk-upstream-0\"\nmax_concurrency = 3\n",
            )
            .replace(
                "sk-upstream-1\"\n",
                "sk-upstream-1\"\nmax_concurrency = 4\n",
            )
            + &format!("\n[admission]\nfollow_deployments = {follow}\n");
        let env = Env::boot(&toml, m).await;
        assert_eq!(limit_within(&env, want).await, want, "follow = {follow}");
        assert!(env.gw.set_drained("p1/up-1", true).await.is_some());
        assert_eq!(
            limit_within(&env, drained).await,
            drained,
            "follow = {follow}, drained"
        );
        let metrics = env
            .client
            .get(env.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(
            metric(&metrics, "lifeline_admission_limit "),
            drained as f64
        );
        env.stop().await;
    }
}

/// Clients that declare 16 MiB bodies and send nothing (over HTTP/1.1
/// connections, and as HTTP/2 streams of one connection) reserve nothing
/// of the memory budget: bytes are reserved as they arrive. A critical
/// key's small requests meanwhile all succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_declared_uploads_hold_no_memory_and_critical_keeps_succeeding() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const MIB: u64 = 1 << 20;
    let m = mocks(1).await;
    // Without the fix, two silent uploads (2 × 16 MiB each, reserved up
    // front) spend this budget for every priority.
    let toml = config(
        &m,
        &format!("auth = \"keys\"\nmax_body_bytes = {}", 16 * MIB),
        &one_tier(&m),
    ) + &keys()
        + &format!("\n[admission]\nmemory_budget_bytes = {}\n", 64 * MIB);
    let env = Env::boot(&toml, m).await;
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: lifeline\r\nauthorization: Bearer {BATCH}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        16 * MIB
    );
    let mut silent = Vec::new();
    for _ in 0..32 {
        let mut s = tokio::net::TcpStream::connect(env.addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        silent.push(s);
    }
    let tcp = tokio::net::TcpStream::connect(env.addr).await.unwrap();
    let (tx, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("h2 handshake");
    let conn = tokio::spawn(conn);
    let streams: Vec<_> = (0..32)
        .map(|_| {
            let mut tx = tx.clone();
            let never = http_body_util::StreamBody::new(futures::stream::pending::<
                Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>,
            >());
            let req = http::Request::post(env.url("/v1/chat/completions"))
                .header("authorization", format!("Bearer {BATCH}"))
                .header("content-type", "application/json")
                .header("content-length", 16 * MIB)
                .body(never)
                .unwrap();
            tokio::spawn(async move { tx.send_request(req).await.map(|r| r.status().as_u16()) })
        })
        .collect();
    // The heads are in: every silent request waits for its body.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let used = env.gw.admission().memory_used();
    assert!(used < MIB, "silent uploads reserved {used} bytes");
    // Critical traffic, four at a time.
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let critical = (0..4).map(|_| {
        let (client, url) = (env.client.clone(), env.url("/v1/chat/completions"));
        async move {
            let mut statuses = Vec::new();
            for _ in 0..50 {
                let resp = client
                    .post(&url)
                    .bearer_auth(CRITICAL)
                    .header("content-type", "application/json")
                    .body(body)
                    .timeout(Duration::from_secs(30))
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                statuses.push((status, text));
            }
            statuses
        }
    });
    let answers: Vec<_> = futures::future::join_all(critical)
        .await
        .into_iter()
        .flatten()
        .collect();
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    let failed: Vec<_> = answers.iter().filter(|(s, _)| *s != 200).take(5).collect();
    assert!(
        ok * 100 >= answers.len() * 99,
        "critical {ok}/{}: {failed:?}",
        answers.len()
    );
    // The silent requests are still waiting for their bodies, holding
    // nothing: none was answered.
    for s in &mut silent {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(10), s.read(&mut byte)).await;
        assert!(read.is_err(), "a silent upload was answered: {read:?}");
    }
    assert!(streams.iter().all(|h| !h.is_finished()));
    assert!(env.gw.admission().memory_used() < MIB);
    for h in streams {
        h.abort();
    }
    drop((silent, tx));
    conn.abort();
    env.stop().await;
}

/// A request shed by admission is never made: its key's request unit is
/// given back, so a key with `rpm = 1` that was shed is served when it
/// retries, instead of being answered 429 for a request it never got.
#[tokio::test]
async fn a_shed_request_keeps_its_keys_rpm() {
    let m = mocks(1).await;
    crate::streaming::pace(&m[0], 10.0, 20);
    let admission = "\n[admission]\nmax_in_flight = 1\nmax_queue = 0\nfollow_deployments = false\n";
    let keys = keys().replace("priority = \"batch\"\n", "priority = \"batch\"\nrpm = 1\n");
    assert!(keys.contains("rpm = 1"));
    let toml = config(&m, "auth = \"keys\"", &one_tier(&m)) + &keys + admission;
    let env = Env::boot(&toml, m).await;
    // A critical stream takes the only slot.
    let mut stream = env
        .client
        .post(env.url("/v1/chat/completions"))
        .bearer_auth(CRITICAL)
        .header("content-type", "application/json")
        .body(crate::streaming::stream_body("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let batch = || async {
        let resp = env
            .client
            .post(env.url("/v1/chat/completions"))
            .bearer_auth(BATCH)
            .header("content-type", "application/json")
            .body(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    };
    // Shed (no slot, no queue), twice.
    for _ in 0..2 {
        let (status, body) = batch().await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(error_code(&body), "overloaded");
    }
    while stream.chunk().await.unwrap().is_some() {}
    let released = async {
        while env.gw.admission().in_flight() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), released)
        .await
        .expect("the stream's slot is released");
    // The key's one request of the minute is still there.
    let (status, body) = batch().await;
    assert_eq!(status, 200, "{body}");
    // And now it is spent.
    let (status, body) = batch().await;
    assert_eq!(status, 429, "{body}");
    env.stop().await;
}

const FLOOD: &str = "sk-flood-key";
const CALM: &str = "sk-calm-key";

/// Per-key share: a standard key without an `rpm` floods a gateway of 4
/// slots with 30 clients sending requests of 200 ms; another standard key
/// sends one request after another. Once the other key holds a request,
/// the flooding key may hold 2 slots (50 %): its queued requests give way
/// and its further ones are refused at once, so the other key's requests
/// are queued first and served rather than timed out or shed behind the
/// flood (without the share, about 1 in 20 succeeds).
async fn flood_and_calm(key_share_percent: u8) -> (Tally, Tally, String) {
    let m = mocks(1).await;
    m[0].set_faults(Faults {
        latency_ms: 200,
        ..Faults::default()
    });
    let keys = format!(
        "\n[[keys]]\nname = \"flood\"\nkey = \"{FLOOD}\"\n\n[[keys]]\nname = \"calm\"\nkey = \"{CALM}\"\n"
    );
    let admission = format!(
        "\n[admission]\nmax_in_flight = 4\nfollow_deployments = false\nkey_share_percent = {key_share_percent}\n"
    );
    let toml = config(
        &m,
        "auth = \"keys\"\nrequest_timeout_ms = 30000",
        &one_tier(&m),
    ) + &keys
        + &admission;
    let env = Arc::new(Env::boot(&toml, m).await);
    let stop = Arc::new(AtomicBool::new(false));
    let flood: Vec<_> = (0..30)
        .map(|_| tokio::spawn(client(env.clone(), FLOOD, stop.clone())))
        .collect();
    // The flood first takes the slots and (without a share) the queue.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calm = tokio::spawn(client(env.clone(), CALM, stop.clone()));
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let mut flooded = Tally::default();
    for h in flood {
        let t = h.await.unwrap();
        flooded.ok += t.ok;
        flooded.shed += t.shed;
        flooded.other.extend(t.other);
    }
    let calm = calm.await.unwrap();
    let text = env
        .client
        .get(env.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    Arc::into_inner(env).expect("clients done").stop().await;
    (flooded, calm, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_key_is_held_to_its_share_and_another_key_keeps_succeeding() {
    let (flood, calm, text) = flood_and_calm(50).await;
    let total = calm.ok + calm.shed + calm.other.len();
    eprintln!(
        "key share: calm {}/{total} ok ({} shed, other {:?}); flood {} ok, {} shed",
        calm.ok, calm.shed, calm.other, flood.ok, flood.shed
    );
    assert!(total >= 3, "too few calm requests: {total}");
    assert!(
        calm.ok as f64 >= 0.95 * total as f64,
        "calm success {}/{total}; shed {}, other {:?}",
        calm.ok,
        calm.shed,
        calm.other
    );
    assert!(flood.other.is_empty(), "{:?}", flood.other);
    // The flood was served (work-conserving) and refused beyond its share.
    assert!(
        flood.ok > 0 && flood.shed > 0,
        "{} ok, {} shed",
        flood.ok,
        flood.shed
    );
    assert!(
        metric(
            &text,
            "lifeline_admission_shed_total{priority=\"standard\",reason=\"key_share\"}"
        ) > 0.0,
        "{text}"
    );
}
