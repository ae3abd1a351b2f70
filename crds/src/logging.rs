//! The log flags and setup both binaries share (feature `logging`).

use std::io::IsTerminal;

use clap::{Args, ValueEnum};

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
        let filter = tracing_subscriber::EnvFilter::try_new(&self.log_level).unwrap_or_else(|_| "info".into());
        // Colour only for a person at a terminal: in pod logs escape codes are noise.
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr);
        match self.log_format {
            LogFormat::Text => builder.init(),
            LogFormat::Json => builder.json().init(),
        }
    }
}
