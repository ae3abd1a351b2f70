//! How long a review's answer may be reused: the configured time, but an authenticated token never past its own
//! expiry. A TokenReview does not say when the token expires, so the `exp` claim is read from the token itself; it
//! is not verified (the API server did that), only used to shorten the reuse, never to lengthen it.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The `exp` claim (seconds since the Unix epoch) of a JWT, unverified; `None` for a token that is not a JWT or
/// has no numeric `exp`.
pub fn jwt_expiry(token: &str) -> Option<u64> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    // Some encoders pad base64url; JWTs (RFC 7515) do not, and the engine refuses padding.
    let json = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    #[derive(serde::Deserialize)]
    struct Claims {
        exp: Option<serde_json::Number>,
    }
    let claims: Claims = serde_json::from_slice(&json).ok()?;
    let exp = claims.exp?;
    // A fractional `exp` (NumericDate allows it) counts down to the whole second before it.
    exp.as_u64()
        .or_else(|| exp.as_f64().filter(|e| *e >= 0.0).map(|e| e as u64))
}

/// How long to reuse an authenticated token's review: `ttl`, capped at the time left until `exp` when known. A token
/// past its expiry gets zero: its answer serves only the requests that waited for it.
pub fn positive_ttl(ttl: Duration, exp: Option<u64>, now_unix: u64) -> Duration {
    match exp {
        Some(exp) => ttl.min(Duration::from_secs(exp.saturating_sub(now_unix))),
        None => ttl,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        format!("eyJhbGciOiJSUzI1NiJ9.{}.c2lnbmF0dXJl", URL_SAFE_NO_PAD.encode(payload))
    }

    #[test]
    fn the_exp_claim_is_read_from_a_jwt() {
        assert_eq!(
            jwt_expiry(&jwt(r#"{"aud":["x"],"exp":1700000000,"sub":"s"}"#)),
            Some(1_700_000_000)
        );
        assert_eq!(jwt_expiry(&jwt(r#"{"exp":1700000000.75}"#)), Some(1_700_000_000));
        let padded = format!("a.{}==.c", URL_SAFE_NO_PAD.encode(r#"{"exp":5}"#));
        assert_eq!(jwt_expiry(&padded), Some(5));
    }

    #[test]
    fn a_token_without_a_readable_exp_has_none() {
        assert_eq!(jwt_expiry("opaque-token"), None);
        assert_eq!(jwt_expiry("a.b"), None);
        assert_eq!(jwt_expiry("a.b.c.d"), None);
        assert_eq!(jwt_expiry("a.!!!.c"), None);
        assert_eq!(jwt_expiry(&jwt("not json")), None);
        assert_eq!(jwt_expiry(&jwt(r#"{"sub":"s"}"#)), None);
        assert_eq!(jwt_expiry(&jwt(r#"{"exp":"1700000000"}"#)), None);
        assert_eq!(jwt_expiry(&jwt(r#"{"exp":-5}"#)), None);
    }

    #[test]
    fn the_ttl_never_outlives_the_token() {
        let minute = Duration::from_secs(60);
        assert_eq!(positive_ttl(minute, None, 1_000), minute);
        assert_eq!(positive_ttl(minute, Some(1_600), 1_000), minute);
        assert_eq!(positive_ttl(minute, Some(1_010), 1_000), Duration::from_secs(10));
        assert_eq!(positive_ttl(minute, Some(1_000), 1_000), Duration::ZERO);
        assert_eq!(positive_ttl(minute, Some(900), 1_000), Duration::ZERO);
    }
}
