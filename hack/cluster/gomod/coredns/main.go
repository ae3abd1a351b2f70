// CoreDNS with only the plugins our Corefiles use: hack/cluster/manifests/coredns.yaml and kubeadm's default
// Corefile on the kind node (hack/kind/node-image.sh packs this binary). Upstream's main package links all ~55
// plugins (cloud SDKs, tracing, dnstap, ...), which costs most of the build; CoreDNS documents this way of choosing
// plugins at build time. The directive order stays upstream's (dnsserver.Directives); names without a plugin are
// skipped unless a Corefile uses them.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

func main() {
	coremain.Run()
}
