//! Which deployments can take a request, and its body for each: the
//! request in the deployment's protocol (a splice when the client's is the
//! same, a translation otherwise, made once per target and kept in the
//! [`Call`]), or why the deployment is ineligible for it.

use std::sync::Arc;

use bytes::Bytes;
use http::Response;

use super::{list, Call, Failure, FailureKind};
use crate::body::ProxyBody;
use crate::error::ApiError;
use crate::providers::Wire;
use crate::route::Deployment;

impl Call {
    /// The body to send to `dep`: the client's, spliced or translated by
    /// the deployment's adapter. A [`FailureKind::Ineligible`] failure when
    /// the adapter does not serve the endpoint (embeddings to an Anthropic
    /// deployment), the request carries an `anthropic-beta` and `dep` is
    /// OpenAI-shaped (a beta changes the answer in ways a translation
    /// cannot promise), or the request cannot be translated faithfully to
    /// its protocol (`n > 1`, `logprobs` to Anthropic; a final assistant
    /// message to a deployment that does not continue it, [`Call::takes_prefill`]):
    /// `dep` is then skipped for this request.
    ///
    /// A translation is made once per target ([`Converted`]); a splice
    /// (same protocol) costs next to nothing and is not kept.
    pub(super) fn convert(&self, dep: &Arc<Deployment>) -> Result<Bytes, Failure> {
        let up = &dep.upstream;
        let ineligible = |why: &str| {
            Failure::new(
                FailureKind::Ineligible,
                &dep.id,
                format!("ineligible: {why}"),
            )
        };
        if !up.serves(self.endpoint) {
            return Err(ineligible(&format!(
                "an Anthropic deployment does not serve the {} endpoint",
                self.endpoint.family()
            )));
        }
        let client = self.endpoint.wire();
        if up.wire == Wire::OpenAi
            && self
                .beta
                .as_ref()
                .is_some_and(|b| !b.as_bytes().trim_ascii().is_empty())
        {
            return Err(ineligible(
                "the request asks for Anthropic beta features (anthropic-beta), which an OpenAI-shaped deployment cannot honour",
            ));
        }
        let req = crate::providers::RequestBody {
            client,
            body: &self.body,
            model_span: &self.inspected.model_span,
            model: &dep.model,
            model_json: &dep.model_json,
        };
        if up.wire == client {
            return up.request_body(&req).map_err(|u| ineligible(&u.0));
        }
        let prefill = self.takes_prefill(dep);
        if let Some(made) = self.converted.find(dep, prefill) {
            return made.map_err(|why| ineligible(&why));
        }
        let made = up.request_body_for(&req, prefill).map_err(|u| u.0);
        self.converted.keep(dep, prefill, made.clone());
        made.map_err(|why| ineligible(&why))
    }

    /// Whether `dep` takes an assistant prefill, which decides whether a
    /// translated request that ends with one may go to it: its tier entry's
    /// `prefill` (per deployment, else its provider's; by default Anthropic
    /// and the simulated provider do, OpenAI, Azure OpenAI and
    /// OpenAI-compatible servers are not known to), and
    /// [`model_takes_prefill`].
    fn takes_prefill(&self, dep: &Deployment) -> bool {
        model_takes_prefill(dep)
            && self
                .model
                .tiers
                .iter()
                .flatten()
                .find(|m| std::ptr::eq(&*m.deployment, dep))
                .is_some_and(|m| m.prefill)
    }

    /// Whether any deployment of the model could take the request: one not
    /// found `ineligible` whose body can be made (it may be unavailable).
    pub(super) fn any_eligible(&self, ineligible: &[Arc<Deployment>]) -> bool {
        self.model
            .tiers
            .iter()
            .flatten()
            .map(|m| &m.deployment)
            .filter(|d| !ineligible.iter().any(|i| Arc::ptr_eq(i, d)))
            .any(|d| self.convert(d).is_ok())
    }

    /// 400 `no_eligible_deployment`: no deployment of the model can take the
    /// request at all. The request, not the deployments, must change.
    pub(super) fn no_eligible(&self, failures: &[Failure]) -> Response<ProxyBody> {
        let mut e = ApiError::bad_request(
            format!(
                "No deployment of model `{}` can take this request: {}.",
                self.model.name,
                list(failures)
            ),
            None,
        );
        e.code = Some("no_eligible_deployment");
        e.should_retry = Some(false);
        tracing::warn!(message = "Request failed.", request_id = ?self.ctx.id, peer = %self.ctx.peer, key_id = self.ctx.key_id(), model = %self.model.name, attempts = 0, error = %e.message);
        self.error(e, 0)
    }
}

/// Whether `dep`'s upstream model continues a final assistant message (an
/// assistant prefill) as far as the model alone tells: not a Claude model
/// known to refuse one (Claude 4.6 and later:
/// [`crate::translate::request::rejects_prefill`], read once per model,
/// [`crate::providers::ModelRules`]), and not found refusing one since the
/// last reload ([`Deployment::prefill_rejected`], learned by stream
/// continuation). The configured `prefill` of its tier entry is the other
/// half ([`Call::takes_prefill`]).
pub(super) fn model_takes_prefill(dep: &Deployment) -> bool {
    !dep.prefill_rejected() && !dep.upstream.rules(&dep.model).rejects_prefill
}

/// The translated bodies of one request, by target: made once each by
/// `Call::convert`, reused by a retry, a hedge and every deployment of the
/// same target. A target is the deployment's protocol, its upstream model,
/// its Anthropic settings (version, default `max_tokens`) and whether it
/// continues a prefill: what the translation reads. A refusal
/// (untranslatable) is kept too. The lock is taken only on the translated
/// path, never contended (one request's attempts; a hedge at most).
#[derive(Default)]
pub struct Converted(std::sync::Mutex<Vec<Made>>);

/// One translated body (or why there is none), and a deployment of its
/// target.
type Made = (Arc<Deployment>, bool, Result<Bytes, String>);

impl Converted {
    fn same_target(a: &Deployment, b: &Deployment) -> bool {
        a.upstream.wire == b.upstream.wire
            && a.model == b.model
            && a.upstream.config.anthropic == b.upstream.config.anthropic
    }

    /// The body kept for `dep`'s target, made with `prefill` allowed or not.
    pub(super) fn find(&self, dep: &Deployment, prefill: bool) -> Option<Result<Bytes, String>> {
        let made = self.0.lock().unwrap_or_else(|e| e.into_inner());
        made.iter()
            .find(|(d, p, _)| *p == prefill && Self::same_target(d, dep))
            .map(|(_, _, body)| body.clone())
    }

    pub(super) fn keep(&self, dep: &Arc<Deployment>, prefill: bool, body: Result<Bytes, String>) {
        let mut made = self.0.lock().unwrap_or_else(|e| e.into_inner());
        made.push((dep.clone(), prefill, body));
    }

    /// How many bodies are kept.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}
