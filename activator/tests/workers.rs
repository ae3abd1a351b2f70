//! Several serving threads, each with its own listeners and backend pools: together they serve, share one
//! connection limit, and stop.

mod common;

use std::time::Duration;

use common::*;
use http::StatusCode;
use runway_activator::app::Activator;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LONG: Duration = Duration::from_secs(30);
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nhost: hello.default.example.com\r\n\r\n";

async fn with_workers(workers: usize, max_connections: usize) -> Activator {
    let mut options = options([127, 0, 0, 1].into());
    options.workers = workers;
    options.limits.max_connections = max_connections;
    let activator = Activator::start(options).await.unwrap();
    route(&activator, 0, LONG, &[hello_backend(Duration::ZERO).await]);
    activator
}

/// Reads one response head and its body (`hello`, or the 503's text) from a keep-alive connection.
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    tokio::time::timeout(Duration::from_secs(5), async {
        while !answer.ends_with(b"hello") && !answer.ends_with(b"retry\r\n") {
            match stream.read(&mut chunk).await.unwrap() {
                0 => break,
                n => answer.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no whole answer within 5 s; got {:?}", String::from_utf8_lossy(&answer)));
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn two_workers_serve_every_connection_and_stop() {
    let activator = with_workers(2, 1_000).await;
    // Many connections, so that the kernel gives some to each worker's listener.
    let clients = (0..32).map(|_| {
        let addr = activator.proxy_addr;
        tokio::spawn(async move {
            let client = client();
            send(&client, get(addr, HOST, "/")).await
        })
    });
    for answer in futures::future::join_all(clients).await {
        let (status, _, body) = answer.unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));
    }
    tokio::time::timeout(Duration::from_secs(10), activator.shutdown())
        .await
        .expect("both workers stopped within 10 s");
}

#[tokio::test]
async fn two_workers_share_one_connection_limit() {
    let activator = with_workers(2, 2).await;
    // Two connections, each proved admitted by an answer, hold the whole limit whichever worker took them.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(activator.proxy_addr).await.unwrap();
        stream.write_all(REQUEST).await.unwrap();
        let answer = read_answer(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        held.push(stream);
    }
    // Had each worker a limit of its own, some of these would land on a worker with room and be served.
    for attempt in 0..8 {
        let mut stream = TcpStream::connect(activator.proxy_addr).await.unwrap();
        stream.write_all(REQUEST).await.unwrap();
        let answer = read_answer(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "connection {attempt}: {answer}");
    }
}
