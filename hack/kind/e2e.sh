#!/usr/bin/env bash
# The end-to-end suite on kind, for users with Docker (Linux or macOS, amd64 or arm64): builds Runway's images with
# Docker from deploy/docker/Dockerfile, loads them into a kind cluster, installs the chart and runs the suite.
# Needs docker (with buildx), kind, kubectl, helm and cargo on the PATH; no root, no system packages.
#   hack/kind/e2e.sh            create (or reuse) the kind cluster "runway", install Runway, run the suite
#   KEEP=1 hack/kind/e2e.sh     leave the cluster running afterwards
#   KIND_CLUSTER=NAME           another cluster name
#   E2E_ARGS="t02 --exact"      arguments for each test binary before --test-threads=1 (a filter)
set -euo pipefail
cd "$(dirname "$0")/../.."
name=${KIND_CLUSTER:-runway}

for tool in docker kind kubectl helm cargo; do
  command -v "$tool" >/dev/null || { echo "e2e.sh: $tool is not on the PATH" >&2; exit 1; }
done
docker buildx version >/dev/null || { echo "e2e.sh: docker buildx is missing" >&2; exit 1; }

# The chart runs its appVersion's tag with pullPolicy IfNotPresent, and the suite's sample app the workspace
# version: both must be the tag loaded below, as nothing can be pulled from runway.local.
version=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version = "\(.*\)"/\1/p' Cargo.toml)
app_version=$(sed -n 's/^appVersion: "\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' deploy/runway/Chart.yaml)
if [ "$version" != "$app_version" ]; then
  echo "e2e.sh: workspace version $version differs from the chart's appVersion $app_version" >&2
  exit 1
fi

# Images first, so a failed build leaves no cluster behind. No provenance attestation: kind load cannot import an
# image index that holds one (Docker's containerd image store).
images=()
for target in operator activator hello; do
  docker buildx build --file deploy/docker/Dockerfile --target "$target" --provenance=false --load \
    --tag "runway.local/$target:$version" .
  images+=("runway.local/$target:$version")
done

kind get clusters | grep -qx "$name" || kind create cluster --name "$name" --wait 120s
kubeconfig=$(mktemp)
port_forward=""
cleanup() {
  if [ -n "$port_forward" ]; then kill "$port_forward" 2>/dev/null || true; fi
  rm -f "$kubeconfig"
  [ -n "${KEEP:-}" ] || kind delete cluster --name "$name"
}
trap cleanup EXIT
kind get kubeconfig --name "$name" > "$kubeconfig"

kind load docker-image --name "$name" "${images[@]}"
# The previous release's images for the upgrade test (t31), which imports them only into the local cluster.
mapfile -t previous < <(hack/upgrade/previous-release.sh --archives)
kind load image-archive --name "$name" "${previous[@]}"
helm --kubeconfig "$kubeconfig" upgrade --install runway deploy/runway --namespace runway-system \
  --create-namespace --wait --timeout 180s

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
KUBECONFIG="$kubeconfig" HELM=helm RUNWAY_ACTIVATOR_ADDRESS=127.0.0.1:18080 \
  cargo test -p runway-tests --features cluster --no-fail-fast --test 'e2e_*' -- ${E2E_ARGS:-} --test-threads=1
