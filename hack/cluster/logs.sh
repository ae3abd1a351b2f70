#!/usr/bin/env bash
# Where each component of the local cluster logs, and whether it runs.
#   logs.sh [status]          each component: running or not, pid, log file; then nodes and pods
#   logs.sh tail [LINES]      the last LINES (default 20) of every component log
#   logs.sh follow COMPONENT  follows one component's log
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

status() {
  printf '%-24s %-8s %-8s %s\n' COMPONENT STATE PID LOG
  local name pid
  for name in "${COMPONENTS[@]}"; do
    pid=$(pid_of "$name")
    printf '%-24s %-8s %-8s %s\n' "$name" "$([ -n "$pid" ] && echo running || echo stopped)" "${pid:--}" \
      "$LOG_DIR/$name.log"
  done
  echo "container logs: $STATE/pod-logs/NAMESPACE_POD_UID/CONTAINER/N.log (or kubectl logs -n NS POD)"
  echo "NetworkPolicy enforcement: kubectl -n kube-system logs daemonset/kube-network-policies (a pod, not a process here)"
  echo "logs of the last cluster after 'make down': $REPO/target/cluster-logs/"
  if [ -f "$KUBECONFIG_PATH" ] && [ -n "$(pid_of kube-apiserver)" ]; then
    echo
    "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" get nodes -o wide || true
    echo
    "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" get pods -A -o wide || true
  fi
}

tail_all() {
  local lines=${1:-20} name
  for name in "${COMPONENTS[@]}"; do
    [ -f "$LOG_DIR/$name.log" ] || continue
    echo "=== $LOG_DIR/$name.log"
    tail -n "$lines" "$LOG_DIR/$name.log"
  done
}

bin_dirs
case ${1:-status} in
  status) status ;;
  tail) tail_all "${2:-20}" ;;
  follow)
    [ -f "$LOG_DIR/${2:-}.log" ] || die "no log for '${2:-}'; components: ${COMPONENTS[*]}"
    exec tail -n 100 -f "$LOG_DIR/$2.log"
    ;;
  *) die "usage: logs.sh [status | tail [LINES] | follow COMPONENT]" ;;
esac
