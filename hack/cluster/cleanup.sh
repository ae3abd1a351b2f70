# Stopping the cluster and removing what it leaves on the host (sourced by down.sh, and by up.sh to recover from a
# run that was killed). Everything here acts only on what this cluster owns: its recorded pids, processes in its
# pod cgroups, shims serving its containerd socket, mounts under STATE, its bridge, the KUBE-/CNI-/RUNWAY-
# iptables chains that the kubelet, kube-proxy, the CNI plugins and up.sh create, and the nftables table of
# kube-network-policies.
# shellcheck shell=bash

# stop_components NAME...: SIGTERM to each one's recorded pid at once, SIGKILL to any still there after 20 s.
stop_components() {
  local name pid pids=() names=()
  for name in "$@"; do
    pid=$(pid_of "$name")
    rm -f "$(pid_file "$name")"
    [ -n "$pid" ] || continue
    kill -TERM "$pid" 2>/dev/null || true
    pids+=("$pid")
    names+=("$name")
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  if ! wait_for "${names[*]} to exit" 20 pids_gone "${pids[@]}"; then
    kill -KILL "${pids[@]}" 2>/dev/null || true
    wait_for "${names[*]} to die" 5 pids_gone "${pids[@]}" || true
  fi
  log "stopped ${names[*]}"
}

pids_gone() {
  local pid
  for pid in "$@"; do
    kill -0 "$pid" 2>/dev/null && return 1
  done
  return 0
}

# pod_pids: every process in the kubelet's pod cgroups (the containers and pause processes of this node).
pod_pids() {
  local dir
  for dir in /sys/fs/cgroup/*/kubepods; do
    # `continue`, not `&&`: with pipefail a missing last directory would fail the whole list (and `make down`).
    [ -d "$dir" ] || continue
    find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -u
}

# shim_pids: containerd-shim processes started by this cluster's containerd (their command line names its socket).
shim_pids() {
  local dir
  for dir in /proc/[0-9]*; do
    if tr '\0' ' ' 2>/dev/null <"$dir/cmdline" | grep -q "^[^ ]*containerd-shim[^ ]* .*-address $CONTAINERD_SOCK "; then
      echo "${dir#/proc/}"
    fi
  done
}

no_pod_pids() { [ -z "$(pod_pids)" ]; }
no_shim_pids() { [ -z "$(shim_pids)" ]; }

kill_pods() {
  local pids
  pids=$(pod_pids)
  if [ -n "$pids" ]; then
    log "killing $(wc -w <<<"$pids") pod processes"
    # shellcheck disable=SC2086 # one pid per word
    kill -KILL $pids 2>/dev/null || true
    wait_for "pod processes to exit" 20 no_pod_pids || true
  fi
  pids=$(shim_pids)
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    # shellcheck disable=SC2046
    wait_for "containerd shims to exit" 10 no_shim_pids || { kill -KILL $(shim_pids) 2>/dev/null || true; }
  fi
}

# unmount_state: every mount point under STATE (overlay roots, shm, netns, secret volumes), deepest first.
unmount_state() {
  local mnt
  # Field 5 of mountinfo is the mount point, with spaces written as \040.
  while read -r mnt; do
    umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || log "could not unmount $mnt"
  done < <(awk -v s="$STATE/" 'index($5, s) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
}

remove_cgroups() {
  local dir
  for dir in /sys/fs/cgroup/*/kubepods; do
    [ -d "$dir" ] && find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  return 0
}

# purge_iptables: rewrites each table without the KUBE-, CNI- and RUNWAY- chains and the rules that use them.
purge_iptables() {
  local cmd rules
  for cmd in iptables ip6tables; do
    command -v "$cmd-save" >/dev/null || continue
    rules=$("$cmd-save")
    if grep -qE 'KUBE-|CNI-|RUNWAY-' <<<"$rules"; then
      grep -vE 'KUBE-|CNI-|RUNWAY-' <<<"$rules" | "$cmd-restore"
    fi
  done
}

# purge_nftables: the table of kube-network-policies (netpol.sh), which it deletes itself only when stopped with
# SIGINT; its pod is killed. While the table stays, new connections of pods that a NetworkPolicy selects are dropped.
purge_nftables() {
  if command -v nft >/dev/null && nft list table inet kube-network-policies >/dev/null 2>&1; then
    nft delete table inet kube-network-policies
  fi
}

remove_network() {
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link delete "$BRIDGE"
  fi
  purge_iptables
  purge_nftables
}

# cleanup: stops whatever of the cluster still runs and leaves the host as before `up`. Keeps the logs in
# target/cluster-logs so a failed run can still be read after `down`.
cleanup() {
  # The kubelet goes first so it does not restart what is being killed; containerd goes after its pods, etcd
  # after the apiserver.
  stop_components kube-proxy kubelet
  kill_pods
  stop_components containerd registry kube-scheduler kube-controller-manager kube-apiserver
  stop_components etcd
  kill_pods # shims of a containerd that died before this cleanup
  unmount_state
  remove_cgroups
  remove_network
  if [ -d "$LOG_DIR" ]; then
    rm -rf "$REPO/target/cluster-logs"
    mkdir -p "$REPO/target"
    cp -r "$LOG_DIR" "$REPO/target/cluster-logs"
  fi
  # A mount left under STATE (a volume bind-mounting some host path, say) must never be deleted through.
  if awk -v s="$STATE/" 'index($5, s) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
    die "mounts remain under $STATE; not removing it (see /proc/self/mountinfo)"
  fi
  rm -rf --one-file-system "$STATE"
}
