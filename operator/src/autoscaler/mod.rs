//! The autoscaler: per Service, turns the load activators report into a pod count on the Deployment's scale.

pub mod board;
pub mod collector;
pub mod decision;
pub mod policy;
pub mod scaler;
