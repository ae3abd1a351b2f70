//! The metrics tables of the docs list exactly the metrics each component registers, with their type and labels,
//! and no doc names a `runway_*` series that does not exist.
//!
//! The activator's metrics come from its real registry (`runway_activator::revision::Metrics`, public). The
//! operator's are private to its crate, so they are read from the source of `operator/src/metrics.rs` by
//! `scan_registrations`; that scanner is checked against the activator's real registry, so it cannot silently read
//! nothing or the wrong thing. `runway_build_info`, which both register through `runway_api::build`, comes from that
//! helper's own registry.

use std::collections::{BTreeMap, BTreeSet};

use runway_activator::model::RevisionId;
use runway_activator::revision::Metrics;

use crate::markdown::{Table, code_spans};
use crate::repo;

/// A metric as exposed: its name as a series is named (`_total` for counters), its type and its label names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Metric {
    kind: String,
    labels: BTreeSet<String>,
}

/// Metrics by series name.
type Registered = BTreeMap<String, Metric>;

#[test]
fn the_activators_metrics_table_is_its_registry() {
    assert_documented("runway_activator_", &activator_registry());
}

#[test]
fn the_operators_metrics_table_is_its_registry() {
    let registered = scan_registrations("operator/src/metrics.rs");
    assert!(
        registered.len() >= 10,
        "the scan found the operator's metrics: {registered:?}"
    );
    assert_documented("runway_operator_", &registered);
}

#[test]
fn the_node_agents_metrics_table_is_its_registry() {
    assert_documented("runway_node_", &node_registry());
}

#[test]
fn build_info_is_documented() {
    let mut registry = prometheus_client::registry::Registry::default();
    runway_api::build::register(&mut registry, "activator");
    assert_documented(
        "runway_build_info",
        &parse_exposition(&encode(&registry), "runway_build_info"),
    );
}

#[test]
fn the_source_scan_reads_what_the_real_registry_has() {
    assert_eq!(
        scan_registrations("activator/src/revision/metrics.rs"),
        activator_registry()
    );
}

/// A `runway_*` name in any doc (a PromQL example, prose) must be a series that exists.
#[test]
fn every_metric_name_in_the_docs_exists() {
    let mut known = BTreeSet::new();
    for (name, metric) in activator_registry()
        .iter()
        .chain(&scan_registrations("operator/src/metrics.rs"))
        .chain(&node_registry())
        .chain([(&"runway_build_info".to_owned(), &Metric::default())])
    {
        known.insert(name.clone());
        if metric.kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                known.insert(format!("{name}{suffix}"));
            }
        }
    }
    let mut unknown = Vec::new();
    for doc in repo::docs() {
        for sentence in doc.sentences() {
            for span in code_spans(&sentence.text) {
                let name: String = span
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let is_metric = ["runway_activator_", "runway_operator_", "runway_node_"]
                    .iter()
                    .any(|prefix| name.starts_with(prefix));
                if is_metric && !known.contains(&name) {
                    unknown.push(format!("{}: {name}", doc.at(sentence.line)));
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "metrics named in the docs that no component registers: {unknown:#?}"
    );
}

/// The activator's registry (its own metrics, not the build's), with one series of each metric so that the
/// exposition shows the label names.
fn activator_registry() -> Registered {
    let metrics = Metrics::default();
    let series = metrics.for_revision(&RevisionId::new("ns", "svc", "svc-00001"));
    series.count_response(200, std::time::Duration::from_millis(100));
    series.queue_wait.observe(0.1);
    series.cold_start_duration.observe(0.1);
    parse_exposition(&metrics.encode(), "runway_activator_")
}

/// The node agent's registry, with a series of its labelled metric.
fn node_registry() -> Registered {
    let metrics = runway_node::metrics::Metrics::default();
    metrics.error(runway_node::metrics::Operation::Freeze);
    parse_exposition(&metrics.encode(), "runway_node_")
}

fn encode(registry: &prometheus_client::registry::Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text
}

/// The metrics of an exposition whose names start with `prefix`, with their types and label names.
fn parse_exposition(text: &str, prefix: &str) -> Registered {
    let mut out = Registered::new();
    let mut kinds = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (family, kind) = rest.split_once(' ').unwrap();
            kinds.insert(family.to_owned(), kind.to_owned());
        }
    }
    for (family, kind) in kinds.into_iter().filter(|(family, _)| family.starts_with(prefix)) {
        let name = if kind == "counter" {
            format!("{family}_total")
        } else {
            family.clone()
        };
        let of_family = |series: &str| {
            ["", "_total", "_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| series == format!("{family}{suffix}"))
        };
        let labels = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.split_once('{'))
            .filter(|(series, _)| of_family(series))
            .map(|(_, rest)| rest.split_once('}').unwrap().0.to_owned())
            .flat_map(|labels| {
                labels
                    .split(',')
                    .map(|pair| pair.split_once('=').unwrap().0.to_owned())
                    .collect::<Vec<_>>()
            })
            .filter(|label| label != "le")
            .collect();
        out.insert(name, Metric { kind, labels });
    }
    out
}

/// The metrics a `metrics.rs` registers, read from its source: the registry's prefix, each `registry.register(name,
/// help, field.clone())`, the field's type in the struct (`Family<Labels, Counter>`, `Gauge`, `Histogram`) and the
/// fields of its label struct.
fn scan_registrations(path: &str) -> Registered {
    let source = repo::read(path);
    let flat: String = source.split_whitespace().collect::<Vec<_>>().join(" ");
    // The component's registry: the root's own prefix, or that of the sub-registry beside runway_build_info.
    let prefix = between(&flat, "Registry::with_prefix(\"", "\"")
        .or_else(|| between(&flat, "sub_registry_with_prefix(\"", "\""))
        .expect("a registry with a prefix");
    let mut out = Registered::new();
    for call in flat.split("registry.register(").skip(1) {
        let name = between(call, "\"", "\"").expect("a metric name");
        let value = &call[..call.find(".clone()").expect("a registered value")];
        let value = value
            .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()
            .unwrap();
        let type_ = field_type(&flat, value);
        let kind = ["Histogram", "Counter", "Gauge"]
            .iter()
            .find(|k| type_.contains(*k))
            .unwrap_or_else(|| panic!("{path}: {value} has no metric type in {type_:?}"))
            .to_lowercase();
        let labels = match type_.strip_prefix("Family<") {
            Some(args) => struct_fields(&flat, args.split(',').next().unwrap().trim()),
            None => BTreeSet::new(),
        };
        let full = format!("{prefix}_{name}");
        let full = if kind == "counter" {
            format!("{full}_total")
        } else {
            full
        };
        out.insert(full, Metric { kind, labels });
    }
    out
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(&text[start..end])
}

/// The declared type of a field of `struct Metrics`, e.g. `Family<ResultLabels, Counter>`.
fn field_type(flat: &str, field: &str) -> String {
    let body = struct_body(flat, "Metrics");
    let declaration = body
        .split(',')
        .scan(String::new(), |pending, piece| {
            // Commas inside `Family<A, B>` split a declaration: glue pieces until the angle brackets balance.
            pending.push_str(piece);
            pending.push(',');
            let balanced = pending.matches('<').count() == pending.matches('>').count();
            Some(balanced.then(|| std::mem::take(pending)))
        })
        .flatten()
        .find(|decl| decl.split(':').next().unwrap().split_whitespace().last() == Some(field))
        .unwrap_or_else(|| panic!("struct Metrics has no field {field}"));
    declaration
        .trim_end_matches(',')
        .split_once(':')
        .unwrap()
        .1
        .trim()
        .to_owned()
}

fn struct_body<'a>(flat: &'a str, name: &str) -> &'a str {
    let start = flat
        .find(&format!("struct {name} {{"))
        .unwrap_or_else(|| panic!("no struct {name}"));
    between(&flat[start..], "{", "}").unwrap()
}

/// The field names of a label struct.
fn struct_fields(flat: &str, name: &str) -> BTreeSet<String> {
    struct_body(flat, name)
        .split(',')
        .filter_map(|decl| decl.split(':').next())
        .map(|left| left.split_whitespace().last().unwrap_or_default().to_owned())
        .filter(|field| !field.is_empty())
        .collect()
}

fn is_metrics_table(table: &Table) -> bool {
    table.starts_with_columns(&["metric", "type", "labels"])
}

/// Every metric of `registered` (all named with `prefix`) is in a metrics table of the docs, with its type and
/// exactly its labels, and every row of those tables with that prefix is registered.
fn assert_documented(prefix: &str, registered: &Registered) {
    assert!(!registered.is_empty());
    let mut documented = Registered::new();
    let mut rows_at = BTreeMap::new();
    for doc in repo::docs() {
        for table in doc.tables().iter().filter(|t| is_metrics_table(t)) {
            for row in &table.rows {
                let name = code_spans(&row[0]).first().cloned().unwrap_or_default();
                if !name.starts_with(prefix) {
                    continue;
                }
                // The labels are the code spans of the cell before any parenthesis, which explains them.
                let labels = code_spans(row[2].split('(').next().unwrap()).into_iter().collect();
                documented.insert(
                    name.clone(),
                    Metric {
                        kind: row[1].trim().to_owned(),
                        labels,
                    },
                );
                rows_at.insert(name, doc.at(table.line));
            }
        }
    }
    let mut problems = Vec::new();
    for (name, metric) in registered {
        match documented.get(name) {
            None => problems.push(format!(
                "{name} ({}, labels {:?}) is in no metrics table",
                metric.kind, metric.labels
            )),
            Some(doc) if doc != metric => problems.push(format!(
                "{name} at {}: the doc says {} with labels {:?}, the code registers {} with labels {:?}",
                rows_at[name], doc.kind, doc.labels, metric.kind, metric.labels
            )),
            Some(_) => {}
        }
    }
    for name in documented.keys().filter(|name| !registered.contains_key(*name)) {
        problems.push(format!("{name} at {} is not registered by the code", rows_at[name]));
    }
    assert!(
        problems.is_empty(),
        "metrics tables drifted from the code:\n{}",
        problems.join("\n")
    );
}
