#!/usr/bin/env bash
# The end-to-end suite on kind, for users with Docker (Linux or macOS, amd64 or arm64): runs a registry container
# (kind's local-registry recipe: localhost:5001 here, kind-registry:5000 from the node), builds Runway's images with
# Docker from deploy/docker/Dockerfile and pushes them there, releases the chart to it (hack/release.sh --pushed),
# installs Runway from it and runs the suite.
# Needs docker (with buildx), kind, kubectl, helm, jq and cargo on the PATH; no root, no system packages.
#   hack/kind/e2e.sh            create (or reuse) the kind cluster "runway", install Runway, run the suite
#   KEEP=1 hack/kind/e2e.sh     leave the cluster running afterwards
#   KIND_CLUSTER=NAME           another cluster name
#   E2E_ARGS="t02 --exact"      arguments for each test binary before --test-threads=1 (a filter)
set -euo pipefail
cd "$(dirname "$0")/../.."
name=${KIND_CLUSTER:-runway}

for tool in docker kind kubectl helm jq cargo; do
  command -v "$tool" >/dev/null || { echo "e2e.sh: $tool is not on the PATH" >&2; exit 1; }
done
docker buildx version >/dev/null || { echo "e2e.sh: docker buildx is missing" >&2; exit 1; }

version=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version = "\(.*\)"/\1/p' Cargo.toml)
registry=localhost:5001
if [ "$(docker inspect -f '{{.State.Running}}' kind-registry 2>/dev/null)" != true ]; then
  docker run -d --restart=always -p 127.0.0.1:5001:5000 --network bridge --name kind-registry registry:2 >/dev/null
fi

# Images first, so a failed build leaves no cluster behind. No provenance attestation: a plain image manifest, as
# the release's digests name.
pushed=()
revision=$(git rev-parse HEAD 2>/dev/null || true)
for target in operator activator node hello; do
  docker buildx build --file deploy/docker/Dockerfile --target "$target" --provenance=false --load \
    --build-arg "RUNWAY_GIT_REVISION=$revision" --tag "$registry/runway-$target:$version" .
  docker push --quiet "$registry/runway-$target:$version" >/dev/null
  digest=$(docker inspect -f '{{index .RepoDigests 0}}' "$registry/runway-$target:$version")
  pushed+=(--pushed "$target=${digest#*@}")
done
release=target/kind/release
hack/release.sh --registry "$registry" --plain-http --out "$release" "${pushed[@]}"

# The node reaches the registry as kind-registry:5000 and pulls localhost:5001/... from there.
if ! kind get clusters | grep -qx "$name"; then
  kind create cluster --name "$name" --wait 120s --config - <<'EOF'
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
containerdConfigPatches:
  - |-
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "/etc/containerd/certs.d"
EOF
fi
for node in $(kind get nodes --name "$name"); do
  docker exec "$node" mkdir -p /etc/containerd/certs.d/localhost:5001
  printf '[host."http://kind-registry:5000"]\n' | docker exec -i "$node" cp /dev/stdin /etc/containerd/certs.d/localhost:5001/hosts.toml
done
docker network connect kind kind-registry 2>/dev/null || true
kubeconfig=$(mktemp)
port_forward=""
cleanup() {
  if [ -n "$port_forward" ]; then kill "$port_forward" 2>/dev/null || true; fi
  rm -f "$kubeconfig"
  [ -n "${KEEP:-}" ] || kind delete cluster --name "$name"
}
trap cleanup EXIT
kind get kubeconfig --name "$name" > "$kubeconfig"

# The previous release's images for the upgrade test (t31), which imports them only into the local cluster.
mapfile -t previous < <(hack/upgrade/previous-release.sh --archives)
kind load image-archive --name "$name" "${previous[@]}"
KUBECONFIG="$kubeconfig" RUNWAY_RELEASE=$release/release.json HELM=helm KUBECTL=kubectl hack/install-runway.sh >/dev/null

# kind's ClusterIPs are not reachable from the host: send the suite's requests through a port-forward, once it
# listens.
kubectl --kubeconfig "$kubeconfig" -n runway-system port-forward svc/runway-activator 18080:80 >/dev/null &
port_forward=$!
for _ in $(seq 50); do
  (exec 3<>/dev/tcp/127.0.0.1/18080) 2>/dev/null && break
  sleep 0.2
done
# The suite is one test binary per file, tests/tests/e2e_*.rs, run in name order; --no-fail-fast runs every file
# even when one fails.
# shellcheck disable=SC2086 # E2E_ARGS is a list of arguments
KUBECONFIG="$kubeconfig" HELM=helm RUNWAY_ACTIVATOR_ADDRESS=127.0.0.1:18080 RUNWAY_RELEASE=$release/release.json \
  cargo test -p runway-tests --features cluster --no-fail-fast --test 'e2e_*' -- ${E2E_ARGS:-} --test-threads=1
