//! `report.html`: one self-contained page (inline CSS and SVG, no script,
//! no external asset) with, per scenario, its verdict, its timeline and its
//! scorecard.
//!
//! The timeline: the success ratio per second (green, left axis, 0–100 %)
//! and the p99 latency per second (blue, right axis), over the fault
//! windows (shaded red); under it one band per deployment, coloured by its
//! breaker state each second (green closed, amber half-open, red open);
//! incidents as vertical lines (opened: orange, resolved: dashed green).

use std::fmt::Write as _;

use super::report::{Report, ScenarioResult};

const W: f64 = 900.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 130.0;
const CHART_H: f64 = 180.0;
const TOP: f64 = 12.0;
const BAND_H: f64 = 12.0;

/// Escapes text for HTML content and attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
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

/// The whole page.
pub fn render(report: &Report) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Lifeline chaos report</title>\n<style>{CSS}</style></head><body>\n<h1>Lifeline chaos report: <span class=\"{}\">{}</span></h1>\n<p>Config: <code>{}</code>, started {}, {} s per scenario, {} concurrent clients.</p>\n",
        if report.pass { "pass" } else { "fail" },
        if report.pass { "PASS" } else { "FAIL" },
        esc(&report.config),
        esc(&report.started_at),
        report.duration_s,
        report.concurrency
    );
    h.push_str("<table class=\"summary\"><tr><th>scenario</th><th>verdict</th><th>what happens</th></tr>\n");
    for s in &report.scenarios {
        let _ = writeln!(
            h,
            "<tr><td><a href=\"#{0}\">{0}</a></td><td class=\"{1}\">{2}</td><td>{3}</td></tr>",
            esc(&s.name),
            esc(&s.verdict),
            esc(&s.verdict.to_uppercase()),
            esc(&s.description)
        );
    }
    h.push_str("</table>\n");
    for s in &report.scenarios {
        scenario(&mut h, s);
    }
    h.push_str("</body></html>\n");
    h
}

fn scenario(h: &mut String, s: &ScenarioResult) {
    let _ = write!(
        h,
        "<section id=\"{0}\"><h2>{0} <span class=\"{1}\">{2}</span></h2>\n<p>{3}</p>\n",
        esc(&s.name),
        esc(&s.verdict),
        esc(&s.verdict.to_uppercase()),
        esc(&s.description)
    );
    if let Some(why) = &s.skipped_because {
        let _ = writeln!(h, "<p>Skipped: {}</p></section>", esc(why));
        return;
    }
    for w in &s.windows {
        let _ = writeln!(
            h,
            "<p class=\"window\">{:.1}–{:.1} s: {} ({}): {}{}{}</p>",
            w.start_s,
            w.end_s,
            esc(&w.target),
            esc(&w.providers.join(", ")),
            esc(&w.fault),
            w.detected_after_s
                .map_or_else(String::new, |d| format!("; noticed after {d:.2} s")),
            w.recovered_after_s.map_or_else(String::new, |d| format!(
                "; traffic back {d:.2} s after it ended"
            )),
        );
    }
    timeline(h, s);
    h.push_str(
        "<table><tr><th>expectation</th><th>required</th><th>measured</th><th>verdict</th></tr>\n",
    );
    for e in &s.expectations {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
            esc(&e.name),
            esc(&e.required),
            esc(&e.measured),
            if e.pass { "pass" } else { "fail" },
            if e.pass { "PASS" } else { "FAIL" }
        );
    }
    h.push_str("</table>\n<p class=\"totals\">Requests by outcome: ");
    let totals: Vec<String> = s
        .totals
        .iter()
        .map(|(k, v)| format!("{} {v}", esc(k)))
        .collect();
    h.push_str(&totals.join(", "));
    h.push_str("</p>\n");
    if !s.examples.is_empty() {
        h.push_str("<ul class=\"examples\">");
        for (k, v) in &s.examples {
            let _ = write!(h, "<li><b>{}</b>: {}</li>", esc(k), esc(v));
        }
        h.push_str("</ul>\n");
    }
    if !s.incidents.is_empty() {
        h.push_str("<ul class=\"incidents\">");
        for i in &s.incidents {
            let _ = write!(
                h,
                "<li>Incident #{} “{}”: opened at {:.0} s, {}</li>",
                i.id,
                esc(&i.name),
                i.opened_s,
                i.resolved_s.map_or_else(
                    || "still open".to_string(),
                    |r| format!("resolved at {r:.0} s")
                )
            );
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</section>\n");
}

fn timeline(h: &mut String, s: &ScenarioResult) {
    let deployments: Vec<String> = {
        let mut v: Vec<String> = s
            .samples
            .iter()
            .flat_map(|x| x.breakers.keys().cloned())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let span = s.ran_s.max(1.0);
    let plot_w = W - LEFT - RIGHT;
    let x = |t: f64| LEFT + t / span * plot_w;
    let bands_top = TOP + CHART_H + 24.0;
    let height = bands_top + BAND_H * deployments.len() as f64 + 42.0;
    let max_lat = s
        .samples
        .iter()
        .map(|x| x.p99_ms)
        .fold(0.0f64, f64::max)
        .max(100.0);
    let lat_top = nice(max_lat);
    let _ = writeln!(
        h,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {height}\" width=\"{W}\" height=\"{height}\" role=\"img\" aria-label=\"timeline of {}\">",
        esc(&s.name)
    );
    // Fault windows.
    for w in &s.windows {
        let _ = writeln!(
            h,
            "<rect x=\"{:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{CHART_H}\" fill=\"#f8d7da\"><title>{}</title></rect>",
            x(w.start_s),
            (x(w.end_s) - x(w.start_s)).max(1.0),
            esc(&w.fault)
        );
    }
    // Axes and grid.
    for i in 0..=4 {
        let y = TOP + CHART_H * f64::from(i) / 4.0;
        let _ = writeln!(
            h,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" class=\"ax\" text-anchor=\"end\">{}%</text><text x=\"{:.1}\" y=\"{:.1}\" class=\"ax\">{:.0} ms</text>",
            W - RIGHT,
            LEFT - 4.0,
            y + 4.0,
            100 - i * 25,
            W - RIGHT + 4.0,
            y + 4.0,
            lat_top * f64::from(4 - i) / 4.0
        );
    }
    let step = if span > 60.0 { 10 } else { 5 };
    let mut t = 0u32;
    while f64::from(t) <= span {
        let _ = writeln!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"ax\" text-anchor=\"middle\">{t}s</text>",
            x(f64::from(t)),
            TOP + CHART_H + 14.0
        );
        t += step;
    }
    let ratio: Vec<String> = s
        .samples
        .iter()
        .filter(|p| p.requests > 0)
        .map(|p| {
            format!(
                "{:.1},{:.1}",
                x(f64::from(p.t_s) + 0.5),
                TOP + CHART_H * (1.0 - p.success_ratio)
            )
        })
        .collect();
    let lat: Vec<String> = s
        .samples
        .iter()
        .filter(|p| p.requests > 0)
        .map(|p| {
            format!(
                "{:.1},{:.1}",
                x(f64::from(p.t_s) + 0.5),
                TOP + CHART_H * (1.0 - (p.p99_ms / lat_top).min(1.0))
            )
        })
        .collect();
    let _ = writeln!(
        h,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\"><title>p99 latency</title></polyline>",
        lat.join(" ")
    );
    let _ = writeln!(
        h,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#2ca02c\" stroke-width=\"2\"><title>success ratio</title></polyline>",
        ratio.join(" ")
    );
    for i in &s.incidents {
        let _ = writeln!(
            h,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{TOP}\" y2=\"{1:.1}\" stroke=\"#ff7f0e\" stroke-width=\"2\"><title>incident #{2} opened: {3}</title></line>",
            x(i.opened_s),
            TOP + CHART_H,
            i.id,
            esc(&i.name)
        );
        if let Some(r) = i.resolved_s {
            let _ = writeln!(
                h,
                "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{TOP}\" y2=\"{1:.1}\" stroke=\"#2ca02c\" stroke-width=\"2\" stroke-dasharray=\"4 3\"><title>incident #{2} resolved</title></line>",
                x(r),
                TOP + CHART_H,
                i.id
            );
        }
    }
    // Breaker bands.
    for (row, d) in deployments.iter().enumerate() {
        let y = bands_top + BAND_H * row as f64;
        for p in &s.samples {
            let colour = match p.breakers.get(d).map(String::as_str) {
                Some("open") => "#d62728",
                Some("half_open") => "#ffbf00",
                Some(_) => "#8fd19e",
                None => continue,
            };
            let _ = writeln!(
                h,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.2}\" height=\"{:.1}\" fill=\"{colour}\"/>",
                x(f64::from(p.t_s)),
                (x(f64::from(p.t_s) + 1.0) - x(f64::from(p.t_s))).max(0.5),
                BAND_H - 2.0
            );
        }
        let _ = writeln!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"ax\">{}</text>",
            W - RIGHT + 4.0,
            y + BAND_H - 3.0,
            esc(d)
        );
    }
    let _ = writeln!(
        h,
        "<text x=\"{LEFT}\" y=\"{:.1}\" class=\"ax\">green line: success ratio (left axis) · blue line: p99 latency (right axis) · red shade: fault window</text>\n<text x=\"{LEFT}\" y=\"{:.1}\" class=\"ax\">bands: breaker per deployment (green closed, amber half-open, red open) · orange line: incident opened · dashed green: resolved</text>\n</svg>",
        height - 20.0,
        height - 6.0
    );
}

/// A round axis top at or above `v`: 1, 2 or 5 × a power of ten.
fn nice(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:960px;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}\
.pass{color:#1a7f37;font-weight:bold}.fail{color:#c62828;font-weight:bold}.skipped{color:#777}\
section{border-top:2px solid #eee;margin-top:2em}.window{margin:.2em 0;color:#555}\
.ax{font-size:10px;fill:#555}.totals,.examples,.incidents{color:#444;font-size:13px}code{background:#f4f4f4;padding:0 3px}";
