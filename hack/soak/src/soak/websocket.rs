//! WebSocket client loops through the activator: short sessions (open, echo a few messages, close) back to back, so
//! that upgraded connections are open at every moment of the schedule, rollouts of the activator included.

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::counts::Counts;
use crate::stop::Stop;

/// Messages per session, and the pause between them: a session lasts about a second, well within the activator's
/// drain delay, so a rollout never has to cut one.
const MESSAGES: usize = 10;
const PAUSE: Duration = Duration::from_millis(50);
/// Bound on the handshake (a cold start included) and on each echo.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
const ECHO_TIMEOUT: Duration = Duration::from_secs(10);

/// The label of a session that went as asked: switched protocols and echoed every message.
pub const OK: &str = "101";

pub struct WsLoop {
    pub address: SocketAddr,
    /// The Service's host, e.g. `ws.soak-abcde.example.com`.
    pub host: String,
    pub stop: Stop,
    pub budget: u64,
    pub origin: Instant,
}

impl WsLoop {
    pub async fn run(self) -> Counts {
        let mut counts = Counts::default();
        for _ in 0..self.budget {
            if self.stop.done() {
                break;
            }
            match self.session().await {
                Ok(()) => counts.add(OK, true, self.origin.elapsed(), ""),
                Err((label, detail)) => counts.add(&label, false, self.origin.elapsed(), &detail),
            }
        }
        counts
    }

    /// One session; the error is a (label, detail) pair.
    async fn session(&self) -> Result<(), (String, String)> {
        let request = format!("ws://{}/ws", self.host)
            .into_client_request()
            .map_err(|e| ("error: request".to_owned(), e.to_string()))?;
        let handshake = async {
            let stream = TcpStream::connect(self.address).await.map_err(WsError::Io)?;
            tokio_tungstenite::client_async(request, stream).await
        };
        let (mut socket, _) = match timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Err(_) => return Err(("error: no handshake within 60s".to_owned(), String::new())),
            Ok(Err(WsError::Http(response))) => {
                let body = response
                    .body()
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                return Err((response.status().as_u16().to_string(), body.into_owned()));
            }
            Ok(Err(e)) => return Err((format!("error: handshake: {e}"), String::new())),
            Ok(Ok(open)) => open,
        };
        for i in 0..MESSAGES {
            let text = format!("soak {i}");
            socket
                .send(Message::text(text.clone()))
                .await
                .map_err(|e| (format!("101 then error: {e}"), String::new()))?;
            match timeout(ECHO_TIMEOUT, socket.next()).await {
                Ok(Some(Ok(Message::Text(echo)))) if echo.as_str() == text => {}
                Ok(Some(Ok(other))) => return Err(("101 then a wrong echo".to_owned(), format!("{other:?}"))),
                Ok(Some(Err(e))) => return Err((format!("101 then error: {e}"), String::new())),
                Ok(None) => return Err(("101 then closed by the server".to_owned(), String::new())),
                Err(_) => return Err(("101 then no echo within 10s".to_owned(), String::new())),
            }
            tokio::time::sleep(PAUSE).await;
        }
        // A failed close handshake after every echo arrived still counts: the session did its job.
        let _ = timeout(ECHO_TIMEOUT, socket.close(None)).await;
        Ok(())
    }
}
