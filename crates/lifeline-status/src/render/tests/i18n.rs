//! Languages: complete message files, negotiation, and the restoration
//! estimate worded in each language with the same numbers.

use std::collections::BTreeSet;
use std::time::Duration;

use super::*;
use crate::eta::sentence;
use crate::render::i18n::{eta_sentence, fill, table, KEYS, SOURCES};
use crate::render::Lang;

fn placeholders(s: &str) -> BTreeSet<String> {
    s.split('{')
        .skip(1)
        .filter_map(|p| p.split_once('}').map(|(name, _)| name.to_string()))
        .collect()
}

#[test]
fn every_language_has_every_key_and_the_same_placeholders() {
    let en = table(SOURCES[0]);
    let keys: BTreeSet<&str> = KEYS.iter().copied().collect();
    for (lang, source) in Lang::ALL.iter().zip(SOURCES) {
        let parsed: toml::Table =
            toml::from_str(source).unwrap_or_else(|e| panic!("{lang:?}: {e}"));
        assert!(
            parsed.values().all(|v| v.is_str()),
            "{lang:?}: every value is a string"
        );
        let t = table(source);
        let have: BTreeSet<&str> = t.keys().map(String::as_str).collect();
        assert_eq!(have, keys, "{lang:?}: keys");
        for key in KEYS {
            assert!(!t[*key].trim().is_empty(), "{lang:?}.{key} is empty");
            if *key != "eta_p90_bare" {
                assert_eq!(
                    placeholders(&t[*key]),
                    placeholders(&en[*key]),
                    "{lang:?}.{key}: placeholders"
                );
            }
        }
    }
}

#[test]
fn fill_replaces_known_placeholders_only() {
    assert_eq!(
        fill("{a} and {b} and {c", &[("a", "1"), ("b", "{a}")]),
        "1 and {a} and {c"
    );
    assert_eq!(fill("{x}", &[]), "{x}");
}

#[test]
fn negotiation() {
    assert_eq!(Lang::negotiate(None, None), Lang::En);
    assert_eq!(Lang::negotiate(Some("lang=DE"), None), Lang::De);
    assert_eq!(Lang::negotiate(Some("lang=zh-Hans"), None), Lang::Zh);
    assert_eq!(Lang::negotiate(Some("lang="), Some("de")), Lang::De);
    assert_eq!(
        Lang::from_accept_language("en-US,en;q=0.9,de;q=0.8"),
        Some(Lang::En)
    );
    assert_eq!(
        Lang::from_accept_language("fr;q=1.0, de;q=0.3, zh;q=0.9"),
        Some(Lang::Zh)
    );
    assert_eq!(
        Lang::from_accept_language("zh-TW;q=0.5, de-AT;q=0.5"),
        Some(Lang::Zh)
    );
    assert_eq!(Lang::from_accept_language("*;q=0.1, fr"), Some(Lang::En));
    assert_eq!(Lang::from_accept_language("de;q=0, zh;q=0.000"), None);
    assert_eq!(Lang::from_accept_language("de;q=bogus"), None);
    assert_eq!(Lang::from_accept_language(""), None);
}

fn min(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

fn etas() -> Vec<(Eta, Duration)> {
    let basis = |pool, source, n| Basis { pool, source, n };
    let mut out = vec![(Eta::NotEnoughHistory, min(5))];
    for remaining in [min(1), min(14), min(60), min(190)] {
        out.push((Eta::Override { remaining }, min(3)));
    }
    for (median, p90) in [
        (min(14), Some(min(55))),
        (min(1), None),
        (min(50), Some(min(130))),
        (min(75), Some(min(240))),
        (min(59), Some(min(59))),
    ] {
        for pool in [Pool::ComponentAndCause, Pool::Cause, Pool::All] {
            for source in [Source::Local, Source::Upstream] {
                for n in [1, 10, 23, 31] {
                    for elapsed in [min(1), min(20), min(61), min(125)] {
                        out.push((
                            Eta::Estimate {
                                median,
                                p90,
                                basis: basis(pool, source, n),
                            },
                            elapsed,
                        ));
                    }
                }
            }
        }
    }
    for n in [1, 30, 45] {
        out.push((
            Eta::LongerThanMost {
                p90: min(90),
                basis: basis(Pool::All, Source::Upstream, n),
            },
            min(120),
        ));
        out.push((
            Eta::LongerThanMost {
                p90: min(12),
                basis: basis(Pool::Cause, Source::Local, n),
            },
            min(20),
        ));
    }
    out
}

fn numbers(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn eta_sentences_match_in_every_language() {
    for (eta, elapsed) in etas() {
        let en = eta_sentence(Lang::En, &eta, elapsed);
        assert_eq!(en, sentence(&eta, elapsed), "English is eta::sentence");
        for lang in [Lang::De, Lang::Zh] {
            let other = eta_sentence(lang, &eta, elapsed);
            assert_ne!(other, en, "{lang:?} is translated");
            let mut a = numbers(&en);
            let mut b = numbers(&other);
            a.sort();
            b.sort();
            assert_eq!(a, b, "{lang:?}: same numbers\n{en}\n{other}");
        }
    }
    let eta = Eta::Estimate {
        median: min(14),
        p90: Some(min(55)),
        basis: Basis {
            pool: Pool::ComponentAndCause,
            source: Source::Local,
            n: 23,
        },
    };
    assert_eq!(
        eta_sentence(Lang::En, &eta, min(20)),
        "Incidents like this that lasted 20 minutes were resolved within a median of 14 more minutes, 90 % within 55; based on 23 incidents."
    );
    assert_eq!(
        eta_sentence(Lang::Zh, &eta, min(20)),
        "类似事件在持续 20 分钟 后，中位数再经过 14 分钟即得到解决，90% 在 55 分钟内解决；依据 23 起事件。"
    );
}
