//! Every kind of configuration error, each checked for its exact line and
//! key path on a small input, and for never quoting a secret.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

#[test]
fn unknown_provider_reference() {
    let e = errors(&doc(&[
        "[[providers]]",
        "name = \"primary\"",
        "kind = \"mock\"",
        "[[providers]]",
        "name = \"backup\"",
        "kind = \"mock\"",
        "[[models]]",
        "name = \"m\"",
        "tiers = [",
        "  [ { provider = \"primary\", model = \"x\" } ],",
        "  [ { provider = \"antrhopic\", model = \"y\" } ],",
        "]",
    ]));
    assert_one(
        &e,
        11,
        "models[0].tiers[1][0].provider",
        "no such provider \"antrhopic\" (known: primary, backup)",
    );
}

#[test]
fn listen_addresses() {
    let e = errors(&with_models(&[
        "[server]",
        "listen = \"localhost:8080\"",
        "admin_listen = \"nope\"",
    ]));
    assert_eq!(e.len(), 2, "{e:#?}");
    assert_has(&e, 2, "server.listen", "not a socket address");
    assert_has(&e, 3, "server.admin_listen", "not a socket address");
    let e = errors(&with_models(&[
        "[server]",
        "listen = \"127.0.0.1:1\"",
        "admin_listen = \"127.0.0.1:1\"",
    ]));
    assert_one(&e, 3, "server.admin_listen", "same address");
    let e = errors(&with_models(&[
        "[server]",
        "listen = \"127.0.0.1:1\"",
        "admin_listen = \"127.0.0.1:2\"",
        "status_listen = \"127.0.0.1:2\"",
    ]));
    assert_one(
        &e,
        4,
        "server.status_listen",
        "same address as server.admin_listen",
    );
    let e = errors(&with_models(&[
        "[server]",
        "status_listen = \"127.0.0.1:8080\"",
    ]));
    assert_one(
        &e,
        2,
        "server.status_listen",
        "same address as server.listen",
    );
    let e = errors(&with_models(&["[server]", "status_listen = \"status\""]));
    assert_one(&e, 2, "server.status_listen", "not a socket address");
}

#[test]
fn duplicate_provider_and_model_names() {
    let e = errors(&doc(&[
        "[[providers]]",
        "name = \"p\"",
        "kind = \"mock\"",
        "[[providers]]",
        "name = \"p\"",
        "kind = \"mock\"",
        "[[models]]",
        "name = \"m\"",
        "tiers = [[{ provider = \"p\", model = \"x\" }]]",
        "[[models]]",
        "name = \"m\"",
        "tiers = [[{ provider = \"p\", model = \"x\" }]]",
    ]));
    assert_eq!(e.len(), 2, "{e:#?}");
    assert_has(
        &e,
        5,
        "providers[1].name",
        "duplicate provider name \"p\" (also providers[0])",
    );
    assert_has(
        &e,
        11,
        "models[1].name",
        "duplicate model name \"m\" (also models[0])",
    );
}

#[test]
fn provider_kind_and_base_url() {
    let e = errors(&with_models(&[
        "[[providers]]",
        "name = \"a\"",
        "kind = \"gemini\"",
        "base_url = \"http://x\"",
        "[[providers]]",
        "name = \"b\"",
        "kind = \"openai-compatible\"",
        "[[providers]]",
        "name = \"c\"",
        "kind = \"mock\"",
        "base_url = \"http://127.0.0.1:1\"",
        "[[providers]]",
        "name = \"d\"",
        "kind = \"azure\"",
        "base_url = \"ftp://example.com\"",
    ]));
    assert_eq!(e.len(), 4, "{e:#?}");
    assert_has(
        &e,
        3,
        "providers[0].kind",
        "unknown provider kind \"gemini\" (valid: openai, azure, openai-compatible, anthropic, mock)",
    );
    assert_has(&e, 5, "providers[1].base_url", "is required");
    assert_has(&e, 11, "providers[2].base_url", "must be absent");
    assert_has(
        &e,
        15,
        "providers[3].base_url",
        "\"ftp://example.com\" is not an http:// or https:// URL",
    );
}

#[test]
fn provider_limits_and_kind_specific_keys() {
    let e = errors(&with_models(&[
        "[[providers]]",
        "name = \"a\"",
        "kind = \"openai\"",
        "max_concurrency = 0",
        "api_version = \"2024-10-21\"",
        "probe_path = \"models\"",
        "[providers.mock]",
        "name = \"x\"",
    ]));
    assert_eq!(e.len(), 4, "{e:#?}");
    assert_has(&e, 4, "providers[0].max_concurrency", "at least 1");
    assert_has(
        &e,
        5,
        "providers[0].api_version",
        "only to kind = \"azure\"",
    );
    assert_has(&e, 6, "providers[0].probe_path", "must start with '/'");
    assert_has(
        &e,
        7,
        "providers[0].mock",
        "applies only to kind = \"mock\"",
    );
}

#[test]
fn tiers_and_weights() {
    let e = errors(&doc(&[
        "[[providers]]",
        "name = \"p\"",
        "kind = \"mock\"",
        "[[models]]",
        "name = \"none\"",
        "tiers = []",
        "[[models]]",
        "name = \"gap\"",
        "tiers = [",
        "  [ { provider = \"p\", model = \"x\", weight = 0 } ],",
        "  [],",
        "  [ { provider = \"p\", model = \"\" } ],",
        "]",
    ]));
    assert_eq!(e.len(), 4, "{e:#?}");
    assert_has(&e, 6, "models[0].tiers", "has no tiers");
    assert_has(&e, 10, "models[1].tiers[0][0].weight", "at least 1");
    assert_has(&e, 11, "models[1].tiers[1]", "empty tier");
    assert_has(&e, 12, "models[1].tiers[2][0].model", "must not be empty");
}

#[test]
fn tier_waits_adaptive_deadlines_and_context_windows() {
    let e = errors(&doc(&[
        "[server]",
        "adaptive_timeout_multiplier = 0.5",
        "tier_wait_ms = 0",
        "[[providers]]",
        "name = \"p\"",
        "kind = \"mock\"",
        "[[models]]",
        "name = \"m\"",
        "tiers = [[{ provider = \"p\", model = \"x\", context_window = 0 }]]",
        "adaptive_timeout_floor_ms = 0",
    ]));
    assert_has(
        &e,
        2,
        "server.adaptive_timeout_multiplier",
        "between 1 and 100",
    );
    assert_has(&e, 9, "models[0].tiers[0][0].context_window", "at least 1");
    assert_has(&e, 10, "models[0].adaptive_timeout_floor_ms", "above 0");
    assert_eq!(e.len(), 3, "tier_wait_ms = 0 is allowed: {e:#?}");
}

#[test]
fn zero_models_is_an_error() {
    let e = errors(&doc(&["[[providers]]", "name = \"p\"", "kind = \"mock\""]));
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!((e[0].line, e[0].field.as_str()), (None, "models"));
    assert!(e[0].message.contains("no [[models]]"), "{e:#?}");
}

#[test]
fn durations_and_retry_settings() {
    let e = errors(&doc(&[
        "[server]",
        "drain_timeout_ms = 0",
        "connect_timeout_ms = 0",
        "max_attempts = 11",
        "retry_budget_ratio = 10.5",
        "backoff_base_ms = 5000",
        "[health]",
        "failure_rate = 0.0",
        "probe_timeout_ms = 0",
        "cooldown_ms = 90000",
        "[[providers]]",
        "name = \"p\"",
        "kind = \"mock\"",
        "[[models]]",
        "name = \"m\"",
        "tiers = [[{ provider = \"p\", model = \"x\" }]]",
        "max_attempts = 0",
        "request_timeout_ms = 0",
        "retry_budget_ratio = -1",
        "backoff_max_ms = 1",
    ]));
    assert_has(&e, 2, "server.drain_timeout_ms", "above 0");
    assert_has(&e, 3, "server.connect_timeout_ms", "above 0");
    assert_has(&e, 4, "server.max_attempts", "between 1 and 10");
    assert_has(&e, 5, "server.retry_budget_ratio", "between 0 and 10");
    assert_has(
        &e,
        6,
        "server.backoff_base_ms",
        "must not exceed backoff_max_ms",
    );
    assert_has(&e, 8, "health.failure_rate", "(0, 1]");
    assert_has(&e, 9, "health.probe_timeout_ms", "above 0");
    assert_has(
        &e,
        10,
        "health.cooldown_ms",
        "must not exceed max_cooldown_ms",
    );
    assert_has(&e, 17, "models[0].max_attempts", "between 1 and 10");
    assert_has(&e, 18, "models[0].request_timeout_ms", "above 0");
    assert_has(&e, 19, "models[0].retry_budget_ratio", "between 0 and 10");
    assert_has(&e, 20, "models[0].backoff_max_ms", "must not exceed");
    assert_eq!(e.len(), 12, "{e:#?}");
    // Sorted by line.
    let lines: Vec<_> = e.iter().map(|e| e.line).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
}

#[test]
fn keys() {
    let e = errors(&with_models(&[
        "[[keys]]",
        "name = \"both\"",
        "key = \"${APP_KEY}\"",
        "sha256 = \"00\"",
        "[[keys]]",
        "name = \"neither\"",
        "[[keys]]",
        "name = \"short\"",
        "sha256 = \"abc\"",
        "[[keys]]",
        "name = \"short\"",
        "key = \"literal\"",
    ]));
    assert_eq!(e.len(), 4, "{e:#?}");
    assert_has(&e, 4, "keys[0].sha256", "not both");
    assert_has(&e, 5, "keys[1]", "needs key");
    assert_has(&e, 9, "keys[2].sha256", "64 hex characters");
    assert_has(
        &e,
        11,
        "keys[3].name",
        "duplicate key name \"short\" (also keys[2])",
    );
}

#[test]
fn missing_variable_names_it_and_leaks_no_secret() {
    let text = doc(&[
        "[admin]",
        "token = \"${LIFELINE_ADMIN_TOKEN}\"",
        "[[providers]]",
        "name = \"a\"",
        "kind = \"openai\"",
        "api_key = \"${MISSING_KEY}\"",
        "base_url = \"https://${PRIMARY_KEY}.example/${ALSO_MISSING}\"",
        "[[providers]]",
        "name = \"b\"",
        "kind = \"openai\"",
        "api_key = \"${EMPTY}\"",
        "[[models]]",
        "name = \"m\"",
        "tiers = [[{ provider = \"nope\", model = \"x\" }]]",
        "[[keys]]",
        "name = \"k\"",
        "key = \"${APP_KEY}-${NOT_SET}\"",
    ]);
    let e = errors(&text);
    assert_has(
        &e,
        6,
        "providers[0].api_key",
        "environment variable MISSING_KEY is not set",
    );
    assert_has(
        &e,
        7,
        "providers[0].base_url",
        "environment variable ALSO_MISSING is not set",
    );
    assert_has(&e, 11, "providers[1].api_key", "is empty");
    assert_has(&e, 14, "models[0].tiers[0][0].provider", "no such provider");
    assert_has(
        &e,
        17,
        "keys[0].key",
        "environment variable NOT_SET is not set",
    );
    let all = ConfigErrors(e).to_string();
    for secret in [PRIMARY_SECRET, ADMIN_SECRET, APP_SECRET] {
        assert!(!all.contains(secret), "{secret} leaked in:\n{all}");
    }
}

#[test]
fn bad_variable_syntax() {
    let e = errors(&with_models(&["[admin]", "token = \"${UNCLOSED\""]));
    assert_one(&e, 2, "admin.token", "without a closing");
    let e = errors(&with_models(&["[admin]", "token = \"${bad name}\""]));
    assert_one(
        &e,
        2,
        "admin.token",
        "not a valid environment variable name",
    );
}

#[test]
fn unknown_field_has_line_and_path() {
    let e = errors(&with_models(&[
        "[server]",
        "listen = \"127.0.0.1:1\"",
        "",
        "lisen = \"x\"",
    ]));
    assert_one(&e, 4, "server.lisen", "unknown field `lisen`");

    let e = errors(&doc(&[
        "[[providers]]",
        "name = \"a\"",
        "kind = \"mock\"",
        "[[providers]]",
        "name = \"b\"",
        "kind = \"mock\"",
        "[providers.mock]",
        "tokens_per_secnd = 1.0",
    ]));
    assert_one(
        &e,
        8,
        "providers[1].mock.tokens_per_secnd",
        "unknown field `tokens_per_secnd`",
    );

    let e = errors(&doc(&[
        "[[models]]",
        "name = \"m\"",
        "tiers = [[",
        "  { provider = \"p\", model = \"x\", wieght = 2 },",
        "]]",
    ]));
    assert_one(
        &e,
        4,
        "models[0].tiers[0][0].wieght",
        "unknown field `wieght`",
    );

    let e = errors(&doc(&["", "[stor]", "url = \"x\""]));
    assert_one(&e, 2, "stor", "unknown field `stor`");
}

#[test]
fn wrong_type_and_missing_field_have_line_and_path() {
    let e = errors(&with_models(&["[server]", "max_attempts = \"3\""]));
    assert_one(&e, 2, "server.max_attempts", "invalid type");

    let e = errors(&doc(&[
        "[[models]]",
        "name = \"m\"",
        "tiers = [[{ provider = \"p\", model = \"x\", weight = -1 }]]",
    ]));
    assert_one(&e, 3, "models[0].tiers[0][0].weight", "invalid value");

    let e = errors(&doc(&[
        "[[providers]]",
        "name = \"a\"",
        "kind = \"mock\"",
        "",
        "[[providers]]",
        "kind = \"mock\"",
    ]));
    assert_one(&e, 5, "providers[1]", "missing field `name`");
}

#[test]
fn syntax_error_has_line() {
    let e = errors(&doc(&[
        "[server]",
        "listen = \"127.0.0.1:1\"",
        "max_attempts = ",
        "[health]",
    ]));
    assert!(!e.is_empty());
    assert_eq!(e[0].line, Some(3), "{e:#?}");
    assert!(e[0].message.starts_with("TOML syntax error"), "{e:#?}");
}

#[test]
fn base_url_error_quotes_the_value_as_written() {
    let e = errors(&doc(&[
        "[[providers]]",
        "name = \"v\"",
        "kind = \"openai-compatible\"",
        "base_url = \"${PRIMARY_KEY}\"",
        "[[models]]",
        "name = \"m\"",
        "tiers = [[{ provider = \"v\", model = \"x\" }]]",
    ]));
    assert_one(
        &e,
        4,
        "providers[0].base_url",
        "\"${PRIMARY_KEY}\" is not an http",
    );
    assert!(!e[0].message.contains(PRIMARY_SECRET));
}

#[test]
fn the_same_key_twice() {
    let e = errors(&with_models(&[
        "[[keys]]",
        "name = \"a\"",
        "key = \"${APP_KEY}\"",
        "[[keys]]",
        "name = \"b\"",
        "key = \"app-key-abcdef\"",
    ]));
    assert_one(&e, 6, "keys[1].key", "same key as keys[0]");
    assert!(!e[0].message.contains(APP_SECRET));
}

#[test]
fn auth_mode() {
    let e = errors(&with_models(&["[server]", "auth = \"open\""]));
    assert_one(
        &e,
        2,
        "server.auth",
        "must be \"keys\" or \"none\", got \"open\"",
    );
    // Keys with auth = "none" would be silently ignored: an error, on the
    // `auth` line, naming the keys' line.
    let mut lines = vec!["[server]", "auth = \"none\""];
    lines.extend_from_slice(MODELS);
    lines.extend_from_slice(&["[[keys]]", "name = \"app\"", "sha256 = \"00\""]);
    let e = errors(&doc(&lines));
    let keys_line = lines.len() - 2;
    assert_has(
        &e,
        2,
        "server.auth",
        &format!("[[keys]] are configured (line {keys_line})"),
    );
    let ok = parse(&with_models(&["[server]", "auth = \"none\""]));
    assert_eq!(ok.server.auth, AuthMode::None);
    assert_eq!(parse(&with_models(&[])).server.auth, AuthMode::Keys);
}

#[test]
fn concurrency_keys() {
    let c = parse(&with_models(&[
        "[server]",
        "adaptive_concurrency = false",
        "adaptive_min_limit = 1",
        "adaptive_initial_limit = 8",
        "adaptive_max_limit = 64",
        "capacity_waiters = 0",
        "capacity_wait_ms = 250",
    ]));
    assert_eq!(
        c.server.concurrency,
        ConcurrencyConfig {
            adaptive: false,
            min_limit: 1,
            initial_limit: 8,
            max_limit: 64,
            max_waiters: 0,
            max_wait: Duration::from_millis(250),
        }
    );
    let e = errors(&with_models(&[
        "[server]",
        "adaptive_min_limit = 0",
        "capacity_wait_ms = 0",
    ]));
    assert_eq!(e.len(), 2, "{e:#?}");
    assert_has(&e, 2, "server.adaptive_min_limit", "at least 1");
    assert_has(&e, 3, "server.capacity_wait_ms", "above 0 ms");
    let e = errors(&with_models(&[
        "[server]",
        "adaptive_min_limit = 50",
        "adaptive_max_limit = 10",
    ]));
    assert_has(
        &e,
        2,
        "server.adaptive_min_limit",
        "must not be above server.adaptive_max_limit (10), got 50",
    );
    let e = errors(&with_models(&["[server]", "adaptive_initial_limit = 300"]));
    assert_one(
        &e,
        2,
        "server.adaptive_initial_limit",
        "between server.adaptive_min_limit (2) and server.adaptive_max_limit (256), got 300",
    );
    let e = errors(&with_models(&["[server]", "adaptive_concurrency = 1"]));
    assert_eq!(e[0].line, Some(2), "{e:#?}");
}

#[test]
fn listener_limits_are_bounded() {
    let e = errors(&with_models(&[
        "[server]",
        "max_header_bytes = 1024",
        "max_json_depth = 0",
        "max_requests_per_connection = 0",
        "max_connection_age_ms = 0",
        "http2_max_concurrent_streams = 0",
    ]));
    assert_eq!(e.len(), 5, "{e:#?}");
    assert_has(&e, 2, "server.max_header_bytes", "between 8192 and");
    assert_has(&e, 3, "server.max_json_depth", "between 1 and 128");
    assert_has(&e, 4, "server.max_requests_per_connection", "at least 1");
    assert_has(&e, 5, "server.max_connection_age_ms", "above 0 ms");
    assert_has(
        &e,
        6,
        "server.http2_max_concurrent_streams",
        "between 1 and",
    );
    let e = errors(&with_models(&["[server]", "max_json_depth = 129"]));
    assert_one(&e, 2, "server.max_json_depth", "between 1 and 128, got 129");
}

#[test]
fn tls_needs_both_files() {
    let e = errors(&with_models(&["[server]", "tls_cert = \"cert.pem\""]));
    assert_one(&e, 2, "server.tls_cert", "needs server.tls_key");
    let e = errors(&with_models(&["[server]", "tls_key = \"key.pem\""]));
    assert_one(&e, 2, "server.tls_key", "needs server.tls_cert");
    let e = errors(&with_models(&[
        "[server]",
        "tls_cert = \"/nonexistent/cert.pem\"",
        "tls_key = \"/nonexistent/key.pem\"",
    ]));
    assert_one(
        &e,
        2,
        "server.tls_cert",
        "cannot read /nonexistent/cert.pem",
    );
}

#[test]
fn admin_beyond_loopback_needs_tls_and_a_token() {
    let e = errors(&with_models(&[
        "[server]",
        "admin_listen = \"0.0.0.0:9090\"",
    ]));
    assert_one(
        &e,
        2,
        "server.admin_listen",
        "only with TLS (server.tls_cert and server.tls_key) and an admin token (admin.token)",
    );
    let e = errors(&with_models(&[
        "[server]",
        "admin_listen = \"10.0.0.5:9090\"",
        "[admin]",
        "token = \"secret-admin\"",
    ]));
    assert_one(&e, 2, "server.admin_listen", "only with TLS");
    assert!(!e[0].message.contains("admin token"), "{e:#?}");
    // Loopback (IPv4 and IPv6) needs neither.
    for addr in ["127.0.0.1:9090", "[::1]:9090"] {
        let admin = format!("admin_listen = \"{addr}\"");
        let c = parse(&with_models(&["[server]", &admin]));
        assert!(c.server.admin_listen.is_some());
    }
}

#[test]
fn anthropic_keys_are_checked_where_they_apply() {
    let e = errors(&with_models(&[
        "[[providers]]",
        "name = \"a\"",
        "kind = \"anthropic\"",
        "anthropic_version = \"June 2023\"",
        "default_max_tokens = 0",
        "[[providers]]",
        "name = \"b\"",
        "kind = \"openai\"",
        "anthropic_version = \"2023-06-01\"",
        "protocol = \"anthropic\"",
        "[[providers]]",
        "name = \"c\"",
        "kind = \"mock\"",
        "protocol = \"grpc\"",
    ]));
    assert_eq!(e.len(), 5, "{e:#?}");
    assert_has(
        &e,
        4,
        "providers[0].anthropic_version",
        "\"June 2023\" is not an Anthropic API version",
    );
    assert_has(
        &e,
        5,
        "providers[0].default_max_tokens",
        "must be at least 1",
    );
    assert_has(
        &e,
        9,
        "providers[1].anthropic_version",
        "applies only to kind = \"anthropic\"",
    );
    assert_has(
        &e,
        10,
        "providers[1].protocol",
        "applies only to kind = \"mock\"",
    );
    assert_has(&e, 14, "providers[2].protocol", "unknown protocol \"grpc\"");
}
