//! Smoke suite of the local cluster: the node works, a Deployment of the sample app is reachable by pod IP and
//! ClusterIP from the host and by DNS name from another pod, and deleting it lets the garbage collector remove
//! its pods. Needs a cluster (`make up`); runs with `cargo test -p runway-tests --features cluster`.
#![forbid(unsafe_code)]

use std::time::Duration;

use anyhow::{Context, ensure};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use runway_tests::cluster::Cluster;
use runway_tests::scenario::run_scenario;
use runway_tests::wait::wait_until;
use runway_tests::workloads::{HELLO_PORT, cluster_ip_service, hello_deployment, hello_pod};
use runway_tests::{http, pods};

const POD_START: Duration = Duration::from_secs(90);
/// kube-proxy and CoreDNS follow new Services and endpoints within seconds.
const ROUTING: Duration = Duration::from_secs(30);
const REQUEST: Duration = Duration::from_secs(5);

#[tokio::test]
async fn node_is_ready_and_cluster_dns_runs() {
    run_scenario("smoke-node", |cluster, _ns| async move {
        let nodes: Api<Node> = Api::all(cluster.client.clone());
        let ready = wait_until("a Ready node", POD_START, || async {
            let list = nodes.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
            let states: Vec<String> = list.items.iter().map(node_ready).collect();
            if states.iter().any(|s| s.ends_with("Ready=True")) {
                Ok(states)
            } else {
                Err(format!("nodes: {states:?}"))
            }
        })
        .await?;
        eprintln!("nodes: {ready:?}");
        let system: Api<Pod> = Api::namespaced(cluster.client.clone(), "kube-system");
        pods::wait_ready(&system, "k8s-app=kube-dns", 1, POD_START).await?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn hello_is_reachable_by_pod_ip_cluster_ip_and_dns_and_garbage_collected() {
    run_scenario("smoke-hello", |cluster, ns| async move {
        let client = cluster.client.clone();
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        let services: Api<Service> = Api::namespaced(client.clone(), &ns);
        let pod_api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let post = PostParams::default();

        deployments.create(&post, &hello_deployment("hello", 1, &[])).await?;
        let service = services
            .create(&post, &cluster_ip_service("hello", "hello", 80, HELLO_PORT))
            .await?;
        pod_api.create(&post, &hello_pod("client", &[])).await?;

        let ready = pods::wait_ready(&pod_api, "app=hello", 1, POD_START).await?;
        let pod_name = ready[0].metadata.name.clone().context("pod without a name")?;
        let pod_ip = ready[0]
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .context("no pod IP")?;
        let expected = format!("hello from {pod_name}\n");

        let by_pod_ip = http::get(&format!("http://{pod_ip}:{HELLO_PORT}/"), REQUEST).await?;
        ensure!(by_pod_ip.body == expected, "by pod IP {pod_ip}: {by_pod_ip:?}");
        eprintln!("pod IP {pod_ip}: {}", by_pod_ip.body.trim());

        let cluster_ip = service.spec.and_then(|s| s.cluster_ip).context("no ClusterIP")?;
        let url = format!("http://{cluster_ip}/");
        let body = wait_until(format!("GET {url} from the host"), ROUTING, || async {
            answer(http::get(&url, REQUEST).await, &expected)
        })
        .await?;
        eprintln!("ClusterIP {cluster_ip}: {}", body.trim());

        pods::wait_ready(&pod_api, "app=client", 1, POD_START).await?;
        let dns_url = format!("http://hello.{ns}.svc.cluster.local/");
        let body = wait_until(format!("GET {dns_url} from pod client"), ROUTING, || {
            get_from_pod(&cluster, &ns, "client", &dns_url, &expected)
        })
        .await?;
        eprintln!("DNS from pod client: {}", body.trim());

        deployments.delete("hello", &DeleteParams::background()).await?;
        pods::wait_gone(&pod_api, "app=hello", Duration::from_secs(60)).await?;
        let replica_sets: Api<ReplicaSet> = Api::namespaced(client, &ns);
        wait_until("the ReplicaSet to be collected", Duration::from_secs(30), || async {
            let left = replica_sets
                .list(&ListParams::default().labels("app=hello"))
                .await
                .map_err(|e| e.to_string())?;
            match left.items.len() {
                0 => Ok(()),
                n => Err(format!("{n} ReplicaSet(s) left")),
            }
        })
        .await?;
        eprintln!("deployment deleted; its ReplicaSet and pod were garbage collected");
        Ok(())
    })
    .await;
}

/// `name Ready=True|False|Unknown`.
fn node_ready(node: &Node) -> String {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map_or("Unknown", |c| c.status.as_str());
    format!("{} Ready={ready}", node.metadata.name.as_deref().unwrap_or("?"))
}

/// Ok(body) if the request succeeded with the expected body, else what was seen.
fn answer(result: anyhow::Result<http::Response>, expected: &str) -> Result<String, String> {
    match result {
        Ok(r) if r.status.is_success() && r.body == expected => Ok(r.body),
        Ok(r) => Err(format!("{} {:?}", r.status, r.body)),
        Err(err) => Err(format!("{err:#}")),
    }
}

/// Runs the sample app's client mode inside `pod`: name resolution and routing as a workload sees them.
async fn get_from_pod(cluster: &Cluster, ns: &str, pod: &str, url: &str, expected: &str) -> Result<String, String> {
    let output = cluster
        .kubectl()
        .run(&["-n", ns, "exec", pod, "--", "/usr/local/bin/runway-hello", "get", url])
        .await
        .map_err(|e| format!("{e:#}"))?;
    if output == expected {
        Ok(output)
    } else {
        Err(format!("unexpected body {output:?}"))
    }
}
