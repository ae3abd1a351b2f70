//! The objects the docs name are the ones the operator makes: one Deployment per revision, named after the revision
//! (`runway_api::names::deployment_name`, e.g. `hello-00001`), never one per Service named after the Service.

use crate::markdown::{Doc, code_spans, without_code_spans};
use crate::repo;

/// Deployments that are not a revision's: the chart's own.
fn chart_deployments() -> Vec<String> {
    ["runway-activator", "runway-operator"].map(str::to_owned).to_vec()
}

/// Whether a name is a revision's: `revision_name(service, generation)` or the `{revision}` placeholder.
pub fn is_revision_name(name: &str) -> bool {
    if name == "{revision}" {
        return true;
    }
    let Some((service, generation)) = name.rsplit_once('-') else {
        return false;
    };
    generation.len() == 5
        && generation
            .parse::<i64>()
            .is_ok_and(|g| runway_api::names::revision_name(service, g) == name)
}

#[test]
fn revision_names_are_the_operators() {
    assert!(is_revision_name("hello-00001"));
    assert!(is_revision_name("{revision}"));
    assert!(!is_revision_name("hello"));
    assert!(!is_revision_name("{name}"));
    assert_eq!(runway_api::names::deployment_name("hello-00001"), "hello-00001");
}

/// The names the docs give Deployments: "Deployment `x`", "Deployment \"x\"", `kubectl ... deployment x`,
/// `deployment/x`. An old Deployment (of a release before revisions) and a plain one (the benchmark's baseline,
/// the sample app's smoke test) are not Runway's.
#[test]
fn every_named_deployment_is_a_revisions_or_the_charts() {
    let mut wrong = Vec::new();
    for doc in repo::docs() {
        for (line, name) in deployment_names(&doc) {
            let ok = is_revision_name(&name) || chart_deployments().contains(&name) || name.contains('/');
            if !ok {
                wrong.push(format!("{}: Deployment {name:?}", doc.at(line)));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "Runway runs a revision's pods in a Deployment named after the revision (e.g. hello-00001), not after the \
         Service:\n{}",
        wrong.join("\n")
    );
}

fn deployment_names(doc: &Doc) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for sentence in doc.sentences() {
        let words: Vec<&str> = sentence.text.split_whitespace().collect();
        for (i, pair) in words.windows(2).enumerate() {
            let before = if i > 0 { words[i - 1] } else { "" };
            let named = pair[0] == "Deployment" && (pair[1].starts_with('`') || pair[1].starts_with('"'));
            if named && !["old", "plain"].contains(&before) {
                let name = pair[1].trim_matches(|c: char| "`\"(),.:;".contains(c));
                out.push((sentence.line, name.to_owned()));
            }
        }
        for span in code_spans(&sentence.text) {
            out.extend(
                kubectl_deployment_names(&span)
                    .into_iter()
                    .map(|name| (sentence.line, name)),
            );
        }
    }
    for block in doc.code_blocks() {
        for (offset, line) in block.lines.iter().enumerate() {
            for name in kubectl_deployment_names(line) {
                out.push((block.line + 1 + offset, name));
            }
        }
    }
    out
}

/// `kubectl describe deployment x`, `kubectl get deploy/x` and the like.
fn kubectl_deployment_names(command: &str) -> Vec<String> {
    let words: Vec<&str> = command.split_whitespace().collect();
    if !words.contains(&"kubectl") {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, word) in words.iter().enumerate() {
        let kind = ["deployment", "deployments", "deploy", "deployment.apps"];
        if let Some((kind_word, name)) = word.split_once('/') {
            if kind.contains(&kind_word) {
                out.push(name.to_owned());
            }
        } else if kind.contains(word)
            && let Some(name) = words.get(i + 1).filter(|n| !n.starts_with('-'))
        {
            out.push((*name).to_owned());
        }
    }
    out
}

/// Sentences that give a Service one Deployment of its own.
const ONE_DEPLOYMENT_PER_SERVICE: [&str; 6] = [
    "Service into a Deployment",
    "Deployment per Service",
    "Service whose Deployment",
    "Service's Deployment",
    "Deployment of the Service",
    "Deployment for each Service",
];

#[test]
fn no_doc_gives_a_service_one_deployment() {
    let mut wrong = Vec::new();
    for doc in repo::docs() {
        for sentence in doc.sentences() {
            let prose = without_code_spans(&sentence.text);
            if let Some(phrase) = ONE_DEPLOYMENT_PER_SERVICE.iter().find(|p| prose.contains(*p)) {
                wrong.push(format!("{}: {phrase:?} in {:?}", doc.at(sentence.line), sentence.text));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "each revision has its Deployment (a Service has one per revision):\n{}",
        wrong.join("\n")
    );
}

/// Example pod names (`{deployment}-{replicaset hash}-{suffix}`) belong to a revision's Deployment or the chart's.
#[test]
fn example_pod_names_belong_to_a_revisions_deployment() {
    let mut wrong = Vec::new();
    for doc in repo::docs() {
        let mut texts: Vec<(usize, String)> = doc.sentences().into_iter().map(|s| (s.line, s.text)).collect();
        for block in doc.code_blocks() {
            texts.extend(
                block
                    .lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (block.line + 1 + i, l.clone())),
            );
        }
        for (line, text) in texts {
            for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
                if let Some(deployment) = pod_deployment(word)
                    && !is_revision_name(deployment)
                    && !chart_deployments().iter().any(|d| d == deployment)
                {
                    wrong.push(format!("{}: pod {word:?} of Deployment {deployment:?}", doc.at(line)));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "pods of a Runway Service belong to a revision's Deployment (hello-00001-5d8f7c9b4-x2x9k):\n{}",
        wrong.join("\n")
    );
}

/// The Deployment of a pod name made by a ReplicaSet: the name less a 9- or 10-character hash (with a digit) and a
/// 5-character suffix.
fn pod_deployment(word: &str) -> Option<&str> {
    let (rest, suffix) = word.rsplit_once('-')?;
    let (deployment, hash) = rest.rsplit_once('-')?;
    let alphanumeric = |s: &str| s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let looks_generated = suffix.len() == 5
        && alphanumeric(suffix)
        && (9..=10).contains(&hash.len())
        && alphanumeric(hash)
        && hash.chars().any(|c| c.is_ascii_digit());
    (looks_generated && !deployment.is_empty()).then_some(deployment)
}
