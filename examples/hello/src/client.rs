//! A minimal HTTP/1 client for checks from inside a pod, where no other tool exists:
//! `runway-hello get URL [--host HOST] [--timeout DURATION] [--retry-for DURATION]`. The chart's `helm test` runs it
//! with `--host` (the Runway Service's host, sent to the activator's Service) and `--retry-for 120s` (a cold start).

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

/// Bound on one attempt unless `--timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between attempts with `--retry-for`.
pub const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// What `runway-hello get` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetOptions {
    pub url: String,
    /// `--host`: the Host header to send instead of the URL's authority (a virtual host behind a proxy).
    pub host: Option<String>,
    /// `--timeout`: bound on one attempt, from connecting to the end of the body.
    pub timeout: Duration,
    /// `--retry-for`: try again every second, after an error or an answer other than 2xx, until a 2xx answer or
    /// this long has passed; zero (the default) is a single attempt.
    pub retry_for: Duration,
}

impl GetOptions {
    /// Parses the arguments after `get`: the URL, then the options in any order (`--name value` or `--name=value`).
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Self, String> {
        let mut url = None;
        let mut host = None;
        let mut timeout = DEFAULT_TIMEOUT;
        let mut retry_for = Duration::ZERO;
        let mut args = args.iter().map(AsRef::as_ref);
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) if name.starts_with("--") => (name, Some(value)),
                _ => (arg, None),
            };
            if !name.starts_with("--") {
                if url.replace(arg.to_owned()).is_some() {
                    return Err(format!("unexpected argument {arg:?}: one URL only"));
                }
                continue;
            }
            let value = match inline {
                Some(value) => value,
                None => args.next().ok_or_else(|| format!("{name} needs a value"))?,
            };
            match name {
                "--host" if !value.is_empty() => host = Some(value.to_owned()),
                "--host" => return Err("--host needs a value".to_owned()),
                "--timeout" => timeout = parse_duration(value).map_err(|e| format!("--timeout: {e}"))?,
                "--retry-for" => retry_for = parse_duration(value).map_err(|e| format!("--retry-for: {e}"))?,
                _ => return Err(format!("unknown option {name}")),
            }
        }
        if timeout.is_zero() {
            return Err("--timeout must be more than 0".to_owned());
        }
        let url = url.ok_or("a URL is needed")?;
        Ok(GetOptions {
            url,
            host,
            timeout,
            retry_for,
        })
    }
}

/// Parses `250ms`, `5s`, `2m` or `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 250ms, 5s, 2m or 1h"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is out of range"))
}

/// GETs `url` (plain http; host names resolve through the system resolver) and returns the status and body.
pub async fn get(url: &str, timeout: Duration) -> anyhow::Result<(StatusCode, String)> {
    get_with_host(url, None, timeout).await
}

/// [`get`] with `host` as the Host header when given.
pub async fn get_with_host(url: &str, host: Option<&str>, timeout: Duration) -> anyhow::Result<(StatusCode, String)> {
    let uri: Uri = url.parse().with_context(|| format!("{url} is not a URL"))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut request = Request::get(uri);
    if let Some(host) = host {
        request = request.header(header::HOST, host);
    }
    let request = request.body(Empty::new())?;
    let exchange = async {
        let response = client.request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .with_context(|| format!("GET {url}: no answer within {timeout:?}"))?
        .with_context(|| format!("GET {url}"))
}

/// GETs as `options` say, trying again after a failure while `options.retry_for` allows (each failed attempt is
/// passed to `retrying`, with the attempt's number, before the pause). Returns the first 2xx answer, else the last
/// answer or error.
pub async fn get_until_ok(
    options: &GetOptions,
    mut retrying: impl FnMut(u32, &anyhow::Result<(StatusCode, String)>),
) -> anyhow::Result<(StatusCode, String)> {
    let deadline = Instant::now() + options.retry_for;
    let mut attempt = 0;
    loop {
        attempt += 1;
        // A retried attempt ends by the deadline; the first one always gets its full timeout.
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = if attempt > 1 {
            options.timeout.min(left)
        } else {
            options.timeout
        };
        let result = get_with_host(&options.url, options.host.as_deref(), timeout).await;
        let succeeded = matches!(&result, Ok((status, _)) if status.is_success());
        if succeeded || Instant::now() + RETRY_PAUSE >= deadline {
            return result;
        }
        retrying(attempt, &result);
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<GetOptions, String> {
        GetOptions::parse(args)
    }

    #[test]
    fn a_url_alone_is_one_attempt_of_ten_seconds() {
        assert_eq!(
            parse(&["http://a/"]),
            Ok(GetOptions {
                url: "http://a/".into(),
                host: None,
                timeout: DEFAULT_TIMEOUT,
                retry_for: Duration::ZERO,
            })
        );
    }

    #[test]
    fn options_come_in_any_order_with_or_without_equals() {
        let options = parse(&[
            "--retry-for=2m",
            "http://a/",
            "--host",
            "x.y.example.com",
            "--timeout",
            "500ms",
        ])
        .unwrap();
        assert_eq!(options.url, "http://a/");
        assert_eq!(options.host.as_deref(), Some("x.y.example.com"));
        assert_eq!(options.timeout, Duration::from_millis(500));
        assert_eq!(options.retry_for, Duration::from_secs(120));
    }

    #[test]
    fn bad_arguments_are_refused() {
        for bad in [
            &[][..],
            &["--host", "h"],
            &["http://a/", "http://b/"],
            &["http://a/", "--host"],
            &["http://a/", "--host="],
            &["http://a/", "--timeout", "0"],
            &["http://a/", "--timeout", "soon"],
            &["http://a/", "--retries", "3"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_take_units_up_to_hours() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("120s"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("").is_err());
    }
}
