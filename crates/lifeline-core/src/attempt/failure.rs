//! One vocabulary for why an attempt did not produce the client's answer.
//!
//! A [`Failure`] is built once, where the attempt ends, and everything else
//! is derived from it: the health [`Outcome`] recorded on the deployment
//! ([`Failure::outcome`]), the `outcome` label of `lifeline_attempts_total`
//! ([`FailureKind::label`]), what the attempt loop does next
//! ([`FailureKind::next`]) and the line about it in the final 503
//! (`Display`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::health::Outcome;
use crate::providers::{Refused, Upstream};

/// What went wrong with an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The upstream URL could not be built.
    BadUrl,
    /// No TCP (or TLS) connection.
    Connect,
    /// The connection broke before the response head.
    Reset,
    /// No response head, or no stream content, within the attempt's deadline.
    Timeout,
    /// 429 (or 408).
    RateLimited,
    /// A 5xx.
    StatusError,
    /// 501 or 505: the provider does not support the request; its answer stands.
    Unsupported,
    /// The client's own error (4xx other than the ones below); the
    /// provider's answer is returned as is.
    ClientError,
    /// The prompt does not fit this upstream model's context window.
    ContextLength,
    /// The provider's content policy refused the request.
    ContentPolicy,
    /// 401/403: the deployment's credentials or access are wrong.
    Misconfigured,
    /// A 3xx: the base URL is wrong (an answer is never a redirect).
    Redirect,
    /// A 2xx whose body is not a JSON answer, or a body that broke or did
    /// not arrive in time.
    BadBody,
    /// A stream that broke, sent a malformed chunk or an error event, or
    /// stalled before its first content.
    StreamFailed,
    /// No attempt was made: the deployment cannot take this request
    /// faithfully (its protocol cannot express it, or its adapter does not
    /// serve the endpoint). Not the deployment's fault and no attempt: no
    /// health outcome, no retry-budget charge, not counted as an attempt;
    /// only its line in the final error.
    Ineligible,
}

/// What the attempt loop does after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The provider's answer goes to the client as it is.
    Return,
    /// Likely to pass: retried in the same tier (another deployment, or the
    /// same one after its backoff or `Retry-After`) before the request
    /// descends to a later tier.
    Transient,
    /// Not expected to pass soon on this deployment: the request moves on
    /// at once, to later tiers too.
    Persistent,
    /// Final for this upstream model, not for the request: only a
    /// deployment of another upstream model may take it.
    OtherModel,
}

impl FailureKind {
    /// The `outcome` label of `lifeline_attempts_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::BadUrl => "bad_url",
            Self::Connect => "connect",
            Self::Reset => "reset",
            Self::Timeout => "timeout",
            Self::RateLimited => "rate_limited",
            Self::StatusError | Self::Unsupported => "status_error",
            Self::ClientError => "client_error",
            Self::ContextLength => "context_length",
            Self::ContentPolicy => "content_policy",
            Self::Misconfigured => "misconfigured",
            Self::Redirect => "redirect",
            Self::BadBody => "bad_body",
            Self::StreamFailed => "stream_failed",
            Self::Ineligible => "ineligible",
        }
    }

    /// Whether the deployment is to blame. The client's own errors and a
    /// model's refusals of a particular request say nothing about its health.
    pub fn is_deployments_fault(self) -> bool {
        !matches!(
            self,
            Self::ClientError | Self::ContextLength | Self::ContentPolicy | Self::Ineligible
        )
    }

    /// What the attempt loop does next. A content-policy refusal is
    /// [`Next::Return`] unless the model opts in to falling back
    /// (`content_policy_fallback`), which the loop decides.
    pub fn next(self) -> Next {
        match self {
            Self::ClientError | Self::Unsupported | Self::ContentPolicy => Next::Return,
            Self::ContextLength => Next::OtherModel,
            // The attempt loop skips that deployment for the rest of the
            // request ([`crate::balance::Scope::ineligible`]).
            Self::Ineligible => Next::Persistent,
            // One bad answer or a broken connection: the next is likely fine.
            Self::Reset | Self::RateLimited | Self::StatusError | Self::BadBody => Next::Transient,
            Self::StreamFailed => Next::Transient,
            // Nothing listening, silence past the deadline, a wrong
            // configuration: trying the same deployment again soon is waste.
            Self::BadUrl | Self::Connect | Self::Timeout | Self::Misconfigured | Self::Redirect => {
                Next::Persistent
            }
        }
    }
}

/// One failed attempt.
#[derive(Debug, Clone)]
pub struct Failure {
    /// What went wrong.
    pub kind: FailureKind,
    /// The deployment, `provider/model`.
    pub deployment: Arc<str>,
    /// For the final error and the logs, e.g. `HTTP 503, Retry-After 2 s`.
    pub message: String,
    /// The upstream's `Retry-After`, if it sent one.
    pub retry_after: Option<Duration>,
    /// From sending the request to the failure.
    pub latency: Duration,
}

impl Failure {
    /// A failure of `kind` on `deployment`.
    pub fn new(kind: FailureKind, deployment: &Arc<str>, message: impl Into<String>) -> Self {
        Self {
            kind,
            deployment: deployment.clone(),
            message: message.into(),
            retry_after: None,
            latency: Duration::ZERO,
        }
    }

    /// With the time the attempt took.
    pub fn after(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// With the upstream's `Retry-After`.
    pub fn retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// The outcome recorded on the deployment's health.
    pub fn outcome(&self) -> Outcome {
        let base = if self.kind.is_deployments_fault() {
            Outcome::failure(self.latency)
        } else {
            Outcome::neutral(self.latency)
        };
        Outcome {
            retry_after: self.retry_after,
            misconfigured: self.kind == FailureKind::Misconfigured,
            ..base
        }
    }
}

/// Sorts a provider's 4xx answer: a context-window or content-policy
/// refusal, or the client's own error. What a 400 means is the adapter's
/// to read, in its protocol's wording ([`crate::providers::Upstream::refusal`]).
pub fn client_error_kind(upstream: &Upstream, status: u16, body: &[u8]) -> FailureKind {
    match upstream.refusal(status, body) {
        Some(Refused::ContextLength) => FailureKind::ContextLength,
        Some(Refused::ContentPolicy) => FailureKind::ContentPolicy,
        None => FailureKind::ClientError,
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.deployment, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::OutcomeClass;

    const ALL: [FailureKind; 15] = [
        FailureKind::BadUrl,
        FailureKind::Connect,
        FailureKind::Reset,
        FailureKind::Timeout,
        FailureKind::RateLimited,
        FailureKind::StatusError,
        FailureKind::Unsupported,
        FailureKind::ClientError,
        FailureKind::ContextLength,
        FailureKind::ContentPolicy,
        FailureKind::Misconfigured,
        FailureKind::Redirect,
        FailureKind::BadBody,
        FailureKind::StreamFailed,
        FailureKind::Ineligible,
    ];

    #[test]
    fn every_label_is_counted_per_deployment() {
        // An ineligible deployment made no attempt: nothing is counted on it.
        for kind in ALL.into_iter().filter(|k| *k != FailureKind::Ineligible) {
            assert!(
                crate::telemetry::sli::FAILURE_LABELS.contains(&kind.label()),
                "{}",
                kind.label()
            );
        }
    }

    #[test]
    fn outcome_label_and_next_step_come_from_one_value() {
        let dep: Arc<str> = "p/m".into();
        for kind in ALL {
            let f = Failure::new(kind, &dep, "x").after(Duration::from_millis(7));
            let o = f.outcome();
            assert_eq!(o.latency, Duration::from_millis(7));
            assert!(
                kind.label()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{kind:?}"
            );
            let neutral = matches!(
                kind,
                FailureKind::ClientError
                    | FailureKind::ContextLength
                    | FailureKind::ContentPolicy
                    | FailureKind::Ineligible
            );
            assert_eq!(o.class == OutcomeClass::Neutral, neutral, "{kind:?}");
            assert_eq!(o.misconfigured, kind == FailureKind::Misconfigured);
        }
        assert_eq!(FailureKind::Reset.next(), Next::Transient);
        assert_eq!(FailureKind::StatusError.next(), Next::Transient);
        assert_eq!(FailureKind::RateLimited.next(), Next::Transient);
        assert_eq!(FailureKind::Timeout.next(), Next::Persistent);
        assert_eq!(FailureKind::Connect.next(), Next::Persistent);
        assert_eq!(FailureKind::Misconfigured.next(), Next::Persistent);
        assert_eq!(FailureKind::Redirect.next(), Next::Persistent);
        assert_eq!(FailureKind::ContextLength.next(), Next::OtherModel);
        assert_eq!(FailureKind::ContentPolicy.next(), Next::Return);
        assert_eq!(FailureKind::Unsupported.next(), Next::Return);
    }

    fn upstream(anthropic: Option<crate::config::AnthropicSettings>) -> Upstream {
        let kind = if anthropic.is_some() {
            crate::config::ProviderKind::Anthropic
        } else {
            crate::config::ProviderKind::OpenAiCompatible
        };
        let cfg = crate::config::ProviderConfig {
            name: "p".into(),
            kind,
            base_url: Some("http://127.0.0.1:9".into()),
            api_key: None,
            max_concurrency: None,
            api_version: "2024-10-21".into(),
            probe_path: None,
            probe_completion: false,
            prefill: None,
            mock: None,
            anthropic,
            quota: None,
        };
        Upstream::new(&cfg, "http://127.0.0.1:9".into()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn refusals_are_told_from_client_errors() {
        let cases: [(u16, &str, FailureKind); 9] = [
            (
                400,
                r#"{"error":{"message":"too long","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
                FailureKind::ContextLength,
            ),
            (
                400,
                r#"{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.","type":"BadRequestError","param":null,"code":400}"#,
                FailureKind::ContextLength,
            ),
            (
                400,
                r#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error"}}"#,
                FailureKind::ContextLength,
            ),
            (
                400,
                r#"{"error":{"message":"refused","type":"invalid_request_error","code":"content_policy_violation"}}"#,
                FailureKind::ContentPolicy,
            ),
            (
                400,
                r#"{"error":{"message":"filtered","code":"content_filter"}}"#,
                FailureKind::ContentPolicy,
            ),
            (
                400,
                r#"{"error":{"message":"bad temperature","code":null}}"#,
                FailureKind::ClientError,
            ),
            (400, "not json", FailureKind::ClientError),
            (
                422,
                r#"{"error":{"code":"context_length_exceeded"}}"#,
                FailureKind::ClientError,
            ),
            (
                404,
                r#"{"error":{"message":"maximum context length"}}"#,
                FailureKind::ClientError,
            ),
        ];
        let openai = upstream(None);
        for (status, body, kind) in cases {
            assert_eq!(
                client_error_kind(&openai, status, body.as_bytes()),
                kind,
                "{body}"
            );
        }
        // Anthropic's wording, read by its adapter.
        let anthropic = upstream(Some(crate::config::AnthropicSettings {
            version: "2023-06-01".into(),
            default_max_tokens: 4096,
        }));
        let too_long = r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#;
        assert_eq!(
            client_error_kind(&anthropic, 400, too_long.as_bytes()),
            FailureKind::ContextLength
        );
        let own = r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#;
        assert_eq!(
            client_error_kind(&anthropic, 400, own.as_bytes()),
            FailureKind::ClientError
        );
        // OpenAI's code means nothing to the Anthropic adapter.
        assert_eq!(
            client_error_kind(&anthropic, 400, cases[0].1.as_bytes()),
            FailureKind::ClientError
        );
    }

    #[test]
    fn retry_after_reaches_the_health_record_and_the_text_names_the_deployment() {
        let dep: Arc<str> = "p/m".into();
        let f = Failure::new(FailureKind::RateLimited, &dep, "HTTP 429, Retry-After 2 s")
            .retry_after(Some(Duration::from_secs(2)));
        assert_eq!(f.outcome().retry_after, Some(Duration::from_secs(2)));
        assert_eq!(f.outcome().class, OutcomeClass::Failure);
        assert_eq!(f.to_string(), "p/m: HTTP 429, Retry-After 2 s");
    }
}
