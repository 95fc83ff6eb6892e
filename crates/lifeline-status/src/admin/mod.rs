//! The status side's admin API: incidents, their updates and postmortems,
//! and scheduled maintenance, written by operators.
//!
//! Served on the gateway's admin listener behind its token (the gateway
//! checks the token and reads the body, bounded, before calling
//! [`handle`]). Every write is acknowledged only after the store has it on
//! disk. Synchronous: the caller runs it on a blocking thread.
//!
//! | method and path | body | does |
//! |---|---|---|
//! | `GET /admin/incidents?limit=N` | | the latest incidents, drafts included |
//! | `POST /admin/incidents` | `{name, body, status?, impact?, components?, draft?}` | opens an incident |
//! | `GET /admin/incidents/{id}` | | one incident with its updates |
//! | `POST /admin/incidents/{id}/updates` | `{status, body}` | posts an update (also `resolved`, `postmortem`) |
//! | `POST /admin/incidents/{id}/resolve` | `{body?}` | resolves it |
//! | `POST /admin/incidents/{id}/publish` | | publishes a draft |
//! | `POST /admin/incidents/{id}/eta` | `{minutes}` or `{minutes: null}` | sets (or clears) the operator's restoration estimate |
//! | `GET /admin/maintenances?limit=N` | | the latest maintenance windows |
//! | `POST /admin/maintenances` | `{name, scheduled_for, scheduled_until, components?, body?}` | schedules a window |
//! | `DELETE /admin/maintenances/{id}` (or `POST …/{id}/cancel`) | | cancels it |
//! | `GET /admin/webhooks` | | subscriptions (never their secrets) |
//! | `POST /admin/webhooks` | `{url, format?, components?, secret?}` | subscribes; answers the signing secret once |
//! | `DELETE /admin/webhooks/{id}` | | unsubscribes |
//! | `GET /admin/webhooks/{id}/deliveries` | | its delivery log, newest first |
//! | `GET /admin/keys` | | virtual client keys (never a key nor its hash) |
//! | `POST /admin/keys` | `{name, priority?, rpm?, tpm?, models?, expires?}` | creates a key ([`crate::keys`]); answers the key once |
//! | `DELETE /admin/keys/{id}` | | revokes it |
//! | `GET /admin/audit?limit=N&before=ID` | | the audit log, newest first; `before` pages on |
//!
//! Every successful write is named by [`audit_action`], for the audit log
//! the caller records.
//!
//! Times in request bodies are RFC 3339 strings (`"2026-12-01T02:00:00Z"`)
//! or unix milliseconds; answers carry unix milliseconds, as the store does.
//! Unknown fields, wrong types, unknown components and empty titles are
//! refused with 400 and a message naming the field; nothing is written.

use lifeline_store::webhook::{NewSubscription, WebhookFormat};
use lifeline_store::{
    Impact, IncidentStatus, MaintenanceStatus, NewIncident, NewMaintenance, StatusStore, StoreError,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

/// Longest incident or maintenance title.
pub const MAX_TITLE: usize = 200;

/// Longest update or announcement body.
pub const MAX_BODY: usize = 64 * 1024;

/// One admin request, as the listener read it.
#[derive(Debug, Clone, Copy)]
pub struct AdminRequest<'a> {
    /// `GET`, `POST`, `DELETE`, ...
    pub method: &'a str,
    /// The path, starting with `/admin/`.
    pub path: &'a str,
    /// The query string, without `?`.
    pub query: Option<&'a str>,
    /// The body (already bounded by the listener).
    pub body: &'a [u8],
    /// The current time (unix ms).
    pub now_ms: i64,
}

/// The answer to an admin request.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminAnswer {
    /// HTTP status code.
    pub status: u16,
    /// JSON body.
    pub body: Value,
    /// Whether the store changed (the page must be rebuilt).
    pub changed: bool,
}

impl AdminAnswer {
    fn ok(status: u16, body: Value, changed: bool) -> Self {
        Self {
            status,
            body,
            changed,
        }
    }

    fn error(status: u16, message: impl Into<String>) -> Self {
        Self::ok(status, json!({"error": {"message": message.into()}}), false)
    }
}

/// Serves one request under `/admin/incidents`, `/admin/maintenances`,
/// `/admin/webhooks`, `/admin/keys` or `/admin/audit`; `None` for any other
/// path. `components` are the ids
/// the page knows: an incident, window or subscription may only name those.
pub fn handle(
    store: &dyn StatusStore,
    components: &[String],
    req: &AdminRequest<'_>,
) -> Option<AdminAnswer> {
    let path = req.path.trim_end_matches('/');
    let rest = path.strip_prefix("/admin/")?;
    let segments: Vec<&str> = rest.split('/').collect();
    let answer = match (req.method, segments.as_slice()) {
        ("GET", ["incidents"]) => list_incidents(store, req.query),
        ("POST", ["incidents"]) => open_incident(store, components, req),
        ("GET", ["incidents", id]) => with_id(id, |id| get_incident(store, id)),
        ("POST", ["incidents", id, "updates"]) => {
            with_id(id, |id| post_update(store, id, req, None))
        }
        ("POST", ["incidents", id, "resolve"]) => with_id(id, |id| {
            post_update(store, id, req, Some(IncidentStatus::Resolved))
        }),
        ("POST", ["incidents", id, "publish"]) => {
            with_id(id, |id| match store.publish_incident(id, req.now_ms) {
                Ok(i) => AdminAnswer::ok(200, json!(i), true),
                Err(e) => store_error(e),
            })
        }
        ("POST", ["incidents", id, "eta"]) => with_id(id, |id| set_eta(store, id, req)),
        ("GET", ["maintenances"]) => list_maintenances(store, req.query),
        ("POST", ["maintenances"]) => schedule(store, components, req),
        ("DELETE", ["maintenances", id]) | ("POST", ["maintenances", id, "cancel"]) => {
            with_id(id, |id| cancel(store, id, req.now_ms))
        }
        ("GET", ["webhooks"]) => match store.subscriptions() {
            Ok(list) => AdminAnswer::ok(200, json!({ "webhooks": list }), false),
            Err(e) => store_error(e),
        },
        ("POST", ["webhooks"]) => subscribe(store, components, req),
        ("DELETE", ["webhooks", id]) => with_id(id, |id| match store.delete_subscription(id) {
            Ok(true) => AdminAnswer::ok(200, json!({"deleted": id}), false),
            Ok(false) => AdminAnswer::error(404, format!("No webhook {id}.")),
            Err(e) => store_error(e),
        }),
        ("GET", ["webhooks", id, "deliveries"]) => with_id(id, |id| {
            let n = match limit(req.query) {
                Ok(n) => n,
                Err(e) => return e,
            };
            match store.deliveries(id, n) {
                Ok(list) => AdminAnswer::ok(200, json!({ "deliveries": list }), false),
                Err(e) => store_error(e),
            }
        }),
        ("GET", ["keys"]) => match store.list_keys(usize::MAX) {
            Ok(list) => AdminAnswer::ok(200, json!({ "keys": list }), false),
            Err(e) => store_error(e),
        },
        ("POST", ["keys"]) => create_key(store, req),
        ("DELETE", ["keys", id]) => with_id(id, |id| match store.revoke_key(id, req.now_ms) {
            Ok(k) => AdminAnswer::ok(200, json!({ "revoked": k }), false),
            Err(e) => store_error(e),
        }),
        ("GET", ["audit"]) => audit_log(store, req.query),
        (_, ["incidents", ..])
        | (_, ["maintenances", ..])
        | (_, ["webhooks", ..])
        | (_, ["keys", ..])
        | (_, ["audit"]) => {
            AdminAnswer::error(405, "Method not allowed here (see the README's admin API).")
        }
        _ => return None,
    };
    Some(answer)
}

/// The audit log's name for a successful write (`action`, `target`):
/// `incident.create`, `key.revoke`, ...; `None` for a read or a refusal.
pub fn audit_action(method: &str, path: &str, answer: &AdminAnswer) -> Option<(String, String)> {
    if method == "GET" || method == "HEAD" || !(200..300).contains(&answer.status) {
        return None;
    }
    let rest = path.trim_end_matches('/').strip_prefix("/admin/")?;
    let segments: Vec<&str> = rest.split('/').collect();
    let created = || {
        answer.body["id"]
            .as_i64()
            .map_or_else(|| "-".to_owned(), |id| id.to_string())
    };
    let (action, target) = match (method, segments.as_slice()) {
        ("POST", ["incidents"]) => ("incident.create", created()),
        ("POST", ["incidents", id, what]) => {
            let action = match *what {
                "updates" => "incident.update",
                "resolve" => "incident.resolve",
                "publish" => "incident.publish",
                "eta" => "incident.eta",
                _ => return None,
            };
            (action, (*id).to_owned())
        }
        ("POST", ["maintenances"]) => ("maintenance.create", created()),
        ("DELETE", ["maintenances", id]) | ("POST", ["maintenances", id, "cancel"]) => {
            ("maintenance.cancel", (*id).to_owned())
        }
        ("POST", ["webhooks"]) => ("webhook.create", created()),
        ("DELETE", ["webhooks", id]) => ("webhook.delete", (*id).to_owned()),
        ("POST", ["keys"]) => ("key.create", created()),
        ("DELETE", ["keys", id]) => ("key.revoke", (*id).to_owned()),
        _ => return None,
    };
    Some((action.to_owned(), target))
}

fn create_key(store: &dyn StatusStore, req: &AdminRequest<'_>) -> AdminAnswer {
    let parsed: crate::keys::KeyRequest = match serde_json::from_slice(req.body) {
        Ok(r) => r,
        Err(e) => return AdminAnswer::error(400, format!("Invalid JSON body: {e}")),
    };
    match crate::keys::create(store, parsed, req.now_ms) {
        Ok(created) => {
            let mut v = json!(created.info);
            v["key"] = json!(created.key);
            AdminAnswer::ok(201, v, false)
        }
        Err(crate::keys::CreateError::Invalid(m)) => AdminAnswer::error(400, m),
        Err(crate::keys::CreateError::Store(e)) => store_error(e),
        Err(e @ crate::keys::CreateError::Random(_)) => {
            tracing::error!(message = "A key could not be generated.", error = %e);
            AdminAnswer::error(503, "A key could not be generated; nothing was changed.")
        }
    }
}

fn audit_log(store: &dyn StatusStore, query: Option<&str>) -> AdminAnswer {
    let n = match limit(query) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let mut before = None;
    for pair in query.unwrap_or_default().split('&') {
        if let Some(v) = pair.strip_prefix("before=") {
            match v.parse::<i64>() {
                Ok(id) => before = Some(id),
                Err(_) => return AdminAnswer::error(400, "`before` must be an entry id."),
            }
        }
    }
    match store.audit_log(n, before) {
        Ok(list) => {
            let next = (list.len() == n)
                .then(|| list.last().map(|e| e.id))
                .flatten();
            AdminAnswer::ok(200, json!({ "entries": list, "next_before": next }), false)
        }
        Err(e) => store_error(e),
    }
}

fn with_id(text: &str, f: impl FnOnce(i64) -> AdminAnswer) -> AdminAnswer {
    match text.parse::<i64>() {
        Ok(id) if id > 0 => f(id),
        _ => AdminAnswer::error(404, format!("No such id `{}`.", text.escape_default())),
    }
}

fn store_error(e: StoreError) -> AdminAnswer {
    match e {
        StoreError::NotFound { what, id } => AdminAnswer::error(404, format!("No {what} {id}.")),
        other => {
            tracing::error!(message = "Store write failed.", error = %other);
            AdminAnswer::error(
                503,
                "The store could not be written; nothing was changed. Try again.",
            )
        }
    }
}

fn limit(query: Option<&str>) -> Result<usize, AdminAnswer> {
    let Some(q) = query else { return Ok(50) };
    for pair in q.split('&') {
        if let Some(v) = pair.strip_prefix("limit=") {
            return match v.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => Ok(n),
                _ => Err(AdminAnswer::error(400, "`limit` must be 1 to 1000.")),
            };
        }
    }
    Ok(50)
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, AdminAnswer> {
    if body.is_empty() {
        return serde_json::from_slice(b"{}").map_err(|e| AdminAnswer::error(400, e.to_string()));
    }
    serde_json::from_slice(body)
        .map_err(|e| AdminAnswer::error(400, format!("Invalid JSON body: {e}")))
}

fn title(name: &str) -> Result<String, AdminAnswer> {
    let t = name.trim();
    if t.is_empty() {
        return Err(AdminAnswer::error(400, "`name` must not be empty."));
    }
    if t.chars().count() > MAX_TITLE {
        return Err(AdminAnswer::error(
            400,
            format!("`name` is longer than {MAX_TITLE} characters."),
        ));
    }
    Ok(t.to_string())
}

fn body_text(body: &str, field: &str) -> Result<String, AdminAnswer> {
    if body.len() > MAX_BODY {
        return Err(AdminAnswer::error(
            400,
            format!("`{field}` is longer than {MAX_BODY} bytes."),
        ));
    }
    Ok(body.to_string())
}

fn known(components: &[String], named: &[String]) -> Result<Vec<String>, AdminAnswer> {
    for c in named {
        if !components.iter().any(|k| k == c) {
            return Err(AdminAnswer::error(
                400,
                format!(
                    "`components`: no component `{}` (known: {}).",
                    c.escape_default(),
                    components.join(", ")
                ),
            ));
        }
    }
    let mut v = named.to_vec();
    v.sort();
    v.dedup();
    Ok(v)
}

/// A time in a request body: RFC 3339 or unix milliseconds.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum When {
    Millis(i64),
    Text(String),
}

impl When {
    fn millis(&self, field: &str) -> Result<i64, AdminAnswer> {
        match self {
            When::Millis(ms) => Ok(*ms),
            When::Text(t) => chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| d.timestamp_millis())
                .map_err(|e| {
                    AdminAnswer::error(
                        400,
                        format!(
                            "`{field}`: not an RFC 3339 time ({e}), e.g. 2026-12-01T02:00:00Z."
                        ),
                    )
                }),
        }
    }
}

fn list_incidents(store: &dyn StatusStore, query: Option<&str>) -> AdminAnswer {
    let n = match limit(query) {
        Ok(n) => n,
        Err(e) => return e,
    };
    match store.list_incidents(n) {
        Ok(list) => AdminAnswer::ok(200, json!({ "incidents": list }), false),
        Err(e) => store_error(e),
    }
}

fn get_incident(store: &dyn StatusStore, id: i64) -> AdminAnswer {
    match store.incident(id) {
        Ok(Some(i)) => AdminAnswer::ok(200, json!(i), false),
        Ok(None) => AdminAnswer::error(404, format!("No incident {id}.")),
        Err(e) => store_error(e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenIncident {
    name: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    status: Option<IncidentStatus>,
    #[serde(default)]
    impact: Option<Impact>,
    #[serde(default)]
    components: Vec<String>,
    #[serde(default)]
    draft: bool,
}

fn open_incident(
    store: &dyn StatusStore,
    components: &[String],
    req: &AdminRequest<'_>,
) -> AdminAnswer {
    let run = || -> Result<AdminAnswer, AdminAnswer> {
        let o: OpenIncident = parse(req.body)?;
        let status = o.status.unwrap_or(IncidentStatus::Investigating);
        if !status.is_open() {
            return Err(AdminAnswer::error(
                400,
                "`status`: a new incident is investigating, identified or monitoring.",
            ));
        }
        let new = NewIncident {
            name: title(&o.name)?,
            status,
            impact: o.impact.unwrap_or(Impact::Minor),
            body: body_text(&o.body, "body")?,
            components: known(components, &o.components)?,
            automatic: false,
            draft: o.draft,
            cause: None,
            at_ms: req.now_ms,
        };
        match store.create_incident(&new) {
            Ok(i) => Ok(AdminAnswer::ok(201, json!(i), true)),
            Err(e) => Err(store_error(e)),
        }
    };
    run().unwrap_or_else(|e| e)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostUpdate {
    #[serde(default)]
    status: Option<IncidentStatus>,
    #[serde(default)]
    body: String,
}

fn post_update(
    store: &dyn StatusStore,
    id: i64,
    req: &AdminRequest<'_>,
    forced: Option<IncidentStatus>,
) -> AdminAnswer {
    let run = || -> Result<AdminAnswer, AdminAnswer> {
        let u: PostUpdate = parse(req.body)?;
        let status = match (forced, u.status) {
            (Some(f), _) => f,
            (None, Some(s)) => s,
            (None, None) => {
                return Err(AdminAnswer::error(
                    400,
                    "`status` is required: investigating, identified, monitoring, resolved or postmortem.",
                ))
            }
        };
        let body = if u.body.trim().is_empty() && status == IncidentStatus::Resolved {
            "This incident has been resolved.".to_string()
        } else if u.body.trim().is_empty() {
            return Err(AdminAnswer::error(400, "`body` must not be empty."));
        } else {
            body_text(&u.body, "body")?
        };
        match store.add_update(id, status, &body, req.now_ms) {
            Ok(update) => Ok(AdminAnswer::ok(201, json!(update), true)),
            Err(e) => Err(store_error(e)),
        }
    };
    run().unwrap_or_else(|e| e)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetEta {
    minutes: Option<u32>,
}

fn set_eta(store: &dyn StatusStore, id: i64, req: &AdminRequest<'_>) -> AdminAnswer {
    let e: SetEta = match parse(req.body) {
        Ok(e) => e,
        Err(a) => return a,
    };
    let at = e.minutes.map(|m| req.now_ms + i64::from(m) * 60_000);
    match store.set_expected_resolved_at(id, at, req.now_ms) {
        Ok(i) => AdminAnswer::ok(200, json!(i), true),
        Err(e) => store_error(e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Subscribe {
    url: String,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    components: Vec<String>,
    #[serde(default)]
    secret: Option<String>,
}

/// A new signing secret: 32 random bytes from the OS, hex.
fn new_secret() -> Result<String, AdminAnswer> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|_| AdminAnswer::error(500, "No randomness available for a secret."))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn subscribe(
    store: &dyn StatusStore,
    components: &[String],
    req: &AdminRequest<'_>,
) -> AdminAnswer {
    let run = || -> Result<AdminAnswer, AdminAnswer> {
        let s: Subscribe = parse(req.body)?;
        let url = s.url.trim();
        let parsed: http::Uri = url
            .parse()
            .map_err(|_| AdminAnswer::error(400, "`url` is not a URL."))?;
        if !matches!(parsed.scheme_str(), Some("http" | "https")) || parsed.host().is_none() {
            return Err(AdminAnswer::error(
                400,
                "`url` must be an http:// or https:// URL.",
            ));
        }
        let format = match s.format.as_deref().unwrap_or("statuspage") {
            "statuspage" => WebhookFormat::Statuspage,
            "slack" => WebhookFormat::Slack,
            "discord" => WebhookFormat::Discord,
            other => {
                return Err(AdminAnswer::error(
                    400,
                    format!(
                        "`format`: `{}` is not statuspage, slack or discord.",
                        other.escape_default()
                    ),
                ))
            }
        };
        let secret =
            match s.secret {
                Some(given) if given.len() >= 16 => given,
                Some(_) => return Err(AdminAnswer::error(
                    400,
                    "`secret` must be at least 16 characters (or leave it out for a random one).",
                )),
                None => new_secret()?,
            };
        let new = NewSubscription {
            url: url.to_string(),
            format,
            secret: secret.clone(),
            components: known(components, &s.components)?,
            at_ms: req.now_ms,
        };
        match store.create_subscription(&new) {
            Ok(sub) => {
                let mut v = json!(sub);
                v["secret"] = json!(secret);
                Ok(AdminAnswer::ok(201, v, false))
            }
            Err(e) => Err(store_error(e)),
        }
    };
    run().unwrap_or_else(|e| e)
}

fn list_maintenances(store: &dyn StatusStore, query: Option<&str>) -> AdminAnswer {
    let n = match limit(query) {
        Ok(n) => n,
        Err(e) => return e,
    };
    match store.list_maintenances(n) {
        Ok(list) => AdminAnswer::ok(200, json!({ "scheduled_maintenances": list }), false),
        Err(e) => store_error(e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Schedule {
    name: String,
    scheduled_for: When,
    scheduled_until: When,
    #[serde(default)]
    components: Vec<String>,
    #[serde(default)]
    body: String,
}

fn schedule(store: &dyn StatusStore, components: &[String], req: &AdminRequest<'_>) -> AdminAnswer {
    let run = || -> Result<AdminAnswer, AdminAnswer> {
        let s: Schedule = parse(req.body)?;
        let from = s.scheduled_for.millis("scheduled_for")?;
        let until = s.scheduled_until.millis("scheduled_until")?;
        if until <= from {
            return Err(AdminAnswer::error(
                400,
                "`scheduled_until` must be after `scheduled_for`.",
            ));
        }
        if until <= req.now_ms {
            return Err(AdminAnswer::error(400, "`scheduled_until` is in the past."));
        }
        let new = NewMaintenance {
            name: title(&s.name)?,
            scheduled_for: from,
            scheduled_until: until,
            components: known(components, &s.components)?,
            body: body_text(&s.body, "body")?,
            at_ms: req.now_ms,
        };
        match store.create_maintenance(&new) {
            Ok(m) => Ok(AdminAnswer::ok(201, json!(m), true)),
            Err(e) => Err(store_error(e)),
        }
    };
    run().unwrap_or_else(|e| e)
}

/// Cancels a window that has not started; one in progress is completed
/// now instead (so its end is announced and its deployments given back).
fn cancel(store: &dyn StatusStore, id: i64, now_ms: i64) -> AdminAnswer {
    let running = store.list_maintenances_by_status(&[
        MaintenanceStatus::InProgress,
        MaintenanceStatus::Verifying,
    ]);
    match running {
        Ok(list) if list.iter().any(|m| m.id == id) => {
            return match store.set_maintenance_status(id, MaintenanceStatus::Completed, now_ms) {
                Ok(m) => AdminAnswer::ok(200, json!({"completed": m.id}), true),
                Err(e) => store_error(e),
            };
        }
        Ok(_) => {}
        Err(e) => return store_error(e),
    }
    match store.cancel_maintenance(id) {
        Ok(true) => AdminAnswer::ok(200, json!({"cancelled": id}), true),
        Ok(false) => AdminAnswer::error(404, format!("No maintenance {id}.")),
        Err(e) => store_error(e),
    }
}

#[cfg(test)]
mod tests;
