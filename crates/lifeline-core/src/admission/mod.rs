//! Global admission: the gateway's own capacity, a bounded priority queue in
//! front of it, priority shedding, and the memory budget for buffered bytes.
//!
//! - **Capacity**: at most `max_in_flight` client requests hold a
//!   [`Permit`] at once, from admission until their response body ends or
//!   is dropped (streams included: the permit rides in the body, see
//!   [`Hold`]). With a slot free and nobody queued, admission is one
//!   compare-and-swap on a counter: no lock, no allocation.
//! - **Queue**: beyond capacity a request waits, up to `max_queue` of them,
//!   ordered by priority (critical, standard, batch) and first come, first
//!   served within a class, each until its queue deadline
//!   (`queue_timeout`, never beyond the request's own deadline). A full
//!   queue refuses the lowest class first: an arrival displaces the newest
//!   queued request of a lower class, or is refused itself.
//! - **Per-key share** ([`share`]): a request that would have to queue is
//!   refused at once when its key already holds (in flight and queued)
//!   `key_share_percent` of the in-flight limit while other keys hold
//!   requests too, so one key cannot take every slot and the queue from
//!   another key of its priority; a request of a key within its share
//!   makes the queued requests of keys over theirs (its priority or lower,
//!   newest first) give way. While a slot is free and nobody waits, a key
//!   may use any number of slots, and a key alone may queue.
//! - **Shedding** (CoDel, Nichols & Jacobson): the queueing delay is the
//!   age of the oldest queued request, sampled at every arrival and every
//!   grant. When it has stayed above `target_delay` for a whole `interval`
//!   (no sample below target in it: a standing queue, not a burst), the
//!   lowest priority still admitted is shed: its queued requests are
//!   refused, and its new arrivals are refused at once while they would
//!   have to queue. Another interval above target sheds standard as well;
//!   critical is never shed for delay. Each interval with a sample below
//!   target restores one class; while shedding, an empty queue is such a
//!   sample (taken at arrivals and at permits' release), so shedding ends
//!   when the surge does, not only when a queue drains.
//! - **Memory** ([`memory`]): request and response bodies are reserved
//!   against `memory_budget_bytes` as they arrive, before they are
//!   buffered; batch may fill 70 % of it, standard 90 %, critical all.
//!
//! Every refusal is a [`Shed`]: a 503 in OpenAI's shape with `Retry-After`,
//! answered at once. The queue's lock is a plain mutex held for a few
//! pointer moves, never across an await.

pub mod memory;
mod share;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::{timeout_at, Instant};

use crate::config::{AdmissionConfig, Priority};
use crate::telemetry::Metrics;
pub use memory::Reservation;

/// No class is shed (the value of `shed_from`).
const NONE_SHED: u8 = 3;

/// Why admission refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShedReason {
    /// Its priority is being shed: the queueing delay stayed above target.
    Overload,
    /// The queue was full of requests of its priority or higher.
    QueueFull,
    /// It waited in the queue until its queue deadline.
    QueueTimeout,
    /// The memory budget could not hold its body (or its answer).
    Memory,
    /// It would have to queue, and its key holds its share of the
    /// in-flight limit already (`key_share_percent`) while other keys hold
    /// requests too; or it was queued so, and gave way to a key within
    /// its share.
    KeyShare,
}

impl ShedReason {
    /// The `reason` label of `lifeline_admission_shed_total`.
    pub fn label(self) -> &'static str {
        crate::telemetry::admission::SHED_REASONS[self.index()]
    }

    fn index(self) -> usize {
        match self {
            Self::Overload => 0,
            Self::QueueFull => 1,
            Self::QueueTimeout => 2,
            Self::Memory => 3,
            Self::KeyShare => 4,
        }
    }
}

/// A refusal by admission: answered 503 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shed {
    /// Why.
    pub reason: ShedReason,
    /// The refused request's priority.
    pub priority: Priority,
    /// When to come back.
    pub retry_after: Duration,
}

/// Gateway-wide admission: one per gateway, kept across reloads.
#[derive(Clone)]
pub struct Admission {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("in_flight", &self.in_flight())
            .field("queued", &self.queued())
            .finish()
    }
}

struct Inner {
    /// Permits held.
    in_flight: AtomicUsize,
    /// `max_in_flight`.
    limit: AtomicUsize,
    /// Requests in the queue (read without the lock).
    waiting: AtomicUsize,
    /// Classes whose index is at least this are shed ([`NONE_SHED`]: none).
    shed_from: AtomicU8,
    /// `interval` in milliseconds: the `Retry-After` of a shed request.
    interval_ms: AtomicU64,
    state: Mutex<State>,
    memory: memory::Budget,
    /// What each key holds.
    shares: share::Shares,
    metrics: Arc<Metrics>,
}

struct Waiter {
    id: u64,
    since: Instant,
    /// Its place in its key's count, handed to its permit when granted.
    key: share::KeyHold,
    tx: oneshot::Sender<Result<Permit, Shed>>,
}

struct State {
    queues: [VecDeque<Waiter>; 3],
    len: usize,
    next_id: u64,
    max_queue: usize,
    queue_timeout: Duration,
    target: Duration,
    interval: Duration,
    /// When the delay, above target since, will have been so for an interval.
    above_until: Option<Instant>,
    /// Since when the delay has been below target, while shedding.
    below_since: Option<Instant>,
    /// When the shed level last changed.
    changed: Instant,
    /// Whether requests of a key over its share may be queued (a key alone
    /// queued beyond it).
    over_share: bool,
}

impl Admission {
    /// Admission as `cfg` says, reporting to `metrics`.
    pub fn new(cfg: &AdmissionConfig, metrics: Arc<Metrics>) -> Self {
        let now = Instant::now();
        let inner = Inner {
            in_flight: AtomicUsize::new(0),
            limit: AtomicUsize::new(cfg.max_in_flight),
            waiting: AtomicUsize::new(0),
            shed_from: AtomicU8::new(NONE_SHED),
            interval_ms: AtomicU64::new(0),
            state: Mutex::new(State {
                queues: Default::default(),
                len: 0,
                next_id: 0,
                max_queue: cfg.max_queue,
                queue_timeout: cfg.queue_timeout,
                target: cfg.target_delay,
                interval: cfg.interval,
                above_until: None,
                below_since: None,
                changed: now,
                over_share: false,
            }),
            memory: memory::Budget::new(cfg.memory_budget_bytes),
            shares: share::Shares::new(cfg.key_share_percent),
            metrics,
        };
        let a = Self {
            inner: Arc::new(inner),
        };
        a.configure(cfg);
        a
    }

    /// Applies a reloaded `[admission]`. Requests in flight keep their
    /// permits and reservations; a lower limit takes effect as they end.
    /// With `follow_deployments`, the in-flight limit is left to
    /// [`Admission::set_limit`] (the gateway sets it from the deployments
    /// right after): setting `max_in_flight` here first would let queued
    /// requests through beyond what the deployments take.
    pub fn configure(&self, cfg: &AdmissionConfig) {
        let inner = &self.inner;
        if !cfg.follow_deployments {
            inner.limit.store(cfg.max_in_flight, Ordering::SeqCst);
            inner
                .metrics
                .admission()
                .limit
                .set(i64::try_from(cfg.max_in_flight).unwrap_or(i64::MAX));
        }
        inner.memory.set_limit(cfg.memory_budget_bytes);
        inner.shares.set_percent(cfg.key_share_percent);
        let interval_ms = u64::try_from(cfg.interval.as_millis()).unwrap_or(u64::MAX);
        inner.interval_ms.store(interval_ms, Ordering::Relaxed);
        let m = inner.metrics.admission();
        m.memory_budget
            .set(i64::try_from(cfg.memory_budget_bytes).unwrap_or(i64::MAX));
        let mut st = inner.lock();
        st.max_queue = cfg.max_queue;
        st.queue_timeout = cfg.queue_timeout;
        st.target = cfg.target_delay;
        st.interval = cfg.interval;
        // A higher limit may admit queued requests at once.
        inner.drain(&mut st, Instant::now());
    }

    /// Sets the in-flight limit in force, below the configured
    /// `max_in_flight` (the gateway follows its deployments' limits with
    /// it); a higher one admits queued requests at once.
    pub fn set_limit(&self, limit: usize) {
        let inner = &self.inner;
        let limit = limit.max(1);
        inner
            .metrics
            .admission()
            .limit
            .set(i64::try_from(limit).unwrap_or(i64::MAX));
        if inner.limit.swap(limit, Ordering::SeqCst) == limit {
            return;
        }
        let mut st = inner.lock();
        inner.drain(&mut st, Instant::now());
    }

    /// The in-flight limit in force.
    pub fn limit(&self) -> usize {
        self.inner.limit.load(Ordering::SeqCst)
    }

    /// Permits held now.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::SeqCst)
    }

    /// Requests queued now.
    pub fn queued(&self) -> usize {
        self.inner.waiting.load(Ordering::SeqCst)
    }

    /// The lowest class being shed, if any.
    pub fn shedding(&self) -> Option<Priority> {
        let from = self.inner.shed_from.load(Ordering::SeqCst);
        Priority::ALL.get(usize::from(from)).copied()
    }

    /// A quick refusal, before anything is read or buffered: a request of
    /// priority `p` whose class is being shed and that would have to queue.
    pub fn check(&self, p: Priority) -> Result<(), Shed> {
        let inner = &self.inner;
        // While shedding, an empty queue is a sample below target.
        inner.ease();
        if inner.is_shed(p) && (inner.waiting.load(Ordering::SeqCst) > 0 || inner.full()) {
            return Err(inner.refuse(p, ShedReason::Overload));
        }
        Ok(())
    }

    /// A memory reservation of `bytes` for a request of priority `p`, or a
    /// refusal when the budget cannot hold them (or the share of it that
    /// `p` may fill, [`memory::SHARE_PERCENT`], is spent already). It grows
    /// as bodies are buffered ([`memory::collect`]) and is released when
    /// dropped.
    pub fn reserve(&self, p: Priority, bytes: u64) -> Result<Reservation, Shed> {
        let inner = &self.inner;
        if inner.memory.exhausted(p) || !inner.memory.try_add(bytes, p, &inner.metrics) {
            tracing::debug!(
                message = "Memory budget cannot hold a request.",
                wanted = bytes,
                used = inner.memory.used()
            );
            return Err(inner.refuse(p, ShedReason::Memory));
        }
        Ok(Reservation::new(self.inner.clone(), p, bytes))
    }

    /// Bytes reserved against the memory budget now.
    pub fn memory_used(&self) -> u64 {
        self.inner.memory.used()
    }

    /// Admits a request of priority `p` from the key with id `key` (none:
    /// a request without a key): at once when a slot is free and nobody
    /// waits, else after queueing until `deadline` at the latest (and
    /// `queue_timeout` from now), unless its key holds its share already.
    pub async fn admit(
        &self,
        p: Priority,
        key: Option<&Arc<str>>,
        deadline: Instant,
    ) -> Result<Permit, Shed> {
        let inner = &self.inner;
        let load = inner.shares.load(key);
        if inner.waiting.load(Ordering::SeqCst) == 0 && inner.try_acquire() {
            inner.metrics.admission().admitted(p.index());
            let class = inner.shares.class(p.index());
            return Ok(Permit::new(
                self.inner.clone(),
                share::KeyHold::enter(load, class),
            ));
        }
        // It would have to queue: only within its key's share, unless
        // the key is alone.
        let share = inner.shares.share(inner.limit.load(Ordering::SeqCst));
        let class = inner.shares.class(p.index());
        let Some((hold, within)) = share::Shares::try_enter(load, class, share) else {
            return Err(inner.refuse(p, ShedReason::KeyShare));
        };
        let now = Instant::now();
        let (rx, id, deadline) = {
            let mut st = inner.lock();
            let deadline = deadline.min(now + st.queue_timeout);
            if inner.is_shed(p) && st.len == 0 {
                // Nobody waits: a sample below target, which may end the
                // shedding (no queue is left to drain and sample it).
                inner.observe(&mut st, now);
            }
            if inner.is_shed(p) {
                drop(st);
                return Err(inner.refuse(p, ShedReason::Overload));
            }
            match share {
                Some(share) if within && st.over_share => inner.yield_over(&mut st, p, share),
                Some(_) if !within => st.over_share = true,
                _ => {}
            }
            if st.len >= st.max_queue {
                match st.newest_below(p) {
                    Some((class, w)) => {
                        inner.dequeued(&mut st, class);
                        let shed = inner.refuse(class, ShedReason::QueueFull);
                        // The receiver may be gone already: then nobody waits.
                        let _ = w.tx.send(Err(shed));
                    }
                    None => {
                        // Room may have freed since the look without the lock.
                        if st.len == 0 && inner.try_acquire() {
                            inner.metrics.admission().admitted(p.index());
                            return Ok(Permit::new(self.inner.clone(), hold));
                        }
                        drop(st);
                        return Err(inner.refuse(p, ShedReason::QueueFull));
                    }
                }
            }
            let (tx, rx) = oneshot::channel();
            let id = st.next_id;
            st.next_id += 1;
            st.queues[p.index()].push_back(Waiter {
                id,
                since: now,
                key: hold,
                tx,
            });
            st.len += 1;
            inner.waiting.fetch_add(1, Ordering::SeqCst);
            inner.metrics.admission().queued(p.index()).inc();
            // A slot may have freed between the fast path and the lock.
            inner.drain(&mut st, now);
            (rx, id, deadline)
        };
        let mut wait = Wait {
            inner: self.inner.clone(),
            p,
            id,
            rx,
        };
        let answer = match timeout_at(deadline, &mut wait.rx).await {
            Ok(Ok(answer)) => answer,
            // The sender is dropped unsent only when the queue entry is
            // removed without an answer, which only `Wait` itself does.
            Ok(Err(_)) => Err(inner.refuse(p, ShedReason::QueueTimeout)),
            Err(_) => match wait.cancel() {
                Some(answer) => answer,
                None => Err(inner.refuse(p, ShedReason::QueueTimeout)),
            },
        };
        if answer.is_ok() {
            let m = inner.metrics.admission();
            m.admitted(p.index());
            m.waited(p.index(), now.elapsed().as_secs_f64());
        }
        answer
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_shed(&self, p: Priority) -> bool {
        p.index() >= usize::from(self.shed_from.load(Ordering::SeqCst))
    }

    fn full(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) >= self.limit.load(Ordering::SeqCst)
    }

    /// Takes a slot if one is free: one compare-and-swap when uncontended.
    fn try_acquire(&self) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        self.in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    /// While a class is shed and nobody waits, samples the (empty) queue:
    /// the queueing delay is zero, below target, and each calm interval
    /// restores a class even when no queue is left to drain. Two atomic
    /// loads when not shedding.
    fn ease(&self) {
        if self.shed_from.load(Ordering::SeqCst) < NONE_SHED
            && self.waiting.load(Ordering::SeqCst) == 0
        {
            let mut st = self.lock();
            if st.len == 0 {
                self.observe(&mut st, Instant::now());
            }
        }
    }

    /// Counts and builds a refusal.
    fn refuse(&self, p: Priority, reason: ShedReason) -> Shed {
        self.metrics.admission().shed(p.index(), reason.index());
        let retry_after = match reason {
            // Shedding lasts at least an interval.
            ShedReason::Overload => Duration::from_millis(self.interval_ms.load(Ordering::Relaxed))
                .max(Duration::from_secs(1)),
            _ => Duration::from_secs(1),
        };
        Shed {
            reason,
            priority: p,
            retry_after,
        }
    }

    /// Bookkeeping for a waiter of class `p` taken out of the queue.
    fn dequeued(&self, st: &mut State, p: Priority) {
        st.len -= 1;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        self.metrics.admission().queued(p.index()).dec();
    }

    /// Refuses the queued requests of keys over their `share`, of class
    /// `p`, newest first, until their keys are back at their share: a
    /// request of a key of that class within its share arrived, so the key
    /// that was alone in the class is not any more. (Other classes' keys
    /// are left alone: priority orders the classes already.)
    fn yield_over(&self, st: &mut State, p: Priority, share: usize) {
        let mut left = false;
        for class in 0..3 {
            let mut i = st.queues[class].len();
            while i > 0 {
                i -= 1;
                if st.queues[class][i].key.held() <= share {
                    continue;
                }
                if class != p.index() {
                    left = true;
                    continue;
                }
                let Some(w) = st.queues[class].remove(i) else {
                    continue;
                };
                let c = Priority::ALL[class];
                self.dequeued(st, c);
                let _ = w.tx.send(Err(self.refuse(c, ShedReason::KeyShare)));
            }
        }
        st.over_share = left;
    }

    /// Grants free slots to queued requests, best class first.
    fn drain(self: &Arc<Self>, st: &mut State, now: Instant) {
        while st.len > 0 && self.try_acquire() {
            let Some((p, w)) = st.pop_best() else {
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                break;
            };
            self.dequeued(st, p);
            // The slot was taken above: this permit owns it.
            let permit = Permit::new(self.clone(), w.key);
            if let Err(Ok(permit)) = w.tx.send(Ok(permit)) {
                // Its request went away: the slot goes to the next one
                // (the permit must not be dropped under the lock).
                permit.disarm();
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.observe(st, now);
    }

    /// CoDel: samples the queueing delay (the oldest queued request's age)
    /// and moves the shed level.
    fn observe(&self, st: &mut State, now: Instant) {
        let delay = st
            .queues
            .iter()
            .filter_map(|q| q.front())
            .map(|w| now.saturating_duration_since(w.since))
            .max()
            .unwrap_or(Duration::ZERO);
        let from = self.shed_from.load(Ordering::SeqCst);
        if delay < st.target {
            st.above_until = None;
            if from < NONE_SHED {
                let since = *st.below_since.get_or_insert(now);
                let calm = now.saturating_duration_since(since.max(st.changed));
                let steps = calm.as_nanos() / st.interval.as_nanos().max(1);
                if steps > 0 {
                    let to = (u128::from(from) + steps).min(u128::from(NONE_SHED)) as u8;
                    self.set_shed(st, to, now);
                }
            }
            return;
        }
        st.below_since = None;
        match st.above_until {
            None => st.above_until = Some(now + st.interval),
            Some(t) if now >= t => {
                st.above_until = Some(now + st.interval);
                // Never critical (index 0).
                if from > 1 {
                    self.set_shed(st, from - 1, now);
                }
            }
            Some(_) => {}
        }
    }

    /// Sets the shed level and refuses the queued requests it now sheds.
    fn set_shed(&self, st: &mut State, from: u8, now: Instant) {
        let before = self.shed_from.swap(from, Ordering::SeqCst);
        st.changed = now;
        self.metrics
            .admission()
            .shedding
            .set(i64::from(NONE_SHED - from));
        if from < before {
            tracing::warn!(
                message = "Overload: shedding the lowest priorities.",
                from = Priority::ALL[usize::from(from)].as_str()
            );
        } else {
            tracing::info!(
                message = "Overload easing: fewer priorities shed.",
                shed = NONE_SHED - from
            );
        }
        for class in usize::from(from)..3 {
            let p = Priority::ALL[class];
            while let Some(w) = st.queues[class].pop_front() {
                self.dequeued(st, p);
                let _ = w.tx.send(Err(self.refuse(p, ShedReason::Overload)));
            }
        }
    }
}

impl State {
    /// The first waiter of the best non-empty class.
    fn pop_best(&mut self) -> Option<(Priority, Waiter)> {
        for (i, q) in self.queues.iter_mut().enumerate() {
            if let Some(w) = q.pop_front() {
                return Some((Priority::ALL[i], w));
            }
        }
        None
    }

    /// The newest waiter of the worst class below `p` (to make room for `p`).
    fn newest_below(&mut self, p: Priority) -> Option<(Priority, Waiter)> {
        for i in (p.index() + 1..3).rev() {
            if let Some(w) = self.queues[i].pop_back() {
                return Some((Priority::ALL[i], w));
            }
        }
        None
    }
}

/// A request waiting in the queue; dropped (its request answered or gone),
/// it leaves the queue.
struct Wait {
    inner: Arc<Inner>,
    p: Priority,
    id: u64,
    rx: oneshot::Receiver<Result<Permit, Shed>>,
}

impl Wait {
    /// Leaves the queue; an answer sent meanwhile is returned.
    fn cancel(&mut self) -> Option<Result<Permit, Shed>> {
        self.leave();
        self.rx.try_recv().ok()
    }

    fn leave(&mut self) {
        let mut st = self.inner.lock();
        let q = &mut st.queues[self.p.index()];
        if let Some(i) = q.iter().position(|w| w.id == self.id) {
            q.remove(i);
            self.inner.dequeued(&mut st, self.p);
        }
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        self.leave();
        // `rx` is dropped after this, outside the lock: a permit granted in
        // the meantime is released by its own drop.
    }
}

/// One admission slot, held from admission until the response ends.
pub struct Permit {
    inner: Option<Arc<Inner>>,
    /// Its place in its key's count.
    key: Option<share::KeyHold>,
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Permit")
    }
}

impl Permit {
    fn new(inner: Arc<Inner>, key: share::KeyHold) -> Self {
        Self {
            inner: Some(inner),
            key: Some(key),
        }
    }

    /// Forgets the slot without releasing it (its owner accounts for it).
    fn disarm(mut self) {
        self.inner = None;
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        // The key's count first: the slot is free for its next request.
        drop(self.key.take());
        let Some(inner) = self.inner.take() else {
            return;
        };
        inner.in_flight.fetch_sub(1, Ordering::SeqCst);
        // SeqCst on both sides: a request that queued after its own look at
        // the counter either sees this slot free when it drains under the
        // lock, or is seen here.
        if inner.waiting.load(Ordering::SeqCst) > 0 {
            let mut st = inner.lock();
            inner.drain(&mut st, Instant::now());
        } else {
            inner.ease();
        }
    }
}

/// What a response holds until its body ends or is dropped: its admission
/// slot and its memory reservation. Carried by
/// [`crate::body::ProxyBody`] and [`crate::relay::RelayBody`].
#[derive(Debug, Default)]
pub struct Hold {
    /// The admission slot, if the request took one.
    pub permit: Option<Permit>,
    /// The bytes reserved for its bodies.
    pub memory: Option<Reservation>,
}

#[cfg(test)]
mod tests;
