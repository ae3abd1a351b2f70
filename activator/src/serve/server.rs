//! The proxy listener: HTTP/1.1 and h2c (prior knowledge) on one port, with bounded connections, idle and
//! handshake timeouts, and graceful shutdown.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio::time::Instant;

use crate::route::Entry;
use crate::serve::activity::LastActive;
use crate::serve::proxy::Proxy;
use crate::serve::respond;
use crate::serve::threads::run_on_own_thread;

/// The HTTP/2 connection preface; a connection that starts with anything else speaks HTTP/1.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Connections the kernel may hold for a listener before they are accepted (tokio's own default for `bind`).
const LISTEN_BACKLOG: u32 = 1024;
/// Connections over the limit answered 503 at the same time. Past that the accept loop waits for one of them to end
/// (each ends within [`LINGER`]), and new connections wait in the kernel's accept backlog ([`LISTEN_BACKLOG`]) to be
/// answered in turn: only a connection the kernel cannot queue either gets no answer.
const MAX_REJECTING: usize = 256;
/// How long a closing connection keeps reading (and dropping) what its client still sends, waiting for the client's
/// own close: closing a socket with unread bytes resets it, which throws away the answer still in the send buffer
/// and leaves an HTTP/2 client unable to tell which of its streams were served. Long enough for a client on a busy
/// machine to read the close (200 ms was not, in CI); nginx lingers longer still (`lingering_timeout` 5 s).
const LINGER: Duration = Duration::from_secs(2);

/// Limits applied to client connections.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// Largest request head (HTTP/1.1 buffer, HTTP/2 header list); larger gets 431.
    pub max_header_bytes: usize,
    /// Time a client has to send a complete HTTP/1.1 request head.
    pub header_read_timeout: Duration,
    /// Time a new connection has to show its protocol: its first byte, or the whole HTTP/2 preface.
    pub handshake_timeout: Duration,
    /// A connection with no request in flight for this long is closed (gracefully: GOAWAY for HTTP/2).
    pub idle_timeout: Duration,
    /// Client connections open at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Concurrent streams per HTTP/2 connection.
    pub max_concurrent_streams: u32,
    /// HTTP/2 keep-alive: a PING this often, and the connection closes if the answer takes as long.
    pub h2_keepalive: Duration,
}

/// HTTP/2 flow-control windows: what a client may send ahead on request bodies nobody reads yet (queued requests).
const H2_STREAM_WINDOW: u32 = 64 * 1024;
pub const H2_CONNECTION_WINDOW: u32 = 128 * 1024;

/// Where the listener is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Serving,
    /// Shutting down soon: clients are told to take their next requests elsewhere (HTTP/1.1 responses carry
    /// `Connection: close`, HTTP/2 connections get GOAWAY), so that few keep-alive connections are left for the
    /// final close to race with.
    Draining,
    /// No more connections are accepted; open ones close once idle.
    Stopped,
}

/// The listeners of both entry points.
struct Listeners {
    external: TcpListener,
    internal: TcpListener,
}

/// The connection limit, shared by every serving thread.
#[derive(Clone)]
pub struct Gate {
    permits: Arc<Semaphore>,
    rejecting: Arc<Semaphore>,
    max_connections: usize,
}

impl Gate {
    pub fn new(max_connections: usize) -> Self {
        Gate {
            permits: Arc::new(Semaphore::new(max_connections)),
            rejecting: Arc::new(Semaphore::new(MAX_REJECTING)),
            max_connections,
        }
    }

    /// Completes once no connection is open on any serving thread.
    async fn everyone_gone(&self) {
        let all = u32::try_from(self.max_connections).unwrap_or(u32::MAX);
        let _ = self.permits.acquire_many(all).await;
    }
}

/// One serving thread's share: its own listener on each entry point (the kernel spreads new connections over the
/// threads' listeners) and its own proxy, so its own backend connection pools. Like an nginx worker, a thread keeps
/// its connections, their backend connections and their timers to itself: nothing moves between threads on the
/// request path.
pub struct Worker {
    pub external: std::net::TcpListener,
    pub internal: std::net::TcpListener,
    pub proxy: Arc<Proxy>,
    pub limits: ConnectionLimits,
    pub gate: Gate,
    pub phase: watch::Receiver<Phase>,
    /// Bound on waiting for open connections after the stop.
    pub drain: Duration,
}

impl Worker {
    /// Serves on the current runtime, or on a new thread with a single-threaded scheduler of its own. The receiver
    /// completes when the worker has stopped.
    pub fn start(self, own_thread: Option<String>) -> anyhow::Result<oneshot::Receiver<()>> {
        if let Some(name) = own_thread {
            return run_on_own_thread(&name, move || self.run());
        }
        let (stopped, receiver) = oneshot::channel();
        tokio::spawn(async move {
            self.run().await;
            let _ = stopped.send(());
        });
        Ok(receiver)
    }

    async fn run(self) {
        // A listener is registered with the runtime that polls it, so it is converted here.
        let listeners = match (
            TcpListener::from_std(self.external),
            TcpListener::from_std(self.internal),
        ) {
            (Ok(external), Ok(internal)) => Listeners { external, internal },
            (Err(error), _) | (_, Err(error)) => {
                tracing::error!(%error, "cannot serve on the listeners");
                return;
            }
        };
        serve(listeners, self.proxy, self.limits, self.gate, self.phase, self.drain).await;
    }
}

/// Accepts connections on both entry points until `phase` is `Stopped`, then waits up to `drain` for open
/// connections to finish. Both share one connection limit, `gate`, with the other serving threads.
async fn serve(
    listeners: Listeners,
    proxy: Arc<Proxy>,
    limits: ConnectionLimits,
    gate: Gate,
    mut phase: watch::Receiver<Phase>,
    drain: Duration,
) {
    let acceptor = Acceptor {
        builder: Arc::new(builder(&limits)),
        gate,
        limits: Arc::new(limits),
        proxy,
        phase: phase.clone(),
    };
    let stop = async move {
        let _ = phase.wait_for(|phase| *phase == Phase::Stopped).await;
    };
    tokio::pin!(stop);
    loop {
        let (accepted, entry) = tokio::select! {
            accepted = listeners.external.accept() => (accepted, Entry::External),
            accepted = listeners.internal.accept() => (accepted, Entry::Internal),
            () = &mut stop => break,
        };
        match accepted {
            Ok((stream, remote)) => acceptor.take(stream, remote, entry).await,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    // Closing a listener resets the connections still in its backlog, whose clients have sent their requests and
    // cannot tell that nobody read them. Take them first; they get served and told to go (GOAWAY, or a close after
    // the response), like every connection open at the stop.
    for (listener, entry) in [
        (listeners.external, Entry::External),
        (listeners.internal, Entry::Internal),
    ] {
        for (stream, remote) in backlog(listener) {
            acceptor.take(stream, remote, entry).await;
        }
    }
    if tokio::time::timeout(drain, acceptor.gate.everyone_gone())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests still running after the shutdown bound; exiting anyway");
    }
}

/// The connections a listener's kernel backlog holds, taken without waiting; the listener closes after.
fn backlog(listener: TcpListener) -> Vec<(TcpStream, SocketAddr)> {
    let Ok(listener) = listener.into_std() else {
        return Vec::new();
    };
    std::iter::from_fn(|| listener.accept().ok())
        .filter_map(|(stream, remote)| {
            stream.set_nonblocking(true).ok()?;
            Some((TcpStream::from_std(stream).ok()?, remote))
        })
        .collect()
}

/// What every accepted connection shares: the connection limit and how connections are served.
struct Acceptor {
    builder: Arc<auto::Builder<TokioExecutor>>,
    gate: Gate,
    limits: Arc<ConnectionLimits>,
    proxy: Arc<Proxy>,
    phase: watch::Receiver<Phase>,
}

impl Acceptor {
    /// Serves an accepted connection, or answers 503 and closes it when the limit is reached. With
    /// [`MAX_REJECTING`] answers already under way, it waits for one to end rather than drop the connection
    /// unanswered (a reset, or a close the client cannot tell from a crash).
    async fn take(&self, stream: TcpStream, remote: SocketAddr, entry: Entry) {
        let Ok(permit) = self.gate.permits.clone().try_acquire_owned() else {
            if let Ok(rejection) = self.gate.rejecting.clone().acquire_owned().await {
                tokio::spawn(async move {
                    reject(stream).await;
                    drop(rejection);
                });
            }
            return;
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            proxy: self.proxy.clone(),
            builder: self.builder.clone(),
            limits: self.limits.clone(),
            remote,
            entry,
            phase: self.phase.clone(),
        };
        tokio::spawn(connection.serve(stream, permit));
    }
}

fn builder(limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(limits.max_concurrent_streams)
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .keep_alive_interval(limits.h2_keepalive)
        .keep_alive_timeout(limits.h2_keepalive);
    builder
}

/// Over the connection limit: a short 503 and close, so that clients learn at once instead of waiting in the
/// kernel's backlog. The client's bytes are read a moment first, so that the close does not reset the answer away.
async fn reject(mut stream: TcpStream) {
    let _ = tokio::time::timeout(LINGER, async {
        if stream.write_all(respond::OVER_CONNECTION_LIMIT).await.is_ok() && stream.shutdown().await.is_ok() {
            std::future::poll_fn(|cx| poll_discard_until_closed(&mut stream, cx)).await;
        }
    })
    .await;
}

/// One client connection and what it shares with the listener.
struct Connection {
    proxy: Arc<Proxy>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Arc<ConnectionLimits>,
    remote: SocketAddr,
    entry: Entry,
    phase: watch::Receiver<Phase>,
}

impl Connection {
    /// Serves the connection; `permit` counts it against the limit for as long as the socket lives, also when an
    /// upgrade hands it over to a tunnel.
    async fn serve(mut self, mut stream: TcpStream, permit: OwnedSemaphorePermit) {
        let opening = match tokio::time::timeout(self.limits.handshake_timeout, read_opening(&mut stream)).await {
            Ok(Ok(opening)) => opening,
            Ok(Err(_)) | Err(_) => return, // nothing (or half a preface) within the bound: close
        };
        let http2 = opening == H2_PREFACE;
        let activity = Arc::new(ConnectionActivity::new());
        let (proxy, remote, entry) = (self.proxy.clone(), self.remote, self.entry);
        let (tracker, phase) = (activity.clone(), self.phase.clone());
        let service = service_fn(move |request| {
            let busy = tracker.begin();
            let proxy = proxy.clone();
            let phase = phase.clone();
            async move {
                let mut response = proxy.serve(request, remote, entry).await;
                if let Ok(response) = &mut response
                    && !http2
                    && *phase.borrow() != Phase::Serving
                {
                    close_after(response);
                }
                drop(busy);
                response
            }
        });
        let io = TokioIo::new(Opened {
            opening,
            read: 0,
            stream,
            lingering: None,
            _permit: permit,
        });
        let connection = self.builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(connection);
        let mut closing = false;
        loop {
            let idle_at = activity.idle_deadline(self.limits.idle_timeout);
            // The connection first: hyper-util learns the protocol on its first poll (the opening is replayed at
            // once), and a shutdown asked before that drops the socket with the client's request unread, which
            // resets it. Asked after, HTTP/2 gets GOAWAY, even while its handshake is still running.
            tokio::select! {
                biased;
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(remote = %self.remote, %error, "client connection ended with an error");
                    }
                    return;
                }
                _ = self.phase.wait_for(|phase| *phase == Phase::Stopped || (http2 && *phase == Phase::Draining)), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                () = tokio::time::sleep_until(idle_at.unwrap_or_else(Instant::now)), if !closing && idle_at.is_some() => {
                    if activity.idle_deadline(self.limits.idle_timeout).is_some_and(|at| at <= Instant::now()) {
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
        }
    }
}

/// Asks an HTTP/1.1 client to close the connection after this response; not a protocol switch, which keeps it.
fn close_after<B>(response: &mut http::Response<B>) {
    if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        response
            .headers_mut()
            .insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    }
}

/// Reads until the protocol is clear: the whole HTTP/2 preface, or a byte that departs from it (HTTP/1). hyper's
/// own protocol detection waits for those bytes without a bound.
async fn read_opening(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut opening = Vec::with_capacity(H2_PREFACE.len());
    let mut chunk = [0u8; H2_PREFACE.len()];
    while opening.len() < H2_PREFACE.len() {
        let n = stream.read(&mut chunk[..H2_PREFACE.len() - opening.len()]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        opening.extend_from_slice(&chunk[..n]);
        if !H2_PREFACE.starts_with(&opening) {
            break;
        }
    }
    Ok(opening)
}

/// Requests in flight on one connection and when the last one ended, for the idle timeout.
struct ConnectionActivity {
    in_flight: AtomicUsize,
    /// When the connection last had no request left (its opening, before the first).
    idle_since: LastActive,
}

impl ConnectionActivity {
    fn new() -> Self {
        ConnectionActivity {
            in_flight: AtomicUsize::new(0),
            idle_since: LastActive::new(),
        }
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// When the connection will have been idle for `timeout`; `None` while a request is in flight.
    fn idle_deadline(&self, timeout: Duration) -> Option<Instant> {
        (self.in_flight.load(Ordering::Relaxed) == 0).then(|| self.idle_since.at() + timeout)
    }
}

/// One request in flight on a connection.
struct Busy(Arc<ConnectionActivity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.idle_since.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Reads and drops what the client sends until it closes its side (or the read fails).
fn poll_discard_until_closed(stream: &mut TcpStream, cx: &mut Context<'_>) -> Poll<()> {
    let mut sink = [0u8; 4096];
    loop {
        let mut buf = ReadBuf::new(&mut sink);
        match std::task::ready!(Pin::new(&mut *stream).poll_read(cx, &mut buf)) {
            Ok(()) if !buf.filled().is_empty() => {}
            Ok(()) | Err(_) => return Poll::Ready(()),
        }
    }
}

/// A client stream whose opening bytes were already read; they are replayed to hyper first. Its shutdown lingers
/// (see [`LINGER`]).
struct Opened {
    opening: Vec<u8>,
    read: usize,
    stream: TcpStream,
    /// Set once the write side is shut: the end of the linger.
    lingering: Option<Pin<Box<tokio::time::Sleep>>>,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Opened {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.read < this.opening.len() {
            let rest = &this.opening[this.read..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.read += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Opened {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    /// The answer's end (FIN) first, then the client's bytes are read until it closes too, or for [`LINGER`].
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let deadline = match &mut this.lingering {
            Some(deadline) => deadline,
            None => {
                std::task::ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
                this.lingering.insert(Box::pin(tokio::time::sleep(LINGER)))
            }
        };
        if deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        poll_discard_until_closed(&mut this.stream, cx).map(Ok)
    }
}

/// Binds `count` listeners to one address for as many serving threads: with more than one, `SO_REUSEPORT` lets
/// them share it (port 0 is resolved by the first).
pub fn bind_each(addr: SocketAddr, count: usize) -> anyhow::Result<Vec<std::net::TcpListener>> {
    let shared = count > 1;
    let first = bind(addr, shared)?;
    let resolved = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..count {
        listeners.push(bind(resolved, shared)?);
    }
    Ok(listeners)
}

/// Binds a listener, with a clear error naming the address; `shared` lets further listeners bind the same address
/// (`SO_REUSEPORT`). It is returned unregistered, for the runtime that will poll it.
pub fn bind(addr: SocketAddr, shared: bool) -> anyhow::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }?;
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(shared)?;
    socket
        .bind(addr)
        .map_err(|error| anyhow::anyhow!("cannot listen on {addr}: {error}"))?;
    Ok(socket.listen(LISTEN_BACKLOG)?.into_std()?)
}
