//! End-to-end tests of the Service resource itself: it gets a URL and answers from outside and inside the cluster,
//! deleting it removes every child, invalid manifests are rejected with a message naming the field, and
//! `kubectl get rsvc,rrev` shows the latest ready revision, the traffic and each revision.
//!
//! Part of the e2e suite (`tests/tests/e2e_*.rs`): Runway installed with Helm on a real cluster (the local one from
//! `make up` unless `$KUBECONFIG` names another), each test in its own namespace once
//! `runway_tests::install::ensure_installed` has found (or made) Runway ready, so the file also runs alone (a test
//! name such as `t02` filters; one test at a time, as they measure pod counts and latencies):
//! `cargo test -p runway-tests --features cluster --test e2e_services -- --test-threads=1`.
#![forbid(unsafe_code)]

use std::time::Duration;

use anyhow::{Context, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service as KubeService;
use kube::Api;
use kube::api::DeleteParams;
use runway_api::Service;
use runway_api::names::{deployment_name, pods_service_name, revision_name};
use runway_tests::cluster::repo_root;
use runway_tests::http::get_from_a_pod;
use runway_tests::load;
use runway_tests::runway::{self, DOMAIN, READY, REQUEST, deploy};
use runway_tests::scenario::runway_scenario;
use runway_tests::wait::wait_until;
use serde_json::json;

#[tokio::test]
async fn t02_a_service_gets_a_url_and_answers_from_outside_and_inside_the_cluster() {
    runway_scenario("e2e-ready", |cluster, ns| async move {
        let target = deploy(&cluster, &ns, "hello", &[], json!({})).await?;
        let service = runway::get(&cluster, &ns, "hello").await?;
        let status = service.status.clone().unwrap_or_default();
        ensure!(
            status.url.as_deref() == Some(&*format!("http://hello.{ns}.example.com")),
            "url {:?}",
            status.url
        );
        // The first revision, named after the generation, takes all the traffic.
        let first = revision_name("hello", 1);
        let routed = runway::traffic_shares(&service);
        ensure!(
            status.latest_created_revision_name.as_deref() == Some(&*first)
                && status.latest_ready_revision_name.as_deref() == Some(&*first)
                && routed == [(first.clone(), 100)].into_iter().collect(),
            "want revision {first} created, ready and routed: {}",
            runway::summary(&service)
        );

        let outcome = load::get(&load::client(), &target, "/", REQUEST).await;
        ensure!(
            outcome.ok()
                && outcome.body.starts_with(&format!("hello from {first}-"))
                && outcome.revision.as_deref() == Some(&*first),
            "through the activator: {outcome:?}"
        );
        eprintln!(
            "through the activator with Host {}: {}",
            target.host,
            outcome.body.trim()
        );

        // From inside a pod, by the Service's cluster DNS name (an ExternalName to the activator).
        let url = format!("http://hello.{ns}.svc.cluster.local/");
        let body = get_from_a_pod(&cluster, &ns, &url, "hello from hello-").await?;
        eprintln!("from pod client, {url}: {}", body.trim());
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t10_deleting_a_service_removes_every_child() {
    runway_scenario("e2e-delete", |cluster, ns| async move {
        deploy(&cluster, &ns, "gone", &[], json!({})).await?;
        let revision = runway::revision_of(&cluster, &ns, "gone").await?;
        let services: Api<Service> = Api::namespaced(cluster.client.clone(), &ns);
        services.delete("gone", &DeleteParams::foreground()).await?;
        let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
        let kube_services: Api<KubeService> = Api::namespaced(cluster.client.clone(), &ns);
        let deployment = deployment_name(&revision);
        wait_until("every child removed", Duration::from_secs(60), || async {
            let mut left = vec![];
            if runway::revision(&cluster, &ns, &revision)
                .await
                .map_err(|e| format!("{e:#}"))?
                .is_some()
            {
                left.push(format!("Revision {revision}"));
            }
            if deployments
                .get_opt(&deployment)
                .await
                .map_err(|e| e.to_string())?
                .is_some()
            {
                left.push(format!("Deployment {deployment}"));
            }
            for name in ["gone".to_owned(), pods_service_name(&revision)] {
                if kube_services.get_opt(&name).await.map_err(|e| e.to_string())?.is_some() {
                    left.push(format!("Service {name}"));
                }
            }
            let pods = runway::pods(&cluster, &ns, "gone").await.map_err(|e| e.to_string())?;
            left.extend(pods.iter().filter_map(|p| p.metadata.name.clone()));
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("left: {left:?}"))
            }
        })
        .await?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t11_invalid_manifests_are_rejected_with_a_message_naming_the_field() {
    runway_scenario("e2e-invalid", |cluster, ns| async move {
        let table = std::fs::read_to_string(repo_root().join("tests/validation/invalid-services.yaml"))?;
        let table: serde_json::Value = serde_saphyr::from_str(&table)?;
        let cases = table["cases"].as_array().context("no cases")?;
        ensure!(cases.len() >= 15, "only {} cases", cases.len());
        let mut wrong = vec![];
        for case in cases {
            let (name, expect) = (
                case["name"].as_str().unwrap_or("?"),
                case["expect"].as_str().unwrap_or("?"),
            );
            let file = std::env::temp_dir().join(format!("runway-invalid-{ns}.json"));
            std::fs::write(&file, serde_json::to_vec(&case["manifest"])?)?;
            let result = cluster
                .kubectl()
                .run(&["-n", &ns, "apply", "-f", &file.display().to_string()])
                .await;
            match result {
                Ok(out) => wrong.push(format!("{name}: accepted ({out})")),
                Err(e) if format!("{e:#}").contains(expect) => eprintln!("rejected, {name}"),
                Err(e) => wrong.push(format!("{name}: wanted {expect:?}, got {e:#}")),
            }
        }
        ensure!(
            wrong.is_empty(),
            "{} of {} cases wrong:\n{}",
            wrong.len(),
            cases.len(),
            wrong.join("\n")
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t28_kubectl_get_rsvc_rrev_shows_the_latest_ready_revision_the_traffic_and_each_revision() {
    runway_scenario("e2e-columns", |cluster, ns| async move {
        deploy(
            &cluster,
            &ns,
            "cols",
            &[("VERSION", "1")],
            json!({"scaling": {"minScale": 1}}),
        )
        .await?;
        let first = runway::revision_of(&cluster, &ns, "cols").await?;
        runway::patch_spec(
            &cluster,
            &ns,
            "cols",
            json!({
                "template": {"spec": {"containers": [runway::hello_container(&[("VERSION", "2")])]}},
                "traffic": [
                    {"revisionName": first, "percent": 70},
                    {"latestRevision": true, "percent": 30},
                ],
            }),
        )
        .await?;
        let second = revision_name("cols", 2);
        runway::wait_latest_ready(&cluster, &ns, "cols", &second, READY).await?;

        let kubectl = cluster.kubectl();
        let url = format!("http://cols.{ns}.{DOMAIN}");
        let output = wait_until("kubectl get rsvc,rrev shows both revisions at 70/30", READY, || async {
            let output = kubectl
                .run(&["-n", &ns, "get", "rsvc,rrev"])
                .await
                .map_err(|e| format!("{e:#}"))?;
            let tables = runway_tests::kubectl::parse_tables(&output);
            let mut wrong = vec![];
            let service = tables.iter().find(|t| t.headers.iter().any(|h| h == "LATEST READY"));
            let revisions = tables.iter().find(|t| t.headers.iter().any(|h| h == "TRAFFIC%"));
            match service {
                None => wrong.push("no table with LATEST READY".to_owned()),
                Some(table) => {
                    let cell = |header: &str| table.cell("cols", header).unwrap_or("(none)").to_owned();
                    for (header, want) in [
                        ("URL", url.as_str()),
                        ("LATEST READY", &second),
                        ("READY", "True"),
                        ("REPLICAS", "2/2"),
                    ] {
                        if cell(header) != want {
                            wrong.push(format!("rsvc {header} {:?}, want {want:?}", cell(header)));
                        }
                    }
                    let traffic = cell("TRAFFIC");
                    for share in [format!("{second}=30%"), format!("{first}=70%")] {
                        if !traffic.contains(&share) {
                            wrong.push(format!("rsvc TRAFFIC {traffic:?} lacks {share}"));
                        }
                    }
                }
            }
            match revisions {
                None => wrong.push("no table with TRAFFIC%".to_owned()),
                Some(table) => {
                    for (revision, generation, percent) in [(&first, "1", "70"), (&second, "2", "30")] {
                        let want = [
                            ("SERVICE", "cols"),
                            ("GENERATION", generation),
                            ("READY", "True"),
                            ("REPLICAS", "1/1"),
                            ("TRAFFIC%", percent),
                        ];
                        for (header, want) in want {
                            let got = table.cell(revision, header).unwrap_or("(none)");
                            if got != want {
                                wrong.push(format!("rrev {revision} {header} {got:?}, want {want:?}"));
                            }
                        }
                    }
                }
            }
            if wrong.is_empty() {
                Ok(output)
            } else {
                Err(format!("{}\n{output}", wrong.join("; ")))
            }
        })
        .await?;
        eprintln!("kubectl get rsvc,rrev:\n{output}");
        Ok(())
    })
    .await;
}
