//! `runway-hello`: serve (no arguments), or `runway-hello get URL [--host HOST] [--timeout DURATION]
//! [--retry-for DURATION]` to fetch a URL and print the body.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use anyhow::Context;
use runway_hello::{app::App, client, config::Config, server};
use tokio::signal::unix::{SignalKind, signal};

const USAGE: &str = "usage: runway-hello [get URL [--host HOST] [--timeout DURATION] [--retry-for DURATION]]";

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_target(false)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [] => run_server().await,
        [cmd, rest @ ..] if cmd == "get" => match client::GetOptions::parse(rest) {
            Ok(options) => fetch(&options).await,
            Err(error) => Err(anyhow::anyhow!("get: {error}\n{USAGE}")),
        },
        _ => Err(anyhow::anyhow!(USAGE)),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("runway-hello: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_server() -> anyhow::Result<ExitCode> {
    let config = Config::from_env()?;
    if !config.startup_delay.is_zero() {
        tracing::info!(delay_ms = config.startup_delay.as_millis(), "delaying startup");
        tokio::time::sleep(config.startup_delay).await;
    }
    let listener = server::bind(config.port)
        .await
        .with_context(|| format!("binding port {}", config.port))?;
    let fail_status = config
        .fail_status
        .and_then(|code| hyper::StatusCode::from_u16(code).ok());
    let app = App::failing_with(config.pod_name, config.reject_overlap, fail_status).warming_for(config.warmup);
    app.start_ticker();
    let mut sigterm = signal(SignalKind::terminate())?;
    let stop = async move {
        tokio::select! {
            _ = sigterm.recv() => tracing::info!("SIGTERM"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
        }
    };
    server::serve(listener, app, stop).await;
    Ok(ExitCode::SUCCESS)
}

/// Client mode: prints the body; exits 0 only for a 2xx answer. With `--retry-for`, each failed attempt is reported
/// on stderr before the next.
async fn fetch(options: &client::GetOptions) -> anyhow::Result<ExitCode> {
    let url = &options.url;
    let (status, body) = client::get_until_ok(options, |attempt, result| match result {
        Ok((status, _)) => eprintln!("runway-hello: GET {url}: attempt {attempt}: {status}; trying again"),
        Err(err) => eprintln!("runway-hello: attempt {attempt}: {err:#}; trying again"),
    })
    .await?;
    print!("{body}");
    if status.is_success() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("runway-hello: GET {url}: {status}");
        Ok(ExitCode::FAILURE)
    }
}
