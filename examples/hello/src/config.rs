//! Settings from the environment.

use std::time::Duration;

/// What the server reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `PORT`, default 8080.
    pub port: u16,
    /// `STARTUP_DELAY_MS`: how long to wait before listening, default 0.
    pub startup_delay: Duration,
    /// `WARMUP_MS`: how long after listening every request (`/healthz` too) gets 503 "warming up", as an app that
    /// loads a model or warms a cache after binding its port; default 0.
    pub warmup: Duration,
    /// `REJECT_OVERLAP`: answer 500 to requests that overlap in time.
    pub reject_overlap: bool,
    /// `FAIL_STATUS`: answer `/` and `/sleep` with this 4xx or 5xx status, to try out how failures are handled
    /// (for example a rollout's automatic rollback).
    pub fail_status: Option<u16>,
    /// `HOSTNAME`, which Kubernetes sets to the pod name.
    pub pod_name: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{name}={value:?} is not valid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `get`, which returns a variable's value if it is set.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let port = match get("PORT") {
            Some(v) => v.parse().map_err(|_| invalid("PORT", &v, "expected a port number"))?,
            None => 8080,
        };
        let startup_delay = match get("STARTUP_DELAY_MS") {
            Some(v) => Duration::from_millis(
                v.parse()
                    .map_err(|_| invalid("STARTUP_DELAY_MS", &v, "expected milliseconds"))?,
            ),
            None => Duration::ZERO,
        };
        let warmup = match get("WARMUP_MS") {
            Some(v) => Duration::from_millis(
                v.parse()
                    .map_err(|_| invalid("WARMUP_MS", &v, "expected milliseconds"))?,
            ),
            None => Duration::ZERO,
        };
        let reject_overlap = match get("REJECT_OVERLAP").as_deref() {
            None | Some("" | "false" | "0") => false,
            Some("true" | "1") => true,
            Some(v) => return Err(invalid("REJECT_OVERLAP", v, "expected true or false")),
        };
        let fail_status = match get("FAIL_STATUS").as_deref() {
            None | Some("") => None,
            Some(v) => match v.parse::<u16>() {
                Ok(code @ 400..=599) => Some(code),
                _ => return Err(invalid("FAIL_STATUS", v, "expected a status from 400 to 599")),
            },
        };
        let pod_name = get("HOSTNAME").unwrap_or_else(|| "unknown".to_owned());
        Ok(Config {
            port,
            startup_delay,
            warmup,
            reject_overlap,
            fail_status,
            pod_name,
        })
    }
}

fn invalid(name: &'static str, value: &str, reason: &'static str) -> ConfigError {
    ConfigError::Invalid {
        name,
        value: value.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults() {
        let config = parse(&[]).unwrap();
        assert_eq!(
            config,
            Config {
                port: 8080,
                startup_delay: Duration::ZERO,
                warmup: Duration::ZERO,
                reject_overlap: false,
                fail_status: None,
                pod_name: "unknown".into()
            }
        );
    }

    #[test]
    fn reads_every_variable() {
        let config = parse(&[
            ("PORT", "9000"),
            ("STARTUP_DELAY_MS", "250"),
            ("WARMUP_MS", "4000"),
            ("REJECT_OVERLAP", "true"),
            ("FAIL_STATUS", "500"),
            ("HOSTNAME", "hello-abc"),
        ])
        .unwrap();
        assert_eq!(config.fail_status, Some(500));
        assert_eq!(config.port, 9000);
        assert_eq!(config.startup_delay, Duration::from_millis(250));
        assert_eq!(config.warmup, Duration::from_secs(4));
        assert!(config.reject_overlap);
        assert_eq!(config.pod_name, "hello-abc");
    }

    #[test]
    fn rejects_bad_values() {
        assert!(parse(&[("PORT", "80000")]).is_err());
        assert!(parse(&[("STARTUP_DELAY_MS", "-1")]).is_err());
        assert!(parse(&[("WARMUP_MS", "soon")]).is_err());
        assert!(parse(&[("FAIL_STATUS", "200")]).is_err());
        let err = parse(&[("REJECT_OVERLAP", "yes")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "REJECT_OVERLAP=\"yes\" is not valid: expected true or false"
        );
    }
}
