//! `[[providers]]` and `[[models]]`: kinds, URLs, tiers and the references
//! from each tier entry to a provider.
//!
//! These are the checks that catch the mistakes which would otherwise show
//! only during an outage: a fallback tier naming a provider that does not
//! exist, an empty tier, a weight of zero that silently starves a deployment.

use std::collections::HashMap;

use toml::Spanned;

use super::Validator;
use crate::config::model::*;
use crate::config::raw::{RawDeployment, RawModel, RawProvider};

/// The `kind` values, in the order error messages list them.
const KINDS: [(&str, ProviderKind); 5] = [
    ("openai", ProviderKind::OpenAi),
    ("azure", ProviderKind::Azure),
    ("openai-compatible", ProviderKind::OpenAiCompatible),
    ("anthropic", ProviderKind::Anthropic),
    ("mock", ProviderKind::Mock),
];
const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// Anthropic's SDKs take the host alone: paths carry `/v1/...`.
const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";
const ANTHROPIC_VERSION: &str = "2023-06-01";
const DEFAULT_MAX_TOKENS: u32 = 4096;
/// Anthropic's model list, relative to its base URL (which has no `/v1`).
const ANTHROPIC_PROBE_PATH: &str = "/v1/models";
const AZURE_API_VERSION: &str = "2024-10-21";
const PROBE_PATH: &str = "/models";

impl Validator<'_> {
    pub(super) fn providers(&mut self, raw: Vec<Spanned<RawProvider>>) -> Vec<ProviderConfig> {
        let mut seen = HashMap::new();
        let mut providers = Vec::with_capacity(raw.len());
        for (i, provider) in raw.into_iter().enumerate() {
            self.unique(&mut seen, &provider.get_ref().name, "providers", i);
            providers.push(self.provider(i, provider));
        }
        providers
    }

    fn provider(&mut self, i: usize, raw: Spanned<RawProvider>) -> ProviderConfig {
        let header = raw.span();
        let raw = raw.into_inner();
        let f = |key: &str| format!("providers[{i}].{key}");
        let name = self.name(&raw.name, &f("name"));
        let kind = KINDS
            .iter()
            .find(|(k, _)| k == raw.kind.get_ref())
            .map(|(_, kind)| *kind);
        if kind.is_none() {
            let valid: Vec<&str> = KINDS.iter().map(|(k, _)| *k).collect();
            let msg = format!(
                "unknown provider kind {:?} (valid: {})",
                raw.kind.get_ref(),
                valid.join(", ")
            );
            self.at(&raw.kind, f("kind"), msg);
        }
        // With an unknown kind, the checks that depend on it are skipped
        // rather than reported against a kind the user did not write.
        let base_url = match (&raw.base_url, kind) {
            (Some(url), Some(ProviderKind::Mock)) => {
                let msg = "must be absent for kind = \"mock\": the simulated provider's address is known once it is bound";
                self.at(url, f("base_url"), msg);
                None
            }
            (None, Some(ProviderKind::Mock) | None) => None,
            (None, Some(ProviderKind::OpenAi)) => Some(OPENAI_BASE_URL.to_owned()),
            (None, Some(ProviderKind::Anthropic)) => Some(ANTHROPIC_BASE_URL.to_owned()),
            (None, Some(_)) => {
                let msg = format!(
                    "is required for kind = {:?}, e.g. base_url = \"http://127.0.0.1:8000/v1\"",
                    raw.kind.get_ref()
                );
                self.at(&Spanned::new(header, ()), f("base_url"), msg);
                None
            }
            (Some(url), _) => self.base_url(url, &f("base_url")),
        };
        let api_key = raw
            .api_key
            .as_ref()
            .and_then(|k| self.secret(k, &f("api_key")));
        if let Some(n) = raw.max_concurrency.as_ref().filter(|n| *n.get_ref() == 0) {
            self.at(
                n,
                f("max_concurrency"),
                "must be at least 1 (leave it out for no cap)",
            );
        }
        let api_version = match &raw.api_version {
            Some(v) if kind.is_some_and(|k| k != ProviderKind::Azure) => {
                self.at(v, f("api_version"), "applies only to kind = \"azure\"");
                AZURE_API_VERSION.to_owned()
            }
            Some(v) if v.get_ref().trim().is_empty() => {
                let msg = format!("must not be empty (leave it out for {AZURE_API_VERSION})");
                self.at(v, f("api_version"), msg);
                AZURE_API_VERSION.to_owned()
            }
            Some(v) => v.get_ref().clone(),
            None => AZURE_API_VERSION.to_owned(),
        };
        let anthropic = self.anthropic(&raw, kind, &f);
        let probe_path = match &raw.probe_path {
            None if anthropic.is_some() => Some(ANTHROPIC_PROBE_PATH.to_owned()),
            None => Some(PROBE_PATH.to_owned()),
            Some(p) if p.get_ref().is_empty() => None,
            Some(p) => {
                if !p.get_ref().starts_with('/') {
                    let msg = format!(
                        "must start with '/' (it is relative to base_url), or be \"\" to disable probes; got {:?}",
                        p.get_ref()
                    );
                    self.at(p, f("probe_path"), msg);
                }
                Some(p.get_ref().clone())
            }
        };
        let quota = self.quota(&raw, &f);
        let mock = self.simulated(raw.mock, &raw.kind, kind, &name, &f);
        ProviderConfig {
            name,
            // Stand-in for an unknown kind; the config is rejected anyway.
            kind: kind.unwrap_or(ProviderKind::OpenAiCompatible),
            base_url,
            api_key,
            max_concurrency: raw.max_concurrency.map(Spanned::into_inner),
            api_version,
            probe_path,
            probe_completion: raw.probe_completion.is_some_and(|b| *b.get_ref()),
            prefill: raw.prefill.as_ref().map(|b| *b.get_ref()),
            mock,
            anthropic,
            quota,
        }
    }

    /// `protocol`, `anthropic_version` and `default_max_tokens`: the
    /// settings of a provider that speaks Anthropic's Messages API
    /// (`kind = "anthropic"`, or `kind = "mock"` with
    /// `protocol = "anthropic"`); the two Anthropic keys are errors on any
    /// other provider.
    fn anthropic(
        &mut self,
        raw: &RawProvider,
        kind: Option<ProviderKind>,
        f: &dyn Fn(&str) -> String,
    ) -> Option<AnthropicSettings> {
        let speaks = match (&raw.protocol, kind) {
            (None, k) => k == Some(ProviderKind::Anthropic),
            (Some(p), Some(ProviderKind::Mock)) => match p.get_ref().as_str() {
                "openai" => false,
                "anthropic" => true,
                other => {
                    let msg = format!("unknown protocol {other:?} (valid: openai, anthropic)");
                    self.at(p, f("protocol"), msg);
                    false
                }
            },
            (Some(p), Some(_)) => {
                let msg = "applies only to kind = \"mock\" (the protocol of the others follows from their kind)";
                self.at(p, f("protocol"), msg);
                false
            }
            (Some(_), None) => false,
        };
        if !speaks {
            for (key, span) in [
                (
                    "anthropic_version",
                    raw.anthropic_version.as_ref().map(Spanned::span),
                ),
                (
                    "default_max_tokens",
                    raw.default_max_tokens.as_ref().map(Spanned::span),
                ),
            ] {
                if let (Some(span), Some(_)) = (span, kind) {
                    let msg = "applies only to kind = \"anthropic\" (or kind = \"mock\" with protocol = \"anthropic\")";
                    self.at(&Spanned::new(span, ()), f(key), msg);
                }
            }
            return None;
        }
        let version = match &raw.anthropic_version {
            None => ANTHROPIC_VERSION.to_owned(),
            Some(v) if !is_anthropic_version(v.get_ref()) => {
                let msg = format!(
                    "{:?} is not an Anthropic API version: a date, YYYY-MM-DD (default {ANTHROPIC_VERSION})",
                    v.get_ref()
                );
                self.at(v, f("anthropic_version"), msg);
                ANTHROPIC_VERSION.to_owned()
            }
            Some(v) => v.get_ref().clone(),
        };
        let default_max_tokens = match &raw.default_max_tokens {
            None => DEFAULT_MAX_TOKENS,
            Some(n) if *n.get_ref() == 0 => {
                let msg = format!("must be at least 1 (default {DEFAULT_MAX_TOKENS})");
                self.at(n, f("default_max_tokens"), msg);
                DEFAULT_MAX_TOKENS
            }
            Some(n) => *n.get_ref(),
        };
        Some(AnthropicSettings {
            version,
            default_max_tokens,
        })
    }

    /// `[providers.mock]`: the simulated provider's settings, defaulted and
    /// named after the provider for `kind = "mock"` (so that answers tell
    /// which one replied), rejected elsewhere.
    #[cfg(feature = "simulated")]
    fn simulated(
        &mut self,
        raw: Option<Spanned<SimulatedSettings>>,
        _raw_kind: &Spanned<String>,
        kind: Option<ProviderKind>,
        name: &str,
        f: &dyn Fn(&str) -> String,
    ) -> Option<SimulatedSettings> {
        match raw {
            Some(m) if kind.is_some_and(|k| k != ProviderKind::Mock) => {
                self.at(
                    &m,
                    f("mock"),
                    "[providers.mock] applies only to kind = \"mock\"",
                );
                None
            }
            Some(m) => Some(m.into_inner()),
            None if kind == Some(ProviderKind::Mock) => Some(lifeline_mock::MockConfig {
                name: name.to_owned(),
                ..Default::default()
            }),
            None => None,
        }
    }

    /// Without the `simulated` feature, `kind = "mock"` and
    /// `[providers.mock]` are errors: this build has no simulated provider.
    #[cfg(not(feature = "simulated"))]
    fn simulated(
        &mut self,
        raw: Option<Spanned<SimulatedSettings>>,
        raw_kind: &Spanned<String>,
        kind: Option<ProviderKind>,
        _name: &str,
        f: &dyn Fn(&str) -> String,
    ) -> Option<SimulatedSettings> {
        const WHY: &str = "this build of Lifeline does not include the simulated provider (cargo feature `simulated`)";
        if let Some(m) = &raw {
            self.at(m, f("mock"), WHY);
        } else if kind == Some(ProviderKind::Mock) {
            self.at(raw_kind, f("kind"), WHY);
        }
        None
    }

    /// An expanded, checked base URL without trailing slashes. The message
    /// quotes the value as written, never as expanded.
    fn base_url(&mut self, raw: &Spanned<String>, field: &str) -> Option<String> {
        let url = self.expand(raw, field)?;
        let url = url.trim_end_matches('/');
        let host = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        match host {
            Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => {
                Some(url.to_owned())
            }
            _ => {
                let msg = format!("{:?} is not an http:// or https:// URL", raw.get_ref());
                self.at(raw, field, msg);
                None
            }
        }
    }

    pub(super) fn models(
        &mut self,
        raw: &[Spanned<RawModel>],
        providers: &[ProviderConfig],
        defaults: &RequestPolicy,
    ) -> Vec<ModelConfig> {
        if raw.is_empty() {
            self.error(
                "models",
                "no [[models]]: clients would have nothing to call",
            );
        }
        let known: Vec<&str> = providers.iter().map(|p| p.name.as_str()).collect();
        let mut seen = HashMap::new();
        let mut models = Vec::with_capacity(raw.len());
        for (i, model) in raw.iter().enumerate() {
            let model = model.get_ref();
            let prefix = format!("models[{i}]");
            self.unique(&mut seen, &model.name, "models", i);
            let name = self.name(&model.name, &format!("{prefix}.name"));
            let tiers = self.tiers(model, &prefix, &known);
            let policy = self.policy(&model.policy(), &prefix, defaults);
            models.push(ModelConfig {
                name,
                tiers,
                policy,
                continuation: model.continuation.as_ref().is_none_or(|b| *b.get_ref()),
            });
        }
        models
    }

    fn tiers(&mut self, model: &RawModel, prefix: &str, known: &[&str]) -> Vec<Vec<DeploymentRef>> {
        if model.tiers.get_ref().is_empty() {
            let msg =
                "has no tiers: give at least one, e.g. [[{ provider = \"...\", model = \"...\" }]]";
            self.at(&model.tiers, format!("{prefix}.tiers"), msg);
        }
        let mut tiers = Vec::new();
        for (t, tier) in model.tiers.get_ref().iter().enumerate() {
            if tier.get_ref().is_empty() {
                let msg = "is an empty tier: give it at least one deployment or remove it";
                self.at(tier, format!("{prefix}.tiers[{t}]"), msg);
            }
            let mut deployments = Vec::with_capacity(tier.get_ref().len());
            for (d, deployment) in tier.get_ref().iter().enumerate() {
                let at = format!("{prefix}.tiers[{t}][{d}]");
                deployments.push(self.deployment(deployment.get_ref(), &at, known));
            }
            tiers.push(deployments);
        }
        tiers
    }

    fn deployment(&mut self, raw: &RawDeployment, prefix: &str, known: &[&str]) -> DeploymentRef {
        let provider = raw.provider.get_ref();
        if !known.contains(&provider.as_str()) {
            let msg = format!(
                "no such provider {provider:?} (known: {})",
                known.join(", ")
            );
            self.at(&raw.provider, format!("{prefix}.provider"), msg);
        }
        if raw.model.get_ref().trim().is_empty() {
            let msg = "must not be empty: it is the model name sent upstream";
            self.at(&raw.model, format!("{prefix}.model"), msg);
        }
        let weight = match &raw.weight {
            Some(w) if *w.get_ref() == 0 => {
                let msg = "must be at least 1 (remove the deployment to send it nothing)";
                self.at(w, format!("{prefix}.weight"), msg);
                1
            }
            Some(w) => *w.get_ref(),
            None => 1,
        };
        if let Some(w) = raw.context_window.as_ref().filter(|w| *w.get_ref() == 0) {
            let msg = "must be at least 1 token (leave it out when unknown)";
            self.at(w, format!("{prefix}.context_window"), msg);
        }
        let model = raw.model.get_ref().clone();
        DeploymentRef {
            provider: provider.clone(),
            model,
            weight,
            context_window: raw
                .context_window
                .as_ref()
                .map(|w| *w.get_ref())
                .filter(|w| *w > 0),
            prefill: raw.prefill.as_ref().map(|b| *b.get_ref()),
        }
    }
}

/// `YYYY-MM-DD`, as Anthropic names its API versions.
fn is_anthropic_version(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}
