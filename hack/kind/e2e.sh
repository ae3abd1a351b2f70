#!/usr/bin/env bash
# The end-to-end suite on kind, for users with Docker: the same image tarballs, chart and suite as the local
# cluster (`make test`). Needs docker, kind, kubectl, helm and cargo on the PATH.
#   hack/kind/e2e.sh            create (or reuse) the kind cluster "runway", install Runway, run the suite
#   KEEP=1 hack/kind/e2e.sh     leave the cluster running afterwards
set -euo pipefail
cd "$(dirname "$0")/../.."
name=${KIND_CLUSTER:-runway}

kind get clusters | grep -qx "$name" || kind create cluster --name "$name" --wait 120s
kubeconfig=$(mktemp)
port_forward=""
cleanup() {
  [ -n "$port_forward" ] && kill "$port_forward" 2>/dev/null || true
  rm -f "$kubeconfig"
  [ -n "${KEEP:-}" ] || kind delete cluster --name "$name"
}
trap cleanup EXIT
kind get kubeconfig --name "$name" > "$kubeconfig"

# The same OCI tarballs the local cluster imports (built without Docker by hack/cluster/oci-image.sh).
make images
for image in target/images/*.tar; do
  kind load image-archive "$image" --name "$name"
done
helm --kubeconfig "$kubeconfig" upgrade --install runway deploy/runway --namespace runway-system \
  --create-namespace --wait --timeout 180s

# kind's ClusterIPs are not reachable from the host: send the suite's requests through a port-forward.
kubectl --kubeconfig "$kubeconfig" -n runway-system port-forward svc/runway-activator 18080:80 >/dev/null &
port_forward=$!
KUBECONFIG="$kubeconfig" HELM=helm RUNWAY_ACTIVATOR_ADDRESS=127.0.0.1:18080 \
  cargo test -p runway-tests --features cluster --test e2e -- --test-threads=1
