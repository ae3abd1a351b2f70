//! What routing needs of a Service, whatever it was read from (a Service's status or a static route).

use runway_api::{Invokers, Visibility};

/// What routing needs of a Service: who may call it, and which revisions take its requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceTraffic {
    /// Whether the external entry point serves it.
    pub visibility: Visibility,
    /// Whether its callers must show a token that allows them to invoke it.
    pub invokers: Invokers,
    /// The share of its requests the access log records; `None` leaves it to the activator's `--access-log-percent`.
    pub access_log: Option<AccessLogShare>,
    /// The revisions with a share of the requests and their percents, above 0 (a revision may be listed twice).
    pub split: Vec<(String, u32)>,
    /// Each tag and the revision it reaches.
    pub tags: Vec<(String, String)>,
}

/// What a request must pass, and what is recorded of it, by the Service it is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServicePolicy {
    pub invokers: Invokers,
    pub access_log: Option<AccessLogShare>,
}

impl ServiceTraffic {
    pub fn policy(&self) -> ServicePolicy {
        ServicePolicy {
            invokers: self.invokers,
            access_log: self.access_log,
        }
    }
}

/// The share of requests the access log records, in percent: 0 none, 100 every one, between a random sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessLogShare(u8);

impl AccessLogShare {
    pub const ALL: AccessLogShare = AccessLogShare(100);

    /// `None` outside 0..=100.
    pub fn percent(percent: i64) -> Option<Self> {
        u8::try_from(percent).ok().filter(|p| *p <= 100).map(AccessLogShare)
    }

    /// Whether to record one request: a draw only for a sample, so that 0 and 100 cost a comparison.
    pub fn picks(self) -> bool {
        match self.0 {
            0 => false,
            100 => true,
            percent => fastrand::u8(0..100) < percent,
        }
    }
}

impl std::str::FromStr for AccessLogShare {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        text.trim()
            .parse::<i64>()
            .ok()
            .and_then(AccessLogShare::percent)
            .ok_or_else(|| format!("expected a percent from 0 to 100, got {text:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_is_a_percent() {
        assert_eq!("0".parse::<AccessLogShare>().map(AccessLogShare::picks), Ok(false));
        assert_eq!("100".parse::<AccessLogShare>().map(AccessLogShare::picks), Ok(true));
        assert!("101".parse::<AccessLogShare>().is_err());
        assert!("-1".parse::<AccessLogShare>().is_err());
        let half = AccessLogShare::percent(50).unwrap();
        let picked = (0..10_000).filter(|_| half.picks()).count();
        assert!((4_000..6_000).contains(&picked), "{picked} of 10000 at 50%");
    }
}
