//! Who may invoke a Service whose `spec.invokers` is Authorized: the bearer token of the request reviewed by the API
//! server (TokenReview, for the Service's audiences), then the user it names (SubjectAccessReview for the verb
//! `invoke` on the Service). Both answers are cached by digest, bounded in entries and time, and concurrent lookups
//! of one key wait for one review; reviews are bounded in rate and in flight, and past a bound the request is
//! refused (fail closed), so neither a busy Service nor a flood of made-up tokens costs more than a bounded number
//! of reviews or bytes. Pure parts (`bearer`, `decision`, `expiry`, `keys`, `limit`, `cache`, `identity`), one edge
//! that talks to the API server (`review`), and `check`, which puts them together. Imports `revision` (the metrics).

mod bearer;
mod cache;
mod check;
mod decision;
mod expiry;
mod identity;
mod keys;
mod limit;
mod review;

pub use check::{AccessCheck, AccessSettings};
pub use decision::{Challenge, Decision, Refusal, Review, Unavailable};
pub use limit::Limit;
pub use review::ApiClient;
