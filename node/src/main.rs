//! runway-node: the node agent that freezes and thaws Runway pods' cgroups for the activator.
#![forbid(unsafe_code)]

use clap::Parser;
use runway_node::{app, cli::Args};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    args.logs.init();
    if let Err(e) = app::run(args).await {
        tracing::error!("{e}");
        std::process::exit(1);
    }
}
