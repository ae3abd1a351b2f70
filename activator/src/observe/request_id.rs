//! Request IDs: the one a client (or a proxy before the activator) sent is kept, so a request can be followed across
//! hops; otherwise one is made. The app gets it as `X-Request-Id`, the client gets it back, the access log has it.

use http::header::{HeaderMap, HeaderName, HeaderValue};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest kept incoming ID: longer ones are replaced rather than copied into every log line.
const MAX_LEN: usize = 200;

/// The request's ID: its own `X-Request-Id` when it sent one of visible ASCII up to 200 bytes, else a new one.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    match headers.get(&REQUEST_ID) {
        Some(id) if usable(id) => id.clone(),
        _ => generate(),
    }
}

fn usable(id: &HeaderValue) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty() && bytes.len() <= MAX_LEN && bytes.iter().all(u8::is_ascii_graphic)
}

/// 128 random bits as 32 hex digits (the length of a trace ID), not a counter: IDs from several activators, and from
/// one restarted, must not collide.
fn generate() -> HeaderValue {
    let text = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    HeaderValue::from_str(&text).expect("hex digits are a valid header value")
}

/// The trace ID of the request's W3C `traceparent` (`00-{trace id}-{parent id}-{flags}`), if it has a valid one.
pub fn trace_id(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("traceparent")?.to_str().ok()?;
    let mut fields = value.trim().split('-');
    let (version, trace, parent, flags) = (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
    let hex = |text: &str, len: usize| {
        text.len() == len
            && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            && text.bytes().any(|b| b != b'0')
    };
    (version.len() == 2 && version != "ff" && hex(trace, 32) && hex(parent, 16) && flags.len() == 2).then_some(trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn an_incoming_id_is_kept_and_a_bad_one_replaced() {
        assert_eq!(request_id(&headers(&[("x-request-id", "abc-123")])), "abc-123");
        for bad in ["", "has space", &"x".repeat(201)] {
            let id = request_id(&headers(&[("x-request-id", bad)]));
            assert_eq!(id.len(), 32, "{bad:?} replaced by {id:?}");
        }
        let (a, b) = (request_id(&HeaderMap::new()), request_id(&HeaderMap::new()));
        assert_ne!(a, b);
        assert!(a.as_bytes().iter().all(u8::is_ascii_hexdigit));
    }

    #[test]
    fn the_trace_id_comes_from_a_valid_traceparent_only() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            trace_id(&headers(&[("traceparent", valid)])),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        for invalid in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f35-00f067aa0ba902b7-01",
        ] {
            assert_eq!(trace_id(&headers(&[("traceparent", invalid)])), None, "{invalid}");
        }
        assert_eq!(trace_id(&HeaderMap::new()), None);
    }
}
