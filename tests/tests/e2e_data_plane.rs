//! End-to-end tests of the data plane: containerConcurrency 1 never overlaps with one or two activators, a request
//! past its timeout gets 504, h2c reaches a cc=1 pod through either activator, a cc=1 pod gets no new request while
//! one its client gave up on (or that timed out) still runs, and steady load through two activators gets only 200s.
//!
//! Part of the e2e suite (`tests/tests/e2e_*.rs`): Runway installed with Helm on a real cluster (the local one from
//! `make up` unless `$KUBECONFIG` names another), each test in its own namespace once
//! `runway_tests::install::ensure_installed` has found (or made) Runway ready, so the file also runs alone (a test
//! name such as `t06` filters; one test at a time, as they measure pod counts and latencies):
//! `cargo test -p runway-tests --features cluster --test e2e_data_plane -- --test-threads=1`.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use anyhow::ensure;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use runway_tests::answers::{ensure_all_ok, print_failures, seen, unix_ms};
use runway_tests::cluster::Cluster;
use runway_tests::load::{self, Load, Outcome, Target};
use runway_tests::runway::{self, READY, REQUEST, deploy, set_activators};
use runway_tests::scenario::runway_scenario;
use runway_tests::wait::wait_until;
use serde_json::json;

#[tokio::test]
async fn t06_container_concurrency_1_never_overlaps_with_one_or_two_activators() {
    runway_scenario("e2e-cc1", |cluster, ns| async move {
        let target = deploy(
            &cluster,
            &ns,
            "single",
            &[("REJECT_OVERLAP", "true")],
            json!({"containerConcurrency": 1}),
        )
        .await?;
        for activators in [1, 2] {
            set_activators(&cluster, activators).await?;
            let load = Load::start(&target, "/sleep?ms=50", 5, REQUEST);
            tokio::time::sleep(Duration::from_secs(20)).await;
            let outcomes = load.finish().await;
            ensure_all_ok(&format!("5 clients for 20 s, {activators} activator(s)"), &outcomes)?;
        }
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t08_a_request_past_its_timeout_gets_504() {
    runway_scenario("e2e-timeout", |cluster, ns| async move {
        let target = deploy(&cluster, &ns, "slow", &[], json!({"timeoutSeconds": 2})).await?;
        let outcome = load::get(&load::client(), &target, "/sleep?ms=5000", REQUEST).await;
        eprintln!(
            "5 s request with a 2 s timeout: {} after {:?}",
            outcome.label(),
            outcome.time_to_headers
        );
        ensure!(outcome.status == Some(http::StatusCode::GATEWAY_TIMEOUT), "{outcome:?}");
        let took = outcome.time_to_headers;
        ensure!(
            took >= Duration::from_millis(1900) && took < Duration::from_millis(3500),
            "504 after {took:?}"
        );
        Ok(())
    })
    .await;
}

/// Both activator pods as request targets for Service `name` in `ns`, by pod IP rather than through the activator
/// Service (so each one is sure to get its share), once both route it: each has answered a plain HTTP/1.1 request.
async fn each_activator(cluster: &Cluster, ns: &str, name: &str) -> anyhow::Result<Vec<(String, Target)>> {
    set_activators(cluster, 2).await?;
    let pods = runway::activator_pods(cluster).await?;
    ensure!(pods.len() == 2, "want 2 ready activators, found {pods:?}");
    let mut targets = vec![];
    for pod in pods {
        let target = Target {
            address: pod.address,
            host: runway::host(name, ns),
        };
        let client = load::client();
        wait_until(format!("{} answering for {}", pod.name, target.host), READY, || async {
            let outcome = load::get(&client, &target, "/", REQUEST).await;
            if outcome.ok() {
                Ok(())
            } else {
                Err(format!("{}: {}", outcome.label(), outcome.body.trim()))
            }
        })
        .await?;
        targets.push((pod.name, target));
    }
    Ok(targets)
}

#[tokio::test]
async fn t13_h2c_requests_reach_a_cc1_pod_through_either_activator_also_the_one_without_its_slot() {
    runway_scenario("e2e-h2c", |cluster, ns| async move {
        // One pod with one slot: one activator holds it, the other must forward to that one, over HTTP/2 since the
        // client spoke it.
        let spec = json!({"containerConcurrency": 1, "scaling": {"minScale": 1, "maxScale": 1}});
        deploy(&cluster, &ns, "h2c", &[], spec).await?;
        let activators = each_activator(&cluster, &ns, "h2c").await?;
        let mut wrong = vec![];
        for (name, target) in &activators {
            // 10 requests at once, as streams of one h2c connection (HTTP/2 with prior knowledge).
            let client = load::H2c::connect(target).await?;
            let tasks: Vec<_> = (0..10)
                .map(|_| {
                    let client = client.clone();
                    tokio::spawn(async move { client.get("/", REQUEST).await })
                })
                .collect();
            let mut outcomes = vec![];
            for task in tasks {
                outcomes.push(task.await?);
            }
            let tally = load::tally(&outcomes);
            eprintln!("10 h2c requests to {name} ({}): {tally:?}", target.address);
            if let Some(bad) = outcomes.iter().find(|o| !o.ok()) {
                wrong.push(format!(
                    "{name} ({}): 10 h2c requests got {tally:?}, e.g. {}",
                    target.address,
                    seen(bad)
                ));
            }
            // A slow answer (the app sends its response after 1.5 s) over the same h2c connection: all of it.
            let slow = client.get("/sleep?ms=1500", REQUEST).await;
            eprintln!(
                "slow h2c request to {name}: {} after {:?}",
                seen(&slow),
                slow.time_to_headers
            );
            if !(slow.ok() && slow.body.starts_with("hello from h2c-") && slow.body.ends_with(" after 1500 ms\n")) {
                wrong.push(format!(
                    "{name} ({}): slow h2c request got {}",
                    target.address,
                    seen(&slow)
                ));
            }
        }
        ensure!(wrong.is_empty(), "h2c through each activator:\n{}", wrong.join("\n"));
        Ok(())
    })
    .await;
}

/// Waits until the Service answers `/` with 200: its one REJECT_OVERLAP pod has nothing left in flight.
async fn wait_idle(client: &load::HttpClient, target: &Target) -> anyhow::Result<()> {
    wait_until(
        format!("{} answering 200 again", target.host),
        Duration::from_secs(10),
        || async {
            let outcome = load::get(client, target, "/", REQUEST).await;
            if outcome.ok() { Ok(()) } else { Err(seen(&outcome)) }
        },
    )
    .await?;
    Ok(())
}

/// When the second request of [`first_then_next`] is sent.
#[derive(Clone, Copy, Debug)]
enum Next {
    /// As soon as the first one ended (given up or answered).
    After,
    /// This long after the first one was sent, so it waits for the pod's one slot while the first holds it.
    Waiting(Duration),
}

/// The first request of a [`first_then_next`] check.
struct First {
    path: &'static str,
    /// Send a 64 KiB body, which the app never reads. The app's server then does not watch the connection, so when
    /// the activator drops it the app works on until its answer is due, as most app servers do (with nothing left to
    /// read, the sample app's server notices the close and abandons the request, which leaves only a race).
    unread_body: bool,
    /// The client gives up after this long.
    give_up: Duration,
}

/// GET `first.path` on a connection of its own, then GET `/` on `client`; returns both outcomes.
async fn first_then_next(client: &load::HttpClient, target: &Target, first: &First, next: Next) -> (Outcome, Outcome) {
    let started = Instant::now();
    let body = if first.unread_body {
        vec![b'x'; 64 * 1024]
    } else {
        vec![]
    };
    let request = http::Request::get(format!("http://{}{}", target.address, first.path))
        .header(http::header::HOST, &target.host)
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .expect("a valid request");
    let give_up = first.give_up;
    let first = tokio::spawn(async move {
        let result = runway_tests::http::send(request, give_up).await;
        (result, started.elapsed())
    });
    let (first, next) = match next {
        Next::After => {
            let first = first.await;
            (first, load::get(client, target, "/", REQUEST).await)
        }
        Next::Waiting(delay) => {
            // A fixed offset on purpose: the second request must arrive while the first is in flight.
            tokio::time::sleep(delay).await;
            let next = load::get(client, target, "/", REQUEST).await;
            (first.await, next)
        }
    };
    let (first, took) = first.expect("the first request's task panicked");
    let first = match first {
        Ok(response) => Outcome {
            status: Some(response.status),
            error: None,
            time_to_headers: took,
            cold_start: false,
            revision: response
                .headers
                .get(runway_api::names::REVISION_HEADER)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
            body: response.body,
            sent_at: Duration::ZERO,
        },
        Err(error) => Outcome {
            status: None,
            error: Some(format!("{error:#}")),
            time_to_headers: took,
            cold_start: false,
            revision: None,
            body: String::new(),
            sent_at: Duration::ZERO,
        },
    };
    (first, next)
}

#[tokio::test]
async fn t14_a_cc1_pod_gets_no_new_request_while_one_its_client_gave_up_on_or_that_timed_out_still_runs() {
    runway_scenario("e2e-giveup", |cluster, ns| async move {
        // The app answers 500 to a request that starts while another is in flight (and to the one it overlapped).
        let spec = json!({"containerConcurrency": 1, "timeoutSeconds": 1, "scaling": {"minScale": 1, "maxScale": 1}});
        deploy(&cluster, &ns, "giveup", &[("REJECT_OVERLAP", "true")], spec).await?;
        let activators = each_activator(&cluster, &ns, "giveup").await?;
        let gave_up = |path, unread_body| First {
            path,
            unread_body,
            give_up: Duration::from_millis(500),
        };
        let timed_out = |path, unread_body| First {
            path,
            unread_body,
            give_up: REQUEST,
        };
        let waiting = |ms| Next::Waiting(Duration::from_millis(ms));
        // (what, first request, what it must get (None: given up by its client), when the next one is sent)
        let cases = [
            // The client gives up on an 800 ms request after 0.5 s; the next request comes right after, or is
            // already waiting for the slot (from another client).
            ("client gave up on an 800 ms request", gave_up("/sleep?ms=800", false), None, Next::After),
            ("client gave up on an 800 ms request", gave_up("/sleep?ms=800", false), None, waiting(300)),
            ("client gave up on an 800 ms request with a body", gave_up("/sleep?ms=800", true), None, Next::After),
            // A 1.3 s request runs past the Service's 1 s timeout: 504. The pod still works on it for 0.3 s (it need
            // not notice that the activator gave up); the next request, sent right after or already waiting, may
            // wait for that within its own 1 s, but must not reach the pod before it is done. (After a 2.5 s request
            // the next one could not get 200 without the pod abandoning the first one.)
            ("1.3 s request past the 1 s timeout", timed_out("/sleep?ms=1300", false), Some(504), Next::After),
            ("1.3 s request past the 1 s timeout", timed_out("/sleep?ms=1300", false), Some(504), waiting(800)),
            ("1.3 s request with a body past the 1 s timeout", timed_out("/sleep?ms=1300", true), Some(504), Next::After),
        ];
        let mut wrong = vec![];
        let mut checks = 0;
        for (name, target) in &activators {
            // The next request comes on a kept-alive connection, as from a real client.
            let client = load::client();
            wait_idle(&client, target).await?;
            for round in 1..=1 {
                for (what, first, want_first, next_mode) in &cases {
                    let unread_body = first.unread_body;
                    let (first, next) = first_then_next(&client, target, first, *next_mode).await;
                    checks += 1;
                    let line = format!(
                        "{name} ({}) round {round}, {what}, next request {next_mode:?}: first got {} after {:?}, next got {}",
                        target.address,
                        first.label(),
                        first.time_to_headers,
                        seen(&next)
                    );
                    eprintln!("{line}");
                    // An app that leaves a request body unread closes the connection right after its answer, without
                    // saying so; the next request, handed the freed slot at once, can race that close on the pooled
                    // connection (a 502 unless the pod's reset proves the request unread). A known keep-alive race,
                    // not an overlap: this test is about the slot, so it tolerates that one answer there.
                    let keep_alive_race = unread_body
                        && next.status.map(|s| s.as_u16()) == Some(502)
                        && next.body == "the backend failed to answer\n";
                    if first.status.map(|s| s.as_u16()) != *want_first || !(next.ok() || keep_alive_race) {
                        wrong.push(line);
                    }
                    wait_idle(&client, target).await?;
                }
            }
        }
        ensure!(
            wrong.is_empty(),
            "{} of {checks} checks failed (want: the first request given up or 504, the next one 200):\n{}",
            wrong.len(),
            wrong.join("\n")
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t15_steady_load_through_two_activators_gets_only_200s() {
    runway_scenario("e2e-steady", |cluster, ns| async move {
        set_activators(&cluster, 2).await?;
        // 5 pods x 10 slots, split 5 + 5 between the activators: 8 clients never fill them, nothing is forwarded.
        let spec = json!({"containerConcurrency": 10, "scaling": {"minScale": 5, "maxScale": 5}});
        let target = deploy(&cluster, &ns, "steady", &[], spec).await?;
        runway::wait_scale(&cluster, &ns, "steady", 5, READY).await?;
        let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &ns);
        let selector = format!("{}=steady", runway_api::names::SERVICE_LABEL);
        runway_tests::pods::wait_ready(&pods, &selector, 5, READY).await?;

        let started_ms = unix_ms();
        let load = Load::start(&target, "/sleep?ms=100", 8, REQUEST);
        tokio::time::sleep(Duration::from_secs(40)).await;
        let outcomes = load.finish().await;
        print_failures(started_ms, &outcomes);
        ensure_all_ok(
            "8 clients sending 100 ms requests for 40 s through two activators",
            &outcomes,
        )?;
        Ok(())
    })
    .await;
}
