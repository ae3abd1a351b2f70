//! A request's trip to a pod, and the rule that keeps containerConcurrency exact: a slot stays taken until the pod
//! has finished with the request (its response ended, or the connection to it closed), not merely until the client
//! or the deadline left. What the client no longer waits for is finished or drained in the background, bounded.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Response;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::{Error as ClientError, ResponseFuture};
use tokio::time::Instant;

use crate::revision::Lease;

/// How long past the request's deadline (or past the moment the client left, if later) the pod may take to finish
/// a request nobody waits for, before the connection to it is closed and the slot freed.
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// What is left of an exchange nobody waits for.
pub enum Backend {
    /// The response head has not arrived.
    Head(ResponseFuture),
    /// The head arrived; the body has not ended.
    Body(Incoming),
}

/// The response of a pod (or peer), with the slot handed back once the head arrived. Dropped before that, it lets
/// the pod finish in the background while holding the slot.
pub struct Exchange {
    response: Option<ResponseFuture>,
    lease: Option<Lease>,
    deadline: Instant,
}

impl Exchange {
    pub fn new(response: ResponseFuture, lease: Option<Lease>, deadline: Instant) -> Self {
        Exchange {
            response: Some(response),
            lease,
            deadline,
        }
    }
}

impl Future for Exchange {
    type Output = (Result<Response<Incoming>, ClientError>, Option<Lease>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = self.response.as_mut().expect("polled after completion");
        let result = std::task::ready!(Pin::new(response).poll(cx));
        self.response = None;
        Poll::Ready((result, self.lease.take()))
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if let (Some(response), Some(lease)) = (self.response.take(), self.lease.take()) {
            finish_in_background(Backend::Head(response), lease, self.deadline);
        }
    }
}

/// Lets the pod finish a request its client or deadline left: awaits the head and drains the body, holding `lease`
/// until then, at most until `max(deadline, now) + DRAIN_GRACE`; past that the connection is closed.
pub fn finish_in_background(backend: Backend, lease: Lease, deadline: Instant) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return; // shutting down: dropping closes the connection, which also frees the slot
    };
    lease.revision().metrics.abandoned.inc();
    let until = deadline.max(Instant::now()) + DRAIN_GRACE;
    runtime.spawn(async move {
        let finished = tokio::time::timeout_at(until, drain(backend)).await.is_ok();
        if !finished {
            lease.revision().metrics.abandoned_cut.inc();
            tracing::debug!(revision = %lease.revision().id.key, pod = %lease.target.addr, "pod still busy with an abandoned request; closing the connection");
        }
        drop(lease);
    });
}

async fn drain(backend: Backend) {
    let mut body = match backend {
        Backend::Head(response) => match response.await {
            Ok(response) => response.into_body(),
            Err(_) => return,
        },
        Backend::Body(body) => body,
    };
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            return;
        }
    }
}
