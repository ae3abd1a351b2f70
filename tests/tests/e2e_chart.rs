//! End-to-end tests of Runway's Helm chart: it lints clean (`--strict`, which validates values.yaml against
//! values.schema.json), renders the committed manifests (`make manifests`), which pass a server-side dry run, also
//! with the entry points the defaults leave out (HTTPRoute, Ingress) and with the `helm test` hooks; its values
//! render as docs/configuration.md says (images, durations, the activator's grace period, the CRDs, the optional
//! objects) and the schema refuses bad ones; and `helm upgrade --install` leaves both components Ready. The first
//! e2e file by name, as these were the first tests.
//!
//! Part of the e2e suite (`tests/tests/e2e_*.rs`): Runway installed with Helm on a real cluster (the local one from
//! `make up` unless `$KUBECONFIG` names another), each test in its own namespace once
//! `runway_tests::install::ensure_installed` has found (or made) Runway ready, so the file also runs alone (a test
//! name such as `t00` filters; one test at a time, as they measure pod counts and latencies):
//! `cargo test -p runway-tests --features cluster --test e2e_chart -- --test-threads=1`. t00b needs helm only.
#![forbid(unsafe_code)]

use anyhow::{Context, ensure};
use runway_tests::chart::{self, TEMPLATE, find, has, objects, server_dry_run, server_dry_run_of};
use runway_tests::cluster::repo_root;
use runway_tests::install::{self, helm};
use runway_tests::runway::{self, NAMESPACE};
use runway_tests::scenario::runway_scenario;
use serde_json::Value;

/// `helm template` with `sets` (`key=value` each) over the defaults.
async fn render(sets: &[&str]) -> anyhow::Result<String> {
    let args: Vec<String> = sets.iter().map(|set| format!("--set={set}")).collect();
    chart::template(&args).await
}

/// The activator Deployment's pod spec with `sets`.
async fn activator_pod(sets: &[&str]) -> anyhow::Result<Value> {
    let objects = objects(&render(sets).await?)?;
    Ok(find(&objects, "Deployment", "runway-activator")?["spec"]["template"]["spec"].clone())
}

/// The args of a pod spec's first container.
fn container_args(pod: &Value) -> Vec<String> {
    let args = pod["containers"][0]["args"].as_array().cloned().unwrap_or_default();
    args.iter().filter_map(|a| a.as_str().map(str::to_owned)).collect()
}

/// `value` with every number as a float, so that 1000 and 1000.0 compare equal.
fn numbers_as_floats(value: Value) -> Value {
    match value {
        Value::Number(n) => n.as_f64().map_or(Value::Number(n), Value::from),
        Value::Array(items) => Value::Array(items.into_iter().map(numbers_as_floats).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, numbers_as_floats(v))).collect()),
        other => other,
    }
}

#[tokio::test]
async fn t00_the_chart_lints_clean_renders_the_committed_manifests_and_passes_a_server_dry_run() {
    runway_scenario("e2e-chart", |cluster, _ns| async move {
        let lint = helm(&["lint", "--strict", "deploy/runway"]).await?;
        ensure!(
            !lint.contains("[WARNING]") && !lint.contains("[ERROR]"),
            "helm lint: {lint}"
        );
        let rendered = helm(&TEMPLATE).await?;
        let manifests = repo_root().join(runway::MANIFESTS);
        let committed = std::fs::read_to_string(&manifests)?;
        ensure!(
            rendered == committed,
            "{} is stale: run `make manifests` and commit it",
            runway::MANIFESTS
        );
        let dry_run = server_dry_run(&cluster, &manifests).await?;
        eprintln!("server-side dry run of {}:\n{dry_run}", runway::MANIFESTS);

        // The templates the defaults leave out: the HTTPRoute and the Ingress.
        let entry_points = [
            "--set=gateway.enabled=true",
            "--set=gateway.parentRefs[0].name=runway",
            "--set=gateway.parentRefs[0].namespace=traefik",
            "--set=ingress.enabled=true",
            "--set=ingress.namespaces={default}",
            "--set=ingress.tls.secretName=runway-tls",
        ];
        let lint = helm(&[&["lint", "--strict", "deploy/runway"][..], &entry_points[..]].concat()).await?;
        ensure!(
            !lint.contains("[WARNING]") && !lint.contains("[ERROR]"),
            "helm lint with the entry points: {lint}"
        );
        let rendered = helm(&[&TEMPLATE[..], &entry_points[..]].concat()).await?;
        ensure!(
            rendered.contains("kind: HTTPRoute") && rendered.contains("kind: Ingress"),
            "the entry points did not render"
        );
        server_dry_run_of(&cluster, "entry-points", &rendered).await?;

        // The `helm test` hooks (a Runway Service, and the client pod), which `make manifests` leaves out: valid
        // against the installed CRDs and the pod security rules. Another release name than the installed one's,
        // whose hooks may exist (a pod's spec cannot change, not even in a dry run).
        let hooks = helm(&[
            "template",
            "chart-check",
            "deploy/runway",
            "--namespace",
            NAMESPACE,
            "--kube-version",
            "1.30.0",
            "--show-only",
            "templates/tests/connection.yaml",
        ])
        .await?;
        let objects = objects(&hooks)?;
        ensure!(
            has(&objects, "Service", "chart-check-test") && has(&objects, "Pod", "chart-check-test-client"),
            "the helm test hooks did not render: {hooks}"
        );
        server_dry_run_of(&cluster, "helm-test-hooks", &hooks).await
    })
    .await;
}

/// The values render as docs/configuration.md says, and values.schema.json refuses misspelt and malformed values.
#[tokio::test]
async fn t00b_the_values_render_as_documented_and_the_schema_refuses_bad_ones() -> anyhow::Result<()> {
    // terminationGracePeriodSeconds: drainDelay + shutdownTimeout, rounded up to whole seconds, + 10 s.
    for (sets, want) in [
        (&[][..], 45),
        (&["activator.shutdownTimeout=120s"][..], 135),
        (
            &["activator.drainDelay=1m30s", "activator.shutdownTimeout=250ms"][..],
            101,
        ),
        (&["activator.drainDelay=0", "activator.shutdownTimeout=1h"][..], 3610),
        (&["activator.drainDelay=2", "activator.shutdownTimeout=1.5m"][..], 102),
    ] {
        let pod = activator_pod(sets).await?;
        ensure!(
            pod["terminationGracePeriodSeconds"] == want,
            "{sets:?}: terminationGracePeriodSeconds {}, want {want}",
            pod["terminationGracePeriodSeconds"]
        );
    }

    // Durations reach the activator in the forms its flags parse (ms, s, m), whatever form the value has.
    let pod = activator_pod(&[
        "activator.drainDelay=1m30s",
        "activator.connections.tunnelIdleTimeout=1h",
        "activator.connections.idleTimeout=0",
        "activator.backends.probe.timeout=1.5s",
        "activator.backends.connectTimeout=2",
        "activator.workerThreads=",
        "activator.extraArgs[0]=--some-flag=1",
        "activator.trustedProxies={10.0.0.0/8,fd00::/8}",
    ])
    .await?;
    let args = container_args(&pod);
    for want in [
        "--drain-delay=90s",
        "--tunnel-idle-timeout=60m",
        "--idle-timeout=0s",
        "--probe-timeout=1500ms",
        "--connect-timeout=2s",
        "--probe-fast-interval=10ms",
        "--some-flag=1",
        "--trusted-proxies=10.0.0.0/8,fd00::/8",
    ] {
        ensure!(args.iter().any(|a| a == want), "no {want} in {args:?}");
    }
    ensure!(
        !args.iter().any(|a| a.starts_with("--worker-threads")),
        "an empty workerThreads leaves the flag out: {args:?}"
    );
    ensure!(
        container_args(&activator_pod(&[]).await?)
            .iter()
            .any(|a| a == "--worker-threads=2"),
        "workerThreads defaults to 2"
    );

    // Images: {registry}/{name}:{tag}[@{digest}], the tag defaulting to the chart's appVersion.
    let chart = std::fs::read_to_string(repo_root().join("deploy/runway/Chart.yaml"))?;
    let app_version = chart
        .lines()
        .find_map(|l| l.strip_prefix("appVersion: "))
        .context("Chart.yaml has an appVersion")?
        .trim_matches('"');
    let image = |pod: &Value| pod["containers"][0]["image"].as_str().unwrap_or_default().to_owned();
    ensure!(
        image(&pod) == format!("runway.local/runway-activator:{app_version}"),
        "{}",
        image(&pod)
    );
    let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let digest_set = format!("activator.image.digest={digest}");
    let pod = activator_pod(&[
        "image.registry=ghcr.io/acme/",
        "image.tag=1.2.3",
        &digest_set,
        "image.pullPolicy=Always",
        "imagePullSecrets[0].name=regcred",
    ])
    .await?;
    ensure!(
        image(&pod) == format!("ghcr.io/acme/runway-activator:1.2.3@{digest}"),
        "{}",
        image(&pod)
    );
    ensure!(pod["containers"][0]["imagePullPolicy"] == "Always");
    ensure!(pod["imagePullSecrets"] == serde_json::json!([{"name": "regcred"}]));

    // The defaults: CRDs labelled and kept, the aggregated roles, both PDBs, spread over nodes.
    let defaults = objects(&render(&[]).await?)?;
    for name in [
        "services.serving.runway.dev",
        "revisions.serving.runway.dev",
        "domainmappings.serving.runway.dev",
    ] {
        let crd = find(&defaults, "CustomResourceDefinition", name)?;
        ensure!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep",
            "{name}: not kept"
        );
        ensure!(
            crd["metadata"]["labels"]["app.kubernetes.io/part-of"] == "runway",
            "{name}: not labelled"
        );
    }
    // The rendered CRDs are the generated ones (their labels and annotations aside; Helm writes 1000.0 as 1000).
    let generated = [
        runway_api::crd::service_crd(),
        runway_api::crd::revision_crd(),
        <runway_api::domain_mapping::DomainMapping as kube::CustomResourceExt>::crd(),
    ];
    for crd in generated {
        let want = serde_json::to_value(&crd)?;
        let name = want["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        let mut have = find(&defaults, "CustomResourceDefinition", &name)?.clone();
        let metadata = have["metadata"].as_object_mut().context("metadata")?;
        metadata.remove("labels");
        metadata.remove("annotations");
        ensure!(
            numbers_as_floats(have) == numbers_as_floats(want),
            "the chart's CRD {name} is not the generated one: run `make crds`"
        );
    }
    let edit = find(&defaults, "ClusterRole", "runway-edit")?;
    ensure!(edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true");
    ensure!(edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"] == "true");
    let view = find(&defaults, "ClusterRole", "runway-view")?;
    ensure!(view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true");
    for component in ["operator", "activator"] {
        let name = format!("runway-{component}");
        ensure!(
            has(&defaults, "PodDisruptionBudget", &name),
            "no PodDisruptionBudget {name}"
        );
        let pod = &find(&defaults, "Deployment", &name)?["spec"]["template"]["spec"];
        let spread = &pod["topologySpreadConstraints"][0];
        ensure!(
            spread["topologyKey"] == "kubernetes.io/hostname"
                && spread["labelSelector"]["matchLabels"]["app.kubernetes.io/name"] == name.as_str(),
            "{name}: {spread}"
        );
    }

    // Each optional object goes with its value.
    let without = objects(
        &render(&[
            "crds.enabled=false",
            "rbac.aggregateToDefaultRoles=false",
            "operator.podDisruptionBudget.enabled=false",
            "activator.podDisruptionBudget.enabled=false",
            "activator.networkPolicy.enabled=false",
            "operator.topologySpreadConstraints=null",
        ])
        .await?,
    )?;
    for (kind, name) in [
        ("CustomResourceDefinition", "services.serving.runway.dev"),
        ("ClusterRole", "runway-edit"),
        ("ClusterRole", "runway-view"),
        ("PodDisruptionBudget", "runway-operator"),
        ("PodDisruptionBudget", "runway-activator"),
        ("NetworkPolicy", "runway-activator"),
    ] {
        ensure!(!has(&without, kind, name), "{kind} {name} rendered though turned off");
    }
    let operator = &find(&without, "Deployment", "runway-operator")?["spec"]["template"]["spec"];
    ensure!(operator["topologySpreadConstraints"].is_null(), "{operator}");
    let unkept = objects(&render(&["crds.keep=false"]).await?)?;
    let crd = find(&unkept, "CustomResourceDefinition", "services.serving.runway.dev")?;
    ensure!(
        crd["metadata"]["annotations"]["helm.sh/resource-policy"].is_null(),
        "{crd}"
    );

    // The schema refuses a misspelt value, a malformed duration, a value outside its enum.
    for (set, says) in [
        ("activator.replica=3", "additional properties 'replica' not allowed"),
        ("activator.drainDelay=5x", "does not match pattern"),
        ("activator.connections.idleTimeout=1d", "does not match pattern"),
        ("logFormat=xml", "value must be one of"),
        ("activator.service.type=ExternalName", "value must be one of"),
        ("activator.workerThreads=0", "workerThreads"),
    ] {
        let refused = render(&[set]).await;
        let error = format!("{:#}", refused.err().with_context(|| format!("{set} was accepted"))?);
        ensure!(error.contains(says), "{set}: {error}");
    }
    Ok(())
}

#[tokio::test]
async fn t01_helm_install_makes_operator_and_activator_ready() {
    runway_scenario("e2e-install", |cluster, _ns| async move {
        // `make up` installed the chart (or the scenario did, finding it missing); upgrading it in place must work
        // and leave both components Ready.
        install::upgrade_or_install(&cluster).await?;
        install::wait_components_ready(&cluster).await
    })
    .await;
}
