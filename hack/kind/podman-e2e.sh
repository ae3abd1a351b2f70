#!/usr/bin/env bash
# The end-to-end suite on a real kind cluster, on a Linux machine without Docker (root): kind's podman provider,
# a node image built here from our own builds (hack/kind/node-image.sh), a registry on this machine that Runway is
# released to (hack/release.sh: images and OCI chart, pulled by the node), the ingress of the local cluster
# (Gateway API CRDs, Traefik), its monitoring (Prometheus Operator CRDs, Prometheus), the chart from that registry, then
# the suite. Runs next to the local cluster without touching it (see hack/kind/podman-setup.sh).
#   hack/kind/podman-e2e.sh           create (or reuse) the kind cluster "runway", install, run e2e, delete it
#   KEEP=1 hack/kind/podman-e2e.sh    leave the cluster running (its kubeconfig: target/kind/kubeconfig)
#   KIND_CLUSTER=NAME                 another cluster name
#   E2E_ARGS="t02 --exact"            arguments for each test binary before --test-threads=1 (a filter)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../cluster/lib.sh
source "$here/../cluster/lib.sh"
# shellcheck source=kind.env
source "$here/kind.env"
# shellcheck source=../cluster/images.sh
source "$here/../cluster/images.sh"
# shellcheck source=../cluster/monitoring.sh
source "$here/../cluster/monitoring.sh"
cd "$REPO"

[ "$(id -u)" = 0 ] || die "run as root (podman, routes)"
name=${KIND_CLUSTER:-runway}
start=$SECONDS
"$here/podman-setup.sh"
"$REPO/hack/cluster/deps.sh"

# The node image (and kind) first: a failed build leaves no cluster behind.
built=$("$here/node-image.sh")
kind=$(sed -n 's/^kind=//p' <<<"$built")
node_image=$(sed -n 's/^image=//p' <<<"$built")
bin_dirs
kubectl=$K8S_BIN/kubectl
helm=$HELM_BIN/helm
log "node image $node_image ready after $((SECONDS - start)) s"

# Runway's release binaries (hack/release.sh packs and pushes them once the registry runs); Traefik's and
# Prometheus' images are loaded into the node.
images=$REPO/target/kind/images
mkdir -p "$images"
RUNWAY_GIT_REVISION=$(git rev-parse HEAD 2>/dev/null || true) cargo build --release -p runway-hello -p runway-operator \
  -p runway-activator -p runway-node
archives=("$("$REPO/hack/cluster/oci-image.sh" --no-import --out "$images" "$TRAEFIK_IMAGE" "$TRAEFIK_BIN/traefik")")
archives+=("$("$REPO/hack/cluster/oci-image.sh" --no-import --out "$images" "$(prometheus_image)" "$PROMETHEUS_BIN")")
# The previous release's images for the upgrade test (t31), which imports them only into the local cluster.
mapfile -t previous < <("$REPO/hack/upgrade/previous-release.sh" --archives)
archives+=("${previous[@]}")

export KIND_EXPERIMENTAL_PROVIDER=podman KIND_EXPERIMENTAL_PODMAN_NETWORK=$KIND_NETWORK
kubeconfig=$REPO/target/kind/kubeconfig
node=$name-control-plane
routes=("$KIND_POD_SUBNET" "$KIND_SERVICE_SUBNET")
registry_pid=
cleanup() {
  local rc=$?
  if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null || true; fi
  if [ -z "${KEEP:-}" ]; then
    for cidr in "${routes[@]}"; do ip route del "$cidr" 2>/dev/null || true; done
    "$kind" delete cluster --name "$name" --kubeconfig "$kubeconfig" || true
  else
    log "kept the kind cluster $name: export KUBECONFIG=$kubeconfig"
  fi
  log "podman-e2e.sh finished in $((SECONDS - start)) s (exit $rc)"
}
trap cleanup EXIT

if ! "$kind" get clusters 2>/dev/null | grep -qx "$name"; then
  config=$REPO/target/kind/kind-config.yaml
  sed -e "s|@KIND_POD_SUBNET@|$KIND_POD_SUBNET|" -e "s|@KIND_SERVICE_SUBNET@|$KIND_SERVICE_SUBNET|" \
    -e "s|@NODE_IMAGE@|$node_image|" -e "s|@ETCD_TAG@|${ETCD_VERSION#v}|" -e "s|@COREDNS_TAG@|${COREDNS_VERSION#v}|" \
    "$here/node/kind-config.yaml" >"$config"
  # --kubeconfig: kind would otherwise add its context to ~/.kube/config (or to $KUBECONFIG's file).
  "$kind" create cluster --name "$name" --config "$config" --kubeconfig "$kubeconfig" --wait 180s
fi
"$kind" get kubeconfig --name "$name" >"$kubeconfig"
export KUBECONFIG=$kubeconfig

# Pods and Services of the kind cluster are routed to its node, as the local cluster's are to its bridge: the suite
# reaches ClusterIPs and pod IPs from this machine. Neither range overlaps a route here (podman-setup.sh checks).
node_ip=$(podman inspect "$node" --format "{{(index .NetworkSettings.Networks \"$KIND_NETWORK\").IPAddress}}")
for cidr in "${routes[@]}"; do ip route replace "$cidr" via "$node_ip"; done

"$kind" load image-archive --name "$name" "${archives[@]}"

# The registry, at the kind network's gateway (which exists once the node runs), its storage under target/kind.
registry_dir=$REPO/target/kind/registry
mkdir -p "$registry_dir"
cat >"$registry_dir/config.yml" <<EOF
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $registry_dir/data}
  delete: {enabled: true}
http:
  addr: $KIND_REGISTRY
EOF
docker-registry serve "$registry_dir/config.yml" >>"$registry_dir/registry.log" 2>&1 &
registry_pid=$!
wait_for "the kind registry at $KIND_REGISTRY" 30 curl -fsS --max-time 2 "http://$KIND_REGISTRY/v2/"
# The node's containerd reads certs.d at each pull: plain HTTP for that registry.
podman exec "$node" sh -c "mkdir -p '/etc/containerd/certs.d/$KIND_REGISTRY' && printf '%s\n' \
  'server = \"http://$KIND_REGISTRY\"' '[host.\"http://$KIND_REGISTRY\"]' '  capabilities = [\"pull\", \"resolve\"]' \
  >'/etc/containerd/certs.d/$KIND_REGISTRY/hosts.toml'"
release=$REPO/target/kind/release
HELM=$helm "$REPO/hack/release.sh" --registry "$KIND_REGISTRY" --plain-http --out "$release"

# The ingress, as on the local cluster (hack/cluster/ingress.sh), on kind's service range.
"$kubectl" apply --server-side --force-conflicts --field-manager=runway-kind -f "$GATEWAY_API_CRDS" >/dev/null
"$kubectl" wait --for=condition=Established --timeout=60s -f "$GATEWAY_API_CRDS" >/dev/null
sed -e "s|@TRAEFIK_IMAGE@|$TRAEFIK_IMAGE|g" -e "s|@INGRESS_SERVICE_IP@|$KIND_INGRESS_IP|g" \
  -e "s|@INGRESS_HTTP_NODE_PORT@|$INGRESS_HTTP_NODE_PORT|g" \
  -e "s|@INGRESS_HTTPS_NODE_PORT@|$INGRESS_HTTPS_NODE_PORT|g" \
  hack/cluster/manifests/traefik.yaml | "$kubectl" apply -f - >/dev/null
"$kubectl" -n traefik rollout status deployment/traefik --timeout=120s
# Monitoring, as on the local cluster (hack/cluster/monitoring.sh): the Prometheus Operator's CRDs and Prometheus.
apply_monitoring "$kubectl"
await_prometheus "$kubectl"

# Runway from the registry, as on the local cluster.
RUNWAY_RELEASE=$release/release.json HELM=$helm hack/install-runway.sh >/dev/null
log "kind cluster $name ready with Runway after $((SECONDS - start)) s; running the e2e suite"

# The suite is one test binary per file, tests/tests/e2e_*.rs, run in name order; --no-fail-fast runs every file
# even when one fails. No local-cluster state dir: the suite's diagnostics must not show the local cluster's
# component logs.
# shellcheck disable=SC2086 # E2E_ARGS is a list of arguments
RUNWAY_CLUSTER_DIR=$REPO/target/kind RUNWAY_RELEASE=$release/release.json HELM=$helm KUBECTL=$kubectl \
  cargo test -p runway-tests --features cluster --no-fail-fast --test 'e2e_*' -- ${E2E_ARGS:-} --test-threads=1
