#!/usr/bin/env bash
# Prepares this machine for kind with podman (rootful), next to the local cluster and without touching it:
#   - installs podman and mmdebstrap (Debian packages) when missing;
#   - /etc/containers/containers.conf: container rlimits that root may set here (no CAP_SYS_RESOURCE: podman's
#     defaults, nofile 1048576, fail with "error setting rlimit"), and a subnet for podman's default network other
#     than its 10.88.0.0/16, the local cluster's pod network;
#   - /lib/modules, which kind mounts into its nodes (absent on kernels without modules);
#   - the podman network the kind nodes join (KIND_NETWORK, KIND_NETWORK_SUBNET in kind.env).
# Idempotent. Refuses to create a network whose subnet overlaps a route of this machine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../cluster/lib.sh
source "$here/../cluster/lib.sh"
# shellcheck source=kind.env
source "$here/kind.env"

[ "$(id -u)" = 0 ] || die "run as root (packages, /etc/containers, podman networks)"

missing=()
command -v podman >/dev/null || missing+=(podman)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# A container's hard limits may not exceed podman's own: nofile up to ours, nproc up to the 32768 podman's conmon
# runs with here.
nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
if [ "$nofile" = unlimited ] || [ "$nofile" -gt 1048576 ]; then nofile=1048576; fi
if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then nproc=32768; fi
mkdir -p /etc/containers
write_file /etc/containers/containers.conf <<EOF
# Written by hack/kind/podman-setup.sh (Runway's kind path, docs/local-cluster.md).
[containers]
# Root lacks CAP_SYS_RESOURCE here: a container may not get higher limits than podman itself has.
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[network]
# Not 10.88.0.0/16, podman's default: that is the local cluster's pod network (hack/cluster/lib.sh).
default_subnet = "$PODMAN_DEFAULT_SUBNET"
EOF

mkdir -p /lib/modules # kind mounts it read-only into every node

# overlaps CIDR: true when CIDR overlaps a route of this machine or a range of the local cluster.
overlaps() {
  local routes
  mapfile -t routes < <(ip -4 route show | awk '$1 ~ /\// {print $1}')
  python3 - "$1" "$POD_CIDR" "$SERVICE_CIDR" 10.96.0.0/12 "${routes[@]}" <<'PY'
import ipaddress, sys
net = ipaddress.ip_network(sys.argv[1])
sys.exit(0 if any(net.overlaps(ipaddress.ip_network(o, strict=False)) for o in sys.argv[2:]) else 1)
PY
}

if ! podman network exists "$KIND_NETWORK"; then
  for cidr in "$KIND_NETWORK_SUBNET" "$KIND_POD_SUBNET" "$KIND_SERVICE_SUBNET"; do
    if overlaps "$cidr"; then
      die "$cidr (hack/kind/kind.env) overlaps a route of this machine or the local cluster: pick another"
    fi
  done
  podman network create --driver bridge --subnet "$KIND_NETWORK_SUBNET" "$KIND_NETWORK" >/dev/null
  log "created podman network $KIND_NETWORK ($KIND_NETWORK_SUBNET)"
fi
subnet=$(podman network inspect "$KIND_NETWORK" --format '{{range .Subnets}}{{.Subnet}} {{end}}')
[ "${subnet% }" = "$KIND_NETWORK_SUBNET" ] ||
  die "podman network $KIND_NETWORK has subnet $subnet, not $KIND_NETWORK_SUBNET: remove it (podman network rm)"
