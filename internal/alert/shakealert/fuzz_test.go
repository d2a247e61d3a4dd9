package shakealert

import (
	"testing"

	"github.com/refuge-project/refuge/internal/alert/alerttest"
)

// FuzzShakeAlert feeds arbitrary documents to Parse: it must not panic, and what
// it accepts must validate and survive a JSON round trip. The seed corpus
// (testdata/fuzz/FuzzShakeAlert) holds the fixtures and broken variants of them.
func FuzzShakeAlert(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Parse(data)
		if err != nil {
			return
		}
		alerttest.Check(t, a)
	})
}
