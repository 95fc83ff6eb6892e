//! Tests of the config loader: the documented file shape, defaults, the
//! built-in example and loading from disk. [`errors`] checks the place (line
//! and key) of every kind of error; the helpers here serve both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sha2::Digest as _;

use super::*;

mod admission;
mod errors;
mod quota;
mod resil;
mod status;

const PRIMARY_SECRET: &str = "sk-primary-0123456789";
const ADMIN_SECRET: &str = "admin-token-9876543210";
const APP_SECRET: &str = "app-key-abcdef";

fn env(name: &str) -> Option<String> {
    match name {
        "PRIMARY_KEY" => Some(PRIMARY_SECRET.to_owned()),
        "LIFELINE_ADMIN_TOKEN" => Some(ADMIN_SECRET.to_owned()),
        "APP_KEY" => Some(APP_SECRET.to_owned()),
        "HOST" => Some("10.0.0.5:8000".to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

/// Joins lines so that `lines[i]` is line `i + 1` of the file.
fn doc(lines: &[&str]) -> String {
    lines.join("\n") + "\n"
}

fn parse(text: &str) -> Config {
    match Config::parse_with_env(text, "t.toml", &env) {
        Ok(config) => config,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn errors(text: &str) -> Vec<ConfigError> {
    match Config::parse_with_env(text, "t.toml", &env) {
        Ok(_) => panic!("expected errors, the config is valid:\n{text}"),
        Err(e) => e.0,
    }
}

/// Asserts that `errors` holds exactly one error, on `line` and `field`,
/// whose message contains `needle`.
fn assert_one(errors: &[ConfigError], line: usize, field: &str, needle: &str) {
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    assert_has(errors, line, field, needle);
}

fn assert_has(errors: &[ConfigError], line: usize, field: &str, needle: &str) {
    let found = errors
        .iter()
        .any(|e| e.line == Some(line) && e.field == field && e.message.contains(needle));
    assert!(
        found,
        "no error at line {line}, field {field:?}, containing {needle:?} in {errors:#?}"
    );
}

/// A valid tail to append to inputs that test other sections.
const MODELS: &[&str] = &[
    "[[providers]]",
    "name = \"p\"",
    "kind = \"mock\"",
    "[[models]]",
    "name = \"m\"",
    "tiers = [[{ provider = \"p\", model = \"x\" }]]",
];

/// `head` followed by [`MODELS`]; the lines of `head` keep their numbers.
fn with_models(head: &[&str]) -> String {
    let mut lines = head.to_vec();
    lines.extend_from_slice(MODELS);
    doc(&lines)
}

const FULL: &str = r#"
[server]
listen = "127.0.0.1:9080"
admin_listen = "127.0.0.1:9081"
max_body_bytes = 1048576
max_connections = 500
header_read_timeout_ms = 1000
body_read_timeout_ms = 2000
drain_timeout_ms = 3000
idle_timeout_ms = 4000
connect_timeout_ms = 100
first_byte_timeout_ms = 200
stream_idle_timeout_ms = 300
request_timeout_ms = 400
max_attempts = 5
backoff_base_ms = 10
backoff_max_ms = 20
retry_budget_ratio = 0.5
retry_budget_min_per_sec = 7
tier_wait_ms = 0
content_policy_fallback = true
adaptive_timeouts = false
adaptive_timeout_multiplier = 4.0
adaptive_timeout_floor_ms = 500

[admin]
token = "${LIFELINE_ADMIN_TOKEN}"

[health]
window_ms = 11
failure_rate = 0.25
min_requests = 12
consecutive_failures = 13
cooldown_ms = 14
max_cooldown_ms = 15
half_open_requests = 16
probe_interval_ms = 17
idle_probe_after_ms = 18
probe_timeout_ms = 19

[[providers]]
name = "primary"
kind = "openai-compatible"
base_url = "http://127.0.0.1:9001/v1/"
api_key = "${PRIMARY_KEY}"
max_concurrency = 256
probe_path = "/health"

[[providers]]
name = "secondary"
kind = "azure"
base_url = "https://example.openai.azure.com"
api_key = "Bearer-${PRIMARY_KEY}"
api_version = "2025-01-01"
probe_path = ""

[[providers]]
name = "backup"
kind = "mock"
[providers.mock]
name = "backup-mock"
tokens_per_second = 100.0
[providers.mock.faults]
latency_ms = 50

[[providers]]
name = "official"
kind = "openai"

[[models]]
name = "gpt-4o"
tiers = [
  [ { provider = "primary", model = "gpt-4o", weight = 3 },
    { provider = "secondary", model = "gpt-4o", weight = 1 } ],
  [ { provider = "backup", model = "llama-3.1-70b", context_window = 131072 } ],
]
first_byte_timeout_ms = 5000
max_attempts = 3
tier_wait_ms = 1500
adaptive_timeouts = true

[[models]]
name = "small"
tiers = [[ { provider = "official", model = "gpt-4o-mini" } ]]

[[keys]]
name = "app"
key = "${APP_KEY}"

[[keys]]
name = "ci"
sha256 = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
"#;

#[test]
fn full_example_parses_with_expected_values() {
    let c = parse(FULL);
    assert_eq!(c.source, None);
    let s = &c.server;
    assert_eq!(s.listen.to_string(), "127.0.0.1:9080");
    assert_eq!(
        s.admin_listen.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:9081")
    );
    assert_eq!((s.max_body_bytes, s.max_connections), (1_048_576, 500));
    assert_eq!(s.header_read_timeout, Duration::from_millis(1000));
    assert_eq!(s.body_read_timeout, Duration::from_millis(2000));
    assert_eq!(s.drain_timeout, Duration::from_millis(3000));
    assert_eq!(s.idle_timeout, Duration::from_millis(4000));
    let server_policy = RequestPolicy {
        connect_timeout: Duration::from_millis(100),
        first_byte_timeout: Duration::from_millis(200),
        stream_idle_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_millis(400),
        max_attempts: 5,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(20),
        retry_budget_ratio: 0.5,
        retry_budget_min_per_sec: 7,
        tier_wait: Duration::ZERO,
        content_policy_fallback: true,
        adaptive_timeouts: false,
        adaptive_multiplier: 4.0,
        adaptive_floor: Duration::from_millis(500),
        hedge: HedgePolicy::default(),
        degraded: DegradedPolicy::default(),
    };
    assert_eq!(s.defaults, server_policy);
    assert_eq!(
        c.admin.token.as_ref().map(Secret::expose),
        Some(ADMIN_SECRET)
    );

    let h = &c.health;
    assert_eq!(h.window, Duration::from_millis(11));
    assert_eq!(h.failure_rate, 0.25);
    assert_eq!(
        (h.min_requests, h.consecutive_failures, h.half_open_requests),
        (12, 13, 16)
    );
    assert_eq!(
        (h.cooldown, h.max_cooldown),
        (Duration::from_millis(14), Duration::from_millis(15))
    );
    assert_eq!(h.probe_interval, Duration::from_millis(17));
    assert_eq!(h.idle_probe_after, Duration::from_millis(18));
    assert_eq!(h.probe_timeout, Duration::from_millis(19));

    let primary = c.provider("primary").unwrap();
    assert_eq!(primary.kind, ProviderKind::OpenAiCompatible);
    assert_eq!(
        primary.base_url.as_deref(),
        Some("http://127.0.0.1:9001/v1")
    );
    assert_eq!(
        primary.api_key.as_ref().map(Secret::expose),
        Some(PRIMARY_SECRET)
    );
    assert_eq!(primary.max_concurrency, Some(256));
    assert_eq!(primary.probe_path.as_deref(), Some("/health"));
    assert!(primary.mock.is_none());

    let secondary = c.provider("secondary").unwrap();
    assert_eq!(secondary.kind, ProviderKind::Azure);
    assert_eq!(secondary.api_version, "2025-01-01");
    assert_eq!(secondary.probe_path, None);
    let embedded = format!("Bearer-{PRIMARY_SECRET}");
    assert_eq!(
        secondary.api_key.as_ref().map(Secret::expose),
        Some(embedded.as_str())
    );

    let backup = c.provider("backup").unwrap();
    assert_eq!(backup.kind, ProviderKind::Mock);
    assert_eq!(backup.base_url, None);
    let mock = backup.mock.as_ref().unwrap();
    assert_eq!(mock.name, "backup-mock");
    assert_eq!(mock.tokens_per_second, 100.0);
    assert_eq!(mock.faults.latency_ms, 50);

    let official = c.provider("official").unwrap();
    assert_eq!(
        official.base_url.as_deref(),
        Some("https://api.openai.com/v1")
    );

    let m = c.model("gpt-4o").unwrap();
    assert_eq!(m.tiers.len(), 2);
    assert_eq!(
        m.tiers[0],
        vec![
            DeploymentRef {
                provider: "primary".into(),
                model: "gpt-4o".into(),
                weight: 3,
                context_window: None,
                prefill: None,
            },
            DeploymentRef {
                provider: "secondary".into(),
                model: "gpt-4o".into(),
                weight: 1,
                context_window: None,
                prefill: None,
            },
        ]
    );
    assert_eq!(
        m.tiers[1],
        vec![DeploymentRef {
            provider: "backup".into(),
            model: "llama-3.1-70b".into(),
            weight: 1,
            context_window: Some(131_072),
            prefill: None,
        }]
    );
    // Overridden keys change, the rest come from [server].
    assert_eq!(m.policy.first_byte_timeout, Duration::from_millis(5000));
    assert_eq!(m.policy.max_attempts, 3);
    assert_eq!(m.policy.connect_timeout, Duration::from_millis(100));
    assert_eq!(m.policy.tier_wait, Duration::from_millis(1500));
    assert!(m.policy.adaptive_timeouts);
    assert!(m.policy.content_policy_fallback, "from [server]");
    assert_eq!(c.model("small").unwrap().policy, server_policy);
    assert!(c.model("nope").is_none());

    assert_eq!(c.keys.len(), 2);
    assert_eq!(c.keys[0].name, "app");
    let app_hash: [u8; 32] = sha2::Sha256::digest(APP_SECRET.as_bytes()).into();
    assert_eq!(c.keys[0].sha256, app_hash);
    // SHA-256("abc"), written in upper case.
    assert_eq!(c.keys[1].sha256[..4], [0xba, 0x78, 0x16, 0xbf]);
    assert_eq!(c.keys[1].sha256[31], 0xad);
}

#[test]
fn secrets_do_not_appear_in_debug_output() {
    let debug = format!("{:?}", parse(FULL));
    for secret in [PRIMARY_SECRET, ADMIN_SECRET, APP_SECRET] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
}

#[test]
fn defaults() {
    let c = parse(&doc(&[
        "[[providers]]",
        "name = \"o\"",
        "kind = \"openai\"",
        "[[models]]",
        "name = \"m\"",
        "tiers = [[{ provider = \"o\", model = \"x\" }]]",
    ]));
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.server.admin_listen, None);
    assert_eq!(c.server.max_body_bytes, 16 * 1024 * 1024);
    assert_eq!(c.server.max_connections, 10_000);
    assert_eq!(c.server.header_read_timeout, Duration::from_secs(10));
    assert_eq!(c.server.body_read_timeout, Duration::from_secs(30));
    assert_eq!(c.server.drain_timeout, Duration::from_secs(30));
    assert_eq!(c.server.idle_timeout, Duration::from_secs(60));
    assert_eq!(c.server.http2_keepalive, Duration::from_secs(20));
    assert_eq!(c.server.defaults, RequestPolicy::default());
    let cc = &c.server.concurrency;
    assert!(cc.adaptive);
    assert_eq!((cc.min_limit, cc.initial_limit, cc.max_limit), (2, 20, 256));
    assert_eq!(
        (cc.max_waiters, cc.max_wait),
        (128, Duration::from_secs(10))
    );
    assert!(c.admin.token.is_none());
    let d = HealthConfig::default();
    assert_eq!(
        format!("{:?}", c.health),
        format!("{d:?}"),
        "health defaults differ from HealthConfig::default()"
    );
    let p = &c.providers[0];
    assert_eq!(p.base_url.as_deref(), Some("https://api.openai.com/v1"));
    assert_eq!(p.api_key, None);
    assert_eq!(p.max_concurrency, None);
    assert_eq!(p.api_version, "2024-10-21");
    assert_eq!(p.probe_path.as_deref(), Some("/models"));
    assert_eq!(c.models[0].tiers[0][0].weight, 1);
    assert_eq!(c.models[0].policy, RequestPolicy::default());
    assert!(c.keys.is_empty());
}

#[test]
fn a_mock_without_settings_is_named_after_its_provider() {
    let c = parse(&with_models(&[]));
    let mock = c.providers[0].mock.as_ref().unwrap();
    assert_eq!(mock.name, "p");
}

#[test]
fn builtin_example_parses() {
    let c = example::example_config().unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(
        c.server.admin_listen.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:8081")
    );
    assert!(c.keys.is_empty());
    let names: Vec<_> = c.providers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["mock-a", "mock-b", "mock-c"]);
    let mock_names: Vec<_> = c
        .providers
        .iter()
        .map(|p| p.mock.as_ref().unwrap().name.as_str())
        .collect();
    assert_eq!(mock_names, ["mock-a", "mock-b", "mock-c"]);
    assert!(c.providers.iter().all(|p| p.kind == ProviderKind::Mock));
    let demo = c.model("demo").unwrap();
    let dep = |p: &str, m: &str| DeploymentRef {
        provider: p.into(),
        model: m.into(),
        weight: 1,
        context_window: None,
        prefill: None,
    };
    assert_eq!(
        demo.tiers,
        vec![
            vec![dep("mock-a", "demo-a"), dep("mock-b", "demo-b")],
            vec![dep("mock-c", "demo-c")]
        ]
    );
}

#[test]
fn display_names_file_line_and_field() {
    let e = ConfigError {
        file: "lifeline.toml".into(),
        line: Some(31),
        field: "models[0].tiers[1][0].provider".into(),
        message: "no such provider \"antrhopic\" (known: primary, backup)".into(),
    };
    assert_eq!(
        e.to_string(),
        "lifeline.toml:31: models[0].tiers[1][0].provider: no such provider \"antrhopic\" (known: primary, backup)"
    );
    let bare = ConfigError {
        file: "<built-in>".into(),
        line: None,
        field: String::new(),
        message: "boom".into(),
    };
    assert_eq!(bare.to_string(), "<built-in>: boom");
    let both = ConfigErrors(vec![e.clone(), bare]);
    assert_eq!(both.to_string().lines().count(), 2);
}

#[test]
fn base_url_expands_variables_and_loses_trailing_slashes() {
    let c = parse(&doc(&[
        "[[providers]]",
        "name = \"v\"",
        "kind = \"openai-compatible\"",
        "base_url = \"http://${HOST}/v1//\"",
        "[[models]]",
        "name = \"m\"",
        "tiers = [[{ provider = \"v\", model = \"x\" }]]",
    ]));
    assert_eq!(
        c.providers[0].base_url.as_deref(),
        Some("http://10.0.0.5:8000/v1")
    );
}

#[test]
fn load_reads_the_file_and_names_missing_ones() {
    let dir = std::env::temp_dir().join(format!("lifeline-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lifeline.toml");
    std::fs::write(&path, example::EXAMPLE_TOML).unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(c.source.as_deref(), Some(path.as_path()));

    let missing = dir.join("absent.toml");
    let e = Config::load(&missing).unwrap_err();
    assert_eq!(e.0.len(), 1);
    let text = e.to_string();
    assert!(text.starts_with(&missing.display().to_string()), "{text}");
    assert!(text.contains("cannot read the config file"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn errors_from_load_name_the_path() {
    let dir = std::env::temp_dir().join(format!("lifeline-config-test-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[server]\nlisten = \"x\"\n").unwrap();
    let e = Config::load(&path).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(e.0[0].file, path.display().to_string());
    assert_eq!(e.0[0].line, Some(2));
}

#[test]
fn listener_limits_have_defaults_and_can_be_set() {
    let s = parse(&with_models(&[])).server;
    assert_eq!(s.max_header_bytes, 64 * 1024);
    assert_eq!(s.max_json_depth, 64);
    assert_eq!(s.max_requests_per_connection, 10_000);
    assert_eq!(s.max_connection_age, Duration::from_secs(3600));
    assert_eq!(s.http2_max_concurrent_streams, 256);
    assert!(s.tls.is_none());
    let s = parse(&with_models(&[
        "[server]",
        "max_header_bytes = 16384",
        "max_json_depth = 10",
        "max_requests_per_connection = 5",
        "max_connection_age_ms = 1000",
        "http2_max_concurrent_streams = 8",
    ]))
    .server;
    assert_eq!(s.max_header_bytes, 16384);
    assert_eq!(s.max_json_depth, 10);
    assert_eq!(s.max_requests_per_connection, 5);
    assert_eq!(s.max_connection_age, Duration::from_secs(1));
    assert_eq!(s.http2_max_concurrent_streams, 8);
}

#[test]
fn anthropic_providers_get_their_defaults() {
    let text = r#"
[[providers]]
name = "claude"
kind = "anthropic"
api_key = "sk-ant"

[[providers]]
name = "claude-old"
kind = "anthropic"
base_url = "http://127.0.0.1:9/"
anthropic_version = "2023-01-01"
default_max_tokens = 1024
probe_path = ""

[[models]]
name = "m"
tiers = [[{ provider = "claude", model = "claude-x" }, { provider = "claude-old", model = "claude-y" }]]
"#;
    let c = Config::parse(text, "<test>").unwrap();
    let p = c.provider("claude").unwrap();
    assert_eq!(p.kind, ProviderKind::Anthropic);
    assert_eq!(p.base_url.as_deref(), Some("https://api.anthropic.com"));
    assert_eq!(p.probe_path.as_deref(), Some("/v1/models"));
    assert_eq!(
        p.anthropic,
        Some(AnthropicSettings {
            version: "2023-06-01".into(),
            default_max_tokens: 4096
        })
    );
    let p = c.provider("claude-old").unwrap();
    assert_eq!(p.base_url.as_deref(), Some("http://127.0.0.1:9"));
    assert_eq!(p.probe_path, None);
    assert_eq!(
        p.anthropic,
        Some(AnthropicSettings {
            version: "2023-01-01".into(),
            default_max_tokens: 1024
        })
    );
}

#[cfg(feature = "simulated")]
#[test]
fn a_simulated_provider_may_speak_anthropic() {
    let text = r#"
[[providers]]
name = "sim"
kind = "mock"
protocol = "anthropic"

[[providers]]
name = "plain"
kind = "mock"
protocol = "openai"

[[models]]
name = "m"
tiers = [[{ provider = "sim", model = "claude-x" }, { provider = "plain", model = "x" }]]
"#;
    let c = Config::parse(text, "<test>").unwrap();
    let sim = c.provider("sim").unwrap();
    assert_eq!(sim.kind, ProviderKind::Mock);
    assert!(sim.anthropic.is_some());
    assert_eq!(sim.probe_path.as_deref(), Some("/v1/models"));
    let plain = c.provider("plain").unwrap();
    assert!(plain.anthropic.is_none());
    assert_eq!(plain.probe_path.as_deref(), Some("/models"));
}
