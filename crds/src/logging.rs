//! The log flags and setup both binaries share (feature `logging`).

use std::io::IsTerminal;

use clap::{Args, ValueEnum};
use tracing_subscriber::layer::{Identity, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

/// How log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `--log-format` and `--log-level`, flattened into each binary's flags.
#[derive(Args, Clone, Debug)]
pub struct LogArgs {
    /// Log line format.
    #[arg(long, env = "RUNWAY_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter in tracing's EnvFilter syntax, e.g. `info` or `runway_activator=debug,info`.
    #[arg(long, env = "RUNWAY_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

impl LogArgs {
    /// Installs the global subscriber, writing to stderr; an unparsable filter falls back to `info`.
    pub fn init(&self) {
        self.init_with(Identity::new());
    }

    /// Like [`LogArgs::init`], with `extra` beside the log lines (the operator's span export). The log filter is
    /// the log lines' own, so `extra` sees spans and events the logs leave out and filters them itself.
    pub fn init_with(&self, extra: impl Layer<Registry> + Send + Sync + 'static) {
        let filter = tracing_subscriber::EnvFilter::try_new(&self.log_level).unwrap_or_else(|_| "info".into());
        // Colour only for a person at a terminal: in pod logs escape codes are noise.
        let lines = tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr);
        let lines = match self.log_format {
            LogFormat::Text => lines.boxed(),
            LogFormat::Json => lines.json().boxed(),
        };
        tracing_subscriber::registry()
            .with(extra)
            .with(lines.with_filter(filter))
            .init();
    }
}
