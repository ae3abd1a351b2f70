//! The RBAC tables of the docs list exactly the rules the chart grants each component: every (API group, resource,
//! verb) of the Roles and ClusterRoles bound to the component's ServiceAccount, and nothing more.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::markdown::{Table, code_spans};
use crate::{repo, yaml};

/// One permission: API group ("" for core), resource (with subresource), verb.
type Permission = (String, String, String);

/// Where each component's RBAC table is: the document and the heading it sits under.
const RBAC_TABLES: [(&str, &str, &str); 3] = [
    ("docs/activator.md", "## Kubernetes access (RBAC)", "runway-activator"),
    (
        "docs/architecture.md",
        "### Kubernetes access (RBAC)",
        "runway-operator",
    ),
    ("docs/warm-zero.md", "### Kubernetes access (RBAC)", "runway-node"),
];

#[test]
fn the_activators_rbac_table_is_the_charts_rules() {
    assert_table_matches_chart("runway-activator");
}

#[test]
fn the_operators_rbac_table_is_the_charts_rules() {
    assert_table_matches_chart("runway-operator");
}

#[test]
fn the_node_agents_rbac_table_is_the_charts_rules() {
    assert_table_matches_chart("runway-node");
}

/// A table shaped like an RBAC table elsewhere would be checked by no one.
#[test]
fn every_rbac_table_is_one_the_tests_know() {
    for doc in repo::docs() {
        for table in doc.tables().iter().filter(|t| is_rbac_table(t)) {
            let known = RBAC_TABLES
                .iter()
                .any(|(path, heading, _)| doc.path == *path && table.heading == *heading);
            assert!(
                known,
                "{}: an RBAC table under {:?} that no test compares with the chart: add it to RBAC_TABLES",
                doc.at(table.line),
                table.heading
            );
        }
    }
}

fn assert_table_matches_chart(service_account: &str) {
    let granted = chart_permissions(service_account);
    assert!(
        !granted.is_empty(),
        "no Role or ClusterRole of the chart is bound to {service_account}"
    );
    let (path, heading, _) = RBAC_TABLES.iter().find(|(_, _, sa)| *sa == service_account).unwrap();
    let doc = repo::doc(path);
    let table = doc
        .tables()
        .into_iter()
        .find(|t| t.heading == *heading && is_rbac_table(t))
        .unwrap_or_else(|| panic!("{path} has no RBAC table under {heading:?}"));
    let documented = table_permissions(&table);
    let undocumented: Vec<_> = granted.difference(&documented).map(show).collect();
    let not_granted: Vec<_> = documented.difference(&granted).map(show).collect();
    assert!(
        undocumented.is_empty() && not_granted.is_empty(),
        "{} ({service_account}) drifted from deploy/runway/templates:\n  granted by the chart, missing in the doc: \
         {undocumented:?}\n  in the doc, not granted by the chart: {not_granted:?}",
        doc.at(table.line)
    );
}

fn show((group, resource, verb): &Permission) -> String {
    let group = if group.is_empty() { "core" } else { group };
    format!("{group}/{resource}:{verb}")
}

fn is_rbac_table(table: &Table) -> bool {
    table.starts_with_columns(&["api group", "resource", "verbs"])
}

/// A row names its group (`core` for ""), one or more resources and verbs, each in backticks.
fn table_permissions(table: &Table) -> BTreeSet<Permission> {
    let mut out = BTreeSet::new();
    for row in &table.rows {
        let group = match code_spans(&row[0]).first() {
            Some(group) => group.clone(),
            None if row[0].trim() == "core" => String::new(),
            None => panic!("RBAC table row {row:?}: the API group is `group` or core"),
        };
        for resource in code_spans(&row[1]) {
            for verb in code_spans(&row[2]) {
                out.insert((group.clone(), resource.clone(), verb));
            }
        }
    }
    out
}

/// The permissions of every Role and ClusterRole the chart binds to the ServiceAccount, read from the templates
/// (the chart's source; deploy/manifests/runway.yaml is rendered from them).
fn chart_permissions(service_account: &str) -> BTreeSet<Permission> {
    let mut objects = Vec::new();
    for file in repo::files() {
        if file.starts_with("deploy/runway/templates/") && file.ends_with(".yaml") {
            objects.extend(yaml::documents(&repo::read(&file)));
        }
    }
    let kind = |o: &Value| o["kind"].as_str().unwrap_or_default().to_owned();
    let bound_roles: Vec<(String, String)> = objects
        .iter()
        .filter(|o| kind(o).ends_with("RoleBinding"))
        .filter(|binding| {
            binding["subjects"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|subject| subject["kind"] == "ServiceAccount" && subject["name"] == service_account)
        })
        .map(|binding| {
            let role = &binding["roleRef"];
            (
                role["kind"].as_str().unwrap_or_default().to_owned(),
                role["name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let mut out = BTreeSet::new();
    for role in objects.iter().filter(|o| {
        let name = o["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        bound_roles.contains(&(kind(o), name))
    }) {
        for rule in role["rules"].as_array().into_iter().flatten() {
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    for verb in strings(&rule["verbs"]) {
                        out.insert((group.clone(), resource.clone(), verb));
                    }
                }
            }
        }
    }
    out
}

fn strings(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}
