//! End-to-end tests of Runway's metrics as a user's monitoring sees them: the cluster's Prometheus
//! (`hack/cluster/manifests/prometheus.yaml`) scrapes the chart's metrics Services; after a cold start, successful
//! and failing requests, every PromQL expression of the Grafana dashboard and of the PrometheusRule evaluates there
//! without error, and the panels that must show something have data. And the chart renders its ServiceMonitor,
//! PodMonitor and PrometheusRule as its values and the cluster's CRDs say, which the API server accepts and promtool
//! checks. See docs/observability.md.
//!
//! Part of the e2e suite (`tests/tests/e2e_*.rs`), run alone with
//! `cargo test -p runway-tests --features cluster --test e2e_monitoring -- --test-threads=1`.
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use runway_tests::chart::{self, find, has, objects};
use runway_tests::cluster::repo_root;
use runway_tests::command;
use runway_tests::load;
use runway_tests::prometheus::{self, describe};
use runway_tests::runway::{self, READY, REQUEST};
use runway_tests::scenario::runway_scenario;
use serde_json::{Value, json};

const DASHBOARD: &str = "deploy/grafana/runway-dashboard.json";

/// The Prometheus scrapes every 5 s; a series shows up within a few scrapes, a new target within its DNS refresh.
const SCRAPED: Duration = Duration::from_secs(60);

/// Panels that have data once the scenario's traffic was scraped: a cold start, successful requests and failing
/// ones. Every panel of the dashboard is in this list or in [`MAY_BE_EMPTY`].
const MUST_HAVE_DATA: [&str; 12] = [
    "Requests per second",
    "5xx responses per second",
    "Request duration p50 / p95 / p99",
    "Cold starts",
    "Cold-start duration p95",
    "Requests in flight",
    "Queue depth",
    "Queue wait p95",
    "Ready pods and desired pods",
    "Service Ready",
    "Activators connected to the autoscaler",
    "Builds",
];

/// Panels with a target that has nothing to show after a healthy run: the rps averages of a Service scaling on
/// concurrency, reconcile errors.
const MAY_BE_EMPTY: [&str; 2] = ["Autoscaler load (stable window)", "Reconciles per second"];

/// The dashboard's queries as Prometheus takes them: its variables replaced, the namespace by the scenario's so that
/// data checks see this run's series.
fn substitute(expr: &str, ns: &str) -> anyhow::Result<String> {
    let text = expr
        .replace("$__rate_interval", "5m")
        .replace("$namespace", ns)
        .replace("$service", ".*");
    ensure!(
        !text.contains('$'),
        "a dashboard variable the test does not know in {expr}"
    );
    Ok(text)
}

/// The dashboard's panels (rows left out): their titles and their targets' expressions.
fn panels() -> anyhow::Result<Vec<(String, Vec<String>)>> {
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(repo_root().join(DASHBOARD))?)?;
    let panels = dashboard["panels"].as_array().context("the dashboard has panels")?;
    Ok(panels
        .iter()
        .filter(|p| p["type"] != "row")
        .map(|p| {
            let title = p["title"].as_str().unwrap_or_default().to_owned();
            let exprs = p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["expr"].as_str().map(str::to_owned))
                .collect();
            (title, exprs)
        })
        .collect())
}

/// The alert rules' expressions of the PrometheusRule the chart renders where the CRD exists.
async fn alert_exprs() -> anyhow::Result<Vec<(String, String)>> {
    let rendered = chart::template(&["--api-versions=monitoring.coreos.com/v1/PrometheusRule".to_owned()]).await?;
    let objects = objects(&rendered)?;
    let rule = find(&objects, "PrometheusRule", "runway")?;
    let mut out = Vec::new();
    for group in rule["spec"]["groups"].as_array().context("rule groups")? {
        for rule in group["rules"].as_array().context("rules")? {
            let name = rule["alert"].as_str().context("an alert name")?.to_owned();
            out.push((name, rule["expr"].as_str().context("an expr")?.to_owned()));
        }
    }
    Ok(out)
}

#[tokio::test]
async fn t42_prometheus_scrapes_runway_and_every_dashboard_and_alert_query_evaluates_with_data_after_traffic() {
    runway_scenario("e2e-monitoring", |cluster, ns| async move {
        let client = cluster.client.clone();
        // Both components are targets: a leader's gauge and the activators' access caches (there from the start).
        for expr in [
            "runway_operator_leader == 1",
            r#"runway_activator_auth_cache_entries{cache="token"}"#,
        ] {
            prometheus::wait_for(&client, "Runway scraped", expr, SCRAPED, |s| !s.is_empty()).await?;
        }

        // A Service that scales to zero and is woken by a request (a cold start), and one whose app fails.
        let web = runway::deploy(&cluster, &ns, "web", &[], runway::quick_zero()).await?;
        let failing = runway::deploy(&cluster, &ns, "failing", &[("FAIL_STATUS", "500")], json!({})).await?;
        runway::wait_zero(&cluster, &ns, "web", READY).await?;
        let cold = load::sequential(&web, "/", 5, REQUEST).await;
        ensure!(cold.iter().all(|o| o.ok()), "web: {:?}", load::tally(&cold));
        ensure!(
            cold[0].cold_start,
            "the first request to web was no cold start: {:?}",
            cold[0]
        );
        let failed = load::sequential(&failing, "/", 5, REQUEST).await;
        ensure!(
            failed.iter().all(|o| o.status.map(|s| s.as_u16()) == Some(500)),
            "failing: {:?}",
            load::tally(&failed)
        );

        // The traffic is scraped: the requests by code, the cold start, the operator's view of both Services.
        let scraped = [
            format!(r#"runway_activator_requests_total{{namespace="{ns}", service="web", code="200"}}"#),
            format!(r#"runway_activator_requests_total{{namespace="{ns}", service="failing", code="500"}}"#),
            format!(r#"runway_activator_cold_starts_total{{namespace="{ns}", service="web"}}"#),
            format!(r#"runway_activator_cold_start_duration_seconds_count{{namespace="{ns}", service="web"}}"#),
            format!(r#"runway_operator_service_ready{{namespace="{ns}", service="web"}} == 1"#),
            format!(r#"runway_operator_autoscaler_ready_pods{{namespace="{ns}", service="web"}}"#),
            format!(r#"runway_operator_autoscaler_stable_concurrency{{namespace="{ns}", service="web"}}"#),
            r#"runway_build_info{component="operator"}"#.to_owned(),
            r#"runway_build_info{component="activator"}"#.to_owned(),
        ];
        let mut problems = Vec::new();
        for expr in &scraped {
            if let Err(e) =
                prometheus::wait_for(&client, "the scenario's traffic", expr, SCRAPED, |s| !s.is_empty()).await
            {
                problems.push(format!("{e:#}"));
            }
        }

        // Every query of the dashboard and of the alerts evaluates; the panels that must have data have it.
        let panels = panels()?;
        let titles: BTreeSet<&str> = panels.iter().map(|(title, _)| title.as_str()).collect();
        let listed: BTreeSet<&str> = MUST_HAVE_DATA.iter().chain(&MAY_BE_EMPTY).copied().collect();
        ensure!(
            titles == listed,
            "panels of the dashboard {titles:?}, of the test's lists {listed:?}"
        );
        for (title, exprs) in &panels {
            ensure!(!exprs.is_empty(), "panel {title:?} has no query");
            for expr in exprs {
                let expr = substitute(expr, &ns)?;
                // A rate needs two scrapes of a series, and the traffic's series may have been scraped once so far:
                // a panel that must have data is given until a later scrape.
                let answer = if MUST_HAVE_DATA.contains(&title.as_str()) {
                    let what = format!("data in panel {title:?}");
                    prometheus::wait_for(&client, &what, &expr, SCRAPED, |s| !s.is_empty()).await
                } else {
                    prometheus::query(&client, &expr).await
                };
                match answer {
                    Err(e) => problems.push(format!("panel {title:?}: {e:#}")),
                    Ok(samples) => eprintln!("panel {title:?}: {expr}\n{}", describe(&samples)),
                }
            }
        }
        for (alert, expr) in alert_exprs().await? {
            match prometheus::query(&client, &expr).await {
                Err(e) => problems.push(format!("alert {alert}: {e:#}")),
                Ok(samples) => eprintln!("alert {alert}: {expr}\n{}", describe(&samples)),
            }
        }
        if !problems.is_empty() {
            bail!("{}", problems.join("\n"));
        }
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t43_the_chart_renders_its_monitors_where_their_crds_are_and_the_api_server_and_promtool_accept_them() {
    runway_scenario("e2e-monitoring", |cluster, _ns| async move {
        const CRDS: [&str; 3] = [
            "--api-versions=monitoring.coreos.com/v1/ServiceMonitor",
            "--api-versions=monitoring.coreos.com/v1/PodMonitor",
            "--api-versions=monitoring.coreos.com/v1/PrometheusRule",
        ];
        let kinds = ["ServiceMonitor", "PodMonitor", "PrometheusRule"];
        // (arguments, which monitoring kinds render)
        let cases: [(Vec<&str>, [bool; 3]); 5] = [
            (vec![], [false, false, false]),
            (CRDS.to_vec(), [true, false, true]),
            (
                [
                    &CRDS[..],
                    &[
                        "--set=metrics.podMonitor.enabled=auto",
                        "--set=metrics.serviceMonitor.enabled=false",
                    ],
                ]
                .concat(),
                [false, true, true],
            ),
            (
                vec![
                    "--set=metrics.serviceMonitor.enabled=true",
                    "--set=metrics.podMonitor.enabled=true",
                    "--set=metrics.prometheusRule.enabled=true",
                ],
                [true, true, true],
            ),
            (
                [&CRDS[..], &["--set=metrics.prometheusRule.enabled=false"]].concat(),
                [true, false, false],
            ),
        ];
        for (args, want) in &cases {
            let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
            let objects = objects(&chart::template(&args).await?)?;
            for (kind, want) in kinds.iter().zip(want) {
                ensure!(
                    has(&objects, kind, "runway") == *want,
                    "{args:?}: {kind} rendered: {}, want {want}",
                    !want
                );
            }
            // The scrape targets and the dashboard do not depend on the CRDs.
            for (kind, name) in [
                ("Service", "runway-operator-metrics"),
                ("Service", "runway-activator-metrics"),
                ("ConfigMap", "runway-dashboard"),
            ] {
                find(&objects, kind, name).with_context(|| format!("{args:?}"))?;
            }
        }

        // The dashboard in the ConfigMap is deploy/grafana's.
        let objects = objects(&chart::template(&CRDS.map(str::to_owned)).await?)?;
        let dashboard = find(&objects, "ConfigMap", "runway-dashboard")?["data"]["runway-dashboard.json"]
            .as_str()
            .context("the dashboard's key")?
            .to_owned();
        let file = std::fs::read_to_string(repo_root().join(DASHBOARD))?;
        ensure!(
            dashboard == file.trim_end(),
            "the ConfigMap's dashboard is not {DASHBOARD}"
        );

        // The API server accepts the monitors and the rule (the local cluster has the Prometheus Operator's CRDs).
        let mut monitoring: Vec<Value> = objects
            .iter()
            .filter(|o| o["apiVersion"] == "monitoring.coreos.com/v1")
            .cloned()
            .collect();
        ensure!(
            monitoring.len() == 2,
            "ServiceMonitor and PrometheusRule: {monitoring:?}"
        );
        monitoring.push(object_of(&["--set=metrics.podMonitor.enabled=true"], "PodMonitor").await?);
        let list = json!({"apiVersion": "v1", "kind": "List", "items": monitoring});
        chart::server_dry_run_of(&cluster, "monitoring", &list.to_string()).await?;

        // promtool: the rules are valid, with their default thresholds and with others.
        for args in [
            &[][..],
            &["--set-json=metrics.prometheusRule.coldStartP95Seconds=2.5"][..],
        ] {
            let script = repo_root().join("hack/check-rules.sh");
            let checked = command::run(&script.to_string_lossy(), args, &repo_root()).await?;
            ensure!(checked.contains("SUCCESS"), "promtool: {checked}");
        }
        Ok(())
    })
    .await;
}

/// The one object of `kind` named runway rendered with `sets` (and no CRDs).
async fn object_of(sets: &[&str], kind: &str) -> anyhow::Result<Value> {
    let args: Vec<String> = sets.iter().map(|s| (*s).to_owned()).collect();
    let objects = objects(&chart::template(&args).await?)?;
    Ok(find(&objects, kind, "runway")?.clone())
}
