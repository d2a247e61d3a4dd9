package strictyaml

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func (d dur) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// FuzzStrictDecode feeds arbitrary bytes to Decode: it must not panic, and
// a value it decodes must read back unchanged from its JSON form. Seeds live
// in testdata/fuzz/FuzzStrictDecode/.
func FuzzStrictDecode(f *testing.F) {
	f.Add([]byte("name: x\nitems: [{name: a, rate: 1}]\nwait: 5s\nlabels: {a: b}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var d doc
		if err := Decode(data, &d); err != nil {
			return
		}
		js, err := json.Marshal(d)
		if err != nil {
			t.Fatalf("decoded value does not marshal: %v", err)
		}
		var back doc
		if err := Decode(js, &back); err != nil {
			t.Fatalf("marshalled value does not decode: %v\n%s", err, js)
		}
		if diff := cmp.Diff(d, back, cmp.AllowUnexported(doc{}), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip changed the value (-decoded +redecoded):\n%s", diff)
		}
	})
}
