#!/usr/bin/env bash
# Stops the local cluster's processes (by their recorded pids), kills its pods, unmounts what the kubelet and
# containerd mounted, removes the pod bridge and the cluster's iptables chains, and deletes the state. The logs
# are kept in target/cluster-logs. A later `up` starts from scratch.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"
# shellcheck source=cleanup.sh
source "$here/cleanup.sh"

[ "$(id -u)" = 0 ] || die "run as root"
lock_cluster
bin_dirs
cleanup
rm -f "$KUBECONFIG_PATH"
log "cluster down; its logs are in $REPO/target/cluster-logs"
