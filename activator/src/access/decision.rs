//! What the access check answers, step by step: the credential, the token's review, the user's access review. Pure:
//! each step's outcome in, the next step or the final decision out.

use std::sync::Arc;

use crate::access::bearer::Credential;
use crate::access::identity::Identity;
use crate::access::limit::Limit;

/// What a token's review (or its cached answer) came to.
#[derive(Clone, Debug)]
pub enum TokenOutcome {
    Authenticated(Arc<Identity>),
    Unauthenticated,
    /// The API server gave no answer (the reason).
    Failed(Arc<str>),
    /// Not reviewed: over a bound.
    Limited(Limit),
}

/// What an access review (or its cached answer) came to.
#[derive(Clone, Debug)]
pub enum AccessOutcome {
    Allowed,
    Denied,
    Failed(Arc<str>),
    Limited(Limit),
}

/// Which review.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Review {
    Token,
    Access,
}

/// Why a caller is asked for (another) token: the `WWW-Authenticate` challenge (RFC 6750 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// No bearer token presented: the challenge names no error.
    NoToken,
    /// The Authorization header cannot hold a token: `invalid_request`.
    Malformed,
    /// A token that is invalid, expired, or not for this Service: `invalid_token`.
    InvalidToken,
}

/// Why no decision could be made; the request is refused (fail closed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// No API server to review with (standalone mode).
    NoApi,
    /// A review would have crossed a bound.
    Limited(Review, Limit),
    /// A review failed (the reason).
    Failed(Review, Arc<str>),
}

/// The access check's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Refused(Refusal),
}

/// Why a request may not invoke the Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 401.
    Unauthenticated(Challenge),
    /// 403: the user the token names may not invoke the Service.
    Forbidden { user: String },
    /// 503.
    Unavailable(Unavailable),
}

/// The token to review, or the answer without one.
pub fn presented(credential: Credential<'_>) -> Result<&str, Refusal> {
    match credential {
        Credential::Bearer(token) => Ok(token),
        Credential::None => Err(Refusal::Unauthenticated(Challenge::NoToken)),
        Credential::Malformed => Err(Refusal::Unauthenticated(Challenge::Malformed)),
    }
}

/// The user to review, or the answer for a token that names none.
pub fn authenticated(outcome: TokenOutcome) -> Result<Arc<Identity>, Refusal> {
    match outcome {
        TokenOutcome::Authenticated(identity) => Ok(identity),
        TokenOutcome::Unauthenticated => Err(Refusal::Unauthenticated(Challenge::InvalidToken)),
        TokenOutcome::Failed(reason) => Err(Refusal::Unavailable(Unavailable::Failed(Review::Token, reason))),
        TokenOutcome::Limited(limit) => Err(Refusal::Unavailable(Unavailable::Limited(Review::Token, limit))),
    }
}

/// The answer for `identity` once its access review came to `outcome`.
pub fn authorized(outcome: AccessOutcome, identity: &Identity) -> Decision {
    let refusal = match outcome {
        AccessOutcome::Allowed => return Decision::Allowed,
        AccessOutcome::Denied => Refusal::Forbidden {
            user: identity.username.clone(),
        },
        AccessOutcome::Failed(reason) => Refusal::Unavailable(Unavailable::Failed(Review::Access, reason)),
        AccessOutcome::Limited(limit) => Refusal::Unavailable(Unavailable::Limited(Review::Access, limit)),
    };
    Decision::Refused(refusal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Arc<Identity> {
        Arc::new(Identity::new("u".into(), None, vec![], Default::default()))
    }

    #[test]
    fn only_a_bearer_token_goes_on_to_review() {
        assert_eq!(presented(Credential::Bearer("t")), Ok("t"));
        assert_eq!(
            presented(Credential::None),
            Err(Refusal::Unauthenticated(Challenge::NoToken))
        );
        assert_eq!(
            presented(Credential::Malformed),
            Err(Refusal::Unauthenticated(Challenge::Malformed))
        );
    }

    #[test]
    fn each_token_outcome_has_its_answer() {
        assert_eq!(
            authenticated(TokenOutcome::Authenticated(identity())).unwrap().username,
            "u"
        );
        assert_eq!(
            authenticated(TokenOutcome::Unauthenticated).unwrap_err(),
            Refusal::Unauthenticated(Challenge::InvalidToken)
        );
        assert_eq!(
            authenticated(TokenOutcome::Failed("boom".into())).unwrap_err(),
            Refusal::Unavailable(Unavailable::Failed(Review::Token, "boom".into()))
        );
        assert_eq!(
            authenticated(TokenOutcome::Limited(Limit::Rate)).unwrap_err(),
            Refusal::Unavailable(Unavailable::Limited(Review::Token, Limit::Rate))
        );
    }

    #[test]
    fn each_access_outcome_has_its_answer() {
        let identity = identity();
        assert_eq!(authorized(AccessOutcome::Allowed, &identity), Decision::Allowed);
        assert_eq!(
            authorized(AccessOutcome::Denied, &identity),
            Decision::Refused(Refusal::Forbidden { user: "u".into() })
        );
        assert_eq!(
            authorized(AccessOutcome::Failed("x".into()), &identity),
            Decision::Refused(Refusal::Unavailable(Unavailable::Failed(Review::Access, "x".into())))
        );
        assert_eq!(
            authorized(AccessOutcome::Limited(Limit::InFlight), &identity),
            Decision::Refused(Refusal::Unavailable(Unavailable::Limited(
                Review::Access,
                Limit::InFlight
            )))
        );
    }
}
