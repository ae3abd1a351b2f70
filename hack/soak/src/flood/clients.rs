//! The abusive clients, on raw TCP so that exactly the intended bytes go out: requests with a large head that wait
//! for their answer, and idle connections that never complete a request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout, timeout_at};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Flood connections being opened and written at once. Opening all of them in the same instant overflows the
/// activator's accept backlog, and the kernel then resets connections: that would measure the kernel, not the
/// activator. Loopback still delivers every head within a second or two.
pub const OPENING_AT_ONCE: usize = 128;

/// A GET whose head carries one `x-flood` header of `header_bytes` bytes.
pub fn large_head(host: &str, header_bytes: usize) -> Arc<[u8]> {
    let mut head = format!("GET / HTTP/1.1\r\nhost: {host}\r\nx-flood: ").into_bytes();
    head.resize(head.len() + header_bytes, b'a');
    head.extend_from_slice(b"\r\n\r\n");
    head.into()
}

/// What one flood connection got.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The status code, or what happened instead.
    pub label: String,
    /// Since the flood started; None when nothing came back.
    pub at: Option<Duration>,
}

/// Sends `head` on a new connection and waits until `deadline` for the status line. `open` counts connections whose
/// head was sent in full; `opening` holds back connections beyond [`OPENING_AT_ONCE`].
pub async fn large_request(
    addr: SocketAddr,
    head: Arc<[u8]>,
    origin: Instant,
    deadline: Instant,
    open: Arc<AtomicUsize>,
    opening: Arc<Semaphore>,
) -> Answer {
    let nothing = |label: String| Answer { label, at: None };
    let Ok(permit) = opening.acquire_owned().await else {
        return nothing("not started".to_owned());
    };
    let mut stream = match timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Err(_) => return nothing("connect timed out".to_owned()),
        Ok(Err(e)) => return nothing(format!("connect failed: {}", e.kind())),
        Ok(Ok(stream)) => stream,
    };
    // A server that refuses the head early may answer and close while it is still being written: read anyway.
    let written = timeout_at(deadline, stream.write_all(&head)).await;
    drop(permit);
    if matches!(written, Ok(Ok(()))) {
        open.fetch_add(1, Ordering::Relaxed);
    }
    let mut buf = [0u8; 512];
    let mut len = 0;
    loop {
        match timeout_at(deadline, stream.read(&mut buf[len..])).await {
            Err(_) => return nothing("no answer in time".to_owned()),
            Ok(Ok(n)) if n > 0 => len += n,
            Ok(read) if len == 0 => {
                let label = match (written, read) {
                    (Ok(Err(e)), _) => format!("write failed: {}", e.kind()),
                    (_, Err(e)) => format!("no answer: {}", e.kind()),
                    _ => "closed without an answer".to_owned(),
                };
                return nothing(label);
            }
            Ok(_) => {
                return Answer {
                    label: "cut-off answer".to_owned(),
                    at: Some(origin.elapsed()),
                };
            }
        }
        if let Some(status) = status_code(&buf[..len]) {
            return Answer {
                label: status,
                at: Some(origin.elapsed()),
            };
        }
        if len == buf.len() || buf[..len].contains(&b'\n') {
            return Answer {
                label: "unreadable answer".to_owned(),
                at: Some(origin.elapsed()),
            };
        }
    }
}

/// `HTTP/1.1 504 Gateway Timeout\r\n` -> "504", once the status line is complete.
fn status_code(bytes: &[u8]) -> Option<String> {
    let line = bytes.split(|b| *b == b'\n').next().filter(|_| bytes.contains(&b'\n'))?;
    let text = std::str::from_utf8(line).ok()?;
    let code = text.strip_prefix("HTTP/1.")?.get(2..5)?;
    code.bytes().all(|b| b.is_ascii_digit()).then(|| code.to_owned())
}

/// The idle-connection abuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Idle {
    /// Connects and sends nothing.
    Silent,
    /// The first half of the 24-byte HTTP/2 connection preface.
    HalfH2Preface,
    /// An HTTP/1.1 head without its final empty line.
    PartialHttp1Head,
}

impl Idle {
    pub const ALL: [Idle; 3] = [Idle::Silent, Idle::HalfH2Preface, Idle::PartialHttp1Head];

    pub fn describe(self) -> &'static str {
        match self {
            Idle::Silent => "nothing sent",
            Idle::HalfH2Preface => "half an HTTP/2 preface",
            Idle::PartialHttp1Head => "a partial HTTP/1.1 head",
        }
    }

    fn bytes(self, host: &str) -> Vec<u8> {
        match self {
            Idle::Silent => vec![],
            Idle::HalfH2Preface => b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..12].to_vec(),
            Idle::PartialHttp1Head => format!("GET / HTTP/1.1\r\nhost: {host}\r\n").into_bytes(),
        }
    }
}

/// What became of one idle connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleEnd {
    ConnectFailed,
    /// The server closed it (or reset it) after this long.
    Closed(Duration),
    /// Still open when the watch ended.
    Open,
}

/// Opens one idle connection of `kind` and watches it for at most `wait`. Whatever the server sends (a 408, say)
/// is read and ignored: only the close counts.
pub async fn idle(addr: SocketAddr, kind: Idle, host: &str, wait: Duration) -> IdleEnd {
    let Ok(Ok(mut stream)) = timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await else {
        return IdleEnd::ConnectFailed;
    };
    let opened = Instant::now();
    let deadline = opened + wait;
    if timeout_at(deadline, stream.write_all(&kind.bytes(host))).await.is_err() {
        return IdleEnd::Open;
    }
    let mut buf = [0u8; 1024];
    loop {
        match timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return IdleEnd::Open,
            Ok(Ok(0)) | Ok(Err(_)) => return IdleEnd::Closed(opened.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn the_head_has_the_asked_size_and_ends_the_head() {
        let head = large_head("flood.soak", 60 * 1024);
        assert!(head.len() > 60 * 1024 && head.len() < 60 * 1024 + 100);
        assert!(head.ends_with(b"aaa\r\n\r\n"));
        assert!(head.starts_with(b"GET / HTTP/1.1\r\nhost: flood.soak\r\n"));
    }

    #[test]
    fn status_lines_parse_once_complete() {
        assert_eq!(status_code(b"HTTP/1.1 504 Gateway Timeout\r\n").as_deref(), Some("504"));
        assert_eq!(status_code(b"HTTP/1.1 431 Request"), None);
        assert_eq!(status_code(b"garbage\r\n"), None);
    }

    #[test]
    fn idle_kinds_never_complete_a_request() {
        assert!(Idle::Silent.bytes("h").is_empty());
        assert_eq!(Idle::HalfH2Preface.bytes("h"), b"PRI * HTTP/2");
        assert!(!Idle::PartialHttp1Head.bytes("h").ends_with(b"\r\n\r\n"));
    }

    #[tokio::test]
    async fn answers_and_closes_are_seen() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            // First connection: read the head, answer 503. Second: close at once.
            let (mut a, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 70 * 1024];
            let mut got = 0;
            while !buf[..got].ends_with(b"\r\n\r\n") {
                got += a.read(&mut buf[got..]).await.unwrap();
            }
            a.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            let (b, _) = listener.accept().await.unwrap();
            drop(b);
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let open = Arc::new(AtomicUsize::new(0));
        let now = Instant::now();
        let opening = Arc::new(Semaphore::new(1));
        let deadline = now + Duration::from_secs(5);
        let answer = large_request(addr, large_head("h", 60 * 1024), now, deadline, open.clone(), opening).await;
        assert_eq!(answer.label, "503");
        assert_eq!(open.load(Ordering::Relaxed), 1);
        let end = idle(addr, Idle::Silent, "h", Duration::from_secs(5)).await;
        assert!(
            matches!(end, IdleEnd::Closed(d) if d < Duration::from_secs(5)),
            "{end:?}"
        );
    }
}
