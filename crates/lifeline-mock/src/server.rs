//! The listener: accept loop, one task per connection, kill, revive, shutdown.
//!
//! Resets must be real TCP RSTs, sent at the moment a fault or `kill()` asks
//! for them, while ordinary closes stay ordinary FINs (an RST after a
//! `Connection: close` response could discard bytes the client has not read
//! yet). So each connection's socket sits in `ConnIo`, which sets
//! `SO_LINGER` to zero only when its connection's abort token was cancelled,
//! just before the socket closes. Each connection task drops its hyper
//! connection as soon as that token fires, so the RST goes out at once, even
//! mid-response. The abort tokens are children of the current "life" token,
//! which `kill()` cancels; the listener itself lives in a mutex so `kill()`
//! can close it synchronously and new connects are refused as soon as it
//! returns.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::stats::{Recorder, Stats};
use crate::{Faults, MockConfig};

/// How long `shutdown()` lets open requests finish before resetting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// State shared by the handle, the accept loop and every connection.
pub(crate) struct Shared {
    config: Mutex<Arc<MockConfig>>,
    pub(crate) recorder: Arc<Recorder>,
    /// Numbers requests, for ids.
    pub(crate) seq: AtomicU64,
    /// 429s and errors injected since the faults were set (`max_injected`).
    pub(crate) injected: AtomicU32,
    pub(crate) addr: SocketAddr,
    /// `http://{addr}`.
    pub(crate) origin: String,
    listener: Mutex<Option<TcpListener>>,
    /// Cancelled by `kill()`; parent of every connection's abort token.
    life: Mutex<CancellationToken>,
    /// Cancelled by `shutdown()` or dropping the last handle.
    stop: CancellationToken,
    connections: TaskTracker,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here can be left half-updated by a panic, so poison is ignored.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// The current settings (cheap: an `Arc` clone).
    pub(crate) fn config(&self) -> Arc<MockConfig> {
        Arc::clone(&lock(&self.config))
    }

    pub(crate) fn set_config(&self, config: MockConfig) {
        let mut guard = lock(&self.config);
        *guard = Arc::new(config);
        self.injected.store(0, Ordering::Relaxed);
    }

    pub(crate) fn set_faults(&self, faults: Faults) {
        let mut guard = lock(&self.config);
        let mut config = MockConfig::clone(&guard);
        config.faults = faults;
        *guard = Arc::new(config);
        self.injected.store(0, Ordering::Relaxed);
    }

    /// Whether one more 429 or error may be injected under `max_injected`.
    pub(crate) fn may_inject(&self, faults: &Faults) -> bool {
        let Some(max) = faults.max_injected else {
            return true;
        };
        self.injected
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        match lock(&self.listener).as_ref() {
            Some(listener) => listener.poll_accept(cx),
            None => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "listener closed",
            ))),
        }
    }

    fn kill(&self) {
        drop(lock(&self.listener).take());
        lock(&self.life).cancel();
    }
}

/// Starts simulated providers.
pub struct MockServer;

impl MockServer {
    /// Binds `addr` (port 0 allowed) and serves until the last handle is
    /// dropped or [`MockHandle::shutdown`] is called.
    pub async fn start(addr: SocketAddr, config: MockConfig) -> io::Result<MockHandle> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let life = CancellationToken::new();
        let shared = Arc::new(Shared {
            config: Mutex::new(Arc::new(config)),
            recorder: Arc::new(Recorder::default()),
            seq: AtomicU64::new(0),
            injected: AtomicU32::new(0),
            addr,
            origin: format!("http://{addr}"),
            listener: Mutex::new(Some(listener)),
            life: Mutex::new(life.clone()),
            stop: CancellationToken::new(),
            connections: TaskTracker::new(),
        });
        tokio::spawn(accept_loop(Arc::clone(&shared), life));
        tracing::debug!(%addr, "mock provider listening");
        Ok(MockHandle {
            shared: Arc::clone(&shared),
            _stop: Arc::new(StopOnDrop { shared }),
        })
    }
}

/// Stops the server when the last [`MockHandle`] goes away.
struct StopOnDrop {
    shared: Arc<Shared>,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.shared.stop.cancel();
        drop(lock(&self.shared.listener).take());
    }
}

/// Controls one running mock. Cheap to clone; dropping the last clone stops
/// the server (open requests may finish).
#[derive(Clone)]
pub struct MockHandle {
    shared: Arc<Shared>,
    _stop: Arc<StopOnDrop>,
}

impl std::fmt::Debug for MockHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockHandle")
            .field("addr", &self.shared.addr)
            .field("alive", &self.is_alive())
            .finish()
    }
}

impl MockHandle {
    /// The address the mock listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `http://{addr}/v1`.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.shared.origin)
    }

    /// Replaces every fault at once.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.set_faults(faults);
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.shared.config().faults.clone()
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.shared.set_faults(Faults::default());
    }

    /// The current settings, faults included.
    pub fn config(&self) -> MockConfig {
        MockConfig::clone(&self.shared.config())
    }

    /// Replaces rate, time to first token, answer length and faults.
    pub fn set_config(&self, config: MockConfig) {
        self.shared.set_config(config);
    }

    /// What the mock has seen so far.
    pub fn stats(&self) -> Stats {
        self.shared.recorder.snapshot()
    }

    /// Simulates the process dying: closes the listener (new connects are
    /// refused) and resets every open connection at once, mid-response too.
    pub fn kill(&self) {
        self.shared.kill();
        tracing::debug!(addr = %self.shared.addr, "mock provider killed");
    }

    /// Comes back on the same address after [`kill`](Self::kill).
    /// Does nothing when alive; fails after [`shutdown`](Self::shutdown).
    pub async fn revive(&self) -> io::Result<()> {
        if self.shared.stop.is_cancelled() {
            return Err(io::Error::other("mock provider was shut down"));
        }
        if self.is_alive() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.shared.addr).await?;
        let life = CancellationToken::new();
        {
            let mut slot = lock(&self.shared.listener);
            if slot.is_some() {
                // A concurrent revive won; ours closes here.
                return Ok(());
            }
            *slot = Some(listener);
            *lock(&self.shared.life) = life.clone();
        }
        tokio::spawn(accept_loop(Arc::clone(&self.shared), life));
        tracing::debug!(addr = %self.shared.addr, "mock provider revived");
        Ok(())
    }

    /// Whether the mock is listening (false after `kill()` until `revive()`).
    pub fn is_alive(&self) -> bool {
        lock(&self.shared.listener).is_some()
    }

    /// Graceful stop: no new connections, idle ones close, open requests get
    /// a few seconds to finish and are then reset.
    pub async fn shutdown(&self) {
        self.shared.stop.cancel();
        drop(lock(&self.shared.listener).take());
        self.shared.connections.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.shared.connections.wait())
            .await
            .is_err()
        {
            lock(&self.shared.life).cancel();
            self.shared.connections.wait().await;
        }
    }
}

async fn accept_loop(shared: Arc<Shared>, life: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = life.cancelled() => return,
            () = shared.stop.cancelled() => return,
            accepted = poll_fn(|cx| shared.poll_accept(cx)) => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                // The current life, not this loop's: a loop that lost a race
                // with kill-then-revive may accept one connection from the
                // new listener, and that connection belongs to the new life.
                let abort = lock(&shared.life).child_token();
                shared
                    .connections
                    .spawn(serve_connection(Arc::clone(&shared), stream, abort));
            }
            Err(error) if error.kind() == io::ErrorKind::NotConnected => return,
            Err(error) => {
                // Usually out of file descriptors; back off instead of spinning.
                tracing::warn!(%error, "mock provider accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn serve_connection(shared: Arc<Shared>, stream: TcpStream, abort: CancellationToken) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "mock provider could not set TCP_NODELAY");
    }
    let io = TokioIo::new(ConnIo {
        stream,
        abort: abort.clone(),
    });
    let service = {
        let shared = Arc::clone(&shared);
        let abort = abort.clone();
        service_fn(move |request| {
            crate::router::handle(Arc::clone(&shared), abort.clone(), request)
        })
    };
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::trace!(%error, "mock provider connection ended with an error");
                }
                return;
            }
            // Dropping the connection drops `ConnIo`, which resets the socket.
            () = abort.cancelled() => return,
            () = shared.stop.cancelled(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// An accepted socket that closes with an RST when its abort token fired.
struct ConnIo {
    stream: TcpStream,
    abort: CancellationToken,
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        if self.abort.is_cancelled() {
            // Zero linger turns the close below into an RST.
            if let Err(error) = self.stream.set_zero_linger() {
                tracing::debug!(%error, "mock provider could not arm the reset");
            }
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
