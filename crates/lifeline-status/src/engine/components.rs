//! Which components the page has, and which traffic each one covers.
//!
//! Configured components are taken as they are. Without them, the default
//! layout is built from what the engine has seen:
//!
//! - "Gateway" first, ungrouped (id `gateway`): every request.
//! - One group per API family in use, in the order Chat Completions,
//!   Responses, Embeddings, Images (group ids `group-chat-completions`,
//!   `group-responses`, `group-embeddings`, `group-images`). Chat
//!   Completions is always there, with one component per public model from
//!   the start (id `chat-<model slug>`); the other families appear once
//!   traffic for them has been seen, with a component per public model seen
//!   in that family (`responses-<slug>`, `embeddings-<slug>`,
//!   `images-<slug>`).
//! - Optionally, last, "Upstream providers" (`group-upstream-providers`),
//!   one component per provider (`provider-<slug>`), whose traffic is the
//!   attempts its deployments made.
//!
//! **Ids are unique** across components and groups (Statuspage's
//! `components.json` lists both, and incidents, badges and subscriptions
//! name them by id). Group ids are `group-<slug of the name>`; groups are
//! told apart by their names. A name whose slug is empty (a name without
//! ASCII letters or digits, such as `模型`) gets a stable hash instead
//! (`group-<8 hex digits>` of the name, FNV-1a); an id already taken
//! (public models `GPT-4o` and `gpt-4o`, a configured component named like
//! a provider's) gets the name's hash appended, then a counter. Configured
//! component ids are kept as configured; the generated ones give way, in
//! page order.
//!
//! A component covers a (family, public model) key when its families and
//! its models both admit it; an empty list admits everything.

use std::collections::BTreeSet;

use super::settings::{Family, Settings, SloSettings};
use crate::page::Group;

/// Id of the default layout's gateway component.
pub const GATEWAY_ID: &str = "gateway";
/// Id of the upstream providers group.
pub const PROVIDERS_GROUP_ID: &str = "group-upstream-providers";

/// One component of the layout.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ComponentDef {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub group_id: Option<String>,
    /// Families it covers; empty: all.
    pub families: Vec<Family>,
    /// Public models it covers; empty: all.
    pub models: Vec<String>,
    /// For a provider component: the provider.
    pub provider: Option<String>,
    pub slo: SloSettings,
}

impl ComponentDef {
    /// Whether traffic of `family` for `model` counts for this component.
    pub fn covers(&self, family: Family, model: &str) -> bool {
        self.provider.is_none()
            && (self.families.is_empty() || self.families.contains(&family))
            && (self.models.is_empty() || self.models.iter().any(|m| m == model))
    }

    /// Whether a deployment (its provider, and the public models it serves)
    /// works for this component.
    pub fn served_by(&self, provider: &str, models: &[String]) -> bool {
        match &self.provider {
            Some(p) => p == provider,
            None => self.models.is_empty() || models.iter().any(|m| self.models.contains(m)),
        }
    }

    /// Covers every model (the gateway itself): maintenance on it drains
    /// nothing, since no set of deployments is "the gateway".
    pub fn is_everything(&self) -> bool {
        self.provider.is_none() && self.models.is_empty()
    }

    /// Whether two components can see the same problem: they share a
    /// (family, model) key, or a provider component meets a component whose
    /// models its deployments serve (approximated: any non-provider
    /// component).
    pub fn overlaps(&self, other: &ComponentDef) -> bool {
        match (&self.provider, &other.provider) {
            (Some(a), Some(b)) => a == b,
            (Some(_), None) | (None, Some(_)) => true,
            (None, None) => {
                let families = self.families.is_empty()
                    || other.families.is_empty()
                    || self.families.iter().any(|f| other.families.contains(f));
                let models = self.models.is_empty()
                    || other.models.is_empty()
                    || self.models.iter().any(|m| other.models.contains(m));
                families && models
            }
        }
    }

    /// "Chat Completions (gpt-4o)" for a grouped component, its name
    /// otherwise: how incident texts name it.
    pub fn long_name(&self, groups: &[Group]) -> String {
        match self
            .group_id
            .as_ref()
            .and_then(|g| groups.iter().find(|x| &x.id == g))
        {
            Some(group) => format!("{} ({})", group.name, self.name),
            None => self.name.clone(),
        }
    }
}

/// Groups and components, in page order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Layout {
    pub groups: Vec<Group>,
    pub components: Vec<ComponentDef>,
}

impl Layout {
    /// The component with this id.
    pub fn get(&self, id: &str) -> Option<&ComponentDef> {
        self.components.iter().find(|c| c.id == id)
    }
}

/// Lower-case ASCII letters and digits, every other run of characters one
/// `-`, none at either end: `meta-llama/Llama-3-70B` → `meta-llama-llama-3-70b`.
pub fn slug(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// 8 hex digits of the 64-bit FNV-1a hash of `s`: stable across runs,
/// versions and platforms.
fn hash8(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:08x}", h >> 32)
}

/// `<prefix>-<slug of name>` (the name's hash for an empty slug), made
/// unique against `taken` (the name's hash appended, then a counter), and
/// taken.
fn unique_id(prefix: &str, name: &str, taken: &mut BTreeSet<String>) -> String {
    let s = slug(name);
    let base = if s.is_empty() {
        format!("{prefix}-{}", hash8(name))
    } else {
        format!("{prefix}-{s}")
    };
    let mut id = base.clone();
    if taken.contains(&id) {
        id = format!("{base}-{}", hash8(name));
    }
    let mut n = 2;
    while taken.contains(&id) {
        id = format!("{base}-{}-{n}", hash8(name));
        n += 1;
    }
    taken.insert(id.clone());
    id
}

/// The default layout's component ids of `family`, per public model (in
/// config order, so an id never depends on which models were seen).
pub(crate) fn model_ids(settings: &Settings, family: Family) -> Vec<(String, String)> {
    let mut taken = BTreeSet::from([GATEWAY_ID.to_string()]);
    settings
        .public_models
        .iter()
        .map(|m| (m.clone(), unique_id(family.as_str(), m, &mut taken)))
        .collect()
}

/// Builds the layout from the settings, the (family, model) keys seen with
/// traffic and the providers known.
pub(crate) fn layout(
    settings: &Settings,
    seen: &BTreeSet<(Family, String)>,
    providers: &BTreeSet<String>,
) -> Layout {
    let mut out = match &settings.components {
        Some(configured) => configured_layout(settings, configured),
        None => default_layout(settings, seen),
    };
    if settings.show_providers {
        let names: Vec<String> = if settings.providers.is_empty() {
            providers.iter().cloned().collect()
        } else {
            settings.providers.clone()
        };
        let mut taken: BTreeSet<String> = out
            .components
            .iter()
            .map(|c| c.id.clone())
            .chain(out.groups.iter().map(|g| g.id.clone()))
            .collect();
        let group_id = if taken.contains(PROVIDERS_GROUP_ID) {
            unique_id("group", "Upstream providers", &mut taken)
        } else {
            taken.insert(PROVIDERS_GROUP_ID.to_string());
            PROVIDERS_GROUP_ID.to_string()
        };
        let mut group = Group {
            id: group_id.clone(),
            name: "Upstream providers".to_string(),
            components: Vec::new(),
        };
        for provider in names {
            let id = unique_id("provider", &provider, &mut taken);
            group.components.push(id.clone());
            out.components.push(ComponentDef {
                id,
                name: provider.clone(),
                description: None,
                group_id: Some(group_id.clone()),
                families: Vec::new(),
                models: Vec::new(),
                provider: Some(provider),
                slo: settings.slo,
            });
        }
        if !group.components.is_empty() {
            out.groups.push(group);
        }
    }
    out
}

fn configured_layout(settings: &Settings, configured: &[super::ComponentConfig]) -> Layout {
    let mut out = Layout::default();
    let mut taken: BTreeSet<String> = configured.iter().map(|c| c.id.clone()).collect();
    for c in configured {
        let group_id =
            c.group.as_ref().map(
                |name| match out.groups.iter_mut().find(|g| &g.name == name) {
                    Some(g) => {
                        g.components.push(c.id.clone());
                        g.id.clone()
                    }
                    None => {
                        let id = unique_id("group", name, &mut taken);
                        out.groups.push(Group {
                            id: id.clone(),
                            name: name.clone(),
                            components: vec![c.id.clone()],
                        });
                        id
                    }
                },
            );
        out.components.push(ComponentDef {
            id: c.id.clone(),
            name: c.name.clone(),
            description: c.description.clone(),
            group_id,
            families: c.endpoints.clone(),
            models: c.models.clone(),
            provider: None,
            slo: c.slo.apply(&settings.slo),
        });
    }
    // Page order: ungrouped components where they are, each group's
    // components together at the group's first appearance.
    let mut ordered: Vec<ComponentDef> = Vec::with_capacity(out.components.len());
    let mut placed: BTreeSet<String> = BTreeSet::new();
    for c in &out.components {
        match &c.group_id {
            None => ordered.push(c.clone()),
            Some(g) if placed.insert(g.clone()) => ordered.extend(
                out.components
                    .iter()
                    .filter(|x| x.group_id.as_ref() == Some(g))
                    .cloned(),
            ),
            Some(_) => {}
        }
    }
    out.components = ordered;
    out
}

fn default_layout(settings: &Settings, seen: &BTreeSet<(Family, String)>) -> Layout {
    let mut out = Layout::default();
    out.components.push(ComponentDef {
        id: GATEWAY_ID.to_string(),
        name: "Gateway".to_string(),
        description: Some("Every request through the gateway".to_string()),
        group_id: None,
        families: Vec::new(),
        models: Vec::new(),
        provider: None,
        slo: settings.slo,
    });
    for family in Family::ALL {
        let models: Vec<(String, String)> = model_ids(settings, family)
            .into_iter()
            .filter(|(m, _)| family == Family::Chat || seen.contains(&(family, m.clone())))
            .collect();
        if models.is_empty() {
            continue;
        }
        let group_id = format!("group-{}", slug(family.group_name()));
        let mut group = Group {
            id: group_id.clone(),
            name: family.group_name().to_string(),
            components: Vec::new(),
        };
        for (model, id) in models {
            group.components.push(id.clone());
            out.components.push(ComponentDef {
                id,
                name: model.clone(),
                description: None,
                group_id: Some(group_id.clone()),
                families: vec![family],
                models: vec![model.clone()],
                provider: None,
                slo: settings.slo,
            });
        }
        out.groups.push(group);
    }
    out
}
