//! The autoscaler: per Service, turns the load activators report into a pod count on the Deployment's scale.

pub(crate) mod board;
pub(crate) mod collector;
pub(crate) mod decision;
pub(crate) mod policy;
pub(crate) mod scaler;
