//! The router over pre-rendered bytes: paths, methods, headers, language.

use http::{Method, StatusCode};

use super::*;
use crate::render::json::PATHS;
use crate::render::Rendered;

fn header<'a>(r: &'a http::Response<bytes::Bytes>, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

#[test]
fn every_route_answers_with_its_type() {
    let rendered = Rendered::build(&rich_page()).unwrap();
    let get = |path: &str| {
        rendered
            .serve(&Method::GET, path, None, None)
            .unwrap_or_else(|| panic!("{path}"))
    };
    let cases: Vec<(String, &str)> = [
        ("/status", "text/html; charset=utf-8"),
        ("/status/", "text/html; charset=utf-8"),
        ("/status/incidents/7", "text/html; charset=utf-8"),
        ("/status/incidents/5", "text/html; charset=utf-8"),
        ("/history.atom", "application/atom+xml; charset=utf-8"),
        ("/history.rss", "application/rss+xml; charset=utf-8"),
        ("/badge/cmpchat001.svg", "image/svg+xml; charset=utf-8"),
    ]
    .iter()
    .map(|(p, t)| (p.to_string(), *t))
    .chain(
        PATHS
            .iter()
            .map(|p| (format!("/api/v2/{p}"), "application/json; charset=utf-8")),
    )
    .collect();
    for (path, content_type) in &cases {
        let r = get(path);
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&r, "content-type"), Some(*content_type), "{path}");
        assert_eq!(
            header(&r, "content-length").unwrap(),
            r.body().len().to_string(),
            "{path}"
        );
        assert!(!r.body().is_empty(), "{path}");
        assert_eq!(header(&r, "x-content-type-options"), Some("nosniff"));
        let cache = header(&r, "cache-control").unwrap();
        assert!(
            cache == "no-cache" || cache.contains("max-age=30"),
            "{path}: {cache}"
        );
        let json = content_type.starts_with("application/json");
        assert_eq!(
            header(&r, "access-control-allow-origin"),
            json.then_some("*"),
            "{path}"
        );
        let html = content_type.starts_with("text/html");
        assert_eq!(
            header(&r, "vary"),
            html.then_some("Accept-Language"),
            "{path}"
        );
        if json {
            serde_json::from_slice::<serde_json::Value>(r.body()).unwrap();
        }
    }
    // The JSON bodies are exactly the documents.
    assert_eq!(
        get("/api/v2/summary.json").body().as_ref(),
        &crate::render::json::documents(&rich_page()).unwrap().bodies[0][..]
    );
}

#[test]
fn head_has_headers_and_no_body_other_methods_are_refused() {
    let rendered = Rendered::build(&rich_page()).unwrap();
    let get = rendered
        .serve(&Method::GET, "/api/v2/summary.json", None, None)
        .unwrap();
    let head = rendered
        .serve(&Method::HEAD, "/api/v2/summary.json", None, None)
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert!(head.body().is_empty());
    assert_eq!(
        header(&head, "content-length"),
        header(&get, "content-length")
    );
    assert_eq!(header(&head, "content-type"), header(&get, "content-type"));
    assert_eq!(header(&head, "access-control-allow-origin"), Some("*"));

    let post = rendered
        .serve(&Method::POST, "/status", None, None)
        .unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&post, "allow"), Some("GET, HEAD, OPTIONS"));
    assert!(post.body().is_empty());
    let options = rendered
        .serve(&Method::OPTIONS, "/api/v2/status.json", None, None)
        .unwrap();
    assert_eq!(options.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&options, "access-control-allow-origin"), Some("*"));
}

#[test]
fn unknown_paths_are_left_to_the_caller() {
    let rendered = Rendered::build(&rich_page()).unwrap();
    for path in [
        "/",
        "/v1/chat/completions",
        "/statusx",
        "/status/incidents/999",
        "/status/incidents/",
        "/api/v2/nope.json",
        "/api/v2/summary.json/x",
        "/badge/nope.svg",
        "/badge/cmpchat001",
        "/badge/%ZZ.svg",
        "/history.json",
    ] {
        assert!(
            rendered.serve(&Method::GET, path, None, None).is_none(),
            "{path}"
        );
    }
}

#[test]
fn language_from_query_then_accept_language() {
    let rendered = Rendered::build(&rich_page()).unwrap();
    let lang_of = |query: Option<&str>, accept: Option<&str>| {
        let r = rendered
            .serve(&Method::GET, "/status", query, accept)
            .unwrap();
        let body = std::str::from_utf8(r.body()).unwrap().to_string();
        body[body.find("<html lang=\"").unwrap() + 12..]
            .split('"')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(lang_of(None, None), "en");
    assert_eq!(lang_of(Some("lang=de"), None), "de");
    assert_eq!(lang_of(Some("x=1&lang=zh"), Some("de")), "zh-Hans");
    assert_eq!(lang_of(Some("lang=fr"), Some("de-CH, en;q=0.5")), "de");
    assert_eq!(
        lang_of(None, Some("fr-FR, zh-CN;q=0.8, de;q=0.7")),
        "zh-Hans"
    );
    assert_eq!(lang_of(None, Some("de;q=0, en;q=0.1")), "en");
    assert_eq!(lang_of(None, Some("fr")), "en");
    // The incident page too.
    let r = rendered
        .serve(&Method::GET, "/status/incidents/7", Some("lang=de"), None)
        .unwrap();
    assert!(std::str::from_utf8(r.body())
        .unwrap()
        .contains("<html lang=\"de\">"));
}

#[test]
fn badges_are_found_by_encoded_id() {
    let mut page = rich_page();
    page.components[1].id = "chat/v1 large".into();
    let rendered = Rendered::build(&page).unwrap();
    assert!(rendered
        .serve(&Method::GET, "/badge/chat%2Fv1%20large.svg", None, None)
        .is_some());
}

#[test]
fn the_browsers_own_favicon_request_gets_no_content_not_a_404() {
    let rendered = Rendered::build(&rich_page()).unwrap();
    let r = rendered
        .serve(&Method::GET, "/favicon.ico", None, None)
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.body().is_empty());
}
