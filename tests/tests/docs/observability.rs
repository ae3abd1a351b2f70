//! docs/observability.md's alerts table lists exactly the alerts of the chart's PrometheusRule, each with the value
//! that sets its threshold, a value the template reads, and that value's default.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::markdown::code_spans;
use crate::repo;

#[test]
fn the_alerts_table_is_the_charts_prometheus_rule() {
    let template = repo::read("deploy/runway/templates/prometheusrule.yaml");
    let alerts: BTreeSet<String> = template
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert: "))
        .map(str::to_owned)
        .collect();
    assert!(alerts.len() >= 4, "the template's alerts were read: {alerts:?}");
    let values: Value = serde_saphyr::from_str(&repo::read("deploy/runway/values.yaml")).unwrap();
    let doc = repo::doc("docs/observability.md");
    let table = doc
        .tables()
        .into_iter()
        .find(|t| t.starts_with_columns(&["alert", "fires when", "threshold value (default)"]))
        .expect("docs/observability.md has the alerts table");
    let mut documented = BTreeSet::new();
    let mut problems = Vec::new();
    for row in &table.rows {
        let alert = code_spans(&row[0]).first().cloned().unwrap_or_default();
        let Some(path) = code_spans(&row[2]).first().cloned() else {
            problems.push(format!("{alert}: no value named"));
            continue;
        };
        let value = path.split('.').fold(&values, |v, key| &v[key]);
        let default = match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        if value.is_null() || !row[2].contains(&format!("({default})")) {
            problems.push(format!(
                "{alert}: {path} is {value} in values.yaml; the doc says {:?}",
                row[2]
            ));
        }
        let key = path.rsplit('.').next().unwrap();
        if !template.contains(&format!(".{key} ")) {
            problems.push(format!("{alert}: the template does not read {path}"));
        }
        documented.insert(alert);
    }
    assert_eq!(documented, alerts, "the doc's alerts and the template's");
    assert!(problems.is_empty(), "{problems:#?}");
}
