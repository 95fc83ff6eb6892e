//! What a chaos run does with the config it is given: the copy of it that
//! runs against simulated providers, the client keys the traffic uses, the
//! providers each [`Target`] names, and the traffic mix.
//!
//! The copy is made on the validated [`Config`], not on its text: every
//! provider keeps its tiers, weights, policies and model settings, and only
//! what points outside the run changes. Each provider points at a
//! `lifeline_mock` server of its own (Anthropic's protocol for a provider
//! that speaks it; `kind = "mock"` providers become OpenAI-compatible ones),
//! credentials are dummies, listeners are on `127.0.0.1:0`, the admin API
//! and TLS are off, the store is a file in the scenario's temporary
//! directory, the status page's clock runs 60× with the providers' group
//! shown (so incidents open and resolve within a scenario), its upstream
//! feeds are dropped (no network), and degraded mode is on for every model
//! that does not configure it. Client keys are switched on (`auth = "keys"`)
//! with the run's own keys added, one per priority, and an abusive client's
//! key limited to [`ABUSER_RPM`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use lifeline_core::config::{AuthMode, KeyConfig, Priority, ProviderKind, Secret, StoreBackend};
use lifeline_core::Config;
use lifeline_mock::{MockConfig, MockHandle};
use sha2::Digest;

use super::scenario::Target;

/// The abusive key's `rpm`: what an operator gives a tenant's key, far
/// below what its flood sends.
pub const ABUSER_RPM: u64 = 60;

/// A client key the traffic sends.
#[derive(Clone, Debug)]
pub struct ClientKey {
    /// Its name in `[[keys]]`.
    pub name: String,
    /// The bearer token.
    pub secret: String,
    /// Its priority class.
    pub priority: Priority,
}

/// One public model the traffic calls, and what it serves.
#[derive(Clone, Debug)]
pub struct TrafficModel {
    /// The public name.
    pub name: String,
    /// Whether `/v1/embeddings` is sent to it (every deployment speaks
    /// OpenAI's protocol, which has embeddings).
    pub embeddings: bool,
}

/// The run's view of the config.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The config as loaded.
    pub base: Config,
    /// The keys the traffic uses (critical, standard ×2, batch).
    pub keys: Vec<ClientKey>,
    /// The key an abusive client floods with (standard, limited to
    /// [`ABUSER_RPM`] like any tenant's key), used only by the flood.
    pub abuser: ClientKey,
    /// The models the traffic calls.
    pub models: Vec<TrafficModel>,
    /// The first model: the one the targets are chosen in.
    pub primary_model: String,
    /// Provider names, in config order.
    pub providers: Vec<String>,
    /// Tier count of the primary model.
    pub primary_tiers: usize,
    /// Providers of the primary model's first tier.
    pub first_tier: Vec<String>,
}

impl Plan {
    /// Plans a run on `base`. Errors when it has no model.
    pub fn new(base: Config) -> anyhow::Result<Plan> {
        let Some(primary) = base.models.first() else {
            anyhow::bail!("the config has no [[models]]: there is nothing to send traffic to");
        };
        let mut first_tier: Vec<(u32, String)> = primary
            .tiers
            .first()
            .map(|t| t.iter().map(|d| (d.weight, d.provider.clone())).collect())
            .unwrap_or_default();
        // Heaviest first (stable: config order among equals), no duplicates.
        first_tier.sort_by_key(|d| std::cmp::Reverse(d.0));
        let mut tier: Vec<String> = Vec::new();
        for (_, p) in first_tier {
            if !tier.contains(&p) {
                tier.push(p);
            }
        }
        let models = base
            .models
            .iter()
            .map(|m| TrafficModel {
                name: m.name.clone(),
                embeddings: m.tiers.iter().flatten().all(|d| {
                    base.provider(&d.provider)
                        .is_some_and(|p| p.anthropic.is_none())
                }),
            })
            .collect();
        let key = |(name, priority): (&str, Priority)| {
            let mut bytes = [0u8; 12];
            fill_random(&mut bytes);
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            ClientKey {
                name: format!("chaos-{name}"),
                secret: format!("sk-chaos-{name}-{hex}"),
                priority,
            }
        };
        let keys = [
            ("critical", Priority::Critical),
            ("standard-a", Priority::Standard),
            ("standard-b", Priority::Standard),
            ("batch", Priority::Batch),
        ]
        .into_iter()
        .map(key)
        .collect();
        let abuser = key(("abuser", Priority::Standard));
        Ok(Plan {
            abuser,
            primary_model: primary.name.clone(),
            primary_tiers: primary.tiers.len(),
            first_tier: tier,
            providers: base.providers.iter().map(|p| p.name.clone()).collect(),
            models,
            keys,
            base,
        })
    }

    /// The provider names a target names.
    pub fn targets(&self, target: Target) -> Vec<String> {
        match target {
            Target::Primary => self.first_tier.iter().take(1).cloned().collect(),
            Target::FirstTier => self.first_tier.clone(),
            Target::All => self.providers.clone(),
            Target::Gateway => Vec::new(),
        }
    }

    /// The simulated provider's settings for provider `name`: its own
    /// `[providers.mock]` without faults (and answers of at least 16
    /// tokens), or the defaults named after it.
    pub fn mock_config(&self, name: &str) -> MockConfig {
        let own = self.base.provider(name).and_then(|p| p.mock.clone());
        let mut cfg = own.unwrap_or_else(|| MockConfig {
            name: name.to_string(),
            ..MockConfig::default()
        });
        cfg.faults = lifeline_mock::Faults::default();
        // Anthropic's API answers at most this many words whatever
        // `max_tokens` says: at least the traffic's largest `max_tokens`,
        // so every answer's length is the one the request asked for.
        cfg.completion_tokens = cfg.completion_tokens.max(16);
        cfg
    }

    /// The config the scenario's gateway runs: see the module docs.
    pub fn chaos_config(&self, mocks: &BTreeMap<String, MockHandle>, store: &Path) -> Config {
        let mut c = self.base.clone();
        let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        c.server.listen = loopback;
        c.server.admin_listen = None;
        c.server.status_listen = None;
        c.server.tls = None;
        c.server.auth = AuthMode::Keys;
        c.server.ip.requests_per_minute = None;
        c.admin.token = None;
        for p in &mut c.providers {
            let Some(m) = mocks.get(&p.name) else {
                continue;
            };
            if p.anthropic.is_some() {
                p.kind = ProviderKind::Anthropic;
                let url = m.base_url();
                p.base_url = Some(url.strip_suffix("/v1").unwrap_or(&url).to_string());
            } else {
                p.kind = ProviderKind::OpenAiCompatible;
                p.base_url = Some(m.base_url());
            }
            p.api_key = Some(Secret::new("chaos-dummy-credential"));
            p.mock = None;
        }
        for m in &mut c.models {
            if !m.policy.degraded.enabled {
                m.policy.degraded.enabled = true;
            }
        }
        c.keys.extend(self.keys.iter().map(|k| KeyConfig {
            name: k.name.clone(),
            sha256: sha2::Sha256::digest(k.secret.as_bytes()).into(),
            priority: k.priority,
            rpm: None,
            tpm: None,
            models: Vec::new(),
        }));
        c.keys.push(KeyConfig {
            name: self.abuser.name.clone(),
            sha256: sha2::Sha256::digest(self.abuser.secret.as_bytes()).into(),
            priority: self.abuser.priority,
            rpm: Some(ABUSER_RPM),
            tpm: None,
            models: Vec::new(),
        });
        c.store.url = format!("sqlite://{}", store.display());
        c.store.backend = StoreBackend::Sqlite(store.to_path_buf());
        c.status.enabled = true;
        c.status.clock_speed = 60;
        c.status.show_providers = true;
        c.status.publish_automatic = true;
        c.status.open_after = Duration::from_secs(60);
        c.status.resolve_after = Duration::from_secs(120);
        c.status.static_dir = None;
        c.status.upstream.clear();
        c.source = None;
        c
    }
}

/// Random bytes for key secrets; a clock-seeded fallback if the OS has none.
fn fill_random(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        for b in buf.iter_mut() {
            *b = fastrand::u8(..);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use lifeline_mock::MockServer;

    const CONFIG: &str = r#"[server]
listen = "127.0.0.1:8080"
admin_listen = "127.0.0.1:8081"
auth = "none"

[[providers]]
name = "openai"
kind = "openai"
api_key = "${OPENAI_API_KEY}"

[[providers]]
name = "claude"
kind = "anthropic"
api_key = "${ANTHROPIC_API_KEY}"

[[providers]]
name = "sim"
kind = "mock"
[providers.mock]
name = "sim"
tokens_per_second = 50.0
[providers.mock.faults]
error_rate = 0.5

[[models]]
name = "chat"
tiers = [ [ { provider = "openai", model = "gpt", weight = 1 }, { provider = "sim", model = "s", weight = 3 } ],
          [ { provider = "claude", model = "c" } ] ]
"#;

    /// Every provider points at its simulated one in its own protocol,
    /// with a dummy credential; tiers and weights stay; keys are required
    /// and the run's added; the store is the given file; the heaviest
    /// deployment of tier 1 is the primary target.
    #[tokio::test]
    async fn the_chaos_copy_keeps_the_models_and_replaces_the_providers() {
        let env = |name: &str| Some(format!("secret-{name}"));
        let base = Config::parse_with_env(CONFIG, "t.toml", &env).unwrap();
        let plan = Plan::new(base).unwrap();
        assert_eq!(plan.targets(Target::Primary), ["sim"]);
        assert_eq!(plan.targets(Target::FirstTier), ["sim", "openai"]);
        assert_eq!(plan.targets(Target::All), ["openai", "claude", "sim"]);
        assert_eq!(plan.mock_config("sim").tokens_per_second, 50.0);
        assert_eq!(
            plan.mock_config("sim").faults,
            lifeline_mock::Faults::default()
        );
        assert!(!plan.models[0].embeddings, "claude has no embeddings");

        let mut mocks = BTreeMap::new();
        for name in &plan.providers {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
            mocks.insert(
                name.clone(),
                MockServer::start(addr, plan.mock_config(name))
                    .await
                    .unwrap(),
            );
        }
        let c = plan.chaos_config(&mocks, Path::new("/tmp/x/status.db"));
        let p = |n: &str| c.provider(n).unwrap().clone();
        assert_eq!(p("openai").kind, ProviderKind::OpenAiCompatible);
        assert_eq!(p("openai").base_url.unwrap(), mocks["openai"].base_url());
        assert_eq!(p("sim").kind, ProviderKind::OpenAiCompatible);
        assert!(p("sim").mock.is_none());
        assert_eq!(p("claude").kind, ProviderKind::Anthropic);
        assert_eq!(
            format!("{}/v1", p("claude").base_url.unwrap()),
            mocks["claude"].base_url()
        );
        for name in ["openai", "claude", "sim"] {
            assert_eq!(p(name).api_key.unwrap().expose(), "chaos-dummy-credential");
        }
        assert_eq!(c.models[0].tiers, plan.base.models[0].tiers);
        assert!(c.models[0].policy.degraded.enabled);
        assert_eq!(c.server.auth, AuthMode::Keys);
        assert!(c.server.admin_listen.is_none());
        assert_eq!(c.server.listen.port(), 0);
        // The four traffic keys and the abusive client's, limited.
        assert_eq!(c.keys.len(), 5);
        assert_eq!(c.keys[4].rpm, Some(ABUSER_RPM));
        assert_eq!(c.status.clock_speed, 60);
        assert_eq!(
            c.store.backend,
            StoreBackend::Sqlite("/tmp/x/status.db".into())
        );
        for m in mocks.values() {
            m.shutdown().await;
        }
    }
}
