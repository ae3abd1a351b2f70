//! Cold-start benchmark on the cluster: time to first byte of a request to a Runway Service at zero, against the
//! floor Kubernetes itself sets, measured in the same run: a plain Deployment scaled from 0 to 1 by an API call,
//! until the pod answers on its IP. Both use the same image and the same pod defaults Runway applies.
//!
//! `cargo test -p runway-tests --features cluster --test bench_cold_start -- --ignored --nocapture`
//! (ROUNDS=N, default 5). Each measured start waits a random time of up to a second first, so that rounds sample
//! every phase of the kubelet's once-a-second relist. Prints a Markdown table for docs/benchmarks.md.
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use runway_api::names::{REVISION_LABEL, deployment_name, pods_service_name};
use runway_tests::cluster::Cluster;
use runway_tests::load::{self, Target};
use runway_tests::runway::{self, READY};
use runway_tests::scenario::run_scenario;
use runway_tests::wait::wait_until;
use serde_json::json;

const NAME: &str = "cold";
/// Time given to the kubelet to finish with the previous pod before a measured start.
const SETTLE: Duration = Duration::from_secs(5);

#[tokio::test]
#[ignore = "a benchmark: run it with --ignored"]
async fn cold_start_against_the_kubernetes_floor() {
    run_scenario("bench-cold", |cluster, ns| async move {
        let rounds: usize = std::env::var("ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(5);
        let spec = json!({"scaling": {"stableWindowSeconds": 6, "scaleToZeroGracePeriodSeconds": 0}});
        runway::create(&cluster, &ns, &runway::hello_service(NAME, &[], spec)?).await?;
        runway::wait_ready(&cluster, &ns, NAME, READY).await?;
        // The Service's one revision runs the pods, in a Deployment named after it.
        let revision = runway::revision_of(&cluster, &ns, NAME).await?;
        // The floor: Runway's own Deployment copied under another name, so the pod spec is identical.
        let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
        let mut floor = deployments.get(&deployment_name(&revision)).await?;
        floor.metadata = kube::api::ObjectMeta {
            name: Some("floor".into()),
            ..Default::default()
        };
        let spec = floor.spec.as_mut().context("no spec")?;
        spec.replicas = Some(0);
        let labels = [("app".to_owned(), "floor".to_owned())].into_iter().collect();
        spec.selector.match_labels = Some(labels);
        let pod_meta = spec.template.metadata.get_or_insert_with(Default::default);
        pod_meta.labels = Some([("app".to_owned(), "floor".to_owned())].into_iter().collect());
        floor.status = None;
        deployments.create(&PostParams::default(), &floor).await?;

        let target = Target {
            address: runway::activator_address(&cluster).await?,
            host: runway::host(NAME, &ns),
        };
        let (mut runway_times, mut floor_times, mut all_hops) = (vec![], vec![], vec![]);
        for round in 1..=rounds {
            let (runway_time, hops) = runway_cold_start(&cluster, &ns, &revision, &target).await?;
            let floor_time = floor_cold_start(&cluster, &ns).await?;
            eprintln!("round {round}: Runway {runway_time:?}, Kubernetes floor {floor_time:?}, hops {hops:?}");
            runway_times.push(runway_time);
            floor_times.push(floor_time);
            all_hops.push(hops);
        }
        print_hops(&all_hops)?;
        let (r50, f50) = (
            load::percentile(&mut runway_times, 0.5),
            load::percentile(&mut floor_times, 0.5),
        );
        let (rmax, fmax) = (
            load::percentile(&mut runway_times, 1.0),
            load::percentile(&mut floor_times, 1.0),
        );
        println!("| measure | median | worst |\n| --- | --- | --- |");
        println!(
            "| Runway: request at zero -> first byte | {} ms | {} ms |",
            r50.as_millis(),
            rmax.as_millis()
        );
        println!(
            "| floor: scale 0 -> 1 -> pod answers on its IP | {} ms | {} ms |",
            f50.as_millis(),
            fmax.as_millis()
        );
        println!(
            "| ratio Runway / floor | {:.2} | |",
            r50.as_secs_f64() / f50.as_secs_f64()
        );
        Ok(())
    })
    .await;
}

/// The time between two hops of a round, when both were seen.
type Gap = fn(&Hops) -> Option<i64>;

/// Prints the hops' medians and 95th percentiles as a Markdown table, with the gap from "app listens" to the
/// response head, and writes every round to `target/bench/cold-start-hops.csv` for the timeline plot
/// (hack/bench/plot-cold-start.py).
fn print_hops(rounds: &[Hops]) -> anyhow::Result<()> {
    let column = |i: usize| -> Vec<i64> { rounds.iter().filter_map(|h| h.named()[i].1).collect() };
    println!("\n| hop (ms after the request) | median | p95 |\n| --- | --- | --- |");
    for (i, (name, _)) in Hops::default().named().iter().enumerate() {
        let mut values = column(i);
        println!(
            "| {name} | {} | {} |",
            percentile_ms(&mut values, 0.5),
            percentile_ms(&mut values, 0.95)
        );
    }
    let gaps: [(&str, Gap); 2] = [
        ("app listens -> response head", |h| {
            Some(h.response_head - h.app_listens?)
        }),
        // What is left to the activator once Kubernetes has published the IP.
        ("IP in the Pod's status -> response head", |h| {
            Some(h.response_head - h.ip_in_pod_status?)
        }),
    ];
    for (name, gap) in gaps {
        let mut values: Vec<i64> = rounds.iter().filter_map(gap).collect();
        println!(
            "| {name} | {} | {} |",
            percentile_ms(&mut values, 0.5),
            percentile_ms(&mut values, 0.95)
        );
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir)?;
    let mut csv = String::from("round,hop,ms\n");
    for (round, hops) in rounds.iter().enumerate() {
        for (name, value) in hops.named() {
            if let Some(ms) = value {
                csv.push_str(&format!("{},{name},{ms}\n", round + 1));
            }
        }
    }
    std::fs::write(dir.join("cold-start-hops.csv"), csv)?;
    Ok(())
}

/// The `q` quantile (nearest rank) of `values`, or "-" when there are none.
fn percentile_ms(values: &mut [i64], q: f64) -> String {
    if values.is_empty() {
        return "-".into();
    }
    values.sort_unstable();
    let rank = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len());
    values[rank - 1].to_string()
}

/// Waits until Service NAME has no pod, then times one request through the activator to its `revision`, with the
/// hops between.
async fn runway_cold_start(
    cluster: &Cluster,
    ns: &str,
    revision: &str,
    target: &Target,
) -> anyhow::Result<(Duration, Hops)> {
    runway::wait_zero(cluster, ns, NAME, Duration::from_secs(60)).await?;
    // The kubelet still tears the last pod down (sandbox, network, cgroups) after its object is gone, and a new pod
    // started meanwhile waits behind that; the floor's last pod went a whole round earlier. Both start on a settled
    // node, as a real request after an idle period does.
    tokio::time::sleep(SETTLE).await;
    let watching = HopWatch::start(cluster, ns, revision).await?;
    random_phase().await;
    let sent = SystemTime::now();
    let outcome = load::get(&load::client(), target, "/", Duration::from_secs(60)).await;
    let head = sent + outcome.time_to_headers;
    anyhow::ensure!(outcome.ok() && outcome.cold_start, "request at zero: {outcome:?}");
    let hops = watching.finish(cluster, ns, sent, head).await?;
    Ok((outcome.time_to_headers, hops))
}

/// The hops of one cold start, in milliseconds after the request was sent: watch events as this process received
/// them (the activator's watches see them no earlier), the instant the app logged that it listens, the response head.
#[derive(Clone, Debug, Default)]
struct Hops {
    scale_written: Option<i64>,
    pod_created: Option<i64>,
    sandbox_ready: Option<i64>,
    ip_in_pod_status: Option<i64>,
    app_listens: Option<i64>,
    ip_in_endpoint_slice: Option<i64>,
    pod_ready: Option<i64>,
    response_head: i64,
}

impl Hops {
    /// Names and values in the order they happen (nearly: the app may listen before the IP reaches the API server).
    fn named(&self) -> [(&'static str, Option<i64>); 8] {
        [
            ("scale written", self.scale_written),
            ("pod created", self.pod_created),
            ("sandbox ready", self.sandbox_ready),
            ("IP in the Pod's status", self.ip_in_pod_status),
            ("app listens", self.app_listens),
            ("IP in the EndpointSlice", self.ip_in_endpoint_slice),
            ("pod Ready (kubelet)", self.pod_ready),
            ("response head", Some(self.response_head)),
        ]
    }
}

/// First-seen wall-clock instants of the watched transitions, filled by watch tasks.
#[derive(Default)]
struct Seen {
    scale_written: Option<SystemTime>,
    pod_created: Option<SystemTime>,
    sandbox_ready: Option<SystemTime>,
    ip_in_pod_status: Option<SystemTime>,
    pod_ready: Option<SystemTime>,
    ip_in_endpoint_slice: Option<SystemTime>,
}

fn first(slot: &mut Option<SystemTime>) {
    slot.get_or_insert_with(SystemTime::now);
}

/// Watches of the Deployment, the pods and the EndpointSlices of one revision of Service NAME, started (and listed)
/// before the request is sent.
struct HopWatch {
    seen: Arc<Mutex<Seen>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl HopWatch {
    async fn start(cluster: &Cluster, ns: &str, revision: &str) -> anyhow::Result<Self> {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (listed, mut listed_rx) = tokio::sync::mpsc::channel::<()>(3);
        let pods_selector = format!("{REVISION_LABEL}={revision}");
        let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), ns);
        let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
        let slices: Api<EndpointSlice> = Api::namespaced(cluster.client.clone(), ns);
        let tasks = vec![
            watch_each(
                deployments,
                watcher::Config::default().fields(&format!("metadata.name={}", deployment_name(revision))),
                listed.clone(),
                seen.clone(),
                |seen, deployment: &Deployment| {
                    if deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 0 {
                        first(&mut seen.scale_written);
                    }
                },
            ),
            watch_each(
                pods,
                watcher::Config::default().labels(&pods_selector),
                listed.clone(),
                seen.clone(),
                |seen, pod: &Pod| {
                    first(&mut seen.pod_created);
                    let status = pod.status.as_ref();
                    let condition = |type_: &str| {
                        status
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| c.iter().any(|c| c.type_ == type_ && c.status == "True"))
                    };
                    if condition("PodReadyToStartContainers") {
                        first(&mut seen.sandbox_ready);
                    }
                    if status.and_then(|s| s.pod_ip.as_ref()).is_some() {
                        first(&mut seen.ip_in_pod_status);
                    }
                    if condition("Ready") {
                        first(&mut seen.pod_ready);
                    }
                },
            ),
            watch_each(
                slices,
                watcher::Config::default()
                    .labels(&format!("kubernetes.io/service-name={}", pods_service_name(revision))),
                listed,
                seen.clone(),
                |seen, slice: &EndpointSlice| {
                    if slice.endpoints.iter().any(|e| !e.addresses.is_empty()) {
                        first(&mut seen.ip_in_endpoint_slice);
                    }
                },
            ),
        ];
        for _ in 0..3 {
            tokio::time::timeout(Duration::from_secs(30), listed_rx.recv())
                .await
                .context("the hop watches did not list within 30 s")?;
        }
        Ok(HopWatch { seen, tasks })
    }

    /// Stops the watches and reads the app's listen instant from its log.
    async fn finish(self, cluster: &Cluster, ns: &str, sent: SystemTime, head: SystemTime) -> anyhow::Result<Hops> {
        // The response can beat this process's watches to the pod's later transitions: wait for them too.
        let all_seen = wait_until("every hop seen by the watches", Duration::from_secs(30), || async {
            let seen = self.seen.lock().expect("not poisoned");
            let missing = [
                ("ip in endpoint slice", seen.ip_in_endpoint_slice),
                ("ip in pod status", seen.ip_in_pod_status),
                ("pod ready", seen.pod_ready),
            ]
            .iter()
            .filter(|(_, at)| at.is_none())
            .map(|(name, _)| *name)
            .collect::<Vec<_>>();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("missing {missing:?}"))
            }
        })
        .await;
        for task in &self.tasks {
            task.abort();
        }
        all_seen?;
        let since = |at: SystemTime| millis_between(sent, at);
        let pod = runway::pods(cluster, ns, NAME)
            .await?
            .into_iter()
            .next()
            .context("no pod")?;
        let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
        let log = pods.logs(&pod.name_any(), &LogParams::default()).await?;
        let listens = log
            .lines()
            .find(|line| line.contains("listening"))
            .and_then(logged_unix_ms)
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
        let seen = self.seen.lock().expect("not poisoned");
        Ok(Hops {
            scale_written: seen.scale_written.map(since),
            pod_created: seen.pod_created.map(since),
            sandbox_ready: seen.sandbox_ready.map(since),
            ip_in_pod_status: seen.ip_in_pod_status.map(since),
            app_listens: listens.map(since),
            ip_in_endpoint_slice: seen.ip_in_endpoint_slice.map(since),
            pod_ready: seen.pod_ready.map(since),
            response_head: since(head),
        })
    }
}

/// Milliseconds from `from` to `to`, negative when `to` came first.
fn millis_between(from: SystemTime, to: SystemTime) -> i64 {
    match to.duration_since(from) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// The `unix_ms` field of the app's listen line, in its text or JSON log format.
fn logged_unix_ms(line: &str) -> Option<u64> {
    let rest = &line[line.find("unix_ms")? + "unix_ms".len()..];
    let digits: String = rest
        .trim_start_matches(['=', '"', ':', ' '])
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Runs a watch of `api` in a task: `listed` once its first list is done, then `note` on every object it sees.
fn watch_each<K>(
    api: Api<K>,
    config: watcher::Config,
    listed: tokio::sync::mpsc::Sender<()>,
    seen: Arc<Mutex<Seen>>,
    note: fn(&mut Seen, &K),
) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(api, config));
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::InitDone) => {
                    let _ = listed.send(()).await;
                }
                Ok(watcher::Event::Apply(object)) => note(&mut seen.lock().expect("not poisoned"), &object),
                _ => {}
            }
        }
    })
}

/// Waits a random time of up to a second. The kubelet publishes a new pod's IP at its next relist, once a second;
/// rounds that start at the same phase of that period (each waits for the last one's pods, polled at a fixed
/// cadence) all wait alike, and the floor and Runway can sit at different phases for a whole run.
async fn random_phase() {
    use std::hash::{BuildHasher, Hasher};
    // Each RandomState has new keys, so the hash of nothing is a fresh random number; no RNG crate needed.
    let random = std::hash::RandomState::new().build_hasher().finish();
    tokio::time::sleep(Duration::from_millis(random % 1_000)).await;
}

/// Scales the floor Deployment from 0 to 1 and times until its pod answers on its IP; then back to 0.
async fn floor_cold_start(cluster: &Cluster, ns: &str) -> anyhow::Result<Duration> {
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
    let selector = ListParams::default().labels("app=floor");
    let scale = |n: i32| Patch::Merge(json!({"spec": {"replicas": n}}));
    random_phase().await;
    let started = Instant::now();
    deployments
        .patch_scale("floor", &PatchParams::default(), &scale(1))
        .await?;
    let client = load::client();
    loop {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the floor pod never answered"
        );
        let ip = pods
            .list(&selector)
            .await?
            .items
            .iter()
            .find_map(|p| p.status.as_ref()?.pod_ip.clone());
        if let Some(ip) = ip {
            let direct = Target {
                address: format!("{ip}:8080").parse()?,
                host: "floor".into(),
            };
            if load::get(&client, &direct, "/", Duration::from_millis(200)).await.ok() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();
    deployments
        .patch_scale("floor", &PatchParams::default(), &scale(0))
        .await?;
    wait_until("the floor pod gone", Duration::from_secs(60), || async {
        let n = pods.list(&selector).await.map_err(|e| e.to_string())?.items.len();
        if n == 0 { Ok(()) } else { Err(format!("{n} pods")) }
    })
    .await?;
    Ok(took)
}
