//! The request path, in DESIGN.md's order. This is the one place where the
//! order of the layers is written:
//!
//! 1. request context ([`RequestContext`]): request id (`x-request-id`,
//!    accepted or generated), peer address, arrival time;
//! 2. path table: operations endpoints, data-plane endpoints, 404, 405
//!    (every error of `POST /v1/messages` and of the paths below it, such
//!    as `/v1/messages/count_tokens`, which Lifeline does not serve, and of
//!    `/v1/models` asked with `anthropic-version`, in Anthropic's shape,
//!    with a `request-id` header beside `x-request-id`);
//!    a `GET`/`HEAD` that would be a 404 goes to the installed
//!    [`crate::extension::Extension`] first (on the status listener, or on
//!    the data-plane listener when there is none), so the data-plane
//!    endpoints never consult it;
//! 3. auth: per-client-IP limits ([`crate::ip_limit`], 429), then client
//!    key → its [`crate::context::Tenant`], recorded in the context (401);
//! 4. body: size limit (413) and slow-client timeout (408); before it,
//!    [`crate::admission`] refuses a priority being shed, and the body's
//!    bytes are reserved against the memory budget as they arrive (503);
//! 5. inspect: JSON validity and nesting depth, `model`, `stream`, the
//!    types of the fields the endpoint requires (400);
//! 6. route: public model (404; also for a model the key may not use),
//!    then the key's limits ([`crate::limit`]): requests and tokens per
//!    minute (429), and the `x-ratelimit-*` headers on the answer;
//! 7. admission: a global in-flight slot, or a place in the priority
//!    queue (503 when shed, or when its key holds its share of the slots
//!    and it would have to queue); the slot and the reservation are held until
//!    the response body ends;
//! 8. the attempt loop ([`crate::attempt::Call`]): balance, attempts,
//!    relay, accounting.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};

use super::{reason, RequestBody, Side};
use crate::admission::memory::{collect, Collect};
use crate::admission::Hold;
use crate::attempt::Call;
use crate::body::ProxyBody;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::providers::{Endpoint, Wire};
use crate::telemetry::{request_id, X_REQUEST_ID};

/// Anthropic's request id header, on the answers to Anthropic's clients.
const REQUEST_ID: header::HeaderName = header::HeaderName::from_static("request-id");

/// The wire of a `GET /v1/models` request: Anthropic's when it carries
/// `anthropic-version` (Anthropic's SDKs always send it).
fn models_wire(h: &http::HeaderMap) -> Wire {
    if h.contains_key(crate::providers::anthropic::VERSION) {
        Wire::Anthropic
    } else {
        Wire::OpenAi
    }
}

/// A JSON answer.
fn json(body: Bytes) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// What a path resolves to.
enum Route {
    Data(Endpoint),
    Models,
    Model,
    Healthz,
    Readyz,
    Metrics,
    Admin,
    WrongMethod,
    Unknown,
}

fn route(side: Side, method: &Method, path: &str, admin_elsewhere: bool) -> Route {
    let post = |e| {
        if method == Method::POST {
            Route::Data(e)
        } else {
            Route::WrongMethod
        }
    };
    let get = |r| {
        if method == Method::GET || method == Method::HEAD {
            r
        } else {
            Route::WrongMethod
        }
    };
    match (side, path) {
        (Side::Status, "/healthz") => get(Route::Healthz),
        (Side::Status, _) => Route::Unknown,
        (_, "/healthz") => get(Route::Healthz),
        (_, "/readyz") => get(Route::Readyz),
        (Side::Admin, "/metrics") => get(Route::Metrics),
        (Side::Data, "/metrics") if !admin_elsewhere => get(Route::Metrics),
        (Side::Admin, p) if p.starts_with("/admin/") => Route::Admin,
        (Side::Data, "/v1/chat/completions") => post(Endpoint::ChatCompletions),
        (Side::Data, "/v1/embeddings") => post(Endpoint::Embeddings),
        (Side::Data, "/v1/images/generations") => post(Endpoint::ImagesGenerations),
        (Side::Data, "/v1/responses") => post(Endpoint::Responses),
        (Side::Data, "/v1/messages") => post(Endpoint::Messages),
        (Side::Data, "/v1/models") => get(Route::Models),
        (Side::Data, p) if p.starts_with("/v1/models/") => get(Route::Model),
        _ => Route::Unknown,
    }
}

/// Serves one request that came in on the `side` listener;
/// `status_elsewhere` when a status listener is bound (the data-plane
/// listener then leaves the extension's public routes to it).
pub async fn handle(
    gw: Gateway,
    side: Side,
    status_elsewhere: bool,
    peer: SocketAddr,
    req: Request<RequestBody>,
) -> Result<Response<ProxyBody>, Infallible> {
    let mut ctx = RequestContext::new(request_id(req.headers().get(&X_REQUEST_ID)), peer);
    let started = ctx.started;
    let live = gw.live();
    let admin_elsewhere = live.config.server.admin_listen.is_some();
    let path = req.uri().path();
    let req_wire = if path == "/v1/messages"
        || path.starts_with("/v1/messages/")
        || (path.starts_with("/v1/models") && models_wire(req.headers()) == Wire::Anthropic)
    {
        Wire::Anthropic
    } else {
        Wire::OpenAi
    };
    let mut resp = match route(side, req.method(), path, admin_elsewhere) {
        Route::Healthz => text(StatusCode::OK, "ok\n"),
        Route::Readyz if gw.is_ready() => text(StatusCode::OK, "ready\n"),
        Route::Readyz => text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        Route::Metrics => {
            let mut r = Response::new(ProxyBody::full(Bytes::from(gw.metrics().encode())));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        // The admin API's own routes read no body (one sent is left
        // unread); its extension routes do, bounded. Boxed, like the data
        // path: it keeps the request future small.
        Route::Admin => {
            Box::pin(crate::admin::handle(
                &gw,
                peer,
                req.map(RequestBody::into_inner),
            ))
            .await
        }
        Route::WrongMethod => {
            ApiError::method_not_allowed(req.method(), req.uri().path()).into_response_for(req_wire)
        }
        Route::Unknown => unknown(&gw, side, status_elsewhere, req, req_wire),
        Route::Models => {
            // Anthropic's SDKs send `anthropic-version` on every request:
            // they get Anthropic's list shape and error shape.
            let wire = models_wire(req.headers());
            match gw.authenticate(&live, peer, req.headers()) {
                Err(e) => e.into_response_for(wire),
                Ok(tenant) => {
                    let (all, created) = (&live.routes.models_json, live.routes.created);
                    let list = match wire {
                        Wire::OpenAi => {
                            crate::limit::models_json(&live.config, all, created, tenant.as_deref())
                        }
                        Wire::Anthropic => crate::providers::anthropic::models_json(
                            live.config
                                .models
                                .iter()
                                .map(|m| m.name.as_str())
                                .filter(|m| tenant.as_ref().is_none_or(|t| t.allows(m))),
                            created,
                        ),
                    };
                    json(list)
                }
            }
        }
        Route::Model => {
            let wire = models_wire(req.headers());
            match gw.authenticate(&live, peer, req.headers()) {
                Err(e) => e.into_response_for(wire),
                Ok(tenant) => {
                    let name = req.uri().path().trim_start_matches("/v1/models/");
                    let allowed = tenant.is_none_or(|t| t.allows(name));
                    match live.routes.models.get(name).filter(|_| allowed) {
                        None => ApiError::unknown_model(name).into_response_for(wire),
                        Some(m) => json(match wire {
                            Wire::OpenAi => Bytes::from(
                                serde_json::json!({
                                    "id": &*m.name, "object": "model", "created": live.routes.created, "owned_by": "lifeline",
                                })
                                .to_string(),
                            ),
                            Wire::Anthropic => Bytes::from(
                                crate::providers::anthropic::model_json(&m.name, live.routes.created)
                                    .to_string(),
                            ),
                        }),
                    }
                }
            }
        }
        Route::Data(endpoint) => match data(&gw, &live, endpoint, req, &mut ctx).await {
            Ok(r) => r,
            Err(e) => {
                gw.metrics().request(
                    &crate::limit::DASH,
                    e.status.as_u16(),
                    started.elapsed().as_secs_f64(),
                );
                if e.code == Some("overloaded") {
                    // Counted in lifeline_admission_shed_total, and shedding
                    // starting or easing is logged once: a surge must not
                    // flood the log with one line per refusal.
                    tracing::debug!(message = "Request shed.", request_id = ?ctx.id, key_id = ctx.key_id(), error = %e.message);
                } else if e.status == StatusCode::UNAUTHORIZED
                    || e.status == StatusCode::TOO_MANY_REQUESTS
                {
                    // A wrong or missing key, an address locked out: any
                    // client can send these at any rate. Counted in
                    // lifeline_auth_failures_total and
                    // lifeline_ip_rate_limited_total; a lockout is logged
                    // once when it starts.
                    tracing::debug!(message = "Request rejected.", request_id = ?ctx.id, key_id = ctx.key_id(), status = e.status.as_u16(), error = %e.message);
                } else {
                    tracing::info!(message = "Request rejected.", request_id = ?ctx.id, key_id = ctx.key_id(), status = e.status.as_u16(), error = %e.message);
                }
                e.into_response_for(endpoint.wire())
            }
        },
    };
    if req_wire == Wire::Anthropic {
        // Anthropic's own header for the request id, beside ours.
        resp.headers_mut()
            .entry(REQUEST_ID)
            .or_insert_with(|| ctx.id.clone());
    }
    resp.headers_mut().entry(X_REQUEST_ID).or_insert(ctx.id);
    Ok(resp)
}

async fn data(
    gw: &Gateway,
    live: &crate::gateway::Live,
    endpoint: Endpoint,
    req: Request<RequestBody>,
    ctx: &mut RequestContext,
) -> Result<Response<ProxyBody>, ApiError> {
    ctx.tenant = gw.authenticate(live, ctx.peer, req.headers())?;
    // Passed to an Anthropic deployment with an Anthropic client's request.
    let beta = match endpoint {
        Endpoint::Messages => req
            .headers()
            .get(crate::providers::anthropic::BETA)
            .cloned(),
        _ => None,
    };
    let server = &live.config.server;
    let limit = server.max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(refused(
            gw,
            reason::BODY_TOO_LARGE,
            ApiError::too_large(limit),
        ));
    }
    // Admission, before the body is read: a priority being shed is refused
    // without reading anything, and the body's bytes are reserved against
    // the memory budget as they arrive, before they are buffered (never
    // on the declared length's word: a silent uploader holds nothing). The
    // slot itself is taken below, after inspect: a slow uploader holds
    // budgeted bytes, not one of the gateway's slots, and the queue wait
    // can be bounded by the model's request deadline.
    let (admission, priority) = (gw.admission(), ctx.priority());
    admission.check(priority)?;
    let memory = admission.reserve(priority, 0)?;
    let body = match tokio::time::timeout(
        server.body_read_timeout,
        collect(req.into_body(), limit, declared, 0, &memory),
    )
    .await
    {
        Err(_) => return Err(refused(gw, reason::BODY_TIMEOUT, ApiError::body_timeout())),
        Ok(Err(Collect::TooLarge)) => {
            return Err(refused(
                gw,
                reason::BODY_TOO_LARGE,
                ApiError::too_large(limit),
            ))
        }
        Ok(Err(Collect::Memory(shed))) => return Err(shed.into()),
        Ok(Err(Collect::Read(e))) => {
            return Err(ApiError::bad_request(
                format!("The request body could not be read: {e}."),
                None,
            ))
        }
        Ok(Ok(body)) => body,
    };
    // The copy sent upstream (with the upstream model name spliced in),
    // which the answer's buffer may take over once it is sent.
    memory.grow(body.len() as u64)?;
    memory.set_spare(body.len() as u64);
    let inspected = crate::request::inspect_within(endpoint, &body, server.max_json_depth)
        .map_err(|e| match e.code {
            Some(crate::request::JSON_TOO_DEEP) => refused(gw, reason::JSON_DEPTH, e),
            _ => e,
        })?;
    let allowed = crate::limit::allows(ctx, &inspected.model);
    let Some(model) = live.routes.models.get(&inspected.model).filter(|_| allowed) else {
        return Err(ApiError::unknown_model(&inspected.model));
    };
    let (metrics, len) = (gw.metrics(), body.len());
    let mut grant = match crate::limit::admit(gw.limiter(), metrics, ctx, endpoint, &inspected, len)
    {
        Ok(grant) => grant,
        Err(refused) => return Ok(*refused),
    };
    // The global slot last: a key over its own limits takes no place in
    // the queue. A shed request is not made: its token charge and its
    // request unit are refunded.
    let deadline = ctx.started + model.policy.request_timeout;
    let key = ctx.tenant.as_ref().map(|t| &t.id);
    let permit = match admission.admit(priority, key, deadline).await {
        Ok(permit) => permit,
        Err(shed) => {
            if let Some(charge) = ctx.charge.take() {
                charge.settle(0);
            }
            grant.refund_request();
            return Err(shed.into());
        }
    };
    let call = Call {
        metrics: gw.metrics().clone(),
        model: model.clone(),
        endpoint,
        body,
        inspected,
        beta,
        ctx: ctx.clone(),
        converted: Default::default(),
        hold: Hold {
            permit: Some(permit),
            memory: Some(memory),
        },
    };
    // Boxed: the attempt loop's state is a few KiB, and hyper moves the
    // whole request future into its dispatcher once per request; boxed,
    // that move is a pointer (measured with callgrind: ~9,000 instructions
    // of memcpy per request otherwise).
    let mut resp = Box::pin(call.run()).await;
    grant.headers(resp.headers_mut());
    Ok(resp)
}

/// A path the table does not know: the extension's public route, if it is
/// served on this listener (the status listener; the data-plane listener
/// when there is none), the request is a `GET` or `HEAD`, and the extension
/// answers it; otherwise 404. A `HEAD` gets the answer's head, with the
/// length its body would have (the body's, or the extension's own
/// `content-length` when it answered without the body), and no body.
/// The 404 is in the shape of `wire` (Anthropic's below `/v1/messages/`).
fn unknown(
    gw: &Gateway,
    side: Side,
    status_elsewhere: bool,
    req: Request<RequestBody>,
    wire: Wire,
) -> Response<ProxyBody> {
    let public = match side {
        Side::Status => true,
        Side::Data => !status_elsewhere,
        Side::Admin => false,
    };
    let head = req.method() == Method::HEAD;
    if public && (head || req.method() == Method::GET) {
        if let Some(ext) = gw.extension() {
            let (parts, _body) = req.into_parts();
            return match ext.public(&parts) {
                Some(resp) => {
                    let (mut parts, body) = resp.into_parts();
                    if head {
                        // An extension that already left the body out of
                        // its HEAD answer has set the length it would have.
                        if !body.is_empty() || !parts.headers.contains_key(header::CONTENT_LENGTH) {
                            parts
                                .headers
                                .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
                        }
                        return Response::from_parts(parts, ProxyBody::full(Bytes::new()));
                    }
                    Response::from_parts(parts, ProxyBody::full(body))
                }
                None => {
                    ApiError::unknown_path(&parts.method, parts.uri.path()).into_response_for(wire)
                }
            };
        }
    }
    ApiError::unknown_path(req.method(), req.uri().path()).into_response_for(wire)
}

/// Counts a refusal by a data-plane listener limit (rare: the label lookup
/// is paid only then).
fn refused(gw: &Gateway, reason: &'static str, e: ApiError) -> ApiError {
    gw.metrics()
        .listener_refusal(Side::Data.label(), reason)
        .inc();
    e
}

fn text(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
