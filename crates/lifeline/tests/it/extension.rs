//! The extension hook (`Gateway::set_extension`): public `GET`/`HEAD`
//! routes the gateway does not own, on the data-plane listener or, with
//! `status_listen`, only on the status listener; admin routes under
//! `/admin/` behind the admin token, with their body read (1 MiB at most).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Response};
use lifeline_core::extension::{AdminFuture, Extension};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{config, error_code, mocks, one_tier, Env};

/// Answers every public path but `/nope` with `ext:{path}`, and
/// `POST /admin/echo` with its body; records the admin requests it got.
#[derive(Default)]
struct TestExt {
    admin_calls: Mutex<Vec<(Method, String, Bytes)>>,
}

impl Extension for TestExt {
    fn public(&self, req: &http::request::Parts) -> Option<Response<Bytes>> {
        let path = req.uri.path();
        (path != "/nope").then(|| {
            Response::builder()
                .header("content-type", "text/plain")
                .header("x-ext", "yes")
                .body(Bytes::from(format!("ext:{path}")))
                .unwrap()
        })
    }

    fn admin(&self, parts: http::request::Parts, body: Bytes) -> AdminFuture {
        self.admin_calls.lock().unwrap().push((
            parts.method.clone(),
            parts.uri.path().to_string(),
            body.clone(),
        ));
        Box::pin(async move {
            (parts.uri.path() == "/admin/echo" && parts.method == Method::POST).then(|| {
                Response::builder()
                    .status(201)
                    .body(Bytes::from([b"got:".as_slice(), &body].concat()))
                    .unwrap()
            })
        })
    }
}

async fn get(env: &Env, addr: SocketAddr, method: Method, path: &str) -> (u16, String, String) {
    let resp = env
        .client
        .request(method, format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let len = resp
        .headers()
        .get("content-length")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, len, resp.text().await.unwrap())
}

async fn boot(server_extra: &str) -> (Env, Arc<TestExt>) {
    let m = mocks(1).await;
    let env = Env::boot(&config(&m, server_extra, &one_tier(&m)), m).await;
    let ext = Arc::new(TestExt::default());
    (env, ext)
}

#[tokio::test]
async fn public_routes_are_served_on_the_data_listener() {
    let (env, ext) = boot("").await;
    // Not installed yet: the gateway's own 404.
    let (status, _, body) = get(&env, env.addr, Method::GET, "/status").await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "unknown_url");
    env.gw.set_extension(ext.clone());
    let (status, len, body) = get(&env, env.addr, Method::GET, "/status").await;
    assert_eq!((status, body.as_str()), (200, "ext:/status"));
    assert_eq!(len, "11");
    // HEAD: the head, with the body's length, and no body.
    let (status, len, body) = get(&env, env.addr, Method::HEAD, "/status").await;
    assert_eq!((status, len.as_str(), body.as_str()), (200, "11", ""));
    // The extension says no: 404.
    let (status, _, body) = get(&env, env.addr, Method::GET, "/nope").await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "unknown_url");
    // Only GET and HEAD.
    let (status, _, _) = get(&env, env.addr, Method::POST, "/status").await;
    assert_eq!(status, 404);
    // The gateway's own paths are never the extension's.
    let (status, _, body) = get(&env, env.addr, Method::GET, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, _, _) = get(&env, env.addr, Method::GET, "/v1/chat/completions").await;
    assert_eq!(status, 405);
    let (status, _, body) = get(&env, env.addr, Method::GET, "/v1/models").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"object\":\"list\""), "{body}");
    assert_eq!(env.chat(false).await.0, 200);
    // Nor is a public route served on the admin listener.
    let admin = env.admin.unwrap();
    let (status, _, _) = get(&env, admin, Method::GET, "/status").await;
    assert_eq!(status, 404);
    env.stop().await;
}

#[tokio::test]
async fn with_status_listen_public_routes_move_to_the_status_listener() {
    let (env, ext) = boot("status_listen = \"127.0.0.1:0\"").await;
    env.gw.set_extension(ext);
    let status_addr = env.status.expect("status listener bound");
    let (status, _, body) = get(&env, status_addr, Method::GET, "/status").await;
    assert_eq!((status, body.as_str()), (200, "ext:/status"));
    let (status, len, body) = get(&env, status_addr, Method::HEAD, "/api/v2/summary.json").await;
    assert_eq!((status, len.as_str(), body.as_str()), (200, "24", ""));
    let (status, _, body) = get(&env, status_addr, Method::GET, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    // Nothing else of the gateway's is served there: its other paths are
    // the extension's to answer (this one answers everything but `/nope`),
    // anything else is 404.
    for path in ["/readyz", "/metrics", "/v1/models", "/admin/deployments"] {
        let (status, _, body) = get(&env, status_addr, Method::GET, path).await;
        assert_eq!((status, body), (200, format!("ext:{path}")));
    }
    for (method, path) in [
        (Method::POST, "/v1/chat/completions"),
        (Method::POST, "/admin/reload"),
        (Method::GET, "/nope"),
    ] {
        let (status, _, body) = get(&env, status_addr, method.clone(), path).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert_eq!(error_code(&body), "unknown_url");
    }
    // And the data-plane listener no longer serves the public routes.
    let (status, _, body) = get(&env, env.addr, Method::GET, "/status").await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "unknown_url");
    assert_eq!(env.chat(false).await.0, 200);
    env.stop().await;
}

#[tokio::test]
async fn admin_routes_get_the_body_behind_the_token() {
    let (env, ext) = boot("").await;
    let url = env.admin_url("/admin/echo");
    // Not installed: 404.
    let resp = env
        .client
        .post(&url)
        .bearer_auth("admin-secret")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    env.gw.set_extension(ext.clone());
    let resp = env
        .client
        .post(&url)
        .bearer_auth("admin-secret")
        .body("{\"title\":\"hi\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(resp.text().await.unwrap(), "got:{\"title\":\"hi\"}");
    // The token is still required: the extension is not called.
    for auth in [None, Some("wrong")] {
        let mut req = env.client.post(&url).body("x");
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        assert_eq!(req.send().await.unwrap().status().as_u16(), 401);
    }
    // A path it does not know: 404 after asking it.
    let resp = env
        .client
        .get(env.admin_url("/admin/unknown"))
        .bearer_auth("admin-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    // The admin API's own routes stay its own.
    let resp = env
        .client
        .get(env.admin_url("/admin/deployments"))
        .bearer_auth("admin-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.text().await.unwrap().contains("p0/up-0"));
    // Over 1 MiB, declared: 413 without calling it.
    let resp = env
        .client
        .post(&url)
        .bearer_auth("admin-secret")
        .body(vec![b'a'; (1 << 20) + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    // Exactly 1 MiB is fine.
    let resp = env
        .client
        .post(&url)
        .bearer_auth("admin-secret")
        .body(vec![b'a'; 1 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let calls: Vec<_> = ext
        .admin_calls
        .lock()
        .unwrap()
        .iter()
        .map(|(m, p, b)| (m.to_string(), p.clone(), b.len()))
        .collect();
    assert_eq!(
        calls,
        [
            ("POST".to_string(), "/admin/echo".to_string(), 14),
            ("GET".to_string(), "/admin/unknown".to_string(), 0),
            ("POST".to_string(), "/admin/echo".to_string(), 1 << 20),
        ]
    );
    env.stop().await;
}

/// A chunked body (no `Content-Length`) over 1 MiB is cut off at the limit
/// and answered 413, also without calling the extension.
#[tokio::test]
async fn a_chunked_admin_body_over_the_limit_is_413() {
    let (env, ext) = boot("").await;
    env.gw.set_extension(ext.clone());
    let mut s = tokio::net::TcpStream::connect(env.admin.unwrap())
        .await
        .unwrap();
    s.write_all(b"POST /admin/echo HTTP/1.1\r\nhost: x\r\nauthorization: Bearer admin-secret\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    let writer = async {
        for _ in 0..17 {
            let head = format!("{:x}\r\n", chunk.len());
            if s.write_all(head.as_bytes()).await.is_err()
                || s.write_all(&chunk).await.is_err()
                || s.write_all(b"\r\n").await.is_err()
            {
                break;
            }
        }
        let _ = s.write_all(b"0\r\n\r\n").await;
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).to_string()
    };
    let answer = tokio::time::timeout(std::time::Duration::from_secs(30), writer)
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(ext.admin_calls.lock().unwrap().is_empty());
    env.stop().await;
}

/// The status listener has the other listeners' hardening: a connection
/// that sends nothing is closed after `idle_timeout_ms`.
#[tokio::test]
async fn the_status_listener_closes_idle_connections() {
    let (env, ext) = boot("status_listen = \"127.0.0.1:0\"\nidle_timeout_ms = 200").await;
    env.gw.set_extension(ext);
    let mut s = tokio::net::TcpStream::connect(env.status.unwrap())
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "an idle connection was not closed: {read:?}"
    );
    env.stop().await;
}
