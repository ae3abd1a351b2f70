//! The access log: one line per request, on stdout (the activator's own logs go to stderr), as JSON or as a line a
//! person reads, in the format of `--log-format`. Lines are written by a thread of their own from a bounded queue, so
//! a slow stdout costs requests nothing: past the bound lines are dropped and counted.

use std::fmt::Write as _;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::time::{Duration, SystemTime};

use http::{HeaderValue, Method};
use prometheus_client::metrics::counter::Counter;
use runway_api::logging::LogFormat;
use serde::Serialize;

use crate::model::{AccessLogShare, Origin, RevisionId};
use crate::route::Entry;

/// Lines waiting for the writer before new ones are dropped: with [`BATCH_INTERVAL`], over 150,000 lines a second.
const QUEUE: usize = 4096;

/// How often a busy writer takes the lines queued.
const BATCH_INTERVAL: Duration = Duration::from_millis(25);

/// Whether the request came from its client, or from a peer activator that took it from its client (and logs it
/// too: count `via: client` lines to count requests).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    Client,
    Peer,
}

impl From<Origin> for Via {
    fn from(origin: Origin) -> Self {
        match origin {
            Origin::Client => Via::Client,
            Origin::Peer => Via::Peer,
        }
    }
}

/// What is logged of one request.
#[derive(Clone, Debug)]
pub struct AccessRecord {
    /// When it arrived.
    pub time: SystemTime,
    pub entry: Entry,
    pub host: String,
    /// The revision that answered; `None` when the host led to none.
    pub revision: Option<RevisionId>,
    /// The pod (or the peer activator) the request was sent to, if any.
    pub backend: Option<SocketAddr>,
    pub via: Via,
    pub method: Method,
    /// Without the query, which may carry secrets.
    pub path: String,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// From arrival to the end of the response body (or the client leaving).
    pub duration: Duration,
    /// Time spent waiting for a slot, if it waited.
    pub queue_wait: Option<Duration>,
    pub cold_start: bool,
    pub client: IpAddr,
    pub user_agent: Option<HeaderValue>,
    pub request_id: HeaderValue,
    pub trace_id: Option<String>,
}

/// The JSON form: flat, snake_case, durations in milliseconds.
#[derive(Serialize)]
struct JsonLine<'a> {
    time: String,
    entry: &'static str,
    host: &'a str,
    namespace: Option<&'a str>,
    service: Option<&'a str>,
    revision: Option<&'a str>,
    pod: Option<String>,
    via: Via,
    method: &'a str,
    path: &'a str,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    duration_ms: f64,
    queue_ms: Option<f64>,
    cold_start: bool,
    client: String,
    user_agent: Option<&'a str>,
    request_id: &'a str,
    trace_id: Option<&'a str>,
}

fn millis(duration: Duration) -> f64 {
    // Microsecond precision is enough, and keeps lines short.
    (duration.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

fn entry_name(entry: Entry) -> &'static str {
    match entry {
        Entry::External => "external",
        Entry::Internal => "internal",
    }
}

impl AccessRecord {
    fn time_text(&self) -> String {
        humantime::format_rfc3339_millis(self.time).to_string()
    }

    fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_ref().and_then(|ua| ua.to_str().ok())
    }

    /// One JSON object, without the newline.
    pub fn json_line(&self) -> String {
        let line = JsonLine {
            time: self.time_text(),
            entry: entry_name(self.entry),
            host: &self.host,
            namespace: self.revision.as_ref().map(|r| r.key.namespace.as_str()),
            service: self.revision.as_ref().map(|r| r.service.as_str()),
            revision: self.revision.as_ref().map(|r| r.key.name.as_str()),
            pod: self.backend.map(|addr| addr.to_string()),
            via: self.via,
            method: self.method.as_str(),
            path: &self.path,
            status: self.status,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            duration_ms: millis(self.duration),
            queue_ms: self.queue_wait.map(millis),
            cold_start: self.cold_start,
            client: self.client.to_string(),
            user_agent: self.user_agent(),
            request_id: self.request_id.to_str().unwrap_or_default(),
            trace_id: self.trace_id.as_deref(),
        };
        serde_json::to_string(&line).expect("a flat struct of strings and numbers serializes")
    }

    /// One line for a person: the request first, then its timing, then who sent it. Absent values are `-`.
    pub fn text_line(&self) -> String {
        let mut line = String::with_capacity(256);
        let revision = self
            .revision
            .as_ref()
            .map_or_else(|| "-".to_owned(), |r| format!("{}/{}", r.key.namespace, r.key.name));
        let pod = self.backend.map_or_else(|| "-".to_owned(), |addr| addr.to_string());
        let _ = write!(
            line,
            "{} {} {} {} {} \"{} {}\" {} in={} out={} {:.1}ms",
            self.time_text(),
            entry_name(self.entry),
            self.host,
            revision,
            pod,
            self.method,
            self.path,
            self.status,
            self.bytes_in,
            self.bytes_out,
            millis(self.duration),
        );
        if let Some(wait) = self.queue_wait {
            let _ = write!(line, " queue={:.1}ms", millis(wait));
        }
        if self.cold_start {
            line.push_str(" cold-start");
        }
        if self.via == Via::Peer {
            line.push_str(" via=peer");
        }
        let _ = write!(
            line,
            " client={} ua={:?} id={} trace={}",
            self.client,
            self.user_agent().unwrap_or("-"),
            self.request_id.to_str().unwrap_or("-"),
            self.trace_id.as_deref().unwrap_or("-"),
        );
        line
    }
}

/// The access log's queue and its default share.
pub struct AccessLog {
    lines: SyncSender<AccessRecord>,
    default: AccessLogShare,
    dropped: Counter,
}

impl AccessLog {
    /// Starts the writer thread on `out`.
    pub fn start(
        format: LogFormat,
        default: AccessLogShare,
        dropped: Counter,
        out: impl Write + Send + 'static,
    ) -> Self {
        let (lines, queue) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(&queue, format, out))
            .expect("a thread starts");
        AccessLog {
            lines,
            default,
            dropped,
        }
    }

    /// Whether to record a request for a Service with `share` (its own, or the default when it has none).
    pub fn picks(&self, share: Option<AccessLogShare>) -> bool {
        share.unwrap_or(self.default).picks()
    }

    /// Queues the line of one request; drops it (counted) when the writer is behind.
    pub fn record(&self, record: AccessRecord) {
        match self.lines.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.inc();
            }
            // Only after the writer failed (stdout closed): nothing more can be written.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// Writes the lines queued. Idle, it waits for a line; busy, it takes what came every [`BATCH_INTERVAL`] without being
/// woken for each line, and writes it at once: a proxy thread pays no wake-up and no write per request.
fn write_lines(queue: &Receiver<AccessRecord>, format: LogFormat, out: impl Write) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let write = |record: AccessRecord, out: &mut std::io::BufWriter<_>| {
        let line = match format {
            LogFormat::Json => record.json_line(),
            LogFormat::Text => record.text_line(),
        };
        writeln!(out, "{line}")
    };
    while let Ok(first) = queue.recv() {
        if write(first, &mut out).is_err() {
            return;
        }
        loop {
            std::thread::sleep(BATCH_INTERVAL);
            let mut taken = 0;
            loop {
                match queue.try_recv() {
                    Ok(record) => {
                        taken += 1;
                        if write(record, &mut out).is_err() {
                            return;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        let _ = out.flush();
                        return;
                    }
                }
            }
            if out.flush().is_err() {
                return;
            }
            if taken == 0 {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AccessRecord {
        AccessRecord {
            time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_000_000_123),
            entry: Entry::External,
            host: "hello.default.example.com".into(),
            revision: Some(RevisionId::new("default", "hello", "hello-00001")),
            backend: Some("10.244.0.7:8080".parse().unwrap()),
            via: Via::Client,
            method: Method::GET,
            path: "/greet".into(),
            status: 200,
            bytes_in: 0,
            bytes_out: 13,
            duration: Duration::from_micros(1_034_250),
            queue_wait: Some(Duration::from_micros(1_020_125)),
            cold_start: true,
            client: "203.0.113.7".parse().unwrap(),
            user_agent: Some(HeaderValue::from_static("curl/8.5.0")),
            request_id: HeaderValue::from_static("0af7651916cd43dd8448eb211c80319c"),
            trace_id: None,
        }
    }

    #[test]
    fn a_json_line_has_every_field() {
        let line: serde_json::Value = serde_json::from_str(&record().json_line()).unwrap();
        assert_eq!(
            line,
            serde_json::json!({
                "time": "2026-11-30T00:53:20.123Z", "entry": "external", "host": "hello.default.example.com",
                "namespace": "default", "service": "hello", "revision": "hello-00001", "pod": "10.244.0.7:8080",
                "via": "client", "method": "GET", "path": "/greet", "status": 200, "bytes_in": 0, "bytes_out": 13,
                "duration_ms": 1034.25, "queue_ms": 1020.125, "cold_start": true, "client": "203.0.113.7",
                "user_agent": "curl/8.5.0", "request_id": "0af7651916cd43dd8448eb211c80319c", "trace_id": null
            })
        );
    }

    #[test]
    fn a_text_line_reads_left_to_right() {
        assert_eq!(
            record().text_line(),
            "2026-11-30T00:53:20.123Z external hello.default.example.com default/hello-00001 10.244.0.7:8080 \
             \"GET /greet\" 200 in=0 out=13 1034.2ms queue=1020.1ms cold-start client=203.0.113.7 ua=\"curl/8.5.0\" \
             id=0af7651916cd43dd8448eb211c80319c trace=-"
        );
        let unrouted = AccessRecord {
            revision: None,
            backend: None,
            queue_wait: None,
            cold_start: false,
            status: 404,
            ..record()
        };
        assert!(
            unrouted.text_line().contains(" - - \"GET /greet\" 404 "),
            "{}",
            unrouted.text_line()
        );
    }

    #[test]
    fn lines_past_the_queue_are_dropped_and_counted() {
        /// A writer that blocks until the test ends, so the queue fills.
        struct Stuck(std::sync::mpsc::Receiver<()>);
        impl Write for Stuck {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let _ = self.0.recv();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let (_release, stuck) = std::sync::mpsc::channel();
        let dropped = Counter::default();
        let log = AccessLog::start(LogFormat::Json, AccessLogShare::ALL, dropped.clone(), Stuck(stuck));
        // The writer takes at most one batch before it is stuck (its 64 KiB buffer fills, about 140 lines, or it
        // is stuck at its first flush): more than that plus the queue must be dropped.
        for _ in 0..QUEUE + 1000 {
            log.record(record());
        }
        assert!(dropped.get() >= 500, "dropped {}", dropped.get());
    }
}
