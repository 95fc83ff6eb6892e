//! The renderers: a [`Page`] in, the bytes of every public document out.
//!
//! [`Rendered::build`] renders everything once per page change: the eight
//! Statuspage-compatible JSON documents ([`json`]), the status page and each
//! incident's page in every language ([`html`], [`i18n`]), the Atom and RSS
//! feeds ([`feed`]) and a badge per component ([`badge`]).
//! [`Rendered::serve`] then answers a request from those bytes without
//! rendering, allocating a body or touching the store; [`export`] writes the
//! same documents as static files. Everything here is pure: no clock, no
//! I/O except [`export`]'s.
//!
//! Routes (GET and HEAD; OPTIONS answers which methods; anything else 405):
//!
//! | path | body |
//! |---|---|
//! | `/status`, `/status/` | HTML, language from `?lang=` or `Accept-Language` (`Vary: Accept-Language`) |
//! | `/status/incidents/{id}` | HTML, one incident |
//! | `/api/v2/{summary,status,components,incidents,incidents/unresolved,scheduled-maintenances,scheduled-maintenances/upcoming,scheduled-maintenances/active}.json` | JSON, `Access-Control-Allow-Origin: *` |
//! | `/history.atom`, `/history.rss` | feeds |
//! | `/badge/{component}.svg` | SVG badge |
//!
//! Any other path is `None`: the caller answers its own 404.

pub mod badge;
pub mod export;
pub mod feed;
pub mod html;
pub mod i18n;
pub mod json;
pub mod markdown;
mod palette;
pub mod time;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use bytes::Bytes;
use http::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_ORIGIN, ALLOW, CACHE_CONTROL, CONTENT_LENGTH,
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, VARY, X_CONTENT_TYPE_OPTIONS,
};
use http::{Method, Response, StatusCode};

pub use export::export;
pub use i18n::Lang;

use crate::page::Page;
use html::LinkMode;

/// Why rendering failed (none of these is expected: every writer writes to
/// memory).
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A template failed to render.
    #[error("template: {0}")]
    Template(#[from] askama::Error),
    /// A JSON document failed to serialize.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// The Atom feed failed to write.
    #[error("atom: {0}")]
    Atom(#[from] atom_syndication::Error),
    /// The RSS feed failed to write.
    #[error("rss: {0}")]
    Rss(#[from] rss::Error),
    /// Writing the static export failed.
    #[error("export: {0}")]
    Io(#[from] std::io::Error),
}

/// Every public document of one [`Page`], rendered.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The `/api/v2/` documents, [`json::PATHS`] order.
    json: [Bytes; 8],
    /// The status page, [`Lang::ALL`] order.
    status: [Bytes; 3],
    /// Each incident's page by decimal id, [`Lang::ALL`] order.
    incidents: HashMap<String, [Bytes; 3]>,
    atom: Bytes,
    rss: Bytes,
    /// Badges by component id.
    badges: HashMap<String, Bytes>,
}

/// What kind of document a response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Html,
    Json,
    Atom,
    Rss,
    Svg,
}

impl Kind {
    fn content_type(self) -> &'static str {
        match self {
            Kind::Html => "text/html; charset=utf-8",
            Kind::Json => "application/json; charset=utf-8",
            Kind::Atom => "application/atom+xml; charset=utf-8",
            Kind::Rss => "application/rss+xml; charset=utf-8",
            Kind::Svg => "image/svg+xml; charset=utf-8",
        }
    }
}

impl Rendered {
    /// Renders every document of `page`, with the links the live server
    /// uses.
    pub fn build(page: &Page) -> Result<Rendered, RenderError> {
        Rendered::build_with(page, LinkMode::Live)
    }

    pub(crate) fn build_with(page: &Page, mode: LinkMode) -> Result<Rendered, RenderError> {
        let bodies = markdown::Bodies::new(page);
        let docs = json::documents(page)?;
        let json = docs.bodies.map(Bytes::from);
        let status = [
            Bytes::from(html::status_page(page, Lang::En, mode, &bodies)?),
            Bytes::from(html::status_page(page, Lang::De, mode, &bodies)?),
            Bytes::from(html::status_page(page, Lang::Zh, mode, &bodies)?),
        ];
        let mut incidents = HashMap::with_capacity(page.incidents.len());
        for view in &page.incidents {
            let pages = [
                Bytes::from(html::incident_page(page, view, Lang::En, mode, &bodies)?),
                Bytes::from(html::incident_page(page, view, Lang::De, mode, &bodies)?),
                Bytes::from(html::incident_page(page, view, Lang::Zh, mode, &bodies)?),
            ];
            incidents.insert(view.incident.incident.id.to_string(), pages);
        }
        let badges = page
            .components
            .iter()
            .map(|c| (c.id.clone(), Bytes::from(badge::badge(c))))
            .collect();
        Ok(Rendered {
            json,
            status,
            incidents,
            atom: Bytes::from(feed::atom(page, &bodies)?),
            rss: Bytes::from(feed::rss(page, &bodies)?),
            badges,
        })
    }

    /// Answers `method path?query` from the pre-rendered documents, or
    /// `None` when the path is not one of the status side's (the caller
    /// answers 404). `query` is the raw query string without `?`;
    /// `accept_language` the request's header, if any.
    pub fn serve(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        accept_language: Option<&str>,
    ) -> Option<Response<Bytes>> {
        if path == "/favicon.ico" {
            // Browsers ask for it on their own; "no content" instead of a
            // 404 in every visitor's console. The page has no icon.
            let mut r = Response::new(Bytes::new());
            *r.status_mut() = http::StatusCode::NO_CONTENT;
            r.headers_mut().insert(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("public, max-age=86400"),
            );
            return Some(r);
        }
        let (kind, body) = self.lookup(path, query, accept_language)?;
        Some(respond(method, kind, body))
    }

    /// The document at `path`, if there is one.
    fn lookup(
        &self,
        path: &str,
        query: Option<&str>,
        accept_language: Option<&str>,
    ) -> Option<(Kind, &Bytes)> {
        let lang = || Lang::negotiate(query, accept_language).index();
        match path {
            "/status" | "/status/" => return Some((Kind::Html, &self.status[lang()])),
            "/history.atom" => return Some((Kind::Atom, &self.atom)),
            "/history.rss" => return Some((Kind::Rss, &self.rss)),
            _ => {}
        }
        if let Some(rest) = path.strip_prefix("/api/v2/") {
            let index = json::PATHS.iter().position(|p| *p == rest)?;
            return Some((Kind::Json, &self.json[index]));
        }
        if let Some(id) = path.strip_prefix("/status/incidents/") {
            let pages = self.incidents.get(id.strip_suffix('/').unwrap_or(id))?;
            return Some((Kind::Html, &pages[lang()]));
        }
        if let Some(id) = path
            .strip_prefix("/badge/")
            .and_then(|r| r.strip_suffix(".svg"))
        {
            let id = percent_decode(id)?;
            return self.badges.get(&id).map(|b| (Kind::Svg, b));
        }
        None
    }

    /// Every document as a file path (relative, `/`-separated) and its
    /// bytes, as [`export`] lays them out.
    pub(crate) fn files(&self) -> Vec<(String, &Bytes)> {
        let mut files = Vec::new();
        for lang in Lang::ALL {
            let suffix = html::static_suffix(lang);
            files.push((
                format!("status/index{suffix}.html"),
                &self.status[lang.index()],
            ));
            for (id, pages) in &self.incidents {
                files.push((
                    format!("status/incidents/{id}{suffix}.html"),
                    &pages[lang.index()],
                ));
            }
        }
        for (path, body) in json::PATHS.iter().zip(&self.json) {
            files.push((format!("api/v2/{path}"), body));
        }
        files.push(("history.atom".into(), &self.atom));
        files.push(("history.rss".into(), &self.rss));
        for (id, body) in &self.badges {
            files.push((format!("badge/{}.svg", html::url_segment(id)), body));
        }
        files
    }
}

/// `%XX` decoding of a path segment; `None` if malformed or not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The HTML pages' Content-Security-Policy: nothing from elsewhere, inline
/// styles, the one inline script by its hash, fetches to the page itself.
static HTML_CSP: std::sync::LazyLock<HeaderValue> = std::sync::LazyLock::new(|| {
    let value = format!(
        "default-src 'none'; style-src 'unsafe-inline'; script-src '{}'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        html::script_hash()
    );
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("default-src 'none'"))
});

fn respond(method: &Method, kind: Kind, body: &Bytes) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    let headers = response.headers_mut();
    if kind == Kind::Json {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    }
    if *method == Method::GET || *method == Method::HEAD {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(kind.content_type()));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        headers.insert(
            CACHE_CONTROL,
            HeaderValue::from_static(match kind {
                Kind::Svg => "public, max-age=30",
                _ => "no-cache",
            }),
        );
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        match kind {
            Kind::Html => {
                headers.insert(VARY, HeaderValue::from_static("Accept-Language"));
                headers.insert(CONTENT_SECURITY_POLICY, HTML_CSP.clone());
            }
            Kind::Svg => {
                headers.insert(
                    CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
                );
            }
            _ => {}
        }
        if *method == Method::GET {
            *response.body_mut() = body.clone();
        }
        return response;
    }
    headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD, OPTIONS"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(0usize));
    *response.status_mut() = if *method == Method::OPTIONS {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::METHOD_NOT_ALLOWED
    };
    response
}
