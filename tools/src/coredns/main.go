// Command coredns is CoreDNS with only the plugins the sandbox's Corefile uses. No forward plugin:
// the sandbox's cluster DNS answers cluster names only and sends nothing off the machine.
//
// CoreDNS's own main (github.com/coredns/coredns, coredns.go) imports every plugin, cloud DNS
// providers included; the documented way to pick plugins is a main of one's own that imports
// coremain and the plugins wanted (plugin.cfg / core/plugin). The directive order still comes from
// core/dnsserver (zdirectives.go). Built by tools/build-toolchain at the version pinned in
// tools/versions.toml; the Corefile is written by cgkit/node_manifests.py.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

func main() {
	coremain.Run()
}
