//! Hedged requests and degraded mode: defaults, `[server]` defaults
//! overridden per model, and each error with its line and key path.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

#[test]
fn hedge_and_degraded_are_off_by_default_and_inherit_from_server() {
    let c = parse(&with_models(&[]));
    let p = &c.models[0].policy;
    assert_eq!(p.hedge, HedgePolicy::default());
    assert!(!p.hedge.enabled);
    assert_eq!(p.hedge.budget_percent, 5.0);
    assert_eq!(p.degraded, DegradedPolicy::default());
    assert!(!p.degraded.enabled && !p.degraded.any_temperature);
    assert_eq!(p.degraded.max_age, Duration::from_secs(600));
    assert_eq!(c.server.degraded_cache_bytes, 64 << 20);

    let c = parse(&doc(&[
        "[server]",
        "hedge = true",
        "hedge_budget_percent = 2.5",
        "degraded = true",
        "degraded_cache_bytes = 1048576",
        "[[providers]]",
        "name = \"p\"",
        "kind = \"mock\"",
        "[[models]]",
        "name = \"m\"",
        "tiers = [[{ provider = \"p\", model = \"x\" }]]",
        "[[models]]",
        "name = \"n\"",
        "hedge = false",
        "degraded_max_age_ms = 5000",
        "degraded_any_temperature = true",
        "tiers = [[{ provider = \"p\", model = \"x\" }]]",
    ]));
    assert_eq!(c.server.degraded_cache_bytes, 1 << 20);
    let (m, n) = (&c.models[0].policy, &c.models[1].policy);
    assert!(m.hedge.enabled && m.degraded.enabled && !m.degraded.any_temperature);
    assert_eq!(m.hedge.budget_percent, 2.5);
    assert!(!n.hedge.enabled && n.degraded.enabled && n.degraded.any_temperature);
    assert_eq!(n.hedge.budget_percent, 2.5);
    assert_eq!(n.degraded.max_age, Duration::from_secs(5));
}

#[test]
fn hedge_and_degraded_errors_name_line_and_field() {
    let e = errors(&with_models(&["[server]", "hedge_budget_percent = 150"]));
    assert_one(&e, 2, "server.hedge_budget_percent", "between 0 and 100");
    let e = errors(&with_models(&["[server]", "degraded_cache_bytes = 0"]));
    assert_one(&e, 2, "server.degraded_cache_bytes", "at least 1");
    let e = errors(&doc(&[
        "[[providers]]",
        "name = \"p\"",
        "kind = \"mock\"",
        "[[models]]",
        "name = \"m\"",
        "degraded_max_age_ms = 0",
        "hedge_budget_percent = -1",
        "tiers = [[{ provider = \"p\", model = \"x\" }]]",
    ]));
    assert_has(&e, 6, "models[0].degraded_max_age_ms", "above 0");
    assert_has(&e, 7, "models[0].hedge_budget_percent", "between 0 and 100");
}
