//! Writes a CRD's YAML to stdout: `crdgen services` or `crdgen domainmappings`.
#![forbid(unsafe_code)]

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("services") => print!("{}", runway_api::crd::service_crd_yaml()),
        Some("domainmappings") => print!("{}", runway_api::crd::domain_mapping_crd_yaml()),
        _ => {
            eprintln!("usage: crdgen services|domainmappings");
            std::process::exit(2);
        }
    }
}
