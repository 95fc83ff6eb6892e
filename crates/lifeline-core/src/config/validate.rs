//! From [`RawConfig`] to [`Config`]: defaults, checks, secrets, references.
//!
//! Every check records its error and carries on with a stand-in value, so
//! that one run reports every problem of the file; only at the end does a
//! non-empty error list win over the half-built [`Config`]. Each error names
//! the line of the offending value (from its [`Spanned`] position) and its key
//! path, and errors come out sorted by line.
//!
//! This file holds the entry point, the shared helpers, and the sections of
//! plain numbers (`[server]`, per-model policies, `[health]`);
//! [`upstreams`] checks `[[providers]]` and `[[models]]` and resolves the
//! references between them; [`secrets`] expands `${VAR}` and hashes client
//! keys, and is the only place that sees a secret's value; [`status`]
//! checks `[store]` and `[status]` (the status page's components, SLOs and
//! provider feeds, and their references to models and providers);
//! [`admission`] checks `[admission]`; [`resil`] the keys of hedged
//! requests and degraded mode.

mod admission;
mod concurrency;
mod early_warning;
mod quota;
mod resil;
mod secrets;
mod status;
mod tls;
mod upstreams;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use toml::Spanned;

use super::model::*;
use super::raw::{self, RawConfig, RawHealth, RawPolicy, RawServer};
use super::ConfigError;

const DEFAULT_LISTEN: ([u8; 4], u16) = ([127, 0, 0, 1], 8080);
const MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;
const MAX_CONNECTIONS: u64 = 10_000;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const HTTP2_KEEPALIVE: Duration = Duration::from_secs(20);
/// Largest request head: 64 KiB (hyper's own is ~400 KiB; nginx's 32 KiB).
const MAX_HEADER_BYTES: u64 = 64 * 1024;
/// hyper's smallest read buffer: a head limit below it cannot be set.
const MIN_HEADER_BYTES: u64 = 8192;
const MAX_JSON_DEPTH: u64 = 64;
/// serde_json's recursion limit: deeper bodies fail to parse whatever is set.
const MAX_JSON_DEPTH_CAP: u64 = 128;
const MAX_REQUESTS_PER_CONNECTION: u64 = 10_000;
const MAX_CONNECTION_AGE: Duration = Duration::from_secs(3600);
const HTTP2_MAX_CONCURRENT_STREAMS: u64 = 256;
/// Most attempts per request: more only multiplies load on a struggling upstream.
const MAX_ATTEMPTS: u32 = 10;
/// Largest `retry_budget_ratio`: ten retries per request is already a retry storm.
const MAX_RETRY_BUDGET_RATIO: f64 = 10.0;
/// Bounds of `adaptive_timeout_multiplier`: below 1 a deployment would be
/// abandoned before its own p99; far above, the deadline is the configured one.
const ADAPTIVE_MULTIPLIER: std::ops::RangeInclusive<f64> = 1.0..=100.0;

/// Validates `raw`, parsed from `text`, with `env` for `${VAR}`.
pub(super) fn validate(
    raw: RawConfig,
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<ConfigError>> {
    let mut v = Validator {
        text,
        file,
        env,
        errors: Vec::new(),
    };
    let server = v.server(&raw.server);
    let token = raw.admin.token.as_ref();
    let admin = AdminConfig {
        token: token.and_then(|t| v.secret(t, "admin.token")),
    };
    v.admin_exposure(&raw.server, &server, admin.token.is_some());
    let health = v.health(&raw.health);
    let providers = v.providers(raw.providers);
    let models = v.models(&raw.models, &providers, &server.defaults);
    let keys = v.keys(&raw.keys, &models);
    if let (AuthMode::None, Some(auth), Some(first)) =
        (server.auth, raw.server.auth.as_ref(), raw.keys.first())
    {
        let line = raw::line_at(text, first.span().start);
        let msg = format!(
            "is \"none\", but [[keys]] are configured (line {line}): remove them, or set auth = \"keys\""
        );
        v.at(auth, "server.auth", msg);
    }
    let store = v.store(&raw.store);
    let status = v.status(
        &raw.status,
        &server,
        &models,
        &providers,
        (&raw.store, &store),
    );
    let admission = v.admission(&raw.admission, &server);
    if v.errors.is_empty() {
        Ok(Config {
            server,
            admin,
            health,
            providers,
            models,
            keys,
            store,
            status,
            admission,
            source: None,
        })
    } else {
        // Stable: errors on one line keep the order they were found in.
        v.errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        Err(v.errors)
    }
}

/// Collects errors while the sections are checked one by one.
struct Validator<'a> {
    text: &'a str,
    file: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<ConfigError>,
}

impl Validator<'_> {
    /// Records an error about the whole file or a whole table (`line` unknown).
    fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(None, field.into(), message.into());
    }

    /// Records an error on the line of `value`.
    fn at<T>(&mut self, value: &Spanned<T>, field: impl Into<String>, message: impl Into<String>) {
        let line = raw::line_at(self.text, value.span().start);
        self.push(Some(line), field.into(), message.into());
    }

    fn push(&mut self, line: Option<usize>, field: String, message: String) {
        let file = self.file.to_owned();
        self.errors.push(ConfigError {
            file,
            line,
            field,
            message,
        });
    }

    fn server(&mut self, raw: &RawServer) -> ServerConfig {
        let default_listen = SocketAddr::from(DEFAULT_LISTEN);
        let listen = raw
            .listen
            .as_ref()
            .and_then(|l| self.socket_addr(l, "server.listen"));
        let listen = listen.unwrap_or(default_listen);
        let admin_listen = raw.admin_listen.as_ref().and_then(|l| {
            let addr = self.socket_addr(l, "server.admin_listen")?;
            if addr == listen && addr.port() != 0 {
                let msg = "is the same address as server.listen; give the admin API its own port";
                self.at(l, "server.admin_listen", msg);
            }
            Some(addr)
        });
        let status_listen = raw.status_listen.as_ref().and_then(|l| {
            let addr = self.socket_addr(l, "server.status_listen")?;
            let taken = [
                (Some(listen), "server.listen"),
                (admin_listen, "server.admin_listen"),
            ];
            for (other, name) in taken {
                if other == Some(addr) && addr.port() != 0 {
                    let msg =
                        format!("is the same address as {name}; give the status page its own port");
                    self.at(l, "server.status_listen", msg);
                }
            }
            Some(addr)
        });
        let body = self.nonzero(&raw.max_body_bytes, "server.max_body_bytes", MAX_BODY_BYTES);
        let conns = self.nonzero(
            &raw.max_connections,
            "server.max_connections",
            MAX_CONNECTIONS,
        );
        ServerConfig {
            listen,
            admin_listen,
            status_listen,
            max_body_bytes: usize::try_from(body).unwrap_or(usize::MAX),
            max_connections: usize::try_from(conns).unwrap_or(usize::MAX),
            header_read_timeout: self.duration(
                &raw.header_read_timeout_ms,
                "server.header_read_timeout_ms",
                HEADER_READ_TIMEOUT,
            ),
            body_read_timeout: self.duration(
                &raw.body_read_timeout_ms,
                "server.body_read_timeout_ms",
                BODY_READ_TIMEOUT,
            ),
            drain_timeout: self.duration(
                &raw.drain_timeout_ms,
                "server.drain_timeout_ms",
                DRAIN_TIMEOUT,
            ),
            idle_timeout: self.duration(
                &raw.idle_timeout_ms,
                "server.idle_timeout_ms",
                IDLE_TIMEOUT,
            ),
            http2_keepalive: self.duration(
                &raw.http2_keepalive_ms,
                "server.http2_keepalive_ms",
                HTTP2_KEEPALIVE,
            ),
            auth: self.auth_mode(raw.auth.as_ref()),
            ip: self.ip_limits(raw),
            max_header_bytes: usize::try_from(self.within(
                &raw.max_header_bytes,
                "server.max_header_bytes",
                MIN_HEADER_BYTES..=u64::from(u32::MAX),
                MAX_HEADER_BYTES,
            ))
            .unwrap_or(usize::MAX),
            max_json_depth: usize::try_from(self.within(
                &raw.max_json_depth,
                "server.max_json_depth",
                1..=MAX_JSON_DEPTH_CAP,
                MAX_JSON_DEPTH,
            ))
            .unwrap_or(usize::MAX),
            max_requests_per_connection: self.nonzero(
                &raw.max_requests_per_connection,
                "server.max_requests_per_connection",
                MAX_REQUESTS_PER_CONNECTION,
            ),
            max_connection_age: self.duration(
                &raw.max_connection_age_ms,
                "server.max_connection_age_ms",
                MAX_CONNECTION_AGE,
            ),
            http2_max_concurrent_streams: u32::try_from(self.within(
                &raw.http2_max_concurrent_streams,
                "server.http2_max_concurrent_streams",
                1..=u64::from(u32::MAX),
                HTTP2_MAX_CONCURRENT_STREAMS,
            ))
            .unwrap_or(u32::MAX),
            tls: self.tls(raw),
            defaults: self.policy(&raw.policy(), "server", &RequestPolicy::default()),
            concurrency: self.concurrency(raw),
            degraded_cache_bytes: self.degraded_cache_bytes(raw),
        }
    }

    fn ip_limits(&mut self, raw: &RawServer) -> IpLimitConfig {
        let d = IpLimitConfig::default();
        let mut trusted_proxies = Vec::new();
        for (i, p) in raw
            .trusted_proxies
            .iter()
            .flat_map(|l| l.get_ref())
            .enumerate()
        {
            match Cidr::parse(p.get_ref()) {
                Some(c) => trusted_proxies.push(c),
                None => {
                    let msg = format!(
                        "{:?} is not an address or a CIDR block (write e.g. \"10.0.0.0/8\" or \"127.0.0.1\")",
                        p.get_ref()
                    );
                    self.at(p, format!("server.trusted_proxies[{i}]"), msg);
                }
            }
        }
        let requests_per_minute = raw.ip_requests_per_minute.as_ref().map(|_| {
            self.nonzero(
                &raw.ip_requests_per_minute,
                "server.ip_requests_per_minute",
                1,
            )
        });
        let table = self.nonzero(
            &raw.ip_table_size,
            "server.ip_table_size",
            d.table_size as u64,
        );
        IpLimitConfig {
            trusted_proxies,
            requests_per_minute,
            auth_failures_per_minute: self.nonzero(
                &raw.ip_auth_failures_per_minute,
                "server.ip_auth_failures_per_minute",
                d.auth_failures_per_minute,
            ),
            lockout_max: self.duration(
                &raw.ip_lockout_max_ms,
                "server.ip_lockout_max_ms",
                d.lockout_max,
            ),
            table_size: usize::try_from(table).unwrap_or(usize::MAX),
        }
    }

    fn auth_mode(&mut self, raw: Option<&Spanned<String>>) -> AuthMode {
        match raw.map(|r| r.get_ref().as_str()) {
            None | Some("keys") => AuthMode::Keys,
            Some("none") => AuthMode::None,
            Some(other) => {
                let msg = format!("must be \"keys\" or \"none\", got {other:?}");
                if let Some(r) = raw {
                    self.at(r, "server.auth", msg);
                }
                AuthMode::Keys
            }
        }
    }

    /// `tls_cert` and `tls_key`: both or neither; the files are read and
    /// checked here, so that `lifeline check` and a reload report a bad
    /// certificate (a reload then keeps the running one).
    fn tls(&mut self, raw: &RawServer) -> Option<TlsFiles> {
        let (cert, key) = match (&raw.tls_cert, &raw.tls_key) {
            (None, None) => return None,
            (Some(c), Some(k)) => (c, k),
            (Some(c), None) => {
                self.at(c, "server.tls_cert", "needs server.tls_key as well");
                return None;
            }
            (None, Some(k)) => {
                self.at(k, "server.tls_key", "needs server.tls_cert as well");
                return None;
            }
        };
        let paths = (
            std::path::PathBuf::from(cert.get_ref()),
            std::path::PathBuf::from(key.get_ref()),
        );
        match tls::load(&paths.0, &paths.1) {
            Ok(certified) => Some(TlsFiles {
                cert: paths.0,
                key: paths.1,
                certified: std::sync::Arc::new(certified),
            }),
            Err(tls::LoadError::Cert(msg)) => {
                self.at(cert, "server.tls_cert", msg);
                None
            }
            Err(tls::LoadError::Key(msg)) => {
                self.at(key, "server.tls_key", msg);
                None
            }
        }
    }

    /// The admin API on a non-loopback address needs both TLS (its token
    /// would otherwise cross the network in clear) and a token.
    fn admin_exposure(&mut self, raw: &RawServer, server: &ServerConfig, token: bool) {
        let (Some(addr), Some(at)) = (server.admin_listen, raw.admin_listen.as_ref()) else {
            return;
        };
        if addr.ip().is_loopback() {
            return;
        }
        let mut missing = Vec::new();
        if server.tls.is_none() && raw.tls_cert.is_none() {
            missing.push("TLS (server.tls_cert and server.tls_key)");
        }
        if !token {
            missing.push("an admin token (admin.token)");
        }
        if !missing.is_empty() {
            let msg = format!(
                "{addr} is not a loopback address: the admin API is served beyond this host only with {}",
                missing.join(" and ")
            );
            self.at(at, "server.admin_listen", msg);
        }
    }

    fn socket_addr(&mut self, raw: &Spanned<String>, field: &str) -> Option<SocketAddr> {
        let parsed = raw.get_ref().parse::<SocketAddr>().ok();
        if parsed.is_none() {
            let msg = format!(
                "{:?} is not a socket address (write IP:port, e.g. 127.0.0.1:8080 or [::1]:8080)",
                raw.get_ref()
            );
            self.at(raw, field, msg);
        }
        parsed
    }

    /// `base` overridden by the keys of `raw`; `prefix` is `server` or `models[i]`.
    fn policy(&mut self, raw: &RawPolicy, prefix: &str, base: &RequestPolicy) -> RequestPolicy {
        let f = |key: &str| format!("{prefix}.{key}");
        let max_attempts = match &raw.max_attempts {
            Some(n) if !(1..=MAX_ATTEMPTS).contains(n.get_ref()) => {
                let msg = format!(
                    "must be between 1 and {MAX_ATTEMPTS} (the first attempt counts), got {}",
                    n.get_ref()
                );
                self.at(n, f("max_attempts"), msg);
                base.max_attempts
            }
            Some(n) => *n.get_ref(),
            None => base.max_attempts,
        };
        let retry_budget_ratio = match &raw.retry_budget_ratio {
            Some(r) if !(0.0..=MAX_RETRY_BUDGET_RATIO).contains(r.get_ref()) => {
                let msg = format!(
                    "must be between 0 and {MAX_RETRY_BUDGET_RATIO} (retries per request), got {}",
                    r.get_ref()
                );
                self.at(r, f("retry_budget_ratio"), msg);
                base.retry_budget_ratio
            }
            Some(r) => *r.get_ref(),
            None => base.retry_budget_ratio,
        };
        let min_per_sec = raw.retry_budget_min_per_sec.as_ref().map(|n| *n.get_ref());
        let adaptive_multiplier = match &raw.adaptive_timeout_multiplier {
            Some(m) if !ADAPTIVE_MULTIPLIER.contains(m.get_ref()) => {
                let msg = format!(
                    "must be between {} and {} (times the recent p99 latency), got {}",
                    ADAPTIVE_MULTIPLIER.start(),
                    ADAPTIVE_MULTIPLIER.end(),
                    m.get_ref()
                );
                self.at(m, f("adaptive_timeout_multiplier"), msg);
                base.adaptive_multiplier
            }
            Some(m) => *m.get_ref(),
            None => base.adaptive_multiplier,
        };
        let flag =
            |v: &Option<Spanned<bool>>, base: bool| v.as_ref().map_or(base, |b| *b.get_ref());
        let policy = RequestPolicy {
            connect_timeout: self.duration(
                &raw.connect_timeout_ms,
                &f("connect_timeout_ms"),
                base.connect_timeout,
            ),
            first_byte_timeout: self.duration(
                &raw.first_byte_timeout_ms,
                &f("first_byte_timeout_ms"),
                base.first_byte_timeout,
            ),
            stream_idle_timeout: self.duration(
                &raw.stream_idle_timeout_ms,
                &f("stream_idle_timeout_ms"),
                base.stream_idle_timeout,
            ),
            request_timeout: self.duration(
                &raw.request_timeout_ms,
                &f("request_timeout_ms"),
                base.request_timeout,
            ),
            max_attempts,
            backoff_base: self.duration(
                &raw.backoff_base_ms,
                &f("backoff_base_ms"),
                base.backoff_base,
            ),
            backoff_max: self.duration(&raw.backoff_max_ms, &f("backoff_max_ms"), base.backoff_max),
            retry_budget_ratio,
            retry_budget_min_per_sec: min_per_sec.unwrap_or(base.retry_budget_min_per_sec),
            // Zero is meaningful: descend at once, as before tiers waited.
            tier_wait: raw
                .tier_wait_ms
                .as_ref()
                .map_or(base.tier_wait, |ms| Duration::from_millis(*ms.get_ref())),
            content_policy_fallback: flag(
                &raw.content_policy_fallback,
                base.content_policy_fallback,
            ),
            adaptive_timeouts: flag(&raw.adaptive_timeouts, base.adaptive_timeouts),
            adaptive_multiplier,
            adaptive_floor: self.duration(
                &raw.adaptive_timeout_floor_ms,
                &f("adaptive_timeout_floor_ms"),
                base.adaptive_floor,
            ),
            hedge: self.hedge_policy(raw, prefix, &base.hedge),
            degraded: self.degraded_policy(raw, prefix, &base.degraded),
        };
        if policy.backoff_base > policy.backoff_max {
            let msg = format!(
                "backoff_base_ms ({} ms) must not exceed backoff_max_ms ({} ms)",
                policy.backoff_base.as_millis(),
                policy.backoff_max.as_millis()
            );
            let pair = [
                (&raw.backoff_base_ms, "backoff_base_ms"),
                (&raw.backoff_max_ms, "backoff_max_ms"),
            ];
            self.blame_pair(pair, prefix, msg);
        }
        policy
    }

    fn health(&mut self, raw: &RawHealth) -> HealthConfig {
        let d = HealthConfig::default();
        let failure_rate = match &raw.failure_rate {
            Some(r) if !(*r.get_ref() > 0.0 && *r.get_ref() <= 1.0) => {
                let msg = format!(
                    "must be in (0, 1], a fraction of failed attempts, got {}",
                    r.get_ref()
                );
                self.at(r, "health.failure_rate", msg);
                d.failure_rate
            }
            Some(r) => *r.get_ref(),
            None => d.failure_rate,
        };
        let health = HealthConfig {
            window: self.duration(&raw.window_ms, "health.window_ms", d.window),
            failure_rate,
            min_requests: self.nonzero(&raw.min_requests, "health.min_requests", d.min_requests),
            consecutive_failures: self.nonzero(
                &raw.consecutive_failures,
                "health.consecutive_failures",
                d.consecutive_failures,
            ),
            cooldown: self.duration(&raw.cooldown_ms, "health.cooldown_ms", d.cooldown),
            max_cooldown: self.duration(
                &raw.max_cooldown_ms,
                "health.max_cooldown_ms",
                d.max_cooldown,
            ),
            half_open_requests: self.nonzero(
                &raw.half_open_requests,
                "health.half_open_requests",
                d.half_open_requests,
            ),
            probe_interval: self.duration(
                &raw.probe_interval_ms,
                "health.probe_interval_ms",
                d.probe_interval,
            ),
            idle_probe_after: self.duration(
                &raw.idle_probe_after_ms,
                "health.idle_probe_after_ms",
                d.idle_probe_after,
            ),
            probe_timeout: self.duration(
                &raw.probe_timeout_ms,
                "health.probe_timeout_ms",
                d.probe_timeout,
            ),
            early_warning: self.early_warning(raw),
        };
        if health.cooldown > health.max_cooldown {
            let msg = format!(
                "cooldown_ms ({} ms) must not exceed max_cooldown_ms ({} ms)",
                health.cooldown.as_millis(),
                health.max_cooldown.as_millis()
            );
            let pair = [
                (&raw.cooldown_ms, "cooldown_ms"),
                (&raw.max_cooldown_ms, "max_cooldown_ms"),
            ];
            self.blame_pair(pair, "health", msg);
        }
        health
    }

    /// Reports a broken relation between two keys on the first of them that
    /// this table sets. When it sets neither, both came from elsewhere (the
    /// built-in defaults, or `[server]` for a model), where it was reported.
    fn blame_pair(&mut self, pair: [(&Option<Spanned<u64>>, &str); 2], prefix: &str, msg: String) {
        if let Some((value, key)) = pair.iter().find_map(|(v, k)| v.as_ref().map(|v| (v, *k))) {
            self.at(value, format!("{prefix}.{key}"), msg);
        }
    }

    /// A non-empty name.
    fn name(&mut self, raw: &Spanned<String>, field: &str) -> String {
        if raw.get_ref().trim().is_empty() {
            self.at(raw, field, "must not be empty");
        }
        raw.get_ref().clone()
    }

    /// Records `name` (entry `i` of `list`, e.g. "providers") in `seen`, or
    /// reports it as a duplicate of an earlier entry.
    fn unique(
        &mut self,
        seen: &mut HashMap<String, usize>,
        raw: &Spanned<String>,
        list: &str,
        i: usize,
    ) {
        let name = raw.get_ref();
        if let Some(first) = seen.get(name) {
            // "providers" → "provider name", "models" → "model name", ...
            let what = list.strip_suffix('s').unwrap_or(list);
            let msg = format!("duplicate {what} name {name:?} (also {list}[{first}])");
            self.at(raw, format!("{list}[{i}].name"), msg);
        } else if !name.trim().is_empty() {
            seen.insert(name.clone(), i);
        }
    }

    /// A count that must be at least 1 (zero is `T::default()`).
    fn nonzero<T: Copy + Default + PartialEq>(
        &mut self,
        raw: &Option<Spanned<T>>,
        field: &str,
        default: T,
    ) -> T {
        match raw {
            Some(n) if *n.get_ref() == T::default() => {
                self.at(n, field, "must be at least 1");
                default
            }
            Some(n) => *n.get_ref(),
            None => default,
        }
    }

    /// A number that must lie in `range`.
    fn within(
        &mut self,
        raw: &Option<Spanned<u64>>,
        field: &str,
        range: std::ops::RangeInclusive<u64>,
        default: u64,
    ) -> u64 {
        match raw {
            Some(n) if !range.contains(n.get_ref()) => {
                let msg = format!(
                    "must be between {} and {}, got {}",
                    range.start(),
                    range.end(),
                    n.get_ref()
                );
                self.at(n, field, msg);
                default
            }
            Some(n) => *n.get_ref(),
            None => default,
        }
    }

    /// A duration in milliseconds that must be above zero.
    fn duration(&mut self, raw: &Option<Spanned<u64>>, field: &str, default: Duration) -> Duration {
        match raw {
            Some(ms) if *ms.get_ref() == 0 => {
                self.at(ms, field, "must be above 0 ms");
                default
            }
            Some(ms) => Duration::from_millis(*ms.get_ref()),
            None => default,
        }
    }
}
