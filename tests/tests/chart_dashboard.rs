//! The Grafana dashboard has one source: `deploy/grafana/runway-dashboard.json`, which the chart ships as
//! `files/grafana/runway-dashboard.json` (a chart cannot read files outside its folder). The two must be equal:
//! after editing the first, copy it over the second. No cluster, no helm; e2e test t43 checks the rendered ConfigMap
//! and t42 runs every query against a real Prometheus.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {}: {e}", full.display()))
}

#[test]
fn the_charts_dashboard_is_deploy_grafanas() {
    assert!(
        repo_file("deploy/runway/files/grafana/runway-dashboard.json")
            == repo_file("deploy/grafana/runway-dashboard.json"),
        "cp deploy/grafana/runway-dashboard.json deploy/runway/files/grafana/"
    );
}

#[test]
fn every_panel_has_a_unique_id_a_title_and_queries_on_the_chosen_data_source() {
    let dashboard: Value = serde_json::from_str(&repo_file("deploy/grafana/runway-dashboard.json")).unwrap();
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().expect("a title");
        assert!(ids.insert(panel["id"].as_u64().expect("an id")), "{title}: id taken");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            assert!(
                target["expr"].as_str().is_some_and(|e| !e.is_empty()),
                "{title}: {target}"
            );
        }
    }
}
