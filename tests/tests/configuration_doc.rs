//! docs/configuration.md must mention every Service and Revision field (each in its own section), every Helm value
//! and every operator, activator and node agent flag.

use std::path::Path;

use clap::CommandFactory;

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {}: {e}", full.display()))
}

fn assert_documented(what: &str, names: &[String]) {
    let doc = repo_file("docs/configuration.md");
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| !doc.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md lacks these {what}: {missing:?}"
    );
}

/// Values holding Kubernetes objects, documented as a whole rather than key by key.
const OPAQUE_VALUES: [&str; 5] = ["resources", "nodeSelector", "tolerations", "affinity", "labels"];

/// Dotted paths of the leaves of a YAML mapping (read as JSON values, so its keys are strings), stopping at opaque
/// values.
fn leaf_paths(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
    let serde_json::Value::Object(map) = value else {
        out.push(prefix.to_owned());
        return;
    };
    for (key, child) in map {
        let key = key.as_str();
        let path = if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}.{key}")
        };
        if OPAQUE_VALUES.contains(&key) {
            out.push(path);
        } else {
            leaf_paths(child, &path, out);
        }
    }
}

#[test]
fn every_helm_value_is_documented() {
    let values: serde_json::Value = serde_saphyr::from_str(&repo_file("deploy/runway/values.yaml")).unwrap();
    let mut paths = vec![];
    leaf_paths(&values, "", &mut paths);
    assert!(paths.len() > 20, "values.yaml was read: {paths:?}");
    assert_documented("Helm values", &paths);
}

/// The part of docs/configuration.md under the heading that starts with `heading`, up to the next `## ` heading.
fn doc_section(heading: &str) -> String {
    let doc = repo_file("docs/configuration.md");
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("docs/configuration.md has no heading {heading:?}"));
    let rest = &doc[start + heading.len()..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    rest[..end].to_owned()
}

/// The fields of a CRD's spec and status as dotted paths (`spec.scaling.minScale`, `spec.traffic[].tag`), down to
/// their leaves, except below the `opaque` paths (a PodSpec, Kubernetes conditions), which are documented whole.
fn crd_fields(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    opaque: &[&str],
) -> Vec<String> {
    let crd = serde_json::to_value(crd).unwrap();
    let root = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut paths = vec![];
    for top in ["spec", "status"] {
        schema_leaves(&root["properties"][top], top, opaque, &mut paths);
    }
    paths
}

fn schema_leaves(schema: &serde_json::Value, path: &str, opaque: &[&str], out: &mut Vec<String>) {
    if opaque.contains(&path) {
        out.push(path.to_owned());
    } else if let Some(properties) = schema["properties"].as_object() {
        for (field, child) in properties {
            schema_leaves(child, &format!("{path}.{field}"), opaque, out);
        }
    } else if schema["items"]["properties"].is_object() {
        schema_leaves(&schema["items"], &format!("{path}[]"), opaque, out);
    } else {
        out.push(path.to_owned());
    }
}

fn assert_in_section(heading: &str, what: &str, names: &[String]) {
    let section = doc_section(heading);
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| !section.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md, section {heading:?}, lacks these {what}: {missing:?}"
    );
}

#[test]
fn every_service_field_is_documented() {
    let paths = crd_fields(
        &runway_api::crd::service_crd(),
        &["spec.template.spec", "status.conditions"],
    );
    // The schema was walked down to the leaves, the new ones of revisions included.
    for field in [
        "spec.scaling.minScale",
        "spec.template.metadata.name",
        "spec.traffic[].revisionName",
        "spec.traffic[].latestRevision",
        "spec.traffic[].percent",
        "spec.traffic[].tag",
        "spec.rollout.durationSeconds",
        "spec.rollout.maxErrorPercent",
        "spec.revisionHistoryLimit",
        "status.latestReadyRevisionName",
        "status.traffic[].url",
        "status.rollout.phase",
    ] {
        assert!(paths.iter().any(|p| p == field), "{field} not found in {paths:?}");
    }
    assert_in_section("## The `Service` resource", "Service fields", &paths);
}

#[test]
fn every_revision_field_is_documented() {
    let paths = crd_fields(
        &runway_api::crd::revision_crd(),
        &["spec.template.spec", "status.conditions"],
    );
    for field in [
        "spec.timeoutSeconds",
        "status.routed",
        "status.trafficPercent",
        "status.imageDigest",
    ] {
        assert!(paths.iter().any(|p| p == field), "{field} not found in {paths:?}");
    }
    assert_in_section("## The `Revision` resource", "Revision fields", &paths);
}

/// Every `--long` flag of a command, with its flattened groups.
fn flags(command: clap::Command) -> Vec<String> {
    command
        .get_arguments()
        .filter_map(|a| a.get_long())
        .map(|long| format!("--{long}"))
        .collect()
}

#[test]
fn every_operator_flag_is_documented() {
    let flags = flags(runway_operator::cli::Args::command());
    assert!(flags.len() > 10, "{flags:?}");
    assert_documented("operator flags", &flags);
}

#[test]
fn every_activator_flag_is_documented() {
    let flags = flags(runway_activator::config::Args::command());
    assert!(flags.len() > 10, "{flags:?}");
    assert_documented("activator flags", &flags);
}

#[test]
fn every_node_agent_flag_is_documented() {
    let flags = flags(runway_node::cli::Args::command());
    assert!(flags.len() > 5, "{flags:?}");
    assert_in_section("## Node agent flags (runway-node)", "node agent flags", &flags);
}
