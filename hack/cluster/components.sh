# Configuration files and start functions of the cluster's processes (sourced by up.sh).
# shellcheck shell=bash

# start COMPONENT ARG...: starts the component's binary in its own session (so a Ctrl-C of `make up` does not stop
# it), records its pid in PID_DIR and appends to LOG_DIR/COMPONENT.log. Does nothing if it is already running.
start() {
  local name=$1
  shift
  local pid
  pid=$(pid_of "$name")
  if [ -n "$pid" ]; then
    log "$name already running (pid $pid)"
    return
  fi
  local pidfile
  pidfile=$(pid_file "$name")
  rm -f "$pidfile"
  echo "=== $(date -Is) starting $name" >>"$LOG_DIR/$name.log"
  # The inner bash writes its own pid and then execs the binary, so the pid file names the component itself
  # whether or not setsid had to fork.
  # shellcheck disable=SC2016 # expanded by the inner bash
  setsid bash -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$pidfile" "$(binary_of "$name")" "$@" \
    >>"$LOG_DIR/$name.log" 2>&1 </dev/null 9>&- & # 9>&-: the component must not hold lock_cluster's lock
  wait_for "$name's pid file" 10 test -s "$pidfile"
  log "started $name (pid $(cat "$pidfile"), log $LOG_DIR/$name.log)"
}

# restart_if_changed COMPONENT: stops a running component whose config files changed (CHANGED=1), so that the
# following start runs it with the new ones.
restart_if_changed() {
  if [ "$CHANGED" = 1 ] && is_running "$1"; then
    log "$1: configuration changed, restarting"
    stop_components "$1"
  fi
  CHANGED=0
}

# healthy COMPONENT: exits 0 once the component answers its health check.
healthy() {
  local tls=(--cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key")
  case $1 in
    etcd) curl -fsS --max-time 2 http://127.0.0.1:2379/health ;;
    kube-apiserver) curl -fsS --max-time 2 "${tls[@]}" "https://127.0.0.1:$API_PORT/readyz" ;;
    kube-controller-manager) curl -fsSk --max-time 2 https://127.0.0.1:10257/healthz ;;
    kube-scheduler) curl -fsSk --max-time 2 https://127.0.0.1:10259/healthz ;;
    containerd) ctr --address "$CONTAINERD_SOCK" version ;;
    registry) curl -fsS --max-time 2 "http://$REGISTRY_ADDR/v2/" ;;
    kubelet) curl -fsS --max-time 2 http://127.0.0.1:10248/healthz ;;
    kube-proxy) curl -fsS --max-time 2 http://127.0.0.1:10256/healthz ;;
  esac
}

# await COMPONENT SECONDS: waits for its health check; on timeout shows the end of its log and fails.
await() {
  if ! wait_for "$1 to become healthy" "$2" healthy "$1"; then
    is_running "$1" || log "$1 is not running"
    log "last lines of $LOG_DIR/$1.log:"
    tail -n 40 "$LOG_DIR/$1.log" >&2
    exit 1
  fi
}

start_etcd() {
  start etcd --name "$NODE_NAME" --data-dir "$STATE/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster "$NODE_NAME=http://127.0.0.1:2380" --listen-metrics-urls http://127.0.0.1:2381 \
    --watch-progress-notify-interval=5s --log-level warn \
    --unsafe-no-fsync # a throwaway test cluster: durability is not worth the fsync latency on CI disks
}

start_apiserver() {
  start kube-apiserver --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=0.0.0.0 --secure-port="$API_PORT" --advertise-address="$NODE_IP" \
    --authorization-mode=Node,RBAC --allow-privileged=true \
    --enable-admission-plugins=NodeRestriction \
    --client-ca-file="$PKI/ca.crt" --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key" --kubelet-certificate-authority="$PKI/ca.crt" \
    --kubelet-preferred-address-types=InternalIP,Hostname \
    --service-account-issuer="https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" --profiling=false --v=1 \
    --requestheader-client-ca-file="$PKI/ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key"
}

# The API client limit is raised from its default (20 requests/s per controller): at that rate a cold start's scale-up
# waited tens of seconds in the Deployment controller's queue behind the ReplicaSets and status writes of a few
# hundred new Deployments (docs/benchmarks.md, 1,000 Services).
start_controller_manager() {
  local kc=$STATE/kubeconfig/controller-manager.kubeconfig
  start kube-controller-manager --kubeconfig="$kc" --authentication-kubeconfig="$kc" \
    --authorization-kubeconfig="$kc" --bind-address=127.0.0.1 --leader-elect=false \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --use-service-account-credentials=true --service-cluster-ip-range="$SERVICE_CIDR" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --allocate-node-cidrs=false --profiling=false --v=1 --kube-api-qps=200 --kube-api-burst=400
}

start_scheduler() {
  local kc=$STATE/kubeconfig/scheduler.kubeconfig
  start kube-scheduler --kubeconfig="$kc" --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" \
    --bind-address=127.0.0.1 --leader-elect=false --profiling=false --v=1
}

# write_containerd_config: root and state under STATE, CRI with cgroupfs, our CNI folder and the local pause image.
# Every registry but the cluster's own (hosts.toml "_default") points at a closed loopback port, so a missing image
# fails at once instead of sending a request off the machine.
write_containerd_config() {
  write_file "$STATE/containerd/certs.d/_default/hosts.toml" <<'EOF'
# Only imported images and the cluster's registry exist here: any other pull goes to a closed loopback port. (containerd 1.6 rejects a
# hosts.toml without a host table, hence the host entry repeating the server.)
server = "http://127.0.0.1:1"
[host."http://127.0.0.1:1"]
  capabilities = ["pull", "resolve"]
EOF
  write_file "$STATE/containerd/certs.d/$REGISTRY_ADDR/hosts.toml" <<EOF
# The cluster's registry speaks plain HTTP (see start_registry).
server = "http://$REGISTRY_ADDR"
[host."http://$REGISTRY_ADDR"]
  capabilities = ["pull", "resolve"]
EOF
  write_file "$STATE/containerd/config.toml" <<EOF
version = 2
root = "$STATE/containerd/root"
state = "$STATE/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$STATE/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  disable_apparmor = true
  # Keeps the pods' network namespace mounts under STATE too, so down finds every mount in one place.
  netns_mounts_under_state_dir = true
  # Root here lacks CAP_SYS_RESOURCE, so no process may get a lower oom_score_adj than containerd's own: clamp
  # instead of failing every sandbox (the kubelet asks -998 for them).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$STATE/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$CNI_CONF_DIR"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$STATE/containerd/certs.d"
EOF
}

# write_cni_config: one bridge network; host-local keeps its leases under STATE. No masquerading: pod traffic has
# nowhere to go but this machine (see guard_egress).
write_cni_config() {
  write_file "$CNI_CONF_DIR/10-runway.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "runway",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$STATE/cni/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

# start_registry: distribution 2.8 on the node IP, storage under STATE (so `make down` empties it and every
# `make up` pushes afresh), no auth: it is reachable only from this machine and its pods' bridge.
start_registry() {
  CHANGED=0
  write_file "$STATE/registry/config.yml" <<EOF
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $STATE/registry/data}
  delete: {enabled: true}
http:
  addr: $REGISTRY_ADDR
EOF
  restart_if_changed registry
  start registry serve "$STATE/registry/config.yml"
}

start_containerd() {
  CHANGED=0
  write_containerd_config
  restart_if_changed containerd
  write_cni_config # containerd reloads this folder by itself
  start containerd --config "$STATE/containerd/config.toml"
}

# write_kubelet_config: cgroupfs on cgroup v1, no image GC (imported images cannot be pulled again), webhook
# authorization, a static client certificate, and no host resolv.conf for pods (only cluster DNS).
write_kubelet_config() {
  write_file "$STATE/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 0.0.0.0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$PKI/ca.crt"}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: "unix://$CONTAINERD_SOCK"
clusterDNS: ["$DNS_SERVICE_IP"]
clusterDomain: "$CLUSTER_DOMAIN"
resolvConf: ""
tlsCertFile: "$PKI/kubelet-serving.crt"
tlsPrivateKeyFile: "$PKI/kubelet-serving.key"
rotateCertificates: false
serverTLSBootstrap: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
healthzBindAddress: 127.0.0.1
healthzPort: 10248
volumePluginDir: "$STATE/kubelet-plugins"
podLogsDir: "$STATE/pod-logs"
maxPods: 110
oomScoreAdj: 0 # lowering it needs CAP_SYS_RESOURCE, which root lacks on these machines
EOF
}

start_kubelet() {
  CHANGED=0
  write_kubelet_config
  restart_if_changed kubelet
  mkdir -p "$KUBELET_ROOT"
  start kubelet --config="$STATE/kubelet-config.yaml" --kubeconfig="$STATE/kubeconfig/kubelet.kubeconfig" \
    --root-dir="$KUBELET_ROOT" --cert-dir="$STATE/kubelet-pki" --hostname-override="$NODE_NAME" \
    --node-ip="$NODE_IP" --v=1
}

write_kube_proxy_config() {
  write_file "$STATE/kube-proxy-config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$STATE/kubeconfig/kube-proxy.kubeconfig"}
mode: iptables
nodePortAddresses: [primary] # NodePorts on the node IP only, not on the host's outside interface
clusterCIDR: "$POD_CIDR"
hostnameOverride: "$NODE_NAME"
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Leave the host's conntrack sysctls alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
oomScoreAdj: 0 # see the kubelet's
EOF
}

start_kube_proxy() {
  CHANGED=0
  write_kube_proxy_config
  restart_if_changed kube-proxy
  start kube-proxy --config="$STATE/kube-proxy-config.yaml" --v=1
}
