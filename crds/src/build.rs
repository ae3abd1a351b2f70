//! Which build a binary is: the workspace version and the git revision it was compiled from, and the
//! `runway_build_info` gauge that carries both (feature `metrics`), so a dashboard can tell which release runs where.
//!
//! The revision comes from `RUNWAY_GIT_REVISION` at compile time: the release builds (`make release-binaries`,
//! `hack/kind/podman-e2e.sh`, the Dockerfile) set it; a plain `cargo build` says `unknown`.

/// The workspace version (every crate of the workspace has the same).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit the binary was built from, or `unknown`.
pub const REVISION: &str = match option_env!("RUNWAY_GIT_REVISION") {
    Some(revision) if !revision.is_empty() => revision,
    _ => "unknown",
};

#[cfg(feature = "metrics")]
pub use info::register;

#[cfg(feature = "metrics")]
mod info {
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::registry::Registry;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct BuildLabels {
        component: &'static str,
        version: &'static str,
        revision: &'static str,
    }

    /// Registers `runway_build_info{component,version,revision}` = 1 in `registry`, which must have no prefix of its
    /// own (the name is the same for every component): register the component's metrics in a
    /// `sub_registry_with_prefix` of the same registry.
    pub fn register(registry: &mut Registry, component: &'static str) {
        let info = Family::<BuildLabels, Gauge>::default();
        info.get_or_create(&BuildLabels {
            component,
            version: super::VERSION,
            revision: super::REVISION,
        })
        .set(1);
        registry.register(
            "runway_build_info",
            "The running build: 1, with its version and git revision",
            info,
        );
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn build_info_names_the_component_version_and_revision() {
            let mut registry = Registry::default();
            register(&mut registry, "operator");
            let mut text = String::new();
            prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
            let series = format!(
                r#"runway_build_info{{component="operator",version="{}",revision="{}"}} 1"#,
                super::super::VERSION,
                super::super::REVISION
            );
            assert!(text.contains("# TYPE runway_build_info gauge"), "{text}");
            assert!(text.contains(&series), "{text}");
        }
    }
}
