//! The gateway scenarios' own expectations, judged on made-up outcomes.

use super::*;

fn o(priority: u8, kind: Kind, source: Source) -> Outcome {
    Outcome {
        start_ms: 0,
        end_ms: 100,
        priority,
        kind,
        source,
    }
}

/// A flood served without a 429 fails; refusals are honest only as
/// 429/5xx; the other keys' ratio leaves the flood out.
#[test]
fn missing_protections_fail_their_expectations() {
    let served = vec![
        o(1, Kind::Ok, Source::Flood),
        o(1, Kind::Ok, Source::Steady),
    ];
    assert!(!judge(&Expect::FloodLimited(0.6), &served).unwrap().pass);
    let limited = vec![
        o(1, Kind::Http429, Source::Flood),
        o(0, Kind::Ok, Source::Steady),
    ];
    assert!(judge(&Expect::FloodLimited(0.6), &limited).unwrap().pass);
    let steady = Expect::SuccessRatioOf {
        who: Who::Steady,
        min: 1.0,
    };
    assert!(judge(&steady, &limited).unwrap().pass);

    let cut = vec![
        o(2, Kind::Http5xx, Source::Surge),
        o(2, Kind::Broken, Source::Surge),
    ];
    let honest = judge(&Expect::HonestRefusals(Who::All), &cut).unwrap();
    assert!(!honest.pass);
    assert_eq!(honest.measured, "1 broken");
    // Connection refusals are counted apart only for `Answered`.
    let refused = vec![
        o(0, Kind::Connect, Source::Steady),
        o(0, Kind::Ok, Source::Steady),
    ];
    let answered = Expect::SuccessRatioOf {
        who: Who::Answered,
        min: 1.0,
    };
    assert!(judge(&answered, &refused).unwrap().pass);
    let all = Expect::SuccessRatioOf {
        who: Who::All,
        min: 1.0,
    };
    assert!(!judge(&all, &refused).unwrap().pass);
    let critical = Expect::SuccessRatioOf {
        who: Who::Priority(Priority::Critical),
        min: 0.99,
    };
    assert!(!judge(&critical, &refused).unwrap().pass);
    assert!(judge(&Expect::NoTruncated, &refused).is_none());
}
