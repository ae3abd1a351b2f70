//! One HTTP/1.1 GET on a connection of its own, for the background tasks that ask pods and peer activators a
//! question: the prober and the slot handoff.

use std::net::SocketAddr;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The status of one HTTP/1.1 GET of `path` on a connected `stream` to `addr`; `None` when there is no answer.
pub async fn get_status(
    stream: TcpStream,
    addr: SocketAddr,
    path: &str,
    user_agent: &'static str,
) -> Option<StatusCode> {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .header(http::header::USER_AGENT, user_agent)
        .body(Empty::<Bytes>::new())
        .ok()?;
    Some(sender.send_request(request).await.ok()?.status())
}
