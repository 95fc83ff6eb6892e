//! In-process simulated providers (`kind = "mock"`).
//!
//! The simulated provider (`lifeline-mock`) is a test and demo tool, not part
//! of the production request path: the core library includes it only with
//! the `simulated` cargo feature, which the `lifeline` binary turns on.
//! Without it a config naming `kind = "mock"` is rejected at validation, and
//! this module keeps no state.
//!
//! With it, each `kind = "mock"` provider runs a simulated server on a
//! loopback port for the life of the gateway; a reload reconfigures it in
//! place, and one the new config removes is stopped.

use crate::config::{Config, ProviderConfig};

use super::{ApplyError, Gateway};

/// The running simulated providers, by provider name.
#[cfg(feature = "simulated")]
#[derive(Default)]
pub(super) struct Simulated {
    running: tokio::sync::Mutex<std::collections::HashMap<String, lifeline_mock::MockHandle>>,
}

#[cfg(feature = "simulated")]
impl Gateway {
    /// The in-process simulated provider named `provider`, if any.
    pub async fn mock(&self, provider: &str) -> Option<lifeline_mock::MockHandle> {
        self.inner
            .simulated
            .running
            .lock()
            .await
            .get(provider)
            .cloned()
    }

    /// Starts the simulated provider for `p`, or reconfigures the running
    /// one; returns its base URL.
    pub(super) async fn simulated_url(&self, p: &ProviderConfig) -> Result<String, ApplyError> {
        let mut running = self.inner.simulated.running.lock().await;
        let cfg = p.mock.clone().unwrap_or_default();
        if let Some(h) = running.get(&p.name) {
            if p.mock.is_some() {
                h.set_config(cfg);
            }
            return Ok(h.base_url());
        }
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let h = lifeline_mock::MockServer::start(addr, cfg)
            .await
            .map_err(|source| ApplyError::Mock {
                provider: p.name.clone(),
                source,
            })?;
        tracing::info!(message = "Simulated provider started.", provider = %p.name, base_url = %h.base_url());
        let url = h.base_url();
        running.insert(p.name.clone(), h);
        Ok(url)
    }

    /// Stops simulated providers that `config` no longer has as
    /// `kind = "mock"`. Requests still in flight to them fail over like any
    /// other broken attempt.
    pub(super) async fn stop_removed_simulated(&self, config: &Config) {
        use crate::config::ProviderKind;
        let keep: std::collections::HashSet<&str> = config
            .providers
            .iter()
            .filter(|p| p.kind == ProviderKind::Mock)
            .map(|p| p.name.as_str())
            .collect();
        let removed: Vec<lifeline_mock::MockHandle> = {
            let mut running = self.inner.simulated.running.lock().await;
            let gone: Vec<String> = running
                .keys()
                .filter(|k| !keep.contains(k.as_str()))
                .cloned()
                .collect();
            gone.iter().filter_map(|k| running.remove(k)).collect()
        };
        for m in removed {
            tracing::info!(message = "Simulated provider removed by reload.", base_url = %m.base_url());
            m.shutdown().await;
        }
    }

    /// Stops every simulated provider (at shutdown).
    pub(super) async fn stop_all_simulated(&self) {
        let all: Vec<_> = self
            .inner
            .simulated
            .running
            .lock()
            .await
            .drain()
            .map(|(_, h)| h)
            .collect();
        for m in all {
            m.shutdown().await;
        }
    }
}

#[cfg(not(feature = "simulated"))]
impl Gateway {
    /// Without the `simulated` feature no config reaches here with
    /// `kind = "mock"` (validation rejects it); this answers the impossible
    /// case with an error rather than a panic.
    pub(super) async fn simulated_url(&self, p: &ProviderConfig) -> Result<String, ApplyError> {
        Err(ApplyError::Mock {
            provider: p.name.clone(),
            source: std::io::Error::other(
                "this build of Lifeline does not include the simulated provider",
            ),
        })
    }

    /// Nothing runs without the feature.
    pub(super) async fn stop_removed_simulated(&self, _config: &Config) {}

    /// Nothing runs without the feature.
    pub(super) async fn stop_all_simulated(&self) {}
}
