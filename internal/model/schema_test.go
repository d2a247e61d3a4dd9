package model

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	"sigs.k8s.io/yaml"
)

// schemaValidator checks JSON values against one of the embedded schemas.
// It implements the subset of JSON Schema 2020-12 the schemas use and fails
// the test on any other keyword, so that no constraint is silently skipped.
type schemaValidator struct {
	t    testing.TB
	root map[string]any
}

func loadSchema(t testing.TB, name string) *schemaValidator {
	t.Helper()
	data, err := Schema(name)
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(data, &root); err != nil {
		t.Fatalf("schema %s: %v", name, err)
	}
	if root["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Fatalf("schema %s: $schema is %v", name, root["$schema"])
	}
	return &schemaValidator{t: t, root: root}
}

// resolve follows a local $ref ("#/$defs/x").
func (v *schemaValidator) resolve(s map[string]any) map[string]any {
	ref, ok := s["$ref"].(string)
	if !ok {
		return s
	}
	name, ok := strings.CutPrefix(ref, "#/$defs/")
	def, found := v.root["$defs"].(map[string]any)[name].(map[string]any)
	if !ok || !found {
		v.t.Fatalf("unresolvable $ref %q", ref)
	}
	return def
}

// problems returns the ways x breaks schema s (nil when it conforms).
func (v *schemaValidator) problems(s any, x any, path string) []string {
	if b, ok := s.(bool); ok {
		if b {
			return nil
		}
		return []string{path + ": not allowed"}
	}
	sm := s.(map[string]any)
	var out []string
	fail := func(format string, args ...any) { out = append(out, path+": "+fmt.Sprintf(format, args...)) }
	for kw, arg := range sm {
		switch kw {
		case "$schema", "title", "description", "default", "$defs", "then", "additionalProperties", "items":
			// Annotations, or handled with their companion keyword.
		case "$ref":
			out = append(out, v.problems(v.resolve(sm), x, path)...)
		case "type":
			if !hasType(x, arg.(string)) {
				fail("is %T, not %s", x, arg)
			}
		case "enum":
			if !slices.ContainsFunc(arg.([]any), func(e any) bool { return jsonEqual(e, x) }) {
				fail("%v is not one of %v", x, arg)
			}
		case "const":
			if !jsonEqual(arg, x) {
				fail("%v is not %v", x, arg)
			}
		case "properties":
			obj, ok := x.(map[string]any)
			if !ok {
				continue
			}
			props := arg.(map[string]any)
			for k, val := range obj {
				if ps, known := props[k]; known {
					out = append(out, v.problems(ps, val, path+"."+k)...)
				} else if ap, has := sm["additionalProperties"]; has {
					out = append(out, v.problems(ap, val, path+"."+k)...)
				}
			}
		case "required":
			if obj, ok := x.(map[string]any); ok {
				for _, r := range arg.([]any) {
					if _, has := obj[r.(string)]; !has {
						fail("%s is required", r)
					}
				}
			}
		case "minItems", "maxItems", "uniqueItems":
			list, ok := x.([]any)
			if !ok {
				continue
			}
			switch {
			case kw == "minItems" && float64(len(list)) < arg.(float64):
				fail("fewer than %v items", arg)
			case kw == "maxItems" && float64(len(list)) > arg.(float64):
				fail("more than %v items", arg)
			case kw == "uniqueItems" && arg.(bool):
				for i := range list {
					for j := range i {
						if jsonEqual(list[i], list[j]) {
							fail("items %d and %d are equal", j, i)
						}
					}
				}
			}
		case "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum":
			n, ok := x.(float64)
			if !ok {
				continue
			}
			lim := arg.(float64)
			if kw == "minimum" && n < lim || kw == "maximum" && n > lim ||
				kw == "exclusiveMinimum" && n <= lim || kw == "exclusiveMaximum" && n >= lim {
				fail("%v breaks %s %v", n, kw, lim)
			}
		case "pattern":
			if str, ok := x.(string); ok && !regexp.MustCompile(arg.(string)).MatchString(str) {
				fail("%q does not match %s", str, arg)
			}
		case "maxLength":
			if str, ok := x.(string); ok && float64(utf8.RuneCountInString(str)) > arg.(float64) {
				fail("longer than %v", arg)
			}
		case "anyOf":
			var all []string
			for _, sub := range arg.([]any) {
				p := v.problems(sub, x, path)
				if len(p) == 0 {
					all = nil
					break
				}
				all = append(all, p...)
			}
			if len(all) > 0 {
				fail("matches no alternative: %v", all)
			}
		case "allOf":
			for _, sub := range arg.([]any) {
				out = append(out, v.problems(sub, x, path)...)
			}
		case "if":
			if len(v.problems(arg, x, path)) == 0 {
				if then, has := sm["then"]; has {
					out = append(out, v.problems(then, x, path)...)
				}
			}
		default:
			v.t.Errorf("%s: the schema uses keyword %q, which this test does not check", path, kw)
		}
	}
	if items, has := sm["items"]; has {
		if list, ok := x.([]any); ok {
			for i, it := range list {
				out = append(out, v.problems(items, it, fmt.Sprintf("%s[%d]", path, i))...)
			}
		}
	}
	if _, has := sm["properties"]; !has {
		if ap, has := sm["additionalProperties"]; has {
			if obj, ok := x.(map[string]any); ok {
				for k, val := range obj {
					out = append(out, v.problems(ap, val, path+"."+k)...)
				}
			}
		}
	}
	return out
}

func hasType(x any, typ string) bool {
	switch typ {
	case "object":
		_, ok := x.(map[string]any)
		return ok
	case "array":
		_, ok := x.([]any)
		return ok
	case "string":
		_, ok := x.(string)
		return ok
	case "boolean":
		_, ok := x.(bool)
		return ok
	case "number":
		_, ok := x.(float64)
		return ok
	case "integer":
		n, ok := x.(float64)
		return ok && n == math.Trunc(n)
	case "null":
		return x == nil
	}
	return false
}

func jsonEqual(a, b any) bool { return reflect.DeepEqual(a, b) }

// instance converts a YAML document or a Go value to the generic JSON form
// the validator checks.
func instance(t testing.TB, v any) any {
	t.Helper()
	var js []byte
	var err error
	if data, ok := v.([]byte); ok {
		js, err = yaml.YAMLToJSON(data)
	} else {
		js, err = json.Marshal(v)
	}
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(js, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// conforms reports whether v (YAML bytes or a Go value) conforms to the
// schema, and the problems when it does not.
func (v *schemaValidator) conforms(x any) (bool, []string) {
	p := v.problems(map[string]any(v.root), instance(v.t, x), "")
	return len(p) == 0, p
}

func TestSchemaNames(t *testing.T) {
	names := SchemaNames()
	if !slices.Equal(names, []string{"federation", "scenario", "policy"}) {
		t.Fatalf("SchemaNames() = %v", names)
	}
	names[0] = "changed"
	if SchemaNames()[0] != "federation" {
		t.Fatal("SchemaNames returns shared storage")
	}
	if _, err := Schema("nope"); err == nil || !strings.Contains(err.Error(), "federation, scenario, policy") {
		t.Fatalf("Schema(nope) error = %v", err)
	}
}

// schemaTypes maps each schema to the Go type its documents decode into.
var schemaTypes = map[string]reflect.Type{
	"federation": reflect.TypeFor[Federation](),
	"scenario":   reflect.TypeFor[Scenario](),
	"policy":     reflect.TypeFor[policyDocument](),
}

// enumValues are the allowed values of the string enum types.
var enumValues = map[reflect.Type][]string{
	reflect.TypeFor[LinkMode]():    {string(LinkDedicated), string(LinkShared)},
	reflect.TypeFor[StorageMode](): {string(StorageShared), string(StorageLocal)},
	reflect.TypeFor[Order]():       {string(OrderPriority), string(OrderDeadline), string(OrderFIFO)},
	reflect.TypeFor[EventKind](): func() []string {
		var out []string
		for _, k := range EventKinds {
			out = append(out, string(k))
		}
		return out
	}(),
}

// jsonFields lists the document field names of a struct type, flattening
// untagged embedded structs (as the decoder does), with their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if !f.IsExported() || name == "-" {
			continue
		}
		out[cmp.Or(name, f.Name)] = f.Type
	}
	return out
}

// TestSchemaMatchesTypes walks each schema beside its Go type, so that the
// two cannot drift: at every level the schema's properties are exactly the
// struct's fields, objects forbid other properties, and types, enums and
// durations agree.
func TestSchemaMatchesTypes(t *testing.T) {
	durationType := reflect.TypeFor[Duration]()
	for name, typ := range schemaTypes {
		v := loadSchema(t, name)
		var walk func(s map[string]any, typ reflect.Type, path string)
		walk = func(s map[string]any, typ reflect.Type, path string) {
			if typ == durationType {
				if s["$ref"] != "#/$defs/duration" {
					t.Errorf("%s %s: a duration must use #/$defs/duration", name, path)
				}
				return
			}
			s = v.resolve(s)
			if vals, ok := enumValues[typ]; ok {
				got := fmt.Sprint(s["enum"])
				if want := fmt.Sprint(toAny(vals)); got != want {
					t.Errorf("%s %s: enum %s, want %s", name, path, got, want)
				}
				return
			}
			switch typ.Kind() {
			case reflect.Struct:
				if s["type"] != "object" || s["additionalProperties"] != false {
					t.Errorf("%s %s: want an object with additionalProperties false", name, path)
				}
				props, _ := s["properties"].(map[string]any)
				fields := jsonFields(typ)
				if got, want := sortedKeys(props), sortedKeys(fields); !slices.Equal(got, want) {
					t.Errorf("%s %s: schema properties %v, struct fields %v", name, path, got, want)
				}
				for _, r := range asStrings(s["required"]) {
					if _, ok := fields[r]; !ok {
						t.Errorf("%s %s: required %q is not a field", name, path, r)
					}
				}
				for k, ft := range fields {
					ps, ok := props[k].(map[string]any)
					if !ok {
						continue
					}
					if d, _ := ps["description"].(string); d == "" {
						t.Errorf("%s %s.%s: no description", name, path, k)
					}
					walk(ps, ft, path+"."+k)
				}
			case reflect.Slice:
				if s["type"] != "array" {
					t.Errorf("%s %s: type %v, want array", name, path, s["type"])
				}
				items, _ := s["items"].(map[string]any)
				walk(items, typ.Elem(), path+"[]")
			case reflect.String:
				if s["type"] != "string" {
					t.Errorf("%s %s: type %v, want string", name, path, s["type"])
				}
			case reflect.Bool:
				if s["type"] != "boolean" {
					t.Errorf("%s %s: type %v, want boolean", name, path, s["type"])
				}
			case reflect.Int, reflect.Int64:
				if s["type"] != "integer" {
					t.Errorf("%s %s: type %v, want integer", name, path, s["type"])
				}
			case reflect.Float64:
				if s["type"] != "number" {
					t.Errorf("%s %s: type %v, want number", name, path, s["type"])
				}
			default:
				t.Errorf("%s %s: Go type %s has no schema rule in this test", name, path, typ)
			}
		}
		walk(v.root, typ, name)
		defs := v.root["$defs"].(map[string]any)
		if p := defs["name"].(map[string]any)["pattern"]; p != NamePattern {
			t.Errorf("%s: name pattern %v, want %v", name, p, NamePattern)
		}
	}
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func asStrings(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		out = append(out, x.(string))
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestSchemaConstantsMatchValidation(t *testing.T) {
	fed := loadSchema(t, "federation").root["$defs"].(map[string]any)
	prop := func(def, field, kw string) any {
		return fed[def].(map[string]any)["properties"].(map[string]any)[field].(map[string]any)[kw]
	}
	for _, c := range []struct {
		got, want any
	}{
		{prop("vm", "fqdn", "pattern"), FQDNPattern},
		{prop("service", "fqdn", "pattern"), FQDNPattern},
		{prop("service", "port", "maximum"), float64(MaxPort)},
		{prop("vm", "priority", "maximum"), float64(MaxPriority)},
		{prop("link", "tunnel_overhead_bytes", "maximum"), float64(MaxTunnelOverheadBytes)},
		{prop("power_model", "watts", "minItems"), float64(PowerModelPoints)},
		{prop("power_model", "watts", "maxItems"), float64(PowerModelPoints)},
		{prop("host", "power_model", "default"), DefaultPowerModelName},
	} {
		if c.got != c.want {
			t.Errorf("schema has %v, code has %v", c.got, c.want)
		}
	}
	pol := loadSchema(t, "policy").root["properties"].(map[string]any)
	if got := fmt.Sprint(pol["base"].(map[string]any)["enum"]); got != fmt.Sprint(toAny(PolicyNames())) {
		t.Errorf("policy base enum %s, want %v", got, PolicyNames())
	}
	if got := pol["base"].(map[string]any)["default"]; got != DefaultPolicyName {
		t.Errorf("policy base default %v, want %s", got, DefaultPolicyName)
	}
	if got := pol["migration"].(map[string]any)["properties"].(map[string]any)["parallel_connections"].(map[string]any)["maximum"]; got != float64(MaxParallelConnections) {
		t.Errorf("parallel_connections maximum %v, want %d", got, MaxParallelConnections)
	}
	// Every default the policy schema states is the default policy's value.
	def := instance(t, RefugePolicy()).(map[string]any)
	var check func(props map[string]any, val map[string]any, path string)
	check = func(props map[string]any, val map[string]any, path string) {
		for k, p := range props {
			pm := p.(map[string]any)
			if d, has := pm["default"]; has && k != "base" && !jsonEqual(d, val[k]) {
				t.Errorf("policy schema default %s%s = %v, the default policy has %v", path, k, d, val[k])
			}
			if sub, ok := pm["properties"].(map[string]any); ok {
				check(sub, val[k].(map[string]any), path+k+".")
			}
		}
	}
	check(pol, def, "")
}

// TestExamplesConformToSchema checks the test documents, the built-in
// policies and the examples in docs/federation.md against the schemas.
func TestExamplesConformToSchema(t *testing.T) {
	docs := map[string][][]byte{}
	for _, name := range SchemaNames() {
		data, err := os.ReadFile("testdata/" + name + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		docs[name] = append(docs[name], data)
	}
	for name, block := range docExamples(t) {
		docs[name] = append(docs[name], block)
	}
	for name, list := range docs {
		v := loadSchema(t, name)
		for i, d := range list {
			if ok, p := v.conforms(d); !ok {
				t.Errorf("%s document %d does not conform: %v", name, i, p)
			}
		}
	}
	pol := loadSchema(t, "policy")
	for _, n := range PolicyNames() {
		p, _ := PolicyByName(n)
		if ok, probs := pol.conforms(p); !ok {
			t.Errorf("built-in policy %s does not conform: %v", n, probs)
		}
	}
	fed := loadSchema(t, "federation")
	if ok, p := fed.conforms(testFederation(t)); !ok {
		t.Errorf("marshalled test federation does not conform: %v", p)
	}
}

// docExamples returns the YAML examples of docs/federation.md, keyed by the
// schema their yaml-language-server comment names.
func docExamples(t testing.TB) map[string][]byte {
	t.Helper()
	data, err := os.ReadFile("../../docs/federation.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	re := regexp.MustCompile("(?s)```yaml\n(# yaml-language-server: \\$schema=(\\w+)\\.schema\\.json\n.*?)```")
	for _, m := range re.FindAllSubmatch(data, -1) {
		out[string(m[2])] = m[1]
	}
	for _, name := range SchemaNames() {
		if out[name] == nil {
			t.Errorf("docs/federation.md has no %s example", name)
		}
	}
	return out
}

// TestDocExamplesParse checks that the examples of docs/federation.md are
// valid documents.
func TestDocExamplesParse(t *testing.T) {
	ex := docExamples(t)
	f, err := ParseFederation(ex["federation"])
	if err != nil {
		t.Fatalf("federation example: %v", err)
	}
	if _, err := ParseScenario(ex["scenario"], f); err != nil {
		t.Fatalf("scenario example: %v", err)
	}
	if _, err := ParsePolicy(ex["policy"]); err != nil {
		t.Fatalf("policy example: %v", err)
	}
}

// TestDocPolicyTable checks the table of built-in policies in
// docs/federation.md against the code.
func TestDocPolicyTable(t *testing.T) {
	data, err := os.ReadFile("../../docs/federation.md")
	if err != nil {
		t.Fatal(err)
	}
	header := regexp.MustCompile("(?m)^\\| Field \\| `refuge` \\| `sequential` \\| `kubevirt-like` \\| `all-at-once` \\|$")
	loc := header.FindIndex(data)
	if loc == nil {
		t.Fatal("no table of built-in policies")
	}
	policies := []string{"refuge", "sequential", "kubevirt-like", "all-at-once"}
	values := make([]map[string]any, len(policies))
	for i, n := range policies {
		p, _ := PolicyByName(n)
		values[i] = flatten(instance(t, p).(map[string]any), "")
		delete(values[i], "name")
	}
	rows := 0
	for _, line := range strings.Split(string(data[loc[1]:]), "\n")[2:] {
		if !strings.HasPrefix(line, "| `") {
			break
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		field := strings.Trim(cells[0], "`")
		for i := range policies {
			if got, want := cells[i+1], fmt.Sprint(values[i][field]); got != want {
				t.Errorf("docs say %s %s = %s, code has %s", policies[i], field, got, want)
			}
			delete(values[i], field)
		}
		rows++
	}
	if len(values[0]) > 0 {
		t.Errorf("fields missing from the docs table: %v", sortedKeys(values[0]))
	}
	if rows == 0 {
		t.Error("empty table of built-in policies")
	}
}

// flatten turns nested objects into dotted keys.
func flatten(m map[string]any, prefix string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			for sk, sv := range flatten(sub, prefix+k+".") {
				out[sk] = sv
			}
			continue
		}
		out[prefix+k] = v
	}
	return out
}
