package strictyaml

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
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
		if !reflect.DeepEqual(back, d) {
			t.Fatalf("round trip changed the value:\n got %+v\nwant %+v", back, d)
		}
	})
}
