//! No doc promises as future what the API already has. A sentence that says something is not there yet ("cannot be
//! mapped yet", "comes with revisions") must not be about a kind or a field the CRDs define: tags, revisions,
//! rollouts and the rest shipped, and such a sentence describes a release that is gone.

use std::collections::BTreeSet;

use kube::CustomResourceExt;

use crate::repo;

/// Ways of saying that something is still to come; and "cannot be <done> yet", see `not_yet`.
const NOT_YET: [&str; 6] = [
    "not supported yet",
    "not yet supported",
    "come with ",
    "comes with ",
    "will come",
    "in a later release",
];

/// The marker of a sentence that says something is still to come: one of `NOT_YET`, or "cannot be <word> yet".
fn not_yet(lower: &str) -> Option<String> {
    if let Some(marker) = NOT_YET.iter().find(|m| lower.contains(*m)) {
        return Some((*marker).to_owned());
    }
    lower.match_indices("cannot be ").find_map(|(i, _)| {
        let rest: Vec<&str> = lower[i..].split_whitespace().take(4).collect();
        (rest.get(3).map(|w| w.trim_matches(|c: char| !c.is_alphanumeric())) == Some("yet")).then(|| rest.join(" "))
    })
}

/// The API's vocabulary: its kinds (singular and plural) and every field name of their schemas, lower-cased.
fn api_words() -> BTreeSet<String> {
    let crds = [
        runway_api::crd::service_crd(),
        runway_api::crd::revision_crd(),
        runway_api::domain_mapping::DomainMapping::crd(),
    ];
    let mut words = BTreeSet::new();
    for crd in &crds {
        let names = &crd.spec.names;
        words.insert(names.kind.to_lowercase());
        words.insert(names.plural.clone());
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
        collect_fields(&schema["openAPIV3Schema"]["properties"]["spec"], &mut words);
    }
    // A Service's own word is everywhere; it says nothing about a feature.
    words.remove("service");
    words.remove("services");
    // Words of every object's metadata, not features.
    for common in ["metadata", "name", "labels", "annotations"] {
        words.remove(common);
    }
    words
}

/// The field names below a schema, down through lists, except the PodSpec of `spec.template.spec` (Kubernetes'
/// fields, not Runway's).
fn collect_fields(schema: &serde_json::Value, words: &mut BTreeSet<String>) {
    for (field, child) in schema["properties"].as_object().into_iter().flatten() {
        words.insert(field.to_lowercase());
        if field == "template" {
            words.extend(["metadata".to_owned(), "name".to_owned()]);
            continue;
        }
        collect_fields(child, words);
    }
    if schema["items"].is_object() {
        collect_fields(&schema["items"], words);
    }
}

#[test]
fn no_doc_promises_what_the_api_has() {
    let vocabulary = api_words();
    assert!(
        vocabulary.contains("tag") && vocabulary.contains("revisions"),
        "{vocabulary:?}"
    );
    let mut wrong = Vec::new();
    for doc in repo::docs() {
        for sentence in doc.sentences() {
            let lower = sentence.text.to_lowercase();
            let Some(marker) = not_yet(&lower) else {
                continue;
            };
            let words: BTreeSet<String> = lower
                .split(|c: char| !c.is_ascii_alphanumeric())
                .map(|w| w.to_owned())
                .collect();
            // "tags" counts as "tag": plurals of field names.
            let shipped: Vec<&String> = vocabulary
                .iter()
                .filter(|word| words.contains(*word) || words.contains(&format!("{word}s")))
                .collect();
            if !shipped.is_empty() {
                wrong.push(format!(
                    "{}: {marker:?} about {shipped:?}: {:?}",
                    doc.at(sentence.line),
                    sentence.text
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "docs speak of shipped API as future:\n{}",
        wrong.join("\n")
    );
}
