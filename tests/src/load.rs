//! Requests through the activator, one at a time or as steady load from concurrent clients.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;

/// Where requests go: the activator's address and the Host of one Service.
#[derive(Clone, Debug)]
pub struct Target {
    pub address: SocketAddr,
    pub host: String,
}

/// What one request got.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// None when no response arrived (connection error or client timeout).
    pub status: Option<StatusCode>,
    pub error: Option<String>,
    /// From sending to the response head.
    pub time_to_headers: Duration,
    pub cold_start: bool,
    /// The revision that answered: the `x-runway-revision` response header.
    pub revision: Option<String>,
    pub body: String,
    /// When the request was sent, relative to the start of the run.
    pub sent_at: Duration,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.status == Some(StatusCode::OK)
    }

    /// A short label: the status code, or the error.
    pub fn label(&self) -> String {
        match (&self.status, &self.error) {
            (Some(status), _) => status.as_u16().to_string(),
            (None, Some(error)) => format!("error: {error}"),
            (None, None) => "nothing".to_owned(),
        }
    }
}

/// The client type of [`client`].
pub type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// A keep-alive HTTP/1.1 client, as a real client would use.
pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build_http()
}

/// Sends one GET of `path` and reads the whole response within `timeout`.
pub async fn get(
    client: &Client<HttpConnector, Empty<Bytes>>,
    target: &Target,
    path: &str,
    timeout: Duration,
) -> Outcome {
    let uri = format!("http://{}{path}", target.address);
    let request = Request::get(uri)
        .header(http::header::HOST, &target.host)
        .body(Empty::new())
        .expect("a valid request");
    outcome(client.request(request), timeout).await
}

/// One HTTP/2 prior-knowledge connection to an activator, as `curl --http2-prior-knowledge` opens: requests are
/// streams of it, and their `:authority` is the Service's host (HTTP/2 carries no separate Host).
#[derive(Clone)]
pub struct H2c {
    sender: hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    host: String,
}

impl H2c {
    pub async fn connect(target: &Target) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(target.address).await?;
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(H2c {
            sender,
            host: target.host.clone(),
        })
    }

    /// Whether the connection still takes new streams: false once the server sent GOAWAY or closed it.
    pub async fn is_open(&self) -> bool {
        self.sender.clone().ready().await.is_ok()
    }

    /// Sends one GET of `path` and reads the whole response within `timeout`.
    pub async fn get(&self, path: &str, timeout: Duration) -> Outcome {
        let request = Request::get(format!("http://{}{path}", self.host))
            .body(Empty::new())
            .expect("a valid request");
        let mut sender = self.sender.clone();
        outcome(async move { sender.send_request(request).await }, timeout).await
    }
}

/// The outcome of one exchange: its response read whole within `timeout`.
async fn outcome<E: std::fmt::Debug>(
    response: impl Future<Output = Result<http::Response<hyper::body::Incoming>, E>>,
    timeout: Duration,
) -> Outcome {
    let started = Instant::now();
    let exchange = async {
        let response = response.await.map_err(|e| format!("{e:?}"))?;
        let time_to_headers = started.elapsed();
        let cold_start = response.headers().contains_key(runway_api::names::COLD_START_HEADER);
        let revision = response
            .headers()
            .get(runway_api::names::REVISION_HEADER)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{e}"))?
            .to_bytes();
        Ok::<_, String>(Outcome {
            status: Some(status),
            error: None,
            time_to_headers,
            cold_start,
            revision,
            body: String::from_utf8_lossy(&body).into_owned(),
            sent_at: Duration::ZERO,
        })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(error)) => failed(error, started),
        Err(_) => failed(format!("no response within {timeout:?}"), started),
    }
}

fn failed(error: String, started: Instant) -> Outcome {
    Outcome {
        status: None,
        error: Some(error),
        time_to_headers: started.elapsed(),
        cold_start: false,
        revision: None,
        body: String::new(),
        sent_at: Duration::ZERO,
    }
}

/// Sends `count` requests at once, each on its own connection, and returns them in order of sending.
pub async fn burst(target: &Target, path: &str, count: usize, timeout: Duration) -> Vec<Outcome> {
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let target = target.clone();
            let path = path.to_owned();
            tokio::spawn(async move { get(&client(), &target, &path, timeout).await })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(count);
    for task in tasks {
        outcomes.push(task.await.expect("a request task panicked"));
    }
    outcomes
}

/// Steady load: `clients` concurrent clients, each sending `path` again as soon as its previous request finished,
/// until stopped. Dropping it stops the clients too.
pub struct Load {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Outcome>>>,
    origin: Instant,
}

impl Load {
    pub fn start(target: &Target, path: &str, clients: usize, timeout: Duration) -> Load {
        let (stop, stopped) = watch::channel(false);
        let origin = Instant::now();
        let path: Arc<str> = Arc::from(path);
        let tasks = (0..clients)
            .map(|_| {
                let (target, path, stopped) = (target.clone(), path.clone(), stopped.clone());
                tokio::spawn(async move {
                    let client = client();
                    let mut outcomes = vec![];
                    while !*stopped.borrow() {
                        let sent_at = origin.elapsed();
                        let mut outcome = get(&client, &target, &path, timeout).await;
                        outcome.sent_at = sent_at;
                        outcomes.push(outcome);
                    }
                    outcomes
                })
            })
            .collect();
        Load { stop, tasks, origin }
    }

    /// Time since the load started: the clock of [`Outcome::sent_at`].
    pub fn elapsed(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Stops the clients after their current request and returns every outcome.
    pub async fn finish(self) -> Vec<Outcome> {
        self.stop.send_replace(true);
        let mut all = vec![];
        for task in self.tasks {
            all.extend(task.await.expect("a load client panicked"));
        }
        all.sort_by_key(|o| o.sent_at);
        all
    }
}

/// How many outcomes had each label, e.g. {"200": 950, "503": 2}.
pub fn tally(outcomes: &[Outcome]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for outcome in outcomes {
        *counts.entry(outcome.label()).or_insert(0) += 1;
    }
    counts
}

/// How many outcomes each revision answered (by the `x-runway-revision` header; "none" when it was missing), e.g.
/// {"hello-00001": 900, "hello-00002": 100}.
pub fn by_revision(outcomes: &[Outcome]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for outcome in outcomes {
        let revision = outcome.revision.clone().unwrap_or_else(|| "none".to_owned());
        *counts.entry(revision).or_insert(0) += 1;
    }
    counts
}

/// Sends `count` requests one after the other on one keep-alive connection, as one client would.
pub async fn sequential(target: &Target, path: &str, count: usize, timeout: Duration) -> Vec<Outcome> {
    let client = client();
    let origin = Instant::now();
    let mut outcomes = Vec::with_capacity(count);
    for _ in 0..count {
        let sent_at = origin.elapsed();
        let mut outcome = get(&client, target, path, timeout).await;
        outcome.sent_at = sent_at;
        outcomes.push(outcome);
    }
    outcomes
}

/// The value below which `fraction` of the durations fall.
pub fn percentile(durations: &mut [Duration], fraction: f64) -> Duration {
    if durations.is_empty() {
        return Duration::ZERO;
    }
    durations.sort();
    let index = ((durations.len() as f64 * fraction).ceil() as usize).clamp(1, durations.len()) - 1;
    durations[index]
}
