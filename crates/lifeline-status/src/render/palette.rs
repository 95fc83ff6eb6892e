//! The page's colours, light and dark, and the stylesheet built from them.
//!
//! Every text colour has at least 4.5:1 contrast (WCAG AA) against both the
//! background and the raised surface of its scheme, and the status colours
//! double as the uptime bars' fill (non-text, 3:1 needed); a test computes
//! the ratios. Statuses are never told by colour alone: each has a word and
//! an icon beside it.

use std::sync::LazyLock;

/// One colour scheme.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scheme {
    pub(crate) bg: &'static str,
    pub(crate) surface: &'static str,
    pub(crate) text: &'static str,
    pub(crate) muted: &'static str,
    pub(crate) link: &'static str,
    pub(crate) border: &'static str,
    pub(crate) operational: &'static str,
    pub(crate) degraded: &'static str,
    pub(crate) partial: &'static str,
    pub(crate) major: &'static str,
    pub(crate) maintenance: &'static str,
    pub(crate) no_data: &'static str,
}

#[cfg(test)]
impl Scheme {
    /// The text colours, named, for the contrast test.
    pub(crate) fn text_colours(&self) -> [(&'static str, &'static str); 9] {
        [
            ("text", self.text),
            ("muted", self.muted),
            ("link", self.link),
            ("operational", self.operational),
            ("degraded", self.degraded),
            ("partial", self.partial),
            ("major", self.major),
            ("maintenance", self.maintenance),
            ("no_data", self.no_data),
        ]
    }
}

/// Light scheme.
pub(crate) const LIGHT: Scheme = Scheme {
    bg: "#ffffff",
    surface: "#f6f8fa",
    text: "#1f2328",
    muted: "#57606a",
    link: "#0550ae",
    border: "#d0d7de",
    operational: "#1a7f37",
    degraded: "#8a5a00",
    partial: "#b4420c",
    major: "#c0261f",
    maintenance: "#0b5cad",
    no_data: "#5c6670",
};

/// Dark scheme.
pub(crate) const DARK: Scheme = Scheme {
    bg: "#0d1117",
    surface: "#161b22",
    text: "#e6edf3",
    muted: "#9da7b3",
    link: "#6cb6ff",
    border: "#30363d",
    operational: "#3fb950",
    degraded: "#d29922",
    partial: "#f0883e",
    major: "#ff7b72",
    maintenance: "#58a6ff",
    no_data: "#9da7b3",
};

/// Badge colours (white text on them, 4.5:1 or more): the light scheme's.
pub(crate) const BADGE_LABEL: &str = "#454c54";

fn vars(s: &Scheme) -> String {
    format!(
        "--bg:{};--surface:{};--text:{};--muted:{};--link:{};--border:{};--ok:{};--deg:{};--partial:{};--major:{};--maint:{};--none:{};",
        s.bg, s.surface, s.text, s.muted, s.link, s.border, s.operational, s.degraded, s.partial,
        s.major, s.maintenance, s.no_data
    )
}

/// The whole stylesheet, inlined into every page.
pub(crate) static CSS: LazyLock<String> = LazyLock::new(|| {
    format!(
        ":root{{color-scheme:light dark;{}}}@media (prefers-color-scheme:dark){{:root{{{}}}}}{}",
        vars(&LIGHT),
        vars(&DARK),
        RULES
    )
});

#[cfg(test)]
/// Relative luminance of `#rrggbb` (WCAG 2.x).
pub(crate) fn luminance(hex: &str) -> f64 {
    let h = hex.trim_start_matches('#');
    let channel = |i: usize| {
        let c =
            f64::from(u8::from_str_radix(h.get(i..i + 2).unwrap_or("00"), 16).unwrap_or(0)) / 255.0;
        if c <= 0.039_28 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * channel(0) + 0.7152 * channel(2) + 0.0722 * channel(4)
}

#[cfg(test)]
/// Contrast ratio of two colours (1 to 21).
pub(crate) fn contrast(a: &str, b: &str) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

const RULES: &str = r#"
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--text);font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","PingFang SC","Microsoft YaHei",sans-serif}
a{color:var(--link)}
a:focus-visible,[tabindex]:focus-visible{outline:3px solid var(--link);outline-offset:2px}
.skip{position:absolute;left:-9999px}
.skip:focus{left:1rem;top:1rem;background:var(--bg);padding:.5rem;z-index:2}
header,main,footer{max-width:60rem;margin:0 auto;padding:1rem}
header{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:baseline;justify-content:space-between;border-bottom:1px solid var(--border)}
header .name{font-size:1.25rem;font-weight:700;margin:0}
header nav ul{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:.75rem}
h1{font-size:1.6rem;margin:.5rem 0}
h2{font-size:1.3rem;margin:2rem 0 .75rem}
h3{font-size:1.1rem;margin:1.25rem 0 .5rem}
h4{font-size:1rem;margin:.75rem 0 .25rem}
.overall{display:flex;gap:.75rem;align-items:center;padding:1rem;border:2px solid currentColor;border-radius:.5rem;background:var(--surface);font-size:1.25rem;font-weight:700;margin:1rem 0}
.notice{padding:.75rem 1rem;border-left:4px solid var(--deg);background:var(--surface)}
.muted,.meta{color:var(--muted)}
.meta{font-size:.9rem}
.st{font-weight:600;white-space:nowrap}
.s-operational,.i-none{color:var(--ok)}
.s-degraded_performance,.i-minor{color:var(--deg)}
.s-partial_outage,.i-major{color:var(--partial)}
.s-major_outage,.i-critical{color:var(--major)}
.s-under_maintenance,.i-maintenance{color:var(--maint)}
.s-no_data,.i-unknown{color:var(--none)}
ul.components,ul.plain,ol.timeline{list-style:none;margin:0;padding:0}
li.component{border:1px solid var(--border);border-radius:.5rem;padding:.75rem 1rem;margin:.5rem 0;background:var(--surface)}
.row{display:flex;flex-wrap:wrap;justify-content:space-between;gap:.25rem 1rem;align-items:baseline}
.row h4,.row h3{margin:0}
.facts{margin:.5rem 0 0;padding-left:1.1rem;font-size:.95rem}
ol.bars{list-style:none;display:flex;gap:2px;margin:.5rem 0 0;padding:0;height:2.25rem;position:relative}
.bar{flex:1 1 0;min-width:2px;border-radius:2px;position:relative;background:var(--none)}
.bar.b-ok{background:var(--ok)}.bar.b-deg{background:var(--deg)}.bar.b-partial{background:var(--partial)}.bar.b-major{background:var(--major)}.bar.b-maint{background:var(--maint)}
.bar.b-nodata{background:var(--border)}
.tip{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
.bar:hover .tip,.bar:focus .tip{clip:auto;width:auto;height:auto;overflow:visible;bottom:2.6rem;left:50%;transform:translateX(-50%);background:var(--bg);color:var(--text);border:1px solid var(--border);border-radius:.25rem;padding:.25rem .5rem;font-size:.85rem;z-index:1;white-space:normal;min-width:14rem}
.axis{display:flex;justify-content:space-between;font-size:.8rem;color:var(--muted)}
svg.chart{width:100%;height:auto;max-height:12rem;display:block;margin-top:.75rem;color:var(--muted)}
svg.chart text{fill:currentColor;font-size:11px}
svg.chart .grid{stroke:var(--border);stroke-width:1}
svg .p50{stroke:var(--link);fill:none;stroke-width:2}
svg .p99{stroke:var(--partial);fill:none;stroke-width:2;stroke-dasharray:6 3}
svg .ttft{stroke:var(--ok);fill:none;stroke-width:2;stroke-dasharray:2 3}
ul.legend{list-style:none;display:flex;flex-wrap:wrap;gap:.25rem 1rem;padding:0;margin:.25rem 0 0;font-size:.85rem;color:var(--muted)}
ul.legend svg{vertical-align:middle}
article.incident{border-left:4px solid var(--border);padding:.25rem 0 .25rem 1rem;margin:1rem 0}
ol.timeline>li{margin:.75rem 0}
.body p{margin:.25rem 0}
.body pre{overflow-x:auto}
.eta{padding:.5rem .75rem;background:var(--surface);border-radius:.25rem}
footer{border-top:1px solid var(--border);color:var(--muted);font-size:.9rem}
@media (max-width:40rem){header,main,footer{padding:.75rem}.overall{font-size:1.1rem}ol.bars{gap:1px}}
@media (prefers-reduced-motion:no-preference){.bar{transition:opacity .1s}}
"#;
