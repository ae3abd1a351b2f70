//! Restricted pods by default: the security settings the operator fills in on a revision's pod template where the
//! template leaves them unset. Field by field, what the template sets always wins, so the one-line opt-out of a
//! Service is to set the field itself (`securityContext: {allowPrivilegeEscalation: true}` on a container, or its
//! own `capabilities`).
//!
//! The policy a revision runs under is decided once, when the revision is made, and recorded on it in
//! [`POD_SECURITY_ANNOTATION`]: a revision is an immutable snapshot, and its Deployment's template must not change
//! when the operator is upgraded or its `--workload-pod-security` flips, or every pod of every revision would be
//! replaced. Revisions made before this existed carry no annotation and keep running as they were.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, PodSecurityContext, PodSpec, SeccompProfile, SecurityContext,
};
use kube::ResourceExt;
use runway_api::Revision;

/// Records on a Revision the policy its pods run under: `Restricted` or `Unchanged`. Any other value, or none (a
/// revision made by an earlier release), reads as `Unchanged`, so that reading it never changes running pods.
pub(crate) const POD_SECURITY_ANNOTATION: &str = "serving.runway.dev/pod-security";

/// What the operator does to the security settings of new revisions' pods (`--workload-pod-security`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "PascalCase")]
pub(crate) enum PodSecurity {
    /// Fill in the restricted defaults where the template leaves a field unset.
    Restricted,
    /// Run the template as written.
    Unchanged,
}

impl PodSecurity {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PodSecurity::Restricted => "Restricted",
            PodSecurity::Unchanged => "Unchanged",
        }
    }

    /// The policy recorded on `revision`.
    pub(crate) fn of(revision: &Revision) -> PodSecurity {
        match revision.annotations().get(POD_SECURITY_ANNOTATION).map(String::as_str) {
            Some("Restricted") => PodSecurity::Restricted,
            _ => PodSecurity::Unchanged,
        }
    }

    /// The policy a revision made now runs under: the operator's, except while the Service still has the Deployment
    /// of the release before revisions (`legacy`): its pods are handed over to the new revision without a restart
    /// only when the revision's template is theirs (`rules/upgrade.rs`), which defaults would change.
    pub(crate) fn for_new_revision(setting: PodSecurity, legacy: Option<&Deployment>) -> PodSecurity {
        match legacy {
            Some(_) => PodSecurity::Unchanged,
            None => setting,
        }
    }
}

/// The capabilities a container keeps after dropping ALL, when its template names none. Kubernetes' "restricted"
/// standard allows only NET_BIND_SERVICE; these few more are what images that start as root and then switch to their
/// own user need, without the rest of the runtime's default set (DAC_OVERRIDE, FOWNER, FSETID, MKNOD, NET_RAW,
/// SETFCAP, SETPCAP, SYS_CHROOT, AUDIT_WRITE). They matter only to processes running as root: a process of any other
/// user has no effective capability from the bounding set (Kubernetes sets no ambient capabilities), and
/// `allowPrivilegeEscalation: false` stops it gaining one through a setuid or file-capability binary.
pub(crate) const KEPT_CAPABILITIES: [&str; 5] = [
    // nginx's master chowns its temp directories (/var/cache/nginx/*_temp) to its worker user before it starts
    // them; the postgres and redis entrypoints chown their data directory to their user.
    "CHOWN",
    // Switching to the image's user: nginx and httpd workers (setgid, initgroups), gosu and su-exec in the
    // postgres, redis and many other entrypoints.
    "SETGID",
    "SETUID",
    // Binding a port below 1024 as root (nginx and httpd listen on 80), on runtimes that do not lower
    // net.ipv4.ip_unprivileged_port_start in the pod (containerd before 2.0 does not by default).
    "NET_BIND_SERVICE",
    // A root master signalling the workers it started under another user (httpd stopping its children, nginx
    // killing workers that outlive the shutdown); it reaches only the processes of its own pod.
    "KILL",
];

/// Fills in the restricted defaults on `pod` where it leaves them unset: the runtime's default seccomp profile for
/// the pod, and for each container and init container no privilege escalation and ALL capabilities dropped but
/// [`KEPT_CAPABILITIES`]. A Windows pod is left as it is: the API refuses these Linux settings there.
pub(crate) fn restrict(pod: &mut PodSpec) {
    if pod.os.as_ref().is_some_and(|os| os.name == "windows") {
        return;
    }
    // Privileged containers run unconfined whatever the pod's profile says (the runtime skips seccomp for them).
    pod.security_context
        .get_or_insert_with(PodSecurityContext::default)
        .seccomp_profile
        .get_or_insert_with(|| SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            localhost_profile: None,
        });
    for container in pod
        .containers
        .iter_mut()
        .chain(pod.init_containers.iter_mut().flatten())
    {
        restrict_container(container);
    }
}

fn restrict_container(container: &mut Container) {
    let context = container.security_context.get_or_insert_with(SecurityContext::default);
    // A privileged container gets every capability and may escalate whatever else is set: the API refuses
    // allowPrivilegeEscalation false beside privileged true, and capabilities would only mislead a reader.
    if context.privileged == Some(true) {
        return;
    }
    // The template's own capabilities are kept entirely, never merged with ours.
    let capabilities = context.capabilities.get_or_insert_with(|| Capabilities {
        add: Some(KEPT_CAPABILITIES.map(str::to_owned).to_vec()),
        drop: Some(vec!["ALL".to_owned()]),
    });
    // no_new_privs is no boundary for a process holding SYS_ADMIN, and the API refuses it beside CAP_SYS_ADMIN.
    let sys_admin = capabilities
        .add
        .iter()
        .flatten()
        .any(|c| c.trim_start_matches("CAP_").eq_ignore_ascii_case("SYS_ADMIN"));
    if !sys_admin {
        context.allow_privilege_escalation.get_or_insert(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodOS;
    use serde_json::{Value, json};

    /// A pod spec from JSON, restricted, back as JSON.
    fn restricted(pod: Value) -> Value {
        let mut pod: PodSpec = serde_json::from_value(pod).unwrap();
        restrict(&mut pod);
        serde_json::to_value(pod).unwrap()
    }

    fn defaults() -> Value {
        json!({
            "allowPrivilegeEscalation": false,
            "capabilities": {"add": KEPT_CAPABILITIES, "drop": ["ALL"]},
        })
    }

    #[test]
    fn each_template_gets_the_defaults_only_where_it_leaves_a_field_unset() {
        let runtime_default = json!({"seccompProfile": {"type": "RuntimeDefault"}});
        // (what the template says, the pod security context and the containers' contexts it gets)
        let cases: [(&str, Value, Value, Value); 8] = [
            (
                "an empty template gets every default",
                json!({"containers": [{"name": "app"}]}),
                runtime_default.clone(),
                json!([defaults()]),
            ),
            (
                "a pod setting only runAsUser keeps the seccomp default",
                json!({"securityContext": {"runAsUser": 1000}, "containers": [{"name": "app"}]}),
                json!({"runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}),
                json!([defaults()]),
            ),
            (
                "a pod's own seccomp profile wins",
                json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}}, "containers": [{"name": "app"}]}),
                json!({"seccompProfile": {"type": "Unconfined"}}),
                json!([defaults()]),
            ),
            (
                "a container's own capabilities are kept entirely",
                json!({"containers": [{"name": "app", "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}]}),
                runtime_default.clone(),
                json!([{"allowPrivilegeEscalation": false, "capabilities": {"add": ["NET_ADMIN"]}}]),
            ),
            (
                "an explicit allowPrivilegeEscalation true stays",
                json!({"containers": [{"name": "app", "securityContext": {"allowPrivilegeEscalation": true}}]}),
                runtime_default.clone(),
                json!([{"allowPrivilegeEscalation": true, "capabilities": {"add": KEPT_CAPABILITIES, "drop": ["ALL"]}}]),
            ),
            (
                "a privileged container gets nothing that would conflict",
                json!({"containers": [{"name": "app", "securityContext": {"privileged": true}}]}),
                runtime_default.clone(),
                json!([{"privileged": true}]),
            ),
            (
                "SYS_ADMIN in either spelling keeps privilege escalation unset",
                json!({"containers": [
                    {"name": "a", "securityContext": {"capabilities": {"add": ["CAP_SYS_ADMIN"]}}},
                    {"name": "b", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}},
                ]}),
                runtime_default.clone(),
                json!([{"capabilities": {"add": ["CAP_SYS_ADMIN"]}}, {"capabilities": {"add": ["SYS_ADMIN"]}}]),
            ),
            (
                "a container that is explicitly unprivileged still gets the rest",
                json!({"containers": [{"name": "app", "securityContext": {"privileged": false, "runAsUser": 0}}]}),
                runtime_default.clone(),
                json!([{"privileged": false, "runAsUser": 0, "allowPrivilegeEscalation": false,
                    "capabilities": {"add": KEPT_CAPABILITIES, "drop": ["ALL"]}}]),
            ),
        ];
        for (case, template, pod_context, container_contexts) in cases {
            let pod = restricted(template);
            assert_eq!(pod["securityContext"], pod_context, "{case}: the pod");
            let contexts: Vec<&Value> = pod["containers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| &c["securityContext"])
                .collect();
            assert_eq!(json!(contexts), container_contexts, "{case}: the containers");
        }
    }

    #[test]
    fn init_containers_get_the_defaults_as_containers_do() {
        let pod = restricted(json!({
            "initContainers": [
                {"name": "migrate"},
                {"name": "setup", "securityContext": {"privileged": true}},
            ],
            "containers": [{"name": "app"}],
        }));
        assert_eq!(pod["initContainers"][0]["securityContext"], defaults());
        assert_eq!(pod["initContainers"][1]["securityContext"], json!({"privileged": true}));
        assert_eq!(pod["containers"][0]["securityContext"], defaults());
    }

    #[test]
    fn a_windows_pod_is_left_as_it_is() {
        let mut pod: PodSpec = serde_json::from_value(json!({"containers": [{"name": "app"}]})).unwrap();
        pod.os = Some(PodOS { name: "windows".into() });
        let before = pod.clone();
        restrict(&mut pod);
        assert_eq!(pod, before);
        pod.os = Some(PodOS { name: "linux".into() });
        restrict(&mut pod);
        assert!(pod.security_context.is_some(), "an explicit Linux pod is restricted");
    }

    #[test]
    fn no_capability_the_restricted_standard_or_the_runtime_refuses_is_kept() {
        // The runtime's default set (containerd's and Docker's): what a container had before.
        let runtime_default = [
            "CHOWN",
            "DAC_OVERRIDE",
            "FSETID",
            "FOWNER",
            "MKNOD",
            "NET_RAW",
            "SETGID",
            "SETUID",
            "SETFCAP",
            "SETPCAP",
            "NET_BIND_SERVICE",
            "SYS_CHROOT",
            "KILL",
            "AUDIT_WRITE",
        ];
        for kept in KEPT_CAPABILITIES {
            assert!(runtime_default.contains(&kept), "{kept} is more than a container had");
        }
        assert!(
            !KEPT_CAPABILITIES.contains(&"NET_RAW"),
            "raw sockets spoof the pod network"
        );
        assert!(!KEPT_CAPABILITIES.contains(&"DAC_OVERRIDE"));
    }

    #[test]
    fn the_policy_is_read_from_the_revision_and_an_unknown_one_changes_nothing() {
        let mut revision = Revision::new(
            "hello-00001",
            serde_json::from_value(json!({
                "template": {"spec": {"containers": [{"name": "app"}]}},
                "timeoutSeconds": 300,
                "progressDeadlineSeconds": 120,
            }))
            .unwrap(),
        );
        assert_eq!(
            PodSecurity::of(&revision),
            PodSecurity::Unchanged,
            "made before the policy existed"
        );
        for (value, policy) in [
            ("Restricted", PodSecurity::Restricted),
            ("Unchanged", PodSecurity::Unchanged),
            ("restricted", PodSecurity::Unchanged),
        ] {
            revision
                .annotations_mut()
                .insert(POD_SECURITY_ANNOTATION.into(), value.into());
            assert_eq!(PodSecurity::of(&revision), policy, "{value}");
        }
        assert_eq!(PodSecurity::Restricted.as_str(), "Restricted");
    }

    #[test]
    fn a_revision_that_takes_over_the_previous_releases_pods_runs_them_unchanged() {
        let setting = PodSecurity::Restricted;
        assert_eq!(PodSecurity::for_new_revision(setting, None), PodSecurity::Restricted);
        assert_eq!(
            PodSecurity::for_new_revision(setting, Some(&Deployment::default())),
            PodSecurity::Unchanged
        );
        assert_eq!(
            PodSecurity::for_new_revision(PodSecurity::Unchanged, None),
            PodSecurity::Unchanged
        );
    }
}
