//! The validated config (`[status]`, `[store]`) as the engine's settings.

use std::path::PathBuf;

use lifeline_core::config::{SloConfig, StoreBackend};
use lifeline_core::Config;
use lifeline_status::engine::{
    ComponentConfig, Family, IncidentSettings, Settings, SloOverrides, SloSettings, Thresholds,
};

/// The store's file (`[store] url`).
pub fn store_path(config: &Config) -> PathBuf {
    match &config.store.backend {
        StoreBackend::Sqlite(path) => path.clone(),
    }
}

fn slo(c: &SloConfig) -> SloSettings {
    SloSettings {
        availability: c.availability,
        latency_threshold: c.latency,
        latency_target: Some(c.latency_target),
        period: std::time::Duration::from_secs(u64::from(c.period_days) * 86_400),
    }
}

/// The engine's settings from the config.
pub fn engine_settings(config: &Config) -> Settings {
    let s = &config.status;
    let defaults = slo(&s.slo);
    let components = (!s.components.is_empty()).then(|| {
        s.components
            .iter()
            .map(|c| {
                let own = slo(&c.slo);
                ComponentConfig {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    description: c.description.clone(),
                    group: c.group.clone(),
                    models: c.models.clone(),
                    endpoints: c
                        .endpoints
                        .iter()
                        .filter_map(|e| Family::parse(e))
                        .collect(),
                    slo: SloOverrides {
                        availability: Some(own.availability),
                        latency_threshold: Some(own.latency_threshold),
                        latency_target: own.latency_target,
                        period: Some(own.period),
                    },
                }
            })
            .collect()
    });
    Settings {
        page_id: "lifeline".to_string(),
        page_name: s.title.clone(),
        page_url: s.page_url.clone(),
        components,
        public_models: config.models.iter().map(|m| m.name.clone()).collect(),
        show_providers: s.show_providers,
        early_warning: s.early_warning,
        providers: config.providers.iter().map(|p| p.name.clone()).collect(),
        slo: defaults,
        thresholds: Thresholds {
            no_data_after: s.no_data_after,
            ..Thresholds::default()
        },
        incidents: IncidentSettings {
            open_after: s.open_after,
            resolve_after: s.resolve_after,
            update_interval: s.update_interval,
            publish_automatic: s.publish_automatic,
        },
        ..Settings::default()
    }
}
