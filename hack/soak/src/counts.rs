//! Outcomes counted by label ("200", "500 overlap", "error: …"); for the labels the run did not ask for, also when
//! they first and last happened, to line them up with the disruptions.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

/// Labels are keys: long error texts are cut so that similar errors land together.
const LABEL_CHARS: usize = 100;
const DETAIL_CHARS: usize = 200;

/// When an unexpected label was seen, and what the first one said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// Since the load started.
    pub first: Duration,
    pub last: Duration,
    /// The body or error text of the first.
    pub detail: String,
}

#[derive(Clone, Debug, Default)]
pub struct Counts {
    pub by_label: BTreeMap<String, u64>,
    /// Outcomes the run did not ask for.
    pub unexpected: u64,
    pub surprises: BTreeMap<String, Span>,
}

impl Counts {
    /// Counts one outcome; `expected` says whether the run asked for it.
    pub fn add(&mut self, label: &str, expected: bool, at: Duration, detail: &str) {
        let label: String = label.chars().take(LABEL_CHARS).collect();
        if !expected {
            self.unexpected += 1;
            self.surprises
                .entry(label.clone())
                .and_modify(|span| span.last = span.last.max(at))
                .or_insert_with(|| Span {
                    first: at,
                    last: at,
                    detail: detail.chars().take(DETAIL_CHARS).collect(),
                });
        }
        *self.by_label.entry(label).or_insert(0) += 1;
    }

    pub fn merge(&mut self, other: Counts) {
        for (label, n) in other.by_label {
            *self.by_label.entry(label).or_insert(0) += n;
        }
        self.unexpected += other.unexpected;
        for (label, span) in other.surprises {
            self.surprises
                .entry(label)
                .and_modify(|mine| {
                    if span.first < mine.first {
                        mine.first = span.first;
                        mine.detail.clone_from(&span.detail);
                    }
                    mine.last = mine.last.max(span.last);
                })
                .or_insert(span);
        }
    }

    pub fn total(&self) -> u64 {
        self.by_label.values().sum()
    }

    pub fn get(&self, label: &str) -> u64 {
        self.by_label.get(label).copied().unwrap_or(0)
    }

    /// `200: 1,234, 503: 2`
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for (label, n) in &self.by_label {
            if !out.is_empty() {
                out.push_str(", ");
            }
            let _ = write!(out, "{label}: {}", thousands(*n));
        }
        if out.is_empty() { "nothing".to_owned() } else { out }
    }
}

/// 1234567 -> "1,234,567"
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The closing lines of a report: OK, or FAILED with each reason.
pub fn render_result(out: &mut String, failures: &[String]) {
    if failures.is_empty() {
        let _ = writeln!(out, "\nRESULT: OK");
        return;
    }
    let _ = writeln!(out, "\nRESULT: FAILED");
    for failure in failures {
        let _ = writeln!(out, "  - {failure}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_spans_the_surprises() {
        let mut counts = Counts::default();
        for i in 0..10 {
            counts.add("200", true, Duration::from_secs(i), "");
            counts.add("503", false, Duration::from_secs(i), &format!("busy {i}"));
        }
        assert_eq!(counts.total(), 20);
        assert_eq!(counts.get("503"), 10);
        assert_eq!(counts.unexpected, 10);
        let span = Span {
            first: Duration::ZERO,
            last: Duration::from_secs(9),
            detail: "busy 0".into(),
        };
        assert_eq!(counts.surprises["503"], span);
        assert_eq!(counts.summary(), "200: 10, 503: 10");
    }

    #[test]
    fn merging_adds_up() {
        let mut a = Counts::default();
        a.add("200", true, Duration::ZERO, "");
        let mut b = Counts::default();
        b.add("200", true, Duration::ZERO, "");
        b.add("error: reset", false, Duration::from_secs(3), "later");
        a.add("error: reset", false, Duration::from_secs(1), "earlier");
        a.merge(b);
        assert_eq!(a.summary(), "200: 2, error: reset: 2");
        let span = &a.surprises["error: reset"];
        assert_eq!(
            (a.unexpected, span.first, span.last),
            (2, Duration::from_secs(1), Duration::from_secs(3))
        );
        assert_eq!(span.detail, "earlier");
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(2_254_000), "2,254,000");
    }
}
