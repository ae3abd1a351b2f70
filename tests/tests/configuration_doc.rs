//! docs/configuration.md must mention every Service field, every Helm value and every operator and activator flag.

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
const OPAQUE_VALUES: [&str; 4] = ["resources", "nodeSelector", "tolerations", "affinity"];

/// Dotted paths of the leaves of a YAML mapping, stopping at opaque values.
fn leaf_paths(value: &serde_yaml::Value, prefix: &str, out: &mut Vec<String>) {
    let serde_yaml::Value::Mapping(map) = value else {
        out.push(prefix.to_owned());
        return;
    };
    for (key, child) in map {
        let key = key.as_str().expect("values.yaml keys are strings");
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
    let values: serde_yaml::Value = serde_yaml::from_str(&repo_file("deploy/runway/values.yaml")).unwrap();
    let mut paths = vec![];
    leaf_paths(&values, "", &mut paths);
    assert!(paths.len() > 20, "values.yaml was read: {paths:?}");
    assert_documented("Helm values", &paths);
}

#[test]
fn every_service_field_is_documented() {
    let crd = serde_json::to_value(runway_api::crd::service_crd()).unwrap();
    let root = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
    let mut paths = vec![];
    for (top, nested) in [("spec", vec!["scaling"]), ("status", vec![])] {
        for (field, schema) in root[top]["properties"].as_object().unwrap() {
            if nested.contains(&field.as_str()) {
                for inner in schema["properties"].as_object().unwrap().keys() {
                    paths.push(format!("{top}.{field}.{inner}"));
                }
            } else if field != "template" {
                paths.push(format!("{top}.{field}"));
            }
        }
    }
    paths.extend(
        [
            "spec.template.metadata.labels",
            "spec.template.metadata.annotations",
            "spec.template.spec",
        ]
        .map(String::from),
    );
    assert_documented("Service fields", &paths);
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
