//! The activator binary in standalone mode as a child process: streaming keeps memory bounded, SIGTERM exits 0.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use futures::StreamExt;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

const UPLOAD_BYTES: usize = 100 * 1024 * 1024;
const CHUNK_BYTES: usize = 64 * 1024;

struct ActivatorProcess {
    child: Child,
    proxy: std::net::SocketAddr,
}

impl Drop for ActivatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn free_port() -> std::net::SocketAddr {
    dead_port().await
}

async fn spawn_activator(backend: std::net::SocketAddr) -> ActivatorProcess {
    let (proxy, admin) = (free_port().await, free_port().await);
    let child = Command::new(env!("CARGO_BIN_EXE_runway-activator"))
        .args(["--standalone", "--drain-delay", "100ms", "--shutdown-timeout", "2s"])
        .args(["--listen", &proxy.to_string(), "--admin-listen", &admin.to_string()])
        .args(["--internal-listen", "127.0.0.1:0"])
        .args(["--route", &format!("{HOST}={backend}")])
        .env("RUNWAY_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let request = Request::get(format!("http://{admin}/readyz"))
            .body(Full::default())
            .unwrap();
        if let Ok(response) = client().request(request).await
            && response.status() == StatusCode::OK
        {
            break;
        }
        assert!(Instant::now() < deadline, "the activator did not become ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ActivatorProcess { child, proxy }
}

/// Peak resident memory of a process, in KiB.
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_100_mib_upload_streams_through_with_bounded_memory_and_sigterm_exits_0() {
    let backend = backend(|request: Request<hyper::body::Incoming>| async move {
        let mut body = request.into_body();
        let mut received = 0usize;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                received += data.len();
            }
        }
        Response::new(Full::new(Bytes::from(received.to_string())))
    })
    .await;
    let mut activator = spawn_activator(backend).await;
    // Warm up the connection pools and the allocator with a small request first.
    let (status, _, _) = send(&client(), get(activator.proxy, HOST, "/")).await;
    assert_eq!(status, StatusCode::OK);
    let before = vm_hwm_kib(activator.child.id());

    let chunks = futures::stream::iter(0..UPLOAD_BYTES / CHUNK_BYTES)
        .map(|_| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![7u8; CHUNK_BYTES]))));
    let request = Request::post("/upload")
        .header(http::header::HOST, HOST)
        .body(StreamBody::new(chunks))
        .unwrap();
    let stream = TcpStream::connect(activator.proxy).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, UPLOAD_BYTES.to_string());

    let growth_mib = (vm_hwm_kib(activator.child.id()) - before) / 1024;
    eprintln!("peak before {before} KiB, growth {growth_mib} MiB");
    assert!(
        growth_mib < 64,
        "peak memory grew by {growth_mib} MiB for a 100 MiB upload"
    );

    let pid = activator.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(status) = activator.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(exit.code(), Some(0));
}

#[test]
fn log_lines_to_a_pipe_carry_no_colour_codes() {
    use std::io::{BufRead, BufReader};
    // Pod logs are pipes, not terminals: escape codes there are noise.
    let mut child = Command::new(env!("CARGO_BIN_EXE_runway-activator"))
        .args([
            "--standalone",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--internal-listen",
            "127.0.0.1:0",
        ])
        .args(["--route", &format!("{HOST}=127.0.0.1:9")])
        .env("RUNWAY_LOG_LEVEL", "info")
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let line = stderr
        .lines()
        .map_while(Result::ok)
        .find(|line| line.contains("activator serving"));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("the activator logs that it serves");
    assert!(!line.contains('\u{1b}'), "escape codes in {line:?}");
}
