//! Misbehaving clients: slowloris connections that send a request's headers
//! a byte at a time and never finish them, holding a connection (and, on a
//! server without a header timeout, its slot) for as long as they like.
//! Each records when the gateway cut it, from its first byte.

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
