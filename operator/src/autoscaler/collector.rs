//! Keeps one load stream open to every activator pod and feeds what they report into the board.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use futures::{StreamExt, TryStreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, watcher};
use runway_api::RevisionKey;
use runway_api::membership;
use runway_api::stats::{LOAD_STREAM_PATH, LoadReport, ReportKind};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::board::Board;
use crate::metrics::Metrics;

/// A line longer than this is not a load report: drop the stream rather than buffer without bound.
const MAX_LINE: usize = 1 << 20;
const RECONNECT_MIN: Duration = Duration::from_millis(200);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// Where the activators are.
#[derive(Clone, Debug)]
pub(crate) struct ActivatorEndpoints {
    pub(crate) namespace: String,
    pub(crate) service: String,
    pub(crate) admin_port: u16,
}

/// Watches the activators' EndpointSlices and keeps a stream task per address until the scope ends.
pub(crate) async fn run(
    client: kube::Client,
    endpoints: ActivatorEndpoints,
    board: Arc<Mutex<Board>>,
    pokes: mpsc::Sender<RevisionKey>,
    metrics: Arc<Metrics>,
) {
    let slices: Api<EndpointSlice> = Api::namespaced(client, &endpoints.namespace);
    let config = watcher::Config::default().labels(&membership::slices_of(&endpoints.service));
    let http = HttpClient::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut current: HashMap<String, EndpointSlice> = HashMap::new();
    let mut streams: HashMap<String, JoinHandle<()>> = HashMap::new();
    let mut events = watcher(slices, config).default_backoff().boxed();
    loop {
        let event = match events.try_next().await {
            Ok(Some(event)) => event,
            Ok(None) => return,
            Err(e) => {
                warn!(%e, "watching activator endpoints");
                continue;
            }
        };
        apply_event(&mut current, event);
        // Terminating activators included: a draining activator may still hold requests.
        let wanted: BTreeSet<String> = membership::listed_addresses(current.values())
            .into_iter()
            .map(str::to_owned)
            .collect();
        board.lock().expect("board lock").set_known(wanted.clone());
        streams.retain(|address, task| {
            let keep = wanted.contains(address);
            if !keep {
                info!(address, "activator left");
                task.abort();
            }
            keep
        });
        for address in wanted {
            streams.entry(address.clone()).or_insert_with(|| {
                info!(%address, "activator joined");
                let stream = follow(
                    http.clone(),
                    address,
                    endpoints.admin_port,
                    board.clone(),
                    pokes.clone(),
                    metrics.clone(),
                );
                tokio::spawn(stream)
            });
        }
    }
}

/// Keeps the slice set in line with one watch event (slices are few; the whole set is re-read each time).
fn apply_event(current: &mut HashMap<String, EndpointSlice>, event: watcher::Event<EndpointSlice>) {
    let key = |s: &EndpointSlice| s.metadata.name.clone().unwrap_or_default();
    match event {
        watcher::Event::Apply(s) | watcher::Event::InitApply(s) => {
            current.insert(key(&s), s);
        }
        watcher::Event::Delete(s) => {
            current.remove(&key(&s));
        }
        watcher::Event::Init => current.clear(),
        watcher::Event::InitDone => {}
    }
}

/// Reads one activator's load stream forever, reconnecting with backoff.
async fn follow(
    http: HttpClient<HttpConnector, Empty<bytes::Bytes>>,
    address: String,
    port: u16,
    board: Arc<Mutex<Board>>,
    pokes: mpsc::Sender<RevisionKey>,
    metrics: Arc<Metrics>,
) {
    let authority = if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    };
    let uri: http::Uri = format!("http://{authority}{LOAD_STREAM_PATH}")
        .parse()
        .expect("an IP and port form a URI");
    let mut backoff = RECONNECT_MIN;
    loop {
        let connected_at = Instant::now();
        metrics.connected_activators.inc();
        let result = read_stream(&http, &uri, &address, &board, &pokes).await;
        metrics.connected_activators.dec();
        if let Err(e) = result {
            debug!(%address, %e, "load stream ended");
        }
        if connected_at.elapsed() > RECONNECT_MAX {
            backoff = RECONNECT_MIN;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RECONNECT_MAX);
    }
}

async fn read_stream(
    http: &HttpClient<HttpConnector, Empty<bytes::Bytes>>,
    uri: &http::Uri,
    address: &str,
    board: &Mutex<Board>,
    pokes: &mpsc::Sender<RevisionKey>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let request = http::Request::get(uri.clone()).body(Empty::new())?;
    let response = http.request(request).await?;
    if !response.status().is_success() {
        return Err(format!("activator answered {}", response.status()).into());
    }
    let mut body = response.into_body();
    let mut buffer = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            buffer.extend_from_slice(&data);
        }
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line = buffer.split_to(end);
            buffer.advance(1);
            match LoadReport::from_line(&line) {
                Ok(report) => accept(report, address, board, pokes).await,
                Err(e) => warn!(address, %e, "unreadable load report"),
            }
        }
        if buffer.len() > MAX_LINE {
            return Err("load report line too long".into());
        }
    }
    Ok(())
}

async fn accept(report: LoadReport, address: &str, board: &Mutex<Board>, pokes: &mpsc::Sender<RevisionKey>) {
    if report.kind == ReportKind::Poke {
        for load in &report.services {
            // A full channel means pokes are already pending: the scaler will see this revision anyway.
            let _ = pokes.try_send(RevisionKey::new(load.namespace.clone(), load.revision.clone()));
        }
    }
    board
        .lock()
        .expect("board lock")
        .record(address, report, Instant::now());
}
