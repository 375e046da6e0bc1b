// Command pulumi-resource-kubernetes serves the pulumi-kubernetes provider.
//
// The provider module's own main package embeds schema files that `go generate` writes and that
// are not in the module, so it cannot be built from the module as published. tools/build-toolchain
// copies schema.json (with its "version" set to the pin) and terraform-mapping.json from the module
// cache next to this file, then builds it.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, pulumiSchema, terraformMapping)
}
