//! Docs that cannot drift (issue 24, item 6): README.md and docs/*.md checked against the code, the chart and the
//! Makefile. Each module holds the tests of one kind of drift; `markdown`, `yaml` and `repo` are their readers.
//! Plain `cargo test -p runway-tests --test docs`: no cluster needed.
//!
//! The code is the truth: when a test here fails, fix the doc, unless the code is plainly wrong.

mod markdown;
mod repo;
mod yaml;

mod benchmarks;
mod examples;
mod flags;
mod future_tense;
mod kubectl_get;
mod metrics;
mod objects;
mod observability;
mod probes;
mod rbac;
mod references;
mod scope;
