//! `/badge/{component}.svg`: a small shields-style badge, the component's
//! name on the left and its status in English on the right, with
//! `role="img"`, an `aria-label` and a `<title>`. White text on colours of
//! 4.5:1 contrast or more; all text XML-escaped.

use super::html::escape;
use super::palette::{BADGE_LABEL, LIGHT};
use crate::page::{Component, ComponentStatus};

/// The badge's status word and colour.
fn status(c: &Component) -> (&'static str, &'static str) {
    if c.no_recent_data {
        return ("no recent data", LIGHT.no_data);
    }
    match c.status {
        ComponentStatus::Operational => ("operational", LIGHT.operational),
        ComponentStatus::DegradedPerformance => ("degraded performance", LIGHT.degraded),
        ComponentStatus::PartialOutage => ("partial outage", LIGHT.partial),
        ComponentStatus::MajorOutage => ("major outage", LIGHT.major),
        ComponentStatus::UnderMaintenance => ("under maintenance", LIGHT.maintenance),
    }
}

/// Width of text in 11px Verdana, roughly (shields' own estimate is 7px per
/// average character; wide and CJK characters count double).
fn text_width(s: &str) -> u32 {
    s.chars()
        .map(|c| match c {
            'i' | 'l' | 'j' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' | ' ' => 4,
            'm' | 'w' | 'M' | 'W' => 10,
            c if c.is_ascii() => 7,
            _ => 12,
        })
        .sum()
}

/// The badge for `c`.
pub(crate) fn badge(c: &Component) -> String {
    let (word, colour) = status(c);
    let label = escape(&c.name);
    let value = escape(word);
    let lw = text_width(&c.name) + 12;
    let vw = text_width(word) + 12;
    let w = lw + vw;
    let lx = lw / 2;
    let vx = lw + vw / 2;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="20" role="img" aria-label="{label}: {value}"><title>{label}: {value}</title><linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient><clipPath id="r"><rect width="{w}" height="20" rx="3" fill="#fff"/></clipPath><g clip-path="url(#r)"><rect width="{lw}" height="20" fill="{BADGE_LABEL}"/><rect x="{lw}" width="{vw}" height="20" fill="{colour}"/><rect width="{w}" height="20" fill="url(#s)"/></g><g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11"><text x="{lx}" y="14">{label}</text><text x="{vx}" y="14">{value}</text></g></svg>"##
    )
}
