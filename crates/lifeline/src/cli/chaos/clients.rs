//! Misbehaving clients: slowloris connections that send a request's headers
//! a byte at a time and never finish them, holding a connection (and, on a
//! server without a header timeout, its slot) for as long as they like;
//! silent connections that send nothing at all; and clients that ask for a
//! long stream and never read it. Slowloris and silent ones record when the
//! gateway cut them, from their first byte (or their connection).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// Running slowloris connections.
pub struct Slowloris {
    cut: Arc<Mutex<Vec<Option<Duration>>>>,
    tasks: tokio::task::JoinSet<()>,
    started: usize,
}

impl Slowloris {
    /// Opens `n` connections to `addr`, each sending a byte of its headers
    /// every 500 ms until the gateway closes it.
    pub async fn start(addr: SocketAddr, n: usize) -> Slowloris {
        let cut = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..n {
            let cut = cut.clone();
            tasks.spawn(async move {
                let after = trickle(addr).await;
                cut.lock().unwrap_or_else(|p| p.into_inner()).push(after);
            });
        }
        Slowloris {
            cut,
            tasks,
            started: n,
        }
    }

    /// Waits until every connection was cut or `deadline`, then closes the
    /// rest; returns (connections, how long each cut one lasted).
    pub async fn finish(mut self, deadline: Instant) -> (usize, Vec<Duration>) {
        let _ = tokio::time::timeout_at(deadline, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        self.tasks.shutdown().await;
        let cut = self
            .cut
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .flatten()
            .copied()
            .collect();
        (self.started, cut)
    }
}

/// One slowloris connection: `None` if it could not connect.
async fn trickle(addr: SocketAddr) -> Option<Duration> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let t0 = Instant::now();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\nx-slow: "
    );
    // The request line and the first headers arrive at once; then a byte
    // of the last header every 500 ms, never its end.
    s.write_all(head.as_bytes()).await.ok()?;
    let mut buf = [0u8; 512];
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            r = s.read(&mut buf) => match r {
                // Closed by the gateway (or an answer, then closed).
                Ok(0) | Err(_) => return Some(t0.elapsed()),
                Ok(_) => {}
            },
            _ = tick.tick() => {
                if s.write_all(b"a").await.is_err() {
                    return Some(t0.elapsed());
                }
            }
        }
    }
}

/// Silent connections: each connects and sends nothing, holding a
/// connection (and, on a server without an idle timeout, a slot) for as
/// long as it likes. Each records when the gateway closed it.
pub struct Silent {
    inner: Slowloris,
}

impl Silent {
    /// Opens `n` connections to `addr` that never send a byte.
    pub async fn start(addr: SocketAddr, n: usize) -> Silent {
        let cut = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..n {
            let cut = cut.clone();
            tasks.spawn(async move {
                let after = hush(addr).await;
                cut.lock().unwrap_or_else(|p| p.into_inner()).push(after);
            });
        }
        Silent {
            inner: Slowloris {
                cut,
                tasks,
                started: n,
            },
        }
    }

    /// As [`Slowloris::finish`].
    pub async fn finish(self, deadline: Instant) -> (usize, Vec<Duration>) {
        self.inner.finish(deadline).await
    }
}

/// One silent connection: `None` if it could not connect.
async fn hush(addr: SocketAddr) -> Option<Duration> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let t0 = Instant::now();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return Some(t0.elapsed()),
            Ok(_) => {}
        }
    }
}

/// Clients that ask for a long streamed answer and never read it: the
/// socket's receive buffer is made small, so the answer soon fills it and
/// the gateway's send buffer, and the gateway's writes stop. They are held
/// open (never read, never closed) until [`Stalled::close`].
pub struct Stalled {
    conns: Vec<tokio::net::TcpStream>,
    started: usize,
}

/// The words a never-reading client asks for: the simulated provider's
/// most (about 15 MB of stream), far more than any socket buffer holds.
pub const STALLED_WORDS: u32 = 100_000;

impl Stalled {
    /// Sends `n` streaming requests for [`STALLED_WORDS`] words of `model`
    /// with bearer `key`, each on a connection of its own.
    pub async fn start(addr: SocketAddr, n: usize, model: &str, key: &str) -> Stalled {
        let mut conns = Vec::new();
        for i in 0..n {
            let body = serde_json::json!({
                "model": model,
                "stream": true,
                "max_tokens": STALLED_WORDS,
                "messages": [{ "role": "user", "content": format!("never read {i} {}", fastrand::u64(..)) }],
            })
            .to_string();
            let req = format!(
                "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if let Some(s) = stall(addr, req.as_bytes()).await {
                conns.push(s);
            }
        }
        Stalled { conns, started: n }
    }

    /// How many were asked for, and how many connected and sent their request.
    pub fn counts(&self) -> (usize, usize) {
        (self.started, self.conns.len())
    }

    /// Closes them.
    pub fn close(self) {
        drop(self.conns);
    }
}

async fn stall(addr: SocketAddr, req: &[u8]) -> Option<tokio::net::TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .ok()?;
    // Before connecting, so the window it advertises is small from the start.
    let _ = socket.set_recv_buffer_size(4096);
    let mut s = socket.connect(addr).await.ok()?;
    s.write_all(req).await.ok()?;
    Some(s)
}
