package model

import (
	"embed"
	"fmt"
	"slices"
	"strings"
)

// The JSON Schemas (draft 2020-12) of the documents, kept beside the code
// and checked against the Go types and the validation rules by the tests.
//
//go:embed schema/*.json
var schemaFS embed.FS

var schemaNames = []string{"federation", "scenario", "policy"}

// SchemaNames lists the documents that have a JSON Schema, for Schema.
func SchemaNames() []string { return append([]string(nil), schemaNames...) }

// Schema returns the JSON Schema (draft 2020-12) of the named document:
// "federation", "scenario" or "policy". Editors can use it to complete and
// check documents; refuge itself checks more (references, uniqueness,
// capacity), as each schema's description says.
func Schema(name string) ([]byte, error) {
	if !slices.Contains(schemaNames, name) {
		return nil, fmt.Errorf("no schema named %q (known: %s)", name, strings.Join(schemaNames, ", "))
	}
	data, err := schemaFS.ReadFile("schema/" + name + ".json")
	if err != nil {
		return nil, fmt.Errorf("read embedded %s schema: %w", name, err)
	}
	return data, nil
}
