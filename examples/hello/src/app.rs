//! The request handler: routes, the sleep endpoint and overlap detection.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use tokio::time::Instant;

use crate::websocket;

/// The longest `/sleep` accepted, so a typo cannot park a request for days.
pub const MAX_SLEEP: Duration = Duration::from_secs(600);

/// The application state shared by all connections. Cheap to clone.
#[derive(Clone, Debug)]
pub struct App {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pod_name: String,
    reject_overlap: bool,
    fail_status: Option<StatusCode>,
    /// Until then every request gets 503 "warming up".
    warm_at: Option<Instant>,
    /// Requests of `/` and `/sleep` being handled now.
    in_flight: AtomicUsize,
    /// Bumped by every request that found another in flight; a request that sees it change while it runs was
    /// overlapped by a newcomer.
    overlaps: AtomicU64,
    /// Counted by the background ticker every `TICK` while the process runs (`GET /ticks`): a frozen pod's stays
    /// still.
    ticks: AtomicU64,
}

/// The background ticker's period.
pub const TICK: Duration = Duration::from_millis(10);

impl App {
    pub fn new(pod_name: impl Into<String>, reject_overlap: bool) -> Self {
        Self::failing_with(pod_name, reject_overlap, None)
    }

    /// An app whose `/` and `/sleep` answer `fail_status` when it is set.
    pub fn failing_with(pod_name: impl Into<String>, reject_overlap: bool, fail_status: Option<StatusCode>) -> Self {
        App {
            inner: Arc::new(Inner {
                pod_name: pod_name.into(),
                reject_overlap,
                fail_status,
                warm_at: None,
                in_flight: AtomicUsize::new(0),
                overlaps: AtomicU64::new(0),
                ticks: AtomicU64::new(0),
            }),
        }
    }

    /// The same app, answering every request 503 "warming up" for `warmup` from now.
    pub fn warming_for(self, warmup: Duration) -> Self {
        let inner = Arc::try_unwrap(self.inner).expect("set before the app is shared");
        App {
            inner: Arc::new(Inner {
                warm_at: (!warmup.is_zero()).then(|| Instant::now() + warmup),
                ..inner
            }),
        }
    }

    /// Counts a tick every `TICK` for as long as the process runs. Ticks missed while it did not run (frozen) are
    /// skipped, not made up, so the count measures running time.
    pub fn start_ticker(&self) {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(TICK);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                interval.tick().await;
                inner.ticks.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    /// The ticker's count so far.
    pub fn ticks(&self) -> u64 {
        self.inner.ticks.load(Ordering::Relaxed)
    }

    /// How many tracked requests (`/` and `/sleep`) are being handled right now.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::SeqCst)
    }

    /// How many requests so far found another one in flight.
    pub fn overlaps(&self) -> u64 {
        self.inner.overlaps.load(Ordering::SeqCst)
    }

    /// Answers one request. The request body is never read.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>> {
        tracing::debug!(method = %req.method(), uri = %req.uri(), "request");
        if self.inner.warm_at.is_some_and(|at| Instant::now() < at) {
            return text(StatusCode::SERVICE_UNAVAILABLE, "warming up\n".into());
        }
        match (req.method(), req.uri().path()) {
            // Probes stay out of the overlap accounting: the kubelet sends them besides any traffic.
            (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n".into()),
            (&Method::GET, "/ticks") => text(StatusCode::OK, format!("{}\n", self.ticks())),
            (&Method::GET, "/") => self.tracked(Duration::ZERO).await,
            (&Method::GET, "/sleep") => match sleep_millis(req.uri().query()) {
                Ok(ms) => self.tracked(ms).await,
                Err(msg) => text(StatusCode::BAD_REQUEST, msg),
            },
            // Not tracked: a socket lives for as long as its client wants, which is no overlap of requests.
            (&Method::GET, "/ws") => websocket::accept(req),
            (_, "/" | "/sleep" | "/healthz" | "/ticks" | "/ws") => {
                text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into())
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
        }
    }

    async fn tracked(&self, hold: Duration) -> Response<Full<Bytes>> {
        let entry = InFlight::enter(&self.inner);
        if self.inner.reject_overlap && entry.others > 0 {
            self.inner.overlaps.fetch_add(1, Ordering::SeqCst);
            let msg = format!("overlap: {} other request(s) in flight\n", entry.others);
            return text(StatusCode::INTERNAL_SERVER_ERROR, msg);
        }
        if !hold.is_zero() {
            tokio::time::sleep(hold).await;
        }
        if self.inner.reject_overlap && entry.overlapped() {
            let msg = "overlap: another request arrived while this one was in flight\n".to_owned();
            return text(StatusCode::INTERNAL_SERVER_ERROR, msg);
        }
        if let Some(status) = self.inner.fail_status {
            return text(
                status,
                format!("{} failing on purpose (FAIL_STATUS)\n", self.inner.pod_name),
            );
        }
        let msg = if hold.is_zero() {
            format!("hello from {}\n", self.inner.pod_name)
        } else {
            format!("hello from {} after {} ms\n", self.inner.pod_name, hold.as_millis())
        };
        text(StatusCode::OK, msg)
    }
}

/// Counts a request as in flight for as long as it lives, also when its connection drops mid-way.
struct InFlight<'a> {
    inner: &'a Inner,
    others: usize,
    overlaps_at_start: u64,
}

impl<'a> InFlight<'a> {
    fn enter(inner: &'a Inner) -> Self {
        // Read the overlap counter before counting ourselves in: a newcomer that sees us bumps it afterwards.
        let overlaps_at_start = inner.overlaps.load(Ordering::SeqCst);
        let others = inner.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight {
            inner,
            others,
            overlaps_at_start,
        }
    }

    fn overlapped(&self) -> bool {
        self.inner.overlaps.load(Ordering::SeqCst) != self.overlaps_at_start
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.inner.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Parses `ms=N` from the query string of `/sleep`.
fn sleep_millis(query: Option<&str>) -> Result<Duration, String> {
    let value = query
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("ms="))
        .ok_or_else(|| "missing ms: use /sleep?ms=N\n".to_owned())?;
    let ms: u64 = value
        .parse()
        .map_err(|_| format!("ms={value:?} is not a number of milliseconds\n"))?;
    let hold = Duration::from_millis(ms);
    if hold > MAX_SLEEP {
        return Err(format!("ms={ms} is more than {} ms\n", MAX_SLEEP.as_millis()));
    }
    Ok(hold)
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn get(app: &App, uri: &str) -> (StatusCode, String) {
        let response = app.handle(Request::get(uri).body(()).unwrap()).await;
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn routes() {
        let app = App::new("pod-1", false);
        assert_eq!(get(&app, "/").await, (StatusCode::OK, "hello from pod-1\n".into()));
        assert_eq!(get(&app, "/healthz").await.0, StatusCode::OK);
        assert_eq!(get(&app, "/nope").await.0, StatusCode::NOT_FOUND);
        let post = app.handle(Request::post("/").body(()).unwrap()).await;
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test(start_paused = true)]
    async fn the_ticker_counts_while_the_process_runs() {
        let app = App::new("p", false);
        assert_eq!(get(&app, "/ticks").await, (StatusCode::OK, "0\n".into()));
        app.start_ticker();
        tokio::time::sleep(TICK * 10).await;
        let ticks = app.ticks();
        assert!((10..=11).contains(&ticks), "{ticks} ticks in ten periods");
        assert_eq!(get(&app, "/ticks").await.1, format!("{ticks}\n"));
    }

    #[tokio::test]
    async fn a_fail_status_answers_every_tracked_path() {
        let app = App::failing_with("p", false, Some(StatusCode::INTERNAL_SERVER_ERROR));
        assert_eq!(get(&app, "/").await.0, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(get(&app, "/sleep?ms=1").await.0, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(get(&app, "/healthz").await.0, StatusCode::OK, "probes still pass");
    }

    #[tokio::test(start_paused = true)]
    async fn a_warming_app_answers_503_everywhere_until_warm() {
        let app = App::new("p", false).warming_for(Duration::from_secs(4));
        assert_eq!(
            get(&app, "/").await,
            (StatusCode::SERVICE_UNAVAILABLE, "warming up\n".into())
        );
        assert_eq!(get(&app, "/healthz").await.0, StatusCode::SERVICE_UNAVAILABLE);
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(get(&app, "/").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn sleep_parameter_is_checked() {
        let app = App::new("p", false);
        assert_eq!(get(&app, "/sleep").await.0, StatusCode::BAD_REQUEST);
        assert_eq!(get(&app, "/sleep?ms=abc").await.0, StatusCode::BAD_REQUEST);
        assert_eq!(get(&app, "/sleep?ms=600001").await.0, StatusCode::BAD_REQUEST);
        assert_eq!(
            get(&app, "/sleep?x=1&ms=1").await,
            (StatusCode::OK, "hello from p after 1 ms\n".into())
        );
        assert_eq!(app.in_flight(), 0);
    }

    #[test]
    fn in_flight_guard_counts_and_detects_overlap() {
        let app = App::new("p", true);
        let first = InFlight::enter(&app.inner);
        assert_eq!(first.others, 0);
        let second = InFlight::enter(&app.inner);
        assert_eq!(second.others, 1);
        app.inner.overlaps.fetch_add(1, Ordering::SeqCst);
        assert!(first.overlapped());
        drop(second);
        drop(first);
        assert_eq!(app.in_flight(), 0);
        let third = InFlight::enter(&app.inner);
        assert!(!third.overlapped());
    }
}
