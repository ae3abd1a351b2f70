# NetworkPolicy enforcement on the local cluster: kube-network-policies as a DaemonSet in kube-system, in the host
# network namespace, plus the iptables chain that sends it the packets to judge on this kernel (netpol-steer.sh).
# Without it the bridge CNI ignores every NetworkPolicy. Sourced by up.sh; hack/kind/node-image.sh takes the image
# name, the binary and the manifest from here. See hack/cluster/manifests/kube-network-policies.yaml.
# shellcheck shell=bash

KNP_IMAGE=runway.local/kube-network-policies:${KUBE_NETWORK_POLICIES_VERSION#v}

# knp_bin: the binary as build.sh caches it.
knp_bin() {
  echo "$RUNWAY_CACHE/bin/kube-network-policies-$KUBE_NETWORK_POLICIES_VERSION-$(go env GOVERSION)/kube-network-policies"
}

# build_netpol_image: target/images/kube-network-policies-<version>.tar (images.sh image_tarball; rebuilt when the
# binary changes), imported with the others by start_node.
build_netpol_image() {
  image_tarball "$KNP_IMAGE" "$(knp_bin)"
}

# render_netpol_manifest: the manifest with its placeholders filled in, on stdout.
render_netpol_manifest() {
  sed -e "s|@KNP_IMAGE@|$KNP_IMAGE|g" "$REPO/hack/cluster/manifests/kube-network-policies.yaml"
}

# deploy_netpol: the steering chain, then the DaemonSet. Until its pod reads the queue, packets bypass it.
deploy_netpol() {
  "$REPO/hack/cluster/netpol-steer.sh" "$POD_CIDR" >/dev/null
  render_netpol_manifest | kubectl_admin apply -f - >/dev/null
}

# netpol_listening: kube-network-policies has bound its nfqueue (100), which it does once its informers synced.
netpol_listening() { awk '$1 == 100 { found = 1 } END { exit !found }' /proc/net/netfilter/nfnetlink_queue; }

# await_netpol: the DaemonSet rolled out and reading its queue.
await_netpol() {
  if ! kubectl_admin -n kube-system rollout status daemonset/kube-network-policies --timeout=60s >&2 ||
    ! wait_for "kube-network-policies to read nfqueue 100" 30 netpol_listening; then
    kubectl_admin -n kube-system describe pods -l app.kubernetes.io/name=kube-network-policies >&2 || true
    kubectl_admin -n kube-system logs daemonset/kube-network-policies --tail=40 >&2 || true
    exit 1
  fi
}
