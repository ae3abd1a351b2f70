//! Soak mode: the Services of [`services::ALL`] in a namespace of their own (`soak-*`), steady load on all of them
//! through the activator, the disruptions of [`chaos`] on a schedule, Runway's own pods watched by [`components`];
//! then a report, and the namespace is deleted whatever happened.

mod chaos;
mod components;
mod report;
mod services;
mod traffic;
mod websocket;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use futures::future::try_join_all;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::DeleteParams;
use runway_tests::cluster::Cluster;
use runway_tests::load::Target;
use runway_tests::runway;
use runway_tests::scenario::create_namespace;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cli::SoakArgs;
use crate::counts::Counts;
use crate::stop::{self, Interrupted, Stop};
use services::{CC0, Protocol, SoakService};

/// Services start together on a shared machine: give them longer than a single Service needs.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs a soak; Ok(true) when nothing unexpected happened.
pub async fn run(args: &SoakArgs, interrupted: Interrupted) -> anyhow::Result<bool> {
    let cluster = Cluster::connect().await?;
    let address = runway::activator_address(&cluster).await?;
    let ns = create_namespace(&cluster, "soak").await?;
    eprintln!("namespace {ns}; activator at {address}; load for {:?}", args.duration);
    let outcome = soak(&cluster, &ns, address, args, interrupted).await;
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    match namespaces.delete(&ns, &DeleteParams::background()).await {
        Ok(_) => eprintln!("deleted namespace {ns}"),
        Err(err) => eprintln!("could not delete namespace {ns}: {err} (kubectl delete namespace {ns})"),
    }
    let report = outcome?;
    print!("{}", report.render());
    Ok(report.failures().is_empty())
}

async fn soak(
    cluster: &Cluster,
    ns: &str,
    address: SocketAddr,
    args: &SoakArgs,
    interrupted: Interrupted,
) -> anyhow::Result<report::Report> {
    tokio::select! {
        deployed = deploy(cluster, ns, &args.image) => deployed?,
        () = stop::interrupted(interrupted.clone()) => anyhow::bail!("interrupted while the Services were starting"),
    }
    let origin = Instant::now();
    let stop = Stop::after(args.duration, interrupted);
    // No client can send more than one request per PACE: this bounds every loop's count.
    let budget = u64::try_from(args.duration.as_millis() / traffic::PACE.as_millis()).unwrap_or(u64::MAX) + 1;
    let (pause_cc0, cc0_paused) = watch::channel(false);
    // The other Services are never paused: their receivers watch a channel that never changes.
    let (_never, never_paused) = watch::channel(false);

    let mut clients = vec![];
    for service in services::ALL {
        let paused = if service.name == CC0.name {
            cc0_paused.clone()
        } else {
            never_paused.clone()
        };
        let target = Target {
            address,
            host: runway::host(service.name, ns),
        };
        for _ in 0..service.clients {
            let task = match service.protocol {
                Protocol::Http1 | Protocol::H2c => tokio::spawn(
                    traffic::HttpLoop {
                        target: target.clone(),
                        path: service.path,
                        h2c: service.protocol == Protocol::H2c,
                        paused: paused.clone(),
                        stop: stop.clone(),
                        budget,
                        origin,
                    }
                    .run(),
                ),
                Protocol::WebSocket => tokio::spawn(
                    websocket::WsLoop {
                        address,
                        host: target.host.clone(),
                        stop: stop.clone(),
                        budget,
                        origin,
                    }
                    .run(),
                ),
            };
            clients.push((service, task));
        }
    }
    let watcher = tokio::spawn(components::watch(cluster.clone(), stop.clone()));
    let chaos = tokio::spawn(
        chaos::Chaos {
            cluster: cluster.clone(),
            ns: ns.to_owned(),
            interval: args.interval,
            pause_cc0,
            stop: stop.clone(),
            origin,
        }
        .run(),
    );

    let mut per_service: Vec<(SoakService, Counts)> = services::ALL.iter().map(|s| (*s, Counts::default())).collect();
    for (service, task) in clients {
        let counts = task.await.context("a client loop panicked")?;
        if let Some((_, total)) = per_service.iter_mut().find(|(s, _)| s.name == service.name) {
            total.merge(counts);
        }
    }
    let ran = origin.elapsed();
    Ok(report::Report {
        ns: ns.to_owned(),
        address,
        ran,
        services: per_service,
        events: chaos.await.context("the schedule panicked")?,
        findings: watcher.await.context("the component watcher panicked")?,
    })
}

/// Creates every Service and waits until all are Ready.
async fn deploy(cluster: &Cluster, ns: &str, image: &str) -> anyhow::Result<()> {
    for service in services::ALL {
        runway::create(cluster, ns, &service.manifest(image)?)
            .await
            .with_context(|| format!("creating Service {}", service.name))?;
    }
    let started = Instant::now();
    try_join_all(
        services::ALL
            .iter()
            .map(|s| runway::wait_ready(cluster, ns, s.name, READY_TIMEOUT)),
    )
    .await
    .with_context(|| {
        format!("the soak's Services did not all get Ready (is {image} imported? hack/soak/soak.sh does it)")
    })?;
    eprintln!(
        "{} Services ready after {:.1} s",
        services::ALL.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
