//! The status side's routes, installed in the gateway as its
//! [`Extension`]: the public page from pre-rendered bytes (no store query
//! per request), and the admin API's incident, maintenance and webhook
//! routes (on a blocking thread, since the store waits on disk, and on a
//! store connection of their own, so an operator waits at most the store's
//! busy timeout, never behind the driver's writes as well).

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Response};
use lifeline_core::extension::{AdminFuture, Extension};
use lifeline_status::admin::{self, AdminRequest};

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
                admin::handle(&*store, &components, &req)
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
}
