//! Response bodies: a whole buffer, or a relayed upstream stream.
//!
//! An enum rather than a boxed trait object: the hot path then allocates no
//! box per response, and these shapes are all Lifeline ever sends. A whole
//! buffer may hold the request's admission [`Hold`] (its slot and its
//! memory reservation) until it is sent; a relayed stream holds it in the
//! [`RelayBody`].

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::admission::Hold;
use crate::relay::RelayBody;

pub use crate::relay::BoxError;

/// The body of every response Lifeline sends.
pub enum ProxyBody {
    /// A complete body, sent in one frame.
    Full(Option<Bytes>),
    /// An SSE stream relayed from upstream.
    Relay(Box<RelayBody>),
    /// A complete body, sent in one frame, that releases its request's
    /// admission slot and memory reservation when dropped.
    Held(Option<Bytes>, Hold),
}

impl ProxyBody {
    /// A complete body.
    pub fn full(bytes: Bytes) -> Self {
        Self::Full(Some(bytes))
    }

    /// This body, holding `hold` until it ends (a stream) or is dropped.
    pub fn hold(self, hold: Hold) -> Self {
        match self {
            Self::Full(b) | Self::Held(b, _) => Self::Held(b, hold),
            Self::Relay(mut r) => {
                r.hold(hold);
                Self::Relay(r)
            }
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Full(b) | Self::Held(b, _) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Self::Relay(r) => Pin::new(r.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(b) | Self::Held(b, _) => b.is_none(),
            Self::Relay(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(Some(b)) | Self::Held(Some(b), _) => SizeHint::with_exact(b.len() as u64),
            Self::Full(None) | Self::Held(None, _) => SizeHint::with_exact(0),
            Self::Relay(_) => SizeHint::default(),
        }
    }
}
