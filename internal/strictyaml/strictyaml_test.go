package strictyaml

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	sigsyaml "sigs.k8s.io/yaml"

	"github.com/refuge-project/refuge/internal/validate"
)

// dur is a TextUnmarshaler like model.Duration.
type dur time.Duration

func (d *dur) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("must be a duration, got %q", b)
	}
	*d = dur(v)
	return nil
}

type Embedded struct {
	Extra string `json:"extra"`
}

type item struct {
	Name  string  `json:"name"`
	Count int     `json:"count,omitempty"`
	Rate  float64 `json:"rate"`
}

type doc struct {
	Embedded
	Name    string            `json:"name"`
	Enabled bool              `json:"enabled"`
	Small   int8              `json:"small"`
	Big     int64             `json:"big"`
	U       uint16            `json:"u"`
	F32     float32           `json:"f32"`
	Wait    dur               `json:"wait"`
	Items   []item            `json:"items"`
	Labels  map[string]string `json:"labels"`
	Ptr     *item             `json:"ptr"`
	Skipped string            `json:"-"`
	NoTag   string
	hidden  string
}

func decodeErr(t *testing.T, src string) error {
	t.Helper()
	var d doc
	return Decode([]byte(src), &d)
}

func TestDecodeValid(t *testing.T) {
	src := `
name: x
extra: e
enabled: true
small: -128
big: 9223372036854775807
u: 65535
f32: 1.5
wait: 90s
items:
  - {name: a, count: 1, rate: 2}
  - name: b
    rate: 1e3
labels: {k: v, "1": one}
ptr: {name: p, rate: 0}
NoTag: t
`
	var d doc
	if err := Decode([]byte(src), &d); err != nil {
		t.Fatal(err)
	}
	want := doc{
		Embedded: Embedded{Extra: "e"},
		Name:     "x", Enabled: true, Small: -128, Big: 1<<63 - 1, U: 65535, F32: 1.5,
		Wait:   dur(90 * time.Second),
		Items:  []item{{Name: "a", Count: 1, Rate: 2}, {Name: "b", Rate: 1000}},
		Labels: map[string]string{"k": "v", "1": "one"},
		Ptr:    &item{Name: "p"},
		NoTag:  "t",
	}
	if !reflect.DeepEqual(d, want) || d.hidden != "" {
		t.Fatalf("got %+v\nwant %+v", d, want)
	}
}

func TestDecodeJSON(t *testing.T) {
	var d doc
	if err := Decode([]byte(`{"name": "j", "items": [{"name": "a", "rate": 0.5}], "wait": "1m"}`), &d); err != nil {
		t.Fatal(err)
	}
	if d.Name != "j" || len(d.Items) != 1 || d.Items[0].Rate != 0.5 || d.Wait != dur(time.Minute) {
		t.Fatalf("got %+v", d)
	}
}

func TestNullKeepsValue(t *testing.T) {
	d := doc{Name: "keep", Items: []item{{Name: "i"}}, Ptr: &item{Name: "p", Rate: 2}}
	if err := Decode([]byte("name: ~\nitems: null\nptr: {rate: 3}\n"), &d); err != nil {
		t.Fatal(err)
	}
	if d.Name != "keep" || len(d.Items) != 1 || d.Ptr.Name != "p" || d.Ptr.Rate != 3 {
		t.Fatalf("got %+v", d)
	}
}

func TestMergeKeysMayBeOverridden(t *testing.T) {
	src := `
ptr: &base {name: base, count: 1, rate: 2}
items:
  - <<: *base
    name: first
  - <<: *base
    rate: 5
`
	var d doc
	if err := Decode([]byte(src), &d); err != nil {
		t.Fatal(err)
	}
	want := []item{{Name: "first", Count: 1, Rate: 2}, {Name: "base", Count: 1, Rate: 5}}
	if !reflect.DeepEqual(d.Items, want) {
		t.Fatalf("items = %+v, want %+v", d.Items, want)
	}
}

// TestFieldErrors checks every structural error and its path.
func TestFieldErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string // "path: message substring"
	}{
		{"unknown field", "nmae: x\n", []string{`nmae: unknown field (did you mean "name"?)`}},
		{"unknown field far from any", "zzzzzzzz: 1\n", []string{"zzzzzzzz: unknown field (known: NoTag, big, enabled, extra, f32, items, labels, name, ptr, small, u, wait)"}},
		{"unknown nested", "items: [{name: a, colour: red}]\n", []string{"items[0].colour: unknown field"}},
		{"unknown in pointer", "ptr: {x: 1}\n", []string{"ptr.x: unknown field"}},
		{"skipped field is unknown", "Skipped: x\n", []string{"Skipped: unknown field"}},
		{"hidden field is unknown", "hidden: x\n", []string{"hidden: unknown field"}},
		{"number for string", "name: 123\n", []string{"name: must be a string, got the number 123; put it in quotes"}},
		{"bool for string", "name: no\n", []string{"name: must be a string, got the boolean false; put it in quotes (YAML reads"}},
		{"list for string", "name: [a]\n", []string{"name: must be a string, got a list"}},
		{"binary string", "name: !!binary /w==\n", []string{"name: must be UTF-8 text"}},
		{"string for bool", "enabled: maybe\n", []string{"enabled: must be true or false, got a string"}},
		{"yaml 1.1 bool key", "on: true\n", []string{"true: a key must be a string, got the boolean true"}},
		{"string for int", "big: lots\n", []string{"big: must be an integer, got a string"}},
		{"fraction for int", "big: 1.5\n", []string{"big: must be an integer, got 1.5"}},
		{"int overflow", "small: 128\n", []string{"small: 128 is out of range"}},
		{"int64 overflow", "big: 9223372036854775808\n", []string{"big: 9223372036854775808 is out of range"}},
		{"huge float for int", "big: 1e30\n", []string{"big: 1e+30 is out of range"}},
		{"negative uint", "u: -1\n", []string{"u: must not be negative, got -1"}},
		{"uint overflow", "u: 65536\n", []string{"u: 65536 is out of range"}},
		{"inf", "items: [{rate: .inf}]\n", []string{"items[0].rate: must be a finite number, got +Inf"}},
		{"nan", "items: [{rate: .nan}]\n", []string{"items[0].rate: must be a finite number, got NaN"}},
		{"float32 overflow", "f32: 1e39\n", []string{"f32: 1e+39 is out of range"}},
		{"string for float", "items: [{rate: fast}]\n", []string{"items[0].rate: must be a number, got a string"}},
		{"bad text", "wait: soon\n", []string{`wait: must be a duration, got "soon"`}},
		{"number text", "wait: 90\n", []string{`wait: must be a duration, got "90"`}},
		{"list for text", "wait: [1]\n", []string{"wait: must be a string, got a list"}},
		{"mapping for list", "items: {name: a}\n", []string{"items: must be a list, got a mapping"}},
		{"scalar for struct", "ptr: 3\n", []string{"ptr: must be a mapping, got the number 3"}},
		{"scalar for map", "labels: x\n", []string{"labels: must be a mapping, got a string"}},
		{"int key", "1: x\n", []string{"1: a key must be a string, got the number 1; put it in quotes"}},
		{"bool key", "yes: x\n", []string{"true: a key must be a string, got the boolean true"}},
		{"null key", "~: x\n", []string{"null: a key must be a string, got null"}},
		{"int key in map", "labels: {1: one}\n", []string{"labels.1: a key must be a string, got the number 1"}},
		{"duplicate key", "name: a\nname: b\n", []string{"name: duplicate key"}},
		{"duplicate nested key", "items:\n  - name: a\n    rate: 1\n    rate: 2\n", []string{"items[0].rate: duplicate key"}},
		{"duplicate map key", "labels: {k: a, k: b}\n", []string{"labels.k: duplicate key"}},
		{"int and string key", "labels: {1: a, \"1\": b}\n", []string{"labels.1: a key must be a string"}},
		{"list document", "- a\n- b\n", []string{": the document must be a mapping, got a list"}},
		{"scalar document", "hello\n", []string{": the document must be a mapping, got a string"}},
		{"number document", "42\n", []string{": the document must be a mapping, got the number 42"}},
		{"several at once", "nmae: x\nbig: z\nitems: [{rate: q}, 3]\n", []string{
			"big: must be an integer", "items[0].rate: must be a number", "items[1]: must be a mapping", "nmae: unknown field"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := decodeErr(t, tc.src)
			var list validate.List
			if !errors.As(err, &list) {
				t.Fatalf("error %v (%T) is not a validate.List", err, err)
			}
			if len(list) != len(tc.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(list), len(tc.want), err)
			}
			for i, w := range tc.want {
				path, msg, _ := strings.Cut(w, ": ")
				if list[i].Path != path || !strings.Contains(list[i].Msg, msg) {
					t.Errorf("problem %d = %q, want path %q and message containing %q", i, list[i].Error(), path, msg)
				}
			}
		})
	}
}

func TestSyntaxErrorsCarryTheLine(t *testing.T) {
	for _, tc := range []struct {
		src  string
		line int
	}{
		{"a: b: c\n", 1},
		{"\ta: 1\n", 1},
		{"name: x\nitems:\n  - a\n - b\n", 4},
		{"name: [1, 2", 2},
		{"name: [1, 2\n", 2}, // the parser notices at the end of the document
		{"\n\n\nname: [1, 2\n", 5},
		{"name: \"unterminated\n", 2},
		{"\xef\xbb\xbfa: b: c\n", 1},
		{"name: x\nlabels: \"\x01\"\n", 2},
		{"name: x\r\nother: \xff\n", 2},
		{"\xff\xfe", 1},
		{"name: x\n\n  bad: indent\n", 3},
		{"name: x\nitems: [a, b\n", 3},
		{"name: x\nitems: {a: b\n", 3},
		{"name: [a\n", 2},
		{"- a\nb: c\n", 2},
		{"name: x\n%YAML 1.1\n", 3},
		{"name: !x!y z\n", 1},
		{"name: x\nextra: !x!y z\n", 2},
		{"name: x\n---\n- a\nb: c\n", 4},
		{"name: x\n---\n[a, \n", 4},
	} {
		err := decodeErr(t, tc.src)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("%q: error %v (%T) is not a *SyntaxError", tc.src, err, err)
			continue
		}
		if se.Line != tc.line {
			t.Errorf("%q: line %d, want %d (%v)", tc.src, se.Line, tc.line, err)
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("line %d", tc.line)) {
			t.Errorf("%q: message %q does not name the line", tc.src, err)
		}
	}
}

func TestDocumentLevelErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"empty", "", "document is empty"},
		{"blank", "\n  \n", "document is empty"},
		{"comment", "# nothing\n", "document is empty"},
		{"null", "~\n", "document is empty"},
		{"separator only", "---\n", "document is empty"},
		{"two documents", "name: a\n---\nname: b\n", "a file must hold exactly one YAML document"},
		{"unknown anchor", "name: *nope\n", "unknown anchor 'nope' referenced"},
		{"recursive anchor", "items: &a [*a]\n", "value contains itself"},
		{"list key", "? [a]\n: b\n", "invalid map key"},
		{"bad tag", "big: !!int abc\n", "cannot decode !!str `abc` as a !!int"},
		{"too large", "name: " + strings.Repeat("x", MaxDocumentBytes) + "\n", "more than the"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := decodeErr(t, tc.src)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if tc.want == "document is empty" && !errors.Is(err, ErrEmptyDocument) {
				t.Fatalf("error %v is not ErrEmptyDocument", err)
			}
		})
	}
}

func TestEmptyDocumentsAroundTheOneAreIgnored(t *testing.T) {
	var d doc
	if err := Decode([]byte("---\nname: a\n---\n...\n"), &d); err != nil || d.Name != "a" {
		t.Fatalf("got %+v, %v", d, err)
	}
	// Duplicate keys are found in the document that counts, after an empty one.
	err := Decode([]byte("---\n# empty\n---\nname: a\nname: b\n"), &d)
	var list validate.List
	if !errors.As(err, &list) || len(list) != 1 || list[0].Path != "name" {
		t.Fatalf("got %v", err)
	}
}

func TestHostileDocuments(t *testing.T) {
	// A billion-laughs alias bomb.
	var bomb strings.Builder
	bomb.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 12; i++ {
		fmt.Fprintf(&bomb, "a%d: &a%d [", i, i)
		for j := range 10 {
			if j > 0 {
				bomb.WriteString(", ")
			}
			fmt.Fprintf(&bomb, "*a%d", i-1)
		}
		bomb.WriteString("]\n")
	}
	deepFlow := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	var deepBlock strings.Builder
	for i := range 200 {
		fmt.Fprintf(&deepBlock, "%s- \n", strings.Repeat("  ", i))
	}
	for name, src := range map[string]string{
		"alias bomb":      bomb.String(),
		"deep flow":       "items: " + deepFlow + "\n",
		"deep flow doc":   deepFlow,
		"deep block list": "items:\n" + deepBlock.String(),
		"deep mapping":    strings.Repeat("{a: ", 5000) + "1" + strings.Repeat("}", 5000),
		"long key":        strings.Repeat("k", 1<<20) + ": 1\n",
	} {
		t.Run(name, func(t *testing.T) {
			if err := decodeErr(t, src); err == nil {
				t.Fatal("hostile document accepted")
			}
		})
	}
}

func TestManyErrorsAreCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("items:\n")
	for range validate.MaxErrors + 10 {
		b.WriteString("  - {rate: x}\n")
	}
	err := decodeErr(t, b.String())
	var list validate.List
	if !errors.As(err, &list) || len(list) != validate.MaxErrors+1 {
		t.Fatalf("got %d problems, want %d", len(list), validate.MaxErrors+1)
	}
	if last := list[len(list)-1]; !strings.Contains(last.Msg, "10 more problems") {
		t.Fatalf("last entry %q", last.Msg)
	}
}

func TestLargeDocument(t *testing.T) {
	var b strings.Builder
	b.WriteString("items:\n")
	for i := 0; b.Len() < 1<<20; i++ {
		fmt.Fprintf(&b, "  - {name: item-%d, count: %d, rate: 1.5}\n", i, i)
	}
	var d doc
	if err := Decode([]byte(b.String()), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Items) < 20000 || d.Items[len(d.Items)-1].Count != len(d.Items)-1 {
		t.Fatalf("decoded %d items", len(d.Items))
	}
}

func TestOutMustBeAPointer(t *testing.T) {
	var d doc
	for _, out := range []any{d, (*doc)(nil), nil} {
		if err := Decode([]byte("name: x\n"), out); err == nil {
			t.Errorf("Decode into %T succeeded", out)
		}
	}
}

func TestUnsupportedTypes(t *testing.T) {
	var v struct {
		Any  any            `json:"any"`
		Ints map[int]string `json:"ints"`
		Ch   chan int       `json:"ch"`
	}
	err := Decode([]byte("any: 1\nints: {a: b}\nch: 1\n"), &v)
	var list validate.List
	if !errors.As(err, &list) {
		t.Fatalf("error %v", err)
	}
	if got, want := list.Paths(), []string{"any", "ch", "ints"}; !slices.Equal(got, want) {
		t.Fatalf("paths %v, want %v", got, want)
	}
}

func TestRecursiveTypeDepth(t *testing.T) {
	type node struct {
		Next *node `json:"next"`
	}
	src := strings.Repeat("{next: ", 100) + "~" + strings.Repeat("}", 100)
	var n node
	err := Decode([]byte(src), &n)
	if err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Fatalf("error %v", err)
	}
}

// TestWhyNotSigsYAML pins the behaviours of sigs.k8s.io/yaml v1.6.0 that made
// this package parse with go.yaml.in/yaml/v2 directly (see the package
// documentation). If one changes, the choice deserves another look.
func TestWhyNotSigsYAML(t *testing.T) {
	// Non-string keys become strings, so `1` and `"1"` collide silently.
	if js, err := sigsyaml.YAMLToJSON([]byte("1: a\n\"1\": b\n")); err != nil || strings.Count(string(js), `"1"`) != 1 {
		t.Errorf("colliding keys: %s, %v", js, err)
	}
	// Duplicate keys: the last one wins, silently.
	if js, err := sigsyaml.YAMLToJSON([]byte("a: 1\na: 2\n")); err != nil || string(js) != `{"a":2}` {
		t.Errorf("duplicate keys: %s, %v", js, err)
	}
	// The strict variant rejects overriding a merged key.
	if _, err := sigsyaml.YAMLToJSONStrict([]byte("b: &b {x: 1}\nc: {<<: *b, x: 2}\n")); err == nil {
		t.Error("strict conversion accepts a merge override")
	}
	// Later documents are ignored.
	if js, err := sigsyaml.YAMLToJSON([]byte("a: 1\n---\nb: 2\n")); err != nil || string(js) != `{"a":1}` {
		t.Errorf("second document: %s, %v", js, err)
	}
	// .inf fails without saying where.
	if _, err := sigsyaml.YAMLToJSON([]byte("x: {y: .inf}\n")); err == nil || strings.Contains(err.Error(), "x.y") {
		t.Errorf("infinity: %v", err)
	}
	// Here, each of these is reported at its path or refused.
	for _, src := range []string{"labels: {1: a, \"1\": b}\n", "name: a\nname: b\n", "name: a\n---\nname: b\n", "items: [{rate: .inf}]\n"} {
		if decodeErr(t, src) == nil {
			t.Errorf("%q accepted", src)
		}
	}
	if err := decodeErr(t, "ptr: &b {name: x}\nitems: [{<<: *b, name: z}]\n"); err != nil {
		t.Errorf("merge override refused: %v", err)
	}
}
