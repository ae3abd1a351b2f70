# The cluster's ingress: the Gateway API CRDs and Traefik, reached at INGRESS_SERVICE_IP:80/443 (sourced by up.sh).
# shellcheck shell=bash

# deploy_gateway_api_crds: the standard-channel CRDs of GATEWAY_API_VERSION, as build.sh copied them from the Go
# module. Applied server-side (the HTTPRoute CRD is too large for kubectl's last-applied annotation), then waited
# for until the API server serves them.
deploy_gateway_api_crds() {
  [ -f "$GATEWAY_API_CRDS/.complete" ] || die "no Gateway API CRDs in $GATEWAY_API_CRDS (hack/cluster/build.sh)"
  kubectl_admin apply --server-side --force-conflicts --field-manager=runway-cluster -f "$GATEWAY_API_CRDS" \
    >/dev/null
  kubectl_admin wait --for=condition=Established --timeout=60s -f "$GATEWAY_API_CRDS" >/dev/null
}

deploy_traefik() {
  sed -e "s|@TRAEFIK_IMAGE@|$TRAEFIK_IMAGE|g" -e "s|@INGRESS_SERVICE_IP@|$INGRESS_SERVICE_IP|g" \
    -e "s|@INGRESS_HTTP_NODE_PORT@|$INGRESS_HTTP_NODE_PORT|g" \
    -e "s|@INGRESS_HTTPS_NODE_PORT@|$INGRESS_HTTPS_NODE_PORT|g" \
    "$REPO/hack/cluster/manifests/traefik.yaml" | kubectl_admin apply -f - >/dev/null
}

deploy_ingress() {
  deploy_gateway_api_crds
  deploy_traefik
}

# ingress_answers: Traefik answers through its Service from this machine (with any status: 404 where nothing routes
# the host, or whatever a catch-all route's backend says).
ingress_answers() {
  curl -sS --max-time 2 -o /dev/null "http://$INGRESS_SERVICE_IP/"
}

gateway_class_accepted() {
  [ "$(kubectl_admin get gatewayclass traefik \
    -o jsonpath='{.status.conditions[?(@.type=="Accepted")].status}')" = True ]
}

# await_ingress: Traefik rolled out, answering on its Service IP, and its GatewayClass accepted.
await_ingress() {
  if ! kubectl_admin -n traefik rollout status deployment/traefik --timeout=90s >&2; then
    kubectl_admin -n traefik describe pods >&2 || true
    kubectl_admin -n traefik logs deployment/traefik --tail=40 >&2 || true
    exit 1
  fi
  if ! wait_for "Traefik to answer at $INGRESS_SERVICE_IP:80" 30 ingress_answers ||
    ! wait_for "GatewayClass traefik to be accepted" 30 gateway_class_accepted; then
    kubectl_admin -n traefik logs deployment/traefik --tail=40 >&2 || true
    exit 1
  fi
}
