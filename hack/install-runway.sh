#!/usr/bin/env bash
# Releases Runway to the local cluster's registry (hack/release.sh: images and the OCI chart), installs (or upgrades)
# it from there with Helm as a user's cluster would, deploys the sample app as Runway Service "hello" and prints the
# curl to try. Run by `make up` after the cluster is up and the release binaries are built. With RUNWAY_RELEASE
# (a release.json of hack/release.sh) it installs that release instead, on $KUBECONFIG's cluster (the kind path).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=cluster/lib.sh
source hack/cluster/lib.sh
export KUBECONFIG=${KUBECONFIG:-$KUBECONFIG_PATH}
# kubectl and helm: $KUBECTL and $HELM, else the cluster's builds.
if [ -z "${KUBECTL:-}" ] || [ -z "${HELM:-}" ]; then bin_dirs; fi
kubectl=${KUBECTL:-$K8S_BIN/kubectl}
export HELM=${HELM:-$HELM_BIN/helm}

record=${RUNWAY_RELEASE:-}
if [ -z "$record" ]; then
  hack/release.sh --registry "$REGISTRY_ADDR" --plain-http --out target/release/local >/dev/null
  record=target/release/local/release.json
fi
chart=$(jq -r .chart "$record")
version=$(jq -r .chartVersion "$record")
plain_http=()
[ "$(jq -r .plainHttp "$record")" = false ] || plain_http=(--plain-http)

# The release's values pin each image by digest, so a rebuilt image rolls its pods out. The local cluster's ingress
# (Traefik, hack/cluster/ingress.sh) routes *.example.com to the external entry point.
$HELM upgrade --install runway "$chart" --version "$version" "${plain_http[@]}" \
  --namespace runway-system --create-namespace \
  -f hack/cluster/runway-values.yaml -f "$(jq -r .values "$record")" --wait --timeout 180s >/dev/null

hello=$(jq -r .images.hello "$record")
sed "s|image: .*|image: $hello|" examples/hello/service.yaml | $kubectl apply -f - >/dev/null
$kubectl wait rsvc/hello --for=condition=Ready --timeout 120s >/dev/null
cat <<TXT

Runway $version is running, installed from the registry $chart,
with the sample app as Service "hello" (kubectl get rsvc), behind the cluster's ingress
(Traefik, reachable from this machine at $INGRESS_SERVICE_IP):
  export KUBECONFIG=$KUBECONFIG
  curl --resolve hello.default.example.com:80:$INGRESS_SERVICE_IP http://hello.default.example.com/
TXT
