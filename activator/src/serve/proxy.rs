//! The request path: route by host to a revision, wait for a slot, send to the pod (or the peer holding the slots),
//! stream the response back.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::SdkTracer;
use runway_api::cidr::CidrList;
use runway_api::names::{COLD_START_HEADER, REVISION_HEADER};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::access::{AccessCheck, Decision};
use crate::control::reports::LoadHub;
use crate::model::{Answerer, Origin};
use crate::observe::{AccessLog, AccessRecord, REQUEST_ID, RequestTrace, Via, client_address, request_id, trace_id};
use crate::revision::{Admission, Grant, Lease, Peers, RevisionHandle, Target, WaitReason};
use crate::route::{Entry, Registry, Route};
use crate::serve::body::{BodySlot, OutgoingBody, ResponseBody};
use crate::serve::budget::{RequestBudget, request_cost};
use crate::serve::exchange::Exchange;
use crate::serve::head;
use crate::serve::headers::{HOP_HEADER, remove_hop_by_hop, requested_upgrade, restore_upgrade, set_forwarded};
use crate::serve::respond;
use crate::serve::tunnel;

/// How long a request waits for a Service that has no revision to route to yet before it gets 503.
const NOT_READY_WAIT: Duration = Duration::from_secs(30);

/// Attempts per request when connections fail before the request is sent.
const MAX_ATTEMPTS: usize = 3;

/// Names the revision that answered, on responses; on a request one activator forwards to another, the revision it
/// picked.
const REVISION: HeaderName = HeaderName::from_static(REVISION_HEADER);

type BackendClient = Client<HttpConnector, OutgoingBody>;

/// Pooled clients: to pods over HTTP/1.1 or h2c, and to peer activators (from this activator's own IP, which is how
/// a peer recognises forwarded requests).
struct Clients {
    http1: BackendClient,
    h2c: BackendClient,
    peer_http1: BackendClient,
    peer_h2c: BackendClient,
}

impl Clients {
    fn new(connect_timeout: Duration, me: IpAddr) -> Self {
        let build = |h2c: bool, local: Option<IpAddr>| {
            let mut connector = HttpConnector::new();
            connector.set_nodelay(true);
            connector.set_connect_timeout(Some(connect_timeout));
            connector.set_local_address(local);
            Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .pool_idle_timeout(Duration::from_secs(60))
                .http2_only(h2c)
                .build(connector)
        };
        let peer_source = (!me.is_unspecified()).then_some(me);
        Clients {
            http1: build(false, None),
            h2c: build(true, None),
            peer_http1: build(false, peer_source),
            peer_h2c: build(true, peer_source),
        }
    }
}

impl Clients {
    /// The client for a destination: the peer clients send from this activator's IP; `h2` must match the
    /// request's version, since an HTTP/1 client refuses HTTP/2 requests.
    fn pick(&self, answerer: Answerer, h2: bool) -> &BackendClient {
        match (answerer, h2) {
            (Answerer::ThisActivator, false) => &self.http1,
            (Answerer::ThisActivator, true) => &self.h2c,
            (Answerer::Peer, false) => &self.peer_http1,
            (Answerer::Peer, true) => &self.peer_h2c,
        }
    }
}

/// What the proxy needs of the activator's options.
#[derive(Clone, Debug)]
pub struct ProxySettings {
    /// Bound on connecting to a pod or peer.
    pub connect_timeout: Duration,
    /// Clients whose forwarded headers are kept (`--trusted-proxies`).
    pub trusted_proxies: CidrList,
    /// Upgraded connections idle this long are closed; `None` never.
    pub tunnel_idle_timeout: Option<Duration>,
    /// Starts the requests' spans; `None` when tracing is off.
    pub tracer: Option<SdkTracer>,
}

pub struct Proxy {
    registry: Arc<Registry>,
    /// The activator set as the registry last saw it: who may forward requests here.
    peers: watch::Receiver<Arc<Peers>>,
    /// Where pokes go, for requests that find their revision at zero.
    hub: Arc<LoadHub>,
    /// Who may invoke Authorized Services; shared by the serving threads' proxies.
    access: Arc<AccessCheck>,
    access_log: Arc<AccessLog>,
    clients: Clients,
    /// Clients whose forwarded headers are kept (`--trusted-proxies`).
    trusted_proxies: CidrList,
    /// Bytes of the requests not yet answered, bounded.
    budget: RequestBudget,
    tunnel_idle_timeout: Option<Duration>,
    tracer: Option<SdkTracer>,
}

/// What one attempt is sent to.
struct Destination {
    target: Target,
    lease: Option<Lease>,
    /// A pod (this activator answers) or the peer holding the slots (it answers).
    answerer: Answerer,
}

impl Destination {
    /// Whether to speak HTTP/2 to it. Peers get HTTP/2 when the client spoke it (the peer's pod may need it end to
    /// end, as gRPC does); pods as their port says.
    fn speaks_h2(&self, client_version: Version) -> bool {
        match self.answerer {
            Answerer::Peer => client_version == Version::HTTP_2,
            Answerer::ThisActivator => self.target.h2c,
        }
    }
}

/// How long a request waited and whether it waited through a cold start or a thaw.
#[derive(Default)]
struct Waited {
    queued: Option<Duration>,
    cold: bool,
    /// How long it waited for a frozen pod to be thawed.
    thaw: Option<Duration>,
}

/// What the request path saw of a request, for its access log line and its spans.
#[derive(Default)]
struct Seen {
    /// The request's spans; `None` when tracing is off.
    trace: Option<RequestTrace>,
    /// What the line needs of the request's head; `None` when the access log does not record this request.
    head: Option<LoggedHead>,
    revision: Option<Arc<RevisionHandle>>,
    /// The pod or peer it was last sent to.
    backend: Option<SocketAddr>,
    /// The request body, to count what was sent of it.
    body: Option<BodySlot>,
    waited: Waited,
}

/// What an access log line needs of a request's head, taken before the head goes to the pod.
struct LoggedHead {
    entry: Entry,
    host: String,
    method: http::Method,
    path: String,
    user_agent: Option<HeaderValue>,
    client: IpAddr,
    via: Via,
    trace_id: Option<String>,
}

impl Proxy {
    /// `access`, `access_log` and `budget` are shared by the serving threads' proxies.
    pub fn new(
        registry: Arc<Registry>,
        hub: Arc<LoadHub>,
        access: Arc<AccessCheck>,
        access_log: Arc<AccessLog>,
        settings: ProxySettings,
        budget: RequestBudget,
    ) -> Self {
        let peers = registry.watch_peers();
        let me = peers.borrow().me();
        Proxy {
            registry,
            peers,
            hub,
            access,
            access_log,
            clients: Clients::new(settings.connect_timeout, me),
            trusted_proxies: settings.trusted_proxies,
            budget,
            tunnel_idle_timeout: settings.tunnel_idle_timeout,
            tracer: settings.tracer,
        }
    }

    /// Serves one client request.
    pub async fn serve(
        self: Arc<Self>,
        mut request: Request<Incoming>,
        remote: SocketAddr,
        entry: Entry,
    ) -> Result<Response<ResponseBody>, Infallible> {
        let arrival = Instant::now();
        let request_id = request_id(request.headers());
        request.headers_mut().insert(REQUEST_ID, request_id.clone());
        let mut seen = Seen {
            trace: self.tracer.as_ref().map(|tracer| {
                RequestTrace::start(
                    tracer,
                    request.headers(),
                    request.method(),
                    request.uri().path(),
                    arrival,
                )
            }),
            ..Seen::default()
        };
        let mut response = self.answer(request, remote, entry, arrival, &mut seen).await;
        response.headers_mut().insert(REQUEST_ID, request_id.clone());
        Ok(if seen.head.is_some() || seen.trace.is_some() {
            self.record_when_sent(response, seen, request_id, arrival)
        } else {
            response
        })
    }

    /// The response to a request, noting in `seen` what the access log needs.
    async fn answer(
        &self,
        mut request: Request<Incoming>,
        remote: SocketAddr,
        entry: Entry,
        arrival: Instant,
        seen: &mut Seen,
    ) -> Response<ResponseBody> {
        if request.method() == http::Method::CONNECT {
            return respond::connect_not_supported();
        }
        // Only a request with the hop header can be a peer's: the peer lookup stays off the common path.
        let origin = if request.headers().contains_key(HOP_HEADER) && self.peers.borrow().is_peer(remote.ip()) {
            Origin::Peer
        } else {
            Origin::Client
        };
        let host = match head::check(request.version(), request.uri(), request.headers(), origin) {
            Ok(host) => host,
            Err(error) => {
                tracing::debug!(%remote, %error, "request head refused");
                return respond::refused_head(error);
            }
        };
        if let Some(value) = host.host_header() {
            request.headers_mut().insert(header::HOST, value);
        }
        // Only a peer may name the revision (the one it picked); from anyone else the header is dropped.
        let pinned = request
            .headers_mut()
            .remove(REVISION)
            .filter(|_| origin == Origin::Peer);
        let pinned = pinned.as_ref().and_then(|value| value.to_str().ok());
        let route = self.registry.route(&host, entry, pinned);
        // Decided once the Service (and its share) is known; the head is taken before it is changed on its way.
        if self
            .access_log
            .picks(route.policy().and_then(|policy| policy.access_log))
        {
            seen.head = Some(LoggedHead {
                entry,
                host: host.to_string(),
                method: request.method().clone(),
                path: request.uri().path().to_owned(),
                user_agent: request.headers().get(header::USER_AGENT).cloned(),
                client: client_address(remote.ip(), request.headers(), &self.trusted_proxies, origin),
                via: origin.into(),
                trace_id: trace_id(request.headers()).map(str::to_owned),
            });
        }
        // A caller that may not invoke the Service is answered here, before the request holds any of the activator's
        // bounds, counts as load or wakes a revision at zero (`forward` does all three).
        if let Some(refused) = self.refused(&route, origin, request.headers()).await {
            return refused;
        }
        // A Service with nothing to route to yet (just created, or written by a release without revisions until
        // the operator resolves its traffic) holds its requests for a while instead of failing them; only those
        // requests pay for waiting. The Service may have changed meanwhile (its invokers, or the Service a mapped
        // domain names), so the check is made again; a fresh answer is in the cache.
        let route = match route {
            Route::NotReady(..) => {
                let route = self
                    .wait_for_route(&host, entry, pinned, arrival + NOT_READY_WAIT)
                    .await;
                if let Some(refused) = self.refused(&route, origin, request.headers()).await {
                    return refused;
                }
                route
            }
            route => route,
        };
        let revision = match route {
            Route::Revision(revision, _) => revision,
            Route::NotReady(service, _) => return respond::no_revision_ready(&service),
            Route::Unknown => return respond::no_service_for_host(&host),
        };
        if seen.head.is_some() {
            seen.revision = Some(revision.clone());
        }
        if let Some(trace) = &seen.trace {
            trace.describe([
                KeyValue::new("server.address", host.to_string()),
                KeyValue::new("client.address", remote.ip().to_string()),
                KeyValue::new("runway.namespace", revision.id.key.namespace.clone()),
                KeyValue::new("runway.service", revision.id.service.clone()),
                KeyValue::new("runway.revision", revision.id.key.name.clone()),
            ]);
        }
        let (mut response, answerer) = self
            .forward(&revision, request, (remote, origin), &host, arrival, seen)
            .await;
        if let Some(name) = &revision.header {
            response.headers_mut().insert(REVISION, name.clone());
        }
        revision.answered(response.status().as_u16(), answerer, arrival.elapsed());
        response
    }

    /// `response`, with its access log line written and its server span ended once it has been sent (or the client
    /// left).
    fn record_when_sent(
        &self,
        response: Response<ResponseBody>,
        mut seen: Seen,
        request_id: HeaderValue,
        arrival: Instant,
    ) -> Response<ResponseBody> {
        let log = self.access_log.clone();
        let status = response.status().as_u16();
        response.map(|body| {
            body.observed(move |bytes_out| {
                let duration = arrival.elapsed();
                let trace = seen.trace.take();
                if let Some(head) = seen.head {
                    log.record(AccessRecord {
                        time: std::time::SystemTime::now() - duration,
                        entry: head.entry,
                        host: head.host,
                        revision: seen.revision.map(|revision| revision.id.clone()),
                        backend: seen.backend,
                        via: head.via,
                        method: head.method,
                        path: head.path,
                        status,
                        bytes_in: seen.body.as_ref().map_or(0, BodySlot::bytes_sent),
                        bytes_out,
                        duration,
                        queue_wait: seen.waited.queued,
                        cold_start: seen.waited.cold,
                        client: head.client,
                        user_agent: head.user_agent,
                        request_id,
                        trace_id: trace.as_ref().and_then(RequestTrace::trace_id).or(head.trace_id),
                    });
                }
                if let Some(trace) = trace {
                    trace.end(status);
                }
            })
        })
    }

    /// The answer for a client that may not invoke the Service `route` leads to; `None` lets the request go on. A
    /// Service anyone may invoke costs one comparison here. A peer's request is not checked again: the activator
    /// that took it from its client checked it, and only an activator of the peer set is taken for a peer (the hop
    /// header from the IP of an activator pod).
    async fn refused(
        &self,
        route: &Route,
        origin: Origin,
        headers: &http::HeaderMap,
    ) -> Option<Response<ResponseBody>> {
        if origin == Origin::Peer {
            return None;
        }
        let (namespace, service) = route.authorized_only()?;
        // Boxed: the reviews' futures are large, and only requests to Authorized Services should carry them.
        match Box::pin(self.access.check(headers, namespace, service)).await {
            Decision::Allowed => None,
            Decision::Refused(refusal) => Some(respond::access_refused(&refusal, namespace, service)),
        }
    }

    /// Routes `host` again each time a routing table or a revision arrives, until it leads somewhere or `until`.
    async fn wait_for_route(&self, host: &str, entry: Entry, pinned: Option<&str>, until: Instant) -> Route {
        loop {
            // Registered before looking, so that a change between the look and the wait is not missed.
            let changed = self.registry.routes_changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.registry.route(host, entry, pinned) {
                Route::NotReady(..) if Instant::now() < until => {
                    let _ = tokio::time::timeout_at(until, changed).await;
                }
                route => return route,
            }
        }
    }

    /// The response, and which activator answers for it in the load reports.
    async fn forward(
        &self,
        revision: &Arc<RevisionHandle>,
        mut request: Request<Incoming>,
        (remote, origin): (SocketAddr, Origin),
        host: &str,
        arrival: Instant,
        seen: &mut Seen,
    ) -> (Response<ResponseBody>, Answerer) {
        request.headers_mut().remove(HOP_HEADER);
        // Held until the response head: what waits in queues is bounded whatever clients send.
        let Some(_reservation) = self.budget.reserve(request_cost(&request)) else {
            return (respond::activator_full(), Answerer::ThisActivator);
        };
        let upgrade = (request.version() == Version::HTTP_11)
            .then(|| requested_upgrade(request.headers()))
            .flatten();
        let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut request));
        let (mut parts, body) = request.into_parts();
        remove_hop_by_hop(&mut parts.headers);
        if let Some(protocol) = &upgrade {
            restore_upgrade(&mut parts.headers, protocol.clone());
        }
        if origin == Origin::Client {
            set_forwarded(&mut parts.headers, remote.ip(), host, &self.trusted_proxies);
        }
        if !parts.headers.contains_key(header::HOST)
            && let Ok(value) = HeaderValue::from_str(host)
        {
            // HTTP/2 clients send only :authority; peers and HTTP/1.1 pods route and read by Host.
            parts.headers.insert(header::HOST, value);
        }
        let body = BodySlot::new(body);
        if seen.head.is_some() {
            seen.body = Some(body.clone());
        }
        let waited = &mut seen.waited;
        // Read next to the admission: the revision may have been deleted since it was routed.
        let Some(timeout) = revision.timeout() else {
            return (respond::no_service_for_host(host), Answerer::ThisActivator);
        };
        let deadline = arrival + timeout;

        for _ in 0..MAX_ATTEMPTS {
            let destination = match self
                .admit(revision, origin, deadline, waited, seen.trace.as_ref())
                .await
            {
                Ok(destination) => destination,
                Err(response) => return (response, Answerer::ThisActivator),
            };
            seen.backend = Some(destination.target.addr);
            let h2 = destination.speaks_h2(parts.version);
            let mut outgoing = match build_request(&parts, &destination, revision, h2, body.outgoing()) {
                Ok(outgoing) => outgoing,
                Err(error) => return (respond::cannot_forward(&error), Answerer::ThisActivator),
            };
            // With tracing on, the app's spans go under this attempt's; off, the caller's traceparent passes as it is.
            let attempt = seen
                .trace
                .as_ref()
                .map(|trace| trace.attempt(&parts.method, destination.target.addr));
            if let Some(attempt) = &attempt {
                runway_api::telemetry::inject(attempt, outgoing.headers_mut());
            }
            let client = self.clients.pick(destination.answerer, h2);
            let exchange = Exchange::new(client.request(outgoing), destination.lease, deadline);
            // Past the deadline the exchange is dropped: the pod finishes in the background, holding its slot.
            let result = tokio::time::timeout_at(deadline, exchange).await;
            if let Some(attempt) = &attempt {
                let status = match &result {
                    Ok((Ok(response), _)) => Some(response.status().as_u16()),
                    _ => None,
                };
                RequestTrace::attempt_ended(attempt, status);
            }
            match result {
                Err(_elapsed) => return (respond::timed_out(), destination.answerer),
                Ok((Ok(response), lease)) => {
                    let response = finish(
                        response,
                        lease,
                        deadline,
                        self.tunnel_idle_timeout,
                        client_upgrade,
                        waited,
                    );
                    return (response, destination.answerer);
                }
                Ok((Err(error), lease)) if error.is_connect() && body.is_untouched() => {
                    tracing::debug!(revision = %revision.id.key, backend = %destination.target.addr, %error, "connect failed, retrying");
                    if let Some(lease) = lease {
                        revision.connect_failed(lease);
                    }
                }
                Ok((Err(error), lease)) if body.is_untouched() && reset_unread(&error) => {
                    // The pod's app never read this request: safe to send again, whatever the method.
                    tracing::debug!(revision = %revision.id.key, backend = %destination.target.addr, error = %error_chain(&error), "reset before the request was read, retrying");
                    drop(lease);
                }
                Ok((Err(error), lease))
                    if body.is_untouched() && closed_unanswered(&error) && parts.method.is_idempotent() =>
                {
                    // Most often the app closed an idle keep-alive connection as this request went out on it (see
                    // `closed_unanswered`); an idempotent request may be sent again whatever happened to it.
                    tracing::debug!(revision = %revision.id.key, backend = %destination.target.addr, error = %error_chain(&error), "closed before any answer, retrying an idempotent request");
                    drop(lease);
                }
                Ok((Err(error), _lease)) => {
                    tracing::debug!(revision = %revision.id.key, backend = %destination.target.addr, error = %error_chain(&error), "backend failed");
                    return (respond::backend_failed(), destination.answerer);
                }
            }
        }
        (respond::no_backend_accepted(), Answerer::ThisActivator)
    }

    /// Waits for a slot (or a peer to forward to) until the deadline.
    async fn admit(
        &self,
        revision: &RevisionHandle,
        origin: Origin,
        deadline: Instant,
        waited: &mut Waited,
        trace: Option<&RequestTrace>,
    ) -> Result<Destination, Response<ResponseBody>> {
        let grant = match revision.admit(origin) {
            Admission::Granted(grant) => grant,
            Admission::Queued(waiting, poke) => {
                if let Some(load) = poke {
                    self.hub.poke(load);
                }
                let reason = waiting.reason;
                let waiting_cold = reason == WaitReason::ColdStart;
                waited.cold |= waiting_cold;
                let started = Instant::now();
                let grant = tokio::time::timeout_at(deadline, waiting.granted()).await;
                let granted = Instant::now();
                let wait = granted - started;
                if let Some(trace) = trace {
                    // The cold start this request waited through is the last one, if it ended during the wait.
                    let cold = waiting_cold
                        .then(|| revision.last_cold_start())
                        .flatten()
                        .filter(|cold| cold.routable.is_some_and(|at| at >= started));
                    trace.queue_wait(started, granted, cold.as_ref());
                }
                revision.metrics.queue_wait.observe(wait.as_secs_f64());
                *waited.queued.get_or_insert_default() += wait;
                if reason == WaitReason::Thaw {
                    *waited.thaw.get_or_insert_default() += wait;
                }
                match grant {
                    Ok(Some(grant)) => grant,
                    Ok(None) => return Err(respond::revision_deleted_while_waiting()),
                    Err(_elapsed) => return Err(respond::timed_out()),
                }
            }
            Admission::QueueFull => return Err(respond::queue_full()),
            Admission::Gone => return Err(respond::revision_deleted_before_admission()),
        };
        Ok(match grant {
            Grant::Pod(lease) => Destination {
                target: lease.target.clone(),
                lease: Some(lease),
                answerer: Answerer::ThisActivator,
            },
            Grant::Peer(addr) => Destination {
                target: Target::new(addr, false),
                lease: None,
                answerer: Answerer::Peer,
            },
            Grant::Failing(reason) => return Err(respond::failing(&reason)),
        })
    }
}

fn build_request(
    parts: &http::request::Parts,
    destination: &Destination,
    revision: &RevisionHandle,
    h2: bool,
    body: OutgoingBody,
) -> Result<Request<OutgoingBody>, http::Error> {
    let path = parts.uri.path_and_query().cloned();
    let uri = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(destination.target.authority.clone())
        .path_and_query(path.unwrap_or_else(|| PathAndQuery::from_static("/")))
        .build()?;
    let mut request = Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .version(if h2 { Version::HTTP_2 } else { Version::HTTP_11 })
        .body(body)?;
    *request.headers_mut() = parts.headers.clone();
    if destination.answerer == Answerer::Peer {
        request.headers_mut().insert(HOP_HEADER, HeaderValue::from_static("1"));
        if let Some(name) = &revision.header {
            request.headers_mut().insert(REVISION, name.clone());
        }
    }
    Ok(request)
}

/// The response to the client: hop-by-hop headers removed, queueing noted, the slot held until the body ends (or
/// the upgraded connection closes).
fn finish(
    mut response: Response<Incoming>,
    lease: Option<Lease>,
    deadline: Instant,
    tunnel_idle_timeout: Option<Duration>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    waited: &Waited,
) -> Response<ResponseBody> {
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    let upgrade = if switching {
        requested_upgrade(response.headers())
    } else {
        None
    };
    remove_hop_by_hop(response.headers_mut());
    if let Some(queued) = waited.queued {
        append_timing(response.headers_mut(), "runway-queue", queued);
    }
    if let Some(thaw) = waited.thaw {
        // The wait for a frozen pod, named apart so that a client tells a thaw from a queue.
        append_timing(response.headers_mut(), "runway-thaw", thaw);
    }
    if waited.cold {
        response
            .headers_mut()
            .insert(COLD_START_HEADER, HeaderValue::from_static("true"));
    }
    let lease = match (upgrade, client_upgrade) {
        (Some(protocol), Some(client_side)) => {
            restore_upgrade(response.headers_mut(), protocol);
            let backend_side = hyper::upgrade::on(&mut response);
            tokio::spawn(tunnel::run(client_side, backend_side, lease, tunnel_idle_timeout));
            None
        }
        _ => lease,
    };
    response.map(|body| ResponseBody::proxied(body, lease, deadline))
}

/// Appends a `Server-Timing` entry `{name};dur={milliseconds}`.
fn append_timing(headers: &mut http::HeaderMap, name: &str, took: Duration) {
    let timing = format!("{name};dur={:.1}", took.as_secs_f64() * 1000.0);
    if let Ok(value) = HeaderValue::from_str(&timing) {
        headers.append(header::HeaderName::from_static("server-timing"), value);
    }
}

/// Whether the backend reset the connection before answering: it closed with our request unread in its receive
/// buffer, or the request reached a socket it had already closed. TCP delivers in order and a server that read all
/// it was sent closes with FIN, not RST, so the app never read the request. This is the keep-alive race of a pooled
/// connection the backend closes right after a response (e.g. an app server that does not read a request body, or
/// that closes idle connections), and safe to retry whatever the method.
fn reset_unread(error: &(dyn std::error::Error + 'static)) -> bool {
    first_cause::<std::io::Error>(error).is_some_and(|io| {
        matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        )
    })
}

/// Whether the backend closed the connection, with FIN, before any byte of its response. Almost always the keep-alive
/// race: the app closed a pooled connection it found idle (Node's `keepAliveTimeout` of 5 s, gunicorn's 2 s) while
/// this request was on its way, and the close reached us before the reset that the app's kernel sends for the
/// request; less often the app read the request and closed without answering. The two cannot be told apart, so only
/// an idempotent request (RFC 9110 §9.2.2) is sent again.
fn closed_unanswered(error: &(dyn std::error::Error + 'static)) -> bool {
    first_cause::<hyper::Error>(error).is_some_and(hyper::Error::is_incomplete_message)
}

/// The first cause of `error` (not `error` itself) that is a `T`.
fn first_cause<'a, T: std::error::Error + 'static>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a T> {
    std::iter::successors(error.source(), |cause| cause.source()).find_map(|cause| cause.downcast_ref::<T>())
}

/// An error with its causes, for logs: hyper-util's own message ("client error (SendRequest)") names none.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
