//! Unit tests of one attempt's classification and answer checks.

use super::*;

#[test]
fn classification_follows_the_issue() {
    for s in [408, 429, 500, 502, 503, 504, 520, 524, 529] {
        assert!(
            matches!(
                classify(StatusCode::from_u16(s).unwrap_or_default()),
                Class::Retryable
            ),
            "{s}"
        );
    }
    for s in [400, 404, 409, 413, 422] {
        assert!(
            matches!(
                classify(StatusCode::from_u16(s).unwrap_or_default()),
                Class::ClientError
            ),
            "{s}"
        );
    }
    for s in [401, 403] {
        assert!(
            matches!(
                classify(StatusCode::from_u16(s).unwrap_or_default()),
                Class::Misconfigured
            ),
            "{s}"
        );
    }
    for s in [300, 301, 302, 303, 307, 308] {
        assert!(
            matches!(
                classify(StatusCode::from_u16(s).unwrap_or_default()),
                Class::Redirect
            ),
            "{s}"
        );
    }
    assert!(matches!(classify(StatusCode::OK), Class::Success));
    assert!(matches!(
        classify(StatusCode::NOT_IMPLEMENTED),
        Class::Fatal
    ));
}
