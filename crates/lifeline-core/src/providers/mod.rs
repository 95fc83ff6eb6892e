//! Provider adapters: how one upstream wants its URL, its credentials and
//! its bodies.
//!
//! A provider speaks one protocol ([`Wire`]), and each protocol is one
//! adapter: [`openai`] (OpenAI, Azure OpenAI's URL and `api-key`, any
//! OpenAI-compatible server, the simulated provider) and [`anthropic`]
//! (Anthropic's Messages API: `{base_url}/v1/messages`, `x-api-key`,
//! `anthropic-version`). [`Upstream`] dispatches on its wire with a `match`
//! (two variants, no trait object on the request path) for:
//!
//! - the URL of an endpoint, and whether the adapter serves it at all
//!   ([`Upstream::serves`]: an Anthropic deployment serves chat only);
//! - the headers: auth, and `anthropic-version`;
//! - the request body ([`Upstream::request_body`]): when the client's wire is
//!   the deployment's, the upstream model name spliced into the client's
//!   bytes ([`splice`]'s zero-copy path, plus
//!   [`crate::translate::request::anthropic_sampling_fixup`] for Anthropic,
//!   with the model's [`ModelRules`], computed once per upstream model when
//!   the provider is built); otherwise translated by
//!   [`crate::translate::request`], or [`Untranslatable`] (the deployment is
//!   then ineligible for the request);
//! - a whole answer and an error body in the client's wire
//!   ([`Upstream::answer_body`], [`Upstream::error_body`]);
//! - what a 400 means ([`Upstream::refusal`]: a context-window or
//!   content-policy refusal, in the wording of its protocol), and whether a
//!   2xx body is an answer at all ([`Upstream::is_answer`]).
//!
//! Each adapter owns its stream grammar too (`openai/stream.rs`: chat
//! completions, the Responses API, generic streams; `anthropic/stream.rs`:
//! the Messages API): what counts as first content, as the answer's
//! finish, as a clean end, as an in-band error, as a keep-alive, and its
//! usage. [`stream::Protocol`] picks the grammar by the deployment's wire
//! and dispatches to it with a `match`; the relay's scanner splits lines
//! and keeps the state, and asks. [`stream`] also writes Lifeline's own
//! endings in a client's grammar. For continuation, each adapter parses
//! what its client was sent and rewrites a continuation's events to follow
//! it (`openai/continued.rs`, `anthropic/continued.rs`, dispatched by
//! [`continued`]). [`sse`] is SSE's own syntax, which all of them share.
//! Providers know nothing about balancing or health.

pub mod anthropic;
mod client;
pub mod continued;
pub mod openai;
pub mod probe;
pub mod sse;
pub mod stream;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use tokio::sync::Semaphore;

use crate::config::{AnthropicSettings, ProviderConfig, ProviderKind};
use crate::translate::request::{rejects_prefill, sampling_rule, Sampling};
pub use crate::translate::{Untranslatable, Wire};
pub use client::{build as build_client, HttpClient};
pub use stream::{answer_tokens, Protocol};

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
    /// `POST /v1/messages` (Anthropic's Messages API, inbound).
    Messages,
}

impl Endpoint {
    /// Every endpoint, in [`Endpoint::index`] order.
    pub const ALL: [Endpoint; 5] = [
        Self::ChatCompletions,
        Self::Embeddings,
        Self::ImagesGenerations,
        Self::Responses,
        Self::Messages,
    ];

    /// One endpoint per SLI family, in [`Endpoint::family_index`] order.
    pub const FAMILIES: [Endpoint; 4] = [
        Self::ChatCompletions,
        Self::Embeddings,
        Self::ImagesGenerations,
        Self::Responses,
    ];

    /// Position in [`Endpoint::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Position of the endpoint's family in [`Endpoint::FAMILIES`] (and in
    /// the SLI counters): `/v1/messages` counts with chat completions.
    pub fn family_index(self) -> usize {
        match self {
            Self::Messages => 0,
            other => other as usize,
        }
    }

    /// The wire the client speaks on this endpoint.
    pub fn wire(self) -> Wire {
        match self {
            Self::Messages => Wire::Anthropic,
            _ => Wire::OpenAi,
        }
    }

    /// A chat endpoint (either wire): what both adapters serve.
    pub fn is_chat(self) -> bool {
        matches!(self, Self::ChatCompletions | Self::Messages)
    }

    /// Path below an OpenAI-shaped provider's base URL (a chat request
    /// goes to `/chat/completions` whichever wire the client spoke).
    pub fn path(self) -> &'static str {
        match self {
            Self::ChatCompletions | Self::Messages => "/chat/completions",
            Self::Embeddings => "/embeddings",
            Self::ImagesGenerations => "/images/generations",
            Self::Responses => "/responses",
        }
    }

    /// The endpoint family's name in the status side's SLI totals
    /// ([`crate::telemetry::sli`]): `chat` (chat completions and
    /// messages: one API family, whichever wire the client speaks),
    /// `embeddings`, `images`, `responses`.
    pub fn family(self) -> &'static str {
        match self {
            Self::ChatCompletions | Self::Messages => "chat",
            Self::Embeddings => "embeddings",
            Self::ImagesGenerations => "images",
            Self::Responses => "responses",
        }
    }

    /// The endpoint of a family name ([`Self::family`]).
    pub fn from_family(family: &str) -> Option<Self> {
        Self::FAMILIES.into_iter().find(|e| e.family() == family)
    }
}

// The SLI counters hold one family per family endpoint, by family index.
const _: () = assert!(crate::telemetry::sli::FAMILIES == Endpoint::FAMILIES.len());

/// A 400 that refuses the request for this upstream model, not for the
/// request's own fault: another upstream model may take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The prompt does not fit the model's context window.
    ContextLength,
    /// The provider's content policy refused it.
    ContentPolicy,
}

/// One provider, ready to build requests for.
pub struct Upstream {
    /// Provider name from the config.
    pub name: Arc<str>,
    /// Protocol and URL shape.
    pub kind: ProviderKind,
    /// The protocol its bodies are in.
    pub wire: Wire,
    /// Base URL without trailing slash.
    pub base_url: String,
    auth: Option<(HeaderName, HeaderValue)>,
    /// `anthropic-version`, for an Anthropic provider.
    version: Option<HeaderValue>,
    api_version: String,
    /// Cap on in-flight requests (`max_concurrency`).
    pub limit: Option<Arc<Semaphore>>,
    /// Probe URL, if probes are enabled.
    pub probe_uri: Option<Uri>,
    /// The config it was built from, to tell whether a reload changed it.
    pub config: ProviderConfig,
    /// The rules of the upstream models its deployments name
    /// ([`Self::with_models`]), computed once when it is built.
    models: Box<[(Box<str>, ModelRules)]>,
}

/// What an upstream model accepts that depends on its name (and, for
/// Anthropic, on the `anthropic-version` sent): read from the name once per
/// model when the provider is built ([`Upstream::rules`]), not per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelRules {
    /// Which sampling parameters it accepts
    /// ([`crate::translate::request::sampling_rule`]; [`Sampling::Any`] for
    /// an OpenAI-shaped provider).
    pub sampling: Sampling,
    /// A Claude model known to refuse an assistant prefill
    /// ([`crate::translate::request::rejects_prefill`]).
    pub rejects_prefill: bool,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("wire", &self.wire)
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

/// What a request's body becomes for one deployment.
pub struct RequestBody<'a> {
    /// The client's wire.
    pub client: Wire,
    /// The client's body, as received.
    pub body: &'a Bytes,
    /// Byte range of its `model` value.
    pub model_span: &'a std::ops::Range<usize>,
    /// The upstream model name.
    pub model: &'a str,
    /// `model`, JSON-encoded.
    pub model_json: &'a [u8],
}

impl Upstream {
    /// Builds the adapter. `base_url` is the configured one, or the address of
    /// the in-process simulated provider for `kind = "mock"`.
    pub fn new(config: &ProviderConfig, base_url: String) -> Result<Self, UpstreamError> {
        let err = |message: String| UpstreamError {
            provider: config.name.clone(),
            message,
        };
        let wire = if config.anthropic.is_some() {
            Wire::Anthropic
        } else {
            Wire::OpenAi
        };
        let auth = match &config.api_key {
            None => None,
            Some(key) => {
                let (name, value) = match (wire, config.kind) {
                    (Wire::Anthropic, _) => anthropic::auth(key.expose()),
                    (_, ProviderKind::Azure) => openai::azure_auth(key.expose()),
                    _ => openai::auth(key.expose()),
                };
                let value = value.map_err(|_| err("api_key is not a valid header value".into()))?;
                Some((name, value))
            }
        };
        let version = match &config.anthropic {
            Some(AnthropicSettings { version, .. }) => Some(
                HeaderValue::from_str(version)
                    .map_err(|_| err("anthropic_version is not a valid header value".into()))?,
            ),
            None => None,
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
            wire,
            base_url,
            auth,
            version,
            api_version: config.api_version.clone(),
            limit: config
                .max_concurrency
                .map(|n| Arc::new(Semaphore::new(n as usize))),
            probe_uri,
            config: config.clone(),
            models: Box::default(),
        };
        // Fail at build time, not on the first request.
        up.uri(Endpoint::ChatCompletions, "check")
            .map_err(|e| err(format!("base_url: {e}")))?;
        Ok(up)
    }

    /// With the [`ModelRules`] of `models` (the upstream models its
    /// deployments name) computed now, so that requests only look them up.
    #[must_use]
    pub fn with_models<'a>(mut self, models: impl IntoIterator<Item = &'a str>) -> Self {
        let mut table: Vec<(Box<str>, ModelRules)> = Vec::new();
        for m in models {
            if !table.iter().any(|(name, _)| &**name == m) {
                table.push((m.into(), self.compute_rules(m)));
            }
        }
        self.models = table.into_boxed_slice();
        self
    }

    /// The [`ModelRules`] of upstream model `model`: looked up (a provider
    /// names few models); computed, without allocating, for a model that a
    /// reload added to a provider it kept as it was.
    pub fn rules(&self, model: &str) -> ModelRules {
        self.models
            .iter()
            .find(|(name, _)| &**name == model)
            .map_or_else(|| self.compute_rules(model), |(_, r)| *r)
    }

    fn compute_rules(&self, model: &str) -> ModelRules {
        ModelRules {
            sampling: match &self.config.anthropic {
                Some(a) => sampling_rule(model, &a.version),
                None => Sampling::Any,
            },
            rejects_prefill: rejects_prefill(model),
        }
    }

    /// Whether this provider's adapter serves `endpoint` at all (an
    /// Anthropic deployment serves chat only, from either wire).
    pub fn serves(&self, endpoint: Endpoint) -> bool {
        match self.wire {
            Wire::OpenAi => true,
            Wire::Anthropic => endpoint.is_chat(),
        }
    }

    /// The upstream URL for `endpoint` and upstream model `model`.
    pub fn uri(&self, endpoint: Endpoint, model: &str) -> Result<Uri, String> {
        let uri = match (self.wire, self.kind) {
            (Wire::Anthropic, _) => anthropic::uri(&self.base_url, endpoint)?,
            (Wire::OpenAi, ProviderKind::Azure) => {
                openai::azure_uri(&self.base_url, endpoint, model, &self.api_version)
            }
            (Wire::OpenAi, _) => format!("{}{}", self.base_url, endpoint.path()),
        };
        uri.parse()
            .map_err(|e: http::uri::InvalidUri| e.to_string())
    }

    /// Whether active probes run at all.
    pub fn probes_enabled(&self) -> bool {
        self.probe_uri.is_some() || self.config.probe_completion
    }

    /// The auth header to send, if any.
    pub fn auth(&self) -> Option<&(HeaderName, HeaderValue)> {
        self.auth.as_ref()
    }

    /// Adds the headers every request to this provider carries: its auth
    /// header, and `anthropic-version` for an Anthropic provider.
    pub fn headers(&self, h: &mut HeaderMap) {
        if let Some((name, value)) = &self.auth {
            h.insert(name.clone(), value.clone());
        }
        if let Some(v) = &self.version {
            h.insert(anthropic::VERSION, v.clone());
        }
    }

    /// The body to send for a request from a client speaking `req.client`:
    /// the client's bytes with the model name spliced in when the wires
    /// match (the zero-copy path), else the translated request, for a
    /// target that continues a final assistant message (a prefill: a
    /// stream's continuation asks only such targets for one). See
    /// [`Self::request_body_for`].
    pub fn request_body(&self, req: &RequestBody<'_>) -> Result<Bytes, Untranslatable> {
        self.request_body_for(req, true)
    }

    /// [`Self::request_body`], for a target that continues a final
    /// assistant message or not (`prefill`): when the request must be
    /// translated and ends with an assistant message, a target without
    /// prefill cannot give the continuation the client asked for, and the
    /// request is [`Untranslatable`] to it. On passthrough (same wire) the
    /// request is the client's own and goes as it is: a Claude model that
    /// refuses a prefill answers the client's prefill with its own 400.
    pub fn request_body_for(
        &self,
        req: &RequestBody<'_>,
        prefill: bool,
    ) -> Result<Bytes, Untranslatable> {
        let spliced = || splice(req.body, req.model_span, req.model_json);
        match (req.client, self.wire, &self.config.anthropic) {
            (Wire::OpenAi, Wire::OpenAi, _) => Ok(spliced()),
            (Wire::Anthropic, Wire::Anthropic, Some(_)) => Ok(anthropic::passthrough(
                spliced(),
                self.rules(req.model).sampling,
            )),
            (Wire::OpenAi, Wire::Anthropic, Some(a)) => anthropic::from_openai(req, a, prefill),
            (Wire::Anthropic, Wire::OpenAi, _) => openai::from_anthropic(req, prefill),
            // Anthropic wire without settings: not built by `new`.
            (_, Wire::Anthropic, None) => Ok(spliced()),
        }
    }

    /// A whole 2xx answer of this provider in the `client`'s wire.
    pub fn answer_body(&self, client: Wire, body: Bytes) -> Result<Bytes, String> {
        match (self.wire, client) {
            (a, b) if a == b => Ok(body),
            (Wire::Anthropic, _) => {
                crate::translate::response::anthropic_to_openai(&body).map(Bytes::from)
            }
            (Wire::OpenAi, _) => {
                crate::translate::response::openai_to_anthropic(&body).map(Bytes::from)
            }
        }
    }

    /// An error body of this provider (with its `status`) in the
    /// `client`'s wire.
    pub fn error_body(&self, client: Wire, status: u16, body: Bytes) -> Bytes {
        match (self.wire, client) {
            (a, b) if a == b => body,
            (Wire::Anthropic, _) => Bytes::from(crate::translate::error::to_openai(status, &body)),
            (Wire::OpenAi, _) => Bytes::from(crate::translate::error::to_anthropic(status, &body)),
        }
    }

    /// Whether a 4xx answer (`status`, `body`) refuses the request for this
    /// upstream model rather than for its own fault ([`Refused`]).
    pub fn refusal(&self, status: u16, body: &[u8]) -> Option<Refused> {
        match self.wire {
            Wire::OpenAi => openai::refusal(status, body),
            Wire::Anthropic => anthropic::refusal(status, body),
        }
    }

    /// Whether a 2xx non-streaming body is an answer of this protocol (a
    /// JSON object that is not an error).
    pub fn is_answer(&self, body: &[u8]) -> bool {
        match self.wire {
            Wire::OpenAi => openai::is_answer(body),
            Wire::Anthropic => anthropic::is_answer(body),
        }
    }
}

/// Whether a 400 answer is about an assistant prefill (a trailing
/// assistant message), in any provider's wording: Anthropic's "does not
/// support assistant message prefill", "final assistant content cannot end
/// with trailing whitespace", llama.cpp's "Assistant response prefill is
/// incompatible with enable_thinking", and the like.
pub fn prefill_refusal(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    text.contains("prefill")
        || (text.contains("assistant")
            && (text.contains("final")
                || text.contains("last")
                || text.contains("trailing")
                || text.contains("must end with a user")))
}

/// Replaces the bytes at `span` with `replacement` (an already JSON-encoded
/// string), copying the body once.
pub fn splice(body: &Bytes, span: &std::ops::Range<usize>, replacement: &[u8]) -> Bytes {
    if &body[span.clone()] == replacement {
        return body.clone();
    }
    let mut out = BytesMut::with_capacity(body.len() + replacement.len());
    out.extend_from_slice(&body[..span.start]);
    out.extend_from_slice(replacement);
    out.extend_from_slice(&body[span.end..]);
    out.freeze()
}

/// A header value marked sensitive (never logged, not HPACK-indexed).
fn sensitive(value: &str) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    let mut v = HeaderValue::from_str(value)?;
    v.set_sensitive(true);
    Ok(v)
}

/// Whether `body`, trimmed, is `{...}` whose first key is not `key`
/// (`"error"`, or `"type":"error"`): the cheap check of an answer's shape.
fn object_not_starting_with(body: &[u8], key: &[u8]) -> bool {
    let b = body.trim_ascii();
    if !(b.first() == Some(&b'{') && b.last() == Some(&b'}')) {
        return false;
    }
    let inner = b[1..].trim_ascii_start();
    !inner.starts_with(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn prefill_refusals_are_told_from_other_client_errors() {
        assert!(prefill_refusal(br#"{"type":"error","error":{"type":"invalid_request_error","message":"This model does not support assistant message prefill. The conversation must end with a user message."}}"#));
        assert!(prefill_refusal(br#"{"error":{"message":"final assistant content cannot end with trailing whitespace"}}"#));
        assert!(!prefill_refusal(
            br#"{"error":{"message":"max_tokens is too large"}}"#
        ));
        assert!(!prefill_refusal(b""));
    }

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
            anthropic: None,
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

    #[test]
    fn anthropic_uses_v1_messages_x_api_key_and_its_version() {
        let mut cfg = provider(ProviderKind::Anthropic);
        cfg.probe_path = Some("/v1/models".into());
        cfg.anthropic = Some(AnthropicSettings {
            version: "2023-06-01".into(),
            default_max_tokens: 4096,
        });
        let up = Upstream::new(&cfg, "https://api.anthropic.com".into())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(up.wire, Wire::Anthropic);
        assert_eq!(
            up.uri(Endpoint::ChatCompletions, "claude").ok(),
            "https://api.anthropic.com/v1/messages".parse().ok()
        );
        assert!(!up.serves(Endpoint::Embeddings) && up.serves(Endpoint::Messages));
        let mut h = HeaderMap::new();
        up.headers(&mut h);
        assert_eq!(h["x-api-key"], "sk-secret");
        assert!(h["x-api-key"].is_sensitive());
        assert_eq!(h["anthropic-version"], "2023-06-01");
        assert!(!h.contains_key(http::header::AUTHORIZATION));
        // Probes carry the same headers.
        let probe = up.probe_request("claude", b"\"claude\"");
        let probe = probe.unwrap_or_else(|| panic!("a probe"));
        assert_eq!(probe.uri(), "https://api.anthropic.com/v1/models");
        assert_eq!(probe.headers()["anthropic-version"], "2023-06-01");
        assert_eq!(probe.headers()["x-api-key"], "sk-secret");
    }

    #[test]
    fn model_rules_are_read_once_and_passthrough_uses_them() {
        let mut cfg = provider(ProviderKind::Anthropic);
        cfg.anthropic = Some(AnthropicSettings {
            version: "2023-06-01".into(),
            default_max_tokens: 4096,
        });
        let up = Upstream::new(&cfg, "http://h".into())
            .unwrap_or_else(|e| panic!("{e}"))
            .with_models(["claude-opus-4-7", "claude-3-5-haiku", "claude-opus-4-7"]);
        assert_eq!(up.models.len(), 2, "one entry per model");
        assert_eq!(
            up.rules("claude-opus-4-7"),
            ModelRules {
                sampling: Sampling::None,
                rejects_prefill: true
            }
        );
        // A model the table lacks (added by a reload) is computed.
        assert_eq!(
            up.rules("claude-sonnet-4-5").sampling,
            Sampling::TemperatureOrTopP
        );
        let body =
            Bytes::from_static(br#"{"model":"x","temperature":0.5,"max_tokens":1,"messages":[]}"#);
        let req = |model: &'static str, json: &'static [u8]| RequestBody {
            client: Wire::Anthropic,
            body: &body,
            model_span: &(9..12),
            model,
            model_json: json,
        };
        // A model that takes every sampling parameter: the splice as it is.
        let out = up
            .request_body(&req("claude-3-5-haiku", br#""x""#))
            .unwrap_or_default();
        assert_eq!(out.as_ptr(), body.as_ptr());
        // One that takes none: the temperature is dropped.
        let out = up
            .request_body(&req("claude-opus-4-7", br#""x""#))
            .unwrap_or_default();
        assert!(!out.windows(11).any(|w| w == b"temperature"));
    }

    #[test]
    fn the_same_wire_is_spliced_without_a_copy() {
        let up = Upstream::new(
            &provider(ProviderKind::OpenAiCompatible),
            "http://h/v1".into(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let body = Bytes::from_static(br#"{"model":"up","messages":[]}"#);
        let req = RequestBody {
            client: Wire::OpenAi,
            body: &body,
            model_span: &(9..13),
            model: "up",
            model_json: br#""up""#,
        };
        let out = up.request_body(&req).unwrap_or_default();
        // Same model name: the very same buffer, not a copy.
        assert_eq!(out.as_ptr(), body.as_ptr());
    }
}
