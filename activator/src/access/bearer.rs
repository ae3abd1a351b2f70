//! The credential a request presents: its `Authorization: Bearer` token, read without judging it.

use http::HeaderMap;
use http::header::AUTHORIZATION;

/// Longest token reviewed. A ServiceAccount token is about 1 KiB; anything far beyond is refused without asking
/// the API server, so a review's body stays small whatever a client sends.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// What a request presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential<'a> {
    /// No Authorization header, or one of another scheme (Basic, ...): the client may not know it needs a token
    /// (RFC 6750 §3.1: the challenge then names no error).
    None,
    /// A Bearer header that cannot hold a token: empty, not token68 (RFC 7235 §2.1), too long, or several
    /// Authorization headers, of which the app might read another than the one checked.
    Malformed,
    /// A token to review.
    Bearer(&'a str),
}

/// The credential of a request's headers.
pub fn credential(headers: &HeaderMap) -> Credential<'_> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Credential::None;
    };
    if values.next().is_some() {
        return Credential::Malformed;
    }
    let Ok(value) = value.to_str() else {
        return Credential::Malformed;
    };
    let value = value.trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Credential::None;
    }
    let token = token.trim_start_matches(' ');
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES || !is_token68(token) {
        return Credential::Malformed;
    }
    Credential::Bearer(token)
}

/// token68: letters, digits and `-._~+/`, then any `=` padding (RFC 7235 §2.1). A JWT is made of these.
fn is_token68(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn a_bearer_token_is_read_whatever_the_scheme_case() {
        assert_eq!(
            credential(&with(&["Bearer abc.def-_ghi"])),
            Credential::Bearer("abc.def-_ghi")
        );
        assert_eq!(credential(&with(&["bearer a+b/c=="])), Credential::Bearer("a+b/c=="));
        assert_eq!(credential(&with(&["BEARER  abc "])), Credential::Bearer("abc"));
    }

    #[test]
    fn no_header_or_another_scheme_presents_nothing() {
        assert_eq!(credential(&HeaderMap::new()), Credential::None);
        assert_eq!(credential(&with(&["Basic dXNlcjpwYXNz"])), Credential::None);
        assert_eq!(credential(&with(&["Bearerabc"])), Credential::None);
    }

    #[test]
    fn what_cannot_be_a_token_is_malformed() {
        for bad in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer ===",
            "Bearer a,b",
            "Bearer \"abc\"",
        ] {
            assert_eq!(credential(&with(&[bad])), Credential::Malformed, "{bad:?}");
        }
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
        assert_eq!(credential(&with(&[&long])), Credential::Malformed);
        let longest = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES));
        assert!(matches!(credential(&with(&[&longest])), Credential::Bearer(_)));
        assert_eq!(credential(&with(&["Bearer a", "Bearer b"])), Credential::Malformed);
        let mut opaque = HeaderMap::new();
        opaque.insert(AUTHORIZATION, HeaderValue::from_bytes(b"Bearer \xff").unwrap());
        assert_eq!(credential(&opaque), Credential::Malformed);
    }
}
