//! The memory budget: a gateway-wide bound on buffered body bytes.
//!
//! A request body is buffered whole before it is inspected (up to
//! `max_body_bytes`), copied once more when the upstream model name is
//! spliced in, and a non-streaming answer is buffered whole to be checked
//! (up to 64 MiB); on HTTP/2, 256 streams per connection may do so at once.
//! Each request therefore holds a [`Reservation`] against
//! `memory_budget_bytes`: made before anything is buffered (the declared
//! `content-length` when there is one), grown before each buffer grows, and
//! released when the response body ends or is dropped. A reservation the
//! budget cannot hold is a [`Shed`] with reason `memory`: a 503 for that
//! request, never an allocation the process cannot afford.

use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt;

use super::{Inner, Shed, ShedReason};
use crate::config::Priority;
use crate::telemetry::Metrics;

/// Bytes reserved, and the budget.
pub(super) struct Budget {
    used: AtomicU64,
    limit: AtomicU64,
}

impl Budget {
    pub(super) fn new(limit: u64) -> Self {
        Self {
            used: AtomicU64::new(0),
            limit: AtomicU64::new(limit),
        }
    }

    pub(super) fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::SeqCst);
    }

    /// Whether nothing more fits.
    pub(super) fn exhausted(&self) -> bool {
        self.used.load(Ordering::SeqCst) >= self.limit.load(Ordering::SeqCst)
    }

    /// Adds `n` bytes if they fit.
    pub(super) fn try_add(&self, n: u64, metrics: &Metrics) -> bool {
        if n == 0 {
            return true;
        }
        let limit = self.limit.load(Ordering::Relaxed);
        let ok = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |u| {
                u.checked_add(n).filter(|t| *t <= limit)
            })
            .is_ok();
        if ok {
            metrics
                .admission()
                .memory_reserved
                .inc_by(i64::try_from(n).unwrap_or(i64::MAX));
        }
        ok
    }

    pub(super) fn sub(&self, n: u64, metrics: &Metrics) {
        if n == 0 {
            return;
        }
        self.used.fetch_sub(n, Ordering::SeqCst);
        metrics
            .admission()
            .memory_reserved
            .dec_by(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Bytes reserved now.
    pub(super) fn used(&self) -> u64 {
        self.used.load(Ordering::SeqCst)
    }
}

/// Bytes of one request's bodies, reserved against the budget; released
/// when dropped. Used by one task at a time (the request's).
pub struct Reservation {
    inner: Arc<Inner>,
    priority: Priority,
    bytes: AtomicU64,
    /// Of `bytes`, those held for a transient copy (the request body as
    /// sent upstream) that the answer's buffer may take over.
    spare: AtomicU64,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reservation({} bytes)", self.bytes())
    }
}

impl Reservation {
    pub(super) fn new(inner: Arc<Inner>, priority: Priority, bytes: u64) -> Self {
        Self {
            inner,
            priority,
            bytes: AtomicU64::new(bytes),
            spare: AtomicU64::new(0),
        }
    }

    /// Marks `n` of the reserved bytes as held for a transient copy (the
    /// request body sent upstream, freed once it is sent): an upstream
    /// answer read later is reserved in their place ([`collect`]'s
    /// `prepaid`).
    pub fn set_spare(&self, n: u64) {
        self.spare.store(n.min(self.bytes()), Ordering::Relaxed);
    }

    /// Bytes held for a transient copy ([`Self::set_spare`]).
    pub fn spare(&self) -> u64 {
        self.spare.load(Ordering::Relaxed)
    }

    /// Bytes reserved.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Makes the reservation `total` bytes: a shrink always succeeds; a
    /// growth the budget cannot hold leaves it as it was and is refused.
    pub fn resize(&self, total: u64) -> Result<(), Shed> {
        let now = self.bytes();
        let inner = &self.inner;
        if total > now {
            if !inner.memory.try_add(total - now, &inner.metrics) {
                tracing::debug!(
                    message = "Memory budget cannot hold a body.",
                    reserved = now,
                    wanted = total,
                    used = inner.memory.used()
                );
                return Err(inner.refuse(self.priority, ShedReason::Memory));
            }
        } else {
            inner.memory.sub(now - total, &inner.metrics);
        }
        self.bytes.store(total, Ordering::Relaxed);
        Ok(())
    }

    /// Grows the reservation by `n` bytes.
    pub fn grow(&self, n: u64) -> Result<(), Shed> {
        self.resize(self.bytes().saturating_add(n))
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let n = self.bytes();
        self.inner.memory.sub(n, &self.inner.metrics);
    }
}

/// Why [`collect`] stopped.
#[derive(Debug)]
pub enum Collect<E> {
    /// More than the limit.
    TooLarge,
    /// The memory budget could not hold it.
    Memory(Shed),
    /// The body failed.
    Read(E),
}

/// Reads `body` whole, up to `limit` bytes, reserving in `res` every byte
/// it buffers before buffering it: the `expected` length (a declared
/// `content-length`, capped at `limit`) at once, then each growth. Of what
/// `res` holds on entry, `prepaid` bytes were reserved for this body
/// already (with [`super::Admission::reserve`], in the same step as the
/// rest of the request's bytes); the remainder stays reserved as it was. A
/// body that arrives in one frame is kept as it came (no copy). On success
/// the reservation holds the remainder plus the body's buffer.
pub async fn collect<B>(
    body: B,
    limit: usize,
    expected: Option<u64>,
    prepaid: u64,
    res: &Reservation,
) -> Result<Bytes, Collect<B::Error>>
where
    B: Body<Data = Bytes>,
{
    let base = res.bytes().saturating_sub(prepaid);
    let limit64 = limit as u64;
    let expected = expected.map(|e| e.min(limit64)).unwrap_or(0);
    res.resize(base + expected).map_err(Collect::Memory)?;
    let mut body = pin!(body);
    let mut first: Option<Bytes> = None;
    let mut buf: Option<BytesMut> = None;
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(Collect::Read)?.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        len += data.len();
        if len > limit {
            return Err(Collect::TooLarge);
        }
        match (&mut buf, first.take()) {
            (None, None) => {
                // Already held by `data`: account for it as it is.
                let held = (len as u64).max(expected);
                res.resize(base + held).map_err(Collect::Memory)?;
                first = Some(data);
            }
            (None, Some(f)) => {
                // The declared length, exactly; else room to grow.
                let room = if expected > 0 {
                    expected as usize
                } else {
                    2 * len
                };
                let cap = len.max(room).min(limit);
                // The frames being copied are the connection's read
                // buffers, freed as they are consumed: the buffer is what
                // this request holds.
                res.resize(base + cap as u64).map_err(Collect::Memory)?;
                let mut b = BytesMut::with_capacity(cap);
                b.extend_from_slice(&f);
                b.extend_from_slice(&data);
                drop(f);
                buf = Some(b);
            }
            (Some(b), _) => {
                if b.capacity() - b.len() < data.len() {
                    let want = (2 * b.capacity()).max(len).min(limit);
                    // Old and new allocation live during the move.
                    res.resize(base + (b.capacity() + want) as u64)
                        .map_err(Collect::Memory)?;
                    b.reserve(want - b.len());
                }
                b.extend_from_slice(&data);
            }
        }
        if let Some(b) = &buf {
            res.resize(base + b.capacity() as u64)
                .map_err(Collect::Memory)?;
        }
    }
    let out = match (buf, first) {
        (Some(b), _) => {
            let cap = b.capacity() as u64;
            res.resize(base + cap).map_err(Collect::Memory)?;
            b.freeze()
        }
        (None, Some(f)) => {
            res.resize(base + f.len() as u64).map_err(Collect::Memory)?;
            f
        }
        (None, None) => {
            res.resize(base).map_err(Collect::Memory)?;
            Bytes::new()
        }
    };
    Ok(out)
}
