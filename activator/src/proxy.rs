//! The request path: route by host, wait for a slot, send to the pod (or the peer holding the slots), stream the
//! response back.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use runway_api::names::COLD_START_HEADER;
use tokio::time::Instant;

use crate::body::{BodySlot, OutgoingBody, ResponseBody};
use crate::headers::{HOP_HEADER, remove_hop_by_hop, requested_upgrade, restore_upgrade, set_forwarded};
use crate::probe;
use crate::registry::{Registry, Route};
use crate::service::{Admission, Grant, Lease, ServiceHandle, Target};

/// Attempts per request when connections fail before the request is sent.
const MAX_ATTEMPTS: usize = 3;

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

pub struct Proxy {
    registry: Arc<Registry>,
    clients: Clients,
}

/// What one attempt is sent to.
struct Destination {
    target: Target,
    lease: Option<Lease>,
    peer: bool,
}

/// How long a request waited and whether it waited through a cold start.
#[derive(Default)]
struct Waited {
    queued: Option<Duration>,
    cold: bool,
}

impl Proxy {
    pub fn new(registry: Arc<Registry>, connect_timeout: Duration) -> Self {
        let me = registry.peers().me();
        Proxy {
            registry,
            clients: Clients::new(connect_timeout, me),
        }
    }

    /// Serves one client request.
    pub async fn serve(
        self: Arc<Self>,
        request: Request<Incoming>,
        remote: SocketAddr,
    ) -> Result<Response<ResponseBody>, Infallible> {
        let arrival = Instant::now();
        if request.method() == http::Method::CONNECT {
            // Tunnels to arbitrary addresses are not a Service's traffic.
            return Ok(local(StatusCode::METHOD_NOT_ALLOWED, "CONNECT is not supported\n"));
        }
        let host = request_host(&request);
        let service = match self.registry.route(&host) {
            Route::Service(service) => service,
            Route::Unknown => {
                let shown = if host.is_empty() { "(none)" } else { host.as_str() };
                return Ok(local(
                    StatusCode::NOT_FOUND,
                    format!("no Runway service for host {shown}\n"),
                ));
            }
        };
        let response = self.forward(&service, request, remote, &host, arrival).await;
        service.metrics.count_response(response.status().as_u16());
        service.metrics.latency.observe(arrival.elapsed().as_secs_f64());
        Ok(response)
    }

    async fn forward(
        &self,
        service: &Arc<ServiceHandle>,
        mut request: Request<Incoming>,
        remote: SocketAddr,
        host: &str,
        arrival: Instant,
    ) -> Response<ResponseBody> {
        let Some(timeout) = service.timeout() else {
            return local(StatusCode::NOT_FOUND, format!("no Runway service for host {host}\n"));
        };
        let deadline = arrival + timeout;
        let hop = request.headers_mut().remove(HOP_HEADER).is_some() && self.registry.peers().is_peer(remote.ip());
        let upgrade = (request.version() == Version::HTTP_11)
            .then(|| requested_upgrade(request.headers()))
            .flatten();
        let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut request));
        let (mut parts, body) = request.into_parts();
        remove_hop_by_hop(&mut parts.headers);
        if let Some(protocol) = &upgrade {
            restore_upgrade(&mut parts.headers, protocol.clone());
        }
        if !hop {
            set_forwarded(&mut parts.headers, remote.ip(), host);
        }
        if !parts.headers.contains_key(header::HOST)
            && let Ok(value) = HeaderValue::from_str(host)
        {
            // HTTP/2 clients send only :authority; peers and HTTP/1.1 pods route and read by Host.
            parts.headers.insert(header::HOST, value);
        }
        let body = BodySlot::new(body);
        let mut waited = Waited::default();

        for _ in 0..MAX_ATTEMPTS {
            let destination = match self.admit(service, hop, deadline, &mut waited).await {
                Ok(destination) => destination,
                Err(response) => return response,
            };
            let outgoing = match build_request(&parts, &destination, body.outgoing()) {
                Ok(outgoing) => outgoing,
                Err(error) => {
                    return local(
                        StatusCode::BAD_REQUEST,
                        format!("cannot forward the request: {error}\n"),
                    );
                }
            };
            let client = match (destination.peer, destination.target.h2c) {
                (false, false) => &self.clients.http1,
                (false, true) => &self.clients.h2c,
                (true, false) => &self.clients.peer_http1,
                (true, true) => &self.clients.peer_h2c,
            };
            let result = tokio::time::timeout_at(deadline, client.request(outgoing)).await;
            match result {
                Err(_elapsed) => return timeout_response(),
                Ok(Ok(response)) => return finish(response, destination.lease, client_upgrade, &waited),
                Ok(Err(error)) if error.is_connect() && body.is_untouched() => {
                    tracing::debug!(service = %service.key, backend = %destination.target.addr, %error, "connect failed, retrying");
                    if let Some(lease) = destination.lease
                        && let Some(probe) = service.connect_failed(lease)
                    {
                        probe::spawn(service.clone(), probe, self.registry.probe_config().clone());
                    }
                }
                Ok(Err(error)) => {
                    tracing::debug!(service = %service.key, backend = %destination.target.addr, %error, "backend failed");
                    return local(StatusCode::BAD_GATEWAY, "the backend failed to answer\n");
                }
            }
        }
        local(StatusCode::BAD_GATEWAY, "no backend accepted the connection\n")
    }

    /// Waits for a slot (or a peer to forward to) until the deadline.
    async fn admit(
        &self,
        service: &Arc<ServiceHandle>,
        hop: bool,
        deadline: Instant,
        waited: &mut Waited,
    ) -> Result<Destination, Response<ResponseBody>> {
        let grant = match service.admit(hop) {
            Admission::Granted(grant) => grant,
            Admission::Queued(waiting) => {
                waited.cold |= waiting.cold;
                let started = Instant::now();
                let grant = tokio::time::timeout_at(deadline, waiting.granted()).await;
                *waited.queued.get_or_insert_default() += started.elapsed();
                match grant {
                    Ok(Some(grant)) => grant,
                    Ok(None) => return Err(local(StatusCode::SERVICE_UNAVAILABLE, "the service was deleted\n")),
                    Err(_elapsed) => return Err(timeout_response()),
                }
            }
            Admission::QueueFull => {
                let mut response = local(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many requests waiting, retry later\n",
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return Err(response);
            }
            Admission::Gone => return Err(local(StatusCode::NOT_FOUND, "the service was deleted\n")),
        };
        Ok(match grant {
            Grant::Pod(lease) => Destination {
                target: lease.target.clone(),
                lease: Some(lease),
                peer: false,
            },
            Grant::Peer(addr) => Destination {
                target: Target::new(addr, false),
                lease: None,
                peer: true,
            },
        })
    }
}

/// The host a request is for: the Host header, or the HTTP/2 :authority.
fn request_host<B>(request: &Request<B>) -> String {
    request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_default()
}

fn build_request(
    parts: &http::request::Parts,
    destination: &Destination,
    body: OutgoingBody,
) -> Result<Request<OutgoingBody>, http::Error> {
    let path = parts.uri.path_and_query().cloned();
    let uri = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(destination.target.authority.clone())
        .path_and_query(path.unwrap_or_else(|| PathAndQuery::from_static("/")))
        .build()?;
    // Peers get HTTP/2 when the client spoke it (the peer's pod may need it end to end); pods as their port says.
    let h2 = if destination.peer {
        parts.version == Version::HTTP_2
    } else {
        destination.target.h2c
    };
    let mut request = Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .version(if h2 { Version::HTTP_2 } else { Version::HTTP_11 })
        .body(body)?;
    *request.headers_mut() = parts.headers.clone();
    if destination.peer {
        request.headers_mut().insert(HOP_HEADER, HeaderValue::from_static("1"));
    }
    Ok(request)
}

/// The response to the client: hop-by-hop headers removed, queueing noted, the slot held until the body ends (or
/// the upgraded connection closes).
fn finish(
    mut response: Response<Incoming>,
    lease: Option<Lease>,
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
        let timing = format!("runway-queue;dur={:.1}", queued.as_secs_f64() * 1000.0);
        if let Ok(value) = HeaderValue::from_str(&timing) {
            response
                .headers_mut()
                .append(header::HeaderName::from_static("server-timing"), value);
        }
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
            tokio::spawn(tunnel(client_side, backend_side, lease));
            None
        }
        _ => lease,
    };
    response.map(|body| ResponseBody::Proxied { body, lease })
}

/// Copies bytes both ways between the upgraded client and backend connections. Timeouts do not apply here: a
/// WebSocket may stay open as long as both ends want. The slot is held until it closes.
async fn tunnel(client_side: hyper::upgrade::OnUpgrade, backend_side: hyper::upgrade::OnUpgrade, lease: Option<Lease>) {
    let (client, backend) = match tokio::try_join!(client_side, backend_side) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(%error, "upgrade failed");
            return;
        }
    };
    let (mut client, mut backend) = (TokioIo::new(client), TokioIo::new(backend));
    if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        tracing::debug!(%error, "upgraded connection ended with an error");
    }
    drop(lease);
}

fn timeout_response() -> Response<ResponseBody> {
    local(
        StatusCode::GATEWAY_TIMEOUT,
        "the service did not answer within its timeout\n",
    )
}

fn local(status: StatusCode, text: impl Into<bytes::Bytes>) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::local(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
