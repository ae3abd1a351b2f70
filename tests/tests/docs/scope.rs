//! What the activator keeps per revision is never described as kept per Service: its queue (and `--queue-depth`),
//! its pokes, its slots. Since revisions, a Service may split its requests among several revisions, each with its
//! own queue; a doc that says "per Service" gets the bound wrong by that factor.

use clap::CommandFactory;

use crate::markdown::without_code_spans;
use crate::repo;

/// Words of a sentence about something the activator keeps per revision.
const PER_REVISION_THINGS: [&str; 4] = ["queue", "poke", "slot", "--queue-depth"];

/// Ways of saying that a thing is per Service.
const PER_SERVICE: [&str; 4] = [
    "per Service",
    "Service's FIFO queue",
    "Service's queue",
    "for each Service",
];

#[test]
fn the_queue_depth_flag_is_per_revision() {
    // The precondition of the test below: the code's own word for the queue's scope.
    let command = runway_activator::config::Args::command();
    let help = command
        .get_arguments()
        .find(|a| a.get_long() == Some("queue-depth"))
        .and_then(|a| a.get_help())
        .map(|h| h.to_string())
        .unwrap_or_default();
    assert!(
        help.contains("per revision"),
        "--queue-depth's help no longer says \"per revision\" ({help:?}): check the docs' scope of the queue"
    );
}

#[test]
fn no_doc_says_queues_pokes_or_slots_are_per_service() {
    let mut wrong = Vec::new();
    for doc in repo::docs() {
        for sentence in doc.sentences() {
            let lower = sentence.text.to_lowercase();
            if !PER_REVISION_THINGS.iter().any(|thing| lower.contains(thing)) {
                continue;
            }
            let prose = without_code_spans(&sentence.text);
            if let Some(phrase) = PER_SERVICE.iter().find(|phrase| prose.contains(*phrase)) {
                wrong.push(format!("{}: {phrase:?} in {:?}", doc.at(sentence.line), sentence.text));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the activator's queue, pokes and slots are per revision (--queue-depth: \"per revision\"):\n{}",
        wrong.join("\n")
    );
}
