//! Listeners: accepting connections and serving HTTP/1.1 and HTTP/2 on them.
//!
//! Per connection: `TCP_NODELAY` (DESIGN.md §5: without it Nagle's
//! algorithm and delayed ACKs add ~40 ms to responses written in pieces),
//! TCP keepalive (a peer that vanished without a FIN is found), a slot from
//! the connection limit (a client over the limit waits in the accept backlog
//! instead of starving everyone), and the clocks of `io.rs`: the idle
//! timeout, the header timeout, the write-stall timeout and the lingering
//! close after an early answer. HTTP/2 gets keep-alive pings and stream and
//! header-list limits. One task per connection and the request handled on
//! it: no hand-offs. These settings are read when the listener starts; a
//! reload does not change them. Up to three listeners share them: the data
//! plane (`listen`), the admin API (`admin_listen`) and the status page
//! (`status_listen`, with its own connection limit of `max_connections`).
//!
//! Shutdown: stop accepting, turn `/readyz` false, ask every connection to
//! finish its in-flight requests (hyper's graceful shutdown), and wait up
//! to `drain_timeout`.

mod conn;
mod io;
pub mod pipeline;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;
use crate::gateway::Gateway;
use conn::ConnState;
pub use conn::RequestBody;
use io::{ConnIo, Limits};

/// TCP keepalive on accepted sockets: first probe after this much silence.
pub const TCP_KEEPALIVE_TIME: Duration = Duration::from_secs(60);
/// TCP keepalive: time between unanswered probes.
pub const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// TCP keepalive: unanswered probes before the connection is dropped.
pub const TCP_KEEPALIVE_RETRIES: u32 = 3;
/// HTTP/2: most streams open at once on one connection.
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 256;
/// HTTP/2: largest request header list (HPACK-decoded), in bytes.
pub const H2_MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;
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
    /// The data-plane address (useful with port 0).
    pub data_addr: SocketAddr,
    /// The admin address, if configured.
    pub admin_addr: Option<SocketAddr>,
    /// The status address, if configured.
    pub status_addr: Option<SocketAddr>,
}

impl Server {
    /// Binds `server.listen`, `server.admin_listen` and `server.status_listen`.
    pub async fn bind(gw: Gateway) -> std::io::Result<BoundServer> {
        let cfg = gw.live().config.server.clone();
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
        })
    }
}

impl BoundServer {
    /// Serves until `shutdown` is cancelled, then drains.
    pub async fn run(self, shutdown: CancellationToken) {
        let graceful = Arc::new(GracefulShutdown::new());
        let cfg = self.gw.live().config.server.clone();
        let limit = Arc::new(Semaphore::new(cfg.max_connections));
        let mut loops = tokio::task::JoinSet::new();
        // Fixed by what is bound, not by the live config: a reload that
        // adds or removes `status_listen` changes no listener.
        let status_elsewhere = self.status.is_some();
        loops.spawn(accept_loop(
            self.gw.clone(),
            self.data,
            (Side::Data, status_elsewhere),
            limit.clone(),
            graceful.clone(),
            shutdown.clone(),
        ));
        if let Some(admin) = self.admin {
            loops.spawn(accept_loop(
                self.gw.clone(),
                admin,
                (Side::Admin, status_elsewhere),
                Arc::new(Semaphore::new(256)),
                graceful.clone(),
                shutdown.clone(),
            ));
        }
        if let Some(status) = self.status {
            // Its own connection limit: a crowd reading the status page
            // never takes the data plane's connection slots.
            loops.spawn(accept_loop(
                self.gw.clone(),
                status,
                (Side::Status, status_elsewhere),
                Arc::new(Semaphore::new(cfg.max_connections)),
                graceful.clone(),
                shutdown.clone(),
            ));
        }
        shutdown.cancelled().await;
        self.gw.set_ready(false);
        // The accept loops return once cancelled, dropping the listeners.
        while loops.join_next().await.is_some() {}
        tracing::info!(
            message = "Draining in-flight requests.",
            timeout_ms = cfg.drain_timeout.as_millis() as u64
        );
        let graceful = Arc::try_unwrap(graceful).unwrap_or_else(|_| GracefulShutdown::new());
        match tokio::time::timeout(cfg.drain_timeout, graceful.shutdown()).await {
            Ok(()) => tracing::info!(message = "All connections drained."),
            Err(_) => {
                tracing::warn!(message = "Drain timeout reached; closing remaining connections.")
            }
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
    gw: Gateway,
    listener: TcpListener,
    (side, status_elsewhere): (Side, bool),
    limit: Arc<Semaphore>,
    graceful: Arc<GracefulShutdown>,
    shutdown: CancellationToken,
) {
    let cfg = gw.live().config.server.clone();
    let limits = limits(&cfg);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The header timeout is ConnIo's: hyper's would also close a
    // keep-alive connection that merely waits for its next request.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(cfg.http2_keepalive)
        .keep_alive_timeout(cfg.http2_keepalive)
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        .max_header_list_size(H2_MAX_HEADER_LIST_BYTES);
    let builder = Arc::new(builder);
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => return,
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
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
        let now = tokio::time::Instant::now();
        let state = ConnState::new(now);
        let io = ConnIo::new(stream, peer, state.clone(), limits, now);
        let gw = gw.clone();
        let svc = service_fn(move |req: Request<Incoming>| {
            let busy = state.enter(!req.body().is_end_stream());
            let req = req.map(|body| RequestBody::new(body, &state));
            let h2 = req.version() == Version::HTTP_2;
            let answer = pipeline::handle(gw.clone(), side, status_elsewhere, peer, req);
            async move {
                let resp = answer.await?;
                Ok::<_, Infallible>(resp.map(|body| busy.respond(body, h2)))
            }
        });
        let conn = builder.serve_connection(TokioIo::new(io), svc).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(message = "Connection ended with an error.", peer = %peer, error = %e);
            }
            drop(permit);
        });
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
