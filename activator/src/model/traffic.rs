//! What routing needs of a Service, whatever it was read from (a Service's status or a static route).

use runway_api::{Invokers, Visibility};

/// What routing needs of a Service: who may call it, and which revisions take its requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceTraffic {
    /// Whether the external entry point serves it.
    pub visibility: Visibility,
    /// Whether its callers must show a token that allows them to invoke it.
    pub invokers: Invokers,
    /// The revisions with a share of the requests and their percents, above 0 (a revision may be listed twice).
    pub split: Vec<(String, u32)>,
    /// Each tag and the revision it reaches.
    pub tags: Vec<(String, String)>,
}
