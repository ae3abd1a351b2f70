//! How often the activator probes a new pod, wherever a doc says it: every `--probe-fast-interval` for the first
//! `--probe-fast-window`, then every `--probe-interval`, with the defaults the activator's flags have.

use std::time::Duration;

use clap::CommandFactory;

use crate::markdown::Sentence;
use crate::repo;

struct Cadence {
    fast_interval: Duration,
    fast_window: Duration,
    interval: Duration,
}

fn activator_cadence() -> Cadence {
    let default = |flag: &str| -> Duration {
        let command = runway_activator::config::Args::command();
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(flag))
            .unwrap_or_else(|| panic!("the activator has no --{flag}"));
        let text = arg.get_default_values()[0].to_string_lossy().into_owned();
        runway_activator::config::parse_duration(&text).unwrap()
    };
    Cadence {
        fast_interval: default("probe-fast-interval"),
        fast_window: default("probe-fast-window"),
        interval: default("probe-interval"),
    }
}

/// A sentence states the probe cadence when, after a word starting with "prob" and before the end of that clause,
/// it says "every <duration>" or "<duration> probe". The first duration after that word must be the fast interval (a new pod is probed at the
/// fast rate first), and every duration after it one of the three settings.
#[test]
fn every_stated_probe_interval_is_the_activators() {
    let cadence = activator_cadence();
    let allowed = [cadence.fast_interval, cadence.fast_window, cadence.interval];
    let mut checked = 0;
    let mut wrong = Vec::new();
    for doc in repo::docs() {
        for sentence in doc.sentences() {
            let Some(durations) = probe_cadence(&sentence) else {
                continue;
            };
            checked += 1;
            let first_is_fast = durations.first() == Some(&cadence.fast_interval);
            if !first_is_fast || durations.iter().any(|d| !allowed.contains(d)) {
                wrong.push(format!(
                    "{}: {:?} states {durations:?}",
                    doc.at(sentence.line),
                    sentence.text
                ));
            }
        }
    }
    assert!(
        checked >= 2,
        "the docs state the probe cadence somewhere (found {checked})"
    );
    assert!(
        wrong.is_empty(),
        "the activator probes a new pod every {:?} for its first {:?}, then every {:?} (its flags' defaults); \
         these say otherwise:\n{}",
        cadence.fast_interval,
        cadence.fast_window,
        cadence.interval,
        wrong.join("\n")
    );
}

/// The durations a sentence gives after its first "prob" word, when it states a probe cadence.
fn probe_cadence(sentence: &Sentence) -> Option<Vec<Duration>> {
    let lower = sentence.text.to_lowercase().replace('`', "");
    let start = lower.find(" prob").or_else(|| lower.starts_with("prob").then_some(0))?;
    // Up to the end of the clause: what follows a `;` is about something else.
    let clause = lower[start..].split(';').next().unwrap();
    let words: Vec<&str> = clause
        .split(|c: char| c.is_whitespace() || "(),;:".contains(c))
        .filter(|w| !w.is_empty())
        .collect();
    let mut durations = Vec::new();
    let mut states_cadence = false;
    let mut i = 0;
    while i < words.len() {
        // `10 ms` (two words) or `10ms` (one).
        let (duration, width) = match duration_of(words[i], words.get(i + 1).copied().unwrap_or_default()) {
            Some(duration) => (duration, 2),
            None => match split_unit(words[i]).and_then(|(number, unit)| duration_of(number, unit)) {
                Some(duration) => (duration, 1),
                None => {
                    i += 1;
                    continue;
                }
            },
        };
        let after_every = i > 0 && words[i - 1] == "every";
        let before_probe = words.get(i + width).is_some_and(|w| w.starts_with("probe"));
        states_cadence |= after_every || before_probe;
        durations.push(duration);
        i += width;
    }
    states_cadence.then_some(durations)
}

fn split_unit(word: &str) -> Option<(&str, &str)> {
    let digits = word.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))?;
    (digits > 0).then(|| word.split_at(digits))
}

/// A number and its unit, `ms` or `s`.
fn duration_of(number: &str, unit: &str) -> Option<Duration> {
    let value: f64 = number.replace(',', "").parse().ok()?;
    match unit.trim_end_matches('.') {
        "ms" => Some(Duration::from_secs_f64(value / 1000.0)),
        "s" => Some(Duration::from_secs_f64(value)),
        _ => None,
    }
}
