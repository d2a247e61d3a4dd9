// Package examples bundles the example federations and scenarios into the
// refuge binary, so that `refuge demo` runs anywhere.
package examples

import "embed"

//go:generate sh -c "cd nankai-trough && go run gen.go"

// FS holds the example files, e.g. "nankai-trough/federation.yaml".
//
//go:embed nankai-trough/federation.yaml nankai-trough/scenario.yaml
var FS embed.FS

// Demo names the directory of the example `refuge demo` runs.
const Demo = "nankai-trough"
