//! Writes the Service CRD YAML to stdout.
#![forbid(unsafe_code)]

fn main() {
    print!("{}", runway_api::crd::service_crd_yaml());
}
