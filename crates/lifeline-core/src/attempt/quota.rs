//! What an attempt counts against its provider's quotas
//! ([`crate::health::quota`]): one request, and its tokens estimated the
//! way the per-key limits estimate them (`crate::limit::estimate`: the
//! body's bytes / 4 for the prompt, plus the request's output allowance),
//! counted when the attempt is sent. Providers without `rpm`/`tpm` count
//! nothing, and nothing is estimated for them.
//!
//! With a `tpm`, the attempt that answers is corrected once its answer's
//! `usage` is known ([`settle`] for a whole answer, the relay's
//! [`crate::relay::StreamEnd`] for a stream): the tokens it did not use
//! come off the provider's count ([`QuotaCharge`]). An answer without
//! `usage`, a failed attempt and a continued stream keep the estimate.

use crate::health::quota::QuotaCharge;
use crate::providers::Endpoint;
use crate::request::Inspected;
use crate::route::Deployment;
use crate::translate::Wire;

/// Output tokens assumed per choice when the request sets no maximum, and
/// for a continuation (whose allowance is what is left of the client's):
/// the per-key limits' `DEFAULT_OUTPUT_TOKENS`.
pub(super) const DEFAULT_OUTPUT: u64 = 256;

/// The output allowance of a request: its own maximum times its choices,
/// else [`DEFAULT_OUTPUT`] per choice; nothing for embeddings and images.
pub(super) fn output_allowance(endpoint: Endpoint, inspected: &Inspected) -> u64 {
    let choices = u64::from(inspected.choices);
    match endpoint {
        Endpoint::Embeddings | Endpoint::ImagesGenerations => 0,
        Endpoint::ChatCompletions | Endpoint::Responses | Endpoint::Messages => inspected
            .max_output
            .unwrap_or(DEFAULT_OUTPUT)
            .saturating_mul(choices),
    }
}

/// Counts an attempt of `body_len` bytes with `output()` tokens allowed
/// against `dep`'s provider's quotas, if it has any (else nothing is
/// estimated). With a token quota, returns the charge its answer's usage
/// corrects.
pub(super) fn count(
    dep: &Deployment,
    body_len: usize,
    output: impl FnOnce() -> u64,
) -> Option<QuotaCharge> {
    let meter = dep.upstream.quota.as_ref()?;
    let prompt = (body_len as u64).div_ceil(4);
    let estimate = prompt.saturating_add(output());
    meter.sent(estimate);
    meter.watches_tokens().then(|| QuotaCharge {
        meter: meter.clone(),
        estimate,
    })
}

/// Corrects a whole answer's charge with its `usage` (in the client's
/// `wire`), if it has one.
pub(super) fn settle(charge: Option<&QuotaCharge>, wire: Wire, body: &[u8]) {
    if let Some(c) = charge {
        if let Some(used) = crate::providers::answer_tokens(wire, body) {
            c.settle(used);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same estimate as the per-key token limit's.
    #[test]
    fn the_estimate_is_the_per_key_limits() {
        let chat: &[u8] = br#"{"model":"m","n":2,"max_tokens":50,"messages":[{"role":"user","content":"hello there"}]}"#;
        let embed: &[u8] = br#"{"model":"m","input":"hello there"}"#;
        for (endpoint, body) in [
            (Endpoint::ChatCompletions, chat),
            (Endpoint::Embeddings, embed),
        ] {
            let inspected =
                crate::request::inspect(endpoint, body).unwrap_or_else(|e| panic!("{e:?}"));
            let limit = crate::limit::estimate(endpoint, &inspected, body.len());
            let prompt = (body.len() as u64).div_ceil(4);
            assert_eq!(prompt, limit.prompt);
            assert_eq!(output_allowance(endpoint, &inspected), limit.output);
        }
        let bare = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        let inspected = crate::request::inspect(Endpoint::ChatCompletions, bare)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let limit = crate::limit::estimate(Endpoint::ChatCompletions, &inspected, bare.len());
        assert_eq!(
            output_allowance(Endpoint::ChatCompletions, &inspected),
            limit.output
        );
        assert_eq!(DEFAULT_OUTPUT, crate::limit::DEFAULT_OUTPUT_TOKENS);
    }
}
