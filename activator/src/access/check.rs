//! The access check of a request to an Authorized Service: its bearer token reviewed (TokenReview), then the user
//! it names (SubjectAccessReview), each answer taken from its cache when one is fresh, and a review made only within
//! the limiter's bounds.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use prometheus_client::metrics::counter::Counter;
use tokio::time::Instant;

use crate::access::bearer::credential;
use crate::access::cache::{Cache, Lookup};
use crate::access::decision::{self, AccessOutcome, Decision, Refusal, TokenOutcome, Unavailable};
use crate::access::expiry::{jwt_expiry, positive_ttl};
use crate::access::identity::Identity;
use crate::access::keys::{access_key, token_key};
use crate::access::limit::Limiter;
use crate::access::review::{ApiClient, Authentication, Reviewer};
use crate::revision::Metrics;

/// How long answers are reused and how many reviews may be made (`--auth-*`).
#[derive(Clone, Debug, PartialEq)]
pub struct AccessSettings {
    /// An authenticated token's review is reused this long, never past the token's expiry.
    pub token_ttl: Duration,
    /// An allowed access review is reused this long.
    pub access_ttl: Duration,
    /// An invalid token's or a denied access's answer is reused this long.
    pub negative_ttl: Duration,
    /// Entries of each cache.
    pub cache_entries: usize,
    pub reviews_per_second: u32,
    pub review_burst: u32,
    pub reviews_in_flight: u32,
    /// Bound on one review; past it the request gets 503.
    pub review_timeout: Duration,
}

impl Default for AccessSettings {
    fn default() -> Self {
        AccessSettings {
            token_ttl: Duration::from_secs(60),
            access_ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(5),
            cache_entries: 10_000,
            reviews_per_second: 50,
            review_burst: 100,
            reviews_in_flight: 50,
            review_timeout: Duration::from_secs(5),
        }
    }
}

/// One activator's access checks, shared by its serving threads.
pub struct AccessCheck {
    /// None without an API server (standalone mode): every check is unavailable.
    reviewer: Option<Reviewer>,
    /// The Services' domain, for their audiences.
    domain: String,
    settings: AccessSettings,
    tokens: Cache<TokenOutcome>,
    access: Cache<AccessOutcome>,
    limiter: Limiter,
    counters: Counters,
}

/// The access checks' series, resolved once.
struct Counters {
    authenticated: Counter,
    unauthenticated: Counter,
    token_error: Counter,
    token_limited: Counter,
    token_hits: Counter,
    allowed: Counter,
    denied: Counter,
    access_error: Counter,
    access_limited: Counter,
    access_hits: Counter,
}

impl AccessCheck {
    pub fn new(settings: AccessSettings, domain: impl Into<String>, api: Option<ApiClient>, metrics: &Metrics) -> Self {
        let (token_hits, token_entries) = metrics.auth_cache("token");
        let (access_hits, access_entries) = metrics.auth_cache("access");
        AccessCheck {
            reviewer: api.map(|api| Reviewer::new(api, settings.review_timeout)),
            domain: domain.into(),
            tokens: Cache::new(settings.cache_entries, token_entries),
            access: Cache::new(settings.cache_entries, access_entries),
            limiter: Limiter::new(
                settings.reviews_per_second,
                settings.review_burst,
                settings.reviews_in_flight,
            ),
            counters: Counters {
                authenticated: metrics.token_reviews("authenticated"),
                unauthenticated: metrics.token_reviews("unauthenticated"),
                token_error: metrics.token_reviews("error"),
                token_limited: metrics.token_reviews("limited"),
                token_hits,
                allowed: metrics.access_reviews("allowed"),
                denied: metrics.access_reviews("denied"),
                access_error: metrics.access_reviews("error"),
                access_limited: metrics.access_reviews("limited"),
                access_hits,
            },
            settings,
        }
    }

    /// Whether the request with `headers` may invoke the Service `namespace/service`.
    pub async fn check(&self, headers: &HeaderMap, namespace: &str, service: &str) -> Decision {
        let token = match decision::presented(credential(headers)) {
            Ok(token) => token,
            Err(refusal) => return Decision::Refused(refusal),
        };
        let Some(reviewer) = &self.reviewer else {
            return Decision::Refused(Refusal::Unavailable(Unavailable::NoApi));
        };
        let since = Instant::now();
        let outcome = self.authenticate(reviewer, token, namespace, service, since).await;
        let identity = match decision::authenticated(outcome) {
            Ok(identity) => identity,
            Err(refusal) => return Decision::Refused(refusal),
        };
        let outcome = self.authorize(reviewer, &identity, namespace, service, since).await;
        decision::authorized(outcome, &identity)
    }

    /// Entries held by the token cache and the access cache.
    pub fn cached(&self) -> (usize, usize) {
        (self.tokens.len(), self.access.len())
    }

    async fn authenticate(
        &self,
        reviewer: &Reviewer,
        token: &str,
        namespace: &str,
        service: &str,
        since: Instant,
    ) -> TokenOutcome {
        let fill = match self.tokens.lookup(&token_key(token, namespace, service), since).await {
            Lookup::Hit(outcome) => {
                self.counters.token_hits.inc();
                return outcome;
            }
            Lookup::Miss(fill) => fill,
        };
        // Refused here, the fill is dropped unfilled: a request waiting for this token tries the limiter itself.
        let _permit = match self.limiter.admit() {
            Ok(permit) => permit,
            Err(limit) => {
                self.counters.token_limited.inc();
                return TokenOutcome::Limited(limit);
            }
        };
        let audiences = runway_api::names::invoke_audiences(service, namespace, &self.domain);
        let (outcome, ttl) = match reviewer.token(token, audiences).await {
            Ok(Authentication::Authenticated(identity)) => {
                self.counters.authenticated.inc();
                let ttl = positive_ttl(self.settings.token_ttl, jwt_expiry(token), unix_now());
                (TokenOutcome::Authenticated(Arc::new(identity)), ttl)
            }
            Ok(Authentication::Unauthenticated) => {
                self.counters.unauthenticated.inc();
                (TokenOutcome::Unauthenticated, self.settings.negative_ttl)
            }
            Err(error) => {
                self.counters.token_error.inc();
                tracing::warn!(%namespace, %service, %error, "token review failed");
                (TokenOutcome::Failed(error.into()), Duration::ZERO)
            }
        };
        fill.fill(outcome.clone(), Instant::now(), ttl);
        outcome
    }

    async fn authorize(
        &self,
        reviewer: &Reviewer,
        identity: &Identity,
        namespace: &str,
        service: &str,
        since: Instant,
    ) -> AccessOutcome {
        let fill = match self
            .access
            .lookup(&access_key(identity.key(), namespace, service), since)
            .await
        {
            Lookup::Hit(outcome) => {
                self.counters.access_hits.inc();
                return outcome;
            }
            Lookup::Miss(fill) => fill,
        };
        let _permit = match self.limiter.admit() {
            Ok(permit) => permit,
            Err(limit) => {
                self.counters.access_limited.inc();
                return AccessOutcome::Limited(limit);
            }
        };
        let (outcome, ttl) = match reviewer.may_invoke(identity, namespace, service).await {
            Ok(true) => {
                self.counters.allowed.inc();
                (AccessOutcome::Allowed, self.settings.access_ttl)
            }
            Ok(false) => {
                self.counters.denied.inc();
                (AccessOutcome::Denied, self.settings.negative_ttl)
            }
            Err(error) => {
                self.counters.access_error.inc();
                tracing::warn!(%namespace, %service, user = %identity.username, %error, "access review failed");
                (AccessOutcome::Failed(error.into()), Duration::ZERO)
            }
        };
        fill.fill(outcome.clone(), Instant::now(), ttl);
        outcome
    }
}

/// Seconds since the Unix epoch, as a token's `exp` counts them.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
