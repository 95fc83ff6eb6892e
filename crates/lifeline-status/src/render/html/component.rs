//! One component on the status page: its status line, objectives, the 90
//! daily bars (each focusable, with an accessible name) and the 24-hour
//! latency chart (inline SVG).

use super::*;

pub(super) struct ComponentView {
    pub(super) dom_id: String,
    /// The component's id and Statuspage status, as `data-` attributes
    /// for scripts and tests that read the page.
    pub(super) id: String,
    pub(super) status_key: &'static str,
    pub(super) name: String,
    pub(super) description: Option<String>,
    pub(super) status_class: &'static str,
    pub(super) status_icon: &'static str,
    pub(super) status_text: String,
    pub(super) facts: Vec<String>,
    pub(super) uptime_heading: String,
    pub(super) uptime_summary: String,
    pub(super) bars: Vec<BarView>,
    pub(super) bars_start: String,
    pub(super) bars_end: String,
    pub(super) chart: Option<ChartView>,
}

pub(super) struct BarView {
    pub(super) id: String,
    pub(super) class: &'static str,
    pub(super) label: String,
}

pub(super) struct ChartView {
    pub(super) title_id: String,
    pub(super) desc_id: String,
    pub(super) title: String,
    pub(super) desc: String,
    pub(super) p50: String,
    pub(super) p99: String,
    pub(super) ttft: String,
    pub(super) max_label: String,
    pub(super) start_label: String,
    pub(super) end_label: String,
    pub(super) p50_label: String,
    pub(super) p99_label: String,
    pub(super) ttft_label: String,
}

pub(super) fn component_view(page: &Page, comp: &Component, t: &Messages) -> ComponentView {
    let id = dom_id(&comp.id);
    let (status_class, status_icon, status_label) = if comp.no_recent_data {
        ("s-no_data", "?", t.status_no_recent_data.clone())
    } else {
        (
            status_class(comp.status),
            status_icon(comp.status),
            status_text(t, comp.status).to_string(),
        )
    };
    let mut facts = Vec::new();
    if comp.no_recent_data {
        facts.push(fill(
            &t.no_recent_data_note,
            &[("status", status_text(t, comp.status))],
        ));
    }
    if let Some(slo) = &comp.slo {
        let mut line = fill(
            &t.slo_availability,
            &[
                ("target", &t.percent(slo.availability_target)),
                ("period", &t.days(slo.period)),
            ],
        );
        if let Some(a) = slo.availability {
            line.push_str(": ");
            line.push_str(&fill(&t.slo_measured, &[("value", &t.percent(a))]));
        }
        line.push_str("; ");
        line.push_str(&budget(t, slo.availability_budget_left));
        facts.push(line);
        if let (Some(target), Some(threshold)) = (slo.latency_target, slo.latency_threshold) {
            let mut line = fill(
                &t.slo_latency,
                &[
                    ("target", &t.percent(target)),
                    (
                        "threshold",
                        &latency_text(t, threshold.as_secs_f64() * 1000.0),
                    ),
                ],
            );
            if let Some(left) = slo.latency_budget_left {
                line.push_str("; ");
                line.push_str(&budget(t, left));
            }
            facts.push(line);
        }
        for a in &slo.alerts {
            facts.push(fill(
                &t.burn_alert,
                &[
                    (
                        "severity",
                        if a.severity == "page" {
                            &t.alert_page
                        } else {
                            &t.alert_ticket
                        },
                    ),
                    (
                        "objective",
                        if a.objective == "latency" {
                            &t.objective_latency
                        } else {
                            &t.objective_availability
                        },
                    ),
                    ("rate", &t.decimal(a.burn_rate)),
                    ("window", &t.duration(a.long_window)),
                ],
            ));
        }
    }
    match (comp.effective_24h, comp.upstream_24h) {
        (Some(eff), _) if comp.upstream_down_minutes_24h > 0 => facts.push(fill(
            &t.upstream_down,
            &[
                (
                    "duration",
                    &t.duration(Duration::from_secs(
                        u64::from(comp.upstream_down_minutes_24h) * 60,
                    )),
                ),
                ("pct", &t.percent(eff)),
            ],
        )),
        (Some(eff), Some(up)) => facts.push(fill(
            &t.availability_24h,
            &[("effective", &t.percent(eff)), ("upstream", &t.percent(up))],
        )),
        _ => {}
    }

    let n = comp.uptime.len();
    let with_data: Vec<f64> = comp.uptime.iter().filter_map(|d| d.effective).collect();
    let uptime_summary = if with_data.is_empty() {
        t.uptime_no_data.clone()
    } else {
        let mean = with_data.iter().sum::<f64>() / with_data.len() as f64;
        fill(
            &t.uptime_summary,
            &[("pct", &t.percent(mean)), ("n", &n.to_string())],
        )
    };
    let bars = comp
        .uptime
        .iter()
        .enumerate()
        .map(|(i, day)| BarView {
            id: format!("bar-{id}-{i}"),
            class: bar_class(day),
            label: day_label(page, day, t),
        })
        .collect();
    ComponentView {
        uptime_heading: fill(&t.uptime_heading, &[("n", &n.to_string())]),
        uptime_summary,
        bars,
        bars_start: fill(&t.days_ago, &[("n", &n.saturating_sub(1).to_string())]),
        bars_end: t.today.clone(),
        chart: chart(page, comp, t, &id),
        dom_id: id,
        id: comp.id.clone(),
        status_key: comp.status.as_str(),
        name: comp.name.clone(),
        description: comp.description.clone(),
        status_class,
        status_icon,
        status_text: status_label,
        facts,
    }
}

fn status_class(s: ComponentStatus) -> &'static str {
    match s {
        ComponentStatus::Operational => "s-operational",
        ComponentStatus::DegradedPerformance => "s-degraded_performance",
        ComponentStatus::PartialOutage => "s-partial_outage",
        ComponentStatus::MajorOutage => "s-major_outage",
        ComponentStatus::UnderMaintenance => "s-under_maintenance",
    }
}

fn budget(t: &Messages, left: f64) -> String {
    if left >= 0.0 {
        fill(&t.budget_left, &[("pct", &t.percent(left))])
    } else {
        fill(&t.budget_overspent, &[("pct", &t.percent(-left))])
    }
}

fn bar_class(day: &DayBar) -> &'static str {
    if day.effective.is_none() && day.requests == 0 {
        return "b-nodata";
    }
    match day.worst {
        ComponentStatus::Operational => "b-ok",
        ComponentStatus::DegradedPerformance => "b-deg",
        ComponentStatus::PartialOutage => "b-partial",
        ComponentStatus::MajorOutage => "b-major",
        ComponentStatus::UnderMaintenance => "b-maint",
    }
}

/// The accessible name of one day's bar: date, availability, requests,
/// worst status, incidents.
fn day_label(page: &Page, day: &DayBar, t: &Messages) -> String {
    let mut parts = vec![date(day.day)];
    match day.effective {
        Some(a) => parts.push(fill(&t.day_available, &[("pct", &t.percent(a))])),
        None => parts.push(t.day_no_data.clone()),
    }
    if day.requests > 0 {
        parts.push(fill(&t.day_requests, &[("n", &day.requests.to_string())]));
        parts.push(fill(&t.day_worst, &[("status", status_text(t, day.worst))]));
    }
    if day.incidents.is_empty() {
        parts.push(t.day_no_incidents.clone());
    } else {
        let names: Vec<String> = day
            .incidents
            .iter()
            .map(|id| {
                page.incidents
                    .iter()
                    .find(|i| i.incident.incident.id == *id)
                    .map_or_else(|| format!("#{id}"), |i| i.incident.incident.name.clone())
            })
            .collect();
        parts.push(fill(&t.day_incidents, &[("names", &names.join(", "))]));
    }
    let first = parts.remove(0);
    format!("{first}: {}", parts.join("; "))
}

const CHART_W: f64 = 600.0;
const PLOT_LEFT: f64 = 56.0;
const PLOT_TOP: f64 = 8.0;
const PLOT_BOTTOM: f64 = 120.0;

fn chart(page: &Page, comp: &Component, t: &Messages, id: &str) -> Option<ChartView> {
    let points = &comp.latency;
    let max = points
        .iter()
        .flat_map(|p| [p.p50_ms, p.p99_ms, p.ttft_p50_ms])
        .flatten()
        .fold(0.0_f64, f64::max);
    if points.is_empty() || max <= 0.0 {
        return None;
    }
    let top = nice_ceiling(max);
    let end = page.generated_at;
    let start = end - 24 * 3_600_000;
    let x = |at: i64| {
        PLOT_LEFT
            + (at - start).clamp(0, end - start) as f64 / (end - start) as f64
                * (CHART_W - PLOT_LEFT - 4.0)
    };
    let y = |v: f64| PLOT_BOTTOM - (v / top).min(1.0) * (PLOT_BOTTOM - PLOT_TOP);
    // A gap in the data is a gap in the line: more than twice the usual
    // spacing between points.
    let step = points
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .filter(|d| *d > 0)
        .min()
        .unwrap_or(300_000);
    let path = |value: &dyn Fn(&LatencyPoint) -> Option<f64>| {
        let mut d = String::new();
        let mut last: Option<i64> = None;
        for p in points {
            let Some(v) = value(p) else {
                last = None;
                continue;
            };
            let cmd = match last {
                Some(prev) if p.at - prev <= 2 * step => 'L',
                _ => 'M',
            };
            d.push_str(&format!("{cmd}{:.0} {:.0}", x(p.at), y(v)));
            last = Some(p.at);
        }
        d
    };
    let na = || t.chart_na.clone();
    let latest = |f: &dyn Fn(&LatencyPoint) -> Option<f64>| {
        points
            .iter()
            .rev()
            .find_map(f)
            .map_or_else(na, |v| latency_text(t, v))
    };
    let peak = points
        .iter()
        .filter_map(|p| p.p99_ms.map(|v| (v, p.at)))
        .fold(None, |best: Option<(f64, i64)>, (v, at)| match best {
            Some((bv, _)) if bv >= v => best,
            _ => Some((v, at)),
        });
    let (peak_text, peak_time) = peak.map_or_else(
        || (na(), na()),
        |(v, at)| (latency_text(t, v), format!("{} UTC", clock(at))),
    );
    Some(ChartView {
        title_id: format!("chart-{id}-title"),
        desc_id: format!("chart-{id}-desc"),
        title: fill(&t.chart_title, &[("name", &comp.name)]),
        desc: fill(
            &t.chart_desc,
            &[
                ("p50", &latest(&|p| p.p50_ms)),
                ("p99", &latest(&|p| p.p99_ms)),
                ("ttft", &latest(&|p| p.ttft_p50_ms)),
                ("peak", &peak_text),
                ("time", &peak_time),
            ],
        ),
        p50: path(&|p| p.p50_ms),
        p99: path(&|p| p.p99_ms),
        ttft: path(&|p| p.ttft_p50_ms),
        max_label: latency_text(t, top),
        start_label: t.chart_start.clone(),
        end_label: t.chart_end.clone(),
        p50_label: t.chart_p50.clone(),
        p99_label: t.chart_p99.clone(),
        ttft_label: t.chart_ttft.clone(),
    })
}

/// 1, 2 or 5 times a power of ten, at least `v`.
fn nice_ceiling(v: f64) -> f64 {
    let mut base = 1.0;
    while base * 10.0 <= v {
        base *= 10.0;
    }
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * base)
        .find(|c| *c >= v)
        .unwrap_or(base * 10.0)
}
