//! `runway-hello`: serve (no arguments), or `runway-hello get URL` to fetch a URL and print the body.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use runway_hello::{app::App, client, config::Config, server};
use tokio::signal::unix::{SignalKind, signal};

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
        [cmd, url] if cmd == "get" => fetch(url).await,
        _ => Err(anyhow::anyhow!("usage: runway-hello [get URL]")),
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

/// Client mode: prints the body; exits 0 only for a 2xx answer.
async fn fetch(url: &str) -> anyhow::Result<ExitCode> {
    let (status, body) = client::get(url, Duration::from_secs(10)).await?;
    print!("{body}");
    if status.is_success() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("runway-hello: GET {url}: {status}");
        Ok(ExitCode::FAILURE)
    }
}
