//! Listeners: accepting connections and serving HTTP/1.1 and HTTP/2 on them,
//! in clear or over TLS.
//!
//! Per connection: `TCP_NODELAY` (DESIGN.md §5: without it Nagle's
//! algorithm and delayed ACKs add ~40 ms to responses written in pieces),
//! TCP keepalive (a peer that vanished without a FIN is found), a slot from
//! the connection limit (a client over the limit waits in the accept backlog
//! instead of starving everyone), the TLS handshake ([`tls`], bounded by the
//! header timeout), and the clocks of `io.rs`: the idle timeout, the header
//! timeout, the write-stall timeout and the lingering close after an early
//! answer; `io.rs` also gives the answers hyper writes itself (431, 400)
//! OpenAI's shape. HTTP/2 gets keep-alive pings and stream and header-list
//! limits. Keep-alive is bounded: after `max_requests_per_connection`
//! requests or at `max_connection_age` a connection closes gracefully.
//! Every refusal is counted ([`Refusals`]). One task per connection and the
//! request handled on it: no hand-offs. These settings are read when the
//! listener starts; a reload does not change them (the TLS certificate
//! excepted). Up to three listeners share them: the data plane (`listen`),
//! the admin API (`admin_listen`) and the status page (`status_listen`,
//! with its own connection limit of `max_connections`).
//!
//! Shutdown: stop accepting, turn `/readyz` false, ask every connection to
//! finish its in-flight requests (hyper's graceful shutdown), and wait up
//! to `drain_timeout` for the connection tasks.

mod conn;
mod io;
pub mod pipeline;
mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderValue, Request, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus_client::metrics::counter::Counter;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServerConfig;
use crate::gateway::Gateway;
use crate::telemetry::Metrics;
use conn::ConnState;
pub use conn::RequestBody;
use io::{ConnIo, Limits, Stream};

/// TCP keepalive on accepted sockets: first probe after this much silence.
pub const TCP_KEEPALIVE_TIME: Duration = Duration::from_secs(60);
/// TCP keepalive: time between unanswered probes.
pub const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// TCP keepalive: unanswered probes before the connection is dropped.
pub const TCP_KEEPALIVE_RETRIES: u32 = 3;
/// Longest lingering close after an early answer.
pub const LINGER_TIME: Duration = Duration::from_secs(10);
/// A lingering close ends after this long without data from the client.
pub const LINGER_GAP: Duration = Duration::from_secs(2);
/// Fewest request-body bytes a lingering close reads and discards (or
/// `max_body_bytes`, if larger).
pub const LINGER_MIN_BYTES: u64 = 64 * 1024 * 1024;

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The data plane (`listen`).
    Data,
    /// The admin API (`admin_listen`).
    Admin,
    /// The status page (`status_listen`): `/healthz` and the extension's
    /// public routes only.
    Status,
}

/// Entry point: binds the listeners of a gateway.
pub struct Server;

/// Listeners bound and ready to serve.
pub struct BoundServer {
    gw: Gateway,
    data: TcpListener,
    admin: Option<TcpListener>,
    status: Option<TcpListener>,
    /// TLS for every listener, when the config has `tls_cert`/`tls_key`.
    tls: Option<TlsAcceptor>,
    /// The data-plane address (useful with port 0).
    pub data_addr: SocketAddr,
    /// The admin address, if configured.
    pub admin_addr: Option<SocketAddr>,
    /// The status address, if configured.
    pub status_addr: Option<SocketAddr>,
}

impl Server {
    /// Binds `server.listen`, `server.admin_listen` and `server.status_listen`
    /// (and sets up TLS, when configured: it fails rather than serve in clear).
    pub async fn bind(gw: Gateway) -> std::io::Result<BoundServer> {
        let cfg = gw.live().config.server.clone();
        let tls = tls::acceptor(&gw)?;
        let data = TcpListener::bind(cfg.listen).await?;
        let admin = match cfg.admin_listen {
            Some(a) => Some(TcpListener::bind(a).await?),
            None => None,
        };
        let status = match cfg.status_listen {
            Some(a) => Some(TcpListener::bind(a).await?),
            None => None,
        };
        Ok(BoundServer {
            data_addr: data.local_addr()?,
            admin_addr: admin.as_ref().map(TcpListener::local_addr).transpose()?,
            status_addr: status.as_ref().map(TcpListener::local_addr).transpose()?,
            gw,
            data,
            admin,
            status,
            tls,
        })
    }
}

impl BoundServer {
    /// Serves until `shutdown` is cancelled, then drains.
    pub async fn run(self, shutdown: CancellationToken) {
        let conns = TaskTracker::new();
        let cfg = self.gw.live().config.server.clone();
        let tls = self.tls;
        let limit = Arc::new(Semaphore::new(cfg.max_connections));
        let mut loops = tokio::task::JoinSet::new();
        // Fixed by what is bound, not by the live config: a reload that
        // adds or removes `status_listen` changes no listener.
        let status_elsewhere = self.status.is_some();
        let listener = |side, limit| {
            Arc::new(Listener::new(
                &self.gw,
                side,
                status_elsewhere,
                limit,
                tls.clone(),
            ))
        };
        let data = listener(Side::Data, limit.clone());
        loops.spawn(accept_loop(
            data,
            self.data,
            conns.clone(),
            shutdown.clone(),
        ));
        if let Some(admin) = self.admin {
            let l = listener(Side::Admin, Arc::new(Semaphore::new(256)));
            loops.spawn(accept_loop(l, admin, conns.clone(), shutdown.clone()));
        }
        if let Some(status) = self.status {
            // Its own connection limit: a crowd reading the status page
            // never takes the data plane's connection slots.
            let l = listener(Side::Status, Arc::new(Semaphore::new(cfg.max_connections)));
            loops.spawn(accept_loop(l, status, conns.clone(), shutdown.clone()));
        }
        shutdown.cancelled().await;
        self.gw.set_ready(false);
        // The accept loops return once cancelled, dropping the listeners.
        while loops.join_next().await.is_some() {}
        conns.close();
        tracing::info!(
            message = "Draining in-flight requests.",
            timeout_ms = cfg.drain_timeout.as_millis() as u64
        );
        match tokio::time::timeout(cfg.drain_timeout, conns.wait()).await {
            Ok(()) => tracing::info!(message = "All connections drained."),
            Err(_) => {
                tracing::warn!(message = "Drain timeout reached; closing remaining connections.")
            }
        }
    }
}

impl Side {
    /// The `listener` label of this side's metrics.
    pub fn label(self) -> &'static str {
        match self {
            Side::Data => "data",
            Side::Admin => "admin",
            Side::Status => "status",
        }
    }
}

/// One listener's refusal counters (`lifeline_listener_refusals_total`),
/// resolved once so that a refusal costs one atomic add.
pub(super) struct Refusals {
    /// The listener filled up (`max_connections` open): it stops accepting,
    /// and new clients wait in the kernel's backlog until a slot frees.
    pub connection_limit: Counter,
    /// A TLS handshake failed or did not finish within the header timeout.
    pub tls_handshake: Counter,
    /// A connection sent no request before its idle timeout.
    pub idle: Counter,
    /// A request head did not arrive within the header timeout.
    pub header_timeout: Counter,
    /// A request head over `max_header_bytes` (431) or its URL too long (414).
    pub header_too_large: Counter,
    /// A request line or header hyper could not parse (400).
    pub malformed: Counter,
    /// A client stopped reading its answer past the write-stall timeout.
    pub write_stall: Counter,
}

/// Reasons counted by the request path rather than the connection.
pub(crate) mod reason {
    /// The body did not arrive within `body_read_timeout_ms` (408).
    pub const BODY_TIMEOUT: &str = "body_timeout";
    /// The body is over `max_body_bytes` (413).
    pub const BODY_TOO_LARGE: &str = "body_too_large";
    /// The JSON body is nested deeper than `max_json_depth` (400).
    pub const JSON_DEPTH: &str = "json_depth";
}

impl Refusals {
    fn new(metrics: &Metrics, side: Side) -> Self {
        let l = side.label();
        let c = |reason| metrics.listener_refusal(l, reason);
        if side == Side::Data {
            // Exported from the start, at 0, like the others.
            for r in [
                reason::BODY_TIMEOUT,
                reason::BODY_TOO_LARGE,
                reason::JSON_DEPTH,
            ] {
                c(r);
            }
        }
        Self {
            connection_limit: c("connection_limit"),
            tls_handshake: c("tls_handshake"),
            idle: c("idle"),
            header_timeout: c("header_timeout"),
            header_too_large: c("header_too_large"),
            malformed: c("malformed"),
            write_stall: c("write_stall"),
        }
    }
}

/// What a listener's connections share.
struct Listener {
    gw: Gateway,
    side: Side,
    status_elsewhere: bool,
    limit: Arc<Semaphore>,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    max_requests: u64,
    max_age: Duration,
    refusals: Arc<Refusals>,
    builder: auto::Builder<TokioExecutor>,
}

impl Listener {
    fn new(
        gw: &Gateway,
        side: Side,
        status_elsewhere: bool,
        limit: Arc<Semaphore>,
        tls: Option<TlsAcceptor>,
    ) -> Self {
        let cfg = gw.live().config.server.clone();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // The header timeout is ConnIo's: hyper's would also close a
        // keep-alive connection that merely waits for its next request.
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(None)
            .max_buf_size(cfg.max_header_bytes)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(cfg.http2_keepalive)
            .keep_alive_timeout(cfg.http2_keepalive)
            .max_concurrent_streams(cfg.http2_max_concurrent_streams)
            .max_header_list_size(u32::try_from(cfg.max_header_bytes).unwrap_or(u32::MAX));
        Self {
            refusals: Arc::new(Refusals::new(gw.metrics(), side)),
            gw: gw.clone(),
            side,
            status_elsewhere,
            limit,
            tls,
            limits: limits(&cfg),
            max_requests: cfg.max_requests_per_connection,
            max_age: cfg.max_connection_age,
            builder,
        }
    }
}

fn limits(cfg: &ServerConfig) -> Limits {
    Limits {
        idle: cfg.idle_timeout,
        header: cfg.header_read_timeout,
        write_stall: cfg.defaults.stream_idle_timeout,
        linger: LINGER_TIME,
        linger_gap: LINGER_GAP,
        linger_bytes: LINGER_MIN_BYTES.max(cfg.max_body_bytes as u64),
        header_bytes: cfg.max_header_bytes,
    }
}

/// Socket options for an accepted connection: `TCP_NODELAY` and TCP
/// keepalive. A failure is logged and the connection served anyway.
fn tune(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(TCP_KEEPALIVE_TIME)
        .with_interval(TCP_KEEPALIVE_INTERVAL)
        .with_retries(TCP_KEEPALIVE_RETRIES);
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        tracing::debug!(message = "Could not set TCP keepalive.", error = %e);
    }
}

async fn accept_loop(
    l: Arc<Listener>,
    listener: TcpListener,
    conns: TaskTracker,
    shutdown: CancellationToken,
) {
    // When the limit was last logged: at most one warning a minute.
    let mut warned: Option<tokio::time::Instant> = None;
    loop {
        let permit = match l.limit.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(TryAcquireError::Closed) => return,
            Err(TryAcquireError::NoPermits) => {
                // The last slot was just taken: counted once per filling.
                l.refusals.connection_limit.inc();
                let now = tokio::time::Instant::now();
                if warned.is_none_or(|at| now >= at + Duration::from_secs(60)) {
                    warned = Some(now);
                    tracing::warn!(
                        message = "Connection limit reached; new connections wait in the backlog.",
                        listener = l.side.label(),
                    );
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    p = l.limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                }
            }
        };
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(message = "Accept failed.", error = %e);
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        tune(&stream);
        conns.spawn(serve(l.clone(), stream, peer, permit, shutdown.clone()));
    }
}

/// One connection, from the TLS handshake (bounded by the header timeout:
/// a client that never sends its `ClientHello` holds its slot no longer)
/// to its close. A graceful close (GOAWAY for HTTP/2; HTTP/1.1 closes after
/// the request in flight) comes with shutdown, at `max_connection_age`, or
/// once `max_requests_per_connection` requests have started.
async fn serve(
    l: Arc<Listener>,
    stream: TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
    shutdown: CancellationToken,
) {
    let _permit = permit;
    let io = match &l.tls {
        None => Stream::Plain(stream),
        Some(acceptor) => {
            match tokio::time::timeout(l.limits.header, acceptor.accept(stream)).await {
                Ok(Ok(s)) => Stream::Tls(Box::new(s)),
                Ok(Err(e)) => {
                    l.refusals.tls_handshake.inc();
                    tracing::debug!(message = "TLS handshake failed.", peer = %peer, error = %e);
                    return;
                }
                Err(_) => {
                    l.refusals.tls_handshake.inc();
                    tracing::debug!(message = "TLS handshake timed out.", peer = %peer);
                    return;
                }
            }
        }
    };
    let now = tokio::time::Instant::now();
    let state = ConnState::new(now);
    let io = ConnIo::new(io, peer, (state.clone(), l.refusals.clone()), l.limits, now);
    let (gw, side, status_elsewhere) = (l.gw.clone(), l.side, l.status_elsewhere);
    let max_requests = l.max_requests;
    let svc_state = state.clone();
    let svc = service_fn(move |req: Request<Incoming>| {
        let state = &svc_state;
        let busy = state.enter(!req.body().is_end_stream());
        let last = state.started() >= max_requests;
        if last {
            state.spent();
        }
        let req = req.map(|body| RequestBody::new(body, state));
        let h2 = req.version() == Version::HTTP_2;
        let answer = pipeline::handle(gw.clone(), side, status_elsewhere, peer, req);
        async move {
            let mut resp = answer.await?;
            if last && !h2 {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, Infallible>(resp.map(|body| busy.respond(body, h2)))
        }
    });
    let conn = l.builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let age = tokio::time::sleep(l.max_age);
    tokio::pin!(age);
    let mut closing = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(message = "Connection ended with an error.", peer = %peer, error = %e);
                }
                return;
            }
            () = shutdown.cancelled(), if !closing => {}
            () = &mut age, if !closing => {}
            () = state.spent_notified(), if !closing => {}
        }
        closing = true;
        conn.as_mut().graceful_shutdown();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn accepted_sockets_get_tcp_keepalive() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let sock = socket2::SockRef::from(&accepted);
        assert!(!sock.keepalive().unwrap(), "off before tune()");
        tune(&accepted);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), TCP_KEEPALIVE_TIME);
        assert_eq!(
            sock.tcp_keepalive_interval().unwrap(),
            TCP_KEEPALIVE_INTERVAL
        );
        assert_eq!(sock.tcp_keepalive_retries().unwrap(), TCP_KEEPALIVE_RETRIES);
        assert!(accepted.nodelay().unwrap());
        drop(client);
    }
}
