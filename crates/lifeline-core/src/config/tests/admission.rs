//! `[admission]`: defaults, values, and each error with its line and key path.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

#[test]
fn admission_defaults_and_values() {
    let c = parse(&with_models(&[]));
    assert_eq!(c.admission, AdmissionConfig::default());
    assert_eq!(c.admission.max_in_flight, 1024);
    assert_eq!(c.admission.max_queue, 1024);
    assert_eq!(c.admission.queue_timeout, Duration::from_secs(5));
    assert_eq!(c.admission.target_delay, Duration::from_millis(100));
    assert_eq!(c.admission.interval, Duration::from_secs(1));
    assert_eq!(c.admission.memory_budget_bytes, 1 << 30);
    assert_eq!(c.admission.key_share_percent, 50);
    let c = parse(&with_models(&[
        "[admission]",
        "max_in_flight = 64",
        "max_queue = 0",
        "queue_timeout_ms = 2000",
        "target_delay_ms = 20",
        "interval_ms = 500",
        "memory_budget_bytes = 268435456",
        "key_share_percent = 100",
    ]));
    let a = &c.admission;
    assert_eq!((a.max_in_flight, a.max_queue), (64, 0));
    assert_eq!(a.queue_timeout, Duration::from_secs(2));
    assert_eq!(a.target_delay, Duration::from_millis(20));
    assert_eq!(a.interval, Duration::from_millis(500));
    assert_eq!(a.memory_budget_bytes, 256 << 20);
    assert_eq!(a.key_share_percent, 100);
}

#[test]
fn admission_errors_name_line_and_field() {
    let e = errors(&with_models(&["[admission]", "max_in_flight = 0"]));
    assert_one(&e, 2, "admission.max_in_flight", "at least 1");
    let e = errors(&with_models(&["[admission]", "max_queue = 2000000"]));
    assert_one(&e, 2, "admission.max_queue", "at most 1000000");
    let e = errors(&with_models(&["[admission]", "", "queue_timeout_ms = 0"]));
    assert_one(&e, 3, "admission.queue_timeout_ms", "above 0 ms");
    let e = errors(&with_models(&[
        "[admission]",
        "target_delay_ms = 2000",
        "interval_ms = 1000",
    ]));
    assert_one(
        &e,
        2,
        "admission.target_delay_ms",
        "shorter than admission.interval_ms",
    );
    let e = errors(&with_models(&["[admission]", "interval_ms = 50"]));
    assert_one(&e, 2, "admission.interval_ms", "shorter than");
    let e = errors(&with_models(&[
        "[server]",
        "max_body_bytes = 1048576",
        "[admission]",
        "memory_budget_bytes = 1000",
    ]));
    assert_one(
        &e,
        4,
        "admission.memory_budget_bytes",
        "below server.max_body_bytes (1048576)",
    );
    let e = errors(&with_models(&["[admission]", "memory_budget_bytes = 0"]));
    assert_one(&e, 2, "admission.memory_budget_bytes", "at least 1");
    for bad in ["0", "101", "300"] {
        let line = format!("key_share_percent = {bad}");
        let e = errors(&with_models(&["[admission]", "", &line]));
        assert_one(&e, 3, "admission.key_share_percent", "between 1 and 100");
    }
    let e = errors(&with_models(&["[admission]", "max_inflight = 3"]));
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(e[0].line, Some(2));
}
