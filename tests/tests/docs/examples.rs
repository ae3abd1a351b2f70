//! Examples of what the components write are in the format the code writes them: load report lines (every field,
//! nothing made up), the 503 the activator answers for a failing revision, and the operator's events about a
//! revision, whose notes start with the revision's name.

use serde_json::{Value, json};

use runway_api::Revision;
use runway_api::conditions::{FAILURE_REASONS, READY, revision_failure};
use runway_api::stats::LoadReport;

use crate::markdown::Doc;
use crate::repo;

#[test]
fn load_report_examples_are_lines_the_activator_sends() {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for doc in repo::docs() {
        for block in doc.code_blocks() {
            for (offset, line) in block.lines.iter().enumerate() {
                let Ok(shown) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                if shown.get("activator").is_none() || shown.get("kind").is_none() {
                    continue; // not a load report
                }
                checked += 1;
                let at = doc.at(block.line + 1 + offset);
                match serde_json::from_value::<LoadReport>(shown.clone()) {
                    // Serialized again, the report has every field the code writes and none it does not.
                    Ok(report) if serde_json::to_value(&report).unwrap() == shown => {}
                    Ok(report) => wrong.push(format!(
                        "{at}: shown\n    {shown}\n  the activator sends\n    {}",
                        serde_json::to_value(&report).unwrap()
                    )),
                    Err(e) => wrong.push(format!("{at}: not a LoadReport: {e}")),
                }
            }
        }
    }
    assert!(checked >= 2, "the load report examples were found ({checked})");
    assert!(
        wrong.is_empty(),
        "load report examples drifted from runway_api::stats::LoadReport:\n{}",
        wrong.join("\n")
    );
}

/// The paragraph right before a line (blank lines between them skipped).
fn paragraph_before(doc: &Doc, line: usize) -> String {
    let lines: Vec<&str> = doc.text.lines().collect();
    let mut out = Vec::new();
    for text in lines[..line - 1].iter().rev().skip_while(|l| l.trim().is_empty()) {
        if text.trim().is_empty() {
            break;
        }
        out.push(*text);
    }
    out.reverse();
    out.join(" ")
}

/// The body of the 503 a failing revision gets, shown in a code block after a paragraph about the 503's body, is
/// what `runway_api::revision_failure` makes of the revision: `{revision}: {message}`.
#[test]
fn the_failure_answer_example_names_the_revision() {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for doc in repo::docs() {
        for block in doc.code_blocks() {
            let before = paragraph_before(&doc, block.line);
            if !(before.contains("503") && before.contains("one-line body")) {
                continue;
            }
            checked += 1;
            let shown = block.lines.join("\n");
            let (name, message) = shown.split_once(": ").unwrap_or(("", &shown));
            let answered = revision_failure(&failing_revision(name, message));
            if answered.as_deref() != Some(shown.as_str()) || !crate::objects::is_revision_name(name) {
                wrong.push(format!(
                    "{}: shown {shown:?}; a failing revision, e.g. hello-00001, is answered {:?}",
                    doc.at(block.line),
                    revision_failure(&failing_revision("hello-00001", message)).unwrap_or_default()
                ));
            }
        }
    }
    assert!(checked >= 1, "the failure answer example was found");
    assert!(
        wrong.is_empty(),
        "the 503 of a failing revision names the revision:\n{}",
        wrong.join("\n")
    );
}

/// A revision whose pods cannot start: Ready False with a failure reason, none ready, one desired.
fn failing_revision(name: &str, message: &str) -> Revision {
    serde_json::from_value(json!({
        "apiVersion": "serving.runway.dev/v1alpha1",
        "kind": "Revision",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "template": {"spec": {"containers": [{"image": "app"}]}},
            "timeoutSeconds": 300,
            "progressDeadlineSeconds": 120,
        },
        "status": {
            "conditions": [{"type": READY, "status": "False", "reason": FAILURE_REASONS[0], "message": message,
                            "lastTransitionTime": "2025-01-01T00:00:00Z"}],
            "readyReplicas": 0,
            "desiredReplicas": 1,
        },
    }))
    .expect("a Revision")
}

/// In an event listing (`Type  Reason  Age  From  Message`), the operator's events about a revision's pods (a
/// failure reason, or a scale change) have notes that start with `{revision}: `, as the operator writes them.
#[test]
fn revision_events_shown_start_with_the_revision() {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for doc in repo::docs() {
        for block in doc.code_blocks() {
            let Some(header) = block.lines.iter().position(|l| is_event_header(l)) else {
                continue;
            };
            for (offset, row) in block.lines.iter().enumerate().skip(header + 1) {
                let cells: Vec<&str> = row.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
                let [_type, reason, _age, from, message] = cells[..] else {
                    continue;
                };
                let about_a_revision = FAILURE_REASONS.contains(&reason) || reason.starts_with("Scaled");
                if from != "runway-operator" || !about_a_revision {
                    continue;
                }
                checked += 1;
                let named = message
                    .split_once(": ")
                    .is_some_and(|(name, _)| crate::objects::is_revision_name(name));
                if !named {
                    wrong.push(format!("{}: {reason} {message:?}", doc.at(block.line + 1 + offset)));
                }
            }
        }
    }
    assert!(checked >= 1, "event listings were found");
    assert!(
        wrong.is_empty(),
        "the operator's events about a revision start with its name (\"hello-00001: ...\"):\n{}",
        wrong.join("\n")
    );
}

fn is_event_header(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    words == ["Type", "Reason", "Age", "From", "Message"]
}
