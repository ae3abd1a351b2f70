# Settings and helpers shared by the local cluster's scripts (sourced, not run).
# shellcheck shell=bash disable=SC2034 # the settings are used by the scripts that source this

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=versions.env
source "$REPO/hack/cluster/versions.env"

# Everything a running cluster owns (certs, etcd data, containerd root, kubelet root, logs, pid files, mounts) is
# under STATE; the repo's .cluster/ only gets the kubeconfig and links to the client binaries.
STATE=${RUNWAY_CLUSTER_DIR:-/var/lib/runway-cluster}
RUNWAY_CACHE=${RUNWAY_CACHE:-$HOME/.cache/runway}
CLIENT_DIR=$REPO/.cluster
KUBECONFIG_PATH=$CLIENT_DIR/kubeconfig
PKI=$STATE/pki
LOG_DIR=$STATE/logs
PID_DIR=$STATE/run
CONTAINERD_SOCK=$STATE/containerd/containerd.sock
KUBELET_ROOT=$STATE/kubelet
CNI_CONF_DIR=$STATE/cni/net.d
CNI_BIN_DIR=/usr/lib/cni
IMAGE_DIR=$REPO/target/images

# The network: pods live on our own bridge, whose gateway address doubles as the node IP, so the node address
# never depends on (or leads to) the host's outside interface. Services route onto the same bridge.
NODE_NAME=runway
BRIDGE=runway0
POD_CIDR=10.88.0.0/16
NODE_IP=10.88.0.1
SERVICE_CIDR=10.96.0.0/16
API_SERVICE_IP=10.96.0.1
DNS_SERVICE_IP=10.96.0.10
# The ingress (Traefik): its Service's fixed ClusterIP (ports 80 and 443) and its NodePorts on the node IP.
INGRESS_SERVICE_IP=10.96.0.80
INGRESS_HTTP_NODE_PORT=30080
INGRESS_HTTPS_NODE_PORT=30443
CLUSTER_DOMAIN=cluster.local
API_PORT=6443
# The cluster's image registry (Debian's docker-registry, distribution 2.8) on the node IP: Runway's images and
# chart are pushed here by hack/release.sh and pulled by the kubelet and helm, as on a user's cluster. Plain HTTP on
# the private bridge; containerd is told so in certs.d.
REGISTRY_ADDR=$NODE_IP:5000

PAUSE_IMAGE=runway.local/pause:3.10
COREDNS_IMAGE=runway.local/coredns:${COREDNS_VERSION#v}
TRAEFIK_IMAGE=runway.local/traefik:${TRAEFIK_VERSION#v}

# Every process up starts, in start order.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler registry containerd kubelet kube-proxy)

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
die() {
  echo "error: $*" >&2
  exit 1
}
need() {
  local cmd
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd not found (hack/cluster/up.sh installs it)"
  done
}

# Binary folders from the build cache, keyed like build.sh keys them. Empty until build.sh has run.
bin_dirs() {
  local gover
  gover=$(go env GOVERSION)
  K8S_BIN=$RUNWAY_CACHE/bin/kubernetes-$K8S_VERSION-$gover
  ETCD_BIN=$RUNWAY_CACHE/bin/etcd-$ETCD_VERSION-$gover
  COREDNS_BIN=$RUNWAY_CACHE/bin/coredns-$COREDNS_VERSION-slim-$gover
  HELM_BIN=$RUNWAY_CACHE/bin/helm-$HELM_VERSION-$gover
  TRAEFIK_BIN=$RUNWAY_CACHE/bin/traefik-$TRAEFIK_VERSION-$gover
  GATEWAY_API_CRDS=$RUNWAY_CACHE/crds/gateway-api-$GATEWAY_API_VERSION
  PROMETHEUS_OPERATOR_CRDS=$RUNWAY_CACHE/crds/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION
}

# binary_of COMPONENT: the absolute path a component is started from (its pid is checked against it).
binary_of() {
  case $1 in
    etcd) echo "$ETCD_BIN/etcd" ;;
    containerd) command -v containerd ;;
    registry) command -v docker-registry ;;
    *) echo "$K8S_BIN/$1" ;;
  esac
}

pid_file() { echo "$PID_DIR/$1.pid"; }

# pid_of COMPONENT: prints the pid recorded for it if that process is alive and still runs the component's binary
# (a stale pid file, or a pid reused by another program, prints nothing).
pid_of() {
  local file pid exe
  file=$(pid_file "$1")
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  exe=$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline" | head -n1) || return 0
  [ "$exe" = "$(binary_of "$1")" ] && echo "$pid"
  return 0
}

is_running() { [ -n "$(pid_of "$1")" ]; }

# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND every half second until it succeeds or time runs out.
wait_for() {
  local what=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      log "timed out after ${timeout}s waiting for $what"
      return 1
    fi
    sleep 0.5
  done
}

kubectl_admin() { "$K8S_BIN/kubectl" --kubeconfig "$STATE/kubeconfig/admin.kubeconfig" "$@"; }

# lock_cluster: one up or down at a time (a second one waits up to 10 minutes for the first).
lock_cluster() {
  exec 9>/tmp/runway-cluster.lock
  flock -w 600 9 || die "another hack/cluster/up.sh or down.sh holds /tmp/runway-cluster.lock"
}

# write_file PATH: writes stdin to PATH atomically, and not at all if PATH already has that content. Components
# watch their files (kube-proxy exits when its config changes; containerd reloads the CNI folder), so an
# unchanged file must stay untouched and a changed one must never be seen half-written. Sets CHANGED=1 when it
# wrote.
CHANGED=0
write_file() {
  local path=$1
  mkdir -p "$(dirname "$path")"
  cat >"$path.tmp"
  if cmp -s "$path.tmp" "$path"; then
    rm "$path.tmp"
  else
    mv "$path.tmp" "$path"
    CHANGED=1
  fi
}
