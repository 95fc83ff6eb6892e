//! TLS on the listeners, over real sockets: a self-signed certificate made
//! here (rcgen), a client that trusts it (tokio-rustls under hyper's client
//! connections). HTTP/1.1 and HTTP/2 over TLS (ALPN), the admin listener
//! too; a reload swaps the certificate for new connections while one opened
//! before keeps working; a broken certificate on reload keeps the running
//! one; a client that never sends its ClientHello is cut off.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use lifeline_core::{Config, Gateway, Server};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use crate::harness::{config, init, mocks, one_tier};

const CHAT: &str = "/v1/chat/completions";
const BODY: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
const WAIT: Duration = Duration::from_secs(20);

/// A fresh self-signed certificate for `localhost`: (cert PEM, key PEM, DER).
fn self_signed() -> (String, String, CertificateDer<'static>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    (
        ck.cert.pem(),
        ck.signing_key.serialize_pem(),
        ck.cert.der().clone(),
    )
}

/// A gateway started from a config file in `dir` with `tls_cert` and
/// `tls_key` there (so that a reload re-reads them).
struct TlsEnv {
    gw: Gateway,
    data: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    cert: PathBuf,
    key: PathBuf,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<()>,
    _mocks: Vec<lifeline_mock::MockHandle>,
    _dir: tempfile::TempDir,
}

impl TlsEnv {
    async fn boot(server_extra: &str, pem: &(String, String, CertificateDer<'static>)) -> Self {
        init();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, &pem.0).unwrap();
        std::fs::write(&key, &pem.1).unwrap();
        let m = mocks(1).await;
        let extra = format!(
            "tls_cert = {:?}\ntls_key = {:?}\n{server_extra}",
            cert.display().to_string(),
            key.display().to_string()
        );
        let toml = config(&m, &extra, &one_tier(&m));
        let path = dir.path().join("lifeline.toml");
        std::fs::write(&path, toml).unwrap();
        let config = Config::load(&path).unwrap_or_else(|e| panic!("config: {e}"));
        let gw = Gateway::start(config).await.unwrap();
        let bound = Server::bind(gw.clone()).await.unwrap();
        let (data, admin) = (bound.data_addr, bound.admin_addr.unwrap());
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(bound.run(shutdown.clone()));
        TlsEnv {
            gw,
            data,
            admin,
            cert,
            key,
            shutdown,
            server,
            _mocks: m,
            _dir: dir,
        }
    }

    fn install(&self, pem: &(String, String, CertificateDer<'static>)) {
        std::fs::write(&self.cert, &pem.0).unwrap();
        std::fs::write(&self.key, &pem.1).unwrap();
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
        self.gw.close().await;
    }
}

/// A TLS connection to `addr` trusting `roots`, offering `alpn`.
async fn connect(
    addr: std::net::SocketAddr,
    roots: &[&CertificateDer<'static>],
    alpn: &[u8],
) -> TlsStream<TcpStream> {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add((*r).clone()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(store)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    timeout(WAIT, TlsConnector::from(Arc::new(cfg)).connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("handshake")
}

fn peer_cert(s: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    s.get_ref().1.peer_certificates().unwrap()[0].clone()
}

fn chat_request() -> http::Request<Full<Bytes>> {
    http::Request::post(CHAT)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(BODY.as_bytes())))
        .unwrap()
}

type H1 = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn h1(s: TlsStream<TcpStream>) -> H1 {
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    tx
}

async fn send(tx: &mut H1) -> (u16, String) {
    tx.ready().await.expect("connection still usable");
    let resp = timeout(WAIT, tx.send_request(chat_request()))
        .await
        .expect("answer in time")
        .expect("answer");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn https_and_h2_over_tls_are_served_on_every_listener() {
    let pem = self_signed();
    let env = TlsEnv::boot("", &pem).await;
    // HTTP/1.1 over TLS.
    let s = connect(env.data, &[&pem.2], b"http/1.1").await;
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(peer_cert(&s), pem.2);
    let mut tx = h1(s).await;
    let (status, body) = send(&mut tx).await;
    assert_eq!(status, 200, "{body}");
    // HTTP/2 over TLS, negotiated by ALPN.
    let s = connect(env.data, &[&pem.2], b"h2").await;
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = chat_request();
    *req.uri_mut() = format!("https://localhost{CHAT}").parse().unwrap();
    let resp = tx.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    // The admin listener speaks TLS too.
    let s = connect(env.admin, &[&pem.2], b"http/1.1").await;
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/healthz")
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = tx.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    // Plain HTTP on a TLS listener gets no answer in clear.
    let mut plain = TcpStream::connect(env.data).await.unwrap();
    use tokio::io::AsyncWriteExt;
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = timeout(WAIT, plain.read_to_end(&mut buf)).await;
    assert!(!buf.starts_with(b"HTTP/1.1 200"), "answered in clear");
    env.stop().await;
}

#[tokio::test]
async fn a_reload_swaps_the_certificate_for_new_connections_only() {
    let (first, second) = (self_signed(), self_signed());
    let env = TlsEnv::boot("", &first).await;
    let both = [&first.2, &second.2];
    // A keep-alive connection opened before the reload.
    let before = connect(env.data, &both, b"http/1.1").await;
    assert_eq!(peer_cert(&before), first.2);
    let mut old = h1(before).await;
    assert_eq!(send(&mut old).await.0, 200);

    env.install(&second);
    env.gw
        .reload()
        .await
        .expect("reload with a new certificate");
    let after = connect(env.data, &both, b"http/1.1").await;
    assert_eq!(
        peer_cert(&after),
        second.2,
        "new connections get the new certificate"
    );
    let mut new = h1(after).await;
    assert_eq!(send(&mut new).await.0, 200);
    // The connection from before the reload is still served.
    let (status, body) = send(&mut old).await;
    assert_eq!(status, 200, "{body}");

    // A broken certificate: the reload is refused, the running one stays.
    std::fs::write(
        &env.cert,
        "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = env
        .gw
        .reload()
        .await
        .expect_err("a broken certificate is refused");
    assert!(err.contains("server.tls_cert"), "{err}");
    // A key that does not belong to the certificate: refused too.
    std::fs::write(&env.cert, &first.0).unwrap();
    let err = env
        .gw
        .reload()
        .await
        .expect_err("a mismatched key is refused");
    assert!(err.contains("server.tls_key"), "{err}");
    let again = connect(env.data, &both, b"http/1.1").await;
    assert_eq!(peer_cert(&again), second.2, "the running certificate stays");
    let mut again = h1(again).await;
    assert_eq!(send(&mut again).await.0, 200);
    env.stop().await;
}

async fn refusals(admin: std::net::SocketAddr, pem: &CertificateDer<'static>, reason: &str) -> u64 {
    let s = connect(admin, &[pem], b"http/1.1").await;
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/metrics")
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = tx.send_request(req).await.unwrap();
    let text = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&text);
    let prefix =
        format!("lifeline_listener_refusals_total{{listener=\"data\",reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
}

#[tokio::test]
async fn a_client_that_never_says_hello_is_cut_off() {
    let pem = self_signed();
    // One connection slot, held by the silent client until the header
    // timeout ends its handshake.
    let env = TlsEnv::boot("max_connections = 1\nheader_read_timeout_ms = 300", &pem).await;
    let mut silent = TcpStream::connect(env.data).await.unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 64];
    let read = timeout(WAIT, silent.read(&mut buf))
        .await
        .expect("the silent client was never cut off");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(t.elapsed() < Duration::from_secs(10));
    // The slot is free again: a real client gets through.
    let s = connect(env.data, &[&pem.2], b"http/1.1").await;
    let mut tx = h1(s).await;
    assert_eq!(send(&mut tx).await.0, 200);
    assert!(refusals(env.admin, &pem.2, "tls_handshake").await >= 1);
    env.stop().await;
}

/// TLS keeps the connection's clocks: a client that completes its
/// handshake and then sends nothing is closed at the idle timeout.
#[tokio::test]
async fn a_silent_client_after_its_handshake_is_closed() {
    let pem = self_signed();
    let env = TlsEnv::boot("idle_timeout_ms = 300", &pem).await;
    let mut s = connect(env.data, &[&pem.2], b"h2").await;
    let mut buf = [0u8; 64];
    let read = timeout(WAIT, s.read(&mut buf))
        .await
        .expect("a silent TLS client stayed connected");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(refusals(env.admin, &pem.2, "idle").await >= 1);
    env.stop().await;
}

/// `lifeline serve` re-reads the certificate on SIGHUP: new connections
/// get the new one, a connection opened before keeps working.
#[tokio::test]
async fn sighup_swaps_the_certificate_of_a_running_binary() {
    use crate::cli::{free_port, Proc, BIN};
    init();
    let (first, second) = (self_signed(), self_signed());
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, &first.0).unwrap();
    std::fs::write(&key, &first.1).unwrap();
    let m = mocks(1).await;
    let port = free_port();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\ntls_cert = {:?}\ntls_key = {:?}\n\n[[providers]]\nname = \"p0\"\nkind = \"openai-compatible\"\nbase_url = \"{}\"\n\n[[models]]\nname = \"m\"\ntiers = [ [ {{ provider = \"p0\", model = \"up-0\" }} ] ]\n",
        cert.display().to_string(),
        key.display().to_string(),
        m[0].base_url()
    );
    let path = dir.path().join("lifeline.toml");
    std::fs::write(&path, toml).unwrap();
    let log = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
    let proc = Proc(
        std::process::Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&path)
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let logs = || std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let end = Instant::now() + WAIT;
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < end, "serve never listened:\n{}", logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let both = [&first.2, &second.2];
    let before = connect(addr, &both, b"http/1.1").await;
    assert_eq!(peer_cert(&before), first.2);
    let mut old = h1(before).await;
    assert_eq!(send(&mut old).await.0, 200, "{}", logs());

    std::fs::write(&cert, &second.0).unwrap();
    std::fs::write(&key, &second.1).unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &proc.0.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let end = Instant::now() + WAIT;
    loop {
        let s = connect(addr, &both, b"http/1.1").await;
        if peer_cert(&s) == second.2 {
            break;
        }
        assert!(
            Instant::now() < end,
            "SIGHUP did not swap the certificate:\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = send(&mut old).await;
    assert_eq!(status, 200, "the connection from before the reload: {body}");
    drop(proc);
}

/// The certificate files named in a config are checked when it loads.
#[test]
fn unreadable_certificate_files_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let toml = format!(
        "[server]\ntls_cert = {:?}\ntls_key = {:?}\n",
        missing.display().to_string(),
        missing.display().to_string()
    );
    let path: &Path = &dir.path().join("l.toml");
    std::fs::write(path, toml).unwrap();
    let err = Config::load(path).unwrap_err().to_string();
    assert!(err.contains("server.tls_cert"), "{err}");
    assert!(err.contains(":2"), "names the line: {err}");
}
