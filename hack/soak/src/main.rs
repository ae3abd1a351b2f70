//! `runway-soak`: the soak and abuse harness (see docs/benchmarks.md, "Soak and abuse").
//!
//! - soak mode (default): several Runway Services of the sample app on the local cluster under steady load through
//!   the activator, with scaling, scale to zero, rollouts of both components and pod deletions on a schedule;
//!   fails on any answer that was not asked for, any overlap at containerConcurrency 1, any component restart.
//! - flood mode (`--flood`): thousands of connections with large heads and idle connections against one activator
//!   on loopback; reports answers, how long idle connections live, and the activator's peak RSS.
//!
//! Exit status: 0 when nothing unexpected happened, 1 when something did, 2 when the run could not be made.
#![forbid(unsafe_code)]

mod cli;
mod counts;
mod flood;
mod procfs;
mod soak;
mod stop;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::Args::parse();
    let interrupted = stop::on_interrupt();
    let result = if args.flood {
        flood::run(&args.flood_args, interrupted).await
    } else {
        soak::run(&args.soak_args, interrupted).await
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("runway-soak: {err:#}");
            ExitCode::from(2)
        }
    }
}
