//! The metrics of global admission and the memory budget
//! ([`crate::admission`]): queue depth, admitted and shed requests per
//! priority, queue wait, and bytes reserved against the budget.
//!
//! The series per priority are resolved once, at start: the admission path
//! bumps a counter without a label lookup.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The `priority` label, by priority index (critical, standard, batch:
/// `config::Priority::index`).
pub const PRIORITIES: [&str; 3] = ["critical", "standard", "batch"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Prio {
    priority: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShedLabels {
    priority: &'static str,
    reason: &'static str,
}

/// Why a request was refused by admission (the `reason` label).
pub const SHED_REASONS: [&str; 5] = [
    "overload",
    "queue_full",
    "queue_timeout",
    "memory",
    "key_share",
];

/// Admission's metrics; one per [`super::Metrics`].
pub struct AdmissionMetrics {
    queued: [Gauge; 3],
    admitted: [Counter; 3],
    shed: [[Counter; 5]; 3],
    wait: [Histogram; 3],
    /// The in-flight limit in force.
    pub limit: Gauge,
    /// Bytes reserved against the memory budget.
    pub memory_reserved: Gauge,
    /// The memory budget.
    pub memory_budget: Gauge,
    /// The lowest priority being shed (0 none, 1 batch, 2 standard and batch).
    pub shedding: Gauge,
}

impl AdmissionMetrics {
    /// Creates the series and registers them in `registry`.
    pub(super) fn new(registry: &mut Registry) -> Self {
        let queued = Family::<Prio, Gauge>::default();
        let admitted = Family::<Prio, Counter>::default();
        let shed = Family::<ShedLabels, Counter>::default();
        let wait = Family::<Prio, Histogram, fn() -> Histogram>::new_with_constructor(|| {
            // 1 ms to ~33 s.
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        let p = |i: usize| PRIORITIES[i];
        let m = Self {
            queued: std::array::from_fn(|i| queued.get_or_create_owned(&Prio { priority: p(i) })),
            admitted: std::array::from_fn(|i| {
                admitted.get_or_create_owned(&Prio { priority: p(i) })
            }),
            shed: std::array::from_fn(|i| {
                std::array::from_fn(|r| {
                    shed.get_or_create_owned(&ShedLabels {
                        priority: p(i),
                        reason: SHED_REASONS[r],
                    })
                })
            }),
            wait: std::array::from_fn(|i| wait.get_or_create_owned(&Prio { priority: p(i) })),
            limit: Gauge::default(),
            memory_reserved: Gauge::default(),
            memory_budget: Gauge::default(),
            shedding: Gauge::default(),
        };
        registry.register(
            "admission_queue_depth",
            "Requests waiting for an admission slot, by priority",
            queued,
        );
        registry.register(
            "admission_admitted",
            "Requests admitted by global admission, by priority",
            admitted,
        );
        registry.register(
            "admission_shed",
            "Requests refused by global admission (503), by priority and reason: overload (priority shedding), queue_full, queue_timeout, memory (budget)",
            shed,
        );
        registry.register(
            "admission_queue_wait_seconds",
            "Time queued requests waited for an admission slot, by priority",
            wait,
        );
        registry.register(
            "admission_limit",
            "The global in-flight limit (admission.max_in_flight)",
            m.limit.clone(),
        );
        registry.register(
            "admission_shedding",
            "Priority shedding in force: 0 none, 1 batch, 2 standard and batch",
            m.shedding.clone(),
        );
        registry.register(
            "memory_reserved_bytes",
            "Bytes of request and response bodies reserved against the memory budget",
            m.memory_reserved.clone(),
        );
        registry.register(
            "memory_budget_bytes",
            "The memory budget for buffered bodies (admission.memory_budget_bytes)",
            m.memory_budget.clone(),
        );
        m
    }

    /// The queue-depth gauge of priority `p` (an index into [`PRIORITIES`]).
    pub fn queued(&self, p: usize) -> &Gauge {
        &self.queued[p.min(2)]
    }

    /// A request of priority `p` was admitted.
    pub fn admitted(&self, p: usize) {
        self.admitted[p.min(2)].inc();
    }

    /// A request of priority `p` was refused for `reason` (an index into
    /// [`SHED_REASONS`]).
    pub fn shed(&self, p: usize, reason: usize) {
        self.shed[p.min(2)][reason.min(SHED_REASONS.len() - 1)].inc();
    }

    /// A queued request of priority `p` waited `seconds` for its slot.
    pub fn waited(&self, p: usize, seconds: f64) {
        self.wait[p.min(2)].observe(seconds);
    }
}
