package pipeline

import (
	"sync"
	"testing"

	"github.com/refuge-project/refuge/internal/model"
)

var example = sync.OnceValues(func() (*model.Federation, error) {
	return model.LoadFederation("../../examples/nankai-trough/federation.yaml")
})

// loadExample returns the nankai-trough example federation, parsed once
// (nothing may modify it).
func loadExample(tb testing.TB) *model.Federation {
	tb.Helper()
	fed, err := example()
	if err != nil {
		tb.Fatal(err)
	}
	return fed
}
