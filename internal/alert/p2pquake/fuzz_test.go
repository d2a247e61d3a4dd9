package p2pquake

import (
	"testing"

	"github.com/refuge-project/refuge/internal/alert/alerttest"
)

// FuzzP2PQuake feeds arbitrary documents to Parse: it must not panic, and what
// it accepts must validate and survive a JSON round trip. The seed corpus
// (testdata/fuzz/FuzzP2PQuake) holds the fixtures and broken variants of them.
func FuzzP2PQuake(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		alerts, err := Parse(data)
		if err != nil {
			return
		}
		alerttest.Check(t, alerts...)
	})
}
