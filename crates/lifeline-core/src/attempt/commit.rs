//! Reading a stream up to its first content, while failover is still possible.
//!
//! Nothing is sent to the client until the upstream has produced content
//! (text, a tool call, a refusal) or finished: the role-only first chunk
//! does not count, since a stream that breaks right after it would leave
//! the client with nothing. Until then a reset, a stall past the first-byte
//! timeout, a malformed chunk or an upstream error event is an ordinary
//! failed attempt, retried elsewhere. After, the stream belongs to the
//! client (a failover would be a resume, not a retry).

use bytes::{Bytes, BytesMut};

/// Bytes held back before commit. Usually the first frame alone, kept as is
/// (no copy); later frames are appended.
#[derive(Default)]
struct Held {
    first: Bytes,
    more: Option<BytesMut>,
}

impl Held {
    fn push(&mut self, b: Bytes) {
        if b.is_empty() {
            return;
        }
        if self.first.is_empty() && self.more.is_none() {
            self.first = b;
            return;
        }
        let more = self
            .more
            .get_or_insert_with(|| BytesMut::from(&self.first[..]));
        more.extend_from_slice(&b);
    }

    fn len(&self) -> usize {
        self.more.as_ref().map_or(self.first.len(), BytesMut::len)
    }

    fn freeze(self) -> Bytes {
        self.more.map_or(self.first, BytesMut::freeze)
    }
}
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::{timeout_at, Instant};

use crate::relay::Scanner;

/// Most bytes held back before committing anyway.
const MAX_HELD: usize = 64 * 1024;

/// A stream that reached its first content.
pub struct Committed {
    /// Response head.
    pub parts: http::response::Parts,
    /// Bytes read so far, to send first.
    pub prefix: Bytes,
    /// The rest of the upstream body.
    pub body: Incoming,
    /// The scanner's state so far.
    pub scanner: Scanner,
}

/// Reads `resp` through `scanner` until it is committable or `deadline`
/// passes.
pub async fn first_content(
    resp: http::Response<Incoming>,
    mut scanner: Scanner,
    deadline: Instant,
) -> Result<Committed, String> {
    let (parts, mut body) = resp.into_parts();
    let mut held = Held::default();
    loop {
        let frame = match timeout_at(deadline, body.frame()).await {
            Err(_) => return Err("no stream content before the first-byte timeout".into()),
            Ok(None) if scanner.done => break,
            Ok(None) => return Err("stream ended before any content".into()),
            Ok(Some(Err(e))) => return Err(format!("stream failed before any content: {e}")),
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let feed = scanner.feed(data);
        if let Some(bad) = feed.bad {
            return Err(format!("{bad} before any content"));
        }
        if scanner.upstream_error {
            return Err("upstream sent an error event before any content".into());
        }
        held.push(feed.forward);
        if scanner.committable() || held.len() > MAX_HELD {
            break;
        }
    }
    Ok(Committed {
        parts,
        prefix: held.freeze(),
        body,
        scanner,
    })
}
