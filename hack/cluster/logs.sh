#!/usr/bin/env bash
# Where each component of the local cluster logs, and whether it runs.
#   logs.sh            status of every component and its log file
#   logs.sh COMPONENT  follows that component's log (tail -f)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

bin_dirs
if [ $# -gt 0 ]; then
  [ -f "$LOG_DIR/$1.log" ] || die "no log for '$1'; components: ${COMPONENTS[*]}"
  exec tail -n 100 -f "$LOG_DIR/$1.log"
fi

printf '%-24s %-8s %-8s %s\n' COMPONENT STATE PID LOG
for name in "${COMPONENTS[@]}"; do
  pid=$(pid_of "$name")
  printf '%-24s %-8s %-8s %s\n' "$name" "$([ -n "$pid" ] && echo running || echo stopped)" "${pid:--}" \
    "$LOG_DIR/$name.log"
done
echo "container logs: $STATE/pod-logs/NAMESPACE_POD_UID/CONTAINER/N.log (or kubectl logs -n NS POD)"
echo "after 'make down': $REPO/target/cluster-logs/"
if [ -f "$KUBECONFIG_PATH" ] && [ -n "$(pid_of kube-apiserver)" ]; then
  echo
  "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" get nodes -o wide 2>&1 || true
  "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" get pods -A -o wide 2>&1 || true
fi
