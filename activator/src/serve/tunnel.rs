//! Upgraded connections (WebSocket): bytes copied both ways between the client and the pod, with idle detection so
//! that a tunnel whose peer went away without closing does not pin its pod's slot forever.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::revision::Lease;
use crate::serve::activity::LastActive;

/// Copies bytes both ways between the upgraded client and backend connections. The request timeout does not apply
/// here: a WebSocket may stay open as long as both ends want, but not silent for longer than `idle_timeout`. The
/// slot is held until it closes.
pub async fn run(
    client_side: hyper::upgrade::OnUpgrade,
    backend_side: hyper::upgrade::OnUpgrade,
    lease: Option<Lease>,
    idle_timeout: Option<Duration>,
) {
    let (client, backend) = match tokio::try_join!(client_side, backend_side) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(%error, "upgrade failed");
            return;
        }
    };
    let activity = Arc::new(LastActive::new());
    let mut client = Watched::new(TokioIo::new(client), activity.clone());
    let mut backend = Watched::new(TokioIo::new(backend), activity.clone());
    let copy = tokio::io::copy_bidirectional(&mut client, &mut backend);
    let outcome = match idle_timeout {
        Some(idle) => tokio::select! {
            result = copy => Some(result),
            () = activity.silent_for(idle) => None,
        },
        None => Some(copy.await),
    };
    match outcome {
        Some(Err(error)) => tracing::debug!(%error, "upgraded connection ended with an error"),
        None => tracing::debug!(?idle_timeout, "upgraded connection idle; closed"),
        Some(Ok(_)) => {}
    }
    drop(lease);
}

/// A stream that records its reads and writes as activity.
struct Watched<S> {
    inner: S,
    activity: Arc<LastActive>,
}

impl<S> Watched<S> {
    fn new(inner: S, activity: Arc<LastActive>) -> Self {
        Watched { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.touch();
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        poll
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
