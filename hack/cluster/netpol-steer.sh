#!/usr/bin/env bash
# netpol-steer.sh POD_CIDR [UNJUDGED_SOURCE...]: sends kube-network-policies the packets it judges, on kernels whose nftables lack the
# queue expression (CONFIG_NFT_QUEUE unset, as on this project's machines, which load no modules either).
#
# kube-network-policies steers the first packet of each new connection of a pod that a NetworkPolicy selects to
# nfqueue 100 with its own nftables table; where the kernel has no `queue` expression that table cannot be made (it
# logs "syncing nftables rules ... netlink receive: no such file or directory" at each change) and nothing would
# ever reach its queue. This chain does the same with iptables' NFQUEUE target instead (xt_NFQUEUE, present here),
# for every pod, whether or not a policy selects it: the program accepts at once what no policy concerns. Like its
# own table, the chain sits on postrouting before SNAT (mangle) and leaves alone established traffic, traffic to an
# address of this host, and packets of sockets owned by root on this host (the kubelet's probes). With
# --queue-bypass, while nothing reads the queue (kube-network-policies not running) every packet passes.
# Packets from an UNJUDGED_SOURCE (address or CIDR) are left alone too: the kind node passes this machine's address on
# the kind network, so that the suites running here reach pods as they do on the local cluster, where they run as
# root on the node itself. (Where the program's own table works, it alone decides, and such sources are judged.)
#
# Used on the local cluster's host (hack/cluster/up.sh, via netpol.sh) and in the kind node image (a systemd unit,
# hack/kind/node/runway-netpol-steer.service). Idempotent; on a kernel that has the queue expression it removes
# the chain and lets kube-network-policies' own table do the work. The chain's RUNWAY- prefix makes `make down`
# (cleanup.sh purge_iptables) remove it.
set -euo pipefail

[ $# -ge 1 ] || {
  echo "usage: netpol-steer.sh POD_CIDR [UNJUDGED_SOURCE...]" >&2
  exit 2
}
pod_cidr=$1
shift
queue=100 # kube-network-policies' --nfqueue-id (its default)
chain=RUNWAY-NETPOL
unjudged="" # iptables-restore lines, one per UNJUDGED_SOURCE
for source in "$@"; do
  unjudged+="-A $chain -s $source -j RETURN"$'\n'
done

# nft_has_queue: a rule with nftables' queue expression can be added (tried in a table of its own, then removed).
nft_has_queue() {
  local rc=0
  command -v nft >/dev/null || return 1
  nft -f - 2>/dev/null <<EOF || rc=$?
add table inet runway-queue-probe
add chain inet runway-queue-probe probe
add rule inet runway-queue-probe probe queue num $queue bypass
EOF
  nft delete table inet runway-queue-probe 2>/dev/null || true
  return "$rc"
}

remove_chain() {
  while iptables -t mangle -D POSTROUTING -j "$chain" 2>/dev/null; do :; done
  iptables -t mangle -F "$chain" 2>/dev/null || true
  iptables -t mangle -X "$chain" 2>/dev/null || true
}

if nft_has_queue; then
  remove_chain
  echo "netpol-steer: nftables has the queue expression; kube-network-policies steers by itself"
  exit 0
fi

# One restore: the chain is made, or replaced whole (under --noflush a chain line flushes that chain), so that no
# packet meets it half made when `make up` runs again.
iptables-restore --noflush <<RULES
*mangle
:$chain - [0:0]
-A $chain -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
-A $chain -m addrtype --dst-type LOCAL -j RETURN
-A $chain -m owner --uid-owner 0 -j RETURN
$unjudged-A $chain -s $pod_cidr -j NFQUEUE --queue-num $queue --queue-bypass
-A $chain -d $pod_cidr -j NFQUEUE --queue-num $queue --queue-bypass
COMMIT
RULES
iptables -t mangle -C POSTROUTING -j "$chain" 2>/dev/null || iptables -t mangle -I POSTROUTING 1 -j "$chain"
echo "netpol-steer: new connections to and from $pod_cidr go to nfqueue $queue (iptables mangle $chain)"
