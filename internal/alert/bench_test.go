package alert_test

import (
	"path/filepath"
	"testing"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/alert/alerttest"
)

// BenchmarkParseAll measures sniffing, parsing and validating each fixture.
func BenchmarkParseAll(b *testing.B) {
	for _, path := range alerttest.Fixtures(b) {
		data := alerttest.Read(b, path)
		b.Run(filepath.Base(path), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := alert.ParseAll(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
