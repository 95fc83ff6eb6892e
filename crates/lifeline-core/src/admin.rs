//! The admin API, on its own listener, behind a bearer token.
//!
//! - `GET /admin/deployments`: every deployment's state (breaker, latency,
//!   error rate, in-flight, drain).
//! - `POST /admin/deployments/{provider}/{model}/drain` and `/undrain`:
//!   stop sending new attempts to a deployment (in-flight ones finish), and
//!   resume.
//! - `POST /admin/reload`: re-read the config file; an invalid file is
//!   rejected with its errors and the running config kept.
//!
//! Without `[admin].token` these answer 403: an admin API without a token
//! would let anyone on the network drain deployments. A wrong token counts
//! against the client's address like a wrong key on the data plane
//! ([`crate::ip_limit`], `ip_auth_failures_per_minute`, its own table): the
//! one that exhausts them locks the address out of the admin API (429 with
//! `Retry-After`, the token not checked), for ever longer.
//! `lifeline_admin_auth_failures_total` counts them.
//!
//! Any other path under `/admin/` goes, once the token is checked, to the
//! installed [`crate::extension::Extension`] (the status page's incidents,
//! maintenance, subscribers), with its body read first (up to
//! [`MAX_ADMIN_BODY_BYTES`], 413 above, within `body_read_timeout_ms`); 404
//! when there is none or it does not know the path; the request carries an
//! [`AdminCaller`] (the token's id and the client's address). The admin
//! API's own routes read no body.
//!
//! Drains, undrains and reloads are logged and handed to the extension's
//! [`crate::extension::Extension::audit`] (the binary writes them to its
//! audit log, off the request path); [`audit`] records a reload on
//! `SIGHUP` the same way.

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::body::ProxyBody;
use crate::extension::{AdminCaller, AuditEvent, MAX_ADMIN_BODY_BYTES};
use crate::gateway::Gateway;

fn json(status: StatusCode, value: serde_json::Value) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(Bytes::from(value.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: StatusCode, message: &str) -> Response<ProxyBody> {
    json(status, serde_json::json!({"error": {"message": message}}))
}

/// Records an admin action of the gateway's own (the admin API's, or a
/// reload on `SIGHUP` with [`AdminCaller::local`]): an `Admin action.` log
/// line, and the extension's [`crate::extension::Extension::audit`].
pub fn audit(gw: &Gateway, caller: &AdminCaller, action: &'static str, target: &str) {
    tracing::info!(message = "Admin action.", actor = %caller.token_id, source = %caller.source(), action, target);
    if let Some(ext) = gw.extension() {
        ext.audit(AuditEvent {
            caller: caller.clone(),
            action,
            target: target.to_owned(),
        });
    }
}

/// Serves one `/admin/...` request from `peer`.
pub async fn handle(
    gw: &Gateway,
    peer: std::net::SocketAddr,
    mut req: Request<Incoming>,
) -> Response<ProxyBody> {
    let live = gw.live();
    let Some(token) = live.config.admin.token.as_ref() else {
        return error(
            StatusCode::FORBIDDEN,
            "The admin API is disabled: set [admin] token in the config.",
        );
    };
    // Wrong tokens lock the client's address out, as wrong keys do on the
    // data plane (its own table; one atomic load while nobody is locked out).
    let ip_cfg = &live.config.server.ip;
    let limits = gw.admin_ip_limits();
    let client = || crate::ip_limit::client_ip(peer, req.headers(), &ip_cfg.trusted_proxies);
    if limits.any_locked_out() {
        if let Err(refused) = limits.admit(ip_cfg, client(), false, tokio::time::Instant::now()) {
            gw.metrics().ip_rate_limited("admin_auth_failures");
            let secs = refused.retry_after.as_secs_f64().ceil().max(1.0);
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("Too many wrong admin tokens from your address. Try again in {secs} s."),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs as u64));
            return r;
        }
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !constant_time_eq(presented.as_bytes(), token.expose().as_bytes()) {
        // A missing token guesses nothing.
        if !presented.is_empty() {
            gw.metrics().admin_auth_failure();
            let ip = client();
            if let Some(lockout) = limits.failed(ip_cfg, ip, tokio::time::Instant::now()) {
                tracing::warn!(message = "Client address locked out of the admin API after wrong admin tokens.", client = %ip, lockout_s = lockout.as_secs_f64());
            }
        }
        return error(
            StatusCode::UNAUTHORIZED,
            "Missing or wrong admin token (Authorization: Bearer ...).",
        );
    }
    let caller = AdminCaller {
        token_id: gw.admin_token_id(token.expose()),
        peer: Some(peer),
    };
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if path == "/admin/deployments" && method == Method::GET {
        let list: Vec<_> = live.deployments.iter().map(|d| d.snapshot()).collect();
        return json(StatusCode::OK, serde_json::json!({ "deployments": list }));
    }
    if path == "/admin/reload" && method == Method::POST {
        return match gw.reload().await {
            Ok(()) => {
                audit(gw, &caller, "config.reload", "-");
                json(StatusCode::OK, serde_json::json!({"reloaded": true}))
            }
            Err(e) => {
                audit(gw, &caller, "config.reload_rejected", "-");
                json(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    serde_json::json!({"reloaded": false, "error": {"message": e}}),
                )
            }
        };
    }
    if let Some(rest) = path.strip_prefix("/admin/deployments/") {
        let (id, drain) = if let Some(id) = rest.strip_suffix("/drain") {
            (id, true)
        } else if let Some(id) = rest.strip_suffix("/undrain") {
            (id, false)
        } else {
            req.extensions_mut().insert(caller);
            return extension(gw, req).await;
        };
        if method != Method::POST {
            return error(StatusCode::METHOD_NOT_ALLOWED, "Use POST.");
        }
        return match gw.set_drained(id, drain).await {
            Some(d) => {
                let action = if drain {
                    "deployment.drain"
                } else {
                    "deployment.undrain"
                };
                audit(gw, &caller, action, id);
                json(
                    StatusCode::OK,
                    serde_json::to_value(d.snapshot()).unwrap_or_default(),
                )
            }
            None => error(StatusCode::NOT_FOUND, &format!("No deployment `{id}`.")),
        };
    }
    req.extensions_mut().insert(caller);
    extension(gw, req).await
}

/// An authenticated admin request the admin API has no route for: the
/// extension's, if one is installed and knows it; 404 otherwise.
async fn extension(gw: &Gateway, req: Request<Incoming>) -> Response<ProxyBody> {
    let not_found = || error(StatusCode::NOT_FOUND, "Unknown admin path.");
    let Some(ext) = gw.extension() else {
        return not_found();
    };
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("The request body is over {MAX_ADMIN_BODY_BYTES} bytes."),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_ADMIN_BODY_BYTES as u64) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    let limit = gw.live().config.server.body_read_timeout;
    let read = Limited::new(body, MAX_ADMIN_BODY_BYTES).collect();
    let body = match tokio::time::timeout(limit, read).await {
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                "The request body did not arrive in time.",
            )
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Ok(Err(e)) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("The request body could not be read: {e}."),
            )
        }
        Ok(Ok(c)) => c.to_bytes(),
    };
    match ext.admin(parts, body).await {
        Some(resp) => resp.map(ProxyBody::full),
        None => not_found(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
