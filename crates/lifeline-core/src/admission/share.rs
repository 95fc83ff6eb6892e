//! Per-key shares of the in-flight limit: what each key holds now (its
//! requests in flight and queued), by the key's id, so that one key cannot
//! fill every slot and the queue while another key of the same priority
//! waits.
//!
//! The share only applies when a request would have to queue and other
//! keys of its priority hold requests too (priority already orders the
//! classes: a critical key is never held back for a batch key's sake): while a slot is free and nobody waits, a key
//! may take any number of slots (the fast path counts it with one atomic
//! increment), and a key alone may queue as before. When another key
//! arrives within its share, the queued requests of keys over theirs (of
//! its priority or lower) give way ([`super::Inner::yield_over`]). Requests
//! without a key count as one key (`-`).
//!
//! The counts live here, apart from the key set the gateway swaps in
//! whenever the stored keys change, so a new set does not reset them. The
//! map is read lock-free (an `arc-swap` snapshot) and copied only when a
//! key is seen for the first time; such a copy, at most once a
//! [`SWEEP_EVERY`], also forgets the keys that hold nothing and that no
//! request refers to, so the map stays bounded by the keys in use.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::time::Instant;

/// How often a new key's insertion also forgets the idle ones.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// What one key holds: its requests in flight and queued.
#[derive(Default)]
pub(super) struct Load(AtomicUsize);

/// One request's place in its key's count and its priority's (in flight
/// or queued); dropped, it leaves both.
pub(super) struct KeyHold(Arc<Load>, Arc<Load>);

impl Load {
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl KeyHold {
    /// What its key holds now, this request included.
    pub(super) fn held(&self) -> usize {
        self.0.get()
    }

    /// Counts one more request of the key (and of its priority `class`),
    /// unconditionally.
    pub(super) fn enter(load: Arc<Load>, class: Arc<Load>) -> Self {
        load.0.fetch_add(1, Ordering::SeqCst);
        class.0.fetch_add(1, Ordering::SeqCst);
        Self(load, class)
    }
}

impl Drop for KeyHold {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::SeqCst);
        self.1 .0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The per-key counts of one gateway.
pub(super) struct Shares {
    /// `key_share_percent` (100: no share).
    percent: AtomicU8,
    /// Requests without a key.
    anonymous: Arc<Load>,
    /// What each priority class holds, all keys together.
    classes: [Arc<Load>; 3],
    loads: ArcSwap<HashMap<Arc<str>, Arc<Load>>>,
    write: Mutex<()>,
    epoch: Instant,
    /// Milliseconds since `epoch` when idle keys are forgotten next.
    next_sweep: AtomicU64,
}

impl Shares {
    pub(super) fn new(percent: u8) -> Self {
        Self {
            percent: AtomicU8::new(percent),
            anonymous: Arc::default(),
            classes: Default::default(),
            loads: ArcSwap::from_pointee(HashMap::new()),
            write: Mutex::new(()),
            epoch: Instant::now(),
            next_sweep: AtomicU64::new(SWEEP_EVERY.as_millis() as u64),
        }
    }

    pub(super) fn set_percent(&self, percent: u8) {
        self.percent.store(percent.clamp(1, 100), Ordering::Relaxed);
    }

    /// The count of the key with id `key` (none: requests without a key).
    pub(super) fn load(&self, key: Option<&Arc<str>>) -> Arc<Load> {
        let Some(key) = key else {
            return self.anonymous.clone();
        };
        if let Some(l) = self.loads.load().get(&**key) {
            return l.clone();
        }
        let _w = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let map = self.loads.load_full();
        if let Some(l) = map.get(&**key) {
            return l.clone();
        }
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let sweep = now >= self.next_sweep.load(Ordering::Relaxed);
        if sweep {
            self.next_sweep
                .store(now + SWEEP_EVERY.as_millis() as u64, Ordering::Relaxed);
        }
        // Kept: a key that holds requests, or that a request refers to (it
        // is about to count one). A request that read the old snapshot but
        // has not yet taken its reference may count on a forgotten entry:
        // that key's next request starts a new one, so for as long as that
        // request lasts the key may hold one slot beyond its share.
        let keep = |l: &Arc<Load>| !sweep || Arc::strong_count(l) > 1 || l.get() > 0;
        let mut next: HashMap<_, _> = map
            .iter()
            .filter(|(_, l)| keep(l))
            .map(|(k, l)| (k.clone(), l.clone()))
            .collect();
        let load = Arc::<Load>::default();
        next.insert(key.clone(), load.clone());
        self.loads.store(Arc::new(next));
        load
    }

    /// The count of priority class `index` (all keys).
    pub(super) fn class(&self, index: usize) -> Arc<Load> {
        self.classes[index.min(2)].clone()
    }

    /// A key's share of the in-flight limit `limit`: `key_share_percent`
    /// of it, at least one slot; `None` at 100 % (no share).
    pub(super) fn share(&self, limit: usize) -> Option<usize> {
        let percent = usize::from(self.percent.load(Ordering::Relaxed));
        (percent < 100).then(|| (limit.saturating_mul(percent) / 100).max(1))
    }

    /// Counts a request that has to queue, unless its key holds `share`
    /// already while other keys of its priority hold requests too (`class`:
    /// the requests in flight and queued of its priority, all keys': a key
    /// that holds all of them is alone in its class and may queue).
    /// `Some((hold, within))`, `within` when the key was below its share
    /// (or there is none).
    pub(super) fn try_enter(
        load: Arc<Load>,
        class: Arc<Load>,
        share: Option<usize>,
    ) -> Option<(KeyHold, bool)> {
        let Some(share) = share else {
            return Some((KeyHold::enter(load, class), true));
        };
        let total = class.get();
        let before = load
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < share || n >= total).then_some(n + 1)
            })
            .ok()?;
        class.0.fetch_add(1, Ordering::SeqCst);
        Some((KeyHold(load, class), before < share))
    }

    /// What the key holds now (tests).
    #[cfg(test)]
    pub(super) fn held(&self, key: Option<&Arc<str>>) -> usize {
        self.load(key).get()
    }

    /// Keys in the map now (tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.loads.load().len()
    }
}
