//! Fan-out into the outbox, and the worker that delivers from it.
//!
//! [`enqueue`] turns one event into one delivery per interested subscriber
//! (component scoping, [`Subscriber::wants`]), each with the exact body of
//! the subscriber's format, and queues them in the [`Outbox`] in one call.
//! The [`Worker`] then POSTs every due delivery:
//!
//! - each attempt is signed afresh ([`super::sign`]) and must be answered
//!   with a 2xx within [`RetryPolicy::timeout`] (30 s, as Statuspage's
//!   webhooks); a 3xx (redirects are not followed), 4xx, 5xx, a connection
//!   error or the timeout is a failure;
//! - after the `n`th failed attempt the next is due
//!   `min(first_retry · 2^(n−1), max_delay) · (1 + U[0, jitter))` later:
//!   30 s, 1 min, 2 min, 4 min … capped at 1 h, each up to 20 % later so
//!   that many deliveries failing together do not retry in step;
//! - it gives up (the delivery becomes `failed`) after `max_attempts`
//!   attempts, or when the next attempt would fall more than
//!   `give_up_after` (24 h) after the delivery was queued;
//! - every attempt is logged in the outbox (the delivery log): time,
//!   duration, status code, error. Errors name neither the URL (chat
//!   webhook URLs carry tokens) nor the secret.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use lifeline_store::{Result, StoreError};
use tokio::sync::Notify;

use super::outbox::{Attempt, Delivery, Format, NewDelivery, Next, Outbox, Subscriber};
use super::payload::{statuspage, Event};
use super::sign::{signature, DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use super::{chat, Links};
use crate::page::Page;

/// Queues `event` for every subscriber that wants it, each in its own
/// format, and returns the deliveries. Call [`WorkerHandle::wake`]
/// afterwards so the worker sends them at once.
///
/// Synchronous (the outbox may be the store): call it from a blocking
/// thread on a runtime.
pub fn enqueue(
    outbox: &dyn Outbox,
    page: &Page,
    event: &Event<'_>,
    links: &Links,
    now_ms: i64,
) -> Result<Vec<Delivery>> {
    let label = event.label();
    let mut statuspage_body = None;
    let mut slack_body = None;
    let mut discord_body = None;
    let mut new = Vec::new();
    for subscriber in outbox.subscribers()? {
        if !subscriber.wants(event.components()) {
            continue;
        }
        let body = match subscriber.format {
            Format::Statuspage => statuspage_body
                .get_or_insert_with(|| {
                    statuspage(
                        page,
                        event,
                        &links.unsubscribe,
                        &links.documentation,
                        now_ms,
                    )
                })
                .clone(),
            Format::Slack => slack_body
                .get_or_insert_with(|| chat::slack(page, event))
                .clone(),
            Format::Discord => discord_body
                .get_or_insert_with(|| chat::discord(page, event))
                .clone(),
        };
        new.push(NewDelivery {
            subscriber_id: subscriber.id,
            event: label.clone(),
            body,
            created_at: now_ms,
        });
    }
    if new.is_empty() {
        return Ok(Vec::new());
    }
    outbox.enqueue(&new)
}

/// When to retry and when to give up.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// How long an attempt may take until the answer's status line.
    pub timeout: Duration,
    /// Delay after the first failed attempt; doubled after each further one.
    pub first_retry: Duration,
    /// The longest delay between attempts.
    pub max_delay: Duration,
    /// Up to this fraction is added to each delay at random.
    pub jitter: f64,
    /// Give up when the next attempt would fall this long after queuing.
    pub give_up_after: Duration,
    /// Give up after this many attempts.
    pub max_attempts: u32,
    /// Deliveries in flight at once.
    pub concurrency: usize,
}

impl Default for RetryPolicy {
    /// 30 s timeout; retries after 30 s, 1 min, 2 min … at most 1 h apart,
    /// up to 20 % later; give up after 24 h or 30 attempts; 8 at once.
    fn default() -> Self {
        RetryPolicy {
            timeout: Duration::from_secs(30),
            first_retry: Duration::from_secs(30),
            max_delay: Duration::from_secs(3600),
            jitter: 0.2,
            give_up_after: Duration::from_secs(24 * 3600),
            max_attempts: 30,
            concurrency: 8,
        }
    }
}

impl RetryPolicy {
    /// The delay after the `failed`th failed attempt (from 1), with
    /// `random` in `[0, 1)` choosing the jitter.
    pub fn delay(&self, failed: u32, random: f64) -> Duration {
        let doublings = failed.saturating_sub(1).min(30);
        let base = self
            .first_retry
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay);
        base.mul_f64(1.0 + self.jitter * random.clamp(0.0, 1.0))
    }

    /// What follows a failed attempt number `attempt` (from 1) made at
    /// `now_ms` of a delivery queued at `created_at`.
    pub fn after_failure(&self, attempt: u32, created_at: i64, now_ms: i64, random: f64) -> Next {
        if attempt >= self.max_attempts {
            return Next::GiveUp;
        }
        let at = now_ms.saturating_add(millis(self.delay(attempt, random)));
        if at.saturating_sub(created_at) > millis(self.give_up_after) {
            Next::GiveUp
        } else {
            Next::RetryAt(at)
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Builds the outgoing HTTP client (HTTP/1.1 and HTTP/2, plain and TLS with
/// the web PKI roots), as the upstream poller uses too.
pub(crate) fn http_client(connect_timeout: Duration) -> std::result::Result<HttpsClient, String> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(Arc::new(rustls::crypto::ring::default_provider()))
        .map_err(|e| e.to_string())?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_timer(TokioTimer::new())
        .build(https))
}

/// Unix time in milliseconds that follows tokio's clock: the system time
/// when it was made plus tokio's monotonic time since, so that paused time
/// in tests moves it too.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UnixClock {
    base_ms: i64,
    start: tokio::time::Instant,
}

impl UnixClock {
    pub(crate) fn new() -> Self {
        let base_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, millis);
        UnixClock {
            base_ms,
            start: tokio::time::Instant::now(),
        }
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.base_ms.saturating_add(millis(self.start.elapsed()))
    }
}

struct Shared {
    outbox: Arc<dyn Outbox>,
    client: HttpsClient,
    policy: RetryPolicy,
    rng: Mutex<fastrand::Rng>,
}

/// Wakes a [`Worker`] that is waiting for the next due delivery.
#[derive(Debug, Clone)]
pub struct WorkerHandle(Arc<Notify>);

impl WorkerHandle {
    /// New deliveries were queued: look now.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Delivers due webhooks from an [`Outbox`], retrying with backoff.
pub struct Worker {
    shared: Arc<Shared>,
    wake: Arc<Notify>,
}

/// How many due deliveries one round takes from the outbox.
const BATCH: usize = 64;

/// The longest the worker sleeps without looking at the outbox (another
/// process may have queued deliveries in a shared store).
const IDLE_LOOK: Duration = Duration::from_secs(60);

impl Worker {
    /// A worker for `outbox` with `policy`.
    pub fn new(outbox: Arc<dyn Outbox>, policy: RetryPolicy) -> std::result::Result<Self, String> {
        Ok(Worker {
            shared: Arc::new(Shared {
                outbox,
                client: http_client(Duration::from_secs(10))?,
                policy,
                rng: Mutex::new(fastrand::Rng::new()),
            }),
            wake: Arc::new(Notify::new()),
        })
    }

    /// Seeds the jitter, for reproducible tests.
    pub fn with_seed(self, seed: u64) -> Self {
        if let Ok(mut rng) = self.shared.rng.lock() {
            *rng = fastrand::Rng::with_seed(seed);
        }
        self
    }

    /// A handle that wakes this worker.
    pub fn handle(&self) -> WorkerHandle {
        WorkerHandle(self.wake.clone())
    }

    /// Makes one attempt at every delivery due at `now_ms` (up to 64, at
    /// most [`RetryPolicy::concurrency`] at once), records each and returns
    /// how many were attempted.
    pub async fn deliver_due(&self, now_ms: i64) -> Result<usize> {
        let shared = self.shared.clone();
        let due = blocking(move || shared.outbox.due(now_ms, BATCH)).await?;
        let count = due.len();
        let mut set = tokio::task::JoinSet::new();
        let mut first_error = None;
        for (delivery, subscriber) in due {
            while set.len() >= self.shared.policy.concurrency.max(1) {
                if let Some(Ok(Err(e))) = set.join_next().await {
                    first_error.get_or_insert(e);
                }
            }
            set.spawn(attempt(self.shared.clone(), delivery, subscriber, now_ms));
        }
        while let Some(done) = set.join_next().await {
            if let Ok(Err(e)) = done {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(count),
        }
    }

    /// Runs until the runtime shuts down: delivers what is due, then sleeps
    /// until the next delivery is due, a [`WorkerHandle::wake`], or a
    /// minute, whichever comes first. Outbox errors are logged once when
    /// they start and once when they stop; the worker retries after 5 s.
    pub async fn run(self) {
        let clock = UnixClock::new();
        let mut failing = false;
        loop {
            let now = clock.now_ms();
            let round = self.deliver_due(now).await;
            let next = match round {
                Ok(n) if n >= BATCH => continue,
                Ok(_) => {
                    let shared = self.shared.clone();
                    blocking(move || shared.outbox.next_due_at()).await
                }
                Err(e) => Err(e),
            };
            let sleep = match next {
                Ok(next) => {
                    if failing {
                        tracing::info!("webhook outbox readable again");
                        failing = false;
                    }
                    next.map_or(IDLE_LOOK, |at| {
                        Duration::from_millis(u64::try_from(at - clock.now_ms()).unwrap_or(0))
                            .min(IDLE_LOOK)
                    })
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "webhook outbox failing; deliveries wait");
                        failing = true;
                    }
                    Duration::from_secs(5)
                }
            };
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                () = self.wake.notified() => {}
            }
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| StoreError::Poisoned)?
}

/// One attempt: POST, classify, record.
async fn attempt(
    shared: Arc<Shared>,
    delivery: Delivery,
    subscriber: Subscriber,
    now_ms: i64,
) -> Result<()> {
    let number = delivery.attempts + 1;
    let started = tokio::time::Instant::now();
    let (status, error, retryable) = post(&shared, &delivery, &subscriber, now_ms).await;
    let duration_ms = millis(started.elapsed());
    let next = if error.is_none() {
        Next::Delivered
    } else if !retryable {
        Next::GiveUp
    } else {
        let random = shared.rng.lock().map_or(0.5, |mut r| r.f64());
        shared
            .policy
            .after_failure(number, delivery.created_at, now_ms, random)
    };
    match (&next, &error) {
        (Next::GiveUp, Some(e)) => tracing::warn!(
            delivery = delivery.id,
            subscriber = subscriber.id,
            attempts = number,
            error = %e,
            "webhook delivery given up"
        ),
        (_, Some(e)) => tracing::debug!(
            delivery = delivery.id,
            subscriber = subscriber.id,
            attempt = number,
            error = %e,
            "webhook delivery failed; will retry"
        ),
        (_, None) => tracing::debug!(
            delivery = delivery.id,
            subscriber = subscriber.id,
            attempt = number,
            "webhook delivered"
        ),
    }
    let record = Attempt {
        delivery_id: delivery.id,
        number,
        at_ms: now_ms,
        duration_ms,
        status,
        error,
    };
    blocking(move || shared.outbox.record_attempt(&record, next)).await
}

/// Sends one attempt: `(status, error, retryable)`; `error` is `None` on a
/// 2xx. Only an unusable URL is not retryable.
async fn post(
    shared: &Shared,
    delivery: &Delivery,
    subscriber: &Subscriber,
    now_ms: i64,
) -> (Option<u16>, Option<String>, bool) {
    let Ok(uri) = subscriber.url.parse::<http::Uri>() else {
        return (None, Some("invalid URL".into()), false);
    };
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return (None, Some("URL is not http or https".into()), false);
    }
    let body = Bytes::from(delivery.body.clone());
    let timestamp_s = now_ms.div_euclid(1000);
    let mut request = http::Request::post(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "Lifeline-Webhook/1")
        .header(TIMESTAMP_HEADER, timestamp_s)
        .header(DELIVERY_HEADER, delivery.id);
    if let Some(secret) = &subscriber.secret {
        request = request.header(SIGNATURE_HEADER, signature(secret, timestamp_s, &body));
    }
    let request = match request.body(Full::new(body)) {
        Ok(r) => r,
        Err(_) => return (None, Some("invalid request".into()), false),
    };
    match tokio::time::timeout(shared.policy.timeout, shared.client.request(request)).await {
        Err(_) => (
            None,
            Some(format!("timeout after {:?}", shared.policy.timeout)),
            true,
        ),
        Ok(Err(e)) => (None, Some(describe(&e)), true),
        Ok(Ok(response)) => {
            let status = response.status();
            if status.is_success() {
                (Some(status.as_u16()), None, true)
            } else {
                (
                    Some(status.as_u16()),
                    Some(format!("status {}", status.as_u16())),
                    true,
                )
            }
        }
    }
}

/// A request error for the log: its kind and innermost cause (an I/O error
/// such as "Connection refused"), never the URL.
pub(crate) fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let kind = if e.is_connect() { "connect" } else { "request" };
    format!("{kind}: {cause}")
}
