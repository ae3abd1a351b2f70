#!/usr/bin/env bash
# Installs (or upgrades) Runway with Helm into the local cluster, deploys the sample app as Runway Service "hello"
# and prints the curl to try. Run by `make up` after the cluster is up and the images are imported.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=cluster/lib.sh
source hack/cluster/lib.sh
export KUBECONFIG=${KUBECONFIG:-$KUBECONFIG_PATH}
kubectl=.cluster/bin/kubectl
helm=.cluster/bin/helm
version=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version = "\(.*\)"/\1/p' Cargo.toml)

# The local cluster's ingress (Traefik, hack/cluster/ingress.sh) routes *.example.com to the external entry point.
$helm upgrade --install runway deploy/runway --namespace runway-system --create-namespace \
  --set domain=example.com --set gateway.enabled=true \
  --set 'gateway.parentRefs[0].name=runway' --set 'gateway.parentRefs[0].namespace=traefik' \
  --wait --timeout 180s >/dev/null

# Images keep their tag across rebuilds: restart a component whose pods run another build than the one imported.
# Pods report the image's config digest, which the imported manifest names.
image_config() {
  local manifest
  manifest=$(ctr -a "$CONTAINERD_SOCK" -n k8s.io images ls "name==$1" | awk 'NR == 2 {print $3}')
  [ -n "$manifest" ] || return 0
  ctr -a "$CONTAINERD_SOCK" -n k8s.io content get "$manifest" | tr -d ' \n' | grep -o '"config":{[^}]*}' |
    grep -o 'sha256:[0-9a-f]*'
}
for component in operator activator; do
  imported=$(image_config "runway.local/$component:$version")
  running=$($kubectl -n runway-system get pods -l "app.kubernetes.io/name=runway-$component" \
    -o jsonpath='{.items[*].status.containerStatuses[*].imageID}')
  if [ -n "$imported" ] && [ "$(tr ' ' '\n' <<<"$running" | sort -u)" != "$imported" ]; then
    $kubectl -n runway-system rollout restart "deployment/runway-$component" >/dev/null
    $kubectl -n runway-system rollout status "deployment/runway-$component" --timeout 180s >/dev/null
  fi
done

sed "s|runway.local/hello:[^ ]*|runway.local/hello:$version|" examples/hello/service.yaml | $kubectl apply -f - >/dev/null
$kubectl wait rsvc/hello --for=condition=Ready --timeout 120s >/dev/null
cat <<TXT

Runway $version is running, with the sample app as Service "hello" (kubectl get rsvc), behind the cluster's
ingress (Traefik, reachable from this machine at $INGRESS_SERVICE_IP):
  export KUBECONFIG=$KUBECONFIG
  curl --resolve hello.default.example.com:80:$INGRESS_SERVICE_IP http://hello.default.example.com/
TXT
