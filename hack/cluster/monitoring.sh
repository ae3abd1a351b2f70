# The cluster's monitoring: the Prometheus Operator's CRDs (ServiceMonitor, PodMonitor, PrometheusRule), so that the
# chart renders its monitors and rules here and the API server validates them, and a Prometheus that scrapes Runway
# (manifests/prometheus.yaml). Sourced by up.sh; hack/kind/podman-e2e.sh does the same on kind.
# shellcheck shell=bash

# Debian's prometheus package (deps.sh), whose binary is packed as the image: tagged with the package version.
PROMETHEUS_BIN=/usr/bin/prometheus
prometheus_image() {
  local version
  version=$(dpkg-query -W -f '${Version}' prometheus)
  echo "runway.local/prometheus:${version//[^A-Za-z0-9_.-]/-}"
}

# build_prometheus_image: target/images/prometheus-<version>.tar (images.sh image_tarball), imported by start_node.
build_prometheus_image() {
  image_tarball "$(prometheus_image)" "$PROMETHEUS_BIN"
}

# render_prometheus_manifest: the manifest with its placeholders filled in, on stdout.
render_prometheus_manifest() {
  local manifest=$REPO/hack/cluster/manifests/prometheus.yaml checksum
  checksum=$(sha256sum "$manifest" | cut -c1-16)
  sed -e "s|@PROMETHEUS_IMAGE@|$(prometheus_image)|g" -e "s|@MANIFEST_CHECKSUM@|$checksum|g" "$manifest"
}

# apply_monitoring KUBECTL...: the CRDs (server-side: they are too large for the last-applied annotation), once the
# API server serves them, then Prometheus. KUBECTL is the command with its kubeconfig.
apply_monitoring() {
  [ -f "$PROMETHEUS_OPERATOR_CRDS/.complete" ] || die "no Prometheus Operator CRDs in $PROMETHEUS_OPERATOR_CRDS (build.sh)"
  "$@" apply --server-side --force-conflicts --field-manager=runway-cluster -f "$PROMETHEUS_OPERATOR_CRDS" >/dev/null
  "$@" wait --for=condition=Established --timeout=60s -f "$PROMETHEUS_OPERATOR_CRDS" >/dev/null
  render_prometheus_manifest | "$@" apply -f - >/dev/null
}

# await_prometheus KUBECTL...: rolled out and ready.
await_prometheus() {
  if ! "$@" -n runway-monitoring rollout status deployment/prometheus --timeout=90s >&2; then
    "$@" -n runway-monitoring describe pods >&2 || true
    "$@" -n runway-monitoring logs deployment/prometheus --tail=40 >&2 || true
    exit 1
  fi
}
