//! The status side's routes, installed in the gateway as its
//! [`Extension`]: the public page from pre-rendered bytes (no store query
//! per request), and the admin API's incident, maintenance and webhook
//! routes (on a blocking thread, since the store waits on disk, and on a
//! store connection of their own, so an operator waits at most the store's
//! busy timeout, never behind the driver's writes as well).
//!
//! It also keeps the audit log: every successful admin write through these
//! routes (incidents, maintenance, webhooks, keys), and the gateway's own
//! admin actions ([`Extension::audit`]: drain, undrain, reload), are
//! appended to the store with the caller's token id and address, on a
//! blocking thread after the action. An entry the store cannot take is
//! logged as a warning and lost; the action stands.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Response};
use lifeline_core::extension::{AdminCaller, AdminFuture, AuditEvent, Extension};
use lifeline_status::admin::{self, AdminRequest};
use lifeline_store::audit::NewAuditEntry;
use lifeline_store::StatusStore;

use super::Shared;

/// The routes, over the shared state.
pub struct StatusExtension {
    shared: Arc<Shared>,
}

impl StatusExtension {
    /// Routes over `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl Extension for StatusExtension {
    fn public(&self, req: &http::request::Parts) -> Option<Response<Bytes>> {
        let rendered = self.shared.rendered.load();
        let accept_language = req
            .headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok());
        rendered.as_ref()?.serve(
            &req.method,
            req.uri.path(),
            req.uri.query(),
            accept_language,
        )
    }

    fn admin(&self, parts: http::request::Parts, body: Bytes) -> AdminFuture {
        let shared = self.shared.clone();
        Box::pin(async move {
            let now_ms = shared.clock.now_ms();
            let components = shared.components.load_full();
            let store = shared.admin.clone();
            let answer = tokio::task::spawn_blocking(move || {
                let req = AdminRequest {
                    method: parts.method.as_str(),
                    path: parts.uri.path(),
                    query: parts.uri.query(),
                    body: &body,
                    now_ms,
                };
                let answer = admin::handle(&*store, &components, &req)?;
                if let Some((action, target)) = admin::audit_action(req.method, req.path, &answer) {
                    let caller = parts.extensions.get::<AdminCaller>();
                    let entry = NewAuditEntry {
                        at_ms: wall_ms(),
                        actor: caller.map_or_else(|| "-".to_owned(), |c| c.token_id.clone()),
                        source: caller.map_or_else(|| "-".to_owned(), AdminCaller::source),
                        action,
                        target,
                    };
                    record(&*store, &entry);
                }
                Some(answer)
            })
            .await
            .ok()??;
            if answer.changed {
                shared.poke.notify_one();
            }
            let mut r = Response::new(Bytes::from(answer.body.to_string()));
            *r.status_mut() = http::StatusCode::from_u16(answer.status)
                .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Some(r)
        })
    }

    fn audit(&self, event: AuditEvent) {
        let entry = NewAuditEntry {
            at_ms: wall_ms(),
            source: event.caller.source(),
            actor: event.caller.token_id,
            action: event.action.to_owned(),
            target: event.target,
        };
        let store = self.shared.admin.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(move || record(&*store, &entry));
            }
            Err(_) => record(&*store, &entry),
        }
    }
}

/// The wall clock (unix ms): the audit log records real time, whatever
/// the status page's clock speed.
fn wall_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Appends `entry` to the audit log; a failure is a warning, never the
/// action's failure.
pub fn record(store: &dyn StatusStore, entry: &NewAuditEntry) {
    if let Err(e) = store.record_audit(entry) {
        tracing::warn!(message = "An audit log entry was lost: the store could not be written.", action = %entry.action, target = %entry.target, actor = %entry.actor, error = %e);
    }
}
