#!/usr/bin/env bash
# Starts (or checks) the local single-node Kubernetes cluster: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, containerd, kubelet and kube-proxy as plain processes on this machine, then kube-network-policies
# (NetworkPolicy enforcement, a DaemonSet), CoreDNS, the ingress (the Gateway API CRDs and Traefik) and monitoring (the
# Prometheus Operator's CRDs and a Prometheus) as pods.
# Idempotent: on a running cluster it only checks health and re-imports images. After a run that was killed
# (nothing of the cluster running any more) it first clears what that run left behind, then starts afresh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"
# shellcheck source=pki.sh
source "$here/pki.sh"
# shellcheck source=components.sh
source "$here/components.sh"
# shellcheck source=cleanup.sh
source "$here/cleanup.sh"
# shellcheck source=images.sh
source "$here/images.sh"
# shellcheck source=ingress.sh
source "$here/ingress.sh"
# shellcheck source=netpol.sh
source "$here/netpol.sh"
# shellcheck source=monitoring.sh
source "$here/monitoring.sh"

build_binaries() {
  log "building (or reusing) the cluster binaries; first time ~20 min on 2 cores, see docs/benchmarks.md"
  "$here/build.sh" >/dev/null
  bin_dirs
  mkdir -p "$CLIENT_DIR/bin"
  ln -sf "$K8S_BIN/kubectl" "$CLIENT_DIR/bin/kubectl"
  ln -sf "$HELM_BIN/helm" "$CLIENT_DIR/bin/helm"
}

# prepare_host: kernel settings, the pod bridge (carrying the node IP) and the egress guard.
prepare_host() {
  sysctl -qw net.ipv4.ip_forward=1 # pod -> service -> pod traffic is routed through the host
  [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] || modprobe br_netfilter
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 # kube-proxy's rules must see bridged pod traffic
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
  fi
  ip addr replace "$NODE_IP/${POD_CIDR#*/}" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # Service IPs route onto the bridge: a ClusterIP that kube-proxy does not rewrite dies here instead of
  # following the default route off the machine.
  ip route replace "$SERVICE_CIDR" dev "$BRIDGE" src "$NODE_IP"
  guard_egress
}

# guard_egress: forwarded traffic from pods may only go back onto the pod bridge, never out of another interface.
guard_egress() {
  iptables -N RUNWAY-EGRESS 2>/dev/null || iptables -F RUNWAY-EGRESS
  iptables -A RUNWAY-EGRESS -s "$POD_CIDR" ! -o "$BRIDGE" -j REJECT --reject-with icmp-net-prohibited
  iptables -C FORWARD -j RUNWAY-EGRESS 2>/dev/null || iptables -I FORWARD 1 -j RUNWAY-EGRESS
}

# recover_if_dead: a state dir with nothing of it running is what a killed run leaves: clear it and its host traces.
recover_if_dead() {
  local name
  for name in "${COMPONENTS[@]}"; do
    is_running "$name" && return 0
  done
  if [ -d "$STATE" ] || ip link show "$BRIDGE" >/dev/null 2>&1; then
    log "found leftovers of an earlier cluster with nothing running: cleaning up"
    cleanup
  fi
}

start_control_plane() {
  start_etcd
  await etcd 30
  start_apiserver
  start_containerd # boots while the apiserver does
  await kube-apiserver 90
  start_controller_manager
  start_scheduler
}

start_node() {
  start_registry
  await registry 30
  await containerd 30
  import_images
  start_kubelet
  start_kube_proxy
  await kubelet 60
  await kube-proxy 60
}

node_ready() {
  [ "$(kubectl_admin get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

dns_answers() {
  [ "$(dig +short +time=1 +tries=1 "@$DNS_SERVICE_IP" "kubernetes.default.svc.$CLUSTER_DOMAIN" A)" = "$API_SERVICE_IP" ]
}

deploy_coredns() {
  sed -e "s|@CLUSTER_DOMAIN@|$CLUSTER_DOMAIN|g" -e "s|@COREDNS_IMAGE@|$COREDNS_IMAGE|g" \
    -e "s|@DNS_SERVICE_IP@|$DNS_SERVICE_IP|g" "$here/manifests/coredns.yaml" | kubectl_admin apply -f - >/dev/null
}

# await_cluster: node Ready, CoreDNS rolled out, and a DNS query through the kube-dns Service IP answered.
await_cluster() {
  if ! wait_for "node $NODE_NAME to be Ready" 90 node_ready; then
    kubectl_admin describe node "$NODE_NAME" >&2 || true
    tail -n 40 "$LOG_DIR/kubelet.log" >&2
    exit 1
  fi
  if ! kubectl_admin -n kube-system rollout status deployment/coredns --timeout=90s >&2; then
    kubectl_admin -n kube-system describe pods -l k8s-app=kube-dns >&2 || true
    exit 1
  fi
  if ! wait_for "cluster DNS at $DNS_SERVICE_IP to answer" 30 dns_answers; then
    dig "@$DNS_SERVICE_IP" "kubernetes.default.svc.$CLUSTER_DOMAIN" >&2 || true
    kubectl_admin -n kube-system logs deployment/coredns --tail=20 >&2 || true
    exit 1
  fi
}

publish_kubeconfig() {
  mkdir -p "$CLIENT_DIR"
  cp "$STATE/kubeconfig/admin.kubeconfig" "$KUBECONFIG_PATH.tmp"
  mv "$KUBECONFIG_PATH.tmp" "$KUBECONFIG_PATH"
}

main() {
  [ "$(id -u)" = 0 ] || die "run as root (the cluster manages mounts, cgroups, iptables and a bridge)"
  lock_cluster
  local start=$SECONDS
  "$here/deps.sh"
  build_binaries
  recover_if_dead
  mkdir -p "$STATE" "$LOG_DIR" "$PID_DIR"
  make_pki
  make_kubeconfigs
  prepare_host
  build_netpol_image # into target/images, which start_node imports
  build_prometheus_image
  start_control_plane
  start_node
  deploy_netpol
  deploy_coredns
  await_cluster
  await_netpol
  deploy_ingress
  apply_monitoring kubectl_admin
  await_ingress
  await_prometheus kubectl_admin
  publish_kubeconfig
  log "cluster up in $((SECONDS - start)) s"
  cat <<EOF
The local cluster is up (node $NODE_NAME, API https://127.0.0.1:$API_PORT).
  export KUBECONFIG=$KUBECONFIG_PATH
  export PATH=$CLIENT_DIR/bin:\$PATH   # kubectl $K8S_VERSION, helm $HELM_VERSION
  kubectl get pods -A
Ingress (Traefik $TRAEFIK_VERSION): http://$INGRESS_SERVICE_IP and https://$INGRESS_SERVICE_IP, or the node IP
$NODE_IP ports $INGRESS_HTTP_NODE_PORT and $INGRESS_HTTPS_NODE_PORT; IngressClass traefik, Gateway traefik/runway.
Prometheus (scraping Runway every 5 s): kubectl -n runway-monitoring port-forward svc/prometheus 9090.
Images: hack/cluster/oci-image.sh runway.local/NAME:TAG BINARY (imports at once); target/images/*.tar are imported
by every 'make up'. Logs and status: make logs / make status. Stop and clean: make down.
EOF
}

main "$@"
