package alert_test

import (
	"errors"
	"testing"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/alert/alerttest"
)

// FuzzParse feeds arbitrary documents to the sniffing ParseAll and Parse:
// neither may panic, their answers must agree, and every alert must
// validate and survive a JSON round trip. The seed corpus
// (testdata/fuzz/FuzzParse) holds one or two documents of every format.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		alerts, err := alert.ParseAll(data)
		one, err1 := alert.Parse(data)
		switch {
		case err != nil:
			if err1 == nil {
				t.Fatalf("Parse accepts what ParseAll refuses (%v)", err)
			}
			return
		case len(alerts) == 1:
			if err1 != nil || one.Digest != alerts[0].Digest {
				t.Fatalf("Parse refuses a one-alert document: %v", err1)
			}
		case !errors.Is(err1, alert.ErrMultipleAlerts) && !errors.Is(err1, alert.ErrNoAlert):
			t.Fatalf("Parse of a %d-alert document: %v", len(alerts), err1)
		}
		alerttest.Check(t, alerts...)
	})
}
