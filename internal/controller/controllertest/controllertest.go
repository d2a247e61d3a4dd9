// Package controllertest holds helpers for the tests of the controller
// service's packages.
package controllertest

import (
	"io/fs"

	"go.uber.org/goleak"
	"testing"
	"time"

	"github.com/refuge-project/refuge/examples"
	"github.com/refuge-project/refuge/internal/model"
)

// Poll calls cond every 10 ms until it holds (true) or timeout passes
// (then it reports cond's last answer).
func Poll(timeout time.Duration, cond func() bool) bool {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			return cond()
		}
	}
	return true
}

// Nankai returns the bundled nankai-trough federation.
func Nankai(t testing.TB) *model.Federation {
	t.Helper()
	data, err := fs.ReadFile(examples.FS, "nankai-trough/federation.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := model.ParseFederation(data)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// LeakOptions are goleak's options for packages that run several etcd
// members: a stopped member leaves the HTTP connections of its peer
// transport (rafthttp) to the members still running idle in net/http until
// those stop; they are not ours.
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreAnyFunction("net/http.(*connReader).backgroundRead"),
		goleak.IgnoreAnyFunction("net/http.(*conn).serve"),
	}
}
