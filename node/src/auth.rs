//! Who may call the API: a bearer token that a TokenReview (for the agent's audience) finds valid, of a user in
//! `--allowed-client`. Reviews are cached by the token's SHA-256 for at most a minute, never past the token's `exp`,
//! and renewed in the background in their last quarter, so that a caller that keeps calling (the activator, before
//! a thaw) never waits for the API server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use kube::api::{Api, PostParams};
use tokio::time::Instant;
use tracing::warn;

/// How long an authenticated token's review is reused at most.
const AUTHENTICATED_TTL: Duration = Duration::from_secs(60);
/// How long a refused token's review is reused: long enough to spare the API server a retry loop.
const UNAUTHENTICATED_TTL: Duration = Duration::from_secs(5);
/// Reviews cached at once; the agent has a handful of callers, so this only bounds a flood of made-up tokens.
const CACHE_ENTRIES: usize = 1024;
/// Bound on one review.
const REVIEW_TIMEOUT: Duration = Duration::from_secs(5);

/// What a TokenReview said of a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Review {
    Authenticated {
        username: String,
    },
    /// Invalid, expired, or not for the agent's audience.
    Unauthenticated,
}

/// The answer to a request's credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// 401: no token, or one the API server does not accept.
    Unauthenticated,
    /// 403: a valid token of a user not in `--allowed-client`.
    Forbidden,
}

/// Whether the reviewed caller may use the API.
pub fn decide(review: &Review, allowed: &[String]) -> Decision {
    match review {
        Review::Authenticated { username } if allowed.iter().any(|a| a == username) => Decision::Allowed,
        Review::Authenticated { .. } => Decision::Forbidden,
        Review::Unauthenticated => Decision::Unauthenticated,
    }
}

/// Reads a TokenReview's status. An API server that does not echo the audiences is trusted to have checked the one
/// asked for; one that echoes others has not authenticated the token for the agent.
pub fn review_of(status: Option<TokenReviewStatus>, audience: &str) -> Review {
    let Some(status) = status else {
        return Review::Unauthenticated;
    };
    let for_us = status
        .audiences
        .as_ref()
        .is_none_or(|audiences| audiences.iter().any(|a| a == audience));
    match (status.authenticated, status.user.and_then(|user| user.username), for_us) {
        (Some(true), Some(username), true) => Review::Authenticated { username },
        _ => Review::Unauthenticated,
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The unverified `exp` claim of a JWT, in seconds since the epoch, only ever used to shorten a review's reuse.
pub fn expiry(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims.get("exp")?.as_u64()
}

/// How long a review may be reused, from `now_unix`.
pub fn ttl(review: &Review, exp: Option<u64>, now_unix: u64) -> Duration {
    match review {
        Review::Authenticated { .. } => {
            let left = exp.map_or(AUTHENTICATED_TTL, |exp| {
                Duration::from_secs(exp.saturating_sub(now_unix))
            });
            AUTHENTICATED_TTL.min(left)
        }
        Review::Unauthenticated => UNAUTHENTICATED_TTL,
    }
}

type Key = [u8; 32];

fn key(token: &str) -> Key {
    let mut key = [0; 32];
    key.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref());
    key
}

/// A cached review.
struct Entry {
    review: Review,
    /// Past it the entry is not used.
    until: Instant,
    /// Past it a use renews it in the background.
    renew_after: Instant,
    renewing: AtomicBool,
}

impl Entry {
    fn new(review: Review, token: &str) -> Arc<Entry> {
        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let ttl = ttl(&review, expiry(token), now_unix);
        let now = Instant::now();
        Arc::new(Entry {
            review,
            until: now + ttl,
            renew_after: now + ttl * 3 / 4,
            renewing: AtomicBool::new(false),
        })
    }
}

/// Checks requests' credentials: reviews through the API server, cached.
pub struct Authenticator {
    client: kube::Client,
    audience: String,
    allowed: Vec<String>,
    cache: quick_cache::sync::Cache<Key, Arc<Entry>>,
}

impl Authenticator {
    pub fn new(client: kube::Client, audience: String, allowed: Vec<String>) -> Arc<Authenticator> {
        Arc::new(Authenticator {
            client,
            audience,
            allowed,
            cache: quick_cache::sync::Cache::new(CACHE_ENTRIES),
        })
    }

    /// The decision for a request's headers; `Err` when the API server gave no answer (the caller answers 503).
    pub async fn check(self: &Arc<Self>, headers: &HeaderMap) -> Result<Decision, String> {
        let Some(token) = bearer(headers) else {
            return Ok(Decision::Unauthenticated);
        };
        let key = key(token);
        let entry = match self.cache.get_value_or_guard_async(&key).await {
            Ok(entry) if Instant::now() < entry.until => entry,
            Ok(_) => {
                self.cache.remove(&key);
                self.load(key, token).await?
            }
            // Concurrent requests with the same new token wait for this one review.
            Err(guard) => {
                let entry = Entry::new(self.review(token).await?, token);
                let _ = guard.insert(entry.clone());
                entry
            }
        };
        if Instant::now() >= entry.renew_after
            && matches!(entry.review, Review::Authenticated { .. })
            && !entry.renewing.swap(true, Ordering::Relaxed)
        {
            let (this, token) = (self.clone(), token.to_owned());
            tokio::spawn(async move {
                match this.review(&token).await {
                    Ok(review) => this.cache.insert(key, Entry::new(review, &token)),
                    Err(e) => warn!(error = %e, "renewing a token review"),
                }
            });
        }
        Ok(decide(&entry.review, &self.allowed))
    }

    /// Loads an expired entry again, coalesced like a new one.
    async fn load(&self, key: Key, token: &str) -> Result<Arc<Entry>, String> {
        match self.cache.get_value_or_guard_async(&key).await {
            Ok(entry) => Ok(entry),
            Err(guard) => {
                let entry = Entry::new(self.review(token).await?, token);
                let _ = guard.insert(entry.clone());
                Ok(entry)
            }
        }
    }

    async fn review(&self, token: &str) -> Result<Review, String> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: Some(vec![self.audience.clone()]),
            },
            ..TokenReview::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        match tokio::time::timeout(REVIEW_TIMEOUT, api.create(&PostParams::default(), &review)).await {
            Ok(Ok(answer)) => Ok(review_of(answer.status, &self.audience)),
            Ok(Err(e)) => Err(format!("TokenReview failed: {e}")),
            Err(_) => Err(format!("TokenReview took longer than {REVIEW_TIMEOUT:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::authentication::v1::UserInfo;

    use super::*;

    const ACTIVATOR: &str = "system:serviceaccount:runway-system:runway-activator";

    fn authenticated(username: &str) -> Review {
        Review::Authenticated {
            username: username.into(),
        }
    }

    #[test]
    fn an_allowed_user_passes_another_is_forbidden_and_a_bad_token_unauthenticated() {
        let allowed = vec![ACTIVATOR.to_owned()];
        assert_eq!(decide(&authenticated(ACTIVATOR), &allowed), Decision::Allowed);
        assert_eq!(
            decide(&authenticated("system:serviceaccount:default:app"), &allowed),
            Decision::Forbidden
        );
        assert_eq!(decide(&Review::Unauthenticated, &allowed), Decision::Unauthenticated);
        assert_eq!(decide(&authenticated(ACTIVATOR), &[]), Decision::Forbidden);
    }

    #[test]
    fn a_review_counts_only_when_authenticated_for_the_agents_audience() {
        let status = |authenticated: bool, audiences: Option<Vec<&str>>| TokenReviewStatus {
            authenticated: Some(authenticated),
            audiences: audiences.map(|a| a.into_iter().map(str::to_owned).collect()),
            user: Some(UserInfo {
                username: Some(ACTIVATOR.into()),
                ..UserInfo::default()
            }),
            ..TokenReviewStatus::default()
        };
        assert_eq!(
            review_of(Some(status(true, Some(vec!["runway-node"]))), "runway-node"),
            authenticated(ACTIVATOR)
        );
        assert_eq!(
            review_of(Some(status(true, None)), "runway-node"),
            authenticated(ACTIVATOR)
        );
        assert_eq!(
            review_of(
                Some(status(true, Some(vec!["https://kubernetes.default.svc"]))),
                "runway-node"
            ),
            Review::Unauthenticated
        );
        assert_eq!(
            review_of(Some(status(false, None)), "runway-node"),
            Review::Unauthenticated
        );
        assert_eq!(review_of(None, "runway-node"), Review::Unauthenticated);
    }

    #[test]
    fn only_a_bearer_authorization_carries_a_token() {
        let headers = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(http::header::AUTHORIZATION, value.parse().unwrap());
            headers
        };
        assert_eq!(bearer(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&headers("bearer abc")), Some("abc"));
        assert_eq!(bearer(&headers("Basic abc")), None);
        assert_eq!(bearer(&headers("Bearer ")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn a_review_is_reused_a_minute_at_most_and_never_past_the_tokens_exp() {
        let jwt = |claims: &str| format!("e30.{}.sig", URL_SAFE_NO_PAD.encode(claims));
        assert_eq!(
            expiry(&jwt(r#"{"exp":1700000000,"aud":["runway-node"]}"#)),
            Some(1_700_000_000)
        );
        assert_eq!(expiry(&jwt(r#"{"sub":"x"}"#)), None);
        assert_eq!(expiry("opaque"), None);
        let me = authenticated(ACTIVATOR);
        assert_eq!(ttl(&me, None, 1_000), Duration::from_secs(60));
        assert_eq!(ttl(&me, Some(5_000), 1_000), Duration::from_secs(60));
        assert_eq!(ttl(&me, Some(1_010), 1_000), Duration::from_secs(10));
        assert_eq!(ttl(&me, Some(900), 1_000), Duration::ZERO);
        assert_eq!(ttl(&Review::Unauthenticated, None, 1_000), Duration::from_secs(5));
    }

    #[test]
    fn tokens_are_kept_as_their_sha256_only() {
        assert_eq!(key("a"), key("a"));
        assert_ne!(key("a"), key("b"));
        // SHA-256("abc"), FIPS 180-2's example.
        assert_eq!(key("abc")[..4], [0xba, 0x78, 0x16, 0xbf]);
    }
}
