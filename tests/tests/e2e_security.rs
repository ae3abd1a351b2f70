//! End-to-end tests of Runway's guarantees against a caller that walks around the activator, with NetworkPolicy
//! enforced (kube-network-policies on the local cluster and on kind), and of the restricted defaults of workload
//! pods (docs/security.md).
//!
//! Part of the e2e suite (`tests/tests/e2e_*.rs`): Runway installed with Helm on a real cluster (the local one from
//! `make up` unless `$KUBECONFIG` names another), each test in its own namespace once
//! `runway_tests::install::ensure_installed` has found (or made) Runway ready, so the file also runs alone (a test
//! name such as `t35` filters; one test at a time):
//! `cargo test -p runway-tests --features cluster --test e2e_security -- --test-threads=1`.
#![forbid(unsafe_code)]

use std::time::Duration;

use anyhow::{Context, ensure};
use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::Full;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::DeleteParams;
use runway_tests::answers::seen;
use runway_tests::cluster::Cluster;
use runway_tests::http::{Response, client_pod, get_once_from_a_pod, send};
use runway_tests::load::{self, Target};
use runway_tests::runway::{self, DOMAIN, READY, REQUEST, deploy};
use runway_tests::scenario::{create_namespace, runway_scenario};
use runway_tests::wait::wait_until;
use runway_tests::workloads::HELLO_PORT;
use serde_json::json;

/// How long a direct attempt that a policy drops is given before it counts as not answered.
const DIRECT_ATTEMPT: Duration = Duration::from_secs(3);

/// A namespace of its own for the caller, deleted when dropped from the test's flow by [`delete_namespace`].
async fn caller_namespace(cluster: &Cluster) -> anyhow::Result<String> {
    let ns = create_namespace(cluster, "e2e-caller").await?;
    client_pod(cluster, &ns, "caller").await?;
    Ok(ns)
}

async fn delete_namespace(cluster: &Cluster, ns: &str) {
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    if let Err(e) = namespaces.delete(ns, &DeleteParams::background()).await {
        eprintln!("could not delete namespace {ns}: {e}");
    }
}

/// The IP of the one pod of Service `name`.
async fn pod_ip(cluster: &Cluster, ns: &str, name: &str) -> anyhow::Result<String> {
    let pods = runway::pods(cluster, ns, name).await?;
    let pod = pods.first().with_context(|| format!("Service {name} has no pod"))?;
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .with_context(|| format!("pod of {name} has no IP"))
}

/// From a pod in another namespace, a request straight to a workload pod's IP and one to its revision's headless
/// Service `{revision}-pods` get no answer, while the same request through the activator (the Service's cluster
/// URL) is answered: the revision's NetworkPolicy admits only the activators.
#[tokio::test]
async fn t35_a_workload_pod_answers_only_through_the_activator() {
    runway_scenario("e2e-isolation", |cluster, ns| async move {
        let caller = caller_namespace(&cluster).await?;
        let result = isolation(&cluster, &ns, &caller).await;
        delete_namespace(&cluster, &caller).await;
        result
    })
    .await;
}

async fn isolation(cluster: &Cluster, ns: &str, caller: &str) -> anyhow::Result<()> {
    deploy(cluster, ns, "guarded", &[], json!({"scaling": {"minScale": 1}})).await?;
    let ip = pod_ip(cluster, ns, "guarded").await?;
    let revision = runway::revision_of(cluster, ns, "guarded").await?;
    let through_activator = format!("http://guarded.{ns}.svc.cluster.local/");
    // The policy may take a moment to reach the enforcer after the pod starts: wait for the direct path to close,
    // then check the activator's path is open.
    let direct = format!("http://{ip}:{HELLO_PORT}/");
    wait_until(format!("{direct} refused to {caller}"), READY, || async {
        match get_once_from_a_pod(cluster, caller, "caller", &direct, None, DIRECT_ATTEMPT).await {
            Ok(body) => Err(format!("answered: {body}")),
            Err(_) => Ok(()),
        }
    })
    .await?;
    let headless = format!("http://{revision}-pods.{ns}.svc.cluster.local:{HELLO_PORT}/");
    let seen = get_once_from_a_pod(cluster, caller, "caller", &headless, None, DIRECT_ATTEMPT).await;
    ensure!(
        seen.is_err(),
        "{headless} answered a pod of another namespace: {seen:?}"
    );
    let body = get_once_from_a_pod(
        cluster,
        caller,
        "caller",
        &through_activator,
        None,
        Duration::from_secs(30),
    )
    .await
    .map_err(anyhow::Error::msg)
    .context("through the activator")?;
    ensure!(body.starts_with("hello from guarded-"), "through the activator: {body}");
    eprintln!("direct to {ip} and {headless}: no answer; through the activator: {body}");
    Ok(())
}

/// A `containerConcurrency: 1` Service whose app rejects overlapping requests: 10 concurrent direct attempts from
/// another pod get no answer, and 10 concurrent requests through the activator at the same time all get 200 (none
/// overlapped another in the pod).
#[tokio::test]
async fn t36_direct_attempts_cannot_overlap_a_cc1_pod() {
    runway_scenario("e2e-cc1-direct", |cluster, ns| async move {
        let caller = caller_namespace(&cluster).await?;
        let result = no_overlap(&cluster, &ns, &caller).await;
        delete_namespace(&cluster, &caller).await;
        result
    })
    .await;
}

async fn no_overlap(cluster: &Cluster, ns: &str, caller: &str) -> anyhow::Result<()> {
    let spec = json!({"containerConcurrency": 1, "scaling": {"minScale": 1, "maxScale": 1}});
    deploy(cluster, ns, "single", &[("REJECT_OVERLAP", "true")], spec).await?;
    let ip = pod_ip(cluster, ns, "single").await?;
    let direct = format!("http://{ip}:{HELLO_PORT}/sleep?ms=500");
    let through_activator = format!("http://single.{ns}.svc.cluster.local/sleep?ms=500");
    let attempts = (0..10).map(|_| get_once_from_a_pod(cluster, caller, "caller", &direct, None, DIRECT_ATTEMPT));
    let served = (0..10).map(|_| {
        get_once_from_a_pod(
            cluster,
            caller,
            "caller",
            &through_activator,
            None,
            Duration::from_secs(60),
        )
    });
    let (attempts, served) = tokio::join!(futures::future::join_all(attempts), futures::future::join_all(served));
    let answered: Vec<&String> = attempts.iter().filter_map(|a| a.as_ref().ok()).collect();
    ensure!(answered.is_empty(), "direct attempts were answered: {answered:?}");
    let failed: Vec<&String> = served.iter().filter_map(|s| s.as_ref().err()).collect();
    ensure!(
        failed.is_empty(),
        "requests through the activator failed (an overlap answers 500): {failed:?}"
    );
    eprintln!("10 direct attempts: no answer; 10 through the activator: 200");
    Ok(())
}

/// A Service whose template leaves the security context unset runs with the restricted defaults (read from its
/// pod); one whose template sets its own keeps it.
#[tokio::test]
async fn t39_workload_pods_run_restricted_unless_the_template_says_otherwise() {
    runway_scenario("e2e-restricted", |cluster, ns| async move {
        deploy(&cluster, &ns, "plain", &[], json!({"scaling": {"minScale": 1}})).await?;
        let pod = first_pod(&cluster, &ns, "plain").await?;
        let spec = pod.spec.context("pod without spec")?;
        let seccomp = spec.security_context.as_ref().and_then(|s| s.seccomp_profile.as_ref());
        ensure!(
            seccomp.map(|p| p.type_.as_str()) == Some("RuntimeDefault"),
            "pod seccomp profile: {seccomp:?}"
        );
        let container = &spec.containers[0];
        let context = container
            .security_context
            .as_ref()
            .context("no container securityContext")?;
        ensure!(
            context.allow_privilege_escalation == Some(false),
            "allowPrivilegeEscalation: {:?}",
            context.allow_privilege_escalation
        );
        let dropped = context
            .capabilities
            .as_ref()
            .and_then(|c| c.drop.clone())
            .unwrap_or_default();
        ensure!(dropped == ["ALL"], "capabilities dropped: {dropped:?}");
        eprintln!("defaults: {context:?}");

        let own = json!({"allowPrivilegeEscalation": true, "capabilities": {"add": ["NET_RAW"]}});
        let mut service = runway::hello_service("own", &[], json!({"scaling": {"minScale": 1}}))?;
        let template = &mut service.spec.template.spec;
        let container = template.containers.first_mut().context("no container")?;
        container.security_context = Some(serde_json::from_value(own)?);
        runway::create(&cluster, &ns, &service).await?;
        runway::wait_ready(&cluster, &ns, "own", READY).await?;
        let pod = first_pod(&cluster, &ns, "own").await?;
        let context = pod.spec.context("pod without spec")?.containers[0]
            .security_context
            .clone()
            .context("no container securityContext")?;
        ensure!(
            context.allow_privilege_escalation == Some(true),
            "the template's own value was replaced: {context:?}"
        );
        let caps = context
            .capabilities
            .context("the template's capabilities were dropped")?;
        ensure!(
            caps.add == Some(vec!["NET_RAW".to_owned()]) && caps.drop.is_none(),
            "the template's capabilities were changed: {caps:?}"
        );
        Ok(())
    })
    .await;
}

async fn first_pod(cluster: &Cluster, ns: &str, name: &str) -> anyhow::Result<Pod> {
    runway::pods(cluster, ns, name)
        .await?
        .into_iter()
        .next()
        .with_context(|| format!("Service {name} has no pod"))
}

/// `Authorization: Bearer {token}` (or no header) GET of `/` through the activator's external entry point.
async fn call(target: &Target, token: Option<&str>) -> anyhow::Result<Response> {
    let mut request = Request::get(format!("http://{}/", target.address)).header(header::HOST, &target.host);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    send(request.body(Full::new(Bytes::new()))?, REQUEST).await
}

/// A ServiceAccount token for `account` in `ns` with `audience`.
async fn token(cluster: &Cluster, ns: &str, account: &str, audience: &str) -> anyhow::Result<String> {
    let args = [
        "-n",
        ns,
        "create",
        "token",
        account,
        "--audience",
        audience,
        "--duration",
        "10m",
    ];
    Ok(cluster.kubectl().run(&args).await?.trim().to_owned())
}

/// The sum over the activators of the counter series whose line starts with `name`.
async fn activators_counter(cluster: &Cluster, name: &str) -> anyhow::Result<f64> {
    let mut total = 0.0;
    for pod in runway::activator_pods(cluster).await? {
        let admin = Target {
            address: std::net::SocketAddr::new(pod.address.ip(), 9090),
            host: "metrics".into(),
        };
        let metrics = load::get(&load::client(), &admin, "/metrics", REQUEST).await;
        ensure!(metrics.ok(), "metrics of {}: {}", pod.name, seen(&metrics));
        total += metrics
            .body
            .lines()
            .filter(|line| line.starts_with(name))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    Ok(total)
}

/// With `invokers: Authorized`: no token and a token for another audience get 401 with `WWW-Authenticate`, a valid
/// token whose ServiceAccount may not `invoke` gets 403, and none of them wakes the Service at zero; after a
/// RoleBinding to `runway-invoker` the same token gets 200.
#[tokio::test]
async fn t37_an_authorized_only_service_answers_only_callers_rbac_allows() {
    runway_scenario("e2e-invokers", |cluster, ns| async move {
        let mut spec = runway::quick_zero();
        spec["invokers"] = json!("Authorized");
        let target = deploy(&cluster, &ns, "secret", &[], spec).await?;
        runway::wait_zero(&cluster, &ns, "secret", READY).await?;
        let kubectl = cluster.kubectl();
        kubectl.run(&["-n", &ns, "create", "serviceaccount", "caller"]).await?;
        let audience = format!("http://secret.{ns}.{DOMAIN}");
        let good = token(&cluster, &ns, "caller", &audience).await?;
        let other = token(&cluster, &ns, "caller", "http://elsewhere.example.com").await?;

        let anonymous = call(&target, None).await?;
        ensure!(
            anonymous.status == StatusCode::UNAUTHORIZED,
            "no token: {} {}",
            anonymous.status,
            anonymous.body
        );
        let challenge = anonymous
            .headers
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap_or_default());
        ensure!(
            challenge.is_some_and(|c| c.starts_with("Bearer")),
            "no token: WWW-Authenticate {challenge:?}"
        );
        let wrong = call(&target, Some(&other)).await?;
        ensure!(
            wrong.status == StatusCode::UNAUTHORIZED,
            "another audience: {} {}",
            wrong.status,
            wrong.body
        );
        let denied = call(&target, Some(&good)).await?;
        ensure!(
            denied.status == StatusCode::FORBIDDEN,
            "no invoke: {} {}",
            denied.status,
            denied.body
        );
        // A request that would wake the Service counts a cold start at the activator the moment it arrives, before
        // the autoscaler is poked: none may have been counted, and the Service is still at zero.
        let cold_starts = format!("runway_activator_cold_starts_total{{namespace=\"{ns}\"");
        let woken = activators_counter(&cluster, &cold_starts).await?;
        ensure!(woken == 0.0, "401 and 403 counted {woken} cold starts");
        let scale = runway::scale(&cluster, &ns, "secret").await?;
        ensure!(scale == 0, "401 and 403 woke the Service: scale {scale}");

        let binding = [
            "-n",
            &ns,
            "create",
            "rolebinding",
            "callers",
            "--clusterrole=runway-invoker",
            &format!("--serviceaccount={ns}:caller"),
        ];
        kubectl.run(&binding).await?;
        // Denials are cached for a few seconds: the first 200 comes once that has passed.
        wait_until("the token allowed after the RoleBinding", READY, || async {
            match call(&target, Some(&good)).await {
                Ok(r) if r.status == StatusCode::OK => Ok(()),
                Ok(r) => Err(format!("{} {}", r.status, r.body)),
                Err(e) => Err(format!("{e:#}")),
            }
        })
        .await?;
        Ok(())
    })
    .await;
}

/// 1,000 requests with one token cost the API server a handful of TokenReviews (one per activator and cache
/// lifetime), counted by the activators' metric.
#[tokio::test]
async fn t38_authenticated_requests_are_reviewed_once_per_token_not_per_request() {
    runway_scenario("e2e-invoke-cache", |cluster, ns| async move {
        let spec = json!({"invokers": "Authorized", "scaling": {"minScale": 1}});
        let target = deploy(&cluster, &ns, "busy", &[], spec).await?;
        let kubectl = cluster.kubectl();
        kubectl.run(&["-n", &ns, "create", "serviceaccount", "caller"]).await?;
        let binding = [
            "-n",
            &ns,
            "create",
            "rolebinding",
            "callers",
            "--clusterrole=runway-invoker",
            &format!("--serviceaccount={ns}:caller"),
        ];
        kubectl.run(&binding).await?;
        let good = token(&cluster, &ns, "caller", &format!("http://busy.{ns}.{DOMAIN}")).await?;
        wait_until("the first authorized 200", READY, || async {
            match call(&target, Some(&good)).await {
                Ok(r) if r.status == StatusCode::OK => Ok(()),
                Ok(r) => Err(format!("{} {}", r.status, r.body)),
                Err(e) => Err(format!("{e:#}")),
            }
        })
        .await?;
        let before = activators_counter(&cluster, "runway_activator_token_reviews_total").await?;
        let mut failures = vec![];
        for _ in 0..1000 {
            let answer = call(&target, Some(&good)).await?;
            if answer.status != StatusCode::OK {
                failures.push(format!("{} {}", answer.status, answer.body));
            }
        }
        let after = activators_counter(&cluster, "runway_activator_token_reviews_total").await?;
        ensure!(
            failures.is_empty(),
            "{} of 1000 not 200, e.g. {:?}",
            failures.len(),
            failures.first()
        );
        let reviews = after - before;
        eprintln!("1000 authenticated requests: {reviews} TokenReviews");
        ensure!(
            reviews <= 4.0,
            "1000 requests with one token cost {reviews} TokenReviews"
        );
        Ok(())
    })
    .await;
}

/// An activator's admin port (load stream, metrics, slot handoff) answers the release's own pods only: a pod of
/// another namespace gets no answer, while its internal entry point answers it.
#[tokio::test]
async fn t40_the_activators_admin_port_is_closed_to_other_namespaces() {
    runway_scenario("e2e-admin-port", |cluster, ns| async move {
        client_pod(&cluster, &ns, "caller").await?;
        let activator = runway::activator_pods(&cluster)
            .await?
            .into_iter()
            .next()
            .context("no activator")?;
        let ip = activator.address.ip();
        let admin = format!("http://{ip}:9090/metrics");
        let seen = get_once_from_a_pod(&cluster, &ns, "caller", &admin, None, DIRECT_ATTEMPT).await;
        ensure!(
            seen.is_err(),
            "{admin} answered a pod of {ns}: {:?}",
            seen.map(|b| b.len())
        );
        let health = format!("http://{ip}:8081/");
        let internal = get_once_from_a_pod(&cluster, &ns, "caller", &health, Some("nothing.here"), REQUEST).await;
        ensure!(
            internal.as_ref().is_err_and(|e| e.contains("404")),
            "the internal entry point did not answer 404 for an unknown host: {internal:?}"
        );
        Ok(())
    })
    .await;
}
