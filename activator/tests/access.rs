//! Authorized Services through the real activator, its kube client talking to a fake API server on loopback that
//! answers TokenReviews and SubjectAccessReviews and counts them: who gets 401, 403, 503 or through, that nothing
//! refused reaches the pod or wakes a revision at zero, and what the caches and the rate limit bound.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::*;
use futures::StreamExt;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use parking_lot::Mutex;
use runway_activator::access::{AccessSettings, ApiClient};
use runway_activator::app::{Activator, Options};
use runway_activator::model::ServiceTraffic;
use runway_activator::revision::{Peers, first_ranked};
use runway_api::Invokers;
use serde_json::{Value, json};

const CALLER: &str = "system:serviceaccount:client:caller";
const STRANGER: &str = "system:serviceaccount:client:stranger";
/// The test Service's URL under the domain, one of the audiences a token for it may have.
const AUDIENCE: &str = "http://hello.default.example.com";
/// Its cluster URL, the other.
const CLUSTER_AUDIENCE: &str = "http://hello.default.svc.cluster.local";

/// A fake API server: tokens it knows (each with its user and audiences), the (user, namespace, service) RBAC lets
/// invoke, and how many reviews it answered.
#[derive(Default)]
struct FakeApi {
    tokens: Mutex<HashMap<String, (String, Vec<String>)>>,
    /// Any token starting with `many-` is the caller's, for every audience: as many distinct valid tokens as needed.
    invokers: Mutex<HashSet<(String, String, String)>>,
    token_reviews: AtomicU32,
    access_reviews: AtomicU32,
    /// Answer every review with 500.
    failing: AtomicBool,
    /// Time taken by every answer.
    delay: Mutex<Duration>,
    /// The last SubjectAccessReview's spec, as the activator sent it.
    last_access_review: Mutex<Value>,
}

impl FakeApi {
    fn token(&self, token: &str, user: &str, audiences: &[&str]) {
        let audiences = audiences.iter().map(|a| (*a).to_owned()).collect();
        self.tokens
            .lock()
            .insert(token.to_owned(), (user.to_owned(), audiences));
    }

    fn allow(&self, user: &str, namespace: &str, service: &str) {
        self.invokers
            .lock()
            .insert((user.to_owned(), namespace.to_owned(), service.to_owned()));
    }

    fn reviews(&self) -> (u32, u32) {
        (self.token_reviews.load(SeqCst), self.access_reviews.load(SeqCst))
    }

    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_owned();
        let body = request.into_body().collect().await.unwrap().to_bytes();
        let review: Value = serde_json::from_slice(&body).unwrap();
        let delay = *self.delay.lock();
        tokio::time::sleep(delay).await;
        let status = match path.as_str() {
            "/apis/authentication.k8s.io/v1/tokenreviews" => {
                self.token_reviews.fetch_add(1, SeqCst);
                self.token_review_status(&review["spec"])
            }
            "/apis/authorization.k8s.io/v1/subjectaccessreviews" => {
                self.access_reviews.fetch_add(1, SeqCst);
                *self.last_access_review.lock() = review["spec"].clone();
                self.access_review_status(&review["spec"])
            }
            other => panic!("unexpected request to {other}"),
        };
        if self.failing.load(SeqCst) {
            let failure = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "etcdserver: request timed out", "reason": "InternalError", "code": 500});
            let mut response = Response::new(Full::new(Bytes::from(failure.to_string())));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return response;
        }
        let mut answer = review;
        answer["status"] = status;
        answer["metadata"] = json!({});
        Response::new(Full::new(Bytes::from(answer.to_string())))
    }

    /// As the API server answers: authenticated only when the token's audiences and the asked ones intersect, and
    /// then with that intersection.
    fn token_review_status(&self, spec: &Value) -> Value {
        let token = spec["token"].as_str().unwrap();
        let asked: Vec<String> = serde_json::from_value(spec["audiences"].clone()).unwrap_or_default();
        let known = if token.starts_with("many-") {
            Some((CALLER.to_owned(), asked.clone()))
        } else {
            self.tokens.lock().get(token).cloned()
        };
        let Some((user, audiences)) = known else {
            return json!({"authenticated": false, "error": "invalid bearer token"});
        };
        let common: Vec<&String> = audiences.iter().filter(|a| asked.contains(a)).collect();
        if common.is_empty() {
            return json!({"authenticated": false, "error": "token audiences are invalid for the target audiences"});
        }
        json!({
            "authenticated": true,
            "audiences": common,
            // As for a bound ServiceAccount token: `extra` names the token itself, and so differs for each.
            "user": {"username": user, "uid": format!("uid-{user}"), "groups": ["system:serviceaccounts"],
                "extra": {"authentication.kubernetes.io/credential-id": [format!("JTI={token}")]}},
        })
    }

    fn access_review_status(&self, spec: &Value) -> Value {
        let attributes = &spec["resourceAttributes"];
        let invoke = attributes["verb"] == "invoke"
            && attributes["group"] == "serving.runway.dev"
            && attributes["resource"] == "services";
        let who = (
            spec["user"].as_str().unwrap_or_default().to_owned(),
            attributes["namespace"].as_str().unwrap_or_default().to_owned(),
            attributes["name"].as_str().unwrap_or_default().to_owned(),
        );
        json!({"allowed": invoke && self.invokers.lock().contains(&who)})
    }
}

/// Serves `api` on loopback (HTTP/1.1, as kube's client speaks to it).
async fn serve_api(api: Arc<FakeApi>) -> SocketAddr {
    backend(move |request| {
        let api = api.clone();
        async move { api.answer(request).await }
    })
    .await
}

/// A kube client for the API server at `addr`.
fn kube_client(addr: SocketAddr) -> ApiClient {
    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    ApiClient::new(kube::Client::try_from(config).unwrap())
}

/// A pod that counts the requests it is sent and answers with the Authorization header it got.
async fn counting_backend(seen: Arc<AtomicU32>) -> SocketAddr {
    backend(move |request: Request<Incoming>| {
        let seen = seen.clone();
        async move {
            seen.fetch_add(1, SeqCst);
            let authorization = request
                .headers()
                .get(AUTHORIZATION)
                .map(|value| value.to_str().unwrap().to_owned())
                .unwrap_or_default();
            Response::new(Full::new(Bytes::from(authorization)))
        }
    })
    .await
}

/// The test Service, Authorized, with its revision's settings and pods.
fn authorized_service(activator: &Activator, pods: &[SocketAddr]) {
    route(activator, 0, Duration::from_secs(30), pods);
    let traffic = ServiceTraffic {
        invokers: Invokers::Authorized,
        access_log: None,
        ..traffic(&[(REVISION, 100)], &[])
    };
    activator.registry.set_service(&key(), Some(traffic));
}

struct Setup {
    activator: Activator,
    api: Arc<FakeApi>,
    /// Requests the pod was sent.
    pod_requests: Arc<AtomicU32>,
}

/// An activator whose API server is `api`, serving the Authorized test Service from one counting pod.
async fn setup_with(settings: AccessSettings, api: Arc<FakeApi>, api_addr: Option<SocketAddr>) -> Setup {
    let mut options: Options = options(IpAddr::from([127, 0, 0, 1]));
    options.access = settings;
    options.api = api_addr.map(kube_client);
    let activator = Activator::start(options).await.unwrap();
    let pod_requests = Arc::new(AtomicU32::new(0));
    authorized_service(&activator, &[counting_backend(pod_requests.clone()).await]);
    Setup {
        activator,
        api,
        pod_requests,
    }
}

async fn setup(settings: AccessSettings) -> Setup {
    let api = Arc::new(FakeApi::default());
    let addr = serve_api(api.clone()).await;
    setup_with(settings, api, Some(addr)).await
}

/// A GET of the test Service with `Authorization: Bearer {token}`.
fn get_with_token(proxy: SocketAddr, token: &str) -> Request<Full<Bytes>> {
    let mut request = get(proxy, HOST, "/");
    request.headers_mut().insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    request
}

async fn metric(activator: &Activator, series: &str) -> f64 {
    metric_value(activator, series)
        .await
        .unwrap_or_else(|| panic!("no series {series} in the activator's metrics"))
}

/// A JWT-shaped token (unsigned: the fake API server does not verify) expiring at `exp`.
fn jwt(exp: u64) -> String {
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = engine.encode(json!({"aud": [AUDIENCE], "exp": exp, "sub": CALLER}).to_string());
    format!("{}.{payload}.c2ln", engine.encode(r#"{"alg":"RS256"}"#))
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn without_a_token_the_caller_is_challenged_and_the_pod_sees_nothing() {
    let setup = setup(AccessSettings::default()).await;
    let (status, headers, body) = send(&client(), get(setup.activator.proxy_addr, HOST, "/")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[WWW_AUTHENTICATE], r#"Bearer realm="runway""#);
    assert_eq!(body, "default/hello requires an Authorization: Bearer token\n");
    // Another scheme is no token either; a Bearer header without one is a bad request.
    let mut basic = get(setup.activator.proxy_addr, HOST, "/");
    basic
        .headers_mut()
        .insert(AUTHORIZATION, HeaderValue::from_static("Basic dXNlcjpwYXNz"));
    let (status, headers, _) = send(&client(), basic).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[WWW_AUTHENTICATE], r#"Bearer realm="runway""#);
    let mut empty = get(setup.activator.proxy_addr, HOST, "/");
    empty
        .headers_mut()
        .insert(AUTHORIZATION, HeaderValue::from_static("Bearer "));
    let (status, headers, _) = send(&client(), empty).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        headers[WWW_AUTHENTICATE],
        r#"Bearer realm="runway", error="invalid_request""#
    );
    assert_eq!(setup.pod_requests.load(SeqCst), 0);
    assert_eq!(setup.api.reviews(), (0, 0), "nothing to review");
}

#[tokio::test]
async fn a_token_for_another_audience_or_unknown_is_invalid() {
    let setup = setup(AccessSettings::default()).await;
    setup
        .api
        .token("other-audience", CALLER, &["http://other.default.example.com"]);
    setup.api.allow(CALLER, "default", "hello");
    for token in ["other-audience", "made-up"] {
        let (status, headers, body) = send(&client(), get_with_token(setup.activator.proxy_addr, token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token}");
        assert_eq!(
            headers[WWW_AUTHENTICATE],
            r#"Bearer realm="runway", error="invalid_token""#
        );
        assert_eq!(body, "the bearer token is not valid for default/hello\n");
    }
    assert_eq!(setup.pod_requests.load(SeqCst), 0);
    assert_eq!(setup.api.reviews(), (2, 0), "an invalid token's user is never reviewed");
}

#[tokio::test]
async fn an_authenticated_caller_without_permission_is_forbidden() {
    let setup = setup(AccessSettings::default()).await;
    setup.api.token("stranger", STRANGER, &[AUDIENCE]);
    setup.api.allow(CALLER, "default", "hello");
    let (status, _, body) = send(&client(), get_with_token(setup.activator.proxy_addr, "stranger")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, format!("{STRANGER} may not invoke default/hello\n"));
    assert_eq!(setup.pod_requests.load(SeqCst), 0);
    assert_eq!(setup.api.reviews(), (1, 1));
}

#[tokio::test]
async fn an_allowed_caller_reaches_the_pod_with_its_authorization_header() {
    let setup = setup(AccessSettings::default()).await;
    // Either URL of the Service may be the token's audience.
    setup.api.token("for-the-url", CALLER, &[AUDIENCE]);
    setup.api.token("for-the-cluster-url", CALLER, &[CLUSTER_AUDIENCE]);
    setup.api.allow(CALLER, "default", "hello");
    for token in ["for-the-url", "for-the-cluster-url"] {
        let (status, _, body) = send(&client(), get_with_token(setup.activator.proxy_addr, token)).await;
        assert_eq!(status, StatusCode::OK, "{token}: {body}");
        assert_eq!(body, format!("Bearer {token}"), "the header reaches the app unchanged");
    }
    assert_eq!(setup.pod_requests.load(SeqCst), 2);
    // The access review asks for the whole user, as the TokenReview named it, to invoke this Service.
    assert_eq!(
        *setup.api.last_access_review.lock(),
        json!({
            "user": CALLER, "uid": format!("uid-{CALLER}"), "groups": ["system:serviceaccounts"],
            "extra": {"authentication.kubernetes.io/credential-id": ["JTI=for-the-url"]},
            "resourceAttributes": {"group": "serving.runway.dev", "resource": "services", "verb": "invoke",
                "namespace": "default", "name": "hello"},
        })
    );
    // Two tokens of one user (their `extra` differs): two TokenReviews, one SubjectAccessReview.
    assert_eq!(setup.api.reviews(), (2, 1));
}

#[tokio::test]
async fn the_internal_entry_point_checks_as_the_external_one_does() {
    let setup = setup(AccessSettings::default()).await;
    setup.api.token("caller", CALLER, &[CLUSTER_AUDIENCE]);
    setup.api.allow(CALLER, "default", "hello");
    let internal = setup.activator.internal_addr;
    let (status, _, _) = send(&client(), get(internal, "hello.default.svc.cluster.local", "/")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let mut request = get(internal, "hello.default.svc.cluster.local", "/");
    request
        .headers_mut()
        .insert(AUTHORIZATION, HeaderValue::from_static("Bearer caller"));
    let (status, _, _) = send(&client(), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(setup.pod_requests.load(SeqCst), 1);
}

#[tokio::test]
async fn a_thousand_requests_with_one_token_cost_one_review_of_each_kind() {
    let setup = setup(AccessSettings::default()).await;
    setup.api.token("caller", CALLER, &[AUDIENCE]);
    setup.api.allow(CALLER, "default", "hello");
    // Slow answers, so that the first requests arrive together and wait for one review.
    *setup.api.delay.lock() = Duration::from_millis(100);
    let client = client();
    let proxy = setup.activator.proxy_addr;
    let statuses: Vec<StatusCode> = futures::stream::iter(0..1_000)
        .map(|_| {
            let client = client.clone();
            async move { send(&client, get_with_token(proxy, "caller")).await.0 }
        })
        .buffer_unordered(100)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
    assert_eq!(setup.api.reviews(), (1, 1));
    assert_eq!(setup.pod_requests.load(SeqCst), 1_000);
    let hits = metric(
        &setup.activator,
        "runway_activator_auth_cache_hits_total{cache=\"token\"}",
    )
    .await;
    assert_eq!(hits, 999.0);
    let authenticated = metric(
        &setup.activator,
        "runway_activator_token_reviews_total{result=\"authenticated\"}",
    )
    .await;
    assert_eq!(authenticated, 1.0);
    assert_eq!(
        metric(
            &setup.activator,
            "runway_activator_access_reviews_total{result=\"allowed\"}"
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn answers_are_reviewed_again_once_their_time_is_up() {
    let settings = AccessSettings {
        token_ttl: Duration::from_secs(1),
        access_ttl: Duration::from_secs(1),
        negative_ttl: Duration::from_secs(1),
        ..AccessSettings::default()
    };
    let setup = setup(settings).await;
    setup.api.token("caller", CALLER, &[AUDIENCE]);
    setup.api.allow(CALLER, "default", "hello");
    let proxy = setup.activator.proxy_addr;
    for token in ["caller", "caller", "made-up", "made-up"] {
        send(&client(), get_with_token(proxy, token)).await;
    }
    assert_eq!(setup.api.reviews(), (2, 1), "within the TTLs, once each");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for token in ["caller", "made-up"] {
        send(&client(), get_with_token(proxy, token)).await;
    }
    assert_eq!(setup.api.reviews(), (4, 2), "after them, again");
}

#[tokio::test]
async fn a_token_is_not_trusted_past_its_expiry() {
    // The TTL is a minute, but the token expires in about a second: its review is reused no longer.
    let setup = setup(AccessSettings::default()).await;
    let token = jwt(unix_now() + 1);
    setup.api.token(&token, CALLER, &[AUDIENCE]);
    setup.api.allow(CALLER, "default", "hello");
    let proxy = setup.activator.proxy_addr;
    let (status, _, _) = send(&client(), get_with_token(proxy, &token)).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, _, _) = send(&client(), get_with_token(proxy, &token)).await;
    assert_eq!(status, StatusCode::OK, "the fake API server still accepts it");
    assert_eq!(setup.api.reviews().0, 2);
    // One that expires in an hour is reused.
    let lasting = jwt(unix_now() + 3_600);
    setup.api.token(&lasting, CALLER, &[AUDIENCE]);
    for _ in 0..3 {
        send(&client(), get_with_token(proxy, &lasting)).await;
    }
    assert_eq!(setup.api.reviews().0, 3);
}

#[tokio::test]
async fn the_caches_stay_within_their_bound() {
    let settings = AccessSettings {
        cache_entries: 50,
        reviews_per_second: 100_000,
        review_burst: 100_000,
        ..AccessSettings::default()
    };
    let setup = setup(settings).await;
    setup.api.allow(CALLER, "default", "hello");
    let client = client();
    let proxy = setup.activator.proxy_addr;
    for n in 0..500 {
        let (status, _, _) = send(&client, get_with_token(proxy, &format!("many-{n}"))).await;
        assert_eq!(status, StatusCode::OK);
        let (tokens, access) = setup.activator.access.cached();
        assert!(tokens <= 60 && access <= 1, "{tokens} tokens, {access} users after {n}");
    }
    assert_eq!(setup.api.reviews(), (500, 1));
    let entries = metric(&setup.activator, "runway_activator_auth_cache_entries{cache=\"token\"}").await;
    assert!((1.0..=60.0).contains(&entries), "{entries}");
}

#[tokio::test]
async fn when_the_api_server_fails_the_request_is_refused_and_the_pod_sees_nothing() {
    let setup = setup(AccessSettings::default()).await;
    setup.api.token("caller", CALLER, &[AUDIENCE]);
    setup.api.allow(CALLER, "default", "hello");
    setup.api.failing.store(true, SeqCst);
    let proxy = setup.activator.proxy_addr;
    let (status, headers, body) = send(&client(), get_with_token(proxy, "caller")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[http::header::RETRY_AFTER], "1");
    assert!(body.starts_with("token review failed: "), "{body}");
    assert!(body.contains("etcdserver: request timed out"), "{body}");
    // An error is not reused: once the API server is back, the next request is reviewed.
    setup.api.failing.store(false, SeqCst);
    let (status, _, _) = send(&client(), get_with_token(proxy, "caller")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(setup.api.reviews(), (2, 1));
    // The access review fails closed too.
    setup.api.token("other", STRANGER, &[AUDIENCE]);
    let before = setup.api.reviews();
    let answer = {
        let api = setup.api.clone();
        // Fail after the TokenReview, for the SubjectAccessReview only.
        let flip = tokio::spawn(async move {
            while api.token_reviews.load(SeqCst) == before.0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            api.failing.store(true, SeqCst);
        });
        *setup.api.delay.lock() = Duration::from_millis(50);
        let answer = send(&client(), get_with_token(proxy, "other")).await;
        flip.await.unwrap();
        answer
    };
    assert_eq!(answer.0, StatusCode::SERVICE_UNAVAILABLE);
    assert!(answer.2.starts_with("access review failed: "), "{}", answer.2);
    assert_eq!(setup.pod_requests.load(SeqCst), 1);
    assert_eq!(
        metric(
            &setup.activator,
            "runway_activator_token_reviews_total{result=\"error\"}"
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn when_the_api_server_is_unreachable_the_request_is_refused() {
    let api = Arc::new(FakeApi::default());
    let setup = setup_with(AccessSettings::default(), api, Some(dead_port().await)).await;
    let (status, _, body) = send(&client(), get_with_token(setup.activator.proxy_addr, "caller")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.starts_with("token review failed: "), "{body}");
    assert_eq!(setup.pod_requests.load(SeqCst), 0);
}

#[tokio::test]
async fn a_hanging_api_server_is_given_up_on_at_the_review_timeout() {
    let settings = AccessSettings {
        review_timeout: Duration::from_millis(200),
        ..AccessSettings::default()
    };
    let setup = setup(settings).await;
    *setup.api.delay.lock() = Duration::from_secs(30);
    let started = Instant::now();
    let (status, _, body) = send(&client(), get_with_token(setup.activator.proxy_addr, "caller")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "token review failed: no answer within 200ms\n");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn without_an_api_server_nobody_invokes_an_authorized_service() {
    let setup = setup_with(AccessSettings::default(), Arc::default(), None).await;
    let (status, _, body) = send(&client(), get_with_token(setup.activator.proxy_addr, "caller")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "no Kubernetes API to review tokens with\n");
    // A Service anyone may invoke is served as ever.
    activator_anyone(&setup.activator);
    let (status, _, _) = send(&client(), get(setup.activator.proxy_addr, HOST, "/")).await;
    assert_eq!(status, StatusCode::OK);
}

fn activator_anyone(activator: &Activator) {
    activator
        .registry
        .set_service(&key(), Some(traffic(&[(REVISION, 100)], &[])));
}

#[tokio::test]
async fn a_flood_of_random_tokens_gets_bounded_reviews_memory_and_503s() {
    const PER_SECOND: u32 = 50;
    const BURST: u32 = 100;
    let settings = AccessSettings {
        cache_entries: 1_000,
        ..AccessSettings::default()
    };
    let setup = setup(settings).await;
    let client = client();
    let proxy = setup.activator.proxy_addr;
    // A caller in the cache before the flood.
    setup.api.token("caller", CALLER, &[AUDIENCE]);
    setup.api.allow(CALLER, "default", "hello");
    for _ in 0..2 {
        let (status, _, _) = send(&client, get_with_token(proxy, "caller")).await;
        assert_eq!(status, StatusCode::OK);
    }
    let before = setup.api.reviews();
    let started = Instant::now();
    let answers: Vec<(StatusCode, String)> = futures::stream::iter(0..10_000)
        .map(|_| {
            let client = client.clone();
            async move {
                let token = format!("{:032x}", fastrand::u128(..));
                let (status, _, body) = send(&client, get_with_token(proxy, &token)).await;
                (status, body)
            }
        })
        .buffer_unordered(200)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let (reviews, access_reviews) = setup.api.reviews();
    let (reviews, access_reviews) = (reviews - before.0, access_reviews - before.1);
    let most = u64::from(BURST) + (elapsed.as_secs_f64() * f64::from(PER_SECOND)).ceil() as u64;
    assert!(
        u64::from(reviews) <= most,
        "{reviews} reviews in {elapsed:?}, at most {most}"
    );
    assert_eq!(access_reviews, 0);
    let unauthorized = answers.iter().filter(|(s, _)| *s == StatusCode::UNAUTHORIZED).count();
    let limited: Vec<_> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert_eq!(unauthorized as u32, reviews, "every reviewed token was refused");
    assert_eq!(unauthorized + limited.len(), 10_000);
    assert!(
        limited.iter().all(|(_, body)| body.starts_with("token reviews ")),
        "{:?}",
        limited.first()
    );
    let (tokens, access) = setup.activator.access.cached();
    eprintln!(
        "{reviews} reviews (at most {most}), {unauthorized} x 401, {} x 503 in {elapsed:?}; {tokens} tokens cached",
        limited.len()
    );
    assert!(tokens <= 1_100 && access == 1, "{tokens} tokens cached");
    assert_eq!(setup.pod_requests.load(SeqCst), 2);
    assert_eq!(
        metric(
            &setup.activator,
            "runway_activator_token_reviews_total{result=\"limited\"}"
        )
        .await,
        limited.len() as f64
    );
    // The caller's token is still cached: served with no review, however spent the rate limit is.
    let (status, _, _) = send(&client, get_with_token(proxy, "caller")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(setup.api.reviews(), (before.0 + reviews, before.1));
}

#[tokio::test]
async fn a_refused_request_does_not_wake_a_revision_at_zero() {
    let setup = setup(AccessSettings::default()).await;
    setup.api.token("caller", CALLER, &[AUDIENCE]);
    setup.api.token("stranger", STRANGER, &[AUDIENCE]);
    setup.api.allow(CALLER, "default", "hello");
    // The revision has no pod: a request let through would poke the autoscaler and wait.
    setup.activator.registry.set_endpoints(&revision(), &[]);
    let mut reports = setup.activator.hub.subscribe().1;
    let proxy = setup.activator.proxy_addr;
    let (no_token, _, _) = send(&client(), get(proxy, HOST, "/")).await;
    let (made_up, _, _) = send(&client(), get_with_token(proxy, "made-up")).await;
    let (stranger, _, _) = send(&client(), get_with_token(proxy, "stranger")).await;
    assert_eq!(
        (no_token, made_up, stranger),
        (
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN
        )
    );
    let pokes = std::iter::from_fn(|| reports.try_recv().ok())
        .filter(|line| line.windows(6).any(|w| w == b"\"poke\""))
        .count();
    assert_eq!(pokes, 0, "no poke");
    let loads = setup.activator.registry.take_loads(tokio::time::Instant::now());
    assert!(loads.is_empty(), "no load to report either: {loads:?}");
    // An allowed caller's request does wake it.
    let waiting = tokio::spawn(send_owned(client(), get_with_token(proxy, "caller")));
    let poke = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let line = reports.recv().await.unwrap();
            if line.windows(6).any(|w| w == b"\"poke\"") {
                return line;
            }
        }
    })
    .await
    .expect("a poke");
    assert!(String::from_utf8_lossy(&poke).contains("\"name\":\"hello\""));
    waiting.abort();
}

async fn send_owned(client: TestClient, request: Request<Full<Bytes>>) -> (StatusCode, http::HeaderMap, String) {
    send(&client, request).await
}

#[tokio::test]
async fn a_peers_request_is_checked_once_and_a_client_cannot_pose_as_a_peer() {
    let api = Arc::new(FakeApi::default());
    let api_addr = serve_api(api.clone()).await;
    api.token("caller", CALLER, &[AUDIENCE]);
    api.allow(CALLER, "default", "hello");
    let (ip_a, ip_b): (IpAddr, IpAddr) = ([127, 0, 0, 1].into(), [127, 0, 0, 2].into());
    let start = |ip| {
        let mut options = options(ip);
        options.api = Some(kube_client(api_addr));
        Activator::start(options)
    };
    let (a, b) = (start(ip_a).await.unwrap(), start(ip_b).await.unwrap());
    a.registry
        .set_peers(Peers::new(ip_a, [a.internal_addr, b.internal_addr]));
    b.registry
        .set_peers(Peers::new(ip_b, [a.internal_addr, b.internal_addr]));
    // cc = 1: the pod's one slot is one activator's; the other forwards to it.
    let pod_requests = Arc::new(AtomicU32::new(0));
    let pod = counting_backend(pod_requests.clone()).await;
    for activator in [&a, &b] {
        route(activator, 1, Duration::from_secs(30), &[pod]);
        let traffic = ServiceTraffic {
            invokers: Invokers::Authorized,
            access_log: None,
            ..traffic(&[(REVISION, 100)], &[])
        };
        activator.registry.set_service(&key(), Some(traffic));
    }
    let owner = first_ranked(pod.ip(), &[ip_a, ip_b]).unwrap();
    let forwarder = if owner == ip_a { &b } else { &a };
    let (status, _, body) = send(&client(), get_with_token(forwarder.proxy_addr, "caller")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "Bearer caller"));
    assert_eq!(api.reviews(), (1, 1), "the owner took the forwarder's word");

    // A client at an address that is no activator's sends the hop header: it is checked like any client.
    let mut connector = HttpConnector::new();
    connector.set_local_address(Some([127, 0, 0, 9].into()));
    let stranger: TestClient = Client::builder(TokioExecutor::new()).build(connector);
    for activator in [&a, &b] {
        let mut forged = get(activator.internal_addr, HOST, "/");
        forged
            .headers_mut()
            .insert("x-runway-hop", HeaderValue::from_static("1"));
        let (status, _, _) = send(&stranger, forged).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(pod_requests.load(SeqCst), 1);
}
