package jma

import (
	"testing"

	"github.com/refuge-project/refuge/internal/alert/alerttest"
)

// FuzzJMA feeds arbitrary documents to Parse: it must not panic, and what
// it accepts must validate and survive a JSON round trip. The seed corpus
// (testdata/fuzz/FuzzJMA) holds the fixtures and broken variants of them.
func FuzzJMA(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Parse(data)
		if err != nil {
			return
		}
		alerttest.Check(t, a)
	})
}
