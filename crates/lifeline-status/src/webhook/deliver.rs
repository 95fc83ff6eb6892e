//! Fan-out into the outbox, and the worker that delivers from it.
//!
//! Both work on the store's durable outbox ([`lifeline_store::WebhookStore`],
//! types in [`lifeline_store::webhook`]): a delivery queued there survives a
//! restart until it is delivered or given up.
//!
//! [`enqueue`] turns one event into one delivery per interested subscription
//! (component scoping, [`Subscription::wants`]), each with the exact body of
//! the subscription's format, and queues them in one transaction.
//! The [`Worker`] then POSTs every due delivery:
//!
//! - each attempt is signed afresh ([`super::sign`]) with the subscription's
//!   secret (an empty secret sends it unsigned) and must be answered
//!   with a 2xx within [`RetryPolicy::timeout`] (30 s, as Statuspage's
//!   webhooks); a 3xx (redirects are not followed), 4xx, 5xx, a connection
//!   error or the timeout is a failure;
//! - after the `n`th failed attempt the next is due
//!   `min(first_retry · 2^(n−1), max_delay) · (1 + U[0, jitter))` later:
//!   30 s, 1 min, 2 min, 4 min … capped at 1 h, each up to 20 % later so
//!   that many deliveries failing together do not retry in step;
//! - it gives up (the delivery becomes `gave_up`) after `max_attempts`
//!   attempts, or when the next attempt would fall more than
//!   `give_up_after` (24 h) after the delivery was queued; a URL that can
//!   never work (not http or https) is given up at once;
//! - every attempt is recorded on its delivery
//!   ([`WebhookStore::record_attempt`]): the attempt count, the time, status
//!   code and error of the latest attempt, and what comes next; the
//!   deliveries are the delivery log. Errors name neither the URL (chat
//!   webhook URLs carry tokens) nor the secret.
//!
//! The store is synchronous: the worker calls it on blocking threads
//! (`spawn_blocking`), and [`enqueue`] is meant to be called from one.
//!
//! [`Subscription::wants`]: lifeline_store::webhook::Subscription::wants

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use lifeline_store::webhook::{
    AttemptOutcome, AttemptResult, Delivery, DueDelivery, NewDelivery, WebhookFormat,
};
use lifeline_store::{Result, StatusStore, StoreError, WebhookStore};
use tokio::sync::Notify;

use super::payload::{statuspage, Event};
use super::sign::{signature, Secret, DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use super::{chat, Links};
use crate::page::Page;

/// Queues `event` for every subscription that wants it, each in its own
/// format, all in one transaction, and returns the deliveries (first
/// attempt due at `now_ms`). Call [`WorkerHandle::wake`] afterwards so the
/// worker sends them at once.
///
/// Synchronous (it reads and writes the store): call it from a blocking
/// thread on a runtime. Generic so that both a concrete store and an
/// `Arc<dyn StatusStore>` (`&*store`) can be passed.
pub fn enqueue<S: WebhookStore + ?Sized>(
    store: &S,
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
    for subscription in store.subscriptions()? {
        if !subscription.wants(event.components()) {
            continue;
        }
        let body = match subscription.format {
            WebhookFormat::Statuspage => statuspage_body
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
            WebhookFormat::Slack => slack_body
                .get_or_insert_with(|| chat::slack(page, event))
                .clone(),
            WebhookFormat::Discord => discord_body
                .get_or_insert_with(|| chat::discord(page, event))
                .clone(),
        };
        new.push(NewDelivery {
            subscription_id: subscription.id,
            event: label.to_owned(),
            body,
            created_at: now_ms,
            next_attempt_at: now_ms,
        });
    }
    if new.is_empty() {
        return Ok(Vec::new());
    }
    store.enqueue(&new)
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
    /// `now_ms` of a delivery queued at `created_at`: a retry, or giving up.
    pub fn after_failure(
        &self,
        attempt: u32,
        created_at: i64,
        now_ms: i64,
        random: f64,
    ) -> AttemptOutcome {
        if attempt >= self.max_attempts {
            return AttemptOutcome::GaveUp;
        }
        let at = now_ms.saturating_add(millis(self.delay(attempt, random)));
        if at.saturating_sub(created_at) > millis(self.give_up_after) {
            AttemptOutcome::GaveUp
        } else {
            AttemptOutcome::RetryAt(at)
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

    /// The later of the wall clock and the start plus tokio's elapsed
    /// time: tokio's clock alone would fall behind after a suspended VM or
    /// host (it does not count the pause) and the wall clock alone would not
    /// follow paused time in tests.
    pub(crate) fn now_ms(&self) -> i64 {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, millis);
        self.base_ms
            .saturating_add(millis(self.start.elapsed()))
            .max(wall)
    }
}

struct Shared {
    store: Arc<dyn StatusStore>,
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

/// Delivers due webhooks from the store's outbox, retrying with backoff.
pub struct Worker {
    shared: Arc<Shared>,
    wake: Arc<Notify>,
}

/// How many due deliveries one round takes from the outbox.
const BATCH: usize = 64;

/// The longest the worker sleeps without looking at the outbox: retries
/// scheduled before a restart, or deliveries queued without a
/// [`WorkerHandle::wake`], are found within this time.
const IDLE_LOOK: Duration = Duration::from_secs(60);

/// What one round did.
#[derive(Debug, Default)]
struct Round {
    /// Deliveries attempted.
    attempted: usize,
    /// When the retries it scheduled are due (unix ms).
    retries: Vec<i64>,
    /// The first store error, if any (the other attempts still count).
    error: Option<StoreError>,
}

impl Round {
    fn add(&mut self, joined: std::result::Result<Result<Option<i64>>, tokio::task::JoinError>) {
        match joined {
            Ok(Ok(Some(retry_at))) => self.retries.push(retry_at),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                self.error.get_or_insert(e);
            }
            Err(_) => {
                self.error.get_or_insert(StoreError::Poisoned);
            }
        }
    }
}

impl Worker {
    /// A worker that delivers from `store`'s outbox with `policy` (the
    /// gateway's one store; only its [`WebhookStore`] part is used). Errs
    /// only if the HTTPS client cannot be built.
    pub fn new(
        store: Arc<dyn StatusStore>,
        policy: RetryPolicy,
    ) -> std::result::Result<Self, String> {
        Ok(Worker {
            shared: Arc::new(Shared {
                store,
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
    /// how many were attempted; the first store error if one failed.
    pub async fn deliver_due(&self, now_ms: i64) -> Result<usize> {
        let round = self.round(now_ms).await;
        match round.error {
            Some(e) => Err(e),
            None => Ok(round.attempted),
        }
    }

    async fn round(&self, now_ms: i64) -> Round {
        let shared = self.shared.clone();
        let due = match blocking(move || shared.store.due(now_ms, BATCH)).await {
            Ok(due) => due,
            Err(e) => {
                return Round {
                    error: Some(e),
                    ..Round::default()
                }
            }
        };
        let mut round = Round {
            attempted: due.len(),
            ..Round::default()
        };
        let mut set = tokio::task::JoinSet::new();
        for delivery in due {
            while set.len() >= self.shared.policy.concurrency.max(1) {
                if let Some(joined) = set.join_next().await {
                    round.add(joined);
                }
            }
            set.spawn(attempt(self.shared.clone(), delivery, now_ms));
        }
        while let Some(joined) = set.join_next().await {
            round.add(joined);
        }
        round
    }

    /// Runs until the runtime shuts down: delivers what is due, then sleeps
    /// until the next retry it scheduled is due, a [`WorkerHandle::wake`],
    /// or a minute, whichever comes first. Store errors are logged once
    /// when they start and once when they stop; the worker retries after
    /// 5 s.
    ///
    /// The store has no "next due" query: the worker keeps the times of the
    /// retries it scheduled itself (it is the only sender of its store),
    /// new deliveries come with a wake, and anything else (retries
    /// scheduled before a restart) is found by the look every minute.
    pub async fn run(self) {
        let clock = UnixClock::new();
        let mut failing = false;
        let mut retries: BinaryHeap<Reverse<i64>> = BinaryHeap::new();
        loop {
            let now = clock.now_ms();
            let round = self.round(now).await;
            while retries.peek().is_some_and(|Reverse(at)| *at <= now) {
                retries.pop();
            }
            retries.extend(round.retries.into_iter().map(Reverse));
            let sleep = match round.error {
                None => {
                    if failing {
                        tracing::info!("webhook outbox readable again");
                        failing = false;
                    }
                    if round.attempted >= BATCH {
                        continue;
                    }
                    retries.peek().map_or(IDLE_LOOK, |Reverse(at)| {
                        Duration::from_millis(u64::try_from(at - clock.now_ms()).unwrap_or(0))
                            .min(IDLE_LOOK)
                    })
                }
                Some(e) => {
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

/// One attempt: POST, classify, record. Returns when the retry it
/// scheduled is due, if it scheduled one.
async fn attempt(shared: Arc<Shared>, due: DueDelivery, now_ms: i64) -> Result<Option<i64>> {
    let delivery = &due.delivery;
    let number = delivery.attempts + 1;
    let started = tokio::time::Instant::now();
    let (status, error, retryable) = post(&shared, &due, now_ms).await;
    let elapsed_ms = millis(started.elapsed());
    let outcome = if error.is_none() {
        AttemptOutcome::Delivered
    } else if !retryable {
        AttemptOutcome::GaveUp
    } else {
        let random = shared.rng.lock().map_or(0.5, |mut r| r.f64());
        shared
            .policy
            .after_failure(number, delivery.created_at, now_ms, random)
    };
    match (&outcome, &error) {
        (AttemptOutcome::GaveUp, Some(e)) => tracing::warn!(
            delivery = delivery.id,
            subscription = delivery.subscription_id,
            attempts = number,
            elapsed_ms,
            error = %e,
            "webhook delivery given up"
        ),
        (_, Some(e)) => tracing::debug!(
            delivery = delivery.id,
            subscription = delivery.subscription_id,
            attempt = number,
            elapsed_ms,
            error = %e,
            "webhook delivery failed; will retry"
        ),
        (_, None) => tracing::debug!(
            delivery = delivery.id,
            subscription = delivery.subscription_id,
            attempt = number,
            elapsed_ms,
            "webhook delivered"
        ),
    }
    let retry_at = match outcome {
        AttemptOutcome::RetryAt(at) => Some(at),
        AttemptOutcome::Delivered | AttemptOutcome::GaveUp => None,
    };
    let id = delivery.id;
    let result = AttemptResult {
        at_ms: now_ms,
        status,
        error,
        outcome,
    };
    let store = shared.store.clone();
    match blocking(move || store.record_attempt(id, &result)).await {
        Ok(_) => Ok(retry_at),
        // The subscription was deleted while the attempt was in flight,
        // and its outbox with it: nothing left to record.
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Sends one attempt: `(status, error, retryable)`; `error` is `None` on a
/// 2xx. Only an unusable URL is not retryable.
async fn post(
    shared: &Shared,
    due: &DueDelivery,
    now_ms: i64,
) -> (Option<u16>, Option<String>, bool) {
    let Ok(uri) = due.url.parse::<http::Uri>() else {
        return (None, Some("invalid URL".into()), false);
    };
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return (None, Some("URL is not http or https".into()), false);
    }
    let body = Bytes::from(due.delivery.body.clone());
    let timestamp_s = now_ms.div_euclid(1000);
    let mut request = http::Request::post(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "Lifeline-Webhook/1")
        .header(TIMESTAMP_HEADER, timestamp_s)
        .header(DELIVERY_HEADER, due.delivery.id);
    if !due.secret.is_empty() {
        let secret = Secret::new(due.secret.as_str());
        request = request.header(SIGNATURE_HEADER, signature(&secret, timestamp_s, &body));
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
