//! Unit tests of the attempt loop's conversions and answers.

#![allow(clippy::unwrap_used)]

use super::convert::model_takes_prefill;
use super::*;
use crate::config::Config;
use crate::health::HealthBus;
use crate::providers::Upstream;

/// Deployments `provider/model` of the providers in `providers` (TOML).
fn deployments(providers: &str, entries: &[(&str, &str)]) -> Vec<Arc<Deployment>> {
    let members: Vec<String> = entries
        .iter()
        .map(|(p, m)| format!("{{ provider = \"{p}\", model = \"{m}\" }}"))
        .collect();
    let text = format!(
        "{providers}\n[[models]]\nname = \"m\"\ntiers = [ [ {} ] ]\n",
        members.join(", ")
    );
    let config = Config::parse(&text, "<test>").unwrap();
    entries
        .iter()
        .map(|(p, m)| {
            let cfg = config.providers.iter().find(|c| c.name == *p).unwrap();
            let up = Upstream::new(cfg, "http://127.0.0.1:9".into())
                .unwrap()
                .with_models([*m]);
            Arc::new(Deployment::new(
                Arc::new(up),
                m,
                crate::config::HealthConfig::default(),
                Arc::new(HealthBus::new(4)),
                Arc::new(Metrics::new()),
            ))
        })
        .collect()
}

const PROVIDERS: &str = "[[providers]]\nname = \"a\"\nkind = \"anthropic\"\napi_key = \"k\"\nbase_url = \"http://127.0.0.1:9\"\n\n[[providers]]\nname = \"b\"\nkind = \"anthropic\"\napi_key = \"k\"\nbase_url = \"http://127.0.0.1:9\"\n\n[[providers]]\nname = \"c\"\nkind = \"anthropic\"\napi_key = \"k\"\nbase_url = \"http://127.0.0.1:9\"\nanthropic_version = \"2026-10-21\"\n\n[[providers]]\nname = \"o\"\nkind = \"openai-compatible\"\nbase_url = \"http://127.0.0.1:9/v1\"\n";

#[test]
fn a_translation_is_made_once_per_target() {
    let d = deployments(
        PROVIDERS,
        &[
            ("a", "claude-sonnet-4-5"),
            ("b", "claude-sonnet-4-5"),
            ("c", "claude-sonnet-4-5"),
            ("a", "claude-opus-4-6"),
        ],
    );
    let made = Converted::default();
    made.keep(&d[0], true, Ok(Bytes::from_static(b"{}")));
    // The same model and settings on another provider: the same body.
    assert_eq!(made.find(&d[1], true), Some(Ok(Bytes::from_static(b"{}"))));
    assert_eq!(made.find(&d[0], true), made.find(&d[1], true));
    // Without prefill, another API version (sampling rules), another
    // model: their own.
    assert_eq!(made.find(&d[0], false), None);
    assert_eq!(made.find(&d[2], true), None);
    assert_eq!(made.find(&d[3], true), None);
    made.keep(&d[3], false, Err("prefill".into()));
    assert_eq!(made.find(&d[3], false), Some(Err("prefill".into())));
    assert_eq!(made.len(), 2);
}

#[test]
fn prefill_is_taken_by_anthropic_models_that_continue_one() {
    let d = deployments(
        PROVIDERS,
        &[
            ("a", "claude-sonnet-4-5"),
            ("a", "claude-opus-4-6"),
            ("o", "gpt-4o"),
        ],
    );
    assert!(model_takes_prefill(&d[0]));
    assert!(!model_takes_prefill(&d[1]), "Claude 4.6 refuses a prefill");
    assert!(
        model_takes_prefill(&d[2]),
        "the tier entry's `prefill` decides"
    );
    d[0].set_prefill_rejected(true);
    assert!(!model_takes_prefill(&d[0]), "learned: rejects a prefill");
}

#[test]
fn translated_answers_lose_the_other_protocols_headers() {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("anthropic-ratelimit-requests-remaining", "9"),
        ("request-id", "req_1"),
        ("retry-after", "2"),
        ("x-should-retry", "true"),
        ("openai-processing-ms", "12"),
        ("x-ratelimit-remaining-requests", "5"),
    ] {
        h.insert(
            header::HeaderName::from_static(k),
            HeaderValue::from_static(v),
        );
    }
    let mut from_anthropic = h.clone();
    strip_protocol_headers(&mut from_anthropic, Wire::Anthropic);
    let names = |h: &HeaderMap| {
        let mut n: Vec<String> = h.keys().map(|k| k.to_string()).collect();
        n.sort();
        n
    };
    assert_eq!(
        names(&from_anthropic),
        [
            "openai-processing-ms",
            "retry-after",
            "x-ratelimit-remaining-requests",
            "x-should-retry"
        ]
    );
    strip_protocol_headers(&mut h, Wire::OpenAi);
    assert_eq!(
        names(&h),
        [
            "anthropic-ratelimit-requests-remaining",
            "request-id",
            "retry-after",
            "x-should-retry"
        ]
    );
}
