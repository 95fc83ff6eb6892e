//! The surge benchmark's load generator (`bench/surge.sh` drives it).
//!
//! Two modes, one JSON object on stdout each:
//!
//! - `closed --concurrency N`: N clients, each sending its next request as
//!   soon as the last one is answered: the gateway's capacity (goodput with
//!   no queue to speak of).
//! - `open --rate R`: a request every 1/R s whatever the answers do (open
//!   loop: a surge does not slow down because the server is slow), the
//!   priority classes interleaved by `--mix`. This is what a surge looks
//!   like from the gateway: offered load independent of its latency.
//!
//! Each class's requests carry its key (`--keys critical=K,standard=K,
//! batch=K`), so the gateway sees the priority of each. Goodput is the
//! successful answers that arrived while requests were being sent, per
//! second (a backlog drained afterwards does not count). Per class: sent,
//! succeeded, shed (503), refused (429), other failures, whether refusals
//! carried `Retry-After`, and p50/p99 latency of the admitted (succeeded)
//! requests.
//!
//! Written here rather than with wrk: wrk is closed-loop (it waits for an
//! answer before sending again), so it cannot offer 10× a server's
//! capacity; and it cannot mix keys per request or tell classes apart.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Parser, Debug)]
struct Args {
    /// `closed` (capacity) or `open` (offered load).
    #[arg(value_enum)]
    mode: Mode,
    /// The gateway's chat completions URL.
    #[arg(long, default_value = "http://127.0.0.1:18190/v1/chat/completions")]
    url: String,
    /// `critical=KEY,standard=KEY,batch=KEY`.
    #[arg(long)]
    keys: String,
    /// Share of critical, standard and batch requests, e.g. `20,50,30`.
    #[arg(long, default_value = "20,50,30")]
    mix: String,
    /// Open loop: requests per second offered.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Closed loop: clients.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long requests are sent.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// How long answers are awaited after the last request was sent.
    #[arg(long, default_value_t = 60.0)]
    grace: f64,
    /// The `model` of every request.
    #[arg(long, default_value = "bench")]
    model: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Closed,
    Open,
}

const CLASSES: [&str; 3] = ["critical", "standard", "batch"];

/// What happened to one request.
#[derive(Clone, Copy, Debug)]
struct Outcome {
    class: usize,
    /// HTTP status; 0 for a transport error or no answer within the grace.
    status: u16,
    retry_after: bool,
    latency: Duration,
    /// Whether the answer arrived before sending stopped (goodput counts
    /// only those: answers drained from a backlog afterwards would inflate
    /// it).
    in_window: bool,
}

#[derive(Default)]
struct Tally {
    outcomes: Vec<Outcome>,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

struct Shared {
    client: HttpClient,
    url: hyper::Uri,
    keys: [String; 3],
    body: Bytes,
    tally: Mutex<Tally>,
}

impl Shared {
    async fn one(&self, class: usize, stop: Instant, deadline: Instant) {
        let started = Instant::now();
        let req = hyper::Request::post(self.url.clone())
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", self.keys[class]))
            .body(Full::new(self.body.clone()));
        let Ok(req) = req else { return };
        let answer = tokio::time::timeout_at(deadline, async {
            let resp = self.client.request(req).await.ok()?;
            let status = resp.status().as_u16();
            let retry_after = resp.headers().contains_key("retry-after");
            // The whole body: a success counts once it has arrived.
            resp.into_body().collect().await.ok()?;
            Some((status, retry_after))
        })
        .await;
        let (status, retry_after) = answer.ok().flatten().unwrap_or((0, false));
        self.tally.lock().await.outcomes.push(Outcome {
            class,
            status,
            retry_after,
            latency: started.elapsed(),
            in_window: Instant::now() <= stop,
        });
    }
}

fn parse_keys(s: &str) -> anyhow::Result<[String; 3]> {
    let mut keys: [Option<String>; 3] = Default::default();
    for part in s.split(',') {
        let (class, key) = part.split_once('=').context("--keys: CLASS=KEY,...")?;
        let Some(i) = CLASSES.iter().position(|c| *c == class) else {
            bail!("--keys: unknown class {class:?}");
        };
        keys[i] = Some(key.to_string());
    }
    let [Some(c), Some(s), Some(b)] = keys else {
        bail!("--keys needs critical, standard and batch");
    };
    Ok([c, s, b])
}

/// The class of request number `n`: the mix spread evenly (for `20,50,30`,
/// every ten requests hold two critical, five standard, three batch).
fn schedule(mix: &[u32; 3]) -> Vec<usize> {
    let total: u32 = mix.iter().sum();
    let mut order = Vec::with_capacity(total as usize);
    let mut credit = [0f64; 3];
    for _ in 0..total {
        for (c, m) in mix.iter().enumerate() {
            credit[c] += f64::from(*m) / f64::from(total);
        }
        let best = (0..3)
            .max_by(|a, b| credit[*a].total_cmp(&credit[*b]))
            .unwrap_or(0);
        credit[best] -= 1.0;
        order.push(best);
    }
    order
}

fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).copied()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mix: Vec<u32> = args
        .mix
        .split(',')
        .map(|p| p.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .context("--mix: three whole numbers")?;
    let [c, s, b] = mix[..] else {
        bail!("--mix needs three numbers");
    };
    if c + s + b == 0 {
        bail!("--mix must not be all zero");
    }
    let order = schedule(&[c, s, b]);
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(4096)
        .build(connector);
    let body = serde_json::json!({
        "model": args.model,
        "messages": [{"role": "user", "content": "Say something short."}],
        "max_tokens": 16,
    });
    let shared = Arc::new(Shared {
        client,
        url: args.url.parse().context("--url")?,
        keys: parse_keys(&args.keys)?,
        body: Bytes::from(body.to_string()),
        tally: Mutex::new(Tally::default()),
    });
    let run = Duration::from_secs_f64(args.seconds);
    let grace = Duration::from_secs_f64(args.grace);
    let start = Instant::now();
    let stop = start + run;
    let deadline = stop + grace;
    let mut tasks = tokio::task::JoinSet::new();
    match args.mode {
        Mode::Open => {
            if args.rate <= 0.0 {
                bail!("--rate must be above 0");
            }
            let every = Duration::from_secs_f64(1.0 / args.rate);
            let mut n = 0usize;
            loop {
                // Scheduled from the start, not from the last send: a late
                // tick sends at once, so the offered rate holds on average.
                let at = start + every.mul_f64(n as f64);
                if at >= stop {
                    break;
                }
                tokio::time::sleep_until(at).await;
                let class = order[n % order.len()];
                let shared = shared.clone();
                tasks.spawn(async move { shared.one(class, stop, deadline).await });
                n += 1;
            }
        }
        Mode::Closed => {
            for w in 0..args.concurrency {
                let shared = shared.clone();
                let order = order.clone();
                tasks.spawn(async move {
                    let mut n = w;
                    while Instant::now() < stop {
                        shared.one(order[n % order.len()], stop, deadline).await;
                        n += args.concurrency;
                    }
                });
            }
        }
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = run.as_secs_f64();
    let tally = shared.tally.lock().await;
    let mut classes = BTreeMap::new();
    let mut ok_total = 0usize;
    let good = tally
        .outcomes
        .iter()
        .filter(|o| o.status == 200 && o.in_window)
        .count();
    for (i, name) in CLASSES.iter().enumerate() {
        let mine: Vec<&Outcome> = tally.outcomes.iter().filter(|o| o.class == i).collect();
        let ok: Vec<&&Outcome> = mine.iter().filter(|o| o.status == 200).collect();
        let refused: Vec<&&Outcome> = mine
            .iter()
            .filter(|o| o.status == 503 || o.status == 429)
            .collect();
        let mut lat: Vec<f64> = ok
            .iter()
            .map(|o| o.latency.as_secs_f64() * 1000.0)
            .collect();
        lat.sort_by(f64::total_cmp);
        let mut refused_lat: Vec<f64> = refused
            .iter()
            .map(|o| o.latency.as_secs_f64() * 1000.0)
            .collect();
        refused_lat.sort_by(f64::total_cmp);
        ok_total += ok.len();
        classes.insert(
            *name,
            serde_json::json!({
                "sent": mine.len(),
                "ok": ok.len(),
                "shed_503": mine.iter().filter(|o| o.status == 503).count(),
                "refused_429": mine.iter().filter(|o| o.status == 429).count(),
                "other": mine.iter().filter(|o| o.status != 200 && o.status != 503 && o.status != 429 && o.status != 0).count(),
                "no_answer": mine.iter().filter(|o| o.status == 0).count(),
                "refusals_with_retry_after": refused.iter().filter(|o| o.retry_after).count(),
                "success_ratio": if mine.is_empty() { 1.0 } else { ok.len() as f64 / mine.len() as f64 },
                "p50_ms": percentile(&lat, 0.50),
                "p99_ms": percentile(&lat, 0.99),
                "refusal_p99_ms": percentile(&refused_lat, 0.99),
            }),
        );
    }
    let sent = tally.outcomes.len();
    let out = serde_json::json!({
        "mode": format!("{:?}", args.mode).to_lowercase(),
        "rate": if args.mode == Mode::Open { Some(args.rate) } else { None },
        "concurrency": if args.mode == Mode::Closed { Some(args.concurrency) } else { None },
        "seconds": elapsed,
        "sent": sent,
        "offered_rps": sent as f64 / elapsed,
        "goodput_rps": good as f64 / elapsed,
        "ok_after_window": ok_total - good,
        "classes": classes,
    });
    println!("{out}");
    Ok(())
}
