//! `lifeline chaos --against URL --mock [PROVIDER=]ADDR ...`: the provider
//! scenarios against a gateway the run does not control (a staging one),
//! whose providers point at `lifeline mock` instances. Faults are set
//! through each mock's control API (`POST /_mock/faults`, lifted with
//! `DELETE /_mock/faults`); a provider that "dies" resets every connection
//! (`reset`), the closest a running mock comes to a dead process. The
//! traffic is the same; what the run cannot see is left out: the
//! gateway's breakers (detection and recovery are read from the requests
//! each mock received, `GET /_mock/stats`) and its status page (the
//! incident expectations are dropped). Gateway-level scenarios need the
//! gateway in hand and are skipped.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use lifeline_mock::Faults;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::plan::{ClientKey, Plan};
use super::scenario::{Expect, Fault, Scenario};
use lifeline_core::config::Priority;

/// The gateway under test and its providers' mocks.
#[derive(Clone, Debug)]
pub struct Remote {
    /// The gateway's data-plane address.
    pub addr: SocketAddr,
    /// Each provider's mock, by provider name.
    pub mocks: BTreeMap<String, SocketAddr>,
}

/// `http://host:port[/...]` or `host:port` as a socket address.
pub fn parse_addr(text: &str) -> anyhow::Result<SocketAddr> {
    let rest = text
        .strip_prefix("http://")
        .unwrap_or(text)
        .trim_end_matches('/');
    if text.starts_with("https://") {
        anyhow::bail!("{text}: only http:// is supported");
    }
    let host = rest.split('/').next().unwrap_or(rest);
    host.to_socket_addrs()
        .map_err(|e| anyhow::anyhow!("{text}: {e}"))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{text}: no address"))
}

impl Remote {
    /// The gateway at `url`, the mocks `--mock` names (`PROVIDER=ADDR`, or
    /// bare addresses taken as the config's providers in order); each mock
    /// must answer its control API.
    pub async fn new(plan: &Plan, url: &str, mocks: &[String]) -> anyhow::Result<Remote> {
        let addr = parse_addr(url)?;
        let mut named = BTreeMap::new();
        for (i, m) in mocks.iter().enumerate() {
            let (name, at) = match m.split_once('=') {
                Some((n, a)) => (n.to_string(), a),
                None => match plan.providers.get(i) {
                    Some(p) => (p.clone(), m.as_str()),
                    None => anyhow::bail!("--mock {m}: the config has no provider #{}", i + 1),
                },
            };
            if !plan.providers.contains(&name) {
                anyhow::bail!("--mock {m}: the config has no provider {name:?}");
            }
            let at = parse_addr(at)?;
            match http(at, "GET", "/_mock/stats", None).await {
                Some((200, _)) => {}
                _ => anyhow::bail!("--mock {m}: no `lifeline mock` control API at {at}"),
            }
            named.insert(name, at);
        }
        if named.is_empty() {
            anyhow::bail!("--against needs the providers' mocks (--mock PROVIDER=ADDR)");
        }
        Ok(Remote { addr, mocks: named })
    }

    /// Applies (`on`) or lifts a provider fault through the mocks' control
    /// API.
    pub async fn apply(&self, fault: &Fault, providers: &[String], on: bool) {
        let faults = match fault {
            Fault::Kill => Faults {
                reset: true,
                ..Faults::default()
            },
            Fault::Mock(f) => f.clone(),
            Fault::Gateway(_) => return,
        };
        for p in providers {
            let Some(at) = self.mocks.get(p) else {
                continue;
            };
            let done = if on {
                let body = serde_json::to_vec(&faults).unwrap_or_default();
                http(*at, "POST", "/_mock/faults", Some(&body)).await
            } else {
                http(*at, "DELETE", "/_mock/faults", None).await
            };
            if !matches!(done, Some((200, _))) {
                tracing::warn!(message = "A mock's faults could not be set.", provider = %p, mock = %at);
            }
        }
    }

    /// Requests each mock has received so far.
    pub async fn received(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (p, at) in &self.mocks {
            let n = http(*at, "GET", "/_mock/stats", None)
                .await
                .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
                .and_then(|v| v["requests"].as_u64());
            if let Some(n) = n {
                out.insert(p.clone(), n);
            }
        }
        out
    }

    /// Lifts every fault (the end of a scenario, or of the run).
    pub async fn clear(&self) {
        for at in self.mocks.values() {
            let _ = http(*at, "DELETE", "/_mock/faults", None).await;
        }
    }
}

/// What a scenario becomes against a remote gateway: `None` when it needs
/// the gateway in hand (a gateway fault) or a provider without a mock;
/// otherwise without the expectations the run cannot observe (the status
/// page's incidents).
pub fn adapt(sc: &Scenario, plan: &Plan, remote: &Remote) -> Result<Scenario, String> {
    for w in &sc.windows {
        if matches!(w.fault, Fault::Gateway(_)) {
            return Err(
                "a gateway-level scenario needs the gateway in hand (not with --against)".into(),
            );
        }
        if let Some(p) = plan
            .targets(w.target)
            .iter()
            .find(|p| !remote.mocks.contains_key(*p))
        {
            return Err(format!("provider {p} has no --mock"));
        }
    }
    let mut sc = sc.clone();
    sc.expect
        .retain(|e| !matches!(e, Expect::IncidentOpened | Expect::IncidentsResolved));
    Ok(sc)
}

/// The traffic's keys from `--key [PRIORITY=]TOKEN` (a bare token is
/// standard); none: the run's own (for a gateway with `auth = "none"`,
/// whose requests then all count as standard there, but are still measured
/// by the class the run sent them as).
pub fn keys(given: &[String]) -> anyhow::Result<Option<Vec<ClientKey>>> {
    if given.is_empty() {
        return Ok(None);
    }
    given
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let (priority, secret) = match k.split_once('=') {
                Some((p, s)) => (
                    Priority::parse(p).ok_or_else(|| {
                        anyhow::anyhow!("--key {p}=…: priority is critical, standard or batch")
                    })?,
                    s,
                ),
                None => (Priority::Standard, k.as_str()),
            };
            Ok(ClientKey {
                name: format!("key-{}", i + 1),
                secret: secret.to_string(),
                priority,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()
        .map(Some)
}

/// A small HTTP/1.1 exchange (`connection: close`): status and body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> Option<(u16, String)> {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        let body = body.unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.ok()?;
        s.write_all(body).await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        Some((status, body.to_string()))
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}
