//! End-to-end tests of networking: a ClusterLocal Service answers inside the cluster while the external entry point
//! reveals nothing; a custom domain (DomainMapping) routes to its Service and a second claim waits for the first to
//! go; HTTPS and HTTP/2 through the local cluster's ingress, as a Gateway (HTTPRoutes) and as an Ingress controller.
//! t20 and t22 change the release's values (`helm upgrade --reuse-values`) and t22 leaves the Gateway route off;
//! t19, which checks a mapped domain's HTTPRoutes only where the route is on, runs before them (tests run by name).
//!
//! Part of the e2e suite (`tests/tests/e2e_*.rs`): Runway installed with Helm on a real cluster (the local one from
//! `make up` unless `$KUBECONFIG` names another), each test in its own namespace once
//! `runway_tests::install::ensure_installed` has found (or made) Runway ready, so the file also runs alone (a test
//! name such as `t18` filters; one test at a time, as they measure pod counts and latencies):
//! `cargo test -p runway-tests --features cluster --test e2e_networking -- --test-threads=1`.
#![forbid(unsafe_code)]

use anyhow::ensure;
use kube::Api;
use runway_api::domain_mapping::DomainMapping;
use runway_tests::answers::seen;
use runway_tests::command::run;
use runway_tests::domains::{
    domain_mapping, gateway_routes_on, mapped_http_routes, mapping_condition, wait_mapped_routes, wait_mapping,
};
use runway_tests::http::get_from_a_pod;
use runway_tests::install::upgrade_with;
use runway_tests::load::{self, Target};
use runway_tests::runway::{self, NAMESPACE, READY, REQUEST, deploy};
use runway_tests::scenario::runway_scenario;
use runway_tests::wait::wait_until;
use serde_json::json;

#[tokio::test]
async fn t18_a_cluster_local_service_answers_inside_and_the_external_entry_point_reveals_nothing() {
    runway_scenario("e2e-entry", |cluster, ns| async move {
        let public = deploy(&cluster, &ns, "public", &[], json!({})).await?;
        runway::create(
            &cluster,
            &ns,
            &runway::hello_service("private", &[], json!({"visibility": "ClusterLocal"}))?,
        )
        .await?;
        let private = runway::wait_ready(&cluster, &ns, "private", READY).await?;
        let url = private.status.and_then(|s| s.url);
        let internal_url = format!("http://private.{ns}.svc.cluster.local");
        ensure!(url.as_deref() == Some(&*internal_url), "url {url:?}");

        let client = load::client();
        let external = |host: String| Target {
            address: public.address,
            host,
        };
        let outcome = load::get(&client, &public, "/", REQUEST).await;
        ensure!(
            outcome.ok(),
            "public through the external entry point: {}",
            seen(&outcome)
        );
        let unknown = load::get(&client, &external(format!("nothing.{ns}.example.com")), "/", REQUEST).await;
        ensure!(
            unknown.status.map(|s| s.as_u16()) == Some(404),
            "unknown host: {}",
            seen(&unknown)
        );
        // The ClusterLocal Service under the domain, and an External one by a cluster name (a spoofed Host): both
        // exactly like a host that names nothing.
        for host in [
            format!("private.{ns}.example.com"),
            format!("private.{ns}.svc.cluster.local"),
            format!("public.{ns}.svc.cluster.local"),
            format!("public.{ns}"),
        ] {
            let outcome = load::get(&client, &external(host.clone()), "/", REQUEST).await;
            let same_body = outcome.body.replace(&host, &format!("nothing.{ns}.example.com")) == unknown.body;
            ensure!(
                outcome.status.map(|s| s.as_u16()) == Some(404) && same_body,
                "{host} through the external entry point: {} (unknown host: {})",
                seen(&outcome),
                seen(&unknown)
            );
        }
        let body = get_from_a_pod(&cluster, &ns, &format!("{internal_url}/"), "hello from private-").await?;
        eprintln!("from pod client, {internal_url}: {}", body.trim());
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn t19_a_custom_domain_routes_to_its_service_and_a_second_claim_waits_for_the_first_to_go() {
    runway_scenario("e2e-domain", |cluster, ns| async move {
        let first = deploy(&cluster, &ns, "first", &[], json!({})).await?;
        let other_ns = runway_tests::scenario::create_namespace(&cluster, "e2e-domain-other").await?;
        let result = async {
            deploy(&cluster, &other_ns, "second", &[], json!({})).await?;
            let domain = format!("{ns}.example.org");
            let mine: Api<DomainMapping> = Api::namespaced(cluster.client.clone(), &ns);
            let theirs: Api<DomainMapping> = Api::namespaced(cluster.client.clone(), &other_ns);
            mine.create(&Default::default(), &domain_mapping(&domain, "first")?)
                .await?;
            let dm = wait_mapping(&mine, &domain, "Ready", "True").await?;
            let url = dm.status.and_then(|s| s.url);
            ensure!(url.as_deref() == Some(&*format!("http://{domain}")), "url {url:?}");
            // Where the chart turns the Gateway on (the local cluster), the holder's domain gets an HTTPRoute.
            let routed = gateway_routes_on(&cluster).await?;
            if routed {
                wait_mapped_routes(&cluster, &ns, &domain, 1).await?;
            }

            let client = load::client();
            let mapped = Target {
                address: first.address,
                host: domain.clone(),
            };
            let answer = |want: &'static str| {
                let (client, mapped) = (client.clone(), mapped.clone());
                wait_until(format!("Host {} answered by {want}", mapped.host), READY, move || {
                    let (client, mapped) = (client.clone(), mapped.clone());
                    async move {
                        let outcome = load::get(&client, &mapped, "/", REQUEST).await;
                        if outcome.ok() && outcome.body.starts_with(want) {
                            Ok(())
                        } else {
                            Err(seen(&outcome))
                        }
                    }
                })
            };
            answer("hello from first-").await?;

            // A second namespace claims the same domain: refused while the first holds it, routes nothing.
            theirs
                .create(&Default::default(), &domain_mapping(&domain, "second")?)
                .await?;
            let refused = wait_mapping(&theirs, &domain, "DomainClaimed", "False/DomainAlreadyClaimed").await?;
            ensure!(mapping_condition(&refused, "Ready").starts_with("False"), "{refused:?}");
            answer("hello from first-").await?;
            if routed {
                // A refused claim routes nothing at the ingress either.
                let theirs_routes = mapped_http_routes(&cluster, &other_ns)
                    .await
                    .map_err(anyhow::Error::msg)?;
                ensure!(
                    theirs_routes.is_empty(),
                    "routes of the refused claim: {theirs_routes:?}"
                );
            }

            // The first claim goes: the second becomes Ready and the domain routes to its Service.
            mine.delete(&domain, &Default::default()).await?;
            wait_mapping(&theirs, &domain, "Ready", "True").await?;
            answer("hello from second-").await?;
            if routed {
                // The HTTPRoute moves with the claim: the first's goes with it, the second gets one.
                wait_mapped_routes(&cluster, &ns, &domain, 0).await?;
                wait_mapped_routes(&cluster, &other_ns, &domain, 1).await?;
            }
            anyhow::Ok(())
        }
        .await;
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(cluster.client.clone());
        let _ = namespaces.delete(&other_ns, &Default::default()).await;
        result
    })
    .await;
}

/// A CA and a certificate it signed for `names`, made with openssl in `dir`: ca.pem, tls.crt, tls.key.
async fn test_certificate(dir: &std::path::Path, names: &[String]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let ca = [
        "req",
        "-x509",
        "-days",
        "1",
        "-subj",
        "/CN=runway e2e CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ];
    run("openssl", &[&ca[..], &ec[..]].concat(), dir).await?;
    let csr = [
        "req",
        "-subj",
        "/CN=runway e2e",
        "-keyout",
        "tls.key",
        "-out",
        "tls.csr",
    ];
    run("openssl", &[&csr[..], &ec[..]].concat(), dir).await?;
    let alt: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
    std::fs::write(dir.join("ext.cnf"), format!("subjectAltName={}\n", alt.join(",")))?;
    let sign = [
        "x509",
        "-req",
        "-in",
        "tls.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
    ];
    run(
        "openssl",
        &[&sign[..], &["-days", "1", "-extfile", "ext.cnf", "-out", "tls.crt"]].concat(),
        dir,
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn t20_through_the_ingress_https_and_h2_reach_external_services_and_mapped_domains_only() {
    runway_scenario("e2e-ingress", |cluster, ns| async move {
        // The chart's HTTPRoute to the local cluster's Gateway (Traefik; `make up` installs both).
        upgrade_with(
            &cluster,
            &[
                "gateway.enabled=true",
                "gateway.parentRefs[0].name=runway",
                "gateway.parentRefs[0].namespace=traefik",
            ],
        )
        .await?;
        deploy(&cluster, &ns, "public", &[], json!({})).await?;
        let private = runway::hello_service("private", &[], json!({"visibility": "ClusterLocal"}))?;
        runway::create(&cluster, &ns, &private).await?;
        runway::wait_ready(&cluster, &ns, "private", READY).await?;
        let domain = format!("{ns}.example.org");
        let mappings: Api<DomainMapping> = Api::namespaced(cluster.client.clone(), &ns);
        mappings
            .create(&Default::default(), &domain_mapping(&domain, "public")?)
            .await?;
        wait_mapping(&mappings, &domain, "Ready", "True").await?;
        // The mapped domain's own HTTPRoute, made by the operator with the chart's parentRefs.
        let route = wait_mapped_routes(&cluster, &ns, &domain, 1).await?;
        eprintln!("the operator's route for {domain}: {route:?}");
        let kubectl = cluster.kubectl();
        let dir = std::env::temp_dir().join(format!("runway-{ns}"));
        let result = async {
            // HTTPS at the Gateway with a certificate from a CA made here.
            test_certificate(&dir, &[format!("*.{ns}.example.com"), domain.clone()]).await?;
            tls_secret(&kubectl, &dir, "traefik", "runway-gateway-tls").await?;
            let ingress = runway::ingress_address(&cluster).await?;
            let curl = |host: String, want: &'static str| https_through(&dir, &ingress, host, want);
            let public = curl(format!("public.{ns}.example.com"), "200 HTTP/2: hello from public-").await?;
            eprintln!("public through the ingress: {public}");
            curl(domain.clone(), "200 HTTP/2: hello from public-").await?;
            // The ClusterLocal Service does not exist from outside, and a cluster name is no way in.
            curl(format!("private.{ns}.example.com"), "404 HTTP/2: no Runway service").await?;

            // Deleting the mapping deletes its route first (the finalizer), then the mapping; Traefik then has no
            // route for the domain.
            mappings.delete(&domain, &Default::default()).await?;
            wait_mapped_routes(&cluster, &ns, &domain, 0).await?;
            wait_until(format!("DomainMapping {ns}/{domain} gone"), READY, || async {
                match mappings.get_opt(&domain).await {
                    Ok(None) => Ok(()),
                    Ok(Some(dm)) => Err(format!("still there, finalizers {:?}", dm.metadata.finalizers)),
                    Err(e) => Err(e.to_string()),
                }
            })
            .await?;
            curl(domain.clone(), "404 HTTP/2: 404 page not found").await?;
            anyhow::Ok(())
        }
        .await;
        let _ = std::fs::remove_dir_all(&dir);
        result
    })
    .await;
}

/// Stores the certificate `test_certificate` made in `dir` as the TLS Secret `namespace/name`.
async fn tls_secret(
    kubectl: &runway_tests::kubectl::Kubectl,
    dir: &std::path::Path,
    namespace: &str,
    name: &str,
) -> anyhow::Result<()> {
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let secret = kubectl
        .run(&[
            "-n",
            namespace,
            "create",
            "secret",
            "tls",
            name,
            "--cert",
            &cert.to_string_lossy(),
            "--key",
            &key.to_string_lossy(),
            "--dry-run=client",
            "-o",
            "json",
        ])
        .await?;
    let file = dir.join(format!("{namespace}-{name}.json"));
    std::fs::write(&file, secret)?;
    kubectl.run(&["apply", "-f", &file.to_string_lossy()]).await?;
    Ok(())
}

/// Waits until `https://{host}/` through the ingress at `ingress` (HTTP/2, trusting `dir`'s test CA) answers with a
/// status line and body that start with `want`, e.g. "200 HTTP/2: hello".
async fn https_through(dir: &std::path::Path, ingress: &str, host: String, want: &str) -> anyhow::Result<String> {
    Ok(wait_until(
        format!("https://{host}/ through the ingress: {want}"),
        READY,
        || async {
            let resolve = format!("{host}:443:{ingress}");
            let url = format!("https://{host}/");
            let args = [
                "-sS",
                "--http2",
                "--cacert",
                "ca.pem",
                "--resolve",
                &resolve,
                "--max-time",
                "10",
                "-w",
                "\n%{http_code} HTTP/%{http_version}",
                &url,
            ];
            let answer = run("curl", &args, dir).await.map_err(|e| format!("{e:#}"))?;
            let (body, status) = answer.rsplit_once('\n').unwrap_or_default();
            let seen = format!("{status}: {}", body.trim());
            if seen.starts_with(want) { Ok(seen) } else { Err(seen) }
        },
    )
    .await?)
}

#[tokio::test]
async fn t22_through_an_ingress_controller_https_reaches_services_and_mapped_domains() {
    runway_scenario("e2e-ingress-class", |cluster, ns| async move {
        // The chart's Ingress for this namespace's hosts and the operator's Ingress per mapped domain, on the local
        // cluster's Traefik as an Ingress controller; the Gateway route is off, so nothing else routes these hosts.
        let namespaces = format!("ingress.namespaces={{{ns}}}");
        upgrade_with(
            &cluster,
            &[
                "gateway.enabled=false",
                "ingress.enabled=true",
                "ingress.className=traefik",
                &namespaces,
                "ingress.tls.secretName=runway-ingress-tls",
                "ingress.tls.mappedDomains=true",
            ],
        )
        .await?;
        deploy(&cluster, &ns, "public", &[], json!({})).await?;
        let domain = format!("{ns}.example.net");
        let kubectl = cluster.kubectl();
        let dir = std::env::temp_dir().join(format!("runway-{ns}"));
        let result = async {
            test_certificate(&dir, &[format!("*.{ns}.example.com"), domain.clone()]).await?;
            tls_secret(&kubectl, &dir, NAMESPACE, "runway-ingress-tls").await?;
            tls_secret(&kubectl, &dir, NAMESPACE, &format!("{domain}-tls")).await?;
            let ingress = runway::ingress_address(&cluster).await?;
            let public = https_through(
                &dir,
                &ingress,
                format!("public.{ns}.example.com"),
                "200 HTTP/2: hello from public-",
            )
            .await?;
            eprintln!("public through the Ingress: {public}");

            let mappings: Api<DomainMapping> = Api::namespaced(cluster.client.clone(), &ns);
            mappings
                .create(&Default::default(), &domain_mapping(&domain, "public")?)
                .await?;
            wait_mapping(&mappings, &domain, "Ready", "True").await?;
            let mapped = https_through(&dir, &ingress, domain.clone(), "200 HTTP/2: hello from public-").await?;
            eprintln!("{domain} through the operator's Ingress: {mapped}");
            mappings.delete(&domain, &Default::default()).await?;
            https_through(&dir, &ingress, domain.clone(), "404 HTTP/2: 404 page not found").await?;
            for secret in ["runway-ingress-tls".to_owned(), format!("{domain}-tls")] {
                kubectl.run(&["-n", NAMESPACE, "delete", "secret", &secret]).await?;
            }
            anyhow::Ok(())
        }
        .await;
        let _ = std::fs::remove_dir_all(&dir);
        result
    })
    .await;
}
