//! Provider adapters: how one upstream wants its URL and its credentials.
//!
//! All providers Lifeline speaks to today use OpenAI's request and response
//! bodies, so an adapter only decides the URL (OpenAI paths, or Azure's
//! `/openai/deployments/{deployment}/...?api-version=`) and the auth header
//! (`Authorization: Bearer` or Azure's `api-key`). Providers know nothing
//! about balancing or health.

mod client;
pub mod probe;

use std::sync::Arc;

use http::{HeaderName, HeaderValue, Uri};
use tokio::sync::Semaphore;

use crate::config::{ProviderConfig, ProviderKind};
pub use client::{build as build_client, HttpClient};

/// The data-plane endpoints Lifeline relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/chat/completions`.
    ChatCompletions,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `POST /v1/images/generations`.
    ImagesGenerations,
    /// `POST /v1/responses`.
    Responses,
}

impl Endpoint {
    /// Every endpoint, in [`Endpoint::index`] order.
    pub const ALL: [Endpoint; 4] = [
        Self::ChatCompletions,
        Self::Embeddings,
        Self::ImagesGenerations,
        Self::Responses,
    ];

    /// Position in [`Endpoint::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Path below the provider's base URL.
    pub fn path(self) -> &'static str {
        match self {
            Self::ChatCompletions => "/chat/completions",
            Self::Embeddings => "/embeddings",
            Self::ImagesGenerations => "/images/generations",
            Self::Responses => "/responses",
        }
    }

    /// The endpoint family's name in the status side's SLI totals
    /// ([`crate::telemetry::sli`]): `chat`, `embeddings`, `images`,
    /// `responses`.
    pub fn family(self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat",
            Self::Embeddings => "embeddings",
            Self::ImagesGenerations => "images",
            Self::Responses => "responses",
        }
    }

    /// The endpoint of a family name ([`Self::family`]).
    pub fn from_family(family: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.family() == family)
    }
}

// The SLI counters hold one family per endpoint, by index.
const _: () = assert!(crate::telemetry::sli::FAMILIES == Endpoint::ALL.len());

/// One provider, ready to build requests for.
pub struct Upstream {
    /// Provider name from the config.
    pub name: Arc<str>,
    /// Protocol and URL shape.
    pub kind: ProviderKind,
    /// Base URL without trailing slash.
    pub base_url: String,
    auth: Option<(HeaderName, HeaderValue)>,
    api_version: String,
    /// Cap on in-flight requests (`max_concurrency`).
    pub limit: Option<Arc<Semaphore>>,
    /// Probe URL, if probes are enabled.
    pub probe_uri: Option<Uri>,
    /// The config it was built from, to tell whether a reload changed it.
    pub config: ProviderConfig,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// A provider whose settings cannot make a valid request.
#[derive(Debug, thiserror::Error)]
#[error("provider {provider}: {message}")]
pub struct UpstreamError {
    provider: String,
    message: String,
}

impl Upstream {
    /// Builds the adapter. `base_url` is the configured one, or the address of
    /// the in-process simulated provider for `kind = "mock"`.
    pub fn new(config: &ProviderConfig, base_url: String) -> Result<Self, UpstreamError> {
        let err = |message: String| UpstreamError {
            provider: config.name.clone(),
            message,
        };
        let auth = match (&config.api_key, config.kind) {
            (None, _) => None,
            (Some(key), ProviderKind::Azure) => Some((
                HeaderName::from_static("api-key"),
                sensitive(key.expose())
                    .map_err(|_| err("api_key is not a valid header value".into()))?,
            )),
            (Some(key), _) => Some((
                http::header::AUTHORIZATION,
                sensitive(&format!("Bearer {}", key.expose()))
                    .map_err(|_| err("api_key is not a valid header value".into()))?,
            )),
        };
        let probe_uri = match &config.probe_path {
            None => None,
            Some(p) => {
                let mut uri = format!("{base_url}{p}");
                if config.kind == ProviderKind::Azure {
                    uri = format!("{base_url}/openai{p}?api-version={}", config.api_version);
                }
                Some(
                    uri.parse::<Uri>()
                        .map_err(|e| err(format!("probe URL {uri}: {e}")))?,
                )
            }
        };
        let up = Self {
            name: config.name.as_str().into(),
            kind: config.kind,
            base_url,
            auth,
            api_version: config.api_version.clone(),
            limit: config
                .max_concurrency
                .map(|n| Arc::new(Semaphore::new(n as usize))),
            probe_uri,
            config: config.clone(),
        };
        // Fail at build time, not on the first request.
        up.uri(Endpoint::ChatCompletions, "check")
            .map_err(|e| err(format!("base_url: {e}")))?;
        Ok(up)
    }

    /// The upstream URL for `endpoint` and upstream model `model`.
    pub fn uri(&self, endpoint: Endpoint, model: &str) -> Result<Uri, http::uri::InvalidUri> {
        match self.kind {
            ProviderKind::Azure => format!(
                "{}/openai/deployments/{}{}?api-version={}",
                self.base_url,
                model,
                endpoint.path(),
                self.api_version
            )
            .parse(),
            _ => format!("{}{}", self.base_url, endpoint.path()).parse(),
        }
    }

    /// Whether active probes run at all.
    pub fn probes_enabled(&self) -> bool {
        self.probe_uri.is_some() || self.config.probe_completion
    }

    /// The auth header to send, if any.
    pub fn auth(&self) -> Option<&(HeaderName, HeaderValue)> {
        self.auth.as_ref()
    }
}

fn sensitive(value: &str) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    let mut v = HeaderValue::from_str(value)?;
    v.set_sensitive(true);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn provider(kind: ProviderKind) -> ProviderConfig {
        ProviderConfig {
            name: "p".into(),
            kind,
            base_url: Some("https://example.test".into()),
            api_key: Some(Secret::new("sk-secret")),
            max_concurrency: Some(3),
            api_version: "2024-10-21".into(),
            probe_path: Some("/models".into()),
            probe_completion: false,
            prefill: None,
            mock: None,
        }
    }

    #[test]
    fn azure_uses_deployment_urls_and_api_key_header() {
        let cfg = provider(ProviderKind::Azure);
        let up = Upstream::new(&cfg, "https://example.test".into()).map_err(|e| e.to_string());
        let up = up.unwrap_or_else(|e| panic!("{e}"));
        let uri = up
            .uri(Endpoint::ChatCompletions, "gpt4-prod")
            .map(|u| u.to_string())
            .unwrap_or_default();
        assert_eq!(uri, "https://example.test/openai/deployments/gpt4-prod/chat/completions?api-version=2024-10-21");
        let (name, value) = up.auth().cloned().unwrap_or((
            HeaderName::from_static("none"),
            HeaderValue::from_static(""),
        ));
        assert_eq!(name, "api-key");
        assert_eq!(value, "sk-secret");
        assert!(value.is_sensitive());
        assert!(!format!("{up:?}").contains("sk-secret"));
    }

    #[test]
    fn openai_compatible_uses_bearer() {
        let cfg = provider(ProviderKind::OpenAiCompatible);
        let up = Upstream::new(&cfg, "http://127.0.0.1:9/v1".into()).map_err(|e| e.to_string());
        let up = up.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            up.uri(Endpoint::Embeddings, "m")
                .map(|u| u.to_string())
                .unwrap_or_default(),
            "http://127.0.0.1:9/v1/embeddings"
        );
        assert_eq!(
            up.auth().map(|a| a.1.clone()),
            Some(HeaderValue::from_static("Bearer sk-secret"))
        );
        assert_eq!(
            up.probe_uri.as_ref().map(|u| u.to_string()),
            Some("http://127.0.0.1:9/v1/models".into())
        );
    }
}
