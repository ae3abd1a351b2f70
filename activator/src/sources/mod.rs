//! What feeds the registry: in cluster mode, watches of Services, Revisions, DomainMappings, the revisions' pods and
//! their EndpointSlices, and the activators' own EndpointSlices, each object translated by a pure function into the
//! model's values; in standalone mode, routes from flags or a file. Imports `model`, `revision` (the peer set) and
//! `route` (the registry it feeds).

pub mod cluster;
mod endpoints;
mod groups;
mod keys;
mod settings;
pub mod standalone;
mod traffic;

pub use settings::settings_of_spec;
