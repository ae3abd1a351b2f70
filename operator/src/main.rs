//! runway-operator: reconciles Runway Services and autoscales them, on the elected replica only.
#![forbid(unsafe_code)]

use clap::Parser;
use runway_operator::{app, cli::Args};

#[tokio::main]
async fn main() {
    let args = Args::parse();
    args.logs.init();
    if let Err(e) = app::run(args).await {
        tracing::error!("{e}");
        std::process::exit(1);
    }
}
