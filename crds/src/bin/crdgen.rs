//! Writes a CRD's YAML to stdout: `crdgen services`, `crdgen revisions` or `crdgen domainmappings`.
#![forbid(unsafe_code)]

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("services") => print!("{}", runway_api::crd::service_crd_yaml()),
        Some("revisions") => print!("{}", runway_api::crd::revision_crd_yaml()),
        Some("domainmappings") => print!("{}", runway_api::crd::domain_mapping_crd_yaml()),
        _ => {
            eprintln!("usage: crdgen services|revisions|domainmappings");
            std::process::exit(2);
        }
    }
}
