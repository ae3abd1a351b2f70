//! Body types of the proxy path.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use parking_lot::Mutex;

use tokio::time::Instant;

use crate::revision::Lease;
use crate::serve::exchange::{Backend, finish_in_background};

/// The client's request body as sent to a backend, streamed.
///
/// It waits in a slot shared with the proxy until hyper first polls it. hyper-util's pooled client reports a failed
/// connect (`is_connect()`) without having polled the body; if the slot is still full then, not one byte of the
/// request left, so the proxy rebuilds the request around the same body and tries another pod. This keeps the pooled
/// client (connection reuse, HTTP/2 multiplexing) instead of hand-managing connections to retry safely.
pub struct OutgoingBody {
    slot: BodySlot,
    taken: Option<Incoming>,
}

/// The shared slot of an [`OutgoingBody`], and the bytes sent of it.
#[derive(Clone)]
pub struct BodySlot(Arc<SlotState>);

struct SlotState {
    body: Mutex<Option<Incoming>>,
    /// Data bytes read from the client and handed to a backend, for the access log.
    sent: AtomicU64,
}

impl BodySlot {
    pub fn new(body: Incoming) -> Self {
        BodySlot(Arc::new(SlotState {
            body: Mutex::new(Some(body)),
            sent: AtomicU64::new(0),
        }))
    }

    /// Nothing has read the body yet: a failed attempt can be retried.
    pub fn is_untouched(&self) -> bool {
        self.0.body.lock().is_some()
    }

    /// Data bytes of the body sent on so far.
    pub fn bytes_sent(&self) -> u64 {
        self.0.sent.load(Ordering::Relaxed)
    }

    pub fn outgoing(&self) -> OutgoingBody {
        OutgoingBody {
            slot: self.clone(),
            taken: None,
        }
    }
}

impl Body for OutgoingBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if self.taken.is_none() {
            let body = self.slot.0.body.lock().take();
            self.taken = body;
        }
        let frame = match self.taken.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => return Poll::Ready(None),
        };
        if let Poll::Ready(Some(Ok(frame))) = &frame
            && let Some(data) = frame.data_ref()
        {
            self.slot.0.sent.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        frame
    }

    // Both answers come from the body wherever it is, without taking it: hyper asks before sending the headers.
    fn is_end_stream(&self) -> bool {
        match &self.taken {
            Some(body) => body.is_end_stream(),
            None => self.slot.0.body.lock().as_ref().is_none_or(Incoming::is_end_stream),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.taken {
            Some(body) => body.size_hint(),
            None => self
                .slot
                .0
                .body
                .lock()
                .as_ref()
                .map_or_else(|| SizeHint::with_exact(0), Incoming::size_hint),
        }
    }
}

/// A response body: a backend's, streamed while holding the pod's slot, or a short local one (see `respond`);
/// either may be observed, for the access log.
pub enum ResponseBody {
    Proxied(ProxiedBody),
    Local(Full<Bytes>),
    Observed(Box<ObservedBody>),
}

/// A response body whose end is reported, with the data bytes sent, to whoever records the request.
pub struct ObservedBody {
    body: ResponseBody,
    sent: u64,
    /// Called once, when the body ended or was dropped (the client left).
    ended: Option<Box<dyn FnOnce(u64) + Send>>,
}

impl ResponseBody {
    /// This body, with `ended` called with the data bytes sent once it ends or the client leaves.
    pub fn observed(self, ended: impl FnOnce(u64) + Send + 'static) -> Self {
        ResponseBody::Observed(Box::new(ObservedBody {
            body: self,
            sent: 0,
            ended: Some(Box::new(ended)),
        }))
    }
}

impl ObservedBody {
    fn end(&mut self) {
        if let Some(ended) = self.ended.take() {
            ended(self.sent);
        }
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        self.end();
    }
}

/// A backend's response body with the pod's slot. The slot is freed when the body ends; if the client leaves
/// first, the rest is drained in the background and the slot stays taken until the pod is done.
pub struct ProxiedBody {
    /// Always present; taken only by `Drop`.
    body: Option<Incoming>,
    lease: Option<Lease>,
    deadline: Instant,
}

impl ResponseBody {
    /// `lease`: the pod's slot, if this activator holds one for the request; `deadline`: the request's.
    pub fn proxied(body: Incoming, lease: Option<Lease>, deadline: Instant) -> Self {
        ResponseBody::Proxied(ProxiedBody {
            body: Some(body),
            lease,
            deadline,
        })
    }
}

impl Drop for ProxiedBody {
    fn drop(&mut self) {
        if let (Some(lease), Some(body)) = (self.lease.take(), self.body.take())
            && !body.is_end_stream()
        {
            finish_in_background(Backend::Body(body), lease, self.deadline);
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ResponseBody::Proxied(proxied) => {
                let body = proxied.body.as_mut().expect("present until dropped");
                let frame = Pin::new(&mut *body).poll_frame(cx);
                // hyper stops polling once a body says it has ended, so the last data frame may be the last poll.
                if matches!(frame, Poll::Ready(None | Some(Err(_)))) || body.is_end_stream() {
                    // The pod is done with the request: its slot is free even if the client connection lingers.
                    proxied.lease.take();
                }
                frame
            }
            ResponseBody::Local(full) => Pin::new(full).poll_frame(cx).map_err(|never| match never {}),
            ResponseBody::Observed(observed) => {
                let frame = Pin::new(&mut observed.body).poll_frame(cx);
                match &frame {
                    Poll::Ready(Some(Ok(frame))) => {
                        observed.sent += frame.data_ref().map_or(0, |data| data.len() as u64);
                        if observed.body.is_end_stream() {
                            observed.end();
                        }
                    }
                    Poll::Ready(None | Some(Err(_))) => observed.end(),
                    Poll::Pending => {}
                }
                frame
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Proxied(proxied) => proxied.body.as_ref().is_none_or(Incoming::is_end_stream),
            ResponseBody::Local(full) => full.is_end_stream(),
            ResponseBody::Observed(observed) => observed.body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Proxied(proxied) => proxied
                .body
                .as_ref()
                .map_or_else(SizeHint::default, Incoming::size_hint),
            ResponseBody::Local(full) => full.size_hint(),
            ResponseBody::Observed(observed) => observed.body.size_hint(),
        }
    }
}
