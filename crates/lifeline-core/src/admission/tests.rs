#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};

use super::memory::{collect, Collect};
use super::*;

fn cfg(max_in_flight: usize, max_queue: usize) -> AdmissionConfig {
    AdmissionConfig {
        max_in_flight,
        follow_deployments: false,
        max_queue,
        queue_timeout: Duration::from_secs(5),
        target_delay: Duration::from_millis(100),
        interval: Duration::from_secs(1),
        memory_budget_bytes: 1000,
        // One group of requests without a key: no share (see the
        // `key_share` tests).
        key_share_percent: 100,
    }
}

fn admission(c: &AdmissionConfig) -> (Admission, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    (Admission::new(c, metrics.clone()), metrics)
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

/// Queues a request of priority `p` in a task; its answer comes back on the
/// returned handle (the permit is held until the task's result is dropped).
fn queue(a: &Admission, p: Priority) -> tokio::task::JoinHandle<Result<Permit, Shed>> {
    let a = a.clone();
    tokio::spawn(async move { a.admit(p, None, far()).await })
}

/// Lets spawned tasks run up to their next wait.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn free_slots_admit_at_once_and_are_released_on_drop() {
    let (a, _) = admission(&cfg(2, 10));
    let p1 = a.admit(Priority::Batch, None, far()).await.unwrap();
    let p2 = a.admit(Priority::Batch, None, far()).await.unwrap();
    assert_eq!(a.in_flight(), 2);
    drop(p1);
    assert_eq!(a.in_flight(), 1);
    drop(p2);
    assert_eq!((a.in_flight(), a.queued()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn the_queue_serves_by_priority_then_first_come() {
    let (a, _) = admission(&cfg(1, 10));
    let held = a.admit(Priority::Standard, None, far()).await.unwrap();
    let b1 = queue(&a, Priority::Batch);
    settle().await;
    let s1 = queue(&a, Priority::Standard);
    settle().await;
    let c1 = queue(&a, Priority::Critical);
    settle().await;
    let c2 = queue(&a, Priority::Critical);
    settle().await;
    assert_eq!(a.queued(), 4);
    drop(held);
    let order = [c1, c2, s1, b1];
    for (i, h) in order.into_iter().enumerate() {
        let permit = h.await.unwrap().unwrap_or_else(|e| panic!("#{i}: {e:?}"));
        assert_eq!(a.in_flight(), 1, "#{i}");
        assert_eq!(a.queued(), 3 - i);
        drop(permit);
    }
    assert_eq!((a.in_flight(), a.queued()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_the_lowest_class_first() {
    let (a, m) = admission(&cfg(1, 2));
    let _held = a.admit(Priority::Critical, None, far()).await.unwrap();
    let b = queue(&a, Priority::Batch);
    settle().await;
    let s = queue(&a, Priority::Standard);
    settle().await;
    // Full: a critical arrival displaces the batch request.
    let c = queue(&a, Priority::Critical);
    settle().await;
    let shed = b.await.unwrap().unwrap_err();
    assert_eq!(
        (shed.reason, shed.priority),
        (ShedReason::QueueFull, Priority::Batch)
    );
    assert!(shed.retry_after >= Duration::from_secs(1));
    // Full of standard and critical: a batch arrival is refused itself, at once.
    let shed = a.admit(Priority::Batch, None, far()).await.unwrap_err();
    assert_eq!(shed.reason, ShedReason::QueueFull);
    // A standard arrival cannot displace an equal class.
    let shed = a.admit(Priority::Standard, None, far()).await.unwrap_err();
    assert_eq!(shed.reason, ShedReason::QueueFull);
    assert_eq!(a.queued(), 2);
    assert!(!c.is_finished() && !s.is_finished());
    let text = m.encode();
    assert!(
        text.contains("lifeline_admission_shed_total{priority=\"batch\",reason=\"queue_full\"} 2"),
        "{text}"
    );
    assert!(text.contains("lifeline_admission_queue_depth{priority=\"critical\"} 1"));
}

#[tokio::test(start_paused = true)]
async fn a_queued_request_waits_until_its_queue_deadline_at_most() {
    let (a, _) = admission(&cfg(1, 10));
    let _held = a.admit(Priority::Critical, None, far()).await.unwrap();
    let start = Instant::now();
    // The request's own deadline (1 s) is before queue_timeout (5 s).
    let shed = a
        .admit(Priority::Critical, None, start + Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(shed.reason, ShedReason::QueueTimeout);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    // queue_timeout bounds a later deadline.
    let start = Instant::now();
    let shed = a.admit(Priority::Critical, None, far()).await.unwrap_err();
    assert_eq!(shed.reason, ShedReason::QueueTimeout);
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(a.queued(), 0, "a request that gave up leaves the queue");
}

#[tokio::test(start_paused = true)]
async fn a_request_that_goes_away_leaves_the_queue_and_its_slot_goes_on() {
    let (a, _) = admission(&cfg(1, 10));
    let held = a.admit(Priority::Critical, None, far()).await.unwrap();
    let gone = queue(&a, Priority::Critical);
    settle().await;
    let next = queue(&a, Priority::Batch);
    settle().await;
    gone.abort();
    settle().await;
    assert_eq!(a.queued(), 1);
    drop(held);
    let p = next.await.unwrap().unwrap();
    assert_eq!(a.in_flight(), 1);
    drop(p);
    assert_eq!(a.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_standing_queue_sheds_batch_first_then_standard_never_critical() {
    let (a, m) = admission(&cfg(1, 100));
    let held = a.admit(Priority::Critical, None, far()).await.unwrap();
    let batch = queue(&a, Priority::Batch);
    settle().await;
    let standard = queue(&a, Priority::Standard);
    settle().await;
    let critical = queue(&a, Priority::Critical);
    settle().await;
    assert_eq!(a.shedding(), None);
    // Above target (100 ms) for less than an interval: a burst, not shed.
    tokio::time::advance(Duration::from_millis(500)).await;
    let probe = queue(&a, Priority::Critical);
    settle().await;
    assert_eq!(a.shedding(), None);
    assert!(!batch.is_finished());
    // A whole interval above target: batch is shed, queued and new.
    tokio::time::advance(Duration::from_millis(1000)).await;
    let probe2 = queue(&a, Priority::Critical);
    settle().await;
    assert_eq!(a.shedding(), Some(Priority::Batch));
    let shed = batch.await.unwrap().unwrap_err();
    assert_eq!(
        (shed.reason, shed.priority),
        (ShedReason::Overload, Priority::Batch)
    );
    assert!(shed.retry_after >= Duration::from_secs(1));
    let shed = a.check(Priority::Batch).unwrap_err();
    assert_eq!(shed.reason, ShedReason::Overload);
    let shed = a.admit(Priority::Batch, None, far()).await.unwrap_err();
    assert_eq!(shed.reason, ShedReason::Overload);
    assert!(a.check(Priority::Standard).is_ok());
    assert!(!standard.is_finished());
    // Another interval above target: standard too; critical stays queued.
    tokio::time::advance(Duration::from_millis(1100)).await;
    let probe3 = queue(&a, Priority::Critical);
    settle().await;
    assert_eq!(a.shedding(), Some(Priority::Standard));
    assert_eq!(
        standard.await.unwrap().unwrap_err().reason,
        ShedReason::Overload
    );
    tokio::time::advance(Duration::from_millis(1100)).await;
    let probe4 = queue(&a, Priority::Critical);
    settle().await;
    assert_eq!(
        a.shedding(),
        Some(Priority::Standard),
        "critical is never shed"
    );
    assert_eq!(a.queued(), 5);
    let text = m.encode();
    assert!(text.contains("lifeline_admission_shedding 2"), "{text}");
    assert!(
        text.contains("lifeline_admission_shed_total{priority=\"batch\",reason=\"overload\"} 3")
    );
    // The queue drains: the delay falls below target, and each calm
    // interval restores one class.
    drop(held);
    for h in [critical, probe, probe2, probe3, probe4] {
        drop(h.await.unwrap().unwrap());
    }
    assert_eq!((a.in_flight(), a.queued()), (0, 0));
    // With capacity free, even a shed class is admitted (it need not queue).
    assert!(a.check(Priority::Batch).is_ok());
    let hold = a.admit(Priority::Critical, None, far()).await.unwrap();
    tokio::time::advance(Duration::from_millis(1100)).await;
    let calm = queue(&a, Priority::Critical);
    settle().await;
    assert_eq!(a.shedding(), Some(Priority::Batch));
    drop(hold);
    drop(calm.await.unwrap().unwrap());
    let hold = a.admit(Priority::Critical, None, far()).await.unwrap();
    tokio::time::advance(Duration::from_millis(1100)).await;
    let calm = queue(&a, Priority::Standard);
    settle().await;
    assert_eq!(a.shedding(), None);
    drop(hold);
    drop(calm.await.unwrap().unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_higher_limit_on_reload_admits_queued_requests() {
    let (a, _) = admission(&cfg(1, 10));
    let _held = a.admit(Priority::Critical, None, far()).await.unwrap();
    let waiting = queue(&a, Priority::Batch);
    settle().await;
    a.configure(&cfg(2, 10));
    let p = waiting.await.unwrap().unwrap();
    assert_eq!(a.in_flight(), 2);
    drop(p);
}

/// A body that yields the given chunks.
struct Chunks(VecDeque<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

fn chunks(sizes: &[usize]) -> Chunks {
    Chunks(sizes.iter().map(|n| Bytes::from(vec![b'x'; *n])).collect())
}

#[tokio::test]
async fn bodies_are_reserved_before_they_are_buffered() {
    let (a, m) = admission(&cfg(10, 10));
    let r1 = a.reserve(Priority::Standard, 0).unwrap();
    // One frame: kept as it came, reserved exactly.
    let b = collect(chunks(&[600]), 10_000, Some(600), 0, &r1)
        .await
        .unwrap();
    assert_eq!((b.len(), r1.bytes(), a.memory_used()), (600, 600, 600));
    // A body that does not fit is refused as it arrives (batch may fill
    // 70 % of the budget: 600 + 500 > 700).
    let r2 = a.reserve(Priority::Batch, 0).unwrap();
    match collect(chunks(&[500]), 10_000, Some(500), 0, &r2).await {
        Err(Collect::Memory(shed)) => {
            assert_eq!(
                (shed.reason, shed.priority),
                (ShedReason::Memory, Priority::Batch)
            );
        }
        other => panic!("{other:?}"),
    }
    // No declared length: the reservation grows as chunks arrive, and
    // stops the read when the budget is spent.
    match collect(chunks(&[100, 100, 100, 100, 100]), 10_000, None, 0, &r2).await {
        Err(Collect::Memory(_)) => {}
        other => panic!("{other:?}"),
    }
    assert!(a.memory_used() <= 1000);
    drop(r2);
    assert_eq!(a.memory_used(), 600);
    drop(r1);
    assert_eq!(a.memory_used(), 0);
    // Chunks that fit are joined, their buffer reserved.
    let r3 = a.reserve(Priority::Standard, 0).unwrap();
    let b = collect(chunks(&[100, 200, 50]), 10_000, None, 0, &r3)
        .await
        .unwrap();
    assert_eq!(b.len(), 350);
    assert!(r3.bytes() >= 350 && r3.bytes() <= 1000, "{}", r3.bytes());
    // The size limit is its own error.
    let r4 = a.reserve(Priority::Standard, 0).unwrap();
    assert!(matches!(
        collect(chunks(&[100, 100]), 150, None, 0, &r4).await,
        Err(Collect::TooLarge)
    ));
    drop((r3, r4));
    assert_eq!(a.memory_used(), 0);
    // A spent budget refuses new requests at once.
    let r5 = a.reserve(Priority::Critical, 0).unwrap();
    r5.resize(1000).unwrap();
    assert_eq!(
        a.reserve(Priority::Critical, 0).unwrap_err().reason,
        ShedReason::Memory
    );
    let text = m.encode();
    assert!(
        text.contains("lifeline_memory_reserved_bytes 1000"),
        "{text}"
    );
    assert!(text.contains("lifeline_memory_budget_bytes 1000"));
    assert!(
        text.contains("lifeline_admission_shed_total{priority=\"critical\",reason=\"memory\"} 1")
    );
}

/// A body fed by the test: each message a frame, or the body's failure;
/// it ends when the sender is dropped.
struct Fed(tokio::sync::mpsc::UnboundedReceiver<Result<Bytes, &'static str>>);

impl Body for Fed {
    type Data = Bytes;
    type Error = &'static str;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|m| m.map(|r| r.map(Frame::data)))
    }
}

fn fed() -> (
    tokio::sync::mpsc::UnboundedSender<Result<Bytes, &'static str>>,
    Fed,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    (tx, Fed(rx))
}

fn bytes(n: usize) -> Result<Bytes, &'static str> {
    Ok(Bytes::from(vec![b'x'; n]))
}

/// A hedged attempt and its hedge read their answers at once into the
/// request's one reservation: each accounts for its own bytes only, the
/// request copy's spare goes to one of them, and when one fails the
/// reservation holds exactly the other's answer.
#[tokio::test(start_paused = true)]
async fn two_reads_into_one_reservation_account_for_their_own_bytes() {
    let (a, _) = admission(&cfg(10, 10));
    let r = a.reserve(Priority::Standard, 0).unwrap();
    // The request's copy sent upstream: spare for the answer's buffer.
    r.grow(100).unwrap();
    r.set_spare(100);
    // The spare goes to the first read that asks, and to it only.
    let (spare_b, spare_a) = (r.take_spare(), r.take_spare());
    assert_eq!((spare_a, spare_b), (0, 100));
    let (tx_a, body_a) = fed();
    let (tx_b, body_b) = fed();
    let read_a = collect(body_a, 10_000, None, spare_a, &r);
    let read_b = collect(body_b, 10_000, None, spare_b, &r);
    let drive = async {
        settle().await;
        tx_a.send(bytes(150)).unwrap();
        settle().await;
        assert_eq!(r.bytes(), 250, "a's 150 beside the spare");
        tx_b.send(bytes(200)).unwrap();
        settle().await;
        assert_eq!(r.bytes(), 350, "b's 200 in its spare 100 and 100 more");
        tx_a.send(bytes(100)).unwrap();
        settle().await;
        // a's frames joined in a buffer of twice the data.
        assert_eq!(r.bytes(), 700);
        tx_a.send(Err("reset")).unwrap();
        settle().await;
        assert_eq!(r.bytes(), 200, "a's failure releases a's bytes only");
        drop(tx_b);
    };
    let (a_end, b_end, ()) = tokio::join!(read_a, read_b, drive);
    assert!(matches!(a_end, Err(Collect::Read("reset"))), "{a_end:?}");
    assert_eq!(b_end.unwrap().len(), 200);
    assert_eq!((r.bytes(), a.memory_used()), (200, 200), "b's answer only");
    // A read dropped unfinished (the race's loser, cancelled) releases
    // what it added.
    let (tx_c, body_c) = fed();
    let mut read_c = Box::pin(collect(body_c, 10_000, None, r.take_spare(), &r));
    tx_c.send(bytes(300)).unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(1), &mut read_c)
        .await
        .is_err());
    assert_eq!(r.bytes(), 500);
    drop(read_c);
    assert_eq!((r.bytes(), a.memory_used()), (200, 200));
}

/// A body that never arrives: pending forever after its head.
struct Silent;

impl Body for Silent {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Pending
    }
}

#[tokio::test(start_paused = true)]
async fn a_declared_length_reserves_nothing_until_bytes_arrive() {
    let (a, _) = admission(&cfg(10, 10));
    // Many requests declaring bodies far beyond the budget, sending
    // nothing: none of them holds a byte.
    let mut silent = Vec::new();
    for _ in 0..100 {
        let r = a.reserve(Priority::Batch, 0).unwrap();
        let read = tokio::spawn(async move {
            let _ = collect(Silent, 1 << 30, Some(1 << 24), 0, &r).await;
        });
        silent.push(read);
    }
    settle().await;
    assert_eq!(a.memory_used(), 0);
    // A critical request still gets all of the budget.
    let r = a.reserve(Priority::Critical, 0).unwrap();
    let b = collect(chunks(&[400, 600]), 10_000, Some(1000), 0, &r)
        .await
        .unwrap();
    assert_eq!((b.len(), r.bytes()), (1000, 1000));
    for h in silent {
        h.abort();
    }
}

#[tokio::test]
async fn the_buffer_grows_with_the_data_up_to_the_declared_length() {
    let metrics = Arc::new(Metrics::new());
    let mut c = cfg(10, 10);
    c.memory_budget_bytes = 1 << 20;
    let a = Admission::new(&c, metrics);
    // A trickle under a large declared length: the buffer doubles with
    // the data received, it is not sized by the declaration.
    let r = a.reserve(Priority::Standard, 0).unwrap();
    let b = collect(chunks(&[10, 10, 10]), 1 << 20, Some(100_000), 0, &r)
        .await
        .unwrap();
    assert_eq!(b.len(), 30);
    assert!(r.bytes() <= 80, "{}", r.bytes());
    // Growth stops at the declared length: no slack beyond it.
    let r = a.reserve(Priority::Standard, 0).unwrap();
    let b = collect(chunks(&[300, 300, 300, 100]), 1 << 20, Some(1000), 0, &r)
        .await
        .unwrap();
    assert_eq!((b.len(), r.bytes()), (1000, 1000));
}

#[test]
fn each_priority_may_fill_its_share_of_the_budget() {
    let (a, m) = admission(&cfg(10, 10));
    // Batch stops at 70 %.
    let batch = a.reserve(Priority::Batch, 700).unwrap();
    assert_eq!(
        a.reserve(Priority::Batch, 1).unwrap_err().reason,
        ShedReason::Memory
    );
    assert_eq!(batch.grow(1).unwrap_err().priority, Priority::Batch);
    // A spent batch share refuses a new batch request before any read.
    assert_eq!(
        a.reserve(Priority::Batch, 0).unwrap_err().reason,
        ShedReason::Memory
    );
    // Standard stops at 90 %.
    let standard = a.reserve(Priority::Standard, 200).unwrap();
    assert!(standard.grow(1).is_err());
    assert!(a.reserve(Priority::Standard, 0).is_err());
    // Critical has the rest: the whole budget.
    let critical = a.reserve(Priority::Critical, 100).unwrap();
    assert_eq!(a.memory_used(), 1000);
    assert!(critical.grow(1).is_err());
    drop(critical);
    // Freed bytes below a share serve that share again.
    drop(batch);
    assert_eq!(a.memory_used(), 200);
    let again = a.reserve(Priority::Batch, 500).unwrap();
    assert!(again.grow(1).is_err());
    let text = m.encode();
    assert!(
        text.contains("lifeline_admission_shed_total{priority=\"batch\",reason=\"memory\"} 4"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn shedding_ends_once_the_surge_is_over_without_a_queue_to_drain() {
    let (a, m) = admission(&cfg(1, 100));
    // A surge: the only slot held, a standing queue for a whole interval.
    let held = a.admit(Priority::Critical, None, far()).await.unwrap();
    let standard = queue(&a, Priority::Standard);
    settle().await;
    tokio::time::advance(Duration::from_millis(500)).await;
    let probe = queue(&a, Priority::Critical);
    settle().await;
    tokio::time::advance(Duration::from_millis(1000)).await;
    let probe2 = queue(&a, Priority::Critical);
    settle().await;
    assert_eq!(a.shedding(), Some(Priority::Batch));
    // Traffic stops: the queue drains and every slot is released.
    drop(held);
    for h in [probe, probe2, standard] {
        drop(h.await.unwrap().unwrap());
    }
    assert_eq!((a.in_flight(), a.queued()), (0, 0));
    // Two intervals later, a batch request finds the gateway idle: it is
    // admitted, and the shedding is over.
    tokio::time::advance(Duration::from_millis(2100)).await;
    assert!(a.check(Priority::Batch).is_ok());
    let permit = a.admit(Priority::Batch, None, far()).await.unwrap();
    assert_eq!(a.shedding(), None);
    assert!(m.encode().contains("lifeline_admission_shedding 0"));
    // A full gateway now queues batch again instead of refusing it.
    let waiting = queue(&a, Priority::Batch);
    settle().await;
    assert_eq!(a.queued(), 1);
    drop(permit);
    drop(waiting.await.unwrap().unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_shed_class_arriving_at_an_empty_full_gateway_eases_the_shedding() {
    let (a, _) = admission(&cfg(1, 100));
    let held = a.admit(Priority::Critical, None, far()).await.unwrap();
    let standard = queue(&a, Priority::Standard);
    settle().await;
    tokio::time::advance(Duration::from_millis(500)).await;
    let probe = queue(&a, Priority::Critical);
    settle().await;
    tokio::time::advance(Duration::from_millis(1000)).await;
    let probe2 = queue(&a, Priority::Critical);
    settle().await;
    assert_eq!(a.shedding(), Some(Priority::Batch));
    // The queued requests leave (their clients gone); the slot stays
    // busy, as when batch alone keeps the gateway at capacity.
    for h in [standard, probe, probe2] {
        h.abort();
    }
    settle().await;
    assert_eq!(a.queued(), 0);
    // The first batch arrival is refused (the gateway is full, and the
    // queue has been empty for less than an interval)...
    assert_eq!(
        a.check(Priority::Batch).unwrap_err().reason,
        ShedReason::Overload
    );
    // ...and an interval of empty queue later, batch may queue again.
    tokio::time::advance(Duration::from_millis(1100)).await;
    assert!(a.check(Priority::Batch).is_ok());
    assert_eq!(a.shedding(), None);
    let waiting = queue(&a, Priority::Batch);
    settle().await;
    assert_eq!(a.queued(), 1);
    drop(held);
    drop(waiting.await.unwrap().unwrap());
}

fn shared(max_in_flight: usize, max_queue: usize, percent: u8) -> AdmissionConfig {
    AdmissionConfig {
        key_share_percent: percent,
        ..cfg(max_in_flight, max_queue)
    }
}

/// Queues a request of priority `p` from the key `key` in a task.
fn queue_key(
    a: &Admission,
    p: Priority,
    key: &Arc<str>,
) -> tokio::task::JoinHandle<Result<Permit, Shed>> {
    let (a, key) = (a.clone(), key.clone());
    tokio::spawn(async move { a.admit(p, Some(&key), far()).await })
}

#[tokio::test(start_paused = true)]
async fn a_key_over_its_share_is_refused_while_another_key_waits_and_is_served() {
    let (a, m) = admission(&shared(4, 100, 50));
    let (flood, other): (Arc<str>, Arc<str>) = (Arc::from("k-flood"), Arc::from("k-other"));
    let std = Priority::Standard;
    // Alone, with slots free: a key takes every one, beyond its share (2).
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(a.admit(std, Some(&flood), far()).await.unwrap());
    }
    assert_eq!(a.in_flight(), 4);
    // Alone, it may queue too.
    let (q1, q2) = (queue_key(&a, std, &flood), queue_key(&a, std, &flood));
    settle().await;
    assert_eq!(a.queued(), 2);
    // Another key of the same priority arrives within its share: the
    // flooding key's queued requests give way, refused at once.
    let waiting = queue_key(&a, std, &other);
    settle().await;
    assert_eq!(a.queued(), 1);
    for q in [q1, q2] {
        let shed = q.await.unwrap().unwrap_err();
        assert_eq!((shed.reason, shed.priority), (ShedReason::KeyShare, std));
        assert!(shed.retry_after >= Duration::from_secs(1));
    }
    // While the other key waits, the flooding key (4 ≥ 50 % of 4) is
    // refused at once instead of queueing.
    for _ in 0..10 {
        let shed = a.admit(std, Some(&flood), far()).await.unwrap_err();
        assert_eq!(shed.reason, ShedReason::KeyShare);
    }
    assert_eq!(a.queued(), 1);
    // A slot frees: it goes to the other key.
    held.pop();
    let served = waiting.await.unwrap().unwrap();
    assert_eq!((a.in_flight(), a.queued()), (4, 0));
    assert_eq!(a.inner.shares.held(Some(&other)), 1);
    assert_eq!(a.inner.shares.held(Some(&flood)), 3);
    // Queued requests count too: the other key, holding 1, may queue one
    // more (2 of its share of 2), not a third.
    let o1 = queue_key(&a, std, &other);
    settle().await;
    assert_eq!(a.queued(), 1);
    let shed = a.admit(std, Some(&other), far()).await.unwrap_err();
    assert_eq!(shed.reason, ShedReason::KeyShare);
    // Its queued request leaves the count when it times out.
    tokio::time::advance(Duration::from_secs(6)).await;
    assert_eq!(
        o1.await.unwrap().unwrap_err().reason,
        ShedReason::QueueTimeout
    );
    assert_eq!(a.inner.shares.held(Some(&other)), 1);
    // Slots free and nobody waits: the flooding key is admitted again,
    // up to every free slot (work-conserving).
    drop(served);
    held.pop();
    assert_eq!(a.in_flight(), 2);
    held.push(a.admit(std, Some(&flood), far()).await.unwrap());
    held.push(a.admit(std, Some(&flood), far()).await.unwrap());
    assert_eq!(a.in_flight(), 4);
    drop(held);
    assert_eq!((a.in_flight(), a.queued()), (0, 0));
    assert_eq!(a.inner.shares.held(Some(&flood)), 0);
    assert_eq!(a.inner.shares.held(Some(&other)), 0);
    let text = m.encode();
    assert!(
        text.contains(
            "lifeline_admission_shed_total{priority=\"standard\",reason=\"key_share\"} 13"
        ),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn requests_without_a_key_are_one_key_and_100_percent_is_no_share() {
    // 50 % of 1 is still one slot. Requests without a key, alone, queue.
    let (a, _) = admission(&shared(1, 10, 50));
    let key: Arc<str> = Arc::from("k");
    let held = a.admit(Priority::Batch, None, far()).await.unwrap();
    let alone = queue(&a, Priority::Batch);
    settle().await;
    assert_eq!(a.queued(), 1);
    // A keyed request arrives: the keyless queued one gives way, and the
    // next keyless one is refused.
    let keyed = queue_key(&a, Priority::Batch, &key);
    settle().await;
    assert_eq!(
        alone.await.unwrap().unwrap_err().reason,
        ShedReason::KeyShare
    );
    let shed = a.admit(Priority::Batch, None, far()).await.unwrap_err();
    assert_eq!(shed.reason, ShedReason::KeyShare);
    // The keyed request gets the slot.
    drop(held);
    drop(keyed.await.unwrap().unwrap());
    assert_eq!(a.inner.shares.held(None), 0);
    // 100 %: no share, a key may queue behind itself while others wait.
    a.configure(&shared(1, 10, 100));
    let other: Arc<str> = Arc::from("other");
    let held = a.admit(Priority::Batch, Some(&key), far()).await.unwrap();
    let o = queue_key(&a, Priority::Batch, &other);
    settle().await;
    let behind = queue_key(&a, Priority::Batch, &key);
    settle().await;
    assert_eq!(a.queued(), 2);
    drop(held);
    drop(o.await.unwrap().unwrap());
    drop(behind.await.unwrap().unwrap());
    assert_eq!(a.inner.shares.held(Some(&key)), 0);
}

#[tokio::test(start_paused = true)]
async fn idle_keys_are_forgotten_but_a_key_holding_a_slot_is_kept() {
    let (a, _) = admission(&shared(4, 10, 50));
    let (busy, idle, late): (Arc<str>, Arc<str>, Arc<str>) =
        (Arc::from("busy"), Arc::from("idle"), Arc::from("late"));
    let held = a
        .admit(Priority::Standard, Some(&busy), far())
        .await
        .unwrap();
    drop(
        a.admit(Priority::Standard, Some(&idle), far())
            .await
            .unwrap(),
    );
    assert_eq!(a.inner.shares.len(), 2);
    tokio::time::advance(Duration::from_secs(61)).await;
    // A new key after a minute sweeps: the idle key goes, the busy stays.
    drop(
        a.admit(Priority::Standard, Some(&late), far())
            .await
            .unwrap(),
    );
    assert_eq!(a.inner.shares.len(), 2);
    assert_eq!(a.inner.shares.held(Some(&busy)), 1);
    drop(held);
    assert_eq!(a.inner.shares.held(Some(&busy)), 0);
}

#[tokio::test(start_paused = true)]
async fn the_share_is_among_keys_of_one_priority() {
    // 50 % of 2 is one slot. A batch key holds one slot and a critical key
    // the other: each is alone in its class, so each may queue beyond its
    // share; priority orders them, the share does not.
    let (a, _) = admission(&shared(2, 10, 50));
    let (crit, batch): (Arc<str>, Arc<str>) = (Arc::from("crit"), Arc::from("batch"));
    let b = a.admit(Priority::Batch, Some(&batch), far()).await.unwrap();
    let c = a
        .admit(Priority::Critical, Some(&crit), far())
        .await
        .unwrap();
    let c2 = queue_key(&a, Priority::Critical, &crit);
    let b2 = queue_key(&a, Priority::Batch, &batch);
    settle().await;
    assert_eq!(a.queued(), 2);
    // A slot frees: critical goes first.
    drop(b);
    let c2 = c2.await.unwrap().unwrap();
    assert_eq!(a.queued(), 1);
    drop(c);
    drop(b2.await.unwrap().unwrap());
    drop(c2);
    assert_eq!(a.inner.shares.held(Some(&crit)), 0);
    assert_eq!(a.inner.shares.held(Some(&batch)), 0);
}
