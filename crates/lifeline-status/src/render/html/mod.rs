//! The HTML pages: `/status` and `/status/incidents/{id}`, one per
//! language, from askama templates in `templates/` (checked at compile
//! time, escaping by default).
//!
//! The pages need no external asset and no JavaScript: the stylesheet and
//! the charts (SVG) are inline; a small inline script re-fetches the page
//! every 30 seconds and swaps its `<main>` when JavaScript is on. Only two
//! kinds of pre-built HTML reach the templates unescaped: incident and
//! maintenance bodies, which went through [`super::markdown`], and message
//! sentences with `<time>` elements built by [`fill_html`], which escapes
//! the message and every value first.

use std::time::Duration;

use askama::Template;

mod component;

use component::{component_view, ComponentView};
use lifeline_store::{Impact, IncidentStatus, MaintenanceStatus, ScheduledMaintenance};

use super::i18n::{eta_sentence, fill, Lang, Messages};
use super::json::group_children;
use super::markdown::Bodies;
use super::palette::CSS;
use super::time::{clock, date, human, rfc3339_ms};
use crate::page::{
    Component, ComponentStatus, DayBar, IncidentView, LatencyPoint, Page, ProviderReport,
};

/// Where the pages' links point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkMode {
    /// Served by Lifeline: absolute paths, `?lang=` kept on every link.
    Live,
    /// Written as files ([`super::export`]): relative links between
    /// `status/index{.lang}.html` and `status/incidents/{id}{.lang}.html`.
    Static,
}

/// Which page a link is written from (static links are relative).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum From {
    Index,
    Incident,
}

/// The suffix of an exported file for `lang` (`""`, `.de`, `.zh`).
pub(crate) fn static_suffix(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "",
        Lang::De => ".de",
        Lang::Zh => ".zh",
    }
}

struct Links {
    mode: LinkMode,
    lang: Lang,
    from: From,
}

impl Links {
    fn up(&self) -> &'static str {
        match (self.mode, self.from) {
            (LinkMode::Live, _) => "/",
            (LinkMode::Static, From::Index) => "../",
            (LinkMode::Static, From::Incident) => "../../",
        }
    }

    fn home(&self, lang: Lang) -> String {
        match (self.mode, self.from) {
            (LinkMode::Live, _) => format!("/status?lang={}", lang.code()),
            (LinkMode::Static, From::Index) => format!("index{}.html", static_suffix(lang)),
            (LinkMode::Static, From::Incident) => format!("../index{}.html", static_suffix(lang)),
        }
    }

    fn incident(&self, id: i64, lang: Lang) -> String {
        match (self.mode, self.from) {
            (LinkMode::Live, _) => format!("/status/incidents/{id}?lang={}", lang.code()),
            (LinkMode::Static, From::Index) => {
                format!("incidents/{id}{}.html", static_suffix(lang))
            }
            (LinkMode::Static, From::Incident) => format!("{id}{}.html", static_suffix(lang)),
        }
    }

    fn chrome_links(&self, t: &Messages, this: &dyn Fn(Lang) -> String) -> ChromeLinks {
        let up = self.up();
        ChromeLinks {
            home: self.home(self.lang),
            atom: format!("{up}history.atom"),
            rss: format!("{up}history.rss"),
            api: format!("{up}api/v2/summary.json"),
            langs: Lang::ALL
                .into_iter()
                .map(|l| LangLink {
                    name: l.messages().lang_name.clone(),
                    tag: l.tag(),
                    href: this(l),
                    current: l == self.lang,
                })
                .collect(),
            subscribe: t.subscribe.clone(),
        }
    }
}

/// Percent-encodes what is not safe in a path segment.
pub(crate) fn url_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A string safe as an HTML id: ASCII alphanumerics, `-` and `_` kept,
/// anything else `_`.
fn dom_id(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// HTML-escapes text.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A message with placeholders filled by HTML fragments: the message is
/// escaped first, the fragments are inserted as they are (callers escape
/// any text in them).
fn fill_html(template: &str, values: &[(&str, &str)]) -> String {
    fill(&escape(template), values)
}

/// `<time datetime="…">…</time>` for unix ms.
fn time_html(ms: i64) -> String {
    format!("<time datetime=\"{}\">{}</time>", rfc3339_ms(ms), human(ms))
}

/// A link that is only kept when it is http(s).
fn safe_href(url: &str) -> Option<String> {
    let lower = url.trim().to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://")).then(|| url.trim().to_string())
}

/// The one inline script: every 30 seconds (while the tab is visible),
/// fetch this page again and swap `<main>` if it changed, keeping focus.
const SCRIPT: &str = r#"
(function(){
if(!window.fetch||!window.DOMParser||!document.querySelector)return;
setInterval(function(){
if(document.hidden)return;
fetch(location.href,{cache:"no-store"}).then(function(r){return r.ok?r.text():null}).then(function(html){
if(!html)return;
var next=new DOMParser().parseFromString(html,"text/html").querySelector("main");
var cur=document.querySelector("main");
if(!next||!cur||next.innerHTML===cur.innerHTML)return;
var focused=document.activeElement&&document.activeElement.id;
cur.replaceWith(document.importNode(next,true));
if(focused){var el=document.getElementById(focused);if(el)el.focus();}
}).catch(function(){});
},30000);
})();
"#;

/// `sha256-…` of [`SCRIPT`], for the Content-Security-Policy.
pub(crate) fn script_hash() -> String {
    use sha2::{Digest, Sha256};
    format!("sha256-{}", base64(&Sha256::digest(SCRIPT.as_bytes())))
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(TABLE[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Shared head, header and footer data.
struct Chrome {
    t: &'static Messages,
    lang_tag: &'static str,
    title: String,
    page_name: String,
    indicator: &'static str,
    indicator_icon: &'static str,
    indicator_text: String,
    updated_html: String,
    behind_html: Option<String>,
    generated_html: String,
    links: ChromeLinks,
    css: &'static str,
    script: &'static str,
}

struct ChromeLinks {
    home: String,
    atom: String,
    rss: String,
    api: String,
    langs: Vec<LangLink>,
    subscribe: String,
}

struct LangLink {
    name: String,
    tag: &'static str,
    href: String,
    current: bool,
}

fn chrome(
    page: &Page,
    t: &'static Messages,
    lang: Lang,
    title: String,
    links: ChromeLinks,
) -> Chrome {
    let (indicator, description) = page.indicator();
    Chrome {
        t,
        lang_tag: lang.tag(),
        title,
        page_name: page.name.clone(),
        indicator,
        indicator_icon: indicator_icon(indicator),
        indicator_text: overall_text(t, description).to_string(),
        updated_html: fill_html(&t.updated, &[("time", &time_html(page.updated_at))]),
        behind_html: page
            .history_behind_since
            .map(|since| fill_html(&t.history_behind, &[("time", &time_html(since))])),
        generated_html: fill_html(&t.generated, &[("time", &time_html(page.generated_at))]),
        links,
        css: CSS.as_str(),
        script: SCRIPT,
    }
}

fn indicator_icon(indicator: &str) -> &'static str {
    match indicator {
        "none" => "✓",
        "minor" => "▲",
        "major" => "◆",
        "critical" => "✕",
        "maintenance" => "◔",
        _ => "?",
    }
}

/// The translated page description for Statuspage's English one.
fn overall_text<'a>(t: &'a Messages, description: &str) -> &'a str {
    match description {
        "Major System Outage" => &t.major_system_outage,
        "Partial System Outage" => &t.partial_system_outage,
        "Minor Service Outage" => &t.minor_service_outage,
        "Degraded System Service" => &t.degraded_system_service,
        "Partially Degraded Service" => &t.partially_degraded_service,
        "Service Under Maintenance" => &t.service_under_maintenance,
        _ => &t.all_systems_operational,
    }
}

pub(crate) fn status_text(t: &Messages, s: ComponentStatus) -> &str {
    match s {
        ComponentStatus::Operational => &t.status_operational,
        ComponentStatus::DegradedPerformance => &t.status_degraded_performance,
        ComponentStatus::PartialOutage => &t.status_partial_outage,
        ComponentStatus::MajorOutage => &t.status_major_outage,
        ComponentStatus::UnderMaintenance => &t.status_under_maintenance,
    }
}

fn status_icon(s: ComponentStatus) -> &'static str {
    match s {
        ComponentStatus::Operational => "✓",
        ComponentStatus::DegradedPerformance => "▲",
        ComponentStatus::PartialOutage => "◆",
        ComponentStatus::MajorOutage => "✕",
        ComponentStatus::UnderMaintenance => "◔",
    }
}

fn incident_status_text(t: &Messages, s: IncidentStatus) -> &str {
    match s {
        IncidentStatus::Investigating => &t.incident_investigating,
        IncidentStatus::Identified => &t.incident_identified,
        IncidentStatus::Monitoring => &t.incident_monitoring,
        IncidentStatus::Resolved => &t.incident_resolved,
        IncidentStatus::Postmortem => &t.incident_postmortem,
    }
}

fn impact_text(t: &Messages, i: Impact) -> &str {
    match i {
        Impact::None => &t.impact_none,
        Impact::Minor => &t.impact_minor,
        Impact::Major => &t.impact_major,
        Impact::Critical => &t.impact_critical,
    }
}

fn maintenance_status_text(t: &Messages, s: MaintenanceStatus) -> &str {
    match s {
        MaintenanceStatus::Scheduled => &t.maintenance_scheduled,
        MaintenanceStatus::InProgress => &t.maintenance_in_progress,
        MaintenanceStatus::Verifying => &t.maintenance_verifying,
        MaintenanceStatus::Completed => &t.maintenance_completed,
    }
}

/// "850 ms", "1.2 s".
fn latency_text(t: &Messages, ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{} s", t.decimal(ms / 1000.0))
    }
}

/// Names of the components with these ids, joined ("Chat, Embeddings").
fn component_names(page: &Page, ids: &[String]) -> String {
    ids.iter()
        .map(|id| {
            page.component(id)
                .map(|c| c.name.as_str())
                .or_else(|| {
                    page.groups
                        .iter()
                        .find(|g| &g.id == id)
                        .map(|g| g.name.as_str())
                })
                .unwrap_or(id.as_str())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

// === The status page ===

#[derive(Template)]
#[template(path = "status.html")]
struct StatusTemplate {
    c: Chrome,
    groups: Vec<GroupView>,
    active: Vec<IncidentHtml>,
    past: Vec<IncidentHtml>,
    maint_now: Vec<MaintView>,
    maint_upcoming: Vec<MaintView>,
    maint_done: Vec<MaintView>,
    providers: Vec<ProviderView>,
}

struct GroupView {
    dom_id: String,
    name: String,
    components: Vec<ComponentView>,
}

struct IncidentHtml {
    dom_id: String,
    /// The incident's id and status, as `data-` attributes.
    id: i64,
    status_key: &'static str,
    href: String,
    name: String,
    status_text: String,
    impact_class: &'static str,
    impact_html: String,
    affected: Option<String>,
    started_html: String,
    resolved_html: Option<String>,
    eta: Option<String>,
    updates: Vec<UpdateHtml>,
}

struct UpdateHtml {
    status_text: String,
    time_html: String,
    body_html: String,
}

struct MaintView {
    anchor: String,
    name: String,
    status_text: String,
    window_html: String,
    affected: Option<String>,
    body_html: String,
}

struct ProviderView {
    name: String,
    class: &'static str,
    summary: String,
    source_href: Option<String>,
    incidents: Vec<ProviderIncidentView>,
    fetched_html: Option<String>,
}

struct ProviderIncidentView {
    name: String,
    href: Option<String>,
    status: String,
    since_html: String,
}

/// The status page in `lang`.
pub(crate) fn status_page(
    page: &Page,
    lang: Lang,
    mode: LinkMode,
    bodies: &Bodies<'_>,
) -> Result<String, askama::Error> {
    let t = lang.messages();
    let links = Links {
        mode,
        lang,
        from: From::Index,
    };
    let this = |l: Lang| links.home(l);
    let c = chrome(
        page,
        t,
        lang,
        page.name.clone(),
        links.chrome_links(t, &this),
    );

    let mut groups: Vec<GroupView> = page
        .groups
        .iter()
        .map(|g| GroupView {
            // DOM ids are component and group ids, which the engine keeps
            // apart (group ids start with "group-"); a page built
            // otherwise gets the prefix here.
            dom_id: match g.id.strip_prefix("group-") {
                Some(_) => dom_id(&g.id),
                None => format!("group-{}", dom_id(&g.id)),
            },
            name: g.name.clone(),
            components: group_children(page, g)
                .into_iter()
                .map(|comp| component_view(page, comp, t))
                .collect(),
        })
        .collect();
    let grouped = |c: &Component| {
        page.groups
            .iter()
            .any(|g| group_children(page, g).iter().any(|x| x.id == c.id))
    };
    let others: Vec<ComponentView> = page
        .components
        .iter()
        .filter(|comp| !grouped(comp))
        .map(|comp| component_view(page, comp, t))
        .collect();
    if !others.is_empty() {
        groups.push(GroupView {
            // '_' is in no slug: never a group's or a component's id.
            dom_id: "group_other".into(),
            name: if page.groups.is_empty() {
                t.components_heading.clone()
            } else {
                t.other_components.clone()
            },
            components: others,
        });
    }

    let (active, past): (Vec<&IncidentView>, Vec<&IncidentView>) = page
        .incidents
        .iter()
        .partition(|i| i.incident.incident.status.is_open());
    let incident = |i: &IncidentView| incident_html(page, i, t, lang, &links, bodies);
    let maint = |keep: &dyn Fn(MaintenanceStatus) -> bool| {
        page.maintenances
            .iter()
            .filter(|m| keep(m.status))
            .map(|m| maint_view(page, m, t, bodies))
            .collect::<Vec<_>>()
    };
    let mut maint_upcoming = maint(&|s| s == MaintenanceStatus::Scheduled);
    maint_upcoming.reverse(); // soonest first
    let template = StatusTemplate {
        c,
        groups,
        active: active.into_iter().map(incident).collect(),
        // Past incidents show their latest update; the whole timeline is
        // on the incident's own page.
        past: past
            .into_iter()
            .map(|i| {
                let mut html = incident(i);
                html.updates.truncate(1);
                html
            })
            .collect(),
        maint_now: maint(&|s| {
            matches!(
                s,
                MaintenanceStatus::InProgress | MaintenanceStatus::Verifying
            )
        }),
        maint_upcoming,
        maint_done: maint(&|s| s == MaintenanceStatus::Completed),
        providers: page.providers.iter().map(|p| provider_view(p, t)).collect(),
    };
    template.render()
}

fn incident_html(
    page: &Page,
    i: &IncidentView,
    t: &Messages,
    lang: Lang,
    links: &Links,
    bodies: &Bodies<'_>,
) -> IncidentHtml {
    let inc = &i.incident.incident;
    let mut updates: Vec<UpdateHtml> = i
        .incident
        .incident_updates
        .iter()
        .map(|u| UpdateHtml {
            status_text: incident_status_text(t, u.status).to_string(),
            time_html: time_html(u.created_at),
            body_html: bodies.html(&u.body),
        })
        .collect();
    updates.reverse();
    IncidentHtml {
        dom_id: format!("incident-{}", inc.id),
        id: inc.id,
        status_key: inc.status.as_str(),
        href: links.incident(inc.id, lang),
        name: inc.name.clone(),
        status_text: incident_status_text(t, inc.status).to_string(),
        impact_class: match inc.impact {
            Impact::None => "i-none",
            Impact::Minor => "i-minor",
            Impact::Major => "i-major",
            Impact::Critical => "i-critical",
        },
        impact_html: fill_html(
            &t.impact,
            &[("impact", &escape(impact_text(t, inc.impact)))],
        ),
        affected: (!inc.components.is_empty()).then(|| {
            fill(
                &t.affected,
                &[("components", &component_names(page, &inc.components))],
            )
        }),
        started_html: fill_html(&t.started, &[("time", &time_html(inc.created_at))]),
        resolved_html: inc
            .resolved_at
            .map(|at| fill_html(&t.resolved_at, &[("time", &time_html(at))])),
        eta: i
            .eta
            .filter(|_| inc.status.is_open())
            .map(|e| eta_sentence(lang, &e.eta, e.elapsed)),
        updates,
    }
}

fn maint_view(
    page: &Page,
    m: &ScheduledMaintenance,
    t: &Messages,
    bodies: &Bodies<'_>,
) -> MaintView {
    MaintView {
        anchor: format!("maintenance-{}", m.id),
        name: m.name.clone(),
        status_text: maintenance_status_text(t, m.status).to_string(),
        window_html: fill_html(
            &t.maintenance_window,
            &[
                ("from", &time_html(m.scheduled_for)),
                ("until", &time_html(m.scheduled_until)),
            ],
        ),
        affected: (!m.components.is_empty()).then(|| {
            fill(
                &t.affected,
                &[("components", &component_names(page, &m.components))],
            )
        }),
        body_html: bodies.html(&m.body),
    }
}

fn provider_view(p: &ProviderReport, t: &Messages) -> ProviderView {
    let class = match p.indicator.as_deref() {
        Some("none") => "i-none",
        Some("minor") => "i-minor",
        Some("major") => "i-major",
        Some("critical") => "i-critical",
        Some("maintenance") => "i-maintenance",
        _ => "i-unknown",
    };
    let summary = match (&p.indicator, &p.description) {
        (None, _) => t.provider_unknown.clone(),
        (Some(_), Some(d)) => d.clone(),
        (Some(i), None) => i.clone(),
    };
    ProviderView {
        name: p.provider.clone(),
        class,
        summary,
        source_href: safe_href(&p.public_source_url()),
        incidents: p
            .incidents
            .iter()
            .map(|i| ProviderIncidentView {
                name: i.name.clone(),
                href: i.url.as_deref().and_then(safe_href),
                status: i.status.clone(),
                since_html: fill_html(&t.provider_since, &[("time", &time_html(i.started_at))]),
            })
            .collect(),
        fetched_html: p
            .fetched_at
            .map(|at| fill_html(&t.provider_fetched, &[("time", &time_html(at))])),
    }
}

// === The incident page ===

#[derive(Template)]
#[template(path = "incident.html")]
struct IncidentTemplate {
    c: Chrome,
    i: IncidentHtml,
}

/// The page of one incident in `lang`.
pub(crate) fn incident_page(
    page: &Page,
    incident: &IncidentView,
    lang: Lang,
    mode: LinkMode,
    bodies: &Bodies<'_>,
) -> Result<String, askama::Error> {
    let t = lang.messages();
    let links = Links {
        mode,
        lang,
        from: From::Incident,
    };
    let id = incident.incident.incident.id;
    let this = |l: Lang| links.incident(id, l);
    let title = format!("{} – {}", incident.incident.incident.name, page.name);
    let c = chrome(page, t, lang, title, links.chrome_links(t, &this));
    IncidentTemplate {
        c,
        i: incident_html(page, incident, t, lang, &links, bodies),
    }
    .render()
}
