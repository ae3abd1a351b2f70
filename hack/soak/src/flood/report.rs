//! What a flood prints at the end, and its verdict.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use super::clients::{Answer, Idle, IdleEnd};
use super::memory::Trace;
use crate::counts::{self, thousands};

pub struct FloodReport {
    /// "standalone activator pid 123 at 127.0.0.1:4000 (route without backend, timeout 120 s)"
    pub target: String,
    pub header_bytes: usize,
    pub answers: Vec<Answer>,
    pub idle: Vec<(Idle, IdleEnd)>,
    pub idle_wait: Duration,
    pub idle_limit: Duration,
    pub memory_limit_mib: u64,
    /// None when the activator's pid is unknown.
    pub trace: Option<Trace>,
    /// The exit status of an activator this run started, if it exited during the run.
    pub exited: Option<String>,
}

/// The answers a flooded activator may give a large request: 503 when refused, 504 once admitted to a route whose
/// backend never comes.
const ANSWERED: [&str; 2] = ["503", "504"];

impl FloodReport {
    pub fn failures(&self) -> Vec<String> {
        let mut out = vec![];
        if let Some(status) = &self.exited {
            out.push(format!("the activator exited during the flood ({status})"));
        } else if let Some(at) = self.trace.and_then(|t| t.gone_at) {
            out.push(format!("the activator was gone at +{:.1} s", at.as_secs_f64()));
        }
        if let Some(trace) = self.trace
            && trace.peak_hwm_kib >= self.memory_limit_mib * 1024
        {
            out.push(format!(
                "peak RSS {} reached the {} MiB limit (the chart's memory limit: the pod would be OOM-killed)",
                mib(trace.peak_hwm_kib),
                self.memory_limit_mib
            ));
        }
        let too_long = self
            .idle
            .iter()
            .filter(|(_, end)| match end {
                IdleEnd::Closed(after) => *after > self.idle_limit,
                IdleEnd::Open => self.idle_wait >= self.idle_limit,
                IdleEnd::ConnectFailed => false,
            })
            .count();
        if too_long > 0 {
            out.push(format!(
                "{too_long} idle connection(s) stayed open longer than {} s",
                self.idle_limit.as_secs()
            ));
        }
        // Every large request is either admitted (504 at the route's timeout) or refused with a 503: an overloaded
        // activator still answers, and a request without an answer (closed, reset) or with another status fails.
        let mut unexpected = BTreeMap::<&str, usize>::new();
        for answer in self.answers.iter().filter(|a| !ANSWERED.contains(&a.label.as_str())) {
            *unexpected.entry(answer.label.as_str()).or_default() += 1;
        }
        if !unexpected.is_empty() {
            let seen: Vec<String> = unexpected.iter().map(|(label, n)| format!("{label} x {n}")).collect();
            out.push(format!("large requests without a 503 or 504: {}", seen.join(", ")));
        }
        out
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nFlood: {} connections x one {} KiB header, {} idle connections, against the {}\n",
            thousands(self.answers.len() as u64),
            self.header_bytes / 1024,
            self.idle.len(),
            self.target
        );
        self.render_answers(&mut out);
        self.render_idle(&mut out);
        match self.trace {
            None => {
                let _ = writeln!(out, "\nActivator memory: unknown (pass --pid)");
            }
            Some(trace) => {
                let crossed = trace.crossed.map_or_else(
                    || format!("never reached {} MiB", self.memory_limit_mib),
                    |(at, open)| {
                        format!(
                            "reached {} MiB at +{:.1} s, with {} large heads sent",
                            self.memory_limit_mib,
                            at.as_secs_f64(),
                            thousands(open as u64)
                        )
                    },
                );
                let _ = writeln!(
                    out,
                    "\nActivator memory: peak VmHWM {}; RSS {crossed}",
                    mib(trace.peak_hwm_kib)
                );
            }
        }
        counts::render_result(&mut out, &self.failures());
        out
    }

    fn render_answers(&self, out: &mut String) {
        // label -> (connections, first answer, last answer)
        let mut by_label: BTreeMap<&str, (u64, Option<Duration>, Option<Duration>)> = BTreeMap::new();
        for answer in &self.answers {
            let entry = by_label.entry(&answer.label).or_insert((0, None, None));
            entry.0 += 1;
            if let Some(at) = answer.at {
                entry.1 = Some(entry.1.map_or(at, |first| first.min(at)));
                entry.2 = Some(entry.2.map_or(at, |last| last.max(at)));
            }
        }
        let _ = writeln!(out, "| answer to the large request | connections | first | last |");
        let _ = writeln!(out, "| --- | --- | --- | --- |");
        let secs = |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()));
        for (label, (n, first, last)) in by_label {
            let _ = writeln!(out, "| {label} | {} | {} | {} |", thousands(n), secs(first), secs(last));
        }
    }

    fn render_idle(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\n| idle connection | connections | closed by the activator after (min / median / max) | still open at {} s | connect failed |",
            self.idle_wait.as_secs()
        );
        let _ = writeln!(out, "| --- | --- | --- | --- | --- |");
        for kind in Idle::ALL {
            let ends: Vec<IdleEnd> = self.idle.iter().filter(|(k, _)| *k == kind).map(|(_, e)| *e).collect();
            let mut closed: Vec<Duration> = ends
                .iter()
                .filter_map(|e| match e {
                    IdleEnd::Closed(d) => Some(*d),
                    _ => None,
                })
                .collect();
            closed.sort();
            let times = match (closed.first(), closed.get(closed.len() / 2), closed.last()) {
                (Some(min), Some(median), Some(max)) => format!(
                    "{} closed: {:.1} / {:.1} / {:.1} s",
                    closed.len(),
                    min.as_secs_f64(),
                    median.as_secs_f64(),
                    max.as_secs_f64()
                ),
                _ => "none closed".to_owned(),
            };
            let count = |want: IdleEnd| ends.iter().filter(|e| **e == want).count();
            let _ = writeln!(
                out,
                "| {} | {} | {times} | {} | {} |",
                kind.describe(),
                ends.len(),
                count(IdleEnd::Open),
                count(IdleEnd::ConnectFailed)
            );
        }
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(peak_mib: u64, idle: Vec<(Idle, IdleEnd)>) -> FloodReport {
        FloodReport {
            target: "standalone activator".into(),
            header_bytes: 60 * 1024,
            answers: vec![
                Answer {
                    label: "504".into(),
                    at: Some(Duration::from_secs(120)),
                },
                Answer {
                    label: "503".into(),
                    at: Some(Duration::from_secs(1)),
                },
            ],
            idle,
            idle_wait: Duration::from_secs(120),
            idle_limit: Duration::from_secs(70),
            memory_limit_mib: 256,
            trace: Some(Trace {
                peak_hwm_kib: peak_mib * 1024,
                crossed: None,
                gone_at: None,
            }),
            exited: None,
        }
    }

    #[test]
    fn a_bounded_activator_passes() {
        let r = report(40, vec![(Idle::Silent, IdleEnd::Closed(Duration::from_secs(10)))]);
        assert!(r.failures().is_empty(), "{:?}", r.failures());
        let text = r.render();
        assert!(text.contains("| 504 | 1 | 120.0 s | 120.0 s |"), "{text}");
        assert!(
            text.contains("| nothing sent | 1 | 1 closed: 10.0 / 10.0 / 10.0 s | 0 | 0 |"),
            "{text}"
        );
        assert!(text.contains("RESULT: OK"));
    }

    #[test]
    fn memory_and_long_idle_connections_fail() {
        let r = report(
            600,
            vec![
                (Idle::Silent, IdleEnd::Open),
                (Idle::PartialHttp1Head, IdleEnd::Closed(Duration::from_secs(65))),
            ],
        );
        let failures = r.failures();
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert!(failures[0].contains("600.0 MiB"));
        assert!(failures[1].starts_with("1 idle connection(s)"));
    }

    #[test]
    fn a_large_request_without_a_503_or_504_fails() {
        let mut r = report(40, vec![]);
        r.answers.push(Answer {
            label: "closed without an answer".into(),
            at: None,
        });
        r.answers.push(Answer {
            label: "404".into(),
            at: Some(Duration::from_secs(1)),
        });
        assert_eq!(
            r.failures(),
            ["large requests without a 503 or 504: 404 x 1, closed without an answer x 1"]
        );
    }
}
