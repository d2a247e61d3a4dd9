// Package strictyaml decodes YAML (or JSON) documents into Go structs
// strictly: unknown fields, duplicate keys, non-string keys, wrong types and
// out-of-range numbers are all reported at once, each with the path of the
// field at fault, and the decoder never panics on hostile input.
//
// Field names come from `json` struct tags (embedded structs without a tag
// are flattened, as encoding/json does). A field type that implements
// encoding.TextUnmarshaler (durations, enums) is decoded from a YAML string
// or number. A YAML null leaves the field as it was, so decoding onto a
// pre-filled value overrides only the fields the document sets.
//
// Parsing is done by go.yaml.in/yaml/v2, the YAML 1.1 parser that
// sigs.k8s.io/yaml wraps. It is used directly rather than through
// sigs.k8s.io/yaml.YAMLToJSON because that conversion silently turns
// number, boolean and null keys into strings (so `1:` and `"1":` collide and
// one is dropped), keeps the last of duplicate keys (its strict variant
// rejects them but also rejects overriding a key brought in by a `<<` merge),
// ignores every document after the first, and reports .inf/.nan values
// without a path. Here:
//
//   - duplicate keys are an error at the key's path; keys brought in by a
//     `<<: *anchor` merge may be overridden, as YAML 1.1 intends;
//   - a key that is not a string (`1:`, `yes:`, `~:`) is an error at its path;
//   - a file must hold one document (empty documents after it are ignored);
//   - documents must be UTF-8; syntax errors carry the line (SyntaxError);
//   - alias bombs and deep nesting are refused by the parser's own limits,
//     and the document size by MaxDocumentBytes.
//
// Note that YAML 1.1 reads unquoted yes/no/on/off/y/n as booleans and 010 as
// octal; such a value given for a string field is an error that says to quote
// it.
package strictyaml

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v2"

	"github.com/refuge-project/refuge/internal/validate"
)

// MaxDocumentBytes bounds the size of a document accepted by Decode (a
// federation of 50 000 VMs is about 8 MiB of YAML).
const MaxDocumentBytes = 16 << 20

// maxDepth bounds how deep the decoder follows nested Go values, so that a
// recursive Go type cannot be driven into unbounded recursion.
const maxDepth = 64

// ErrEmptyDocument is returned by Decode for a document with no content
// (nothing, only comments, or a lone null).
var ErrEmptyDocument = errors.New("document is empty")

// SyntaxError is a document that is not well-formed YAML.
type SyntaxError struct {
	// Line is the 1-based line of the problem, or 0 when the parser does
	// not say (problems found while resolving anchors and tags).
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string {
	if e.Line == 0 {
		return "invalid YAML: " + e.Msg
	}
	return fmt.Sprintf("invalid YAML at line %d: %s", e.Line, e.Msg)
}

// Decode parses data (YAML or JSON) into out, which must be a non-nil
// pointer. Oversized, empty and malformed documents fail with a plain error,
// ErrEmptyDocument or a *SyntaxError; every structural problem (unknown
// field, duplicate key, wrong type, number out of range) is reported
// together in a validate.List.
func Decode(data []byte, out any) error {
	rv := reflect.ValueOf(out)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errors.New("strictyaml: out must be a non-nil pointer")
	}
	tree, index, err := parse(data)
	if err != nil {
		return err
	}
	var errs validate.Errors
	if _, isMap := tree.(map[any]any); isMap {
		if err := checkDuplicateKeys(&errs, data, index); err != nil {
			return err
		}
	}
	d := decoder{errs: &errs}
	d.value("", tree, rv.Elem(), 0)
	return errs.Err()
}

// parse returns the document of data as the parser's generic tree
// (map[any]any, []any and scalars) and its index in the stream, checking
// that data is well-formed UTF-8 YAML of bounded size holding one non-empty
// document (empty ones around it are ignored). It stops at the first
// error: the parser panics if used again after one.
func parse(data []byte) (tree any, index int, err error) {
	if len(data) > MaxDocumentBytes {
		return nil, 0, fmt.Errorf("document is %d bytes, more than the %d accepted", len(data), MaxDocumentBytes)
	}
	if err := checkText(data); err != nil {
		return nil, 0, err
	}
	defer recoverParser(&err)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 0; ; i++ {
		var doc any
		switch err := dec.Decode(&doc); {
		case err == io.EOF:
			if tree == nil {
				return nil, 0, ErrEmptyDocument
			}
			return tree, index, nil
		case err != nil:
			return nil, 0, syntaxError(err)
		case doc == nil:
		case tree == nil:
			tree, index = doc, i
		default:
			return nil, 0, fmt.Errorf("document %d of the file is not empty: a file must hold exactly one YAML document (remove the '---' separator)", i+1)
		}
	}
}

// recoverParser turns a panic inside the YAML parser into an error, so that
// hostile input can never crash the caller. (The parser reports ordinary
// errors itself; this only guards against its bugs.)
func recoverParser(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("yaml: parser failed: %v", r)
	}
}

// checkText rejects what the YAML parser would refuse without saying where:
// invalid UTF-8 and control characters.
func checkText(data []byte) error {
	line := 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			return &SyntaxError{Line: line, Msg: "not valid UTF-8 (documents must be UTF-8 encoded)"}
		case !printable(r):
			return &SyntaxError{Line: line, Msg: fmt.Sprintf("control character %U is not allowed", r)}
		case r == '\n', r == '\r' && (i+1 == len(data) || data[i+1] != '\n'):
			line++
		}
		i += size
	}
	return nil
}

// printable mirrors the character set the YAML parser accepts.
func printable(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' ||
		(r >= 0x20 && r <= 0x7E) || r == 0x85 ||
		(r >= 0xA0 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) ||
		(r >= 0x10000 && r <= 0x10FFFF)
}

var lineRE = regexp.MustCompile(`(?s)^yaml: line (\d+): (.*)$`)

// parserProblems are the messages of go.yaml.in/yaml/v2's parser stage (as
// opposed to its scanner): it prints their line 0-based, and none at all
// for a problem on the first line.
var parserProblems = []string{
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"did not find expected <document start>",
	"did not find expected <stream-start>",
	"did not find expected key",
	"did not find expected node content",
	"found duplicate %TAG directive",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found undefined tag handle",
}

// resolveProblems start the messages of problems found after parsing, while
// resolving anchors, tags and keys; the parser gives no line for them.
var resolveProblems = []string{
	"unknown anchor", "anchor '", "document contains excessive aliasing", "invalid map key",
	"cannot decode", "!!binary", "map merge requires", "invalid array", "parser failed",
}

// syntaxError converts a parser error into a *SyntaxError with a 1-based
// line. The scanner prints 1-based lines but leaves the line out for the
// first line; the parser stage does the same with 0-based lines.
func syntaxError(err error) *SyntaxError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := lineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	switch {
	case slices.Contains(parserProblems, msg):
		line++
	case line == 0 && !slices.ContainsFunc(resolveProblems, func(p string) bool { return strings.HasPrefix(msg, p) }):
		line = 1
	}
	return &SyntaxError{Line: line, Msg: msg}
}

// checkDuplicateKeys reports keys written twice in one mapping of the
// index-th document. The generic tree cannot show them (the last value
// wins), so the document is read again as ordered key/value lists, which
// keep every written key but leave out keys brought in by `<<` merges;
// overriding those is allowed.
func checkDuplicateKeys(errs *validate.Errors, data []byte, index int) (err error) {
	defer recoverParser(&err)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var ms yaml.MapSlice
	for range index + 1 {
		ms = nil
		if err := dec.Decode(&ms); err != nil {
			return syntaxError(err)
		}
	}
	duplicateKeys(errs, "", ms)
	return nil
}

func duplicateKeys(errs *validate.Errors, path string, v any) {
	switch v := v.(type) {
	case yaml.MapSlice:
		seen := make(map[any]bool, len(v))
		for _, item := range v {
			p := validate.Field(path, keyText(item.Key))
			if isHashable(item.Key) {
				if seen[item.Key] {
					errs.Addf(p, "duplicate key: it appears more than once in this mapping")
				}
				seen[item.Key] = true
			}
			duplicateKeys(errs, p, item.Value)
		}
	case []any:
		for i, item := range v {
			duplicateKeys(errs, validate.Index(path, i), item)
		}
	}
}

func isHashable(k any) bool {
	switch k.(type) {
	case nil, string, bool, int, int64, uint64, float64:
		return true
	}
	return false
}

// keyText is how a mapping key appears in a path.
func keyText(k any) string {
	if k == nil {
		return "null"
	}
	return fmt.Sprint(k)
}

type decoder struct {
	errs *validate.Errors
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// describe names the kind of a parsed value for error messages, with the
// value itself for scalars.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case map[any]any:
		return "a mapping"
	case []any:
		return "a list"
	case string:
		return "a string"
	case bool:
		return fmt.Sprintf("the boolean %t", v)
	case int, int64, uint64, float64:
		return fmt.Sprintf("the number %v", v)
	}
	return fmt.Sprintf("a %T", v)
}

// typeError records that in is not the kind of value expected at path.
func (d *decoder) typeError(path, want string, in any) {
	var hint string
	switch in.(type) {
	case bool:
		if want == "a string" {
			hint = "; put it in quotes (YAML reads unquoted yes/no/on/off/y/n as booleans)"
		}
	case int, int64, uint64, float64:
		if want == "a string" {
			hint = "; put it in quotes"
		}
	}
	if path == "" {
		d.errs.Addf("", "the document must be %s, got %s", want, describe(in))
		return
	}
	d.errs.Addf(path, "must be %s, got %s%s", want, describe(in), hint)
}

func (d *decoder) value(path string, in any, out reflect.Value, depth int) {
	if depth > maxDepth {
		d.errs.Addf(path, "nested more than %d levels deep", maxDepth)
		return
	}
	if in == nil {
		return // YAML null leaves the value as it is; validation decides if it is required.
	}
	if out.Kind() == reflect.Pointer {
		if out.IsNil() {
			out.Set(reflect.New(out.Type().Elem()))
		}
		d.value(path, in, out.Elem(), depth+1)
		return
	}
	if out.CanAddr() && out.Addr().Type().Implements(textUnmarshaler) {
		d.text(path, in, out.Addr().Interface().(encoding.TextUnmarshaler))
		return
	}
	switch out.Kind() {
	case reflect.Struct:
		d.structValue(path, in, out, depth)
	case reflect.Slice:
		list, ok := in.([]any)
		if !ok {
			d.typeError(path, "a list", in)
			return
		}
		s := reflect.MakeSlice(out.Type(), len(list), len(list))
		for i, item := range list {
			d.value(validate.Index(path, i), item, s.Index(i), depth+1)
		}
		out.Set(s)
	case reflect.Map:
		d.mapValue(path, in, out, depth)
	case reflect.String:
		s, ok := in.(string)
		if !ok {
			d.typeError(path, "a string", in)
			return
		}
		if !utf8.ValidString(s) { // possible through !!binary
			d.errs.Addf(path, "must be UTF-8 text")
			return
		}
		out.SetString(s)
	case reflect.Bool:
		b, ok := in.(bool)
		if !ok {
			d.typeError(path, "true or false", in)
			return
		}
		out.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if i, ok := d.integer(path, in); ok {
			if out.OverflowInt(i) {
				d.errs.Addf(path, "%d is out of range", i)
				return
			}
			out.SetInt(i)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if u, ok := d.unsigned(path, in); ok {
			if out.OverflowUint(u) {
				d.errs.Addf(path, "%d is out of range", u)
				return
			}
			out.SetUint(u)
		}
	case reflect.Float32, reflect.Float64:
		if f, ok := d.float(path, in); ok {
			if out.OverflowFloat(f) {
				d.errs.Addf(path, "%g is out of range", f)
				return
			}
			out.SetFloat(f)
		}
	default:
		d.errs.Addf(path, "cannot decode into a field of type %s", out.Type())
	}
}

// text decodes a string (or a number, as written) with UnmarshalText.
func (d *decoder) text(path string, in any, u encoding.TextUnmarshaler) {
	var s string
	switch v := in.(type) {
	case string:
		s = v
	case int, int64, uint64:
		s = fmt.Sprint(v)
	case float64:
		s = strconv.FormatFloat(v, 'g', -1, 64)
	default:
		d.typeError(path, "a string", in)
		return
	}
	if err := u.UnmarshalText([]byte(s)); err != nil {
		d.errs.Addf(path, "%v", err)
	}
}

func (d *decoder) integer(path string, in any) (int64, bool) {
	switch v := in.(type) {
	case int:
		return int64(v), true
	case int64:
		return v, true
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v), true
		}
	case float64:
		if v != math.Trunc(v) || math.IsInf(v, 0) {
			d.errs.Addf(path, "must be an integer, got %v", v)
			return 0, false
		}
		if v >= -(1<<63) && v < 1<<63 {
			return int64(v), true
		}
	default:
		d.typeError(path, "an integer", in)
		return 0, false
	}
	d.errs.Addf(path, "%v is out of range", in)
	return 0, false
}

func (d *decoder) unsigned(path string, in any) (uint64, bool) {
	if u, ok := in.(uint64); ok {
		return u, true
	}
	i, ok := d.integer(path, in)
	if ok && i < 0 {
		d.errs.Addf(path, "must not be negative, got %d", i)
		return 0, false
	}
	return uint64(i), ok
}

func (d *decoder) float(path string, in any) (float64, bool) {
	switch v := in.(type) {
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case uint64:
		return float64(v), true
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			d.errs.Addf(path, "must be a finite number, got %v", v)
			return 0, false
		}
		return v, true
	}
	d.typeError(path, "a number", in)
	return 0, false
}

// stringKeys returns the string keys of m, sorted, after reporting every key
// that is not a string.
func (d *decoder) stringKeys(path string, m map[any]any) []string {
	keys := make([]string, 0, len(m))
	var bad []string
	for k := range m {
		if s, ok := k.(string); ok {
			keys = append(keys, s)
		} else {
			bad = append(bad, validate.Field(path, keyText(k))+"\x00"+describe(k))
		}
	}
	sort.Strings(bad)
	for _, b := range bad {
		p, what, _ := strings.Cut(b, "\x00")
		d.errs.Addf(p, "a key must be a string, got %s; put it in quotes", what)
	}
	sort.Strings(keys)
	return keys
}

func (d *decoder) mapValue(path string, in any, out reflect.Value, depth int) {
	m, ok := in.(map[any]any)
	if !ok {
		d.typeError(path, "a mapping", in)
		return
	}
	kt := out.Type().Key()
	if kt.Kind() != reflect.String {
		d.errs.Addf(path, "cannot decode into a map with %s keys", kt)
		return
	}
	mv := reflect.MakeMapWithSize(out.Type(), len(m))
	for _, k := range d.stringKeys(path, m) {
		ev := reflect.New(out.Type().Elem()).Elem()
		d.value(validate.Field(path, k), m[k], ev, depth+1)
		mv.SetMapIndex(reflect.ValueOf(k).Convert(kt), ev)
	}
	out.Set(mv)
}

func (d *decoder) structValue(path string, in any, out reflect.Value, depth int) {
	m, ok := in.(map[any]any)
	if !ok {
		d.typeError(path, "a mapping", in)
		return
	}
	fields := fieldsOf(out.Type())
	for _, k := range d.stringKeys(path, m) {
		p := validate.Field(path, k)
		idx, ok := fields.byName[k]
		if !ok {
			if s := validate.Suggest(k, fields.names); s != "" {
				d.errs.Addf(p, "unknown field (did you mean %q?)", s)
			} else {
				d.errs.Addf(p, "unknown field (known: %s)", strings.Join(fields.names, ", "))
			}
			continue
		}
		d.value(p, m[k], out.FieldByIndex(idx), depth+1)
	}
}

type structFields struct {
	byName map[string][]int
	names  []string
}

// fieldCache holds fieldsOf results by type.
var fieldCache sync.Map // reflect.Type → structFields

// fieldsOf lists the document field names of struct type t and where each
// lives, flattening untagged embedded structs.
func fieldsOf(t reflect.Type) structFields {
	if sf, ok := fieldCache.Load(t); ok {
		return sf.(structFields)
	}
	sf := structFields{byName: map[string][]int{}}
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			idx := append(append([]int(nil), prefix...), i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
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
	fieldCache.Store(t, sf)
	return sf
}
