//! `[store]` and `[status]`: defaults, a full example, and each error with
//! its line and key path.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use super::*;

#[test]
fn store_and_status_defaults() {
    let c = parse(&with_models(&["[server]", "listen = \"0.0.0.0:9000\""]));
    assert_eq!(
        c.store,
        StoreConfig {
            url: "sqlite://lifeline.db".into(),
            backend: StoreBackend::Sqlite(PathBuf::from("lifeline.db")),
            sli_retention_days: 90,
        }
    );
    let s = &c.status;
    assert!(s.enabled);
    assert_eq!(s.title, "Status");
    assert_eq!(s.page_url, "http://0.0.0.0:9000");
    assert!(s.publish_automatic);
    assert_eq!(s.open_after, Duration::from_secs(120));
    assert_eq!(s.update_interval, Duration::from_secs(1800));
    assert_eq!(s.resolve_after, Duration::from_secs(600));
    assert_eq!(s.no_data_after, Duration::from_secs(900));
    assert!(!s.show_providers);
    assert_eq!(s.static_dir, None);
    assert_eq!(s.clock_speed, 1);
    assert_eq!(
        s.slo,
        SloConfig {
            availability: 0.999,
            latency: Duration::from_secs(5),
            latency_target: 0.99,
            period_days: 30,
        }
    );
    assert_eq!(s.slo, SloConfig::default());
    assert!(s.components.is_empty() && s.upstream.is_empty());
    // With a status listener, the page's default address is its.
    let c = parse(&with_models(&[
        "[server]",
        "status_listen = \"127.0.0.1:8090\"",
    ]));
    assert_eq!(c.status.page_url, "http://127.0.0.1:8090");
}

#[test]
fn a_full_status_section_parses() {
    let c = parse(&with_models(&[
        "[store]",
        "url = \"sqlite:///var/lib/lifeline/status.db\"",
        "sli_retention_days = 400",
        "[status]",
        "enabled = false",
        "title = \"Acme AI status\"",
        "page_url = \"https://status.acme.ai/\"",
        "publish_automatic = false",
        "open_after_ms = 60000",
        "update_interval_ms = 900000",
        "resolve_after_ms = 300000",
        "no_data_after_ms = 600000",
        "show_providers = true",
        "static_dir = \"/var/www/status\"",
        "clock_speed = 60",
        "[status.slo]",
        "availability = 0.995",
        "latency_ms = 8000",
        "latency_target = 0.95",
        "period_days = 28",
        "[[status.components]]",
        "id = \"chat\"",
        "name = \"Chat\"",
        "description = \"Chat completions\"",
        "group = \"APIs\"",
        "models = [\"m\"]",
        "endpoints = [\"chat\", \"responses\"]",
        "availability = 0.9995",
        "period_days = 365",
        "[[status.components]]",
        "id = \"all-of-m\"",
        "name = \"Everything\"",
        "models = [\"m\"]",
        "[[status.upstream]]",
        "provider = \"p\"",
        "url = \"https://status.openai.com/api/v2/summary.json\"",
        "format = \"statuspage\"",
        "[[status.upstream]]",
        "provider = \"p\"",
        "url = \"https://status.example.com/history.rss\"",
        "format = \"rss\"",
        "interval_ms = 10000",
    ]));
    assert_eq!(
        c.store.backend,
        StoreBackend::Sqlite(PathBuf::from("/var/lib/lifeline/status.db"))
    );
    assert_eq!(c.store.sli_retention_days, 400);
    let s = &c.status;
    assert!(!s.enabled && !s.publish_automatic && s.show_providers);
    assert_eq!(s.title, "Acme AI status");
    assert_eq!(s.page_url, "https://status.acme.ai");
    assert_eq!(s.open_after, Duration::from_secs(60));
    assert_eq!(s.update_interval, Duration::from_secs(900));
    assert_eq!(s.resolve_after, Duration::from_secs(300));
    assert_eq!(s.no_data_after, Duration::from_secs(600));
    assert_eq!(s.static_dir, Some(PathBuf::from("/var/www/status")));
    assert_eq!(s.clock_speed, 60);
    let base = SloConfig {
        availability: 0.995,
        latency: Duration::from_secs(8),
        latency_target: 0.95,
        period_days: 28,
    };
    assert_eq!(s.slo, base);
    let chat = &s.components[0];
    assert_eq!((chat.id.as_str(), chat.name.as_str()), ("chat", "Chat"));
    assert_eq!(chat.description.as_deref(), Some("Chat completions"));
    assert_eq!(chat.group.as_deref(), Some("APIs"));
    assert_eq!(chat.models, ["m"]);
    assert_eq!(chat.endpoints, ["chat", "responses"]);
    // Overrides on top of [status.slo].
    assert_eq!(
        chat.slo,
        SloConfig {
            availability: 0.9995,
            period_days: 365,
            ..base.clone()
        }
    );
    let all = &s.components[1];
    assert_eq!(all.endpoints, ["chat", "embeddings", "images", "responses"]);
    assert_eq!((all.description.as_ref(), all.group.as_ref()), (None, None));
    assert_eq!(all.slo, base);
    assert_eq!(
        s.upstream,
        [
            UpstreamConfig {
                provider: "p".into(),
                url: "https://status.openai.com/api/v2/summary.json".into(),
                format: StatusFeedFormat::Statuspage,
                interval: Duration::from_secs(60),
            },
            UpstreamConfig {
                provider: "p".into(),
                url: "https://status.example.com/history.rss".into(),
                format: StatusFeedFormat::Rss,
                interval: Duration::from_secs(10),
            },
        ]
    );
}

#[test]
fn store_url_must_be_sqlite() {
    let e = errors(&with_models(&[
        "[store]",
        "url = \"postgres://user:hunter2@db/lifeline\"",
    ]));
    assert_one(&e, 2, "store.url", "PostgreSQL is not supported yet");
    assert!(!e[0].message.contains("hunter2"), "{e:?}");
    let e = errors(&with_models(&["[store]", "url = \"mysql://db/x\""]));
    assert_one(&e, 2, "store.url", "unknown scheme \"mysql\"");
    let e = errors(&with_models(&["[store]", "url = \"lifeline.db\""]));
    assert_one(&e, 2, "store.url", "no scheme");
    let e = errors(&with_models(&["[store]", "url = \"sqlite://\""]));
    assert_one(&e, 2, "store.url", "names no file");
}

#[test]
fn retention_and_periods_are_bounded() {
    let e = errors(&with_models(&["[store]", "sli_retention_days = 0"]));
    assert_one(&e, 2, "store.sli_retention_days", "between 1 and 3650");
    let e = errors(&with_models(&["[store]", "sli_retention_days = 3651"]));
    assert_one(&e, 2, "store.sli_retention_days", "between 1 and 3650");
    // The default SLO period (30 days) needs 30 days of history.
    let e = errors(&with_models(&["[store]", "sli_retention_days = 7"]));
    assert_one(&e, 2, "store.sli_retention_days", "SLO period of 30 days");
    let e = errors(&with_models(&["[status.slo]", "period_days = 120"]));
    assert_one(&e, 2, "status.slo.period_days", "sli_retention_days is 90");
    let e = errors(&with_models(&["[status.slo]", "period_days = 0"]));
    assert_one(&e, 2, "status.slo.period_days", "between 1 and 365");
}

#[test]
fn slo_targets_are_fractions() {
    let e = errors(&with_models(&[
        "[status.slo]",
        "availability = 1.0",
        "latency_target = 0",
        "latency_ms = 0",
    ]));
    assert_eq!(e.len(), 3, "{e:#?}");
    assert_has(&e, 2, "status.slo.availability", "between 0 and 1");
    assert_has(&e, 3, "status.slo.latency_target", "between 0 and 1");
    assert_has(&e, 4, "status.slo.latency_ms", "above 0");
    let e = errors(&with_models(&[
        "[[status.components]]",
        "id = \"c\"",
        "name = \"C\"",
        "models = [\"m\"]",
        "latency_target = 99.9",
    ]));
    assert_one(
        &e,
        5,
        "status.components[0].latency_target",
        "between 0 and 1",
    );
}

#[test]
fn components_name_known_models_with_unique_slugs() {
    let e = errors(&with_models(&[
        "[[status.components]]",
        "id = \"chat\"",
        "name = \"Chat\"",
        "models = [\"m\", \"gpt-5\"]",
        "[[status.components]]",
        "id = \"chat\"",
        "name = \"Chat again\"",
        "models = [\"m\"]",
        "[[status.components]]",
        "id = \"Chat API\"",
        "name = \"Bad\"",
        "models = []",
        "endpoints = [\"chat\", \"audio\", \"chat\"]",
    ]));
    assert_eq!(e.len(), 6, "{e:#?}");
    assert_has(
        &e,
        4,
        "status.components[0].models[1]",
        "no such model \"gpt-5\" (known: m)",
    );
    assert_has(
        &e,
        6,
        "status.components[1].id",
        "duplicate component id \"chat\" (also status.components[0])",
    );
    assert_has(&e, 10, "status.components[2].id", "not a slug");
    assert_has(&e, 12, "status.components[2].models", "at least one");
    assert_has(
        &e,
        13,
        "status.components[2].endpoints[1]",
        "unknown endpoint family \"audio\"",
    );
    assert_has(&e, 13, "status.components[2].endpoints[2]", "listed twice");
}

#[test]
fn upstream_feeds_name_known_providers() {
    let e = errors(&with_models(&[
        "[[status.upstream]]",
        "provider = \"anthropic\"",
        "url = \"status.anthropic.com\"",
        "format = \"json\"",
        "interval_ms = 1000",
    ]));
    assert_eq!(e.len(), 4, "{e:#?}");
    assert_has(
        &e,
        2,
        "status.upstream[0].provider",
        "no such provider \"anthropic\" (known: p)",
    );
    assert_has(
        &e,
        3,
        "status.upstream[0].url",
        "not an http:// or https:// URL",
    );
    assert_has(
        &e,
        4,
        "status.upstream[0].format",
        "valid: statuspage, incidentio, atom, rss",
    );
    assert_has(&e, 5, "status.upstream[0].interval_ms", "at least 10000 ms");
}

#[test]
fn page_url_title_and_unknown_keys() {
    let e = errors(&with_models(&[
        "[status]",
        "page_url = \"status.acme.ai\"",
        "title = \" \"",
        "static_dir = \"\"",
        "clock_speed = 0",
    ]));
    assert_eq!(e.len(), 4, "{e:#?}");
    assert_has(&e, 5, "status.clock_speed", "between 1 and 3600");
    assert_has(&e, 2, "status.page_url", "not an http:// or https:// URL");
    assert_has(&e, 3, "status.title", "must not be empty");
    assert_has(&e, 4, "status.static_dir", "must not be empty");
    let e = errors(&with_models(&["[status]", "colour = \"red\""]));
    assert_one(&e, 2, "status.colour", "unknown field `colour`");
    let e = errors(&with_models(&[
        "[[status.components]]",
        "id = \"c\"",
        "name = \"C\"",
        "models = [\"m\"]",
        "weight = 2",
    ]));
    assert_one(
        &e,
        5,
        "status.components[0].weight",
        "unknown field `weight`",
    );
    let e = errors(&with_models(&["[store]", "path = \"x.db\""]));
    assert_one(&e, 2, "store.path", "unknown field `path`");
}
