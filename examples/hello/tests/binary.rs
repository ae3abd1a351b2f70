//! The real binary: environment settings, the machine-readable listening line, SIGTERM handling, client mode.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BIN: &str = env!("CARGO_BIN_EXE_runway-hello");
const TIMEOUT: Duration = Duration::from_secs(10);

/// The server process and the lines it writes, read on a thread.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    fn start(env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(BIN)
            .env_clear()
            .envs(env.iter().copied())
            .env("RUST_LOG", "runway_hello=debug,info")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Server {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a log line containing `needle` and returns it; panics with every line seen on timeout.
    fn wait_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {needle:?}; saw:\n{}", self.seen.join("\n")),
            }
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit; saw:\n{}",
                self.seen.join("\n")
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `key=` in a log line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line
        .find(&format!("{key}="))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        + key.len()
        + 1;
    line[start..].split_whitespace().next().unwrap()
}

/// One HTTP/1.1 GET with a fresh connection; returns the status line and body.
fn http_get(port: u16, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

fn unix_ms_now() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()
}

#[test]
fn logs_listening_instant_serves_and_drains_on_sigterm() {
    let launched = unix_ms_now();
    let mut server = Server::start(&[("PORT", "0"), ("STARTUP_DELAY_MS", "150"), ("HOSTNAME", "bin-pod")]);
    let line = server.wait_line("listening");
    let port: u16 = field(&line, "addr").rsplit(':').next().unwrap().parse().unwrap();
    let unix_ms: u128 = field(&line, "unix_ms").parse().unwrap();
    assert!(
        unix_ms >= launched + 150,
        "listened at {unix_ms}, launched at {launched}: delay not applied"
    );
    assert!(unix_ms <= unix_ms_now());

    assert_eq!(
        http_get(port, "/"),
        ("HTTP/1.1 200 OK".into(), "hello from bin-pod\n".into())
    );

    let slow = thread::spawn(move || http_get(port, "/sleep?ms=400"));
    server.wait_line("uri=/sleep?ms=400");
    server.signal("TERM");
    server.wait_line("SIGTERM");
    let (status, body) = slow.join().unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body, "hello from bin-pod after 400 ms\n");
    server.wait_line("shutdown complete");
    assert!(server.wait_exit().success());
}

#[test]
fn client_mode_prints_the_body_and_fails_on_errors() {
    let mut server = Server::start(&[("PORT", "0"), ("HOSTNAME", "client-test")]);
    let line = server.wait_line("listening");
    let port = field(&line, "addr").rsplit(':').next().unwrap().to_owned();

    let ok = Command::new(BIN)
        .args(["get", &format!("http://127.0.0.1:{port}/")])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{ok:?}");
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "hello from client-test\n");

    let missing = Command::new(BIN)
        .args(["get", &format!("http://127.0.0.1:{port}/nope")])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"), "{missing:?}");
}

/// A server that answers each of `statuses` in turn, one connection each, with the request's Host header as the
/// body; returns the Host headers it saw.
fn answer_in_turn(listener: TcpListener, statuses: &'static [&'static str]) -> thread::JoinHandle<Vec<String>> {
    thread::spawn(move || {
        let mut hosts = Vec::new();
        for status in statuses {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut host = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim_end().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("host")
                {
                    host = value.trim().to_owned();
                }
            }
            let body = format!("served {host}\n");
            let mut stream = stream;
            write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            hosts.push(host);
        }
        hosts
    })
}

#[test]
fn client_mode_sends_the_host_and_retries_until_a_2xx() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = answer_in_turn(listener, &["404 Not Found", "503 Service Unavailable", "200 OK"]);
    let out = Command::new(BIN)
        .args([
            "get",
            &format!("http://127.0.0.1:{port}/"),
            "--host",
            "svc.ns.example.com",
        ])
        .args(["--retry-for", "30s", "--timeout=5s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "served svc.ns.example.com\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("attempt 1: 404 Not Found; trying again") && stderr.contains("attempt 2: 503"),
        "{stderr}"
    );
    assert_eq!(server.join().unwrap(), vec!["svc.ns.example.com"; 3]);
}

#[test]
fn client_mode_gives_up_when_the_retry_time_is_over() {
    // A port nobody listens on: every attempt is refused.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = Instant::now();
    let out = Command::new(BIN)
        .args(["get", &format!("http://127.0.0.1:{port}/"), "--retry-for", "2s"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < TIMEOUT,
        "gave up after {elapsed:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("attempt 1: GET"), "{stderr}");

    let usage = Command::new(BIN)
        .args(["get", "http://a/", "--retries", "3"])
        .output()
        .unwrap();
    assert!(!usage.status.success());
    assert!(
        String::from_utf8_lossy(&usage.stderr).contains("unknown option --retries"),
        "{usage:?}"
    );
}

#[test]
fn bad_settings_fail_at_start() {
    let out = Command::new(BIN).env_clear().env("PORT", "http").output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("PORT=\"http\" is not valid"),
        "{out:?}"
    );
}
