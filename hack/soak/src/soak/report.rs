//! What a soak prints at the end, and its verdict.

use std::fmt::Write;
use std::net::SocketAddr;
use std::time::Duration;

use super::chaos::{Event, describe};
use super::components::Findings;
use super::services::{CC1, Protocol, SoakService};
use crate::counts::{self, Counts, thousands};

pub struct Report {
    pub ns: String,
    pub address: SocketAddr,
    /// How long the load actually ran.
    pub ran: Duration,
    pub services: Vec<(SoakService, Counts)>,
    pub events: Vec<Event>,
    pub findings: Findings,
}

impl Report {
    /// Everything that went wrong; empty when the soak passed.
    pub fn failures(&self) -> Vec<String> {
        let mut out = vec![];
        for (service, counts) in &self.services {
            if counts.total() == 0 {
                out.push(format!("{}: no request was made", service.name));
            } else if counts.unexpected > 0 {
                out.push(format!(
                    "{}: {} of {} outcomes were not asked for",
                    service.name,
                    thousands(counts.unexpected),
                    thousands(counts.total())
                ));
            }
        }
        for event in self.events.iter().filter(|e| e.result.is_err()) {
            out.push(format!(
                "disruption at +{:.1}s did not complete: {}",
                event.at.as_secs_f64(),
                event.what
            ));
        }
        for component in ["runway-activator", "runway-operator"] {
            let n = self.findings.unexpected(component);
            if n > 0 {
                out.push(format!("{component}: {n} container restart(s) or failed pod(s)"));
            }
        }
        out
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nSoak: {:.0} s of load through the activator at {}, namespace {}\n",
            self.ran.as_secs_f64(),
            self.address,
            self.ns
        );
        let _ = writeln!(
            out,
            "| Service | containerConcurrency | protocol | outcomes | by status |"
        );
        let _ = writeln!(out, "| --- | --- | --- | --- | --- |");
        for (service, counts) in &self.services {
            let protocol = match service.protocol {
                Protocol::Http1 => "HTTP/1.1",
                Protocol::H2c => "h2c (both hops)",
                Protocol::WebSocket => "WebSocket sessions",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {protocol} | {} | {} |",
                service.name,
                service.container_concurrency,
                thousands(counts.total()),
                counts.summary()
            );
        }
        let overlaps = self.counts(CC1.name).map_or(0, |c| c.get("500 overlap"));
        let _ = writeln!(out, "\nOverlaps at containerConcurrency 1: {overlaps}");
        let _ = writeln!(out, "\nDisruptions ({}):", self.events.len());
        for event in &self.events {
            let _ = writeln!(
                out,
                "  +{:6.1}s {}: {}",
                event.at.as_secs_f64(),
                event.what,
                describe(event)
            );
        }
        self.render_components(&mut out);
        let surprises: Vec<_> = self
            .services
            .iter()
            .flat_map(|(service, counts)| {
                counts
                    .surprises
                    .iter()
                    .map(move |(label, span)| (service.name, label, span, counts.get(label)))
            })
            .collect();
        if !surprises.is_empty() {
            let _ = writeln!(
                out,
                "\nOutcomes not asked for (first and last time, count, what the first said):"
            );
            for (name, label, span, n) in surprises {
                let _ = writeln!(
                    out,
                    "  +{:.1}s..+{:.1}s {name} {label} x{}: {}",
                    span.first.as_secs_f64(),
                    span.last.as_secs_f64(),
                    thousands(n),
                    span.detail.trim()
                );
            }
        }
        counts::render_result(&mut out, &self.failures());
        out
    }

    fn render_components(&self, out: &mut String) {
        let f = &self.findings;
        let _ = writeln!(
            out,
            "\nActivator pods seen: {} in {} ReplicaSet(s)",
            f.activator_pods, f.activator_replica_sets
        );
        for component in ["runway-activator", "runway-operator"] {
            let list = |m: &std::collections::BTreeMap<&str, Vec<String>>| {
                m.get(component)
                    .filter(|v| !v.is_empty())
                    .map_or("none".to_owned(), |v| v.join("; "))
            };
            let _ = writeln!(
                out,
                "{component}: container restarts: {}; failed pods: {}",
                list(&f.restarts),
                list(&f.failed)
            );
        }
        let _ = writeln!(
            out,
            "\nActivator memory (highest VmHWM of each pod's process, sampled every second):"
        );
        if f.activator_memory.is_empty() {
            let _ = writeln!(out, "  (no activator process found on this host)");
        }
        for (pod, peak) in &f.activator_memory {
            let _ = writeln!(
                out,
                "  {pod} (pid {}): peak {}, last RSS {}",
                peak.pid,
                mib(peak.hwm_kib),
                mib(peak.last_rss_kib)
            );
        }
    }

    fn counts(&self, name: &str) -> Option<&Counts> {
        self.services.iter().find(|(s, _)| s.name == name).map(|(_, c)| c)
    }
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soak::services::{CC10, WS};

    fn report(cc1: Counts, events: Vec<Event>) -> Report {
        let mut ok = Counts::default();
        ok.add("200", true, Duration::ZERO, "");
        let mut ws = Counts::default();
        ws.add("101", true, Duration::ZERO, "");
        Report {
            ns: "soak-x".into(),
            address: "10.96.0.5:80".parse().unwrap(),
            ran: Duration::from_secs(120),
            services: vec![(CC1, cc1), (CC10, ok), (WS, ws)],
            events,
            findings: Findings::default(),
        }
    }

    #[test]
    fn a_clean_run_passes() {
        let mut cc1 = Counts::default();
        cc1.add("200", true, Duration::ZERO, "");
        let event = Event {
            at: Duration::from_secs(20),
            what: "scale out".into(),
            took: Duration::from_secs(3),
            result: Ok("3 pods ready".into()),
        };
        let report = report(cc1, vec![event]);
        assert!(report.failures().is_empty(), "{:?}", report.failures());
        let text = report.render();
        assert!(text.contains("| cc1 | 1 | HTTP/1.1 | 1 | 200: 1 |"), "{text}");
        assert!(text.contains("Overlaps at containerConcurrency 1: 0"));
        assert!(text.contains("RESULT: OK"));
    }

    #[test]
    fn overlaps_failed_steps_and_restarts_fail_the_run() {
        let mut cc1 = Counts::default();
        cc1.add(
            "500 overlap",
            false,
            Duration::from_secs(30),
            "overlap: 1 other request(s) in flight",
        );
        let event = Event {
            at: Duration::from_secs(40),
            what: "scale cc0 to zero".into(),
            took: Duration::from_secs(180),
            result: Err("timed out".into()),
        };
        let mut report = report(cc1, vec![event]);
        report.findings.restarts.insert(
            "runway-activator",
            vec!["a: 1 container restart(s) (last: OOMKilled exit 137)".into()],
        );
        let failures = report.failures();
        assert_eq!(failures.len(), 3, "{failures:?}");
        let text = report.render();
        assert!(text.contains("Overlaps at containerConcurrency 1: 1"));
        assert!(
            text.contains("+30.0s..+30.0s cc1 500 overlap x1: overlap: 1 other"),
            "{text}"
        );
        assert!(text.contains("OOMKilled"));
        assert!(text.contains("RESULT: FAILED"));
    }
}
