//! Every response the activator makes up itself rather than relays from a pod or a peer, in one format: one line of
//! text ending in a newline, as `text/plain; charset=utf-8`. The proxy's answers are named here by why they are
//! given; the admin port builds its own through `text`. (431, and 400 for a head hyper cannot parse, are hyper's
//! own: it answers them before a request reaches the activator.)

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use runway_api::ServiceKey;

use crate::access::{Challenge, Refusal, Review, Unavailable};
use crate::serve::body::ResponseBody;
use crate::serve::head::HeadError;

/// The 503 a connection over the limit gets. hyper never serves such a connection, so the answer is written to the
/// socket as it stands, and closes it.
pub const OVER_CONNECTION_LIMIT: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-type: text/plain\r\n\
connection: close\r\ncontent-length: 29\r\n\r\ntoo many connections, retry\r\n";

/// The one format: `text` as plain UTF-8 text.
pub fn text(status: StatusCode, text: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(text.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// 405: a CONNECT asks for a tunnel to an arbitrary address, which is not a Service's traffic.
pub fn connect_not_supported() -> Response<ResponseBody> {
    local(StatusCode::METHOD_NOT_ALLOWED, "CONNECT is not supported\n")
}

/// 400, or 501 for a transfer coding this activator does not implement: the request head was refused.
pub fn refused_head(error: HeadError) -> Response<ResponseBody> {
    local(error.status(), format!("{error}\n"))
}

/// 404: the host names no Service this entry point serves (or its revision was deleted as the request was routed).
pub fn no_service_for_host(host: &str) -> Response<ResponseBody> {
    let shown = if host.is_empty() { "(none)" } else { host };
    local(StatusCode::NOT_FOUND, format!("no Runway service for host {shown}\n"))
}

/// 503: the Service routes to no revision known here yet, after the request waited for one; it may come soon.
pub fn no_revision_ready(service: &ServiceKey) -> Response<ResponseBody> {
    retry_after(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("no revision of {service} is ready to route yet\n"),
        "1",
    )
}

/// The answer to a caller the access check of an Authorized Service did not let through: 401 with a Bearer challenge (RFC 6750 §3) without a valid token, 403 for a
/// user RBAC does not allow, 503 when the check could not be made (fail closed).
pub fn access_refused(refusal: &Refusal, namespace: &str, service: &str) -> Response<ResponseBody> {
    match refusal {
        Refusal::Unauthenticated(challenge) => {
            let (header, body) = match challenge {
                Challenge::NoToken => (
                    r#"Bearer realm="runway""#,
                    format!("{namespace}/{service} requires an Authorization: Bearer token\n"),
                ),
                Challenge::Malformed => (
                    r#"Bearer realm="runway", error="invalid_request""#,
                    "the Authorization header holds no bearer token\n".to_owned(),
                ),
                Challenge::InvalidToken => (
                    r#"Bearer realm="runway", error="invalid_token""#,
                    format!("the bearer token is not valid for {namespace}/{service}\n"),
                ),
            };
            let mut response = local(StatusCode::UNAUTHORIZED, body);
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(header));
            response
        }
        Refusal::Forbidden { user } => local(
            StatusCode::FORBIDDEN,
            format!("{user} may not invoke {namespace}/{service}\n"),
        ),
        Refusal::Unavailable(Unavailable::NoApi) => retry_after(
            StatusCode::SERVICE_UNAVAILABLE,
            "no Kubernetes API to review tokens with\n",
            "10",
        ),
        Refusal::Unavailable(Unavailable::Limited(review, limit)) => retry_after(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{} reviews {limit}, retry later\n", review_name(*review)),
            "1",
        ),
        Refusal::Unavailable(Unavailable::Failed(review, reason)) => retry_after(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{} review failed: {reason}\n", review_name(*review)),
            "1",
        ),
    }
}

fn review_name(review: Review) -> &'static str {
    match review {
        Review::Token => "token",
        Review::Access => "access",
    }
}

/// 503: the bytes of the requests this activator holds reached its bound.
pub fn activator_full() -> Response<ResponseBody> {
    retry_after(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many requests waiting in this activator, retry later\n",
        "1",
    )
}

/// 503: the revision's queue is at its bound.
pub fn queue_full() -> Response<ResponseBody> {
    retry_after(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many requests waiting, retry later\n",
        "1",
    )
}

/// 503 naming why the revision's pods cannot serve, at once rather than after the timeout; a retry is worth it only
/// once someone fixed the revision, hence the longer Retry-After.
pub fn failing(reason: &str) -> Response<ResponseBody> {
    retry_after(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n"), "10")
}

/// 404: the revision was deleted between routing the request and asking it for a slot. Nothing of the request was
/// held yet, so it is answered as a request for a revision that does not exist.
pub fn revision_deleted_before_admission() -> Response<ResponseBody> {
    local(StatusCode::NOT_FOUND, "the revision was deleted\n")
}

/// 503: the revision was deleted while the request waited in its queue. The request was accepted and the Service
/// most likely routes to another revision now, so a retry may well be served.
pub fn revision_deleted_while_waiting() -> Response<ResponseBody> {
    local(StatusCode::SERVICE_UNAVAILABLE, "the revision was deleted\n")
}

/// 504: no response head within the revision's timeout, queueing included.
pub fn timed_out() -> Response<ResponseBody> {
    local(
        StatusCode::GATEWAY_TIMEOUT,
        "the service did not answer within its timeout\n",
    )
}

/// 400: the request cannot be rebuilt for the pod or peer.
pub fn cannot_forward(error: &http::Error) -> Response<ResponseBody> {
    local(
        StatusCode::BAD_REQUEST,
        format!("cannot forward the request: {error}\n"),
    )
}

/// 502: the pod (or peer) failed before its response head, in a way that cannot be retried.
pub fn backend_failed() -> Response<ResponseBody> {
    local(StatusCode::BAD_GATEWAY, "the backend failed to answer\n")
}

/// 502: every attempt failed to connect, or was refused before the request was read.
pub fn no_backend_accepted() -> Response<ResponseBody> {
    local(StatusCode::BAD_GATEWAY, "no backend accepted the connection\n")
}

fn local(status: StatusCode, body: impl Into<Bytes>) -> Response<ResponseBody> {
    text(status, body).map(ResponseBody::Local)
}

fn retry_after(status: StatusCode, body: impl Into<Bytes>, seconds: &'static str) -> Response<ResponseBody> {
    let mut response = local(status, body);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static(seconds));
    response
}
