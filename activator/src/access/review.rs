//! The edge that talks to the API server: a TokenReview (authentication.k8s.io/v1) for a bearer token, a
//! SubjectAccessReview (authorization.k8s.io/v1) for the user it names, through the activator's kube client, each
//! bounded in time. What the answers mean is decided by the pure functions below them.

use std::fmt;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec, SubjectAccessReviewStatus,
};
use kube::api::{Api, PostParams};

use crate::access::identity::Identity;

/// The verb, API group and resource an invoker needs RBAC for: `invoke` on `services.serving.runway.dev`, the rule
/// of the chart's ClusterRole runway-invoker.
pub const INVOKE_VERB: &str = "invoke";
pub const SERVICES_GROUP: &str = "serving.runway.dev";
pub const SERVICES_RESOURCE: &str = "services";

/// Longest API error kept in an answer or a log line: the API server's message may be long.
const MAX_ERROR_CHARS: usize = 200;

/// The Kubernetes API client the access checks review with.
#[derive(Clone)]
pub struct ApiClient(kube::Client);

impl ApiClient {
    pub fn new(client: kube::Client) -> Self {
        ApiClient(client)
    }
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiClient")
    }
}

/// What a TokenReview said of a token.
#[derive(Debug, PartialEq, Eq)]
pub enum Authentication {
    Authenticated(Identity),
    /// Invalid, expired, revoked, or not for any of the Service's audiences.
    Unauthenticated,
}

/// Reviews through one client, each within `timeout`.
pub struct Reviewer {
    client: kube::Client,
    timeout: Duration,
}

impl Reviewer {
    pub fn new(client: ApiClient, timeout: Duration) -> Self {
        Reviewer {
            client: client.0,
            timeout,
        }
    }

    /// Who `token` belongs to, if it is valid for one of `audiences`. `Err` names why the API gave no answer.
    pub async fn token(&self, token: &str, audiences: [String; 2]) -> Result<Authentication, String> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: Some(audiences.to_vec()),
            },
            ..TokenReview::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let answer = self.bounded(api.create(&PostParams::default(), &review)).await?;
        Ok(authentication(answer.status, &audiences))
    }

    /// Whether RBAC lets `identity` invoke the Service `namespace/service`.
    pub async fn may_invoke(&self, identity: &Identity, namespace: &str, service: &str) -> Result<bool, String> {
        let review = access_review(identity, namespace, service);
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = self.bounded(api.create(&PostParams::default(), &review)).await?;
        Ok(allowed(answer.status.as_ref()))
    }

    async fn bounded<T>(&self, call: impl Future<Output = Result<T, kube::Error>>) -> Result<T, String> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => Err(shortened(error.to_string())),
            Err(_elapsed) => Err(format!("no answer within {}", humantime::format_duration(self.timeout))),
        }
    }
}

/// What a TokenReview's status says of a token reviewed for `audiences`. Authenticated only with a user name and
/// one of `audiences` in `status.audiences`: an API server that answers without audiences has checked the token
/// against its own audience only (an ordinary API token), which must not invoke a Service.
pub fn authentication(status: Option<TokenReviewStatus>, audiences: &[String]) -> Authentication {
    let Some(status) = status else {
        return Authentication::Unauthenticated;
    };
    let for_the_service = status
        .audiences
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|audience| audiences.contains(audience));
    match (status.authenticated, status.user) {
        (Some(true), Some(user)) if for_the_service => match user.username {
            Some(username) if !username.is_empty() => Authentication::Authenticated(Identity::new(
                username,
                user.uid,
                user.groups.unwrap_or_default(),
                user.extra.unwrap_or_default(),
            )),
            _ => Authentication::Unauthenticated,
        },
        _ => Authentication::Unauthenticated,
    }
}

/// The SubjectAccessReview for `identity` invoking `namespace/service`: the user as the TokenReview named it, all of
/// it, since RBAC (and any webhook authorizer) may decide by groups, uid or extra.
pub fn access_review(identity: &Identity, namespace: &str, service: &str) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(identity.username.clone()),
            uid: identity.uid.clone(),
            groups: Some(identity.groups.clone()),
            extra: (!identity.extra.is_empty()).then(|| identity.extra.clone()),
            resource_attributes: Some(ResourceAttributes {
                group: Some(SERVICES_GROUP.to_owned()),
                resource: Some(SERVICES_RESOURCE.to_owned()),
                verb: Some(INVOKE_VERB.to_owned()),
                namespace: Some(namespace.to_owned()),
                name: Some(service.to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    }
}

/// Allowed only when the status says so; a missing status is a denial.
pub fn allowed(status: Option<&SubjectAccessReviewStatus>) -> bool {
    status.is_some_and(|status| status.allowed && status.denied != Some(true))
}

fn shortened(mut error: String) -> String {
    if let Some((at, _)) = error.char_indices().nth(MAX_ERROR_CHARS) {
        error.truncate(at);
        error.push_str("...");
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::authentication::v1::UserInfo;

    fn audiences() -> [String; 2] {
        runway_api::names::invoke_audiences("hello", "default", "example.com")
    }

    fn status(authenticated: bool, audiences: Option<&[&str]>) -> Option<TokenReviewStatus> {
        Some(TokenReviewStatus {
            authenticated: Some(authenticated),
            audiences: audiences.map(|list| list.iter().map(|a| (*a).to_owned()).collect()),
            user: Some(UserInfo {
                username: Some("system:serviceaccount:client:caller".into()),
                uid: Some("0b5d".into()),
                groups: Some(vec!["system:serviceaccounts".into()]),
                extra: None,
            }),
            error: None,
        })
    }

    #[test]
    fn a_token_for_either_url_of_the_service_authenticates() {
        for audience in [
            "http://hello.default.example.com",
            "http://hello.default.svc.cluster.local",
        ] {
            let Authentication::Authenticated(identity) = authentication(status(true, Some(&[audience])), &audiences())
            else {
                panic!("{audience}")
            };
            assert_eq!(identity.username, "system:serviceaccount:client:caller");
            assert_eq!(identity.groups, ["system:serviceaccounts"]);
        }
    }

    #[test]
    fn a_token_for_another_audience_or_the_api_server_does_not() {
        let unauthenticated = |status| authentication(status, &audiences()) == Authentication::Unauthenticated;
        assert!(unauthenticated(status(
            true,
            Some(&["http://other.default.example.com"])
        )));
        assert!(
            unauthenticated(status(true, None)),
            "no audiences: the API server's own"
        );
        assert!(unauthenticated(status(true, Some(&[]))));
        assert!(unauthenticated(status(
            false,
            Some(&["http://hello.default.example.com"])
        )));
        assert!(unauthenticated(None));
        let mut nameless = status(true, Some(&["http://hello.default.example.com"]));
        nameless.as_mut().unwrap().user.as_mut().unwrap().username = None;
        assert!(unauthenticated(nameless));
    }

    #[test]
    fn the_access_review_asks_for_invoke_on_the_service_as_the_whole_user() {
        let identity = Identity::new(
            "system:serviceaccount:client:caller".into(),
            Some("0b5d".into()),
            vec!["system:serviceaccounts".into(), "system:serviceaccounts:client".into()],
            [("authentication.kubernetes.io/pod-name".to_owned(), vec!["p".to_owned()])].into(),
        );
        let review = serde_json::to_value(access_review(&identity, "default", "hello")).unwrap();
        assert_eq!(
            review["spec"],
            serde_json::json!({
                "user": "system:serviceaccount:client:caller",
                "uid": "0b5d",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:client"],
                "extra": {"authentication.kubernetes.io/pod-name": ["p"]},
                "resourceAttributes": {
                    "group": "serving.runway.dev", "resource": "services", "verb": "invoke",
                    "namespace": "default", "name": "hello",
                },
            })
        );
    }

    #[test]
    fn only_an_explicit_allow_allows() {
        let status = |allowed, denied| SubjectAccessReviewStatus {
            allowed,
            denied,
            ..SubjectAccessReviewStatus::default()
        };
        assert!(allowed(Some(&status(true, None))));
        assert!(!allowed(Some(&status(false, None))));
        assert!(!allowed(Some(&status(false, Some(true)))));
        assert!(!allowed(Some(&status(true, Some(true)))));
        assert!(!allowed(None));
    }

    #[test]
    fn long_errors_are_cut() {
        assert_eq!(shortened("short".into()), "short");
        let long = shortened("é".repeat(500));
        assert_eq!(long.chars().count(), MAX_ERROR_CHARS + 3);
    }
}
