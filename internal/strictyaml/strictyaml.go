// Package strictyaml decodes YAML (or JSON) documents into Go structs
// strictly: unknown fields, wrong types and out-of-range numbers are all
// reported at once, each with the path of the field at fault, and the decoder
// never panics on hostile input.
//
// Field names come from `json` struct tags. A field type that implements
// encoding.TextUnmarshaler (durations, enums) is decoded from a YAML string.
package strictyaml

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/refuge-project/refuge/internal/validate"
)

// MaxDocumentBytes bounds the size of a document accepted by Decode.
const MaxDocumentBytes = 64 << 20

// maxDepth bounds nesting so that a hostile document cannot exhaust the stack.
const maxDepth = 64

// Decode parses data (YAML or JSON) into out, which must be a non-nil pointer
// to a struct. Syntax errors are returned as they are; structural errors are
// returned together as a validate.List.
func Decode(data []byte, out any) error {
	if len(data) > MaxDocumentBytes {
		return fmt.Errorf("document is %d bytes, more than the %d accepted", len(data), MaxDocumentBytes)
	}
	rv := reflect.ValueOf(out)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errors.New("strictyaml: out must be a non-nil pointer")
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return fmt.Errorf("invalid YAML: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return fmt.Errorf("invalid document: %w", err)
	}
	if tree == nil {
		return errors.New("document is empty")
	}
	var errs validate.Errors
	d := decoder{errs: &errs}
	d.value("", tree, rv.Elem(), 0)
	return errs.Err()
}

type decoder struct {
	errs *validate.Errors
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

func kindName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
}

func (d *decoder) value(path string, in any, out reflect.Value, depth int) {
	if depth > maxDepth {
		d.errs.Addf(path, "nested more than %d levels deep", maxDepth)
		return
	}
	if in == nil {
		return // YAML null leaves the zero value; validation decides if it is required.
	}
	if out.Kind() == reflect.Pointer {
		if out.IsNil() {
			out.Set(reflect.New(out.Type().Elem()))
		}
		d.value(path, in, out.Elem(), depth+1)
		return
	}
	if out.CanAddr() && out.Addr().Type().Implements(textUnmarshaler) {
		s, ok := in.(string)
		if !ok {
			if n, isNum := in.(json.Number); isNum {
				s = n.String()
			} else {
				d.errs.Addf(path, "must be a string, got %s", kindName(in))
				return
			}
		}
		if err := out.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			d.errs.Addf(path, "%v", err)
		}
		return
	}
	switch out.Kind() {
	case reflect.Struct:
		d.structValue(path, in, out, depth)
	case reflect.Slice:
		list, ok := in.([]any)
		if !ok {
			d.errs.Addf(path, "must be a list, got %s", kindName(in))
			return
		}
		s := reflect.MakeSlice(out.Type(), len(list), len(list))
		for i, item := range list {
			d.value(validate.Index(path, i), item, s.Index(i), depth+1)
		}
		out.Set(s)
	case reflect.Map:
		m, ok := in.(map[string]any)
		if !ok {
			d.errs.Addf(path, "must be a mapping, got %s", kindName(in))
			return
		}
		if out.Type().Key().Kind() != reflect.String {
			d.errs.Addf(path, "unsupported map key type %s", out.Type().Key())
			return
		}
		mv := reflect.MakeMapWithSize(out.Type(), len(m))
		for _, k := range sortedKeys(m) {
			ev := reflect.New(out.Type().Elem()).Elem()
			d.value(validate.Field(path, k), m[k], ev, depth+1)
			mv.SetMapIndex(reflect.ValueOf(k).Convert(out.Type().Key()), ev)
		}
		out.Set(mv)
	case reflect.String:
		s, ok := in.(string)
		if !ok {
			d.errs.Addf(path, "must be a string, got %s", kindName(in))
			return
		}
		out.SetString(s)
	case reflect.Bool:
		b, ok := in.(bool)
		if !ok {
			d.errs.Addf(path, "must be true or false, got %s", kindName(in))
			return
		}
		out.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := in.(json.Number)
		if !ok {
			d.errs.Addf(path, "must be an integer, got %s", kindName(in))
			return
		}
		i, err := n.Int64()
		if err != nil || out.OverflowInt(i) {
			d.errs.Addf(path, "must be an integer in range, got %s", n)
			return
		}
		out.SetInt(i)
	case reflect.Float32, reflect.Float64:
		n, ok := in.(json.Number)
		if !ok {
			d.errs.Addf(path, "must be a number, got %s", kindName(in))
			return
		}
		f, err := n.Float64()
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			d.errs.Addf(path, "must be a finite number, got %s", n)
			return
		}
		out.SetFloat(f)
	case reflect.Interface:
		out.Set(reflect.ValueOf(in))
	default:
		d.errs.Addf(path, "unsupported field type %s", out.Type())
	}
}

func (d *decoder) structValue(path string, in any, out reflect.Value, depth int) {
	m, ok := in.(map[string]any)
	if !ok {
		d.errs.Addf(path, "must be a mapping, got %s", kindName(in))
		return
	}
	fields := fieldsOf(out.Type())
	for _, k := range sortedKeys(m) {
		idx, ok := fields.byName[k]
		if !ok {
			d.errs.Addf(validate.Field(path, k), "unknown field (known: %s)", strings.Join(fields.names, ", "))
			continue
		}
		d.value(validate.Field(path, k), m[k], out.FieldByIndex(idx), depth+1)
	}
}

type structFields struct {
	byName map[string][]int
	names  []string
}

func fieldsOf(t reflect.Type) structFields {
	sf := structFields{byName: map[string][]int{}}
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			idx := append(append([]int(nil), prefix...), i)
			tag := f.Tag.Get("json")
			name, _, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
				walk(f.Type, idx)
				continue
			}
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			sf.byName[name] = idx
			sf.names = append(sf.names, name)
		}
	}
	walk(t, nil)
	sort.Strings(sf.names)
	return sf
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
