//! The committed CRD YAML files must match the Rust types.

use std::path::Path;

/// Makes one CRD's YAML.
type Generator = fn() -> String;

/// Every place each generated CRD is committed: the API crate and the Helm chart (which renders its copies as
/// templates, deploy/runway/templates/crds.yaml).
const COMMITTED: [(&str, Generator); 6] = [
    ("serving.runway.dev_revisions.yaml", runway_api::crd::revision_crd_yaml),
    (
        "../deploy/runway/files/crds/serving.runway.dev_revisions.yaml",
        runway_api::crd::revision_crd_yaml,
    ),
    ("serving.runway.dev_services.yaml", runway_api::crd::service_crd_yaml),
    (
        "../deploy/runway/files/crds/serving.runway.dev_services.yaml",
        runway_api::crd::service_crd_yaml,
    ),
    (
        "serving.runway.dev_domainmappings.yaml",
        runway_api::crd::domain_mapping_crd_yaml,
    ),
    (
        "../deploy/runway/files/crds/serving.runway.dev_domainmappings.yaml",
        runway_api::crd::domain_mapping_crd_yaml,
    ),
];

#[test]
fn committed_crd_yaml_is_current() {
    for (file, generate) in COMMITTED {
        let generated = generate();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{} is stale: run `make crds` and commit the result",
            path.display()
        );
    }
}

#[test]
fn the_crd_fits_in_a_client_side_apply_annotation() {
    // kubectl apply (client-side) stores the object as compact JSON in an annotation limited to 256 KiB.
    let json = serde_json::to_vec(&runway_api::crd::service_crd()).unwrap();
    assert!(json.len() < 200 * 1024, "the CRD is {} bytes of JSON", json.len());
}
