//! The memory budget: a gateway-wide bound on buffered body bytes.
//!
//! A request body is buffered whole before it is inspected (up to
//! `max_body_bytes`), copied once more when the upstream model name is
//! spliced in, and a non-streaming answer is buffered whole to be checked
//! (up to 64 MiB); on HTTP/2, 256 streams per connection may do so at once.
//! Each request therefore holds a [`Reservation`] against
//! `memory_budget_bytes`, grown before each buffer grows and released when
//! the response body ends or is dropped. Bytes are reserved as they
//! arrive, never on a client's word: a declared `content-length` only
//! bounds how far a buffer grows (doubling with the data received), so a
//! client that declares large bodies and sends nothing holds nothing. A
//! reservation the budget cannot hold is a [`Shed`] with reason `memory`:
//! a 503 for that request, never an allocation the process cannot afford.
//!
//! Priority headroom: a batch request's growth is refused once the budget
//! is [`SHARE_PERCENT`]`[batch]` (70 %) used, a standard request's at 90 %,
//! a critical request's only when the whole budget is spent; so a flood of
//! large bodies from lower priorities leaves critical requests room.

use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt;

use super::{Inner, Shed, ShedReason};
use crate::config::Priority;
use crate::telemetry::Metrics;

/// The share of the memory budget, in percent, that requests of each
/// priority (critical, standard, batch) may fill: a reservation may not
/// grow past it, counting every request's bytes.
pub const SHARE_PERCENT: [u64; 3] = [100, 90, 70];

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

    /// The bytes requests of priority `p` may fill ([`SHARE_PERCENT`]).
    pub(super) fn limit_for(&self, p: Priority) -> u64 {
        let limit = u128::from(self.limit.load(Ordering::Relaxed));
        let share = u128::from(SHARE_PERCENT[p.index()]);
        u64::try_from(limit * share / 100).unwrap_or(u64::MAX)
    }

    /// Whether nothing more fits for priority `p`.
    pub(super) fn exhausted(&self, p: Priority) -> bool {
        self.used.load(Ordering::SeqCst) >= self.limit_for(p)
    }

    /// Adds `n` bytes for priority `p` if they fit in its share.
    pub(super) fn try_add(&self, n: u64, p: Priority, metrics: &Metrics) -> bool {
        if n == 0 {
            return true;
        }
        let limit = self.limit_for(p);
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
/// when dropped. Used by the request's task; two reads may fill it at once
/// (a hedged attempt and its hedge: [`collect`]), each growing and
/// shrinking it by its own bytes only.
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

    /// Takes the bytes held for a transient copy ([`Self::set_spare`]),
    /// leaving none: of two reads into one reservation at once (a hedged
    /// attempt and its hedge), only the first to ask may use them. A read
    /// that fails gives them back with [`Self::set_spare`].
    pub fn take_spare(&self) -> u64 {
        self.spare.swap(0, Ordering::Relaxed)
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
            if !inner
                .memory
                .try_add(total - now, self.priority, &inner.metrics)
            {
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

    /// Grows the reservation by `n` bytes; a growth the budget cannot hold
    /// leaves it as it was and is refused. Relative: bytes another read
    /// into the same reservation holds stay as they are.
    pub fn grow(&self, n: u64) -> Result<(), Shed> {
        let inner = &self.inner;
        if !inner.memory.try_add(n, self.priority, &inner.metrics) {
            tracing::debug!(
                message = "Memory budget cannot hold a body.",
                reserved = self.bytes(),
                wanted = n,
                used = inner.memory.used()
            );
            return Err(inner.refuse(self.priority, ShedReason::Memory));
        }
        self.bytes.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    /// Releases `n` of the reserved bytes (at most all of them). Relative,
    /// like [`Self::grow`].
    pub fn shrink(&self, n: u64) {
        let mut freed = 0;
        let _ = self
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                freed = n.min(b);
                Some(b - freed)
            });
        self.inner.memory.sub(freed, &self.inner.metrics);
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
/// it buffers before buffering it, as the bytes arrive: nothing before the
/// first frame, then each growth. The `expected` length (a declared
/// `content-length`) only bounds how far the buffer grows at once: it
/// doubles with the data received, up to `expected`, so a body that never
/// comes holds nothing. Of what `res` holds on entry, `prepaid` bytes were
/// reserved for this body already (the request's upstream copy, freed
/// once sent, for its answer): the read uses them before it reserves more;
/// the remainder stays reserved as it was. A body that arrives in one
/// frame is kept as it came (no copy). On success the reservation holds
/// the remainder plus the body's buffer. The read accounts only for what
/// it adds (relative growth): another read into the same reservation at
/// the same time keeps its own bytes, and a read that fails, or is dropped
/// unfinished (a hedge race's loser), releases what it added, leaving the
/// prepaid bytes reserved as they were.
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
    // During the read the prepaid bytes stay held: the body may use them.
    let mut grown = Grown {
        res,
        prepaid,
        added: 0,
    };
    // How far the buffer may grow at once: the declared length, else the
    // limit.
    let bound = expected
        .and_then(|e| usize::try_from(e).ok())
        .map_or(limit, |e| e.min(limit));
    // Room for `need` bytes: twice the data so far, up to the bound, never
    // less than `need`.
    let room = |need: usize| need.max(need.saturating_mul(2).min(bound));
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
                grown.hold(len).map_err(Collect::Memory)?;
                first = Some(data);
            }
            (None, Some(f)) => {
                let cap = room(len);
                // The frames being copied are the connection's read
                // buffers, freed as they are consumed: the buffer is what
                // this request holds.
                grown.hold(cap).map_err(Collect::Memory)?;
                let mut b = BytesMut::with_capacity(cap);
                b.extend_from_slice(&f);
                b.extend_from_slice(&data);
                drop(f);
                buf = Some(b);
            }
            (Some(b), _) => {
                if b.capacity() - b.len() < data.len() {
                    let want = room(len);
                    // Old and new allocation live during the move; a new
                    // buffer of exactly `want` (a `reserve` may take more).
                    grown.hold(b.capacity() + want).map_err(Collect::Memory)?;
                    let mut nb = BytesMut::with_capacity(want);
                    nb.extend_from_slice(&b[..]);
                    *b = nb;
                }
                b.extend_from_slice(&data);
            }
        }
        if let Some(b) = &buf {
            grown.hold(b.capacity()).map_err(Collect::Memory)?;
        }
    }
    let (out, held) = match (buf, first) {
        (Some(b), _) => {
            let cap = b.capacity();
            (b.freeze(), cap)
        }
        (None, Some(f)) => {
            let n = f.len();
            (f, n)
        }
        (None, None) => (Bytes::new(), 0),
    };
    grown.finish(held).map_err(Collect::Memory)?;
    Ok(out)
}

/// What one [`collect`] added to its reservation beyond its prepaid bytes:
/// released when the read ends without a body (dropped unfinished).
struct Grown<'a> {
    res: &'a Reservation,
    prepaid: u64,
    added: u64,
}

impl Grown<'_> {
    /// Holds `held` bytes for the body: its prepaid bytes first, then
    /// growth (or less growth: a buffer replaced by a smaller one).
    fn hold(&mut self, held: usize) -> Result<(), Shed> {
        let want = (held as u64).saturating_sub(self.prepaid);
        if want > self.added {
            self.res.grow(want - self.added)?;
        } else {
            self.res.shrink(self.added - want);
        }
        self.added = want;
        Ok(())
    }

    /// The body is read and holds `held` bytes: the reservation keeps
    /// them, and of the prepaid bytes only those the body took over.
    fn finish(mut self, held: usize) -> Result<(), Shed> {
        self.hold(held)?;
        self.res.shrink(self.prepaid.saturating_sub(held as u64));
        // Kept: the body holds them now.
        self.added = 0;
        Ok(())
    }
}

impl Drop for Grown<'_> {
    fn drop(&mut self) {
        self.res.shrink(self.added);
    }
}
