//! `/ws`: a WebSocket echo, so that upgraded connections through the activator can be exercised end to end (the
//! soak harness in hack/soak keeps some open while activators roll).

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// Answers the opening handshake with 101 and echoes every text and binary message on the upgraded connection
/// until the client closes it. A request that is not a WebSocket handshake gets 400.
pub fn accept<B>(mut req: Request<B>) -> Response<Full<Bytes>> {
    let Some(key) = handshake_key(&req) else {
        return bad_request();
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => echo(upgraded).await,
            Err(err) => tracing::debug!(%err, "websocket upgrade failed"),
        }
    });
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes())).expect("base64 is a valid header value");
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    response
}

/// The client's `Sec-WebSocket-Key` when the request asks for a WebSocket upgrade.
fn handshake_key<B>(req: &Request<B>) -> Option<String> {
    let headers = req.headers();
    let asks_websocket = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?.to_str().ok()?;
    asks_websocket.then(|| key.to_owned())
}

async fn echo(upgraded: Upgraded) {
    let mut socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
    while let Some(Ok(message)) = socket.next().await {
        // Pings are answered by tungstenite itself; a close ends the loop once it has been acknowledged.
        if (message.is_text() || message.is_binary()) && socket.send(message).await.is_err() {
            break;
        }
    }
}

fn bad_request() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"expected a WebSocket handshake\n")));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_plain_get_is_refused() {
        let response = accept(Request::get("/ws").body(()).unwrap());
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn the_handshake_derives_the_accept_key() {
        // The example of RFC 6455 section 1.3.
        let request = Request::get("/ws")
            .header(header::UPGRADE, "websocket")
            .header(header::CONNECTION, "Upgrade")
            .header(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==")
            .body(())
            .unwrap();
        let response = accept(request);
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(
            response.headers()[header::SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
