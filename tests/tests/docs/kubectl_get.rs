//! Every `kubectl get` output a doc shows for Runway's resources has the header kubectl prints for them: NAME (with
//! NAMESPACE before it for `-A`), then the CRD's additionalPrinterColumns in order, upper-cased, those of priority
//! above 0 only with `-o wide`. Outputs for other resources (pods, deployments) are not checked.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::markdown::{CodeBlock, Doc};
use crate::repo;

/// The command a block shows output of: `$ kubectl get ...` in the block, or `kubectl get ...` as the last line of
/// a command block right before it.
struct Shown {
    command: String,
    /// The header lines of its tables, in order.
    headers: Vec<String>,
    line: usize,
}

#[test]
fn every_kubectl_get_output_has_the_crds_columns() {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for doc in repo::docs() {
        for shown in outputs(&doc) {
            let Some(expected) = expected_headers(&shown.command) else {
                continue; // not only Runway's resources
            };
            checked += 1;
            let actual: Vec<Vec<String>> = shown.headers.iter().map(|h| columns(h)).collect();
            if actual != expected {
                wrong.push(format!(
                    "{}: `{}` shows\n    {actual:?}\n  kubectl prints\n    {expected:?}",
                    doc.at(shown.line),
                    shown.command
                ));
            }
        }
    }
    assert!(checked >= 3, "kubectl get outputs were found ({checked})");
    assert!(
        wrong.is_empty(),
        "kubectl get outputs drifted from the CRDs:\n{}",
        wrong.join("\n")
    );
}

/// The `kubectl get` outputs a doc shows.
fn outputs(doc: &Doc) -> Vec<Shown> {
    let blocks = doc.code_blocks();
    let mut out = Vec::new();
    let mut previous_command: Option<String> = None;
    for block in &blocks {
        let headers = header_lines(block);
        let in_block = block
            .lines
            .iter()
            .find_map(|l| l.trim().strip_prefix("$ ").filter(|c| c.starts_with("kubectl get")));
        let command = in_block.map(str::to_owned).or_else(|| previous_command.clone());
        if let (false, Some(command)) = (headers.is_empty(), command) {
            out.push(Shown {
                command,
                headers,
                line: block.line,
            });
        }
        previous_command = block
            .lines
            .last()
            .map(|l| l.trim().to_owned())
            .filter(|l| l.starts_with("kubectl get"));
    }
    out
}

fn header_lines(block: &CodeBlock) -> Vec<String> {
    block
        .lines
        .iter()
        .filter(|l| l.starts_with("NAME ") || l.starts_with("NAMESPACE "))
        .cloned()
        .collect()
}

/// kubectl separates columns by at least three spaces; a column name may hold one (LATEST READY).
fn columns(header: &str) -> Vec<String> {
    header
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The headers kubectl prints for the command, one per resource type, or None when it names a resource that is not
/// Runway's or a flag this test does not model.
fn expected_headers(command: &str) -> Option<Vec<Vec<String>>> {
    let command = command.split('#').next().unwrap();
    let words: Vec<&str> = command.split_whitespace().skip(2).collect();
    let resources = words.first()?;
    let all_namespaces = words.iter().any(|w| *w == "-A" || *w == "--all-namespaces");
    let wide = words.windows(2).any(|w| w == ["-o", "wide"]) || words.contains(&"-owide");
    let mut headers = Vec::new();
    for resource in resources.split(',') {
        let crd = crd_named(resource)?;
        let mut header = Vec::new();
        if all_namespaces {
            header.push("NAMESPACE".to_owned());
        }
        header.push("NAME".to_owned());
        let version = &crd.spec.versions[0];
        let printer_columns = version.additional_printer_columns.clone().unwrap_or_default();
        if printer_columns.is_empty() {
            header.push("AGE".to_owned()); // the API server's default table: Name and Age
        }
        for column in printer_columns {
            if column.priority.unwrap_or(0) == 0 || wide {
                header.push(column.name.to_uppercase());
            }
        }
        headers.push(header);
    }
    Some(headers)
}

/// The CRD a `kubectl get` resource argument names: plural, singular, kind or short name, as kubectl resolves it.
/// `services` and `service` are Kubernetes' own Services to kubectl, whatever else is installed.
fn crd_named(resource: &str) -> Option<CustomResourceDefinition> {
    let resource = resource.split('/').next().unwrap().to_lowercase();
    if ["services", "service", "svc"].contains(&resource.as_str()) {
        return None;
    }
    [
        runway_api::crd::service_crd(),
        runway_api::crd::revision_crd(),
        runway_api::domain_mapping::DomainMapping::crd(),
    ]
    .into_iter()
    .find(|crd| {
        let names = &crd.spec.names;
        let group_qualified = format!("{}.{}", names.plural, crd.spec.group);
        [
            Some(&names.plural),
            names.singular.as_ref(),
            Some(&names.kind.to_lowercase()),
            Some(&group_qualified),
        ]
        .into_iter()
        .flatten()
        .any(|name| *name == resource)
            || names.short_names.iter().flatten().any(|short| *short == resource)
    })
}
