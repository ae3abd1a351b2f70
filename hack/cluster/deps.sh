#!/usr/bin/env bash
# Installs the Debian packages the local cluster and the image tool need, only those that are missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

# Each package with a file that shows it is installed.
declare -A probe=(
  [containerd]=/usr/bin/containerd [runc]=/usr/sbin/runc [containernetworking-plugins]=$CNI_BIN_DIR/bridge
  [iptables]=/usr/sbin/iptables [conntrack]=/usr/sbin/conntrack [openssl]=/usr/bin/openssl [jq]=/usr/bin/jq
  [bind9-dnsutils]=/usr/bin/dig [iproute2]=/usr/sbin/ip [curl]=/usr/bin/curl [gcc]=/usr/bin/gcc
  [libc6-dev]=/usr/include/stdio.h [util-linux]=/usr/bin/flock [gzip]=/usr/bin/gzip
  [docker-registry]=/usr/bin/docker-registry [skopeo]=/usr/bin/skopeo
  [nftables]=/usr/sbin/nft # netpol-steer.sh probes the queue expression; down.sh removes kube-network-policies' table
  [prometheus]=/usr/bin/promtool # the cluster's Prometheus (monitoring.sh packs its binary), promtool for make lint
)
missing=()
for pkg in "${!probe[@]}"; do
  [ -e "${probe[$pkg]}" ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
[ "$(id -u)" = 0 ] || die "missing packages (${missing[*]}); run as root to install them"
log "installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# docker-registry's package enables a system service on :5000 (with htpasswd auth) where systemd runs; the cluster
# runs its own on the node IP (hack/cluster/components.sh start_registry), which that one would block.
# Likewise prometheus' service (on :9090): the cluster runs its Prometheus as a pod.
for service in docker-registry prometheus; do
  if [ -d /run/systemd/system ] && systemctl is-enabled --quiet "$service" 2>/dev/null; then
    systemctl disable --now "$service" >/dev/null 2>&1 || true
  fi
done
