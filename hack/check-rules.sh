#!/usr/bin/env bash
# Checks the chart's PrometheusRule with promtool (Debian's prometheus package; hack/cluster/deps.sh installs it):
# renders it with the chart's defaults (--api-versions: as where the Prometheus Operator's CRDs are installed) and
# passes its spec, which is a rule file's content, to `promtool check rules`. Run by `make lint` and e2e test t43.
#   hack/check-rules.sh [HELM_ARG...]   e.g. --set metrics.prometheusRule.coldStartP95Seconds=3
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
helm=${HELM:-$repo/.cluster/bin/helm}
command -v promtool >/dev/null || { echo "check-rules: promtool not found (apt-get install prometheus)" >&2; exit 1; }
rules=$(mktemp --suffix=.yaml)
trap 'rm -f "$rules"' EXIT
# The object's spec (groups:) is everything below `spec:`, one indentation level in.
"$helm" template runway "$repo/deploy/runway" --namespace runway-system --kube-version 1.30.0 \
  --api-versions monitoring.coreos.com/v1/PrometheusRule --show-only templates/prometheusrule.yaml "$@" |
  sed -n '/^spec:$/,$ p' | sed '1d; s/^  //' >"$rules"
grep -q '^groups:' "$rules" || { echo "check-rules: no rule groups rendered" >&2; exit 1; }
promtool check rules "$rules"
