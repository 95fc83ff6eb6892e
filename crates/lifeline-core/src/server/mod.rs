//! Listeners: accepting connections and serving HTTP/1.1 and HTTP/2 on them.
//!
//! Per connection: `TCP_NODELAY` (DESIGN.md §5: without it Nagle's
//! algorithm and delayed ACKs add ~40 ms to responses written in pieces), a
//! header read timeout, and a slot from the connection limit (a client over
//! the limit waits in the accept backlog instead of starving everyone).
//! One task per connection and the request handled on it: no hand-offs.
//!
//! Shutdown: stop accepting, turn `/readyz` false, ask every connection to
//! finish its in-flight requests (hyper's graceful shutdown), and wait up
//! to `drain_timeout`.

pub mod pipeline;

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::gateway::Gateway;

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The data plane (`listen`).
    Data,
    /// The admin API (`admin_listen`).
    Admin,
}

/// Entry point: binds the listeners of a gateway.
pub struct Server;

/// Listeners bound and ready to serve.
pub struct BoundServer {
    gw: Gateway,
    data: TcpListener,
    admin: Option<TcpListener>,
    /// The data-plane address (useful with port 0).
    pub data_addr: SocketAddr,
    /// The admin address, if configured.
    pub admin_addr: Option<SocketAddr>,
}

impl Server {
    /// Binds `server.listen` and `server.admin_listen`.
    pub async fn bind(gw: Gateway) -> std::io::Result<BoundServer> {
        let cfg = gw.live().config.server.clone();
        let data = TcpListener::bind(cfg.listen).await?;
        let admin = match cfg.admin_listen {
            Some(a) => Some(TcpListener::bind(a).await?),
            None => None,
        };
        Ok(BoundServer {
            data_addr: data.local_addr()?,
            admin_addr: admin.as_ref().map(TcpListener::local_addr).transpose()?,
            gw,
            data,
            admin,
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
        loops.spawn(accept_loop(
            self.gw.clone(),
            self.data,
            Side::Data,
            limit.clone(),
            graceful.clone(),
            shutdown.clone(),
        ));
        if let Some(admin) = self.admin {
            loops.spawn(accept_loop(
                self.gw.clone(),
                admin,
                Side::Admin,
                Arc::new(Semaphore::new(256)),
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

async fn accept_loop(
    gw: Gateway,
    listener: TcpListener,
    side: Side,
    limit: Arc<Semaphore>,
    graceful: Arc<GracefulShutdown>,
    shutdown: CancellationToken,
) {
    let header_timeout = gw.live().config.server.header_read_timeout;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256);
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
        let _ = stream.set_nodelay(true);
        let gw = gw.clone();
        let svc = service_fn(move |req| pipeline::handle(gw.clone(), side, peer, req));
        let conn = builder
            .serve_connection(TokioIo::new(stream), svc)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(message = "Connection ended with an error.", peer = %peer, error = %e);
            }
            drop(permit);
        });
    }
}
